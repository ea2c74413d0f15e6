"""Equation of state: fit E(V) and turn it into a lattice constant and bulk modulus. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.eos import EquationOfState

from alml.units import GPA


@dataclass(frozen=True)
class EOSFit:
    v0: float  #: equilibrium volume per atom, Å³
    e0: float  #: energy per atom at v0, eV
    bulk_modulus: float  #: GPa

    def lattice_constant(self, atoms_per_conventional_cell: int = 4) -> float:
        """Cubic lattice constant (Å) for a lattice with this many atoms per cubic cell (fcc: 4)."""
        return float((self.v0 * atoms_per_conventional_cell) ** (1.0 / 3.0))


def fit_eos(volumes: np.ndarray, energies: np.ndarray, kind: str = "birchmurnaghan") -> EOSFit:
    """Fit energies (eV/atom) against volumes (Å³/atom); raise if the minimum lies outside the scan."""
    v = np.asarray(volumes, dtype=float)
    e = np.asarray(energies, dtype=float)
    if len(v) < 5:
        raise ValueError(f"an E(V) fit needs at least 5 points, got {len(v)}")
    v0, e0, b = EquationOfState(v, e, eos=kind).fit()
    if not v.min() < v0 < v.max():
        raise ValueError(f"E(V) minimum {v0:.3f} Å³ lies outside the scanned volumes: widen the scan")
    return EOSFit(v0=float(v0), e0=float(e0), bulk_modulus=float(b / GPA))
