"""Network inputs of a grid point: its descriptors (K,), then the cell's global inputs (G,).

Why global inputs. A periodic DFT cell's eigenvalues are measured from its average potential, and that reference
moves with the mean density: on the same absolute ladder, QE puts the Fermi level of 32-atom Al at 7.81 eV at
2.70 g/cm³ (298 K solid), 7.20 eV at 2.555 (933 K solid) and 6.41 eV at 2.375 (933 K liquid). A descriptor sees
only ~5 Å around its point, so it cannot tell a locally dense spot of the liquid from the solid, and a network
trained across densities has to guess the shift: band-energy errors of hundreds of meV/atom (docs/benchmarks.md,
"ML-DFT across densities"). ``atom_density`` (atoms/Å³, the cell's N/Ω) gives it that one number. It is a
property of the whole cell, so it assumes a homogeneous cell (no vacuum or two-phase slabs). A model records each
global input's training range, and prediction warns when a cell lies outside it (:func:`extrapolation_warnings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from ase import Atoms

GlobalInput = Literal["atom_density"]


def global_values(atoms: Atoms, names: Sequence[str]) -> np.ndarray:
    """The cell's global inputs ``names`` (G,) float64, in order."""
    values = {"atom_density": len(atoms) / abs(float(atoms.cell.volume))}
    try:
        return np.array([values[n] for n in names], dtype=np.float64)
    except KeyError as err:
        raise ValueError(f"unknown global input {err.args[0]!r}; known: {sorted(values)}") from None


def with_globals(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Descriptors x (..., K) with the global values g (G,) appended to every point: (..., K + G), x's dtype."""
    g = np.asarray(g)
    if g.size == 0:
        return x
    tail = np.broadcast_to(g.astype(x.dtype), (*x.shape[:-1], g.size))
    return np.concatenate([x, tail], axis=-1)


#: a global input this far (relative) outside its training range is reported as an extrapolation
RANGE_TOLERANCE = 0.02


def global_input_ranges(
    atoms_list: Sequence[Atoms], names: Sequence[str] = ("atom_density",)
) -> dict[str, list[float]]:
    """name -> [min, max] of each global input over training cells (recorded with a model)."""
    values = np.array([global_values(a, names) for a in atoms_list])
    return {n: [float(values[:, i].min()), float(values[:, i].max())] for i, n in enumerate(names)}


def extrapolation_warnings(atoms: Atoms, names: Sequence[str], ranges: dict[str, Sequence[float]]) -> list[str]:
    """Plain-language warnings for each global input of ``atoms`` more than :data:`RANGE_TOLERANCE` outside its
    training range (``ranges`` from :func:`global_input_ranges`; inputs without a recorded range are skipped).

    The committee's members all see the same out-of-range number and may agree on a wrong answer, so their
    spread need not show this extrapolation."""
    out = []
    for name, value in zip(names, global_values(atoms, names)):
        if name not in ranges:
            continue
        lo, hi = ranges[name]
        if value < lo * (1 - RANGE_TOLERANCE) or value > hi * (1 + RANGE_TOLERANCE):
            out.append(
                f"{name} = {value:.5g} lies outside the training range [{lo:.5g}, {hi:.5g}]: the network extrapolates "
                "there, and the committee spread need not show it; add training snapshots at this density"
            )
    return out


__all__ = [
    "RANGE_TOLERANCE", "GlobalInput", "extrapolation_warnings", "global_input_ranges", "global_values", "with_globals"
]
