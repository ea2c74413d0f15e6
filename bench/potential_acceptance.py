"""Issue #5 acceptance: train the committee on the labelled Al set, test on its held-out split, compare to QE.

Usage (repo root)::

    .venv/bin/python bench/potential_acceptance.py                      # examples/potential_al.yaml, all epochs
    .venv/bin/python bench/potential_acceptance.py --epochs 50 --members 2 --out runs/pa_quick   # a smoke run

Reads ``data/al_dft_v1.extxyz`` (written by ``bench/build_al_dataset.py``; ``split`` = train/test per
frame, a fixed 20 % per category held out), trains on the train split (the committee's own validation
split comes out of it), and on the test split reports:

- energy RMSE/MAE (meV/atom) and force-component RMSE/MAE (eV/Å), overall and per category;
- the same RMSEs over the test frames within ``--near`` (0.5 eV/atom) of the fcc minimum, beside the overall
  figures, not instead of them (declared before the acceptance run, 2026-11-22, when unrelaxed interstitials
  0.6-4 eV/atom above fcc were still in the set; since a575d1e they are relaxed and the subset leaves out at most
  the 9-atom relaxed interstitials, 0.52-0.57 eV/atom above the lowest label);
- Spearman's rank correlation between the committee's ``energy_std`` (std of E / sqrt(N)) and the true
  |energy error| per structure, and between per-structure mean force std and force RMSE;
- fcc a0 and B from the model's E(V) (4-atom cube, the QE ``fcc-eos`` lattice constants, Birch–Murnaghan)
  against the same fit of the QE labels (same settings as every label).

Writes ``<out>/acceptance.json``, ``parity.png``, ``uncertainty.png``, ``eos.png`` and the model folder
``<out>/model`` (rerunning resumes the training from its checkpoints).
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=REPO / "data" / "al_dft_v1.extxyz")
    p.add_argument("--config", type=Path, default=REPO / "examples" / "potential_al.yaml",
                   help="YAML of a PotentialConfig (the potential: block of a train job, or the whole job)")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "potential_acceptance")
    p.add_argument("--members", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--workers", type=int, default=None, help="members trained at once")
    p.add_argument("--near", type=float, default=0.5,
                   help="eV/atom above the QE fcc minimum: the near-equilibrium subset reported beside the whole test")
    return p.parse_args(argv)


def load_potential_config(path: Path, members: int | None, epochs: int | None, workers: int | None):  # noqa: ANN201
    import yaml

    from alml.config import parse_config
    from alml.potential.config import PotentialConfig

    raw = yaml.safe_load(path.read_text()) or {}
    pc = parse_config(PotentialConfig, raw.get("potential", raw), source=str(path))
    upd = {k: v for k, v in (("members", members), ("workers", workers)) if v is not None}
    if upd:
        pc = pc.model_copy(update={"committee": pc.committee.model_copy(update=upd)})
    if epochs is not None:
        pc = pc.model_copy(update={"training": pc.training.model_copy(update={"epochs": epochs})})
    return pc


def spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from scipy.stats import spearmanr

    if len(x) < 3:
        return float("nan"), float("nan")
    r = spearmanr(x, y)
    return float(r.statistic), float(r.pvalue)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from ase.build import bulk
    from ase.io import read

    from alml.io import atomic_write, atomic_write_json
    from alml.plot.learning import parity_figure
    from alml.potential.calculator import NNCalculator
    from alml.potential.dataset import pack
    from alml.potential.train import predict_dataset, train_potential
    from alml.runtime import set_threads
    from alml.validate.eos import fit_eos

    pc = load_potential_config(args.config, args.members, args.epochs, args.workers)
    set_threads(pc.training.threads)
    frames = read(args.data, index=":", format="extxyz")
    train = [a for a in frames if a.info.get("split") == "train"]
    test = [a for a in frames if a.info.get("split") == "test"]
    if not train or not test:
        raise SystemExit(f"{args.data}: need frames with info split=train and split=test "
                         f"(have {len(train)} train, {len(test)} test)")
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "descriptors"
    print(f"{len(frames)} labelled frames: {len(train)} train, {len(test)} test; "
          f"{pc.committee.members} members, up to {pc.training.epochs} epochs")
    train_p = pack(train, pc.descriptors, cache=cache, energy_key=pc.energy_key, progress=True)
    pot = train_potential(train_p, pc, args.out / "model", provenance={"data": str(args.data)}, progress_every=50)

    test_p = pack(test, pc.descriptors, cache=cache, energy_key=pc.energy_key, progress=True)
    pred = predict_dataset(pot, test_p)
    m = pred.metrics
    err = pred.energy_pred - pred.energy_ref  # eV/atom
    rho, p_rho = spearman(pred.energy_std, np.abs(err))
    # per-category energy and force errors
    cats = [str(a.info.get("category", "?")) for a in test]
    per_struct_frmse = pred.force_rmse_per_structure()

    def rmse(idx: list[int] | np.ndarray) -> dict[str, float]:
        e, f = pred.rmse(idx)
        return {"e_rmse_mev": 1e3 * e, "f_rmse": f}

    by_cat = {}
    for c in sorted(set(cats)):
        idx = [i for i, ci in enumerate(cats) if ci == c]
        by_cat[c] = {"n": len(idx), **rmse(idx)}

    # the near-equilibrium subset: test frames within --near eV/atom of the QE fcc E(V) minimum
    e_fcc = min(a.get_potential_energy(force_consistent=True) / len(a) for a in frames
                if a.info.get("category") == "fcc-eos")
    near = np.flatnonzero(pred.energy_ref - e_fcc <= args.near)
    e_near, f_near = pred.rmse(near)
    sub = {"max_excess_ev_per_atom": args.near, "n": len(near), "e_rmse": 1e3 * e_near, "f_rmse": f_near}

    # force uncertainty vs force error, per structure (committee force std from the calculator)
    calc = NNCalculator(pot)
    fstd = []
    for a in test:
        b = a.copy()
        b.calc = calc
        b.get_forces()
        fstd.append(float(calc.results["forces_std_mean"]))
    rho_f, p_rho_f = spearman(np.array(fstd), per_struct_frmse)

    # E(V): model vs QE, same lattice constants as the QE points
    eos_frames = sorted((a for a in frames if a.info.get("category") == "fcc-eos"), key=lambda a: a.get_volume())
    lat = np.array([a.cell.lengths()[0] for a in eos_frames])
    e_qe = np.array([f.get_potential_energy(force_consistent=True) / len(f) for f in eos_frames])

    def model_e(a: float) -> float:
        at = bulk("Al", "fcc", a=a, cubic=True)
        at.calc = calc
        return at.get_potential_energy() / len(at)

    e_nn = np.array([model_e(a) for a in lat])
    qe, nn = fit_eos(lat**3 / 4, e_qe), fit_eos(lat**3 / 4, e_nn)  # fcc: 4 atoms per cubic cell
    res = {
        "data": str(args.data), "n_train": len(train), "n_test": len(test),
        "members": pot.n_members, "config": pc.model_dump(mode="json"),
        "test": {**m, "n_structures": len(test), "n_atoms": sum(len(a) for a in test)},
        "by_category": by_cat,
        "test_near_equilibrium": sub,
        "spearman_energy_std_vs_abs_error": {"rho": rho, "p": p_rho},
        "spearman_force_std_vs_force_rmse": {"rho": rho_f, "p": p_rho_f},
        "eos": {"qe": {"a0_A": qe.lattice_constant(4), "B_GPa": qe.bulk_modulus},
                "model": {"a0_A": nn.lattice_constant(4), "B_GPa": nn.bulk_modulus}},
    }
    atomic_write_json(args.out / "acceptance.json", res)

    fig = parity_figure(pred.energy_ref, pred.energy_pred, pred.forces_ref, pred.forces_pred,
                        title=f"held-out test ({len(test)} structures)")
    atomic_write(args.out / "parity.png", lambda p: fig.savefig(p, format="png", dpi=120))
    _uncertainty_plot(args.out / "uncertainty.png", pred.energy_std, np.abs(err), rho, cats)
    _eos_plot(args.out / "eos.png", lat, (qe, e_qe), (nn, e_nn))

    print(f"test: E RMSE {m['e_rmse']:.2f} meV/atom (MAE {m['e_mae']:.2f}); F RMSE {m['f_rmse']:.4f} eV/Å "
          f"(MAE {m['f_mae']:.4f})")
    print(f"  within {args.near} eV/atom of fcc ({sub['n']} of {len(test)}): E RMSE {sub['e_rmse']:.2f} meV/atom, "
          f"F RMSE {sub['f_rmse']:.4f} eV/Å")
    for c, row in by_cat.items():
        print(f"  {c:13s} n={row['n']:3d}  E {row['e_rmse_mev']:7.2f} meV/atom  F {row['f_rmse']:.4f} eV/Å")
    print(f"Spearman(energy_std, |E error|) = {rho:.3f} (p {p_rho:.2g}); "
          f"Spearman(force std, force RMSE) = {rho_f:.3f} (p {p_rho_f:.2g})")
    print(f"fcc a0: model {nn.lattice_constant(4):.4f} Å vs QE {qe.lattice_constant(4):.4f}; "
          f"B: model {nn.bulk_modulus:.1f} GPa vs QE {qe.bulk_modulus:.1f}")
    print(f"wrote {args.out / 'acceptance.json'} and plots")
    return 0


def _uncertainty_plot(path: Path, std: np.ndarray, abs_err: np.ndarray, rho: float, cats: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alml.io import atomic_write

    fig, ax = plt.subplots(figsize=(4.6, 3.8), layout="constrained")
    groups = collections.defaultdict(list)
    for i, c in enumerate(cats):
        groups[c].append(i)
    for c, idx in sorted(groups.items()):
        ax.loglog(1e3 * std[idx], 1e3 * abs_err[idx], "o", ms=4, label=c)
    ax.set(xlabel="committee energy_std (meV/atom)", ylabel="|E error| (meV/atom)",
           title=f"held-out test: Spearman ρ = {rho:.2f}")
    ax.legend(fontsize=6)
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=120))


def _eos_plot(path: Path, lat: np.ndarray, qe, nn) -> None:  # noqa: ANN001
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alml.io import atomic_write

    fig, ax = plt.subplots(figsize=(4.6, 3.6), layout="constrained")
    for (fit, e), label, style in ((qe, "QE", "o-"), (nn, "committee", "s--")):
        ax.plot(lat, 1e3 * (e - e.min()), style, ms=4,
                label=f"{label}: a0 {fit.lattice_constant(4):.4f} Å, B {fit.bulk_modulus:.1f} GPa")
    ax.set(xlabel="fcc lattice constant (Å)", ylabel="E − E_min (meV/atom)")
    ax.legend(fontsize=7)
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=120))


if __name__ == "__main__":
    sys.exit(main())
