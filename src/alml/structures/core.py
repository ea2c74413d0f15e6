"""What every structure builder shares: the structure hash, input checks, the ``source`` recipe,
densities and lattice constants, and the shortest interatomic distance.

Lengths are in Å, densities in g/cm³.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers, chemical_symbols

LATTICES: tuple[str, ...] = ("fcc", "bcc", "hcp", "sc", "diamond")
"""Lattice names understood by :func:`bulk` and :func:`surface`."""

AMU_PER_A3_IN_G_PER_CM3 = 1.66053906660
"""One atomic mass unit per Å³ expressed in g/cm³."""

# Volume per atom (Å³) of each lattice at a = 1 Å; hcp at ideal c/a is handled separately.
_VOLUME_PER_ATOM_A1 = {"fcc": 0.25, "bcc": 0.5, "sc": 1.0, "diamond": 0.125}
_IDEAL_C_OVER_A = math.sqrt(8.0 / 3.0)


def structure_hash(atoms: Atoms, decimals: int = 6) -> str:
    """Content hash of a structure: species, cell, pbc and wrapped positions rounded to 1e-``decimals`` Å.

    Two structures with the same hash are the same DFT problem (atom order matters).
    """
    a = atoms.copy()
    if a.pbc.any():
        a.wrap(eps=10.0 ** (-decimals))
    h = hashlib.sha256()
    h.update(np.asarray(a.numbers, dtype=np.int64).tobytes())
    h.update(np.round(np.asarray(a.cell[:], dtype=float), decimals).tobytes())
    h.update(np.asarray(a.pbc, dtype=bool).tobytes())
    pos = np.round(a.positions, decimals) + 0.0  # +0.0 turns -0.0 into 0.0
    h.update(pos.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# helpers


def _check_element(element: str) -> int:
    if element not in atomic_numbers or element == "X":
        raise ValueError(
            f"unknown element {element!r}: give a chemical symbol such as 'Al' "
            f"(case matters; one of {', '.join(chemical_symbols[1:])})"
        )
    return atomic_numbers[element]


def _check_lattice(lattice: str) -> None:
    if lattice not in LATTICES:
        raise ValueError(f"unknown lattice {lattice!r}: use one of {', '.join(LATTICES)}")


def _append_source(atoms: Atoms, step: str) -> None:
    prev = atoms.info.get("source")
    atoms.info["source"] = f"{prev}|{step}" if prev else step


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def mass_density(atoms: Atoms) -> float:
    """Mass density of a periodic cell in g/cm³."""
    return float(atoms.get_masses().sum() / atoms.get_volume() * AMU_PER_A3_IN_G_PER_CM3)


def volume_per_atom_for_density(element: str, density: float) -> float:
    """Volume per atom (Å³) of pure ``element`` at mass ``density`` (g/cm³)."""
    z = _check_element(element)
    if not density > 0:
        raise ValueError(f"density must be positive (g/cm³), got {density}")
    return float(atomic_masses[z] * AMU_PER_A3_IN_G_PER_CM3 / density)


def lattice_constant_for_density(
    lattice: str, element: str, density: float, c_over_a: float | None = None
) -> float:
    """Lattice constant ``a`` (Å) that gives ``density`` (g/cm³) for ``element`` on ``lattice``.

    For hcp, ``c_over_a`` defaults to the ideal sqrt(8/3).
    """
    _check_lattice(lattice)
    v = volume_per_atom_for_density(element, density)
    if lattice == "hcp":
        q = c_over_a or _IDEAL_C_OVER_A
        v1 = math.sqrt(3.0) / 4.0 * q  # sqrt(3)/2 a^2 c / 2 atoms, at a = 1
    else:
        v1 = _VOLUME_PER_ATOM_A1[lattice]
    return (v / v1) ** (1.0 / 3.0)


def min_distance(atoms: Atoms) -> float:
    """Shortest interatomic distance (Å), periodic images included (also an atom's own images,
    so a one-atom periodic cell gives its shortest lattice vector). ``inf`` for a lone atom."""
    from ase.neighborlist import neighbor_list

    if not atoms.pbc.any():
        if len(atoms) < 2:
            return math.inf
        from scipy.spatial.distance import pdist

        return float(pdist(atoms.positions).min())
    if len(atoms) == 0:
        return math.inf
    # A periodic axis bounds the answer by its lattice vector's length (the atom's own image).
    cap = float(np.linalg.norm(atoms.cell[:][atoms.pbc], axis=1).min()) + 1e-6
    cutoff = min(1.0, cap)
    while True:
        d = neighbor_list("d", atoms, cutoff)
        if len(d):
            return float(d.min())
        if cutoff >= cap:  # cannot happen for a valid periodic cell; guard against looping
            return math.inf
        cutoff = min(2.0 * cutoff, cap)
