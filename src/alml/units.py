"""Unit conversions: the one place where QE's atomic units meet alml's eV, Å, K, fs.

Values follow CODATA 2018 as used by ASE (``ase.units``), so conversions agree with ASE's readers.
"""

from ase import units as _u

RYDBERG: float = _u.Ry  #: 1 Ry in eV (13.605693...)
HARTREE: float = _u.Hartree  #: 1 Ha in eV
BOHR: float = _u.Bohr  #: 1 Bohr in Å (0.529177...)
KB: float = _u.kB  #: Boltzmann constant in eV/K
GPA: float = _u.GPa  #: 1 GPa in eV/Å³
KBAR: float = 0.1 * _u.GPa  #: 1 kbar in eV/Å³

RY_PER_BOHR: float = RYDBERG / BOHR  #: force unit of pw.x in eV/Å


def ry_to_ev(x: float) -> float:
    return x * RYDBERG


def ev_to_ry(x: float) -> float:
    return x / RYDBERG


def kelvin_to_ry(t: float) -> float:
    """Electronic temperature (K) as a smearing width k_B·T in Ry."""
    return KB * t / RYDBERG
