"""How local is the band energy? A network for two scalars per grid point, with and without an output-layer refit.

Targets per point: the density n(r) = Σ_j c_occ,j LDOS_j(r) and the band-energy density b(r) = Σ_j c'_j LDOS_j(r),
c' = c_band − μ c_occ at the snapshot's QE Fermi level μ (to first order the band-energy error of an LDOS model
is ∫ Δb). Inputs: descriptors + atom density. Fitted on POINTS points of every finished training snapshot of
runs/ldos_v1, a (HIDDEN) ReLU network, Adam + cosine schedule over EPOCHS epochs; every 5 epochs it prints per
snapshot "ΔE_band meV/atom / density error % / ΔN electrons", as trained and after refitting the output layer by
least squares (alml.nn.refit). First: QE's energy terms per atom of every snapshot, and a quadratic ridge baseline.

    .venv/bin/python bench/ldos_scalar_probe.py 65536 400,400 30     # POINTS HIDDEN EPOCHS; ~8 min on a busy core

Findings: docs/benchmarks.md, "Integrated observables amplify a common output bias".
"""

# ruff: noqa: E402  (imports follow the sys.path set-up for src/ and bench/)

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
from alml.runtime import set_threads

set_threads(1)
from ldos_density_probe import features, load

from alml.data.grids import open_ldos_h5
from alml.surrogate.observables import integration_weights


def load_meta(folder):
    with open_ldos_h5(folder / "ldos.h5") as f:
        return f.meta()


torch.manual_seed(0)
data = REPO / "runs" / "ldos_v1"
snaps = {
    c: r
    for c, r in json.loads((data / "dataset.json").read_text())["snapshots"].items()
    if r.get("status") == "done" and r["split"] != "large"
}
train = [c for c, r in snaps.items() if r["split"] == "train"]
test = sorted(snaps)
X, Tg, info = {}, {}, {}
for c in test:
    r = load_meta(data / snaps[c]["folder"]).reference
    print(
        f"{c:14s} mu {r.fermi_level:.4f} eV; per atom: E_band {r.band_energy / 32:.4f} F {r.free_energy / 32:.4f} "
        + " ".join(f"{k} {v / 32:.4f}" for k, v in r.terms.items()),
        flush=True,
    )
for c in test:
    x, y, meta = load(data / snaps[c]["folder"])
    mu, T = meta.reference.fermi_level, meta.temperature
    wo = integration_weights(meta.ladder, "occupation", mu, T)
    wb = integration_weights(meta.ladder, "band", mu, T)
    Tg[c] = np.stack([y @ wo, y @ (wb - mu * wo)], 1)
    X[c] = x
    info[c] = (len(meta.atoms), meta.atoms.get_volume(), len(y))
    del y
rng = np.random.default_rng(0)
idx = {c: rng.choice(len(X[c]), int(sys.argv[1]), replace=False) for c in train}
xf = np.vstack([X[c][idx[c]] for c in train])
tf = np.vstack([Tg[c][idx[c]] for c in train])
xm, xs = xf.mean(0), xf.std(0)
xs[xs < 1e-12] = 1
tm, ts = tf.mean(0), tf.std(0)


def report(tag, predict):
    out = []
    for c in test:
        N, V, P = info[c]
        p = predict(c)
        dn = 100 * np.abs(p[:, 0] - Tg[c][:, 0]).sum() / Tg[c][:, 0].sum()
        db = 1000 * (p[:, 1].sum() - Tg[c][:, 1].sum()) * V / P / N
        dN = (p[:, 0].sum() - Tg[c][:, 0].sum()) * V / P
        out.append(f"{c}{'*' if snaps[c]['split'] != 'train' else ''} {db:+.1f}/{dn:.2f}%/{dN:+.3f}")
    print(tag, " | ".join(out), flush=True)


# ridge on the same targets
F = features((xf - xm) / xs, True)
Wr = np.linalg.solve(F.T @ F + 1e-3 * len(F) * np.eye(F.shape[1]), F.T @ tf)
report("ridge", lambda c: features((X[c] - xm) / xs, True) @ Wr)
hidden = [int(h) for h in sys.argv[2].split(",")]
layers, n = [], xf.shape[1]
for h in hidden:
    layers += [torch.nn.Linear(n, h), torch.nn.ReLU()]
    n = h
net = torch.nn.Sequential(*layers, torch.nn.Linear(n, 2))
opt = torch.optim.Adam(net.parameters(), 1e-3)
xt = torch.tensor((xf - xm) / xs, dtype=torch.float32)
tt = torch.tensor((tf - tm) / ts, dtype=torch.float32)


def pred(c):
    with torch.no_grad():
        return net(torch.tensor((X[c] - xm) / xs, dtype=torch.float32)).numpy() * ts + tm


sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, int(sys.argv[3]))
for ep in range(int(sys.argv[3])):
    t0 = time.time()
    perm = torch.randperm(len(xt))
    tot = 0
    for i in range(0, len(xt), 1024):
        b = perm[i : i + 1024]
        opt.zero_grad()
        loss = ((net(xt[b]) - tt[b]) ** 2).mean()
        loss.backward()
        opt.step()
        tot += loss.item() * len(b)
    sched.step()
    if ep % 5 == 4 or ep == int(sys.argv[3]) - 1:
        report(f"ep{ep + 1} loss {tot / len(xt):.4f} ({time.time() - t0:.0f}s)", pred)
        body = net[:-1]
        with torch.no_grad():
            H = body(xt).double().numpy()
        H1 = np.hstack([H, np.ones((len(H), 1))])
        A = H1.T @ H1
        A[np.diag_indices_from(A)] += 1e-6 * np.trace(A) / len(A)
        Wl = np.linalg.solve(A, H1.T @ ((tf - tm) / ts))

        def pred_refit(c, body=body, Wl=Wl):
            with torch.no_grad():
                h = body(torch.tensor((X[c] - xm) / xs, dtype=torch.float32)).double().numpy()
            return (h @ Wl[:-1] + Wl[-1]) * ts + tm

        report(f"ep{ep + 1} refit", pred_refit)
