"""The prediction passes' network work, side by side in one run: forming every member's LDOS (the route before
2026-11-22) against the affine read-out of the last hidden layer (:class:`alml.surrogate.passes.Readout`).

Usage (a trained LDOS model and a stored snapshot's grid descriptors; 1 torch thread unless --threads)::

  .venv/bin/python bench/bench_readout.py --model runs/mldft_acceptance/model \
      --descriptors runs/ldos_v1/snapshots/<id>/descriptors.h5 [--points 131072] [--repeats 3]

The members run in each ``--dtype`` (``PredictConfig.network_dtype``). Both routes do what
pass 1 (DOS sums) and pass 2 (densities of every member and of the mean LDOS) need, in batches of ``--batch``
points, on the same float32 descriptors. Prints seconds per route (best of ``--repeats``), grid points/s, the
ratio, and the largest relative difference of the DOS and the densities.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def full_route(model, x, g, weights, batch):  # noqa: ANN001, ANN201
    """The LDOS of every member (M, P, n_e), then its sums and weighted sums."""
    import torch

    from alml.surrogate.inputs import with_globals

    n_m = model.n_members
    dtype = next(model.members.parameters()).dtype
    dos = np.zeros((n_m, model.n_out))
    rho = np.empty((n_m + 1, len(x)))
    with torch.no_grad():
        for b0 in range(0, len(x), batch):
            xb = torch.as_tensor(with_globals(x[b0 : b0 + batch], g), dtype=dtype)
            y = np.stack([net(xb).double().numpy() for net in model.members])
            dos += y.sum(axis=1)
            rho[:n_m, b0 : b0 + batch] = np.einsum("mpe,me->mp", y, weights[:n_m])
            rho[n_m, b0 : b0 + batch] = y.mean(axis=0) @ weights[n_m]
    return dos, rho


def readout_route(model, x, g, weights, batch):  # noqa: ANN001, ANN201
    """Last hidden layer only; the DOS from Σh and the densities from h · (aᵀw)."""
    from alml.surrogate.passes import Readout, members_features

    readout = Readout.of(model)
    sums = np.zeros((model.n_members, readout.a.shape[2]))
    rho = np.empty((model.n_members + 1, len(x)))
    for b0 in range(0, len(x), batch):
        h = members_features(model, x[b0 : b0 + batch], g)
        sums += h.sum(axis=1)
        rho[:, b0 : b0 + batch] = readout.densities(h, weights)
    dos = np.einsum("meh,mh->me", readout.a, sums) + len(x) * readout.c
    return dos, rho


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--descriptors", type=Path, required=True, help="a snapshot's descriptors.h5")
    ap.add_argument("--points", type=int, default=131072)
    ap.add_argument("--batch", type=int, default=8192, help="as PredictConfig.batch_points")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", choices=("float64", "float32"), nargs="+", default=["float64", "float32"],
                    help="the members' dtypes, each timed with both routes")
    args = ap.parse_args()

    import torch

    from alml.descriptors.grid_io import read_grid_h5
    from alml.surrogate.model import load_ldos_model

    torch.set_num_threads(args.threads)
    model = load_ldos_model(args.model)
    desc, _, atoms = read_grid_h5(args.descriptors)
    x = desc.reshape(-1, desc.shape[-1])[: args.points].astype(np.float32)
    g = model.inputs(x[:1], atoms)[0, x.shape[1] :]
    rng = np.random.default_rng(0)
    weights = rng.random((model.n_members + 1, model.n_out))  # any occupation weights: both routes are linear in them
    print(f"{len(x)} points, {model.n_members} members, n_e = {model.n_out}, {args.threads} thread(s), "
          f"batch {args.batch}")
    best, out = {}, {}
    for dtype in args.dtype:
        model.members.to(getattr(torch, dtype))
        for name, route in (("full LDOS", full_route), ("read-out", readout_route)):
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                out[name, dtype] = route(model, x, g, weights, args.batch)
                times.append(time.perf_counter() - t0)
            best[name, dtype] = min(times)
            print(f"  {name:10s} {dtype}  {best[name, dtype]:8.2f} s  {len(x) / best[name, dtype]:10.0f} points/s")
    ref = ("full LDOS", args.dtype[0])
    d0, r0 = out[ref]
    for key, (d1, r1) in out.items():
        print(f"  {key[0]:10s} {key[1]}: {best[ref] / best[key]:.2f}x faster than {ref[0]} {ref[1]}; max relative "
              f"difference: DOS {np.abs(d1 - d0).max() / np.abs(d0).max():.1e}, densities "
              f"{np.abs(r1 - r0).max() / np.abs(r0).max():.1e}")


if __name__ == "__main__":
    main()
