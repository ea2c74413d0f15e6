"""Structure builders for Al (and other elements): lattices, defects, surfaces, disorder.

All functions return new :class:`ase.Atoms`; randomness comes only from an explicit ``seed``
(through :func:`numpy.random.default_rng`). Lengths are in Å, densities in g/cm³.

Every builder records how a structure was made in ``atoms.info["source"]``; transformations
(supercell, strain, rattle, vacancies, ...) append to it with ``|``, so the string reads as a recipe.

Modules: :mod:`~alml.structures.core` (hash, densities, lattice constants, shortest distance),
:mod:`~alml.structures.lattices` (bulk, supercell), :mod:`~alml.structures.defects` (vacancies,
interstitial), :mod:`~alml.structures.surfaces` (slabs), :mod:`~alml.structures.disorder` (random packing,
strain, rattle) and :mod:`~alml.structures.demo_set` (a small diverse Al set).
"""

from __future__ import annotations

from alml.structures.core import (
    AMU_PER_A3_IN_G_PER_CM3,
    LATTICES,
    lattice_constant_for_density,
    mass_density,
    min_distance,
    structure_hash,
    volume_per_atom_for_density,
)
from alml.structures.defects import interstitial, vacancies
from alml.structures.demo_set import diverse_al_set
from alml.structures.disorder import random_packing, random_strain, rattle, strain
from alml.structures.lattices import bulk, supercell
from alml.structures.surfaces import surface

__all__ = [
    "AMU_PER_A3_IN_G_PER_CM3",
    "LATTICES",
    "bulk",
    "diverse_al_set",
    "interstitial",
    "lattice_constant_for_density",
    "mass_density",
    "min_distance",
    "random_packing",
    "random_strain",
    "rattle",
    "strain",
    "structure_hash",
    "supercell",
    "surface",
    "vacancies",
    "volume_per_atom_for_density",
]
