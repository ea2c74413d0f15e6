"""Synthetic LDOS snapshots written through the real HDF5 route (no QE, no LAMMPS), for the surrogate tests.

As in tests/test_surrogate_model.py: random descriptors on a small grid and an LDOS that is a smooth function of
them, so a small network can learn it; here the LDOS is a properly broadened spectrum (see :func:`true_ldos`), so
Fermi level, band energy and density from it are well defined. A hand-made pseudopotential (Z_v = 3, PBE, no core
charge) lets the total energy be evaluated without ld1.x.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk

from alml.data.grids import EnergyLadder, LdosMeta, QEReference, write_ldos_h5
from alml.descriptors import MALA_AL, save_grid_h5
from alml.surrogate.observables import dos, n_electrons
from alml.surrogate.total_energy import PseudoData

SHAPE = (6, 6, 6)
SETTINGS = MALA_AL.model_copy(update={"twojmax": 2})  # K = 5
LADDER = EnergyLadder.uniform(-6.0, 0.25, 34, 0.5, "gaussian")  # MALA-like: Gaussian, sigma = 2 x spacing
T = 1000.0
MU = -1.0  #: eV, about where the Fermi level of the synthetic snapshots lies


def pseudo() -> dict[str, PseudoData]:
    """A local-only Al pseudopotential stand-in: Z_v = 3, PBE, no core charge (the mesh is unused then)."""
    r = np.linspace(0.0, 10.0, 101)
    return {"Al": PseudoData("Al", 3.0, "PBE", r, np.full_like(r, 0.1), None)}


def true_ldos(x: np.ndarray, ladder: EnergyLadder = LADDER) -> np.ndarray:
    """A broadened LDOS (..., n_e) in 1/(eV·Å³) of descriptors (..., 5), as pp.x makes one: levels ε_i in
    [-4.5, 0.5] eV (inside the ladder) with weights that vary smoothly with the descriptors, each broadened by the
    ladder's kernel, so the kernel-aware observables are exact for it."""
    from alml.surrogate.observables import broadening_kernel

    levels = np.linspace(-4.5, 0.5, 21)
    w = 0.008 * (
        1.5
        + 0.5 * np.tanh(x[..., 0:1]) * np.cos(levels)
        + 0.3 * np.sin(x[..., 1:2]) * np.sin(2 * levels)
        + 0.2 * x[..., 2:3] ** 2 / (1 + x[..., 2:3] ** 2)
    )
    k = broadening_kernel(ladder.energies[:, None] - levels[None, :], ladder.broadening, ladder.kernel)  # (n_e, L)
    return (w @ k.T).astype(np.float32)


def cell(seed: int) -> Atoms:
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.rattle(0.05, seed=seed)
    return atoms


def write_snapshot(
    d: Path,
    seed: int,
    atoms: Atoms | None = None,
    shape: tuple[int, int, int] = SHAPE,
    reference: QEReference | None = None,
    ecutrho: float | None = None,
) -> Path:
    """An alml snapshot folder ``d`` (ldos.h5 + descriptors.h5) with the electron count of a Fermi level near ``MU``
    (well inside the ladder, so the kernel-aware weights are well conditioned there)."""
    atoms = cell(seed) if atoms is None else atoms
    x = np.random.default_rng(seed).normal(size=(*shape, SETTINGS.n_components)).astype(np.float32)
    y = true_ldos(x)
    count = n_electrons(dos(y, atoms.get_volume()), LADDER, MU, T)
    meta = LdosMeta(
        atoms=atoms, ladder=LADDER, shape=shape, temperature=T, n_electrons=round(count, 3),
        ecutrho=ecutrho, reference=reference,
    )
    d.mkdir(parents=True, exist_ok=True)
    write_ldos_h5(d / "ldos.h5", meta, y)
    save_grid_h5(d / "descriptors.h5", x, atoms, SETTINGS)
    return d
