"""Bispectrum (SNAP) descriptor settings: one pydantic model, and MALA's Al settings as a preset.

LAMMPS meaning of the fields (``compute sna/atom``, ``sna/grid``, ``snap``):

- the cutoff of a pair of atoms of elements I and J is ``rcutfac * (radius_I + radius_J)`` (Å);
  for one element that is ``2 * rcutfac * radius``;
- on a grid, the cutoff for a neighbour of element J is ``2 * rcutfac * radius_J`` (the grid point
  is treated as an atom of the neighbour's element);
- ``weight`` is the neighbour weight w_J; the central atom (or grid point) always has weight 1.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from alml.config import Config


class ElementParams(Config):
    """Per-element radius R (Å, scaled by ``rcutfac``) and neighbour weight w (dimensionless)."""

    radius: float = Field(gt=0, description="R_elem: pair cutoff is rcutfac*(R_I+R_J), Å")
    weight: float = Field(1.0, description="w_elem: weight of this element as a neighbour")


def n_bispectrum(twojmax: int) -> int:
    """Number of linear bispectrum components K for a band limit ``twojmax`` (LAMMPS ordering)."""
    count = 0
    for j1 in range(twojmax + 1):
        for j2 in range(j1 + 1):
            for j in range(j1 - j2, min(twojmax, j1 + j2) + 1, 2):
                if j >= j1:
                    count += 1
    return count


class BispectrumSettings(Config):
    """Settings of the SNAP bispectrum descriptors (LAMMPS ML-SNAP), shared by per-atom and grid."""

    twojmax: int = Field(ge=0, le=20, description="band limit 2J (K grows ~ J^3; cost ~ J^5..J^7)")
    rcutfac: float = Field(gt=0, description="scale factor on the radii: cutoff = rcutfac*(R_I+R_J), Å")
    rfac0: float = Field(gt=0, le=1, description="distance-to-angle factor, 0 < rfac0 <= 1")
    rmin0: float = Field(0.0, ge=0, description="inner distance of the angle mapping, Å")
    switchflag: bool = Field(True, description="smooth cosine switching function f_c(r)")
    bzeroflag: bool = Field(True, description="subtract B0, the bispectrum of an isolated atom")
    quadraticflag: bool = Field(False, description="append the K(K+1)/2 products B_k B_l (0.5 B_k^2 on k=l)")
    elements: dict[str, ElementParams] = Field(min_length=1, description="per element; order = LAMMPS types")

    @field_validator("elements")
    @classmethod
    def _known_symbols(cls, v: dict[str, ElementParams]) -> dict[str, ElementParams]:
        from ase.data import atomic_numbers

        bad = [s for s in v if s not in atomic_numbers]
        if bad:
            raise ValueError(f"unknown chemical symbol(s) {bad}")
        return v

    @property
    def n_linear(self) -> int:
        """K, the number of linear bispectrum components."""
        return n_bispectrum(self.twojmax)

    @property
    def n_components(self) -> int:
        """Descriptor length per atom or grid point: K, plus K(K+1)/2 with ``quadraticflag``."""
        k = self.n_linear
        return k + (k * (k + 1)) // 2 if self.quadraticflag else k

    @property
    def symbols(self) -> list[str]:
        """Element symbols in LAMMPS type order (type = index + 1)."""
        return list(self.elements)

    def pair_cutoff(self, a: str, b: str) -> float:
        """Cutoff (Å) between an atom of element ``a`` and one of element ``b``."""
        return self.rcutfac * (self.elements[a].radius + self.elements[b].radius)

    @property
    def max_cutoff(self) -> float:
        """Largest pair cutoff (Å); also the largest grid-point cutoff."""
        return 2.0 * self.rcutfac * max(e.radius for e in self.elements.values())

    def sna_args(self) -> str:
        """The argument string LAMMPS's SNAP computes take after the style name (linear terms only)."""
        radii = " ".join(f"{e.radius!r}" for e in self.elements.values())
        weights = " ".join(f"{e.weight!r}" for e in self.elements.values())
        return (
            f"{self.rcutfac!r} {self.rfac0!r} {self.twojmax} {radii} {weights} "
            f"rmin0 {self.rmin0!r} switchflag {int(self.switchflag)} bzeroflag {int(self.bzeroflag)}"
        )


MALA_AL = BispectrumSettings(
    twojmax=10,
    rcutfac=4.67637,
    rfac0=0.99363,
    rmin0=0.0,
    switchflag=True,
    bzeroflag=False,
    quadraticflag=False,
    elements={"Al": ElementParams(radius=0.5, weight=1.0)},
)
"""MALA's aluminium settings (Ellis et al. 2021; MALA 1.4 defaults): 91 components, cutoff 4.67637 Å.

MALA passes ``rcutfac 4.67637``, ``radelem 0.5``, ``wj 1.0`` to LAMMPS, so the effective cutoff is
2 * 0.5 * 4.67637 = 4.67637 Å; ``bzeroflag 0``, ``quadraticflag 0``, ``switchflag 1``, ``rmin0 0``.
"""

PRESETS: dict[str, BispectrumSettings] = {"mala-al": MALA_AL}
