"""ML-DFT acceptance run of issue #4: train an LDOS committee on the dataset of bench/build_ldos_dataset.py, test it
per condition and on the 108-atom cell against pw.x, and report band/total energy (meV/atom) and density (%) errors.

From the repository root, once ``bench/build_ldos_dataset.py`` has finished (``--status`` says so)::

    nohup nice -n 10 .venv/bin/python bench/mldft_acceptance.py > /dev/null 2>&1 &   # log: <out>/acceptance.log
    .venv/bin/python bench/mldft_acceptance.py --tiny                                   # smoke test (runs/ldos_tiny)

``--train-only`` trains (or resumes) the committee and exits; it needs only the train and validation snapshots, so it
can run while the builder still works on the test snapshots (``bench/pause_builds.sh`` stops it too; rerun to resume).

Steps (each resumable: training continues from its checkpoints, a finished model folder is reused when it holds
the same config; ``--retrain`` starts over):

1. **Data**: ``<data>/dataset.json``: snapshot folders (``ldos.h5`` + ``descriptors.h5``) by split and condition,
   linked as ``<out>/snapshots/<condition>-<k>`` so rows and plots carry readable names.
2. **Train** (:func:`alml.surrogate.train_ldos_model`) on the ``train`` snapshots with the ``validation`` one logged
   every epoch (both count towards the issue's "at most 8"), config ``--config`` (examples/ldos_al.yaml: the last
   epoch is kept and the output layer refitted), model in ``<out>/model``; the per-epoch validation includes the
   total-energy error (pseudopotential given).
3. **Test per condition** (:func:`alml.surrogate.evaluate_model`, ``<out>/eval/<condition>/``, each group cached in
   ``group.json`` with the weights' sha256 and its snapshot names, so a rerun evaluates only what changed):
   committee-mean LDOS → band energy, Harris–Foulkes free energy, Fermi level vs QE's own numbers; density vs the
   true LDOS's; committee spreads; DOS and density-slice plots. Also, as diagnostics for "what limits it": the same
   on the training and validation snapshots (``<out>/eval/fit``: in-sample error, i.e. capacity vs generalisation)
   and the **floor** of each test snapshot — the observables of its *true* LDOS against QE (ladder and quadrature
   error; no ML).
4. **Large cell** (:func:`alml.surrogate.predict`, ``<out>/large/``): the 108-atom 933 K frame at its temperature;
   band energy, free energy and Fermi level against its pw.x SCF, density against QE's SCF density (read from
   ``charge-density.dat`` by the builder), DOS against QE's eigenvalues broadened with the ladder's kernel (drawn only
   where the SCF's bands are complete).
5. **Report**: ``<out>/acceptance.json`` (every row, per-condition MAE/max, milestone flags, timings, definitions) and
   ``<out>/acceptance.md`` (tables), ``<out>/errors.png`` (all test snapshots and the large cell).

Definitions (as :mod:`alml.surrogate.evaluate`): energy errors signed, 1000 (E_ML − E_QE)/N in meV/atom, E_ML of the
committee-mean LDOS; density error 100 ∫|n_ML − n_ref| / ∫ n_ref in %; committee std (ddof 1) over members' values.
Milestone: every test snapshot and the large cell within 5 meV/atom in |band| and |total| energy; goal: within 1.

Cost on this 2-core machine (examples/ldos_al.yaml): training ~2 h (4 members x 60 epochs x ~30 s, 1 thread each,
one after another, plus the output refits), evaluation ~1–2 min per 32-atom snapshot (14: 6 test + 8 fit, plus the
cheap floors), prediction of the 108-atom cell ~10–15 min (descriptors of 96³ = 0.9 M grid points at 2J = 10, two
network passes): ~3–4 h in all. Memory: ~3 GB while evaluating a liquid snapshot (three float64 arrays of 72³
points x 291 energies: the truth, the committee sum and one member; members are evaluated one at a time), ~2–3 GB
for the prediction. Smoke test (``--tiny``: 2 members of (32, 32), 40 epochs, on the tiny dataset): 74 s in all
(training 51 s, evaluation 13 s, 8-atom prediction 5 s), peak memory 0.6 GB; its errors are meaningless (2J = 2, two
4-atom training cells), it proves the pipeline.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from mldft_acceptance_report import GOAL_MEV, MILESTONE_MEV, errors_plot, markdown, verdict

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("mldft_acceptance")

#: smoke-test overrides of the model config (--tiny)
TINY_MODEL = {"network": {"hidden": [32, 32], "activation": "relu"}, "members": 2, "points_per_snapshot": None,
              "batch_size": 256, "training": {"epochs": 40, "lr": 0.003, "patience": 15, "plateau_patience": 5}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="smoke test on runs/ldos_tiny with a tiny committee")
    p.add_argument("--data", type=Path, default=None, help="builder root (default runs/ldos_v1; tiny runs/ldos_tiny)")
    p.add_argument("--config", type=Path, default=REPO / "examples" / "ldos_al.yaml", help="LdosModelConfig YAML")
    p.add_argument("--out", type=Path, default=None, help="default runs/mldft_acceptance (tiny: <data>/acceptance)")
    p.add_argument("--ranks", type=int, default=1, help="MPI ranks for the large cell's descriptors")
    p.add_argument("--retrain", action="store_true", help="delete the model folder and train anew")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--train-only", action="store_true",
                   help="train (or resume) the committee and exit: training needs only the train and validation "
                        "snapshots, so it can run while the test snapshots are still being built")
    p.add_argument("--floors", action="store_true",
                   help="print the floor (true LDOS vs pw.x, no ML) of every finished snapshot and exit")
    p.add_argument("--last-epoch", action="store_true",
                   help="print the fit-set errors of each member's last checkpoint (not its best epoch) and exit: "
                        "in-sample capacity while training goes on")
    args = p.parse_args(argv)
    args.data = (args.data or REPO / "runs" / ("ldos_tiny" if args.tiny else "ldos_v1")).resolve()
    args.out = (args.out or (args.data / "acceptance" if args.tiny else REPO / "runs" / "mldft_acceptance")).resolve()
    return args


# --- data -----------------------------------------------------------------------------------------


def snapshot_groups(data: Path, out: Path) -> dict[str, Any]:
    """Finished snapshots of the builder's manifest, linked as ``<out>/snapshots/<condition>-<k>``:
    {"train": [dir], "validation": [dir], "test": {condition: [dir]}, "large": record or None,
    "candidates": {link name: candidate}}."""
    manifest = json.loads((data / "dataset.json").read_text())
    links = out / "snapshots"
    links.mkdir(parents=True, exist_ok=True)
    groups: dict[str, Any] = {"train": [], "validation": [], "test": {}, "large": None, "candidates": {}}
    for cand, rec in sorted(manifest["snapshots"].items()):
        if rec.get("status") != "done":
            continue
        if rec["split"] == "large":
            groups["large"] = {**rec, "candidate": cand}
            continue
        link, target = links / cand.replace("/", "-"), data / rec["folder"]
        if link.is_symlink() and link.resolve() != target.resolve():
            link.unlink()  # the dataset was rebuilt elsewhere
        if not link.exists():
            link.symlink_to(target, target_is_directory=True)
        groups["candidates"][link.name] = cand
        if rec["split"] == "test":
            groups["test"].setdefault(rec["condition"], []).append(link)
        else:
            groups[rec["split"]].append(link)
    if not groups["train"] or not groups["validation"]:
        raise SystemExit(f"{data}: needs at least one finished train and one validation snapshot "
                         f"(have {len(groups['train'])} and {len(groups['validation'])}): run build_ldos_dataset.py")
    return groups


# --- model ----------------------------------------------------------------------------------------


def model_config(path: Path, tiny: bool) -> Any:
    from alml.config import load_config, parse_config
    from alml.surrogate.model import LdosModelConfig

    cfg = load_config(LdosModelConfig, path)
    if tiny:
        data = cfg.model_dump(mode="json")
        for key, value in TINY_MODEL.items():
            data[key] = {**data[key], **value} if isinstance(value, dict) else value
        cfg = parse_config(LdosModelConfig, data, "tiny overrides")
    return cfg


def epoch_seconds(model_dir: Path) -> float:
    """Wall seconds of all training epochs of all members (their ``history.json``): survives resumed training."""
    files = sorted((model_dir / "training").glob("member_*/history.json"))
    return float(sum(e["time_s"] for f in files for e in json.loads(f.read_text()))) if files else float("nan")


def train_or_load(groups: dict[str, Any], cfg: Any, out: Path, retrain: bool) -> tuple[Any, float]:
    """The committee in ``out`` (reused when it holds ``cfg``) or a newly trained one; and its training seconds."""
    import shutil

    from alml.dft.pseudo import pseudopotential
    from alml.surrogate import train_ldos_model
    from alml.surrogate.model import is_ldos_model_folder, load_ldos_model

    if retrain:
        shutil.rmtree(out, ignore_errors=True)
    if is_ldos_model_folder(out):
        model = load_ldos_model(out)
        if model.config.model_dump(mode="json") != cfg.model_dump(mode="json"):
            raise SystemExit(f"{out} holds a model of another config: pass --retrain (deletes it) or another --out")
        log.info("reusing the trained committee in %s", out)
        return model, epoch_seconds(out)
    log.info("training %d members on %d snapshots (validation %s)", cfg.members, len(groups["train"]),
             groups["validation"][0].name)
    model = train_ldos_model(groups["train"], groups["validation"][0], cfg, out,
                             pseudopotentials={"Al": pseudopotential("Al")})
    return model, epoch_seconds(out)


# --- evaluation -----------------------------------------------------------------------------------


def floor_row(snapshot: Path) -> dict[str, float]:
    """Observables of the snapshot's *true* LDOS against QE (meV/atom, meV): the error with a perfect network."""
    from alml.data.grids import read_ldos_h5
    from alml.dft.pseudo import pseudopotential
    from alml.surrogate.total_energy import energies_from_ldos

    truth, meta = read_ldos_h5(snapshot / "ldos.h5")
    obs, terms = energies_from_ldos(truth.astype(np.float64), meta.ladder, meta.atoms, meta.temperature,
                                    meta.n_electrons, {"Al": pseudopotential("Al")}, meta.ecutrho)
    ref, n = meta.reference, len(meta.atoms)
    dterm = {k: 1000.0 * (getattr(terms, k) - v) / n for k, v in ref.terms.items()}
    worst = max(dterm, key=lambda k: abs(dterm[k]))
    return {"floor_band_mev_per_atom": 1000.0 * (obs.band_energy - ref.band_energy) / n,
            "floor_total_mev_per_atom": float(1000.0 * (terms.free_energy - ref.free_energy) / n),
            "floor_fermi_mev": 1000.0 * (obs.fermi_level - ref.fermi_level),
            "floor_worst_term": worst, "floor_worst_term_mev_per_atom": float(dterm[worst])}


def floors_markdown(data: Path) -> str:
    """The floor of every finished training-size snapshot of the builder's manifest, as a markdown table."""
    manifest = json.loads((data / "dataset.json").read_text())
    lines = ["| snapshot | split | k-points | route | Δμ (meV) | ΔE_band (meV/atom) | ΔF (meV/atom) "
             "| largest term Δ (meV/atom) |", "|---|---|---|---|---|---|---|---|"]
    for cand, rec in sorted(manifest["snapshots"].items()):
        if rec.get("status") != "done" or rec["split"] == "large":
            continue
        r = floor_row(data / rec["folder"])
        route = "SCF + nscf" if rec.get("wall_nscf_s") else "SCF"
        lines.append(f"| {cand} | {rec['split']} | {rec['n_kpoints']} | {route} | {r['floor_fermi_mev']:+.3f} | "
                     f"{r['floor_band_mev_per_atom']:+.3f} | {r['floor_total_mev_per_atom']:+.3f} | "
                     f"{r['floor_worst_term']} {r['floor_worst_term_mev_per_atom']:+.3f} |")
    return "\n".join(lines)


def last_epoch_markdown(model_dir: Path, groups: dict[str, Any]) -> str:
    """Errors on the train + validation snapshots of the model in ``model_dir`` with every member set to the weights
    of its last checkpoint (``training/member_XX/checkpoint.pt``), as a markdown table."""
    import torch

    from alml.nn.training import CHECKPOINT
    from alml.surrogate import evaluate_model
    from alml.surrogate.model import TRAINING, load_ldos_model

    model = load_ldos_model(model_dir)
    epochs = []
    for k, net in enumerate(model.members):
        saved = torch.load(model_dir / TRAINING / f"member_{k:02d}" / CHECKPOINT, weights_only=False)
        net.load_state_dict({key: v.double() for key, v in saved["model"].items()})
        epochs.append(len(json.loads((model_dir / TRAINING / f"member_{k:02d}" / "history.json").read_text())))
    ev = evaluate_model(model, groups["train"] + groups["validation"], None, plots=False)
    lines = [f"Last checkpoints (epochs {epochs}) of `{model_dir}`:", "",
             "| snapshot | split | ΔE_band (meV/atom) | ΔF (meV/atom) | density error (%) | Δμ (meV) |",
             "|---|---|---|---|---|---|"]
    for d, r in zip(groups["train"] + groups["validation"], ev.rows):
        split = "validation" if d in groups["validation"] else "train"
        lines.append(f"| {groups['candidates'][d.name]} | {split} | {r.band_energy_error_mev_per_atom:+.1f} | "
                     f"{r.total_energy_error_mev_per_atom:+.1f} | {r.density_error_percent:.2f} | "
                     f"{r.fermi_level_error_mev:+.1f} |")
    return "\n".join(lines)


def _cached(path: Path, key: dict[str, Any], compute: Any, *args: Any) -> dict[str, Any]:
    """``compute(*args)`` unless ``path`` holds a result made with the same ``key`` (model weights, snapshots)."""
    from alml.io import atomic_write_json

    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            log.info("reusing %s (same model weights and snapshots)", path)
            return saved["result"]
    result = compute(*args)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"key": key, "result": result})
    return result


def evaluate_groups(model: Any, model_dir: Path, groups: dict[str, Any], out: Path, plots: bool) -> dict[str, Any]:
    """evaluate_model per test condition (with each snapshot's floor) and on the fit (train + validation) set.

    Each group's result is kept in ``<out>/eval/<group>/group.json`` with the sha256 of the model's weights and the
    group's snapshot names (``model`` is the committee loaded from ``model_dir``), and reused when both match: a
    rerun after more test snapshots are finished evaluates only the groups that changed.
    """
    import hashlib
    from dataclasses import asdict

    from alml.surrogate import evaluate_model

    weights = hashlib.sha256((model_dir / "weights.pt").read_bytes()).hexdigest()

    def test_group(cond: str, dirs: list[Path]) -> dict[str, Any]:
        t0 = time.perf_counter()
        ev = evaluate_model(model, dirs, out / "eval" / cond, plots=plots)
        rows = [{**asdict(r), **floor_row(d), "candidate": groups["candidates"][d.name]} for d, r in zip(dirs, ev.rows)]
        return {"rows": rows, "summary": ev.summary, "wall_s": time.perf_counter() - t0}

    def fit_group(dirs: list[Path]) -> dict[str, Any]:
        t0 = time.perf_counter()
        ev = evaluate_model(model, dirs, out / "eval" / "fit", plots=False)
        return {"rows": [{**asdict(r), "candidate": groups["candidates"][d.name]} for d, r in zip(dirs, ev.rows)],
                "summary": ev.summary, "wall_s": time.perf_counter() - t0}

    result: dict[str, Any] = {}
    for cond, dirs in sorted(groups["test"].items()):
        key = {"weights_sha256": weights, "snapshots": [d.name for d in dirs], "plots": plots}
        result[cond] = _cached(out / "eval" / cond / "group.json", key, test_group, cond, dirs)
        summary = result[cond]["summary"]
        log.info("%s: |band| MAE %.3f, |total| MAE %.3f meV/atom, density %.3f %%", cond,
                 summary["band_energy_error_mev_per_atom_mae"], summary["total_energy_error_mev_per_atom_mae"],
                 summary["density_error_percent_mae"])
    fit_dirs = groups["train"] + groups["validation"]
    key = {"weights_sha256": weights, "snapshots": [d.name for d in fit_dirs]}
    result["fit (train + validation)"] = _cached(out / "eval" / "fit" / "group.json", key, fit_group, fit_dirs)
    return result


def reference_dos(energies: np.ndarray, ladder: Any, eigenvalues: np.ndarray, k_weights: np.ndarray,
                  complete_below: float) -> np.ndarray:
    """DOS (states/eV) that a complete LDOS on ``ladder`` would integrate to: Σ_k w_k Σ_n K_σ(E − ε_nk), with the
    ladder's kernel; NaN where states above the SCF's highest complete band would contribute (9 widths)."""
    from alml.surrogate.observables import broadening_kernel

    d = np.zeros(len(energies))
    for w, eps in zip(k_weights, eigenvalues):
        d += w * broadening_kernel(energies[:, None] - eps[None, :], ladder.broadening, ladder.kernel).sum(axis=1)
    d[energies > complete_below - 9.0 * ladder.broadening] = np.nan
    return d


def large_row(model: Any, data: Path, rec: dict[str, Any], out: Path, ranks: int, plots: bool) -> dict[str, Any]:
    """Predict the large cell and compare with its pw.x reference (row in evaluate's units)."""
    from ase.io import read

    from alml.surrogate.metrics import density_error_percent
    from alml.surrogate.predict import PredictConfig, predict

    ref_dir = data / rec["folder"]
    ref = json.loads((ref_dir / "reference.json").read_text())
    arrays = np.load(ref_dir / "reference.npz")
    cands = read(data / "candidates.extxyz", index=":")
    atoms = next(a for a in cands if a.info["candidate"] == rec["candidate"])
    if not np.allclose(atoms.positions, arrays["positions"], atol=1e-6):
        raise ValueError(f"{ref_dir}: the reference was computed for other positions than {rec['candidate']}")
    n = len(atoms)
    t0 = time.perf_counter()
    pred = predict(atoms, model, PredictConfig(temperature=ref["temperature"], workers=ranks, threads=1),
                   out=out / "large")
    wall = time.perf_counter() - t0
    density = arrays["density"]
    if tuple(pred.grid_shape) != density.shape:
        raise ValueError(f"prediction grid {pred.grid_shape} differs from pw.x's FFT grid {density.shape}")
    row = {
        "name": "large", "candidate": rec["candidate"], "n_atoms": n, "reference": "qe (pw.x SCF of this cell)",
        "band_energy_error_mev_per_atom": 1000.0 * (pred.band_energy.value - ref["qe_band_energy"]) / n,
        "band_energy_std_mev_per_atom": 1000.0 * pred.band_energy.std / n,
        "total_energy_error_mev_per_atom": 1000.0 * (pred.free_energy.value - ref["qe_free_energy"]) / n,
        "total_energy_std_mev_per_atom": 1000.0 * pred.free_energy.std / n,
        "density_error_percent": density_error_percent(pred.density, density),
        "density_std_percent": float("nan"),  # predict keeps the committee-mean density only
        "fermi_level_error_mev": 1000.0 * (pred.fermi_level.value - ref["qe_fermi_level"]),
        "fermi_level_std_mev": 1000.0 * pred.fermi_level.std,
        "band_energy": pred.band_energy.value, "band_energy_ref": ref["qe_band_energy"],
        "total_energy": pred.free_energy.value, "total_energy_ref": ref["qe_free_energy"],
        "fermi_level": pred.fermi_level.value, "fermi_level_ref": ref["qe_fermi_level"],
        "temperature": ref["temperature"], "grid": list(pred.grid_shape), "predict_wall_s": wall,
        "predict_timings_s": dict(pred.timings), "qe_wall_scf_s": ref.get("wall_scf_s"),
        "qe_n_kpoints": ref.get("n_kpoints"),
    }
    if plots:
        import matplotlib.pyplot as plt

        from alml.plot.surrogate import density_slices_figure, dos_figure

        e = pred.energies
        dft = reference_dos(e, pred.ladder, arrays["eigenvalues"], arrays["k_weights"], ref["complete_below"])
        figs = {"dos_large.png": dos_figure(e, dft, pred.dos, pred.dos_std, ref["qe_fermi_level"],
                                            title=f"{rec['candidate']} ({n} atoms): DFT from pw.x eigenvalues"),
                "density_large.png": density_slices_figure(pred.density, density,
                                                           title=f"{rec['candidate']} vs pw.x SCF density")}
        for name, fig in figs.items():
            fig.savefig(out / "large" / name, dpi=120)
            plt.close(fig)
    return row


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.floors:
        from alml.runtime import set_threads

        set_threads(1)
        print(floors_markdown(args.data))
        return 0
    if args.last_epoch:
        from alml.runtime import set_threads

        set_threads(1)
        print(last_epoch_markdown(args.out / "model", snapshot_groups(args.data, args.out)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(args.out / "acceptance.log"), logging.StreamHandler(sys.stdout)],
    )
    from alml.runtime import set_threads

    set_threads(1)
    from alml.io import atomic_write_json, atomic_write_text
    from alml.surrogate.evaluate import DEFINITIONS

    groups = snapshot_groups(args.data, args.out)
    for cond, dirs in groups["test"].items():
        if len(dirs) < 2:
            log.warning("%s has %d finished test snapshot(s); the issue asks for at least 2", cond, len(dirs))
    cfg = model_config(args.config, args.tiny)
    model, t_train = train_or_load(groups, cfg, args.out / "model", args.retrain)
    if args.train_only:
        log.info("trained: %s (%.0f s in this call)", args.out / "model", t_train)
        return 0
    ev = evaluate_groups(model, args.out / "model", groups, args.out, plots=not args.no_plots)
    t_eval = sum(block.get("wall_s", math.nan) for block in ev.values())  # when each group was computed (cached)
    fit = {k: ev.pop(k) for k in list(ev) if k.startswith("fit")}
    large = None
    t0 = time.perf_counter()
    if groups["large"] is not None:
        large = large_row(model, args.data, groups["large"], args.out, args.ranks, plots=not args.no_plots)
        log.info("large: band %+.3f, total %+.3f meV/atom, density %.3f %%", large["band_energy_error_mev_per_atom"],
                 large["total_energy_error_mev_per_atom"], large["density_error_percent"])
    else:
        log.warning("no finished large-cell reference in %s: the large-cell row is missing", args.data)
    rows = [r for block in ev.values() for r in block["rows"]] + ([large] if large else [])
    report = {
        "data": str(args.data), "model": str(args.out / "model"), "model_config": cfg.model_dump(mode="json"),
        "train": [groups["candidates"][d.name] for d in groups["train"]],
        "validation": groups["candidates"][groups["validation"][0].name],
        "test": ev, "fit": fit, "large": large, "verdict": verdict(rows),
        "timings_s": {"train": t_train, "evaluate": t_eval, "large": time.perf_counter() - t0},
        "definitions": {**DEFINITIONS, "floor_*": "observables of the true LDOS minus QE's (no ML)",
                        "verdict": f"worst |band| or |total| error over test + large; milestone <= {MILESTONE_MEV}, "
                                   f"goal <= {GOAL_MEV} meV/atom"},
    }
    atomic_write_json(args.out / "acceptance.json", report)
    atomic_write_text(args.out / "acceptance.md", markdown(report))
    if not args.no_plots:
        errors_plot(report, args.out / "errors.png")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
