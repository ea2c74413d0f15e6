"""Run pw.x on one structure: write the input (ASE's Espresso writer), launch, check, parse.

This module knows nothing about caching; :mod:`alml.dft.tasks` adds hashed, reusable work directories.

An SCF can be paused and resumed: :func:`request_stop` creates QE's exit file (``out/pw.EXIT``); pw.x then
stops at its next check (between k-points or after an SCF iteration) and writes restart files. The next
:func:`run_pw` in that directory with the same input continues from there (``restart_mode = 'restart'``) instead
of starting over. pw.x 6.7 resumed in this way reaches the same total energy, to all printed digits, in the same
number of iterations, with or without k-point pools, once one SCF iteration has finished. A run stopped inside
its *first* iteration sometimes resumes from a poor state (2 of 6 such stops of an 8-atom cell with 2 pools: scf
accuracy 0.42 and 1.7 Ry in the next iterations against 0.085 and 0.057 uninterrupted; the 108-atom LDOS cell: 51
then 788 Ry; docs/benchmarks.md, "Resuming a paused pw.x SCF"), so such a run starts over instead: it has at most
one partial iteration to lose.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io.espresso import write_espresso_in

from alml.dft.errors import (
    DFTCrashError,
    DFTInputError,
    DFTNotConvergedError,
    DFTParseError,
    DFTStoppedError,
    DFTTimeoutError,
)
from alml.dft.parse import PwOutput, check_converged, parse_pw_output, parse_wall_time
from alml.dft.pseudo import pseudopotential
from alml.dft.settings import DFTSettings, PwProfile


def kpoint_grid(atoms: Atoms, kspacing: float) -> tuple[int, int, int]:
    """Monkhorst–Pack grid with spacing ≤ ``kspacing`` (1/Å, 2π included); 1 along non-periodic axes."""
    recip = 2 * math.pi * np.linalg.norm(atoms.cell.reciprocal(), axis=1)
    return tuple(int(max(1, math.ceil(b / kspacing - 1e-9))) if p else 1 for b, p in zip(recip, atoms.pbc))


def validate_structure(atoms: Atoms, settings: DFTSettings) -> None:
    """Refuse inputs pw.x would choke on or that make no physical sense, with the fix in the message."""
    if len(atoms) == 0:
        raise DFTInputError("structure has no atoms")
    if not atoms.pbc.all() or atoms.cell.rank < 3:
        raise DFTInputError(
            "pw.x needs a 3D periodic cell: set pbc=True and a full cell (add vacuum for slabs or molecules)"
        )
    if atoms.cell.volume < 1e-3:
        raise DFTInputError("cell volume is zero: check the cell vectors")
    for sym in set(atoms.get_chemical_symbols()):
        if sym == "X":
            raise DFTInputError("unknown element 'X' in structure: give every atom a chemical symbol")
    if settings.min_distance > 0:
        from ase.neighborlist import neighbor_list

        i, j, d = neighbor_list("ijd", atoms, settings.min_distance)
        if len(d):
            k = int(np.argmin(d))
            raise DFTInputError(
                f"atoms {i[k]} and {j[k]} are {d[k]:.3f} Å apart (closer than min_distance "
                f"{settings.min_distance} Å): fix the structure, or lower dft.min_distance if intended"
            )


STOP_FILE = "out/pw.EXIT"  # QE's exit file for prefix "pw", outdir "./out"
_STOPPED = ("Program stopped by user request", "Maximum CPU time exceeded")


def request_stop(workdir: str | Path) -> None:
    """Ask the pw.x SCF running in ``workdir`` to stop cleanly at its next check; a later :func:`run_pw` there
    resumes it (or starts over if it stopped inside its first SCF iteration)."""
    path = Path(workdir) / STOP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def _was_stopped(text: str) -> bool:
    return any(s in text for s in _STOPPED)


def _resumable(workdir: Path, input_text: str) -> bool:
    """True when ``workdir`` holds an SCF that pw.x stopped cleanly, with restart files, for this same input, after
    at least one finished SCF iteration: this part printed an scf accuracy, or it was itself a resumed part (see
    the module's docstring)."""
    out, old = workdir / "pw.out", workdir / "pw.in"
    if not (out.is_file() and old.is_file() and (workdir / "out" / "pw.restart_scf").is_file()):
        return False
    text, old_input = out.read_text(errors="replace"), old.read_text()
    finished_one = "estimated scf accuracy" in text or "restart_mode" in old_input
    return _was_stopped(text) and finished_one and _strip_restart(old_input) == input_text


def _strip_restart(text: str) -> str:
    return "".join(ln for ln in text.splitlines(keepends=True) if "restart_mode" not in ln)


def _with_restart(text: str) -> str:
    head, sep, tail = text.partition("&CONTROL\n")
    if not sep:
        raise DFTInputError("pw.x input has no &CONTROL namelist to add restart_mode to")
    return f"{head}{sep}   restart_mode     = 'restart'\n{tail}"


def pw_input_text(atoms: Atoms, settings: DFTSettings) -> str:
    """The pw.x SCF input for ``atoms`` (pseudopotentials expected in ``./pseudo``)."""
    symbols = sorted(set(atoms.get_chemical_symbols()))
    pseudos = {sym: pseudopotential(sym, settings.pseudopotentials).name for sym in symbols}
    input_data = {
        "control": {
            "calculation": "scf",
            "prefix": "pw",
            "outdir": "./out",
            "pseudo_dir": "./pseudo",
            "tprnfor": settings.forces,
            "tstress": settings.stress,
            "disk_io": "low",
        },
        "system": {
            "ecutwfc": settings.ecutwfc,
            "ecutrho": settings.ecutrho_ry,
            "occupations": "smearing",
            "smearing": settings.smearing_kind,
            "degauss": settings.degauss_ry,
            **({"nbnd": settings.nbnd} if settings.nbnd is not None else {}),
        },
        "electrons": {
            "conv_thr": settings.conv_thr_per_atom * len(atoms),
            "mixing_beta": settings.mixing_beta,
            "electron_maxstep": settings.electron_maxstep,
        },
    }
    kpts = None if settings.gamma_only else kpoint_grid(atoms, settings.kspacing)
    buf = io.StringIO()
    write_espresso_in(buf, atoms, input_data=input_data, pseudopotentials=pseudos, kpts=kpts)
    return buf.getvalue()


def write_pw_input(atoms: Atoms, settings: DFTSettings, workdir: Path) -> tuple[Path, bool]:
    """Write ``pw.in`` and copy the pseudopotentials into ``workdir/pseudo``; return the input path and whether
    it resumes an SCF that pw.x stopped cleanly there (see :func:`request_stop`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    pdir = workdir / "pseudo"
    pdir.mkdir(exist_ok=True)
    for sym in sorted(set(atoms.get_chemical_symbols())):
        src = pseudopotential(sym, settings.pseudopotentials)
        shutil.copy(src, pdir / src.name)
    text = pw_input_text(atoms, settings)
    resume = _resumable(workdir, text)
    if resume:
        n = len(list(workdir.glob("pw.out.stopped*")))
        (workdir / "pw.out").rename(workdir / f"pw.out.stopped{n + 1}")
        text = _with_restart(text)
    (workdir / STOP_FILE).unlink(missing_ok=True)  # a stale exit file would stop the new run at once
    path = workdir / "pw.in"
    path.write_text(text)
    return path, resume


def run_pw(atoms: Atoms, settings: DFTSettings, profile: PwProfile, workdir: Path) -> PwOutput:
    """Run one SCF in ``workdir`` and return its parsed output; raise a :class:`DFTError` on any failure.

    An SCF stopped cleanly there before (:func:`request_stop`) with the same input is resumed, not restarted;
    a run stopped now raises :class:`DFTStoppedError`."""
    validate_structure(atoms, settings)
    workdir = Path(workdir)
    _, resumed = write_pw_input(atoms, settings, workdir)
    cmd = profile.command("pw.in")
    env = {**os.environ, **profile.environment()}
    out_path = workdir / "pw.out"
    try:
        with open(out_path, "w") as out, open(workdir / "pw.err", "w") as err:
            proc = subprocess.run(cmd, cwd=workdir, stdout=out, stderr=err, env=env, timeout=profile.timeout)
    except subprocess.TimeoutExpired:
        raise DFTTimeoutError(
            f"pw.x ran past {profile.timeout} s in {workdir}: raise profile.timeout or use more ranks"
        ) from None
    text = out_path.read_text(errors="replace")
    if _was_stopped(text):
        raise DFTStoppedError(f"pw.x was stopped on request in {workdir}: run the same job again to resume it")
    if "convergence NOT achieved" in text:  # pw.x 6.7 exits 2 here, after printing JOB DONE
        raise DFTNotConvergedError(
            f"pw.x SCF did not converge in {workdir}: raise dft.electron_maxstep, lower dft.mixing_beta, "
            "or check the structure"
        )
    if proc.returncode != 0 or "JOB DONE" not in text:
        crash = workdir / "CRASH"
        detail = crash.read_text(errors="replace")[-1500:] if crash.is_file() else text[-1500:]
        raise DFTCrashError(f"pw.x failed (exit {proc.returncode}) in {workdir}:\n{detail.strip()}")
    try:
        check_converged(text)
        parsed = parse_pw_output(text, len(atoms))
    except DFTNotConvergedError as e:
        raise DFTNotConvergedError(
            f"{e} in {workdir}: raise dft.electron_maxstep, lower dft.mixing_beta, or check the structure"
        ) from None
    except DFTParseError as e:
        raise DFTParseError(f"{e} ({out_path})") from None
    if resumed and parsed.wall_time is not None:  # the wall time of the whole SCF, all its parts
        before = [parse_wall_time(p.read_text(errors="replace")) for p in workdir.glob("pw.out.stopped*")]
        parsed = dataclasses.replace(parsed, wall_time=parsed.wall_time + sum(t or 0.0 for t in before))
    return parsed
