"""Figures of the ML-DFT surrogate: DOS with the committee band, density slices, errors per snapshot, HPO history.

Arrays in, Figure out (Agg backend); the caller saves or shows them.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def dos_figure(
    energies: np.ndarray,
    dos_true: np.ndarray,
    dos_pred: np.ndarray,
    dos_std: np.ndarray | None = None,
    fermi_level: float | None = None,
    title: str = "",
) -> Figure:
    """Predicted (committee mean ± std, shaded) against DFT DOS (states/eV) over energies (eV); a dashed line at
    the Fermi level (eV) when given, and the difference below."""
    e = np.asarray(energies, dtype=float)
    t, p = np.asarray(dos_true, dtype=float), np.asarray(dos_pred, dtype=float)
    fig, (ax, dax) = plt.subplots(2, 1, figsize=(5.6, 4.6), sharex=True, layout="constrained",
                                  gridspec_kw={"height_ratios": (3, 1)})
    ax.plot(e, t, "k-", lw=1.2, label="DFT")
    ax.plot(e, p, "C0-", lw=1.0, label="ML (committee mean)")
    if dos_std is not None:
        s = np.asarray(dos_std, dtype=float)
        ax.fill_between(e, p - s, p + s, color="C0", alpha=0.3, lw=0, label="± committee std")
        dax.fill_between(e, -s, s, color="C0", alpha=0.3, lw=0)
    dax.plot(e, p - t, "C0-", lw=0.8)
    dax.axhline(0.0, color="k", lw=0.6)
    for a in (ax, dax):
        if fermi_level is not None and np.isfinite(fermi_level):
            a.axvline(fermi_level, color="0.4", ls="--", lw=0.8)
    ax.set(ylabel="DOS (states/eV)", title=title or None)
    dax.set(xlabel="energy (eV)", ylabel="ML − DFT")
    ax.legend(fontsize=7)
    return fig


def density_slices_figure(
    density_pred: np.ndarray, density_true: np.ndarray, axis: int = 2, index: int | None = None, title: str = ""
) -> Figure:
    """Predicted, DFT and difference of the electron density (nx, ny, nz) in 1/Å³ on the grid plane ``index``
    (default: the middle) normal to ``axis``; pred and DFT share one colour scale, the difference is centred."""
    p, t = np.asarray(density_pred, dtype=float), np.asarray(density_true, dtype=float)
    if p.shape != t.shape or p.ndim != 3:
        raise ValueError(f"densities must be two (nx, ny, nz) arrays on one grid, got {p.shape} and {t.shape}")
    idx = p.shape[axis] // 2 if index is None else int(index)
    sp, st = np.take(p, idx, axis=axis), np.take(t, idx, axis=axis)
    d = sp - st
    lo, hi = float(min(np.nanmin(sp), np.nanmin(st))), float(max(np.nanmax(sp), np.nanmax(st)))
    lim = float(np.nanmax(np.abs(d))) or 1.0
    fig, axes = plt.subplots(1, 3, figsize=(11.0, 3.4), layout="constrained")
    names = "xyz"
    plane = [names[k] for k in range(3) if k != axis]
    for ax, data, label, kw in (
        (axes[0], sp, "ML", {"vmin": lo, "vmax": hi, "cmap": "viridis"}),
        (axes[1], st, "DFT", {"vmin": lo, "vmax": hi, "cmap": "viridis"}),
        (axes[2], d, "ML − DFT", {"vmin": -lim, "vmax": lim, "cmap": "RdBu_r"}),
    ):
        im = ax.imshow(data.T, origin="lower", **kw)
        ax.set(title=f"{label} (1/Å³)", xlabel=f"{plane[0]} index", ylabel=f"{plane[1]} index")
        fig.colorbar(im, ax=ax, shrink=0.85)
    fig.suptitle(f"{title + ': ' if title else ''}density on plane {names[axis]} = {idx}", fontsize=9)
    return fig


def snapshot_errors_figure(
    names: Sequence[str],
    band_error: Sequence[float],
    band_std: Sequence[float] | None = None,
    total_error: Sequence[float] | None = None,
    total_std: Sequence[float] | None = None,
    title: str = "",
) -> Figure:
    """Signed band-energy and total-energy errors (meV/atom) per snapshot as bars, committee std as error bars;
    a total-energy series of NaNs only is left out."""
    x = np.arange(len(names))
    series = [("band energy", band_error, band_std)]
    if total_error is not None and np.isfinite(np.asarray(total_error, dtype=float)).any():
        series.append(("total energy", total_error, total_std))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(names) + 2.5), 3.4), layout="constrained")
    for k, (label, err, std) in enumerate(series):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, np.asarray(err, dtype=float), width,
               yerr=None if std is None else np.asarray(std, dtype=float), capsize=3, label=label, color=f"C{k}")
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_xticks(x, list(names), rotation=30 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
    ax.set(ylabel="ML − reference (meV/atom)", title=title or "errors per snapshot (bars: committee std)")
    ax.legend(fontsize=7)
    return fig


def hpo_history_figure(
    numbers: Sequence[int], values: Sequence[float], states: Sequence[str] | None = None, title: str = ""
) -> Figure:
    """Objective (validation band-energy error, meV/atom) per trial number: finished trials as dots, pruned ones
    (``states`` "PRUNED") as crosses at their last reported value, and the best so far as a step line."""
    n = np.asarray(numbers, dtype=float)
    v = np.asarray(values, dtype=float)
    st = np.asarray(states if states is not None else ["COMPLETE"] * len(n))
    fig, ax = plt.subplots(figsize=(5.2, 3.4), layout="constrained")
    done = (st == "COMPLETE") & np.isfinite(v)
    pruned = (st == "PRUNED") & np.isfinite(v)
    ax.plot(n[done], v[done], "o", ms=4, color="C0", label="complete")
    if pruned.any():
        ax.plot(n[pruned], v[pruned], "x", ms=5, color="C3", label="pruned (last report)")
    if done.any():
        order = np.argsort(n[done])
        ax.step(n[done][order], np.minimum.accumulate(v[done][order]), where="post", color="k", lw=1, label="best")
    if np.all(v[np.isfinite(v)] > 0) and np.isfinite(v).any():
        ax.set_yscale("log")
    ax.set(xlabel="trial", ylabel="val. band-energy error (meV/atom)", title=title or "hyperparameter search")
    ax.legend(fontsize=7)
    return fig


__all__ = ["density_slices_figure", "dos_figure", "hpo_history_figure", "snapshot_errors_figure"]


def prediction_figure(
    energies: np.ndarray,
    dos: np.ndarray,
    dos_std: np.ndarray,
    density: np.ndarray | None = None,
    fermi_level: float | None = None,
    axis: int = 2,
    title: str = "",
) -> Figure:
    """A prediction without a DFT reference: DOS (committee mean ± std, states/eV) against energy (eV) with the
    Fermi level dashed, and, when given, the density (nx, ny, nz) in 1/Å³ on the middle grid plane normal to
    ``axis``."""
    e, p, s = (np.asarray(v, dtype=float) for v in (energies, dos, dos_std))
    fig, axes = plt.subplots(1, 2 if density is not None else 1, figsize=(10.0 if density is not None else 5.4, 3.6),
                             layout="constrained", squeeze=False)
    ax = axes[0][0]
    ax.plot(e, p, "C0-", lw=1.0, label="ML (committee mean)")
    ax.fill_between(e, p - s, p + s, color="C0", alpha=0.3, lw=0, label="± committee std")
    if fermi_level is not None and np.isfinite(fermi_level):
        ax.axvline(fermi_level, color="0.4", ls="--", lw=0.8, label=f"Fermi level {fermi_level:.3f} eV")
    ax.set(xlabel="energy (eV)", ylabel="DOS (states/eV)", title=title or None)
    ax.legend(fontsize=7)
    if density is not None:
        d = np.asarray(density, dtype=float)
        sl = np.take(d, d.shape[axis] // 2, axis=axis)
        im = axes[0][1].imshow(sl.T, origin="lower", cmap="viridis")
        names = [c for k, c in enumerate("xyz") if k != axis]
        axes[0][1].set(xlabel=f"{names[0]} (grid index)", ylabel=f"{names[1]} (grid index)",
                       title=f"density, middle {'xyz'[axis]} plane")
        fig.colorbar(im, ax=axes[0][1], label="electrons/Å³")
    return fig
