"""Error metrics of a predicted LDOS in physics units: pure functions, arrays in, numbers out.

Shared by the per-epoch validation (:mod:`alml.surrogate.validation`) and the held-out test
(:mod:`alml.surrogate.evaluate`), so both report the same numbers:

- energies per atom in meV: ``1000 · (E_pred − E_ref) / N_atoms`` with E in eV;
- density error in %: ``100 · ∫ |n_pred − n_true| dr / ∫ n_true dr``, the L1 norm of the density error relative
  to the electron count (on a uniform grid the voxel volume cancels: ``100 · Σ|Δn| / Σ n_true``);
- the committee spread of the density in the same form: ``100 · ∫ σ_n(r) dr / ∫ n_true dr`` with σ_n(r) the
  standard deviation (ddof=1) of the members' densities at r.
"""

from __future__ import annotations

import numpy as np


def mev_per_atom(delta_ev: float, n_atoms: int) -> float:
    """An energy difference ``delta_ev`` (eV) of a cell of ``n_atoms`` atoms in meV/atom."""
    return float(delta_ev) * 1000.0 / max(int(n_atoms), 1)


def density_error_percent(pred: np.ndarray, true: np.ndarray) -> float:
    """``100 · Σ|n_pred − n_true| / Σ n_true`` (%) for densities on the same uniform grid (any shape, 1/Å³)."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"predicted density {p.shape} and true density {t.shape} are on different grids")
    total = float(t.sum())
    if not total > 0:
        raise ValueError(f"the true density integrates to {total}: cannot express the error in percent")
    return 100.0 * float(np.abs(p - t).sum()) / total


def density_spread_percent(members: np.ndarray, true: np.ndarray) -> float:
    """``100 · Σ σ_n / Σ n_true`` (%) for member densities ``members`` (M, ...) and the true density (...)."""
    m = np.asarray(members, dtype=np.float64)
    if len(m) < 2:
        return 0.0
    return 100.0 * float(m.std(axis=0, ddof=1).sum()) / float(np.asarray(true, dtype=np.float64).sum())


__all__ = ["density_error_percent", "density_spread_percent", "mev_per_atom"]
