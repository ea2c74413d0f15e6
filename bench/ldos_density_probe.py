"""Can a local model follow the LDOS across densities? A quick linear probe on the ML-DFT dataset.

A ridge regression from each grid point's descriptors (standardised, with their squares) to its LDOS is fitted on
points of the ``--train`` snapshots and tested on whole ``--test`` snapshots: band energy, Harris–Foulkes free
energy and Fermi level of the predicted LDOS against pw.x. Once with the descriptors alone, once with the cell's atom
density (and its products with the descriptors) as extra inputs (``alml.surrogate.inputs``). No network, a minute
of CPU: it shows whether the inputs carry what the target needs, not how well a network does.

    .venv/bin/python bench/ldos_density_probe.py     # all finished train/validation snapshots of runs/ldos_v1

Findings are in docs/benchmarks.md, "ML-DFT across densities".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=REPO / "runs" / "ldos_v1", help="build_ldos_dataset.py root")
    p.add_argument("--train", nargs="*", default=None, help="candidates to fit (default: finished train split)")
    p.add_argument("--test", nargs="*", default=None, help="candidates to test (default: all finished non-large)")
    p.add_argument("--points", type=int, default=40000, help="points drawn from each training snapshot")
    p.add_argument("--ridge", type=float, default=1e-3, help="ridge strength per point")
    return p.parse_args(argv)


def load(folder: Path) -> tuple[np.ndarray, np.ndarray, Any]:
    """Descriptors (P, K) with the atom density appended, LDOS (P, n_e), LDOS metadata."""
    from alml.data.grids import read_ldos_h5
    from alml.descriptors.grid_io import read_grid_h5
    from alml.surrogate.inputs import global_values, with_globals

    y, meta = read_ldos_h5(folder / "ldos.h5")
    x, _, _ = read_grid_h5(folder / "descriptors.h5")
    x = with_globals(x.reshape(-1, x.shape[-1]).astype(np.float64), global_values(meta.atoms, ["atom_density"]))
    return x, y.reshape(-1, y.shape[-1]).astype(np.float64), meta


def features(z: np.ndarray, density: bool) -> np.ndarray:
    """Standardised inputs z (P, K + 1) -> [d, d², (ρ, ρ·d)] + 1, d the descriptors, ρ the atom density."""
    d = z[:, :-1]
    parts = [d, d**2] + ([z[:, -1:], d * z[:, -1:]] if density else []) + [np.ones((len(z), 1))]
    return np.hstack(parts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from alml.dft.pseudo import pseudopotential
    from alml.runtime import set_threads
    from alml.surrogate.total_energy import energies_from_ldos

    set_threads(1)
    snaps = {c: r for c, r in json.loads((args.data / "dataset.json").read_text())["snapshots"].items()
             if r.get("status") == "done" and r["split"] != "large"}
    train = args.train or [c for c, r in snaps.items() if r["split"] == "train"]
    test = args.test or sorted(snaps)
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for c in train:
        x, y, _ = load(args.data / snaps[c]["folder"])
        idx = rng.choice(len(x), min(args.points, len(x)), replace=False)
        xs.append(x[idx])
        ys.append(y[idx])
    x_fit, y_fit = np.vstack(xs), np.vstack(ys)
    mu, sd = x_fit.mean(0), x_fit.std(0)
    sd[sd < 1e-12] = 1.0
    weights = {}
    for density in (False, True):
        f = features((x_fit - mu) / sd, density)
        weights[density] = np.linalg.solve(f.T @ f + args.ridge * len(f) * np.eye(f.shape[1]), f.T @ y_fit)
    pseudo = {"Al": pseudopotential("Al")}
    print(f"fit on {', '.join(train)} ({len(x_fit)} points)\n")
    print("| snapshot | split | inputs | LDOS rel. RMSE | ΔE_band (meV/atom) | ΔF (meV/atom) | Δμ (meV) |")
    print("|---|---|---|---|---|---|---|")
    for c in test:
        x, y, meta = load(args.data / snaps[c]["folder"])
        n, ref = len(meta.atoms), meta.reference
        for density in (False, True):
            pred = features((x - mu) / sd, density) @ weights[density]
            rel = float(np.sqrt(np.mean((pred - y) ** 2)) / y.std())
            try:
                obs, terms = energies_from_ldos(pred.reshape(*meta.shape, -1), meta.ladder, meta.atoms,
                                                meta.temperature, meta.n_electrons, pseudo, meta.ecutrho)
                cells = (f"{1000 * (obs.band_energy - ref.band_energy) / n:+.1f} | "
                         f"{1000 * (terms.free_energy - ref.free_energy) / n:+.1f} | "
                         f"{1000 * (obs.fermi_level - ref.fermi_level):+.1f}")
            except ValueError as err:  # no Fermi level in the predicted LDOS
                cells = f"n/a ({err}) | | "
            inputs = "descriptors + atom density" if density else "descriptors"
            print(f"| {c} | {snaps[c]['split']} | {inputs} | {rel:.3f} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
