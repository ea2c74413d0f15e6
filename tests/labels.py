"""Shared by the potential tests: cheap reference labels (ASE's EMT) for training on tiny cells."""

from __future__ import annotations

from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator


def emt_labelled(atoms: Atoms) -> Atoms:
    """A copy of ``atoms`` carrying EMT's energy, free energy, forces and stress as fixed labels."""
    a = atoms.copy()
    a.calc = EMT()
    r = {k: a.calc.get_property(k, a) for k in ("energy", "free_energy", "forces", "stress")}
    a.calc = SinglePointCalculator(a, **r)
    return a
