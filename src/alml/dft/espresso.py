"""Run pw.x on one structure: write the input (ASE's Espresso writer), launch, check, parse.

This module knows nothing about caching; :mod:`alml.dft.tasks` adds hashed, reusable work directories.
"""

from __future__ import annotations

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
    DFTTimeoutError,
)
from alml.dft.parse import PwOutput, check_converged, parse_pw_output
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


def write_pw_input(atoms: Atoms, settings: DFTSettings, workdir: Path) -> Path:
    """Write ``pw.in`` and copy the pseudopotentials into ``workdir/pseudo``; return the input path."""
    workdir.mkdir(parents=True, exist_ok=True)
    pdir = workdir / "pseudo"
    pdir.mkdir(exist_ok=True)
    pseudos: dict[str, str] = {}
    for sym in sorted(set(atoms.get_chemical_symbols())):
        src = pseudopotential(sym, settings.pseudopotentials)
        shutil.copy(src, pdir / src.name)
        pseudos[sym] = src.name
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
        },
        "electrons": {
            "conv_thr": settings.conv_thr_per_atom * len(atoms),
            "mixing_beta": settings.mixing_beta,
            "electron_maxstep": settings.electron_maxstep,
        },
    }
    kpts = None if settings.gamma_only else kpoint_grid(atoms, settings.kspacing)
    path = workdir / "pw.in"
    with open(path, "w") as fd:
        write_espresso_in(fd, atoms, input_data=input_data, pseudopotentials=pseudos, kpts=kpts)
    return path


def run_pw(atoms: Atoms, settings: DFTSettings, profile: PwProfile, workdir: Path) -> PwOutput:
    """Run one SCF in ``workdir`` and return its parsed output; raise a :class:`DFTError` on any failure."""
    validate_structure(atoms, settings)
    workdir = Path(workdir)
    write_pw_input(atoms, settings, workdir)
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
        return parse_pw_output(text, len(atoms))
    except DFTNotConvergedError as e:
        raise DFTNotConvergedError(
            f"{e} in {workdir}: raise dft.electron_maxstep, lower dft.mixing_beta, or check the structure"
        ) from None
    except DFTParseError as e:
        raise DFTParseError(f"{e} ({out_path})") from None
