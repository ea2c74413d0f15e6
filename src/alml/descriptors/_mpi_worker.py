"""MPI rank entry point: ``mpiexec -n P python -m alml.descriptors._mpi_worker JOB.npz OUTDIR [P]``.

Every rank reads the same :class:`~alml.descriptors.grid.GridJob`, LAMMPS splits the box into P slabs
along c (``processors 1 1 P``), and each rank writes its own points to ``OUTDIR/rank<r>.npy``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(argv: list[str]) -> int:
    from alml.descriptors.grid import GridJob, run_grid_job
    from alml.descriptors.lammps_session import LammpsSession

    job = GridJob.from_npz(Path(argv[0]))
    outdir = Path(argv[1])
    expected = int(argv[2]) if len(argv) > 2 else None
    with LammpsSession() as s:
        if expected is not None and s.nprocs != expected:
            print(f"alml grid worker: MPI world has {s.nprocs} rank(s), expected {expected}", file=sys.stderr)
            return 3
        rows = run_grid_job(job, s, processors=(1, 1, s.nprocs))
        tmp = outdir / f".rank{s.rank}.npy"
        np.save(tmp, rows)
        tmp.rename(outdir / f"rank{s.rank}.npy")
        # MPI_Finalize before exiting: otherwise the launcher kills ranks still writing when rank 0 exits
        s.finalize_mpi()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
