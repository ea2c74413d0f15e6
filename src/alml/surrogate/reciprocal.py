"""The reciprocal-space grid of a real field on QE's FFT grid, built once and shared by every energy term.

:class:`ReciprocalGrid` holds |G|², the kept set of G vectors and the 1-D integer frequencies in numpy's
``rfftn`` layout (nx, ny, nz//2 + 1): real fields have Hermitian coefficients, f(−G) = f(G)*, so half the
G vectors suffice and complex arrays are half the size of a full complex FFT. G components are formed on the
fly by broadcasting the 1-D frequencies (no (nx, ny, nz, 3) array). Sums over all G of an even function use
``weight`` (2 for a last-axis index whose partner −G is not stored, 1 for the k = 0 and Nyquist planes).

Kept G vectors: the G-sphere ħ²G²/2m ≤ ecut (QE's ecutrho; QE stores ρ(G) only there), and never a Nyquist
index (m = n/2 of an even n): there G and −G are the same grid point, so i·G·f(G) of a real field is not
Hermitian and derivatives are undefined. QE's grid for a cutoff never reaches Nyquist (n ≥ 2·max|m| + 1), so
with ``ecut`` this drops nothing; without one it drops the Nyquist planes of even dimensions.

Units: cell rows in Å, G in 1/Bohr (Hartree atomic units inside the energy terms).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.fft

from alml.units import BOHR, RYDBERG

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class ReciprocalGrid:
    """G vectors of the (nx, ny, nz) grid of ``cell`` (Å) in rfftn layout; ``ecut`` (eV) bounds the kept set."""

    cell: np.ndarray
    shape: Shape
    ecut: float | None
    b: np.ndarray  #: (3, 3) reciprocal vectors as rows, 1/Bohr (b_i·a_j = 2π δ_ij)
    freqs: tuple[np.ndarray, np.ndarray, np.ndarray]  #: integer frequencies per axis (last axis: 0 … nz//2)
    g2: np.ndarray  #: |G|² (nx, ny, nz//2 + 1), 1/Bohr²
    keep: np.ndarray | None  #: kept G vectors (bool, same shape), None: all
    weight: np.ndarray  #: (nz//2 + 1,) multiplicity of each last-axis index among all G

    @classmethod
    def build(cls, cell: np.ndarray, shape: Shape, ecut: float | None = None) -> ReciprocalGrid:
        """The reciprocal grid of ``cell`` (rows in Å), grid ``shape`` and density cutoff ``ecut`` (eV, or None)."""
        cell = np.asarray(cell, dtype=float)
        shape = tuple(int(n) for n in shape)  # type: ignore[assignment]
        b = 2.0 * np.pi * np.linalg.inv(cell / BOHR).T
        nx, ny, nz = shape
        freqs = (np.fft.fftfreq(nx, 1.0 / nx), np.fft.fftfreq(ny, 1.0 / ny), np.fft.rfftfreq(nz, 1.0 / nz))
        g2 = np.zeros((nx, ny, nz // 2 + 1))
        for a in range(3):
            g2 += _component(freqs, b, a) ** 2
        keep = None if ecut is None else g2 * RYDBERG <= ecut * (1 + 1e-10)
        nyquist = [n % 2 == 0 for n in shape]
        if any(nyquist):
            keep = np.ones(g2.shape, dtype=bool) if keep is None else keep
            if nyquist[0]:
                keep[nx // 2] = False
            if nyquist[1]:
                keep[:, ny // 2] = False
            if nyquist[2]:
                keep[:, :, nz // 2] = False
        weight = np.full(nz // 2 + 1, 2.0)
        weight[0] = 1.0
        if nyquist[2]:
            weight[-1] = 1.0
        return cls(cell, shape, ecut, b, freqs, g2, keep, weight)  # type: ignore[arg-type]

    @property
    def omega(self) -> float:
        """Cell volume, Bohr³."""
        return abs(float(np.linalg.det(self.cell))) / BOHR**3

    @property
    def n_points(self) -> int:
        return int(np.prod(self.shape))

    @property
    def filtered(self) -> bool:
        """Whether densities are cut to a G-sphere (``ecut`` given), so real-space values are re-synthesised."""
        return self.ecut is not None

    @cached_property
    def coulomb(self) -> np.ndarray:
        """4π/G² (1/Bohr² → Hartree·Bohr³ per electron), zero at G = 0 and outside the kept set."""
        g2 = np.where(self.g2 > 0.0, self.g2, 1.0)
        out = 4.0 * np.pi / g2
        out[0, 0, 0] = 0.0
        if self.keep is not None:
            out *= self.keep
        return out

    def component(self, a: int) -> np.ndarray:
        """G_a (nx, ny, nz//2 + 1), 1/Bohr (Cartesian component ``a`` of G)."""
        return _component(self.freqs, self.b, a)

    def to_g(self, values: np.ndarray) -> np.ndarray:
        """Fourier coefficients f(G), f(r) = Σ_G f(G) e^{iG·r}, of a real field (nx, ny, nz), kept G only."""
        fg = scipy.fft.rfftn(np.asarray(values, dtype=float))
        fg /= self.n_points
        if self.keep is not None:
            fg *= self.keep
        return fg

    def to_r(self, fg: np.ndarray, overwrite: bool = False) -> np.ndarray:
        """The real field (nx, ny, nz) of Hermitian coefficients ``fg`` (rfftn layout); ``overwrite`` lets the
        transform use ``fg`` as scratch."""
        out = scipy.fft.irfftn(fg, s=self.shape, overwrite_x=overwrite)
        out *= self.n_points
        return out

    def derivative(self, fg: np.ndarray, a: int) -> np.ndarray:
        """∂f/∂x_a (nx, ny, nz), spectrally (i·G_a·f(G)); units of f per Bohr."""
        tmp = fg * self.component(a)
        tmp *= 1j
        return self.to_r(tmp, overwrite=True)

    def sum_all(self, half: np.ndarray) -> float:
        """Σ over all G of an even function given on the stored half (nx, ny, nz//2 + 1)."""
        return float(np.asarray(half).sum(axis=(0, 1)) @ self.weight)


def _component(freqs: tuple[np.ndarray, np.ndarray, np.ndarray], b: np.ndarray, a: int) -> np.ndarray:
    m0, m1, m2 = freqs
    return m0[:, None, None] * b[0, a] + m1[None, :, None] * b[1, a] + m2[None, None, :] * b[2, a]
