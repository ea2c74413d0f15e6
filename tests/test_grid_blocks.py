"""Interleaved grid blocks (alml.descriptors.grid_blocks): every block's values equal the per-atom descriptor of
a probe atom placed on its grid points, reassembled blocks equal the single job, strides are checked, blocks stay
within their point budget, the self-term convention survives the atom shift.

Small band limit (2J = 4, K = 14) and tiny cells keep the file fast on two cores.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from alml.descriptors import (
    BispectrumSettings,
    ElementParams,
    choose_strides,
    grid_points,
    iter_grid_blocks,
    on_grid,
    per_atom,
)
from alml.descriptors.grid_blocks import block_bytes_per_point
from alml.descriptors.lammps_session import mpich_file

S4 = BispectrumSettings(
    twojmax=4, rcutfac=4.2, rfac0=0.99363, bzeroflag=False, elements={"Al": ElementParams(radius=0.5)}
)


def triclinic() -> tuple[Atoms, tuple[int, int, int]]:
    at = bulk("Al", "fcc", a=4.04).repeat((2, 2, 2))  # primitive vectors: triclinic, 8 atoms
    at.rattle(0.05, seed=3)
    return at, (6, 5, 9)


def orthogonal() -> tuple[Atoms, tuple[int, int, int]]:
    at = bulk("Al", "fcc", a=4.04, cubic=True)  # cutoff 4.2 Å > cell: images of self count
    at.rattle(0.1, seed=4)
    return at, (8, 6, 4)


def probe_reference(at: Atoms, shape: tuple[int, int, int], points: list[tuple[int, int, int]]) -> np.ndarray:
    """Descriptors at grid ``points`` computed without the grid code: the per-atom descriptor of one extra atom
    placed on each point, in a 2×2×2 supercell so that the probe's own images lie beyond the cutoff."""
    big = at.repeat((2, 2, 2))
    pts = grid_points(at.cell[:], shape)
    out = []
    for p in points:
        probe = big + Atoms("Al", positions=[pts[p]])
        out.append(per_atom(probe, S4, gradients=False).B[-1])
    return np.array(out)


@pytest.mark.parametrize(
    "make,strides",
    [(triclinic, (1, 1, 1)), (triclinic, (1, 1, 3)), (triclinic, (2, 5, 3)), (triclinic, (6, 5, 9)),
     (orthogonal, (2, 1, 1)), (orthogonal, (4, 3, 2)), (orthogonal, (1, 2, 4))],
)
def test_blocks_equal_probe_atoms_and_reassemble_to_the_single_job(make, strides) -> None:  # noqa: ANN001
    at, shape = make()
    ref = on_grid(at, S4, shape)  # one job on the whole cell
    full = np.full((*shape, S4.n_components), np.nan)
    seen = set()
    for b in iter_grid_blocks(at, S4, shape, strides=strides):
        assert b.strides == strides and b.phase not in seen
        seen.add(b.phase)
        assert b.coarse_shape == tuple(n // s for n, s in zip(shape, strides, strict=True))
        full[b.index] = b.values
        # the flat rows: i' fastest, then j', then k'
        mx, my, _ = b.coarse_shape
        n = np.arange(len(b.rows))
        i, j, k = (b.phase[0] + strides[0] * (n % mx), b.phase[1] + strides[1] * ((n // mx) % my),
                   b.phase[2] + strides[2] * (n // (mx * my)))
        assert np.array_equal(b.rows, full[i, j, k])
    assert len(seen) == np.prod(strides)
    assert np.allclose(full, ref, rtol=0, atol=1e-10)
    # an independent reference at the first and last point of a few blocks
    last = tuple(n - 1 for n in shape)
    points = [(0, 0, 0), last, tuple(min(s, n - 1) for s, n in zip(strides, shape, strict=True))]
    assert np.allclose(full[tuple(np.array(points).T)], probe_reference(at, shape, points), rtol=1e-9, atol=1e-9)


def test_strides_must_divide_the_grid() -> None:
    at, shape = triclinic()
    with pytest.raises(ValueError, match=r"stride 4 along axis 1 does not divide the grid dimension 5.*\[1, 5\]"):
        next(iter_grid_blocks(at, S4, shape, strides=(1, 4, 1)))
    with pytest.raises(ValueError, match="three integers"):
        next(iter_grid_blocks(at, S4, shape, strides=(1, 1)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="periodic"):
        open_at = at.copy()
        open_at.pbc = (True, True, False)
        next(iter_grid_blocks(open_at, S4, shape))
    with pytest.raises(ValueError, match=">= 1"):
        choose_strides(shape, 0)


def test_blocks_stay_within_the_point_budget() -> None:
    at, shape = triclinic()  # 270 points
    assert choose_strides(shape, None) == choose_strides(shape, 270) == (1, 1, 1)
    for budget in (200, 90, 40, 7, 1):
        blocks = list(iter_grid_blocks(at, S4, shape, max_points_per_block=budget, dtype=np.float32))
        s = len(blocks)
        assert all(len(b.rows) == 270 // s <= budget for b in blocks)
        assert all(b.data.dtype == np.float32 and b.data.nbytes == len(b.rows) * S4.n_components * 4 for b in blocks)
        # the fewest blocks: no product of divisors between 270/budget and s
        fewest = min(a * b * c for a in (1, 2, 3, 6) for b in (1, 5) for c in (1, 3, 9) if 270 / (a * b * c) <= budget)
        assert s == fewest
    # QE's 320^3 grid (4000 atoms at 160 Ry): strides along c first, blocks within the budget
    big = (320, 320, 320)
    per_point = block_bytes_per_point(91, np.float32)
    assert per_point == 8 * 97 + 4 * 91
    budget = int(4096 * 2**20 // per_point)
    st = choose_strides(big, budget)
    assert st[:2] == (1, 1) and 320**3 // np.prod(st) <= budget
    assert 320**3 // np.prod(st) * per_point < 4.1e9
    small = choose_strides(big, 320 * 320 // 3)  # a third of a plane: strides along a and b too
    assert 320**3 // np.prod(small) <= 320 * 320 // 3 and small[2] > 1
    assert choose_strides((6, 5, 9), 90, workers=2) == (1, 1, 3)  # 3 planes along c: both ranks get work


def test_self_term_convention_holds_in_shifted_blocks() -> None:
    """Atoms exactly on grid points of different phases: the block value there equals the atom's per-atom
    descriptor (self skipped); an atom 1e-4 Å off its grid point makes the value jump."""
    at = bulk("Al", "fcc", a=4.04, cubic=True)
    shape = (8, 8, 8)
    sites = [(0, 0, 0), (5, 2, 1), (2, 7, 6)]
    pts = grid_points(at.cell[:], shape)
    at.positions = [pts[s] for s in sites] + [at.positions[3] + [0.03, -0.05, 0.02]]
    b_atoms = per_atom(at, S4, gradients=False).B
    g = on_grid(at, S4, shape, strides=(2, 4, 2))
    for n, s in enumerate(sites):
        assert np.allclose(g[s], b_atoms[n], rtol=1e-10, atol=1e-10)
    nudged = at.copy()
    nudged.positions[1] += [1e-4, 0, 0]
    g2 = on_grid(nudged, S4, shape, strides=(2, 4, 2))
    assert np.abs(g2[sites[1]] - g[sites[1]]).max() > 1e3 * np.abs(per_atom(nudged, S4, False).B[1] - b_atoms[1]).max()


@pytest.mark.skipif(mpich_file("mpiexec") is None, reason="mpich wheel's mpiexec not found")
def test_blocks_with_mpi_ranks() -> None:
    at, shape = triclinic()
    ref = on_grid(at, S4, shape)
    assert np.allclose(on_grid(at, S4, shape, strides=(2, 1, 3), workers=2), ref, rtol=0, atol=1e-10)
    assert np.allclose(on_grid(at, S4, shape, max_points_per_block=90, workers=2), ref, rtol=0, atol=1e-10)
