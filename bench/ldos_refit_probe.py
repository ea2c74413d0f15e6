"""What does the output-layer refit do to a trained LDOS model? Band energy and density per snapshot, before/after.

Loads a model folder, refits every member's output layer by exact least squares (``alml.nn.refit``) on
``--points`` grid points of each training snapshot of the ML-DFT dataset, and compares, for every finished
snapshot, the band energy (Fermi level from the electron count) and density of the committee-mean LDOS with those
of the snapshot's true LDOS: the ML error alone, without the floor against pw.x. Writes nothing to the model.

    .venv/bin/python bench/ldos_refit_probe.py runs/ldos_pilot/out_long/model    # ~5 min on 2 busy cores

Findings are in docs/benchmarks.md, "Integrated observables amplify a common output bias".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path, help="LDOS model folder")
    p.add_argument("--data", type=Path, default=REPO / "runs" / "ldos_v1", help="build_ldos_dataset.py root")
    p.add_argument("--points", type=int, default=65536, help="points per training snapshot for the refit")
    return p.parse_args(argv)


def errors(model: object, folder: Path) -> tuple[float, float]:
    """(band-energy error meV/atom, density error %) of the committee-mean LDOS against the true LDOS."""
    from alml.data.grids import read_ldos_h5
    from alml.descriptors.grid_io import read_grid_h5
    from alml.surrogate.metrics import density_error_percent
    from alml.surrogate.model import predict_ldos
    from alml.surrogate.observables import observables

    y, meta = read_ldos_h5(folder / "ldos.h5")
    x, _, _ = read_grid_h5(folder / "descriptors.h5")
    pred, _ = predict_ldos(model, x.reshape(-1, x.shape[-1]), meta.atoms)
    args = (meta.ladder, meta.atoms.get_volume(), meta.n_electrons, meta.temperature)
    true, ml = observables(y.reshape(-1, y.shape[-1]), *args), observables(pred, *args)
    n = len(meta.atoms)
    return 1000.0 * (ml.band_energy - true.band_energy) / n, density_error_percent(ml.density, true.density)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    import torch

    from alml.nn.refit import refit_output_layer
    from alml.runtime import set_threads
    from alml.surrogate.model import load_ldos_model
    from alml.surrogate.snapshots import load_points

    set_threads(1)
    snaps = {c: r for c, r in json.loads((args.data / "dataset.json").read_text())["snapshots"].items()
             if r.get("status") == "done" and r["split"] != "large"}
    train = [c for c, r in sorted(snaps.items()) if r["split"] == "train"]
    model = load_ldos_model(args.model)
    before = {c: errors(model, args.data / snaps[c]["folder"]) for c in sorted(snaps)}
    x, y, _ = load_points([args.data / snaps[c]["folder"] for c in train], args.points, 0, model.config.global_inputs)
    for k, net in enumerate(model.members):
        xt = (torch.as_tensor(x, dtype=torch.float64) - net.x_mean) / net.x_std
        yt = (torch.as_tensor(y, dtype=torch.float64) - net.y_mean) / net.y_std
        res = refit_output_layer(net.mlp, [(xt[i : i + 65536], yt[i : i + 65536]) for i in range(0, len(xt), 65536)])
        print(f"member {k}: training MSE (scaled) {res.mse_before:.4f} -> {res.mse_after:.4f} on {res.n_points} points")
    after = {c: errors(model, args.data / snaps[c]["folder"]) for c in sorted(snaps)}
    print(f"refit on {len(train)} training snapshots x {args.points} points: {', '.join(train)}")
    print("| snapshot | split | ΔE_band before (meV/atom) | after | density error before (%) | after |")
    print("|---|---|---|---|---|---|")
    for c in sorted(snaps):
        (b0, d0), (b1, d1) = before[c], after[c]
        print(f"| {c} | {snaps[c]['split']} | {b0:+.1f} | {b1:+.1f} | {d0:.2f} | {d1:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
