"""Bispectrum descriptors on a real-space grid laid out like Quantum ESPRESSO's FFT grid.

Layout. ``on_grid`` returns an array of shape (nx, ny, nz, K) whose point (i, j, k) sits at
fractional coordinates (i/nx, j/ny, k/nz) of the cell, i.e. at i/nx·a + j/ny·b + k/nz·c (Å), with
(0, 0, 0) at the cell origin. That is QE's dense FFT grid (and the order of pp.x cube files), so
descriptors and LDOS line up point for point. LAMMPS's ``compute sna/grid/local`` uses the same
points (first point at the box origin, steps of 1/n along each lattice vector, also for triclinic
boxes) once the cell is mapped to a LAMMPS box by :func:`~alml.descriptors.lammps_session.lammps_box`.

Self term. A grid point is treated as a central atom (of element 1) with the usual unit self
contribution; an atom closer than 1e-10 Å to the point is skipped (LAMMPS's ``rsq > 1e-20`` test).
So the grid descriptor at an atom's site equals that atom's per-atom descriptor (for one element, or
equal radii), but an atom a hair away from a grid point adds its full weight: the grid descriptor
jumps there (by w_j·U(0), the same size as the self term).

Slabs. The grid is cut into slabs along the third axis (k). A slab smaller than the whole grid is
computed in a *window* box: the cell's a and b, and along c only the slab plus ``pad`` layers on each
side (pad·Δ ≥ cutoff, Δ the layer spacing along the cell height), made periodic with that window's
length. Its fake periodic images lie farther than the cutoff from every point of the slab, so the
slab's values are exact; the pad layers are computed and discarded, which costs (t + 2·pad)/t for a
slab of t layers. Without ``max_points_per_chunk`` (and with MPI) there is one slab: the whole cell.
:mod:`alml.descriptors.grid_blocks` bounds memory without that overhead (interleaved sub-grids of the whole
cell); prediction uses it.

Parallel. ``workers > 1`` runs LAMMPS under ``mpiexec`` (the ``mpich`` wheel's) with ``processors 1 1 P``:
each rank owns a slab of the box and computes only its own points (no pad). ``parallel="processes"``
instead computes window slabs in separate single-rank processes; measured slower (see
docs/benchmarks.md), kept for comparison and for machines without a working MPI launcher.

Values are float64 from LAMMPS; ``dtype`` (default float64) sets the returned array's type.
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
from typing import Literal

import numpy as np
from ase import Atoms

from alml.descriptors.lammps_session import LammpsSession, lammps_box, mpiexec_path, wrapped_fractional
from alml.descriptors.peratom import atom_types
from alml.descriptors.settings import BispectrumSettings

Parallel = Literal["mpi", "processes"]


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


# --- jobs: one LAMMPS box (the cell or a window) and the layers to keep ---------------------------


@dataclass(frozen=True)
class GridJob:
    """One LAMMPS grid evaluation: box ``h`` (LAMMPS frame), atoms, grid (nx, ny, nw); keep k in [pad, pad+nk)."""

    h: np.ndarray
    positions: np.ndarray
    types: np.ndarray
    ntypes: int
    grid: tuple[int, int, int]
    pad: int
    nk: int
    k0: int
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
            pad=self.pad,
            nk=self.nk,
            k0=self.k0,
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
            grid=tuple(int(v) for v in z["grid"]),
            pad=int(z["pad"]),
            nk=int(z["nk"]),
            k0=int(z["k0"]),  # type: ignore[arg-type]
            sna_args=str(z["sna_args"]),
            ghost_cutoff=float(z["ghost_cutoff"]),
        )


def _sna_args(settings: BispectrumSettings) -> str:
    return f"{settings.sna_args()} quadraticflag {int(settings.quadraticflag)}"


def _pad_layers(cell: np.ndarray, nz: int, cutoff: float) -> int:
    """Layers along c whose total thickness (along the cell height) is at least ``cutoff``."""
    cell = np.asarray(cell, dtype=float)
    height = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[0], cell[1]))
    return int(math.ceil(cutoff * nz / height * (1.0 + 1e-9))) + 1


def _job(atoms: Atoms, settings: BispectrumSettings, shape: tuple[int, int, int], k0: int, k1: int) -> GridJob:
    """Job for layers k0 <= k < k1: the whole cell when that is all layers, else a window box."""
    nx, ny, nz = shape
    cell = np.asarray(atoms.cell[:], dtype=float)
    box = lammps_box(cell, (True, True, True))
    frac = wrapped_fractional(cell, atoms.positions, (True, True, True))
    types = atom_types(atoms, settings)
    common = dict(ntypes=len(settings.elements), sna_args=_sna_args(settings), ghost_cutoff=settings.max_cutoff)
    if k0 == 0 and k1 == nz:
        return GridJob(h=box.h, positions=box.to_lammps(frac), types=types, grid=shape, pad=0, nk=nz, k0=0, **common)
    pad = _pad_layers(cell, nz, settings.max_cutoff)
    lo, nw = k0 - pad, (k1 - k0) + 2 * pad
    # every image along c whose fractional c lies in [lo/nz, (lo+nw)/nz)
    m_lo = math.floor(lo / nz) - 1
    m_hi = math.ceil((lo + nw) / nz) + 1
    fr, ty = [], []
    for m in range(m_lo, m_hi + 1):
        fc = frac[:, 2] + m
        w = (fc * nz - lo) / nw  # window coordinate along c, [0, 1) inside
        sel = (w >= 0.0) & (w < 1.0)
        if sel.any():
            fr.append(np.column_stack([frac[sel, 0], frac[sel, 1], w[sel]]))
            ty.append(types[sel])
    h = box.h.copy()
    h[2] *= nw / nz
    positions = np.concatenate(fr) @ h if fr else np.zeros((0, 3))
    types_w = np.concatenate(ty) if ty else np.zeros(0, np.int64)
    return GridJob(h=h, positions=positions, types=types_w, grid=(nx, ny, nw), pad=pad, nk=k1 - k0, k0=k0, **common)


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
    nx, ny, nw = job.grid
    session.command(f"compute alml_g all sna/grid/local grid {nx} {ny} {nw} {job.sna_args}")
    session.run0()
    return session.local_array("alml_g", copy=False)


def run_grid_job(job: GridJob, session: LammpsSession, processors: tuple[int, int, int] | None = None) -> np.ndarray:
    """Run ``job`` in an open session; return this rank's kept rows: (M, 3 + K) = (i, j, k_global, B...)."""
    a = start_grid_job(job, session, processors)
    if a.size == 0:
        return np.zeros((0, 3))
    iz = a[:, 2].astype(np.int64)
    keep = (iz >= job.pad) & (iz < job.pad + job.nk)
    out = np.empty((int(keep.sum()), a.shape[1] - 3))
    out[:, 0:2] = a[keep, 0:2]
    out[:, 2] = iz[keep] - job.pad + job.k0
    out[:, 3:] = a[keep, 6:]
    return out


# --- executing jobs ---------------------------------------------------------------------------


def _run_in_process(job: GridJob) -> np.ndarray:
    with LammpsSession() as s:
        return run_grid_job(job, s)


def _worker_command(job_path: Path, outdir: Path, nprocs: int, mpi: bool) -> list[str]:
    worker = [sys.executable, "-m", "alml.descriptors._mpi_worker", str(job_path), str(outdir), str(nprocs)]
    return [str(mpiexec_path()), "-n", str(nprocs), *worker] if mpi else worker


def _run_subprocesses(
    jobs: list[GridJob], nprocs: int, mpi: bool, concurrent: int, mmap: bool = False
) -> Iterator[list[np.ndarray]]:
    """Run each job in a child process (``mpiexec -n nprocs`` when ``mpi``), ``concurrent`` at a time.

    Yields, in job order, the list of per-rank row arrays of each job (memory-mapped read-only when ``mmap``,
    so a caller can consume them piecewise; valid until the next job is requested).
    """
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory(prefix="alml-grid-") as tmp:
        running: dict[int, tuple[subprocess.Popen, list[str]]] = {}
        dirs = []
        for n, job in enumerate(jobs):
            d = Path(tmp) / f"job{n}"
            d.mkdir()
            job.to_npz(d / "job.npz")
            dirs.append(d)
        nranks = [max(1, min(nprocs, job.grid[2])) if mpi else 1 for job in jobs]
        next_job = 0
        for n in range(len(jobs)):
            while next_job < len(jobs) and len(running) < concurrent:
                cmd = _worker_command(dirs[next_job] / "job.npz", dirs[next_job], nranks[next_job], mpi)
                running[next_job] = (
                    subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env),
                    cmd,
                )
                next_job += 1
            proc, cmd = running.pop(n)
            _, err = proc.communicate()
            missing = [r for r in range(nranks[n]) if not (dirs[n] / f"rank{r}.npy").exists()]
            if proc.returncode != 0 or missing:
                for other, _c in running.values():
                    other.kill()
                raise RuntimeError(
                    f"grid worker failed ({' '.join(cmd)}), exit {proc.returncode}, no output from ranks {missing}:"
                    f"\n{err[-4000:]}"
                )
            yield [np.load(dirs[n] / f"rank{r}.npy", mmap_mode="r" if mmap else None) for r in range(nranks[n])]


def _slabs(shape: tuple[int, int, int], n: int) -> list[tuple[int, int]]:
    nz = shape[2]
    n = max(1, min(n, nz))
    edges = np.linspace(0, nz, n + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


@dataclass(frozen=True)
class GridSlab:
    """Descriptors of layers k0 <= k < k1: ``values`` (nx, ny, k1 - k0, K)."""

    k0: int
    k1: int
    values: np.ndarray


def _to_slab(
    rows_list: list[np.ndarray], shape: tuple[int, int, int], k0: int, k1: int, ncomp: int, dtype: np.dtype
) -> GridSlab:
    nx, ny, _ = shape
    out = np.empty((nx, ny, k1 - k0, ncomp), dtype=dtype)
    filled = 0
    for rows in rows_list:
        if rows.size == 0:
            continue
        ix, iy, iz = (rows[:, c].astype(np.int64) for c in range(3))
        out[ix, iy, iz - k0] = rows[:, 3:]
        filled += len(rows)
    if filled != nx * ny * (k1 - k0):
        raise RuntimeError(f"LAMMPS returned {filled} grid points for a slab of {nx * ny * (k1 - k0)}")
    return GridSlab(k0=k0, k1=k1, values=out)


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


def iter_grid_slabs(
    atoms: Atoms,
    settings: BispectrumSettings,
    shape: tuple[int, int, int],
    *,
    workers: int = 1,
    max_points_per_chunk: int | None = None,
    dtype: np.dtype | type = np.float64,
    parallel: Parallel = "mpi",
) -> Iterator[GridSlab]:
    """Compute the grid slab by slab (along k), yielding each as soon as it is done; see :func:`on_grid`."""
    shape = check_grid_request(atoms, shape, workers)
    nx, ny, nz = shape
    n_slabs = 1
    if max_points_per_chunk is not None:
        if max_points_per_chunk < nx * ny:
            raise ValueError(f"max_points_per_chunk must hold at least one layer ({nx * ny} points)")
        n_slabs = math.ceil(nx * ny * nz / max_points_per_chunk)
    if parallel == "processes" and workers > 1:
        n_slabs = max(n_slabs, workers)
    slabs = _slabs(shape, n_slabs)
    ncomp = settings.n_components
    dt = np.dtype(dtype)
    if workers == 1:
        for k0, k1 in slabs:
            rows = _run_in_process(_job(atoms, settings, shape, k0, k1))
            yield _to_slab([rows], shape, k0, k1, ncomp, dt)
        return
    if parallel not in ("mpi", "processes"):
        raise ValueError(f"parallel must be 'mpi' or 'processes', got {parallel!r}")
    mpi = parallel == "mpi"
    jobs = [_job(atoms, settings, shape, k0, k1) for k0, k1 in slabs]
    results = _run_subprocesses(jobs, workers if mpi else 1, mpi=mpi, concurrent=1 if mpi else workers)
    for (k0, k1), rows_list in zip(slabs, results, strict=True):
        yield _to_slab(rows_list, shape, k0, k1, ncomp, dt)


def on_grid(
    atoms: Atoms,
    settings: BispectrumSettings,
    shape: tuple[int, int, int],
    *,
    workers: int = 1,
    max_points_per_chunk: int | None = None,
    dtype: np.dtype | type = np.float64,
    parallel: Parallel = "mpi",
) -> np.ndarray:
    """Bispectrum descriptors on the (nx, ny, nz) grid of the cell: array (nx, ny, nz, K) of ``dtype``.

    Point (i, j, k) is at fractional (i/nx, j/ny, k/nz) (QE's FFT order). ``max_points_per_chunk``
    bounds the points per slab (LAMMPS then holds ≈ (t + 2·pad)/t × that many rows of K + 6 doubles);
    ``workers`` > 1 uses that many MPI ranks (``parallel="mpi"``) or processes (``"processes"``).
    """
    nx, ny, nz = (int(v) for v in shape)
    out = np.empty((nx, ny, nz, settings.n_components), dtype=np.dtype(dtype))
    for slab in iter_grid_slabs(
        atoms,
        settings,
        (nx, ny, nz),
        workers=workers,
        max_points_per_chunk=max_points_per_chunk,
        dtype=dtype,
        parallel=parallel,
    ):
        out[:, :, slab.k0 : slab.k1] = slab.values
    return out
