"""Disorder: random packings at a given density, homogeneous strain (given or random), rattling."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from alml.structures.core import _append_source, _fmt, volume_per_atom_for_density

# Random sequential addition of hard spheres jams at a packing fraction of about 0.38 in 3D, so
# insertion is done at most at 0.25 and denser packings are reached by pushing atoms apart. No packing
# of equal spheres is denser than fcc/hcp, pi/(3 sqrt 2) ~ 0.7405: above that it is impossible.
_RSA_EASY_FRACTION = 0.25
_MAX_PACKING_FRACTION = math.pi / (3.0 * math.sqrt(2.0))


def random_packing(
    n: int,
    density: float,
    *,
    element: str = "Al",
    min_dist: float = 2.0,
    seed: int = 0,
    max_iter: int = 5000,
) -> Atoms:
    """``n`` atoms placed at random in a periodic cubic box at mass ``density`` (g/cm³), no two
    (periodic images included) closer than ``min_dist`` Å.

    Atoms are first inserted at random (random sequential addition) at a distance that insertion
    reaches easily; when ``min_dist`` is larger, overlapping pairs are then pushed apart
    (steepest descent on a harmonic overlap penalty) until every distance is at least ``min_dist``.
    Raises ValueError when the request is impossible (box edge below ``min_dist``, or a packing
    fraction of spheres of diameter ``min_dist`` above the close-packed 0.7405), or when the
    push-apart does not converge in ``max_iter`` steps (likely above ~0.6, random close packing).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if min_dist < 0:
        raise ValueError(f"min_dist must be non-negative (Å), got {min_dist}")
    volume = n * volume_per_atom_for_density(element, density)
    edge = volume ** (1.0 / 3.0)

    def d_at(fraction: float) -> float:  # sphere diameter giving a packing fraction
        return (fraction * volume * 6.0 / (math.pi * n)) ** (1.0 / 3.0)

    fraction = n * math.pi / 6.0 * min_dist**3 / volume
    if edge < min_dist or fraction > _MAX_PACKING_FRACTION:
        d_max = min(edge, d_at(_MAX_PACKING_FRACTION))
        raise ValueError(
            f"cannot place {n} {element} atoms at {density} g/cm³ with min_dist {min_dist} Å "
            f"(box edge {edge:.3f} Å, packing fraction {fraction:.2f} of spheres of diameter min_dist; "
            f"no packing exceeds {_MAX_PACKING_FRACTION:.4f}): lower min_dist below {d_max:.2f} Å "
            "(random packings need about 10% less) or lower the density"
        )
    rng = np.random.default_rng(seed)
    d_insert = min(min_dist, d_at(_RSA_EASY_FRACTION))
    pos = np.empty((n, 3))
    placed = 0
    while placed < n:
        for _ in range(100000):
            p = rng.random(3) * edge
            d = pos[:placed] - p
            d -= edge * np.round(d / edge)  # exact minimum image in an orthogonal box
            if placed == 0 or np.einsum("ij,ij->i", d, d).min() >= d_insert**2:
                pos[placed] = p
                placed += 1
                break
        else:  # pragma: no cover - insertion at a packing fraction of 0.25 does not stall
            raise ValueError(f"random insertion stalled after {placed} of {n} atoms; lower min_dist")
    if d_insert < min_dist:
        try:
            pos = _push_apart(pos, edge, min_dist, max_iter)
        except ValueError:
            raise ValueError(
                f"could not push {n} atoms {min_dist} Å apart at {density} g/cm³ in {max_iter} steps "
                f"(packing fraction {fraction:.2f}; random packings jam near 0.64): lower min_dist to "
                f"about {d_at(0.55):.2f} Å or lower the density"
            ) from None
    atoms = Atoms(f"{element}{n}", positions=pos, cell=[edge] * 3, pbc=True)
    atoms.info["source"] = (
        f"random_packing({element},n={n},density={_fmt(density)},min_dist={_fmt(min_dist)},seed={seed})"
    )
    return atoms


def _push_apart(pos: np.ndarray, edge: float, min_dist: float, max_iter: int) -> np.ndarray:
    """Move atoms (N, 3) in a cubic periodic box of ``edge`` Å until all pairs are ≥ ``min_dist`` apart."""
    target = 1.02 * min_dist
    pos = pos.copy()
    for _ in range(max_iter):
        d = pos[:, None, :] - pos[None, :, :]
        d -= edge * np.round(d / edge)
        r = np.sqrt(np.einsum("ijk,ijk->ij", d, d))
        np.fill_diagonal(r, np.inf)
        if r.min() >= min_dist:
            return pos
        overlap = np.clip(target - r, 0.0, None)
        pos = (pos + 0.5 * np.einsum("ij,ijk->ik", overlap / r, d)) % edge
    raise ValueError("push-apart did not converge")


def _strain_tensor(strain: Sequence[float] | Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    eps = np.asarray(strain, dtype=float)
    if eps.shape == (6,):
        xx, yy, zz, yz, xz, xy = eps
        return np.array([[xx, xy / 2, xz / 2], [xy / 2, yy, yz / 2], [xz / 2, yz / 2, zz]])
    if eps.shape == (3, 3):
        if not np.allclose(eps, eps.T):
            raise ValueError("a 3x3 strain must be symmetric (a rotation is not a strain)")
        return eps
    raise ValueError(f"strain must be a 3x3 matrix or a Voigt 6-vector, got shape {eps.shape}")


def strain(atoms: Atoms, strain: Sequence[float] | Sequence[Sequence[float]] | np.ndarray) -> Atoms:
    """Apply a homogeneous small strain: every vector ``v`` becomes ``(I + ε) v``; atoms move with the cell.

    ``strain`` is a symmetric 3×3 tensor ε or a Voigt vector (xx, yy, zz, yz, xz, xy) with
    engineering shear strains (γ_yz = 2 ε_yz). The volume changes by the factor det(I + ε).
    """
    eps = _strain_tensor(strain)
    f = np.eye(3) + eps
    if np.linalg.det(f) <= 0:
        raise ValueError("strain inverts or collapses the cell (det(I + eps) <= 0); use a smaller strain")
    new = atoms.copy()
    new.set_cell(atoms.cell[:] @ f.T, scale_atoms=True)
    voigt = [eps[0, 0], eps[1, 1], eps[2, 2], 2 * eps[1, 2], 2 * eps[0, 2], 2 * eps[0, 1]]
    _append_source(new, "strain(" + ",".join(_fmt(x) for x in voigt) + ")")
    return new


def random_strain(atoms: Atoms, max_strain: float = 0.02, seed: int = 0) -> Atoms:
    """Apply a random symmetric strain with every component uniform in ±``max_strain``."""
    rng = np.random.default_rng(seed)
    e = rng.uniform(-max_strain, max_strain, size=(3, 3))
    return strain(atoms, (e + e.T) / 2)


def rattle(atoms: Atoms, stdev: float = 0.05, seed: int = 0) -> Atoms:
    """Displace every atom by independent Gaussian noise of ``stdev`` Å per Cartesian component."""
    if stdev < 0:
        raise ValueError(f"stdev must be non-negative (Å), got {stdev}")
    rng = np.random.default_rng(seed)
    new = atoms.copy()
    new.positions = atoms.positions + rng.normal(0.0, stdev, size=(len(atoms), 3))
    _append_source(new, f"rattle({_fmt(stdev)},seed={seed})")
    return new
