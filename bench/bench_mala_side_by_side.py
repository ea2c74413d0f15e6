"""alml vs MALA 1.4 side by side on the same data and machine (issue #4, part 8): training time per epoch, band-energy
and Fermi-level errors on the test snapshots, and end-to-end prediction time (descriptors, network, observables) in
grid points/s at 1 and 2 cores, with both codes' test errors next to their throughput.

**On the acceptance data**, from the repository root, once ``bench/build_ldos_dataset.py`` has finished
(``--status`` says so; MALA's venv as in ``bench/mala_venv.py``)::

    nohup nice -n 10 .venv/bin/python bench/bench_mala_side_by_side.py --atoms 108 > /dev/null 2>&1 &
    tail -f runs/mala_side_by_side/side_by_side.log          # progress (MALA's own output: mala.log)

That trains both codes with examples/ldos_al.yaml ((400, 400) ReLU, 60 epochs, batch 1024, lr 1e-3, cosine schedule in
alml and a constant rate in MALA, which has no cosine schedule) on the 7 training snapshots (4 solid cells of 64³
points, 3 liquid of 72³: 2.2 M points), tests on the 6 test snapshots, and times prediction of a 32-atom test cell
(64³) and a 108-atom fcc cell (96³) at 1 and 2 cores. Cost on this 2-core machine, measured on 2026-11-22:
training 53 min (alml) and 62 min (MALA) with both at the same time, one core each (60 epochs of 2.2 M points, ~5x
the acceptance config's sampled epochs; ``--sequential`` trains one after the other), testing 3 min, prediction
12 min; memory (estimated, not measured) up to ~8–12 GB while both codes hold their training points (3.4 GB each
in float32); disk ~6.5 GB
for ``mala_data/``. A rerun reuses both trained models; ``--epochs``, ``--hidden``, ``--batch-size``, ``--lr``,
``--schedule``, ``--plateau-patience`` or another ``--config`` change the shared settings (``output_scaling:
single`` in the config makes MALA use ``standard``); ``--cores`` with no value skips the prediction timings, e.g.
for a second training set-up in its own ``--out``. The figures then go to docs/benchmarks.md ("Side by side with
MALA 1.4"), from ``side_by_side.md``.

Data: the builder's manifest ``<data>/dataset.json`` (default ``runs/ldos_v1``; its train, validation and test
splits), or explicit snapshot folders ``--train GLOB... --val DIR --test GLOB...``. MALA is never an alml
dependency: it runs in its own venv (``--mala-venv``, set-up in ``bench/mala_venv.py``) as subprocesses of
``bench/mala_side_by_side_worker.py``. Outputs in ``--out`` (default ``runs/mala_side_by_side``; not committed):
``side_by_side.json`` (everything), ``side_by_side.md`` (the tables, also printed), ``side_by_side.log``,
``mala.log``; ``mala_data/`` (the snapshots in MALA's layout), ``alml_model/``, ``mala/`` (the MALA run).

Steps (training is reused when its inputs are unchanged; ``--retrain`` starts over):

1. **Export** every snapshot with :func:`alml.surrogate.mala.export_mala_snapshot` (``.in.npy`` with x, y, z then the
   descriptors, ``.out.npy`` LDOS in 1/(eV·Å³), ``.info.json``, and the snapshot's pw.x output as ``.out``), so
   both codes train and test on identical numbers. Disk: ~0.4 GB per 32-atom snapshot of the real data.
2. **Train**, both codes at once when there is a core for each (same load on both): one alml member
   (:func:`alml.surrogate.train_ldos_model`, config ``--config``, default examples/ldos_al.yaml, forced to 1 member
   and *every* grid point, since MALA cannot subsample) and MALA
   (``Parameters``, ``DataHandler``, ``Network``, ``Trainer``) with the same layers, activation, epochs, batch size,
   learning rate, plateau schedule, early stopping and validation snapshot; per-feature standardised descriptors in
   both; the LDOS scaling as close as MALA allows (``mala_output_scaling`` in ``mala_side_by_side_logic.py``). Time
   per epoch: alml's training history (includes its per-epoch physics validation, whose cost is measured once and
   reported); MALA's from the moments it prints each epoch's validation loss (includes its validation MSE pass).
3. **Test**: for every test snapshot, against the DFT reference stored in it (QE's band energy Σ w f ε and Fermi
   level): alml's :func:`alml.surrogate.evaluate_model`; MALA's predicted LDOS (``Tester.predict_targets``) through
   MALA's observables (``LDOS.get_self_consistent_fermi_energy``, ``get_band_energy``) and also through alml's (same
   network output, alml's kernel-aware integration); "floors": each route's observables of the *true* LDOS vs QE.
   MALA 1.4 computes total energies only through its compiled Quantum ESPRESSO module (``total_energy`` Python
   module, not on PyPI), so only band energy and Fermi level are compared; alml's total-energy error is listed alone.
4. **Throughput**: for a test snapshot's structure (and ``--atoms N`` fcc supercells), on the training grid spacing:
   alml's :func:`alml.surrogate.predict` (``workers`` MPI ranks for the descriptors, ``threads`` torch threads) and
   MALA's ``Predictor.predict_for_atoms`` + LDOS → band energy (1 core: serial; 2 cores: ``mpiexec -n 2`` with
   ``use_mpi``, each rank its z-slab of descriptors and its LDOS, DOS reduced on rank 0), alternating, each in a
   fresh process. Points/s = grid points / (descriptors + network + observables). alml's network time counts both of
   its passes (the second feeds the density) and its ``total`` also holds the density and Harris–Foulkes energy,
   which MALA's band-energy path does not compute: the comparison is conservative for alml.

Like-for-like limits (also in ``side_by_side.json`` under ``notes``): MALA keeps the last epoch's weights, alml those
its config's ``training.keep`` names (examples/ldos_al.yaml: the last too), and alml's ``refit_output`` has no MALA
counterpart; MALA clips negative LDOS values of its predictions to zero; MALA's band energy integrates the
broadened LDOS as it is, alml's undoes the ladder's broadening kernel (the floors show what that costs); MALA has no
floor on per-energy output stds; MALA 1.4 needs a shim for torch 2.13 (``ReduceLROnPlateau(verbose=...)`` was removed)
and has no learning-rate floor; alml's test evaluation runs its network in float64 and its prediction in float32
(``PredictConfig.network_dtype``), MALA both in float32; seeds differ.

**Smoke test** (``--tiny``: the 4-atom snapshots of ``build_ldos_dataset.py --tiny``, 2J = 2, a (32, 32) ReLU
network, 20 epochs; ~2 min, figures in docs/benchmarks.md; they prove the pipeline, not the codes)::

    nice -n 19 .venv/bin/python bench/build_ldos_dataset.py --tiny    # if runs/ldos_tiny is missing (~1-2 min)
    nice -n 19 .venv/bin/python bench/bench_mala_side_by_side.py --tiny --atoms 32
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import platform
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from mala_side_by_side_data import export_all, ldos_std, snapshot_sets
from mala_side_by_side_logic import accuracy_note, mae, mala_output_scaling, mala_parameters, markdown

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
WORKER = BENCH / "mala_side_by_side_worker.py"
log = logging.getLogger("mala_side_by_side")

#: --tiny: smoke-test overrides of the model config
TINY_MODEL = {"network": {"hidden": [32, 32], "activation": "relu"}, "batch_size": 256,
              "training": {"epochs": 20, "lr": 0.003, "patience": 15, "plateau_patience": 5}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="smoke test on runs/ldos_tiny with a tiny network")
    p.add_argument("--data", type=Path, default=None, help="builder root with dataset.json (default runs/ldos_v1)")
    p.add_argument("--train", nargs="+", default=None, help="training snapshot folders (globs) instead of --data")
    p.add_argument("--val", default=None, help="validation snapshot folder (with --train)")
    p.add_argument("--test", nargs="+", default=None, help="test snapshot folders (globs; with --train)")
    p.add_argument("--config", type=Path, default=REPO / "examples" / "ldos_al.yaml", help="LdosModelConfig YAML")
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="override the hidden layer widths")
    p.add_argument("--epochs", type=int, default=None, help="override the epochs")
    p.add_argument("--batch-size", type=int, default=None, help="override the training batch size")
    p.add_argument("--lr", type=float, default=None, help="override the learning rate")
    p.add_argument("--schedule", choices=["plateau", "constant", "cosine"], default=None,
                   help="override the learning-rate schedule (plateau and constant exist in both codes)")
    p.add_argument("--plateau-patience", type=int, default=None, help="override the plateau schedule's patience")
    p.add_argument("--mala-output-scaling", default="auto",
                   choices=["auto", "feature-wise-standard", "standard", "minmax", "feature-wise-minmax"],
                   help="MALA's output_rescaling_type (auto: closest to alml's output_scaling, see the docstring)")
    p.add_argument("--train-threads", type=int, default=1, help="torch threads while training (both codes)")
    p.add_argument("--sequential", action="store_true", help="train one code after the other (default: both at "
                   "once when there is a core for each)")
    p.add_argument("--cores", type=int, nargs="*", default=[1, 2],
                   help="cores for the prediction timings (none: skip them, e.g. for a second training setup)")
    p.add_argument("--atoms", type=int, nargs="*", default=[], help="also time fcc supercells of these sizes")
    p.add_argument("--temperature", type=float, default=None, help="K for the fcc cells (default: the timed "
                   "test snapshot's)")
    p.add_argument("--predict-batch", type=int, default=8192, help="grid points per network batch in prediction")
    p.add_argument("--mala-venv", type=Path, default=Path("/tmp/mala-venv"))
    p.add_argument("--out", type=Path, default=None, help="default runs/mala_side_by_side (tiny: <data>/side_by_side)")
    p.add_argument("--retrain", action="store_true", help="train both codes anew")
    args = p.parse_args(argv)
    if args.train and (args.val is None or not args.test):
        p.error("--train needs --val and --test")
    args.data = (args.data or REPO / "runs" / ("ldos_tiny" if args.tiny else "ldos_v1")).resolve()
    default_out = args.data / "side_by_side" if args.tiny else REPO / "runs" / "mala_side_by_side"
    args.out = (args.out or default_out).resolve()
    return args


# --- configuration ------------------------------------------------------------------------------------


def model_config(args: argparse.Namespace) -> Any:
    """The alml config: --config, --tiny and command-line overrides; one member, every grid point, in memory."""
    from alml.config import load_config, parse_config
    from alml.surrogate.model import LdosModelConfig

    data = load_config(LdosModelConfig, args.config).model_dump(mode="json")
    overrides: dict[str, Any] = dict(TINY_MODEL) if args.tiny else {}
    overrides.update(members=1, points_per_snapshot=None, streaming=False, workers=1, threads=args.train_threads)
    if args.hidden:
        overrides["network"] = {**overrides.get("network", {}), "hidden": args.hidden}
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    training = dict(overrides.get("training", {}))
    if args.epochs:
        training["epochs"] = args.epochs
    if args.lr:
        training["lr"] = args.lr
    if args.schedule:
        training["schedule"] = args.schedule
    if args.plateau_patience is not None:
        training["plateau_patience"] = args.plateau_patience
    overrides["training"] = training
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    return parse_config(LdosModelConfig, data, "side-by-side overrides")


# --- training ---------------------------------------------------------------------------------------------


def train_alml(sets: dict, cfg: Any, out: Path, retrain: bool, together: bool = False) -> dict[str, Any]:
    """One alml member on the training snapshots (reused when the folder holds the same config and data)."""
    from alml.nn.training import log_progress, read_history
    from alml.surrogate import train_ldos_model
    from alml.surrogate.model import is_ldos_model_folder, predict_members
    from alml.surrogate.validation import ValidationSnapshot

    folder, record = out / "alml_model", out / "alml_train.json"
    key = {"config": cfg.model_dump(mode="json"), "train": [str(d) for _, d in sets["train"]],
           "validation": str(sets["validation"][0][1])}
    done = json.loads(record.read_text()) if record.is_file() else None
    if retrain or (done is not None and done["key"] != key):
        shutil.rmtree(folder, ignore_errors=True)  # (an interrupted training, with no record yet, resumes)
    elif done is not None and is_ldos_model_folder(folder):
        log.info("alml: reusing the trained model in %s", folder)
        return done
    log.info("alml: training 1 member, hidden %s, %d epochs, on %d snapshots", list(cfg.network.hidden),
             cfg.training.epochs, len(sets["train"]))
    t0 = time.perf_counter()
    model = train_ldos_model([d for _, d in sets["train"]], sets["validation"][0][1], cfg, folder,
                             callbacks=[log_progress(1, log)])
    total = time.perf_counter() - t0
    history = read_history(folder / "training" / "member_00")
    val = ValidationSnapshot.read(sets["validation"][0][1])
    pred = predict_members(model, val.x, val.atoms)[0]
    physics = math.inf
    for _ in range(3):  # its cost per epoch, best of 3 (the machine is shared)
        t0 = time.perf_counter()
        val.metrics(pred)
        physics = min(physics, time.perf_counter() - t0)
    epoch_s = [h["time_s"] for h in history]
    result = {
        "key": key, "model": str(folder), "train_s": total, "epochs": len(history), "epoch_s": epoch_s,
        "mean_epoch_s": float(np.mean(epoch_s)), "setup_s": total - float(np.sum(epoch_s)),
        "physics_validation_s": physics, "val_loss": [h["val_loss"] for h in history],
        "best_epoch": (int(np.nanargmin([h[cfg.monitor] for h in history])) + 1 if cfg.training.keep == "best"
                       else len(history)),
        "weights": "best validation epoch" if cfg.training.keep == "best" else "last epoch",
        "trained_beside_mala": together,
    }
    record.write_text(json.dumps(result, indent=1))
    return result


def _mala_call(args: argparse.Namespace, mode: str, spec: dict[str, Any], nprocs: int = 1,
               threads: int = 1) -> tuple[dict[str, Any], float]:
    from mala_venv import run_mala

    path = args.out / "mala" / f"{mode}.spec.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, indent=1))

    def progress(line: str) -> None:
        if line.startswith(("Epoch ", "test ", "Traceback", "Error", "ERROR")):
            log.info("MALA: %s", line)

    return run_mala(args.mala_venv, [str(WORKER), mode, str(path)], cwd=path.parent, nprocs=nprocs,
                    threads=threads, log=args.out / "mala.log", on_line=progress)


def train_mala(args: argparse.Namespace, sets: dict, exported: dict, params: dict, seed: int,
               together: bool = False) -> dict[str, Any]:
    """MALA on the exported snapshots (reused when the saved run came from the same spec)."""
    run_dir = args.out / "mala" / "run"
    record = args.out / "mala" / "train.json"
    spec = {"seed": seed, "threads": args.train_threads, "run_name": "mala_model", "run_dir": str(run_dir),
            "mala": params, "train": [exported[n] for n, _ in sets["train"]],
            "validation": [exported[sets["validation"][0][0]]]}
    if args.retrain:
        shutil.rmtree(run_dir, ignore_errors=True)
    if (run_dir / "mala_model.zip").is_file() and record.is_file() and json.loads(record.read_text())["spec"] == spec:
        log.info("MALA: reusing the trained run in %s", run_dir)
        return json.loads(record.read_text())
    log.info("MALA: training (%s)", ", ".join(f"{k}={v}" for k, v in params["running"].items()
                                              if k in ("learning_rate", "max_number_epochs", "mini_batch_size")))
    result, wall = _mala_call(args, "train", spec, threads=args.train_threads)
    eps = result["epoch_s"]
    result.update(spec=spec, process_s=wall, mean_epoch_s=float(np.mean(eps)) if eps else float("nan"),
                  weights="last epoch", trained_beside_alml=together)
    record.write_text(json.dumps(result, indent=1))
    return result


def train_both(args: argparse.Namespace, sets: dict, exported: dict, cfg: Any,
               params: dict) -> tuple[dict[str, Any], dict[str, Any]]:
    """alml and MALA, at the same time when the machine has a core for each (--train-threads each), so both see the
    same load; one after the other otherwise. MALA runs in its own process: a thread here only waits on it."""
    concurrent = not args.sequential and (os.cpu_count() or 1) >= 2 * args.train_threads
    if not concurrent:
        return train_alml(sets, cfg, args.out, args.retrain), train_mala(args, sets, exported, params, cfg.seed)
    log.info("training alml and MALA at the same time, %d thread(s) each", args.train_threads)
    with ThreadPoolExecutor(1) as pool:  # (if alml fails, MALA still finishes and its run is kept for reuse)
        mala = pool.submit(train_mala, args, sets, exported, params, cfg.seed, True)
        return train_alml(sets, cfg, args.out, args.retrain, True), mala.result()


# --- test ---------------------------------------------------------------------------------------------------


def test_both(args: argparse.Namespace, sets: dict, exported: dict, alml_model: Path,
              batch: int) -> list[dict[str, Any]]:
    """Per test snapshot: both codes' band-energy and Fermi-level errors against the DFT reference (and floors)."""
    from mldft_acceptance import floor_row

    from alml.data.grids import read_ldos_h5
    from alml.dft.pseudo import pseudopotential
    from alml.surrogate import evaluate_model
    from alml.surrogate.evaluate import snapshot_errors

    names, dirs = [n for n, _ in sets["test"]], [d for _, d in sets["test"]]
    log.info("alml: evaluating %d test snapshots", len(dirs))
    t0 = time.perf_counter()
    ev = evaluate_model(alml_model, dirs, args.out / "alml_eval", plots=False)
    t_alml = time.perf_counter() - t0
    pred_dir = args.out / "mala" / "predicted"
    pred_dir.mkdir(parents=True, exist_ok=True)
    spec = {"threads": args.train_threads, "run_name": "mala_model", "run_dir": str(args.out / "mala" / "run"),
            "batch_size": batch, "out_dir": str(pred_dir), "test": [exported[n] for n in names]}
    log.info("MALA: testing %d snapshots", len(names))
    mala, _ = _mala_call(args, "test", spec, threads=args.train_threads)
    pseudos = {"Al": pseudopotential("Al")}
    rows = []
    for name, d, a, m in zip(names, dirs, ev.rows, mala["rows"]):
        n = a.n_atoms
        truth, meta = read_ldos_h5(d / "ldos.h5")
        cross, _ = snapshot_errors(np.load(pred_dir / f"{name}.pred.npy")[None], truth, meta, name, pseudos)
        floor = floor_row(d)
        rows.append({
            "name": name, "n_atoms": n, "temperature": meta.temperature, "reference": a.reference,
            "band_ref": a.band_energy_ref, "fermi_ref": a.fermi_level_ref,
            "mala_band_mev_per_atom": 1000.0 * (m["band_pred"] - a.band_energy_ref) / n,
            "mala_fermi_mev": 1000.0 * (m["fermi_pred"] - a.fermi_level_ref),
            "mala_tester_band_mev_per_atom": 1000.0 * (m["band_pred"] - m["band_true"]) / n,
            "mala_floor_band_mev_per_atom": 1000.0 * (m["band_true"] - a.band_energy_ref) / n,
            "mala_floor_fermi_mev": 1000.0 * (m["fermi_true"] - a.fermi_level_ref),
            "alml_band_mev_per_atom": a.band_energy_error_mev_per_atom, "alml_fermi_mev": a.fermi_level_error_mev,
            "alml_total_mev_per_atom": a.total_energy_error_mev_per_atom,
            "alml_density_percent": a.density_error_percent,
            "alml_floor_band_mev_per_atom": floor["floor_band_mev_per_atom"],
            "alml_floor_fermi_mev": floor["floor_fermi_mev"],
            "mala_net_alml_obs_band_mev_per_atom": cross.band_energy_error_mev_per_atom,
            "mala_net_alml_obs_fermi_mev": cross.fermi_level_error_mev,
            "mala_net_alml_obs_total_mev_per_atom": cross.total_energy_error_mev_per_atom,
            "mala_raw": m, "alml_eval_s": t_alml / len(dirs),
        })
    return rows


# --- throughput -------------------------------------------------------------------------------------------


def alml_predict(model: str, structure: str, temperature: float, grid: list[int], cores: int,
                 batch: int) -> dict[str, Any]:
    """alml's prediction (in a fresh child process): stage timings, band energy and Fermi level."""
    from ase.io import read

    from alml.runtime import set_threads
    from alml.surrogate.model import load_ldos_model
    from alml.surrogate.predict import PredictConfig, predict

    set_threads(cores)
    t0 = time.perf_counter()
    m = load_ldos_model(model)
    atoms = read(structure)
    t_load = time.perf_counter() - t0
    cfg = PredictConfig(workers=cores, threads=cores, grid_shape=tuple(grid), temperature=temperature,
                        batch_points=batch, keep_density=False, write_density=False)
    pred = predict(atoms, m, cfg)
    t = dict(pred.timings)
    return {"timings_s": t, "end_to_end_s": t["descriptors"] + t["network"] + t["observables"], "load_s": t_load,
            "band_energy": pred.band_energy.value, "fermi_level": pred.fermi_level.value}


def throughput(args: argparse.Namespace, sets: dict, exported: dict, alml_model: Path) -> list[dict[str, Any]]:
    """Prediction timings of both codes per structure and core count, alternating alml and MALA."""
    from ase.io import write
    from bench_surrogate import fcc_cell
    from mala_venv import lammps_input

    from alml.data.grids import LdosFile
    from alml.descriptors import qe_fft_shape
    from alml.surrogate.model import load_ldos_model
    from alml.units import RYDBERG

    name, d = sets["test"][0]
    with LdosFile(d / "ldos.h5") as f:
        structures = [(f"{name} (test)", f.atoms.copy(), f.temperature, list(f.shape))]
    ecut = load_ldos_model(alml_model).training_data["ecutrho"]
    temperature = args.temperature or structures[0][2]
    for n in args.atoms:
        atoms = fcc_cell(n)
        structures.append((f"fcc {n}", atoms, temperature, list(qe_fft_shape(atoms.cell[:], ecut / RYDBERG))))
    folder = args.out / "structures"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, atoms, temp, grid in structures:
        path = folder / (label.split(" ")[0].replace("/", "-") + f"-{len(atoms)}.xyz")
        write(path, atoms, format="extxyz")
        points = int(np.prod(grid))
        for cores in args.cores:
            base = {"structure": label, "n_atoms": len(atoms), "grid": grid, "points": points, "cores": cores,
                    "temperature": temp}
            load = os.getloadavg()[0]
            log.info("alml: predicting %s (%d atoms, grid %s) on %d core(s)", label, len(atoms), grid, cores)
            t0 = time.perf_counter()
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as ex:
                a = ex.submit(alml_predict, str(alml_model), str(path), temp, grid, cores, args.predict_batch).result()
            a.update(base, code="alml", process_s=time.perf_counter() - t0, load_before=load,
                     descriptors_s=a["timings_s"]["descriptors"], network_s=a["timings_s"]["network"],
                     observables_s=a["timings_s"]["observables"], setup=f"{cores} MPI rank(s) + {cores} torch "
                     "thread(s)", points_per_s=points / a["end_to_end_s"])
            rows.append(a)
            spec = {"threads": 1, "nprocs": cores, "run_name": "mala_model",
                    "run_dir": str(args.out / "mala" / "run"), "batch_size": args.predict_batch,
                    "lammps_input": str(lammps_input(args.out / "mala", cores)), "grid": grid,
                    "structure": str(path), "temperature": temp}
            load = os.getloadavg()[0]
            log.info("MALA: predicting %s on %d core(s)", label, cores)
            m, wall = _mala_call(args, "predict", spec, nprocs=cores, threads=1)
            m.update(base, code="MALA", process_s=wall, load_before=load, points_per_s=points / m["end_to_end_s"],
                     setup="serial, 1 torch thread" if cores == 1 else f"mpiexec -n {cores}, 1 torch thread each")
            rows.append(m)
            log.info("  alml %.0f points/s, MALA %.0f points/s", a["points_per_s"], m["points_per_s"])
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(args.out / "side_by_side.log"), logging.StreamHandler(sys.stdout)],
    )
    from mala_venv import mala_available

    if not mala_available(args.mala_venv):
        raise SystemExit(f"no MALA venv at {args.mala_venv}: set it up as in bench/mala_venv.py")
    from alml.runtime import set_threads

    set_threads(args.train_threads)
    from alml.descriptors import MALA_AL, BispectrumSettings
    from alml.io import atomic_write_json, atomic_write_text

    t_start = time.perf_counter()
    sets = snapshot_sets(args)
    exported = export_all(sets, args.out / "mala_data")
    settings = BispectrumSettings.model_validate(exported[sets["train"][0][0]]["descriptors"])
    if settings.model_copy(update={"twojmax": MALA_AL.twojmax}) != MALA_AL:
        raise SystemExit(f"descriptor settings {settings} differ from MALA's Al ones in more than twojmax: MALA's "
                         "LAMMPS inputs (bench/mala_venv.py) would compute other descriptors at prediction time")
    cfg = model_config(args)
    y_std = ldos_std([d for _, d in sets["train"]])
    scaling, why = mala_output_scaling(cfg.output_scaling, y_std, args.mala_output_scaling)
    first = exported[sets["train"][0][0]]
    params, notes = mala_parameters(cfg, settings.n_components, len(y_std), first["mala_parameters"], scaling)
    notes = [f"LDOS scaling: MALA `{scaling}` — {why}", *notes]
    alml_train, mala_train = train_both(args, sets, exported, cfg, params)
    test = test_both(args, sets, exported, Path(alml_train["model"]), args.predict_batch)
    summary = {
        "mae_band_mala": mae(test, "mala_band_mev_per_atom"), "mae_band_alml": mae(test, "alml_band_mev_per_atom"),
        "mae_band_mala_net_alml_obs": mae(test, "mala_net_alml_obs_band_mev_per_atom"),
        "mae_fermi_mala": mae(test, "mala_fermi_mev"), "mae_fermi_alml": mae(test, "alml_fermi_mev"),
        "mae_total_alml": mae(test, "alml_total_mev_per_atom"),
        "mae_tester_band_mala": mae(test, "mala_tester_band_mev_per_atom"),
    }
    summary["accuracy"] = accuracy_note(summary["mae_band_mala"], summary["mae_band_alml"])
    rows = throughput(args, sets, exported, Path(alml_train["model"]))
    notes += [
        "total energy: MALA 1.4 computes it only through its compiled Quantum ESPRESSO module (not on PyPI), so "
        "band energy and Fermi level are compared; alml's total-energy error is listed alone",
        "MALA clips negative predicted LDOS values to zero (restrict_targets); alml does not",
        "observables: MALA integrates the broadened LDOS as it is, alml undoes the ladder's broadening kernel "
        "(floors); 'MALA net + alml obs' runs MALA's predicted LDOS through alml's observables",
        "per-epoch time: alml's includes its physics validation (band energy, density) on the validation snapshot, "
        "MALA's its validation MSE",
        "prediction: alml runs its hidden layers in float32 and reads the DOS and density out of the last hidden "
        "layer (float64), MALA runs in float32 and forms the LDOS; alml's network time counts both passes and its "
        "`total` also holds the density and total energy (not in 'end to end')",
        "MALA 1.4 + torch 2.13: ReduceLROnPlateau(verbose=...) was removed from torch; the worker drops the argument",
        "MALA 1.4: Predictor hangs if the batch exceeds a rank's grid points (the worker caps it); Tester "
        "inverse-scales test outputs in place, so predict_targets is called once per snapshot",
    ]
    report = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "node": platform.node(), "python": sys.version.split()[0]},
        "snapshots": {k: [str(d) for _, d in v] for k, v in sets.items()},
        "config": cfg.model_dump(mode="json"), "network": f"{list(cfg.network.hidden)} {cfg.network.activation}",
        "descriptors": settings.model_dump(mode="json"), "mala_parameters": params, "mala_output_scaling": scaling,
        "training": {"alml": alml_train, "mala": mala_train}, "test": test, "summary": summary,
        "throughput": rows, "notes": notes, "wall_s": time.perf_counter() - t_start,
    }
    atomic_write_json(args.out / "side_by_side.json", report)
    text = markdown(report)
    atomic_write_text(args.out / "side_by_side.md", text)
    print(text)
    log.info("done in %.0f s: %s", report["wall_s"], args.out / "side_by_side.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
