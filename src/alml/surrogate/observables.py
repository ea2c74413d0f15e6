"""Observables from the local density of states (LDOS) on an energy ladder: pure functions, arrays in and out.

Notation (PHYSICS.md): d(E, r) the LDOS in states/(eV·Å³), spin included; D(E) = ∫ d(E, r) dr the DOS in
states/eV; f(ε; μ, T) the Fermi–Dirac occupation at electronic temperature T (K).

**What the ladder holds.** pp.x (plot_num 3) does not give the LDOS itself but its broadened samples

    d_j(r) = Σ_i w_i |ψ_i(r)|² K_σ(E_j − ε_i),     j = 0 … n_e − 1,

with K_σ the SCF's smearing function of width σ (``degauss_ldos``): Fermi–Dirac derivative
``1/(2 + eˣ + e⁻ˣ)/σ`` or Gaussian ``exp(−x²)/(√π σ)``, x = (E − ε)/σ. Integrating these samples as if they
were the LDOS (trapezoid rule, MALA's "naive" route) is biased by the broadening (≈ σ² D″ terms) and by the
Fermi function being sharper than the ladder (k_B T = 26 meV at 298 K against 0.1 eV spacing).

**Kernel-aware weights ("exact" integration).** Every observable needed here is a spectral sum
A = Σ_i w_i a(ε_i) (times |ψ_i(r)|² for a local one) with a(ε) = f(ε) (electrons, density), ε f(ε) (band energy)
or k_B T [f ln f + (1 − f) ln(1 − f)] (the −TS term). If weights c_j satisfy

    Σ_j c_j K_σ(E_j − ε) = a(ε)   for every ε where states can lie,

then Σ_j c_j d_j(r) = Σ_i w_i |ψ_i(r)|² a(ε_i) exactly, whatever the eigenvalues are. :class:`SpectralWeights`
finds the c_j by least squares on a fine ε mesh (a pseudo-inverse of the kernel matrix, computed once per
ladder and cached; small singular values are cut at ``rcond`` so that the 5 significant digits of pp.x's
cube files are not amplified). The fit is exact up to ~1e-4 of f away from μ; within ~±0.5 eV of μ, where a
0.1 eV ladder cannot resolve a 26 meV Fermi function, a residual oscillating on the scale of the spacing is
left, which averages out over a k-mesh's many eigenvalues. This removes the broadening bias: fed QE's own
LDOS it reproduces QE's band energy to < 0.1 meV/atom (docs/benchmarks.md), where the trapezoid rule is off
by ~5 meV/atom. It needs a ladder that samples the kernel well: spacing h with σ ≈ 2h for the Gaussian kernel
(MALA's 0.1 eV / 0.2 eV) or σ ≈ 0.5–1 h for the Fermi–Dirac kernel (0.1 eV / 0.07 eV; its residual decays
faster away from μ); a much wider kernel (FD 0.2 eV on 0.1 eV) loses the information and the weights blow up.
It also needs the ladder to start several σ below the band bottom and to end where f is negligible.

Every function takes ``method``: ``"kernel"`` (default, the above) or ``"trapezoid"`` (naive quadrature, for
comparison). Energies in eV, temperatures in K, volumes in Å³.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy.optimize import brentq

from alml.data.grids import EnergyLadder, broadening_kernel
from alml.units import KB

Method = Literal["kernel", "trapezoid"]
Quantity = Literal["occupation", "band", "entropy"]

#: kernel tails beyond this many widths are below ~1e-10 (FD: e^-23; Gaussian: e^-(4.8^2))
_TAIL = {"fermi-dirac": 23.0, "gaussian": 4.8}


# --- kernels and occupations --------------------------------------------------------------------
# broadening_kernel (pp.x's K_σ) lives beside EnergyLadder in alml.data.grids and is imported from there.


def fermi_function(energy: np.ndarray, mu: float, temperature: float) -> np.ndarray:
    """Fermi–Dirac occupation f(ε; μ, T) in [0, 1]; ``energy`` and ``mu`` in eV, ``temperature`` in K (> 0)."""
    kt = KB * _positive_t(temperature)
    return 0.5 * (1.0 - np.tanh(0.5 * (np.asarray(energy, dtype=float) - mu) / kt))


def entropy_function(energy: np.ndarray, mu: float, temperature: float) -> np.ndarray:
    """k_B T [f ln f + (1 − f) ln(1 − f)] in eV (≤ 0): the −TS contribution of one state at ``energy`` (eV)."""
    kt = KB * _positive_t(temperature)
    x = (np.asarray(energy, dtype=float) - mu) / kt
    # f ln f + (1-f) ln(1-f) = -[ln(1 + e^-|x|) + |x| e^-|x| / (1 + e^-|x|)], stable for all x
    ax = np.abs(x)
    e = np.exp(-ax)
    return -kt * (np.log1p(e) + ax * e / (1.0 + e))


def _positive_t(t: float) -> float:
    if not t > 0:
        raise ValueError(f"electronic temperature must be > 0 K, got {t}")
    return float(t)


# --- kernel-aware integration weights -------------------------------------------------------------


class SpectralWeights:
    """Weights c_j such that Σ_j c_j K_σ(E_j − ε) ≈ a(ε) on the spectrum's support (see the module docstring).

    The fine ε mesh spans [E_0 + 3σ_s, E_{n−1} + tail] with a step that resolves the kernel, the ladder and
    k_B T; σ_s is the kernel's standard deviation. States must not lie below E_0 + 3σ_s (the ladder has to
    start below the band bottom); states above the ladder are matched to a = 0.
    """

    def __init__(self, ladder: EnergyLadder, step: float, rcond: float = 1e-6) -> None:
        self.ladder = ladder
        self.rcond = rcond
        sig, h = ladder.broadening, ladder.spacing
        std = sig / math.sqrt(2.0) if ladder.kernel == "gaussian" else sig * math.pi / math.sqrt(3.0)
        lo = ladder.emin + 3.0 * std
        hi = ladder.emax + _TAIL[ladder.kernel] * sig
        self.mesh = np.arange(lo, hi + 0.5 * step, step)
        basis = broadening_kernel(ladder.energies[None, :] - self.mesh[:, None], sig, ladder.kernel)
        u, s, vt = np.linalg.svd(basis, full_matrices=False)
        keep = s > rcond * s[0]
        #: (n_e, n_mesh) pseudo-inverse of the kernel matrix
        self.projector = (vt[keep].T / s[keep]) @ u[:, keep].T
        self.rank = int(keep.sum())
        self.h = h

    def weights(self, quantity: Quantity, mu: float, temperature: float) -> np.ndarray:
        """(n_e,) weights: Σ_j c_j D_j gives electrons (occupation), eV (band, entropy) for D_j in 1/eV."""
        return self.projector @ _target(quantity, self.mesh, mu, temperature)


def _target(quantity: Quantity, e: np.ndarray, mu: float, temperature: float) -> np.ndarray:
    if quantity == "occupation":
        return fermi_function(e, mu, temperature)
    if quantity == "band":
        return e * fermi_function(e, mu, temperature)
    if quantity == "entropy":
        return entropy_function(e, mu, temperature)
    raise ValueError(f"unknown quantity {quantity!r}")


def _mesh_step(ladder: EnergyLadder, temperature: float) -> float:
    """ladder spacing / 2^k, the largest such step ≤ min(spacing, kernel width, k_B T)/6 (so caches are reused)."""
    finest = min(ladder.spacing, ladder.broadening, KB * temperature) / 6.0
    k = max(0, math.ceil(math.log2(ladder.spacing / finest)))
    return ladder.spacing / 2**k


@lru_cache(maxsize=16)
def _cached_weights(key: tuple, step: float, rcond: float) -> SpectralWeights:
    emin, spacing, n, broadening, kernel = key
    return SpectralWeights(EnergyLadder.uniform(emin, spacing, n, broadening, kernel), step, rcond)


def spectral_weights(ladder: EnergyLadder, temperature: float, rcond: float = 1e-6) -> SpectralWeights:
    """The (cached) :class:`SpectralWeights` for ``ladder`` with a mesh fine enough for ``temperature`` (K)."""
    return _cached_weights(ladder.key(), _mesh_step(ladder, _positive_t(temperature)), rcond)


def integration_weights(
    ladder: EnergyLadder,
    quantity: Quantity,
    mu: float,
    temperature: float,
    method: Method = "kernel",
    rcond: float = 1e-6,
) -> np.ndarray:
    """(n_e,) weights c_j for Σ_j c_j D_j ≈ ∫ a(ε) D(ε) dε with a per ``quantity`` (see the module docstring).

    ``kernel``: exact for the broadened ladder; ``trapezoid``: a(E_j) times the trapezoid weights, as if the
    samples were the unbroadened DOS.
    """
    if method == "kernel":
        return spectral_weights(ladder, temperature, rcond).weights(quantity, mu, temperature)
    if method == "trapezoid":
        w = np.full(ladder.n, ladder.spacing)
        w[[0, -1]] *= 0.5
        return w * _target(quantity, ladder.energies, mu, temperature)
    raise ValueError(f"unknown method {method!r}: use 'kernel' or 'trapezoid'")


# --- observables ---------------------------------------------------------------------------------


def dos(ldos: np.ndarray, volume: float) -> np.ndarray:
    """DOS D(E_j) (n_e,) in states/eV from an LDOS (..., n_e) in 1/(eV·Å³) covering a cell of ``volume`` Å³.

    All leading axes are grid points (nx, ny, nz or a flat list); the voxel volume is volume / n_points.
    """
    ldos = np.asarray(ldos)
    n_points = int(np.prod(ldos.shape[:-1]))
    flat = ldos.reshape(n_points, ldos.shape[-1])
    return flat.sum(axis=0, dtype=np.float64) * (volume / n_points)


def n_electrons(
    dos_values: np.ndarray, ladder: EnergyLadder, mu: float, temperature: float, method: Method = "kernel"
) -> float:
    """Electron count N = ∫ f(ε; μ, T) D(ε) dε from the DOS samples (n_e,) in 1/eV."""
    return float(integration_weights(ladder, "occupation", mu, temperature, method) @ np.asarray(dos_values))


_electron_count = n_electrons


def fermi_level(
    dos_values: np.ndarray,
    ladder: EnergyLadder,
    n_electrons: float,
    temperature: float,
    method: Method = "kernel",
    xtol: float = 1e-7,
) -> float:
    """Chemical potential μ (eV) at which the DOS (n_e,) in 1/eV holds ``n_electrons`` at ``temperature`` (K)."""
    d = np.asarray(dos_values, dtype=float)

    def excess(mu: float) -> float:
        return float(integration_weights(ladder, "occupation", mu, temperature, method) @ d) - n_electrons

    grid = ladder.energies
    values = np.array([excess(m) for m in grid[:: max(1, ladder.n // 64)]])
    coarse = grid[:: max(1, ladder.n // 64)]
    idx = np.nonzero(np.diff(np.sign(values)) > 0)[0]
    if idx.size == 0:
        raise ValueError(
            f"no Fermi level in the ladder [{ladder.emin:.3f}, {ladder.emax:.3f}] eV for {n_electrons} electrons "
            f"(the DOS holds {values[0] + n_electrons:.4g} to {values[-1] + n_electrons:.4g}): check the ladder "
            "covers the occupied band and the electron count"
        )
    i = int(idx[-1])
    return float(brentq(excess, coarse[i], coarse[i + 1], xtol=xtol))


def band_energy(
    dos_values: np.ndarray, ladder: EnergyLadder, mu: float, temperature: float, method: Method = "kernel"
) -> float:
    """Band energy E_b = ∫ f(ε; μ, T) ε D(ε) dε (eV), QE's ``eband`` = Σ w f ε."""
    return float(integration_weights(ladder, "band", mu, temperature, method) @ np.asarray(dos_values))


def entropy_term(
    dos_values: np.ndarray, ladder: EnergyLadder, mu: float, temperature: float, method: Method = "kernel"
) -> float:
    """Electronic entropy term −TS = k_B T ∫ D [f ln f + (1 − f) ln(1 − f)] dε (eV, ≤ 0); pw.x's "smearing contrib."."""
    return float(integration_weights(ladder, "entropy", mu, temperature, method) @ np.asarray(dos_values))


def density(
    ldos: np.ndarray, ladder: EnergyLadder, mu: float, temperature: float, method: Method = "kernel"
) -> np.ndarray:
    """Electron density n(r) = ∫ f(ε; μ, T) d(ε, r) dε in 1/Å³: shape ``ldos.shape[:-1]`` (works on slabs)."""
    c = integration_weights(ladder, "occupation", mu, temperature, method)
    return np.asarray(ldos) @ c


@dataclass(frozen=True)
class LdosObservables:
    """Everything :func:`observables` derives from one LDOS: μ, E_b, −TS in eV, D (n_e,) 1/eV, n (grid) 1/Å³."""

    fermi_level: float
    band_energy: float
    entropy_term: float
    n_electrons: float
    dos: np.ndarray = field(repr=False)
    density: np.ndarray | None = field(default=None, repr=False)


def observables(
    ldos: np.ndarray,
    ladder: EnergyLadder,
    volume: float,
    n_electrons: float,
    temperature: float,
    method: Method = "kernel",
    with_density: bool = True,
) -> LdosObservables:
    """Fermi level (from the electron count), band energy, −TS, DOS and density of one LDOS (..., n_e)."""
    d = dos(ldos, volume)
    mu = fermi_level(d, ladder, n_electrons, temperature, method)
    return LdosObservables(
        fermi_level=mu,
        band_energy=band_energy(d, ladder, mu, temperature, method),
        entropy_term=entropy_term(d, ladder, mu, temperature, method),
        n_electrons=_electron_count(d, ladder, mu, temperature, method),
        dos=d,
        density=density(ldos, ladder, mu, temperature, method) if with_density else None,
    )
