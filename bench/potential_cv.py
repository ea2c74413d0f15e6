"""Compare potential configs by k-fold cross-validation on the train split only (the test split stays unseen).

Usage (repo root)::

    .venv/bin/python bench/potential_cv.py --configs examples/potential_al.yaml my_variant.yaml --folds 5

Every config trains one network per fold (committee size 1, the config's own epochs and schedule) on the other
folds' frames of ``split=train`` in ``data/al_dft_v1.extxyz``. The held-out fold's predictions are pooled over the
folds, and the script reports energy RMSE (meV/atom) and force RMSE (eV/Å), overall and per category. The folds are
stratified by category and are the same for every config, so the configs see the same data. Choose with this;
``bench/potential_acceptance.py`` then measures the chosen config once on the test split.

Writes ``<out>/cv.json`` and the fold models under ``<out>/<config stem>/fold<k>`` (a rerun resumes them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def folds_by_category(categories: list[str], k: int, seed: int) -> np.ndarray:
    """Fold index per frame: each category's frames shuffled, then dealt round-robin over the k folds."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(categories), dtype=int)
    start = 0
    for c in sorted(set(categories)):
        idx = rng.permutation([i for i, ci in enumerate(categories) if ci == c])
        fold[idx] = (start + np.arange(len(idx))) % k
        start += len(idx)  # the next category starts where this one stopped: folds stay the same size
    return fold


def _rmse(e_err: np.ndarray, f_sq: np.ndarray, f_n: np.ndarray, i: list[int] | slice) -> dict[str, float]:
    """Energy RMSE (meV/atom) and force-component RMSE (eV/Å) over the frames ``i``."""
    return {"e_rmse_mev": 1e3 * float(np.sqrt(np.mean(e_err[i] ** 2))),
            "f_rmse": float(np.sqrt(f_sq[i].sum() / f_n[i].sum()))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", type=Path, nargs="+", default=[REPO / "examples" / "potential_al.yaml"])
    p.add_argument("--data", type=Path, default=REPO / "data" / "al_dft_v1.extxyz")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "runs" / "potential_cv")
    args = p.parse_args(argv)
    if args.folds < 2:
        raise SystemExit("--folds must be at least 2")

    from ase.io import read
    from potential_acceptance import load_potential_config

    from alml.io import atomic_write_json
    from alml.potential.dataset import pack
    from alml.potential.train import predict_dataset, train_potential
    from alml.runtime import set_threads

    train = [a for a in read(args.data, index=":", format="extxyz") if a.info.get("split") == "train"]
    cats = [str(a.info.get("category", "?")) for a in train]
    fold = folds_by_category(cats, args.folds, args.seed)
    print(f"{len(train)} train frames of {args.data.name}, {args.folds} folds")
    report: dict = {"data": str(args.data), "n_frames": len(train), "folds": args.folds, "configs": {}}
    for cfg_path in args.configs:
        pc = load_potential_config(cfg_path, members=1, epochs=None, workers=None)
        set_threads(pc.training.threads)
        cache = args.out / "descriptors"
        e_err = np.empty(len(train))
        f_sq = np.empty(len(train))
        f_n = np.empty(len(train))
        for k in range(args.folds):
            fit = [a for a, f in zip(train, fold) if f != k]
            held = [i for i, f in enumerate(fold) if f == k]
            pot = train_potential(pack(fit, pc.descriptors, cache=cache, energy_key=pc.energy_key), pc,
                                  args.out / cfg_path.stem / f"fold{k}")
            pred = predict_dataset(pot, pack([train[i] for i in held], pc.descriptors, cache=cache,
                                             energy_key=pc.energy_key))
            e_err[held] = pred.energy_pred - pred.energy_ref
            f_sq[held], f_n[held] = pred.force_sq, pred.force_count
        row = {**_rmse(e_err, f_sq, f_n, slice(None)), "by_category": {},
               "frames": {str(a.info.get("candidate", i)): {"fold": int(fold[i]), "e_err_mev": 1e3 * float(e_err[i]),
                                                           "f_rmse": float(np.sqrt(f_sq[i] / f_n[i]))}
                          for i, a in enumerate(train)}}
        for c in sorted(set(cats)):
            i = [j for j, cj in enumerate(cats) if cj == c]
            row["by_category"][c] = {"n": len(i), **_rmse(e_err, f_sq, f_n, i)}
        report["configs"][str(cfg_path)] = row
        print(f"{cfg_path.name}: CV E RMSE {row['e_rmse_mev']:.2f} meV/atom, F RMSE {row['f_rmse']:.4f} eV/Å")
        for c, r in row["by_category"].items():
            print(f"  {c:13s} n={r['n']:3d}  E {r['e_rmse_mev']:8.2f} meV/atom  F {r['f_rmse']:.4f} eV/Å")
    atomic_write_json(args.out / "cv.json", report)
    print(f"wrote {args.out / 'cv.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
