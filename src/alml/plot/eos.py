"""Plots for pseudopotential validation: E(V) with its fit, and cutoff convergence. Arrays in, Figure out."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def pseudo_validation_figure(
    lattice_constants: np.ndarray,
    energies: np.ndarray,
    a0: float,
    bulk_modulus: float,
    cutoffs: np.ndarray,
    delta_e_error: np.ndarray,
    default_cutoff: float,
) -> Figure:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    a = np.asarray(lattice_constants)
    e = 1000 * (np.asarray(energies) - np.min(energies))
    ax1.plot(a, e, "o", label="pw.x")
    coef = np.polyfit(a, e, 3)
    xx = np.linspace(a.min(), a.max(), 200)
    ax1.plot(xx, np.polyval(coef, xx), "-", lw=1, label="cubic guide")
    ax1.axvline(a0, ls="--", c="k", lw=0.8, label=f"a0 = {a0:.4f} Å, B = {bulk_modulus:.1f} GPa")
    ax1.set(xlabel="fcc lattice constant (Å)", ylabel="E − E_min (meV/atom)", title="E(V), fcc Al")
    ax1.legend(fontsize=8)
    # The highest cutoff is the reference (zero by definition): leave it off the log axis.
    ax2.semilogy(np.asarray(cutoffs)[:-1], np.abs(np.asarray(delta_e_error)[:-1]), "o-")
    ax2.axhline(1.0, ls=":", c="r", label="1 meV/atom")
    ax2.axvline(default_cutoff, ls="--", c="k", lw=0.8, label=f"default {default_cutoff:g} Ry")
    ax2.set(xlabel="ecutwfc (Ry)", ylabel="|Δ(E_lo − E_hi)| (meV/atom)",
            title=f"cutoff convergence (vs {cutoffs[-1]:g} Ry)")
    ax2.legend(fontsize=8)
    return fig
