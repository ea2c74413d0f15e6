"""Do stored DFT labels reproduce on this machine? Recompute a few frames of a labelled extxyz with pw.x.

Usage (repo root)::

    .venv/bin/python bench/check_labels.py                       # 2 frames of data/al_dft_v1.extxyz
    .venv/bin/python bench/check_labels.py --frames fcc-eos/a3.850 strained/fcc4-0 rattled/fcc8-0

Each frame is labelled again at the settings of ``bench/build_al_dataset.py`` (its ``settings_hash`` must match
the stored one, or the check stops) in ``--root``, and the free energy per atom and forces are compared with the
stored label. Differences far below the potential's targets (meV/atom, 0.01 eV/Å) mean the labels carry over: a
regenerated pseudopotential, another CPU or another BLAS changed nothing physical.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=REPO / "data" / "al_dft_v1.extxyz")
    p.add_argument("--frames", nargs="*", default=["fcc-eos/a3.850", "strained/fcc4-0"], help="candidate names")
    p.add_argument("--root", type=Path, default=REPO / "runs" / "label_check", help="pw.x work folders")
    args = p.parse_args(argv)

    from ase.io import read

    from alml.runtime import set_threads

    set_threads(1)
    from build_al_dataset import settings

    from alml.dft.tasks import label, settings_hash

    s = settings()
    sh = settings_hash(s)
    stored = {a.info["candidate"]: a for a in read(args.data, index=":", format="extxyz")}
    missing = [n for n in args.frames if n not in stored]
    if missing:
        raise SystemExit(f"not in {args.data}: {', '.join(missing)} (pass names from its 'candidate' field)")
    print(f"settings {sh}; {len(args.frames)} frames of {args.data.name}")
    print("| frame | atoms | ΔF (eV/atom) | max |ΔF_i| (eV/Å) | pw.x wall (s) |\n|---|---|---|---|---|")
    for name in args.frames:
        a = stored[name]
        if str(a.info.get("settings_hash")) != sh:
            raise SystemExit(f"{name} was labelled at settings {a.info.get('settings_hash')}, not {sh}")
        r = label(a.copy(), s, root=args.root)
        de = (r.free_energy - a.calc.results["free_energy"]) / len(a)
        df = float(np.abs(r.forces - a.get_forces()).max())
        print(f"| {name} | {len(a)} | {de:+.2e} | {df:.1e} | {r.wall_time:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
