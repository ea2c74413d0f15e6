"""Would smoother LDOS targets help? Gaussian smoothing along the energy ladder: floors and a ridge probe.

Smoothing the stored samples by a (row-normalised) Gaussian of width σ_s on the ladder is a linear map S, so the
observables stay exact: the kernel basis becomes B Sᵀ in alml.surrogate.observables' pseudo-inverse. For each σ_s
(comma-separated, eV) and every finished snapshot of runs/ldos_v1 it prints the floor (band energy of the smoothed
true LDOS vs pw.x) and a quadratic ridge probe (bench/ldos_density_probe.py's features, fitted on 40 k points of
each training snapshot): the LDOS relative RMSE and the band-energy error of its prediction.

    .venv/bin/python bench/ldos_smoothing_probe.py 0,0.1,0.2      # ~2 min

Findings: docs/benchmarks.md, "Integrated observables amplify a common output bias".
"""

# ruff: noqa: E402  (imports follow the sys.path set-up for src/ and bench/)

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
from alml.runtime import set_threads

set_threads(1)
from ldos_density_probe import features, load

from alml.data.grids import broadening_kernel
from alml.surrogate import observables as ob

data = REPO / "runs" / "ldos_v1"
snaps = {
    c: r
    for c, r in json.loads((data / "dataset.json").read_text())["snapshots"].items()
    if r.get("status") == "done" and r["split"] != "large"
}


def smoother(e, s):
    if s == 0:
        return np.eye(len(e))
    d = e[:, None] - e[None, :]
    g = np.exp(-0.5 * (d / s) ** 2)
    return g / g.sum(axis=1, keepdims=True)  # row-normalised (interior rows: exact Gaussian sums)


def make_weights(lad, S, T, rcond=1e-6):
    sig = lad.broadening
    std = sig * math.pi / math.sqrt(3.0)
    step = ob._mesh_step(lad, T)
    mesh = np.arange(lad.emin + 3 * std, lad.emax + ob._TAIL[lad.kernel] * sig + 0.5 * step, step)
    B = broadening_kernel(lad.energies[None, :] - mesh[:, None], sig, lad.kernel) @ S.T
    u, s, vt = np.linalg.svd(B, full_matrices=False)
    keep = s > rcond * s[0]
    P = (vt[keep].T / s[keep]) @ u[:, keep].T
    return lambda q, mu: P @ ob._target(q, mesh, mu, T)


def energies(d, W, nel):
    from scipy.optimize import brentq

    def f(mu):
        return W("occupation", mu) @ d - nel

    mu = brentq(f, 3.0, 9.4, xtol=1e-8)
    return mu, W("band", mu) @ d


sigmas = [float(a) for a in sys.argv[1].split(",")]
train = [c for c, r in snaps.items() if r["split"] == "train"]
test = sorted(snaps)
rng = np.random.default_rng(0)
X = {}
Y = {}
M = {}
for c in test:
    x, y, meta = load(data / snaps[c]["folder"])
    X[c] = x
    Y[c] = y.astype(np.float32)
    M[c] = meta
lad = M[test[0]].ladder
e = lad.energies
fit_idx = {c: rng.choice(len(X[c]), 40000, replace=False) for c in train}
x_fit = np.vstack([X[c][fit_idx[c]] for c in train])
mu_x, sd_x = x_fit.mean(0), x_fit.std(0)
sd_x[sd_x < 1e-12] = 1
F = features((x_fit - mu_x) / sd_x, True)
G = F.T @ F + 1e-3 * len(F) * np.eye(F.shape[1])
for s in sigmas:
    S = smoother(e, s)
    t0 = time.time()
    Ws = {}
    y_fit = np.vstack([Y[c][fit_idx[c]] for c in train]) @ S.T
    Wr = np.linalg.solve(G, F.T @ y_fit)
    for c in test:
        meta = M[c]
        T = meta.temperature
        N = len(meta.atoms)
        V = meta.atoms.get_volume()
        W = Ws.setdefault(T, make_weights(lad, S, T))
        ys = Y[c] @ S.T.astype(np.float32)
        pred = features((X[c] - mu_x) / sd_x, True) @ Wr
        dt = ys.sum(0, dtype=np.float64) * V / len(ys)
        dp = pred.sum(0) * V / len(ys)
        mt, et = energies(dt, W, meta.n_electrons)
        mp, ep = energies(dp, W, meta.n_electrons)
        qe = meta.reference
        rel = np.sqrt(((pred - ys) ** 2).mean() / (ys**2).mean())
        print(
            f"sigma {s:.3f} {c:14s} {snaps[c]['split']:10s} "
            f"floor dEb {1000 * (et - qe.band_energy) / N:+7.3f} dmu {1000 * (mt - qe.fermi_level):+6.2f} | "
            f"ridge relRMSE {rel:.3f} dEb {1000 * (ep - et) / N:+7.1f} dmu {1000 * (mp - mt):+6.1f}",
            flush=True,
        )
    print(f"  ({time.time() - t0:.0f} s)", flush=True)
