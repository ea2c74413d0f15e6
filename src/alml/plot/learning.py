"""Learning curves and parity plots of trained potentials. Arrays in, Figure out."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

_PANELS = (("e_rmse", "energy RMSE (meV/atom)"), ("f_rmse", "force RMSE (eV/Å)"), ("loss", "loss"))


def learning_curves_figure(histories: Sequence[Sequence[dict[str, float]]]) -> Figure:
    """Train (dashed) and validation (solid) RMSEs and loss against epoch, one colour per member.

    ``histories``: per member, the epoch records of :func:`alml.nn.training.fit` (keys ``epoch``,
    ``train_e_rmse``, ``val_e_rmse``, ``train_f_rmse``, ..., ``lr``).
    """
    panels = [(k, label) for k, label in _PANELS if any(f"train_{k}" in r or f"val_{k}" in r
                                                         for h in histories for r in h)]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4.2 * max(len(panels), 1), 3.4), layout="constrained",
                             squeeze=False)
    colours = plt.cm.viridis(np.linspace(0, 0.9, max(len(histories), 1)))
    for ax, (key, label) in zip(axes[0], panels):
        for m, (hist, c) in enumerate(zip(histories, colours)):
            ep = np.array([r["epoch"] for r in hist])
            for split, ls in (("train", "--"), ("val", "-")):
                y = np.array([r.get(f"{split}_{key}", np.nan) for r in hist], dtype=float)
                if np.isfinite(y).any():
                    ax.semilogy(ep, y, ls, color=c, lw=1, label=f"{split} {m}" if m == 0 else None)
        ax.set(xlabel="epoch", ylabel=label)
        ax.legend(fontsize=7)
    fig.suptitle(f"learning curves ({len(histories)} member{'s' if len(histories) != 1 else ''}; "
                 "dashed train, solid validation)", fontsize=9)
    return fig


def parity_figure(
    energy_ref: np.ndarray,
    energy_pred: np.ndarray,
    forces_ref: np.ndarray | None = None,
    forces_pred: np.ndarray | None = None,
    title: str = "",
) -> Figure:
    """Predicted against reference energy per atom (eV/atom) and force components (eV/Å), with RMSEs."""
    have_f = forces_ref is not None and forces_pred is not None and np.size(forces_ref) > 0
    fig, axes = plt.subplots(1, 2 if have_f else 1, figsize=(8.4 if have_f else 4.2, 3.8), layout="constrained",
                             squeeze=False)
    pairs = [(np.ravel(energy_ref), np.ravel(energy_pred), "E/N (eV/atom)", 1000, "meV/atom")]
    if have_f:
        pairs.append((np.ravel(forces_ref), np.ravel(forces_pred), "force component (eV/Å)", 1, "eV/Å"))
    for ax, (ref, pred, label, factor, unit) in zip(axes[0], pairs):
        ax.plot(ref, pred, ".", ms=3, alpha=0.6)
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k-", lw=0.7)
        rmse = factor * float(np.sqrt(np.mean((pred - ref) ** 2)))
        ax.set(xlabel=f"reference {label}", ylabel=f"predicted {label}", title=f"RMSE {rmse:.3g} {unit}")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
