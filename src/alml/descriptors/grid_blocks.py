"""Bispectrum descriptors on the grid, in interleaved blocks: bounded memory at any cell size, no wasted work.

:func:`on_grid` returns the whole (nx, ny, nz, K) array (layout and self-term convention:
:mod:`alml.descriptors.grid`); :func:`iter_grid_blocks` yields it block by block for callers that stream.

Blocks. The grid (nx, ny, nz), point (i, j, k) at fractional (i/nx, j/ny, k/nz), is the union of
s = sx·sy·sz interleaved coarse grids (mx, my, mz) = (nx/sx, ny/sy, nz/sz): the block of phase (p, q, r)
holds the points (p + sx·i', q + sy·j', r + sz·k'). Each block is one LAMMPS ``compute sna/grid/local`` with
grid (mx, my, mz) on the *whole periodic cell*, after translating every atom by −(p/nx·a + q/ny·b + r/nz·c):
coarse point (i', j', k') of the shifted problem then sees exactly the neighbourhood of full-grid point
(p + sx·i', q + sy·j', r + sz·k'). No point is computed twice and nothing is padded, and LAMMPS's array for
one block is (N/s)·(K + 6) doubles for N points. Strides (1, 1, 1), the default without a point budget, are
one job on the whole cell.

Self term. Distances are unchanged by the common translation, so the convention holds in every block: an
atom within 1e-10 Å of a grid point is skipped (tested with atoms placed on grid points of several blocks).

Cost. LAMMPS's grid compute scans every owned and ghost atom for each grid point; on the whole cell (one
rank) that is ≈ N_atoms·(1 + ghost shell) distance checks per point: at most ~6 % of the cost at 2J = 10
and 4000 atoms, but most of it at 2J = 2 (docs/benchmarks.md). ``workers`` MPI ranks split the cell along c (each scans
only its slab and ghosts).

Layout of a block. ``data`` is (mz, my, mx, K), LAMMPS's own order (i' fastest); ``values`` is the
(mx, my, mz, K) view that goes to ``full[p::sx, q::sy, r::sz]``; ``rows`` is the flat (mx·my·mz, K) view.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from alml.descriptors.grid import GridJob, _sna_args, check_grid_request, run_mpi_jobs, start_grid_job
from alml.descriptors.lammps_session import LammpsSession, lammps_box, wrapped_fractional
from alml.descriptors.peratom import atom_types
from alml.descriptors.settings import BispectrumSettings

Shape = tuple[int, int, int]
_ROWS = 1 << 16  #: LAMMPS rows copied per step (bounds temporaries)


@dataclass(frozen=True)
class GridBlock:
    """Descriptors of the interleaved block of ``phase`` (p, q, r) and ``strides`` (sx, sy, sz).

    ``data``: (mz, my, mx, K), point (k', j', i') at full-grid (p + sx·i', q + sy·j', r + sz·k').
    """

    phase: Shape
    strides: Shape
    data: np.ndarray

    @property
    def values(self) -> np.ndarray:
        """(mx, my, mz, K) view: ``full[block.index] = block.values``."""
        return self.data.transpose(2, 1, 0, 3)

    @property
    def rows(self) -> np.ndarray:
        """(mx·my·mz, K) view, i' fastest, then j', then k'."""
        return self.data.reshape(-1, self.data.shape[3])

    @property
    def index(self) -> tuple[slice, slice, slice]:
        """The full grid's points of this block: ``(slice(p, None, sx), slice(q, None, sy), slice(r, None, sz))``."""
        return tuple(slice(p, None, s) for p, s in zip(self.phase, self.strides, strict=True))  # type: ignore[return-value]

    @property
    def coarse_shape(self) -> Shape:
        mz, my, mx = self.data.shape[:3]
        return (mx, my, mz)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def check_strides(shape: Shape, strides: Shape) -> Shape:
    """``strides`` as ints after checking each divides its grid dimension; ValueError naming the fix otherwise."""
    strides = tuple(int(s) for s in strides)  # type: ignore[assignment]
    if len(strides) != 3:
        raise ValueError(f"strides must be three integers (sx, sy, sz), got {strides}")
    for axis, (n, s) in enumerate(zip(shape, strides, strict=True)):
        if s < 1 or n % s:
            raise ValueError(
                f"stride {s} along axis {axis} does not divide the grid dimension {n} (grid {tuple(shape)}): "
                f"interleaved blocks need a divisor of {n}, one of {_divisors(n)}"
            )
    return strides


def choose_strides(shape: Shape, max_points_per_block: int | None, workers: int = 1) -> Shape:
    """Fewest blocks (s = sx·sy·sz, each a divisor) with at most ``max_points_per_block`` points each.

    Ties prefer coarse grids with at least ``workers`` planes along c (each MPI rank gets a slab), then strides
    along c, then b: a block of whole k-planes writes whole HDF5 chunks of the (nx, ny, 1)-chunked grid files.
    None: one block, the whole grid.
    """
    nx, ny, nz = shape
    total = nx * ny * nz
    if max_points_per_block is None or max_points_per_block >= total:
        return (1, 1, 1)
    if max_points_per_block < 1:
        raise ValueError(f"max_points_per_block must be >= 1, got {max_points_per_block}")
    need = math.ceil(total / max_points_per_block)
    best: tuple[tuple[int, bool, int, int], Shape] | None = None
    for sx, sy, sz in itertools.product(_divisors(nx), _divisors(ny), _divisors(nz)):
        s = sx * sy * sz
        if s < need:
            continue
        key = (s, nz // sz < workers, -sz, -sy)
        if best is None or key < best[0]:
            best = (key, (sx, sy, sz))
    assert best is not None  # s = total always qualifies
    return best[1]


def block_phases(strides: Shape) -> list[Shape]:
    """The phases (p, q, r) of the blocks of ``strides``, in the order :func:`iter_grid_blocks` yields them."""
    return list(itertools.product(*(range(int(s)) for s in strides)))  # type: ignore[arg-type]


def block_bytes_per_point(n_components: int, dtype: np.dtype | type = np.float32, workers: int = 1) -> int:
    """Peak bytes per grid point of one block: LAMMPS's rows (K + 6 doubles), the returned block (K of ``dtype``)
    and, with MPI ranks, each rank's kept rows (K + 3 doubles) before they are written."""
    k = int(n_components)
    per = 8 * (k + 6) + np.dtype(dtype).itemsize * k
    return per + (8 * (k + 3) if workers > 1 else 0)


def block_job(atoms: Atoms, settings: BispectrumSettings, shape: Shape, strides: Shape, phase: Shape) -> GridJob:
    """The LAMMPS job of one block: the whole cell, atoms translated by −Σ phase_d/n_d·a_d, the coarse grid."""
    cell = np.asarray(atoms.cell[:], dtype=float)
    box = lammps_box(cell, (True, True, True))
    frac = wrapped_fractional(cell, atoms.positions, (True, True, True))
    frac = frac - np.asarray(phase, dtype=float) / np.asarray(shape, dtype=float)
    frac -= np.floor(frac)
    frac[frac >= 1.0] = 0.0
    coarse = tuple(n // s for n, s in zip(shape, strides, strict=True))
    return GridJob(
        h=box.h, positions=box.to_lammps(frac), types=atom_types(atoms, settings), ntypes=len(settings.elements),
        grid=coarse, sna_args=_sna_args(settings),  # type: ignore[arg-type]
        ghost_cutoff=settings.max_cutoff,
    )


def _scatter(rows: np.ndarray, out: np.ndarray, first: int) -> int:
    """Copy LAMMPS-style rows (i, j, k, ..., B from column ``first``) into ``out`` (mz, my, mx, K) in steps."""
    for r0 in range(0, len(rows), _ROWS):
        part = rows[r0 : r0 + _ROWS]
        ix, iy, iz = (np.asarray(part[:, c]).astype(np.int64) for c in range(3))
        out[iz, iy, ix] = part[:, first:]
    return len(rows)


def _check_filled(filled: int, out: np.ndarray) -> None:
    n = int(np.prod(out.shape[:3]))
    if filled != n:
        raise RuntimeError(f"LAMMPS returned {filled} grid points for a block of {n}")


def _block_in_process(job: GridJob, ncomp: int, dtype: np.dtype) -> np.ndarray:
    mx, my, mz = job.grid
    out = np.empty((mz, my, mx, ncomp), dtype=dtype)
    with LammpsSession() as s:
        view = start_grid_job(job, s)
        _check_filled(_scatter(view, out, 6) if view.size else 0, out)
    return out


def iter_grid_blocks(
    atoms: Atoms,
    settings: BispectrumSettings,
    shape: Shape,
    *,
    max_points_per_block: int | None = None,
    strides: Shape | None = None,
    workers: int = 1,
    dtype: np.dtype | type = np.float64,
) -> Iterator[GridBlock]:
    """Bispectrum descriptors on the (nx, ny, nz) grid, one interleaved block at a time (see the module doc).

    ``strides`` (each a divisor of its grid dimension) fixes the blocks; otherwise :func:`choose_strides` picks
    the fewest blocks of at most ``max_points_per_block`` points (None: the whole grid in one block).
    ``workers`` > 1 runs each block under ``mpiexec`` with that many ranks. LAMMPS computes in float64; blocks
    are cast to ``dtype``.
    """
    shape = check_grid_request(atoms, shape, workers)
    st = check_strides(shape, strides) if strides is not None else choose_strides(shape, max_points_per_block, workers)
    phases = block_phases(st)
    ncomp, dt = settings.n_components, np.dtype(dtype)
    if workers == 1:
        for ph in phases:
            job = block_job(atoms, settings, shape, st, ph)  # type: ignore[arg-type]
            yield GridBlock(ph, st, _block_in_process(job, ncomp, dt))  # type: ignore[arg-type]
        return
    jobs = [block_job(atoms, settings, shape, st, ph) for ph in phases]  # type: ignore[arg-type]
    results = run_mpi_jobs(jobs, workers)
    for ph, job, rank_rows in zip(phases, jobs, results, strict=True):
        mx, my, mz = job.grid
        out = np.empty((mz, my, mx, ncomp), dtype=dt)
        _check_filled(sum(_scatter(r, out, 3) for r in rank_rows if r.size), out)
        yield GridBlock(ph, st, out)  # type: ignore[arg-type]


def on_grid(
    atoms: Atoms,
    settings: BispectrumSettings,
    shape: Shape,
    *,
    max_points_per_block: int | None = None,
    strides: Shape | None = None,
    workers: int = 1,
    dtype: np.dtype | type = np.float64,
) -> np.ndarray:
    """Bispectrum descriptors on the (nx, ny, nz) grid of the cell: array (nx, ny, nz, K) of ``dtype``.

    Point (i, j, k) is at fractional (i/nx, j/ny, k/nz) (QE's FFT order). Without ``max_points_per_block`` or
    ``strides`` the grid is one LAMMPS job; otherwise it is assembled from :func:`iter_grid_blocks`.
    ``workers`` > 1 uses that many MPI ranks.
    """
    out = np.empty((*(int(v) for v in shape), settings.n_components), dtype=np.dtype(dtype))
    for b in iter_grid_blocks(
        atoms, settings, shape, max_points_per_block=max_points_per_block, strides=strides, workers=workers,
        dtype=dtype,
    ):
        out[b.index] = b.values
    return out
