"""LDOS observables against analytic cases: kernels, occupations, exact spectral sums from broadened ladders.

A synthetic spectrum (levels ε_i with weights w_i) broadened exactly as pp.x does gives ladder samples whose
exact observables are known (Σ w f, Σ w f ε, ...). Pure numpy: no QE needed; runs in seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from alml.data.grids import EnergyLadder
from alml.surrogate import observables as ob
from alml.units import KB

T = 298.0
KT = KB * T


def spectrum(seed: int = 0, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """A free-electron-like band (levels ∝ k², a k-mesh-like discrete spectrum) from 0 to ~14 eV; weights sum to 8."""
    rng = np.random.default_rng(seed)
    k = rng.uniform(0, 1, n) ** (1 / 3)  # uniform in a sphere
    eps = 14.0 * k**2
    return eps, np.full(n, 8.0 / n)


def broadened(ladder: EnergyLadder, eps: np.ndarray, w: np.ndarray) -> np.ndarray:
    """DOS samples D(E_j) = Σ_i w_i K(E_j − ε_i) (1/eV), as pp.x's LDOS summed over space."""
    kmat = ob.broadening_kernel(ladder.energies[:, None] - eps[None, :], ladder.broadening, ladder.kernel)
    return kmat @ w


def exact(eps: np.ndarray, w: np.ndarray, n_el: float, t: float) -> tuple[float, float, float]:
    mu = brentq(lambda m: np.sum(w * ob.fermi_function(eps, m, t)) - n_el, eps.min() - 1, eps.max())
    f = ob.fermi_function(eps, mu, t)
    return mu, float(np.sum(w * f * eps)), float(np.sum(w * ob.entropy_function(eps, mu, t)))


LADDERS = {
    "fd-0.07/0.1": EnergyLadder.uniform(-1.5, 0.1, 116, 0.07, "fermi-dirac"),
    "gauss-0.2/0.1": EnergyLadder.uniform(-1.5, 0.1, 116, 0.2, "gaussian"),
}


@pytest.mark.parametrize("kernel", ["fermi-dirac", "gaussian"])
def test_kernel_normalised_and_centred(kernel: str) -> None:
    x = np.linspace(-40, 40, 400001)
    k = ob.broadening_kernel(x, 0.3, kernel)  # type: ignore[arg-type]
    assert np.trapezoid(k, x) == pytest.approx(1.0, abs=1e-9)
    assert np.trapezoid(k * x, x) == pytest.approx(0.0, abs=1e-9)


def test_fermi_and_entropy_functions() -> None:
    assert ob.fermi_function(np.array([0.0]), 0.0, T)[0] == 0.5
    assert ob.fermi_function(np.array([-1.0, 1.0]), 0.0, T) == pytest.approx([1.0, 0.0], abs=1e-15)
    # f ln f + (1-f) ln(1-f) at f = 1/2 is -ln 2
    assert ob.entropy_function(np.array([0.0]), 0.0, T)[0] == pytest.approx(-KT * math.log(2))
    x = np.linspace(-0.3, 0.3, 7)
    f = ob.fermi_function(x, 0.0, T)
    ref = KT * (f * np.log(f) + (1 - f) * np.log(1 - f))
    assert ob.entropy_function(x, 0.0, T) == pytest.approx(ref, rel=1e-9)
    with pytest.raises(ValueError):
        ob.fermi_function(x, 0.0, 0.0)


@pytest.mark.parametrize("name", list(LADDERS))
def test_kernel_weights_recover_exact_sums(name: str) -> None:
    """From a broadened ladder, μ within 1 meV and E_b, −TS within 1 meV per 8 electrons; trapezoid is biased."""
    ladder = LADDERS[name]
    eps, w = spectrum()
    d = broadened(ladder, eps, w)
    n_el = 3.0
    mu0, eb0, ts0 = exact(eps, w, n_el, T)
    mu = ob.fermi_level(d, ladder, n_el, T)
    assert abs(mu - mu0) < 1e-3
    assert ob.n_electrons(d, ladder, mu, T) == pytest.approx(n_el, abs=1e-7)
    assert abs(ob.band_energy(d, ladder, mu, T) - eb0) < 1e-3
    assert abs(ob.entropy_term(d, ladder, mu, T) - ts0) < 1e-4
    # the naive rule is visibly worse: the bias the kernel weights remove
    mu_n = ob.fermi_level(d, ladder, n_el, T, method="trapezoid")
    assert abs(ob.band_energy(d, ladder, mu_n, T, method="trapezoid") - eb0) > 3e-3


@pytest.mark.parametrize("name", list(LADDERS))
def test_single_level_band_energy(name: str) -> None:
    """One doubly occupied level deep below μ: E_b = 2ε₀, whatever its position between ladder points.

    The least-squares weights leave a small residual at any single energy (≲1e-4 of f far from μ, more within
    ±0.5 eV of μ, where the ladder cannot resolve the Fermi function); over a spectrum it averages out.
    """
    ladder = LADDERS[name]
    for e0 in (2.03, 2.05, 2.0777):
        eps, w = np.array([e0]), np.array([2.0])
        d = broadened(ladder, eps, w)
        mu = 6.0  # far above: f(ε₀) = 1
        rel = 2e-4 if ladder.kernel == "fermi-dirac" else 5e-4  # the Gaussian basis rings further from μ
        assert ob.n_electrons(d, ladder, mu, T) == pytest.approx(2.0, rel=rel)
        assert ob.band_energy(d, ladder, mu, T) == pytest.approx(2 * e0, rel=rel)


def test_fermi_level_of_a_known_dos() -> None:
    """A flat DOS of 1 state/eV from 0 to 10 eV holding 4 electrons: μ = 4 eV (symmetric f about μ)."""
    ladder = EnergyLadder.uniform(-2.0, 0.05, 281, 0.05, "fermi-dirac")
    eps = np.linspace(0.0, 10.0, 20001)
    w = np.full(eps.size, 10.0 / (eps.size - 1))
    w[[0, -1]] *= 0.5
    d = broadened(ladder, eps, w)
    assert ob.fermi_level(d, ladder, 4.0, T) == pytest.approx(4.0, abs=2e-4)


def test_density_pointwise() -> None:
    """n(r) = Σ w_i f(ε_i) |φ_i(r)|² recovered point by point from an LDOS built from levels and 'orbitals'."""
    rng = np.random.default_rng(3)
    eps, w = spectrum(seed=1, n=3000)
    phi2 = rng.uniform(0.5, 1.5, size=(eps.size, 5, 4, 3))  # |φ_i(r)|² on a 5x4x3 grid
    ladder = LADDERS["fd-0.07/0.1"]
    kmat = ob.broadening_kernel(ladder.energies[None, :] - eps[:, None], ladder.broadening, ladder.kernel)
    ldos = np.einsum("i,ixyz,ie->xyze", w, phi2, kmat)
    mu0, _, _ = exact(eps, w, 3.0, T)
    n = ob.density(ldos, ladder, mu0, T)
    ref = np.einsum("i,ixyz->xyz", w * ob.fermi_function(eps, mu0, T), phi2)
    assert n.shape == (5, 4, 3)
    assert np.abs(n - ref).max() < 1e-3 * ref.max()


def test_dos_sums_over_grid_with_voxel_volume() -> None:
    ldos = np.ones((4, 5, 6, 3), dtype=np.float32)
    assert ob.dos(ldos, volume=12.0) == pytest.approx([12.0] * 3)
    assert ob.dos(ldos.reshape(-1, 3), volume=12.0) == pytest.approx([12.0] * 3)


def test_observables_bundle_and_errors() -> None:
    ladder = LADDERS["gauss-0.2/0.1"]
    eps, w = spectrum(seed=2, n=500)
    d = broadened(ladder, eps, w)
    ldos = np.tile(d, (2, 2, 2, 1)) / 8.0  # uniform in space, volume 8 -> same DOS
    o = ob.observables(ldos, ladder, 8.0, 3.0, T)
    assert o.dos == pytest.approx(d)
    assert o.n_electrons == pytest.approx(3.0, abs=1e-7)
    assert o.density is not None and o.density.sum() * 1.0 == pytest.approx(3.0, abs=1e-6)
    with pytest.raises(ValueError, match="no Fermi level"):
        ob.fermi_level(d, ladder, 50.0, T)
    with pytest.raises(ValueError, match="uniformly"):
        EnergyLadder(np.array([0.0, 0.1, 0.3]), 0.1, "gaussian")
    with pytest.raises(ValueError, match="kernel"):
        EnergyLadder.uniform(0.0, 0.1, 3, 0.1, "lorentzian")  # type: ignore[arg-type]
