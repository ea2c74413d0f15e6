"""Point defects: random vacancies and one interstitial atom (octahedral, tetrahedral or random site)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from ase import Atoms

from alml.structures.core import _append_source, _check_element, min_distance


def vacancies(atoms: Atoms, n: int = 1, seed: int = 0) -> Atoms:
    """Remove ``n`` atoms chosen at random (reproducibly from ``seed``)."""
    if not 1 <= n < len(atoms):
        raise ValueError(f"can remove 1 to {len(atoms) - 1} atoms from a {len(atoms)}-atom cell, not {n}; "
                         "make a supercell first")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(atoms), size=n, replace=False)
    new = atoms.copy()
    del new[sorted(int(i) for i in idx)]
    _append_source(new, f"vacancies(n={n},seed={seed})")
    return new


def _distances_to_point(atoms: Atoms, point: np.ndarray) -> np.ndarray:
    """Minimum-image distances (Å) from ``point`` (3,) to every atom, shape (N,)."""
    from ase.geometry import get_distances

    _, d = get_distances(np.asarray(point, dtype=float)[None, :], atoms.positions, cell=atoms.cell,
                         pbc=atoms.pbc)
    return d[0]


def interstitial(
    atoms: Atoms,
    site: Literal["octahedral", "tetrahedral", "random"] = "octahedral",
    *,
    element: str | None = None,
    min_dist: float = 1.5,
    seed: int = 0,
    max_tries: int = 10000,
) -> Atoms:
    """Add one atom of ``element`` (default: that of atom 0) at an interstitial site.

    ``octahedral``/``tetrahedral`` need an fcc cell with cubic axes along x, y, z (as built by
    :func:`bulk`, any supercell of it); the site next to a seeded random atom is used (all are
    equivalent in a perfect crystal). ``random`` places the atom uniformly in the cell, at least
    ``min_dist`` Å from every atom (periodic images included).
    """
    element = element or atoms.get_chemical_symbols()[0]
    _check_element(element)
    rng = np.random.default_rng(seed)
    if site in ("octahedral", "tetrahedral"):
        d_nn = min_distance(atoms)
        a = d_nn * math.sqrt(2.0)
        base = atoms.positions[int(rng.integers(len(atoms)))]
        if site == "octahedral":
            point, expected = base + np.array([a / 2, 0.0, 0.0]), a / 2
        else:
            point, expected = base + np.array([a / 4, a / 4, a / 4]), a * math.sqrt(3.0) / 4
        got = float(_distances_to_point(atoms, point).min())
        if abs(got - expected) > 1e-3 * a:
            raise ValueError(
                f"{site} site not found: the cell is not an fcc lattice with cubic axes along x, y, z "
                f"(nearest atom at {got:.3f} Å, expected {expected:.3f} Å); build it with "
                "alml.structures.bulk(lattice='fcc') or use site='random'"
            )
    elif site == "random":
        for _ in range(max_tries):
            point = rng.random(3) @ atoms.cell[:]
            if _distances_to_point(atoms, point).min() >= min_dist:
                break
        else:
            raise ValueError(
                f"no point at least {min_dist} Å from every atom found in {max_tries} tries: "
                "lower min_dist or use a larger (less dense) cell"
            )
    else:
        raise ValueError(f"unknown interstitial site {site!r}: use octahedral, tetrahedral or random")
    new = atoms.copy()
    new.append(element)
    new.positions[-1] = point
    if new.pbc.any():
        new.wrap()
    _append_source(new, f"interstitial({site},{element},seed={seed})")
    return new
