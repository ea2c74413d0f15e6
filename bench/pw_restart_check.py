"""Does a pw.x SCF paused with QE's exit file resume cleanly? One uninterrupted run, then one stopped ``--delay``
seconds after its first iteration starts and resumed, on a rattled 8-atom Al cell with k-point pools.

Usage (QE on the PATH; ~1.5 min per call on 2 cores)::

  .venv/bin/python bench/pw_restart_check.py --delay 3            # stops inside iteration 1
  .venv/bin/python bench/pw_restart_check.py --delay 7 --delay 10 # stops inside later iterations

For each delay it prints where pw.x stopped, the scf accuracies of the first four iterations after the (re)start
against those of the uninterrupted run, and both final energies. ``--mode file`` resumes with ``startingpot =
'file'`` from scratch instead of ``restart_mode = 'restart'``. Work folders go under ``--root``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import time
from pathlib import Path

from ase.build import bulk

from alml.dft.espresso import STOP_FILE, _with_restart, pw_input_text
from alml.dft.pseudo import pseudopotential
from alml.dft.settings import DFTSettings


def prepare(d: Path, text: str) -> Path:
    shutil.rmtree(d, ignore_errors=True)
    (d / "pseudo").mkdir(parents=True)
    src = pseudopotential("Al")
    shutil.copy(src, d / "pseudo" / src.name)
    (d / "pw.in").write_text(text)
    return d


def summary(out: Path) -> tuple[list[str], list[str]]:
    t = out.read_text(errors="replace")
    return (re.findall(r"estimated scf accuracy\s+<\s+([\d.E+-]+)", t)[:4],
            re.findall(r"!\s+total energy\s+=\s+([-\d.]+)", t))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--delay", type=float, action="append", help="seconds into iteration 1 to stop (repeatable)")
    ap.add_argument("--mode", choices=("restart", "file"), default="restart")
    ap.add_argument("--ranks", type=int, default=2, help="MPI ranks = k-point pools")
    ap.add_argument("--root", type=Path, default=Path("runs/pw_restart_check"))
    args = ap.parse_args()

    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.1, seed=2)
    text = pw_input_text(atoms, DFTSettings(ecutwfc=20.0, kspacing=0.15, forces=False))
    cmd = ["mpirun.openmpi", "--allow-run-as-root", "-np", str(args.ranks), "pw.x", "-in", "pw.in",
           "-nk", str(args.ranks)]
    ref = prepare(args.root / "uninterrupted", text)
    with open(ref / "pw.out", "w") as f:
        subprocess.run(cmd, cwd=ref, stdout=f, stderr=subprocess.STDOUT, check=True)
    acc, energy = summary(ref / "pw.out")
    print(f"uninterrupted: scf accuracy (Ry) {acc}; total energy {energy} Ry")
    for delay in args.delay or [3.0]:
        d = prepare(args.root / f"stopped-{delay:g}", text)
        with open(d / "pw.out", "w") as f:
            p = subprocess.Popen(cmd, cwd=d, stdout=f, stderr=subprocess.STDOUT)
            while "iteration #  1" not in (d / "pw.out").read_text(errors="replace"):
                time.sleep(0.05)
            time.sleep(delay)
            (d / STOP_FILE).parent.mkdir(exist_ok=True)
            (d / STOP_FILE).touch()
            p.wait()
        where = [ln.strip() for ln in (d / "pw.out").read_text().splitlines() if "stopped in" in ln]
        (d / "pw.out").rename(d / "pw.out.stopped1")
        (d / STOP_FILE).unlink(missing_ok=True)
        resumed = (text.replace("&ELECTRONS\n", "&ELECTRONS\n   startingpot = 'file'\n") if args.mode == "file"
                   else _with_restart(text))
        (d / "pw.in").write_text(resumed)
        with open(d / "pw.out", "w") as f:
            subprocess.run(cmd, cwd=d, stdout=f, stderr=subprocess.STDOUT, check=True)
        acc, energy = summary(d / "pw.out")
        print(f"stopped {delay:g} s into iteration 1 ({'; '.join(where)}), resumed ({args.mode}): "
              f"scf accuracy (Ry) {acc}; total energy {energy} Ry")


if __name__ == "__main__":
    main()
