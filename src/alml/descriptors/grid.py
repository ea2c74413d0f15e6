"""QE's dense FFT grid, and the LAMMPS jobs that put bispectrum descriptors on it.

Layout. Point (i, j, k) of an (nx, ny, nz) grid sits at fractional coordinates (i/nx, j/ny, k/nz) of the
cell, i.e. at i/nx·a + j/ny·b + k/nz·c (Å), with (0, 0, 0) at the cell origin. That is QE's dense FFT grid
(and the order of pp.x cube files), so descriptors and LDOS line up point for point. LAMMPS's
``compute sna/grid/local`` uses the same points (first point at the box origin, steps of 1/n along each
lattice vector, also for triclinic boxes) once the cell is mapped to a LAMMPS box by
:func:`~alml.descriptors.lammps_session.lammps_box`.

Self term. A grid point is treated as a central atom (of element 1) with the usual unit self
contribution; an atom closer than 1e-10 Å to the point is skipped (LAMMPS's ``rsq > 1e-20`` test).
So the grid descriptor at an atom's site equals that atom's per-atom descriptor (for one element, or
equal radii), but an atom a hair away from a grid point adds its full weight: the grid descriptor
jumps there (by w_j·U(0), the same size as the self term).

Jobs. A :class:`GridJob` is one ``compute sna/grid/local`` on a periodic box. It runs in this process
(:func:`start_grid_job` in an open :class:`~alml.descriptors.lammps_session.LammpsSession`) or under
``mpiexec`` (the ``mpich`` wheel's) with ``processors 1 1 P``, each rank computing the points of its slab
along c (:func:`run_mpi_jobs`, ranks in :mod:`alml.descriptors._mpi_worker`). The engine that cuts a grid
into jobs of bounded memory is :mod:`alml.descriptors.grid_blocks`.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from alml.descriptors.lammps_session import LammpsSession, mpiexec_path
from alml.descriptors.settings import BispectrumSettings

# --- QE's dense FFT grid ------------------------------------------------------------------------


def _good_fft_size(n: int) -> int:
    """Smallest m >= n whose prime factors are 2, 3 and 5 only (QE's ``good_fft_order`` with FFTW)."""
    m = max(1, n)
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def qe_fft_shape(cell: np.ndarray, ecutrho: float) -> tuple[int, int, int]:
    """The dense FFT grid pw.x chooses for ``cell`` (rows in Å) and density cutoff ``ecutrho`` (Ry).

    QE: for each lattice vector a_i, n_i = 2·max|m_i| + 1 over the G vectors with |G|² ≤ ecutrho
    (G in 1/Bohr, Ry units), raised to the next size with factors 2, 3, 5 only.
    """
    from alml.units import BOHR

    cell_bohr = np.asarray(cell, dtype=float) / BOHR
    recip = 2.0 * np.pi * np.linalg.inv(cell_bohr).T  # rows b_i, b_i·a_j = 2π δ_ij
    gmax = math.sqrt(ecutrho)
    bound = [int(gmax * np.linalg.norm(a) / (2.0 * np.pi)) + 1 for a in cell_bohr]
    m2 = np.arange(-bound[1], bound[1] + 1)
    m3 = np.arange(-bound[2], bound[2] + 1)
    g23 = (m2[:, None, None] * recip[1] + m3[None, :, None] * recip[2]).reshape(-1, 3)
    i23 = np.stack(np.meshgrid(m2, m3, indexing="ij"), axis=-1).reshape(-1, 2)
    nmax = [0, 0, 0]
    tol = ecutrho * (1.0 + 1e-12)
    for m1 in range(-bound[0], bound[0] + 1):
        g = g23 + m1 * recip[0]
        inside = np.einsum("pa,pa->p", g, g) <= tol
        if inside.any():
            nmax[0] = max(nmax[0], abs(m1))
            nmax[1] = max(nmax[1], int(np.abs(i23[inside, 0]).max()))
            nmax[2] = max(nmax[2], int(np.abs(i23[inside, 1]).max()))
    return tuple(_good_fft_size(2 * m + 1) for m in nmax)  # type: ignore[return-value]


def grid_points(cell: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Cartesian positions (nx, ny, nz, 3) in Å of the grid points, point (i,j,k) at (i/nx, j/ny, k/nz)."""
    axes = [np.arange(n) / n for n in shape]
    frac = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    return frac @ np.asarray(cell, dtype=float)


# --- jobs: one LAMMPS box and its grid -----------------------------------------------------------


@dataclass(frozen=True)
class GridJob:
    """One LAMMPS grid evaluation: box ``h`` (LAMMPS frame, rows), atoms in that frame, grid (nx, ny, nz)."""

    h: np.ndarray
    positions: np.ndarray
    types: np.ndarray
    ntypes: int
    grid: tuple[int, int, int]
    sna_args: str
    ghost_cutoff: float

    def to_npz(self, path: Path) -> None:
        np.savez(
            path,
            h=self.h,
            positions=self.positions,
            types=self.types,
            ntypes=self.ntypes,
            grid=np.array(self.grid),
            sna_args=self.sna_args,
            ghost_cutoff=self.ghost_cutoff,
        )

    @classmethod
    def from_npz(cls, path: Path) -> GridJob:
        z = np.load(path)
        return cls(
            h=z["h"],
            positions=z["positions"],
            types=z["types"],
            ntypes=int(z["ntypes"]),
            grid=tuple(int(v) for v in z["grid"]),  # type: ignore[arg-type]
            sna_args=str(z["sna_args"]),
            ghost_cutoff=float(z["ghost_cutoff"]),
        )


def _sna_args(settings: BispectrumSettings) -> str:
    return f"{settings.sna_args()} quadraticflag {int(settings.quadraticflag)}"


def start_grid_job(job: GridJob, session: LammpsSession, processors: tuple[int, int, int] | None = None) -> np.ndarray:
    """Run ``job`` in an open session; return a view of this rank's LAMMPS rows (M, 6 + K): i, j, k, x, y, z, B.

    The view lives in LAMMPS's memory and is valid until the session's next command.
    """
    from alml.descriptors.lammps_session import LammpsBox

    box = LammpsBox(h=job.h, rotation=np.eye(3), pbc=(True, True, True))
    session.clear()
    session.create_system(
        box, job.positions, job.types, job.ntypes, ghost_cutoff=job.ghost_cutoff, processors=processors
    )
    nx, ny, nz = job.grid
    session.command(f"compute alml_g all sna/grid/local grid {nx} {ny} {nz} {job.sna_args}")
    session.run0()
    return session.local_array("alml_g", copy=False)


def run_grid_job(job: GridJob, session: LammpsSession, processors: tuple[int, int, int] | None = None) -> np.ndarray:
    """Run ``job`` in an open session; return a copy of this rank's rows (M, 3 + K) = (i, j, k, B...)."""
    a = start_grid_job(job, session, processors)
    if a.size == 0:
        return np.zeros((0, 3))
    return np.concatenate([a[:, 0:3], a[:, 6:]], axis=1)


# --- executing jobs ---------------------------------------------------------------------------


def _worker_command(job_path: Path, outdir: Path, nprocs: int) -> list[str]:
    worker = [sys.executable, "-m", "alml.descriptors._mpi_worker", str(job_path), str(outdir), str(nprocs)]
    return [str(mpiexec_path()), "-n", str(nprocs), *worker]


def run_mpi_jobs(jobs: list[GridJob], nprocs: int) -> Iterator[list[np.ndarray]]:
    """Run each job under ``mpiexec -n P`` (P = ``nprocs``, at most the job's planes along c), one at a time.

    Yields, in job order, each job's per-rank rows (i, j, k, B...) memory-mapped read-only, so a caller can
    consume them piecewise; they stay valid until the next job is requested.
    """
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory(prefix="alml-grid-") as tmp:
        for n, job in enumerate(jobs):
            d = Path(tmp) / f"job{n}"
            d.mkdir()
            job.to_npz(d / "job.npz")
            ranks = max(1, min(nprocs, job.grid[2]))
            cmd = _worker_command(d / "job.npz", d, ranks)
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            missing = [r for r in range(ranks) if not (d / f"rank{r}.npy").exists()]
            if proc.returncode != 0 or missing:
                raise RuntimeError(
                    f"grid worker failed ({' '.join(cmd)}), exit {proc.returncode}, no output from ranks {missing}:"
                    f"\n{proc.stderr[-4000:]}"
                )
            yield [np.load(d / f"rank{r}.npy", mmap_mode="r") for r in range(ranks)]
            for f in d.iterdir():  # this job's rows are consumed: free the disk before the next job
                f.unlink()


def check_grid_request(atoms: Atoms, shape: Sequence[int], workers: int) -> tuple[int, int, int]:
    """The grid shape as three ints; ValueError for a bad shape, a non-periodic cell or workers < 1."""
    out = tuple(int(v) for v in shape)
    if len(out) != 3 or min(out) < 1:
        raise ValueError(f"grid shape must be three positive integers, got {out}")
    if not all(atoms.pbc):
        raise ValueError("grid descriptors need a periodic cell (pbc all True), like the DFT grid")
    if workers < 1:
        raise ValueError("workers must be >= 1")
    return out  # type: ignore[return-value]
