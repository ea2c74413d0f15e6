"""Hyperparameter search for the LDOS network with Optuna, the study kept in a database.

Each trial draws the hidden layers (count and one shared width), activation (relu, tanh or sigmoid: LAMMPS-exportable
and non-linear), learning rate (log-uniform) and batch size from :class:`SearchSpace`, trains a small committee
(``members``, default 1) for ``epochs`` epochs with :func:`alml.surrogate.train.train_ldos_model`, and scores it by
the **validation band-energy error in meV/atom** of the committee-mean LDOS on the whole validation snapshot (lower is
better). Every epoch the first member's validation band-energy error is reported to the pruner, which may stop an
unpromising trial early.

The study lives in ``storage`` (an Optuna storage URL; default ``sqlite:///<out>/hpo.db``) under ``study_name``:
calling :func:`run_hpo` again with the same name and storage continues it until the study holds ``trials`` finished
(complete, pruned or failed) trials. Several processes may work on one study through a shared database. The sampler
(TPE) is seeded from ``seed`` and the number of trials already in the study, so a continued study draws new points.

Written to ``out``: ``trials.csv`` and ``trials.json`` (one row per trial), ``best.json`` (best trial, value, params)
and ``best_config.yaml``: ``base`` with the best network, learning rate and batch size, ready for
``alml surrogate train``.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from alml.config import Config, dump_config
from alml.io import atomic_write_json, atomic_write_text
from alml.surrogate.model import LdosModelConfig

log = logging.getLogger(__name__)

HpoActivation = Literal["relu", "tanh", "sigmoid"]
OBJECTIVE = "validation band-energy error of the committee-mean LDOS, meV/atom"


class SearchSpace(Config):
    """Ranges of the searched hyperparameters: (min, max) pairs and lists of choices."""

    layers: tuple[int, int] = Field((1, 3), description="(min, max) number of hidden layers")
    width: tuple[int, int] = Field((16, 256), description="(min, max) width of every hidden layer, log-uniform")
    activation: tuple[HpoActivation, ...] = Field(("relu", "tanh", "sigmoid"), min_length=1)
    lr: tuple[float, float] = Field((1e-4, 1e-2), description="(min, max) learning rate, log-uniform")
    batch_size: tuple[int, ...] = Field((64, 256, 1024), min_length=1, description="choices, grid points per batch")

    @model_validator(mode="after")
    def _ranges(self) -> SearchSpace:
        for name in ("layers", "width", "lr"):
            lo, hi = getattr(self, name)
            if not (0 < lo <= hi) and not (name == "layers" and 0 <= lo <= hi):
                raise ValueError(f"{name} must be (min, max) with 0 < min <= max, got {(lo, hi)}")
        if any(b < 1 for b in self.batch_size):
            raise ValueError(f"batch sizes must be positive, got {self.batch_size}")
        return self


class HpoConfig(Config):
    """The search: study, budget, pruner, search space and the fixed rest of the model config (``base``)."""

    study_name: str = Field("ldos", min_length=1)
    storage: str | None = Field(None, description="Optuna storage URL; default sqlite:///<out>/hpo.db")
    trials: int = Field(20, ge=1, description="finished trials the study should hold after this run")
    epochs: int = Field(20, ge=1, description="training epochs per trial")
    members: int = Field(1, ge=1, description="committee members per trial")
    seed: int = Field(0, description="sampler seed (combined with the number of trials already in the study)")
    pruner: Literal["median", "hyperband", "none"] = "median"
    pruner_startup_trials: int = Field(3, ge=0, description="median: trials finished before pruning starts")
    pruner_warmup_epochs: int = Field(3, ge=0, description="median: epochs of a trial before it may be pruned")
    timeout: float | None = Field(None, gt=0, description="seconds for this call (None: no limit)")
    space: SearchSpace = Field(default_factory=SearchSpace)
    base: LdosModelConfig = Field(default_factory=LdosModelConfig, description="everything not searched")


@dataclass
class HpoResult:
    """Outcome of :func:`run_hpo`: the best trial and its params, every trial, the resulting model config."""

    study_name: str
    storage: str
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    trials: list[dict[str, Any]]
    config: LdosModelConfig
    files: dict[str, Path] = field(default_factory=dict)


def suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """Draw one point of ``space`` from an Optuna trial."""
    return {
        "layers": trial.suggest_int("layers", space.layers[0], space.layers[1]),
        "width": trial.suggest_int("width", space.width[0], space.width[1], log=True),
        "activation": trial.suggest_categorical("activation", list(space.activation)),
        "lr": trial.suggest_float("lr", space.lr[0], space.lr[1], log=True),
        "batch_size": trial.suggest_categorical("batch_size", list(space.batch_size)),
    }


def apply_params(base: LdosModelConfig, params: dict[str, Any], **override: Any) -> LdosModelConfig:
    """``base`` with the network, learning rate and batch size of ``params`` (and ``override`` fields), validated."""
    d = base.model_dump(mode="json")
    d["network"] = {"hidden": [int(params["width"])] * int(params["layers"]), "activation": params["activation"]}
    d["training"] = {**d["training"], "lr": float(params["lr"]), **override.pop("training", {})}
    d["batch_size"] = int(params["batch_size"])
    d.update(override)
    return LdosModelConfig.model_validate(d)


class _PruningReport:
    """fit() callback: reports the first member's per-epoch validation band-energy error to the trial and stops
    training when the pruner says so."""

    def __init__(self, trial: Any) -> None:
        self.trial, self.member, self.last, self.pruned = trial, 0, 0, False

    def __call__(self, state: Any, record: dict[str, float]) -> None:
        if state.epoch <= self.last:  # the next member started
            self.member += 1
        self.last = state.epoch
        value = record.get("val_band_energy_mev_per_atom", float("nan"))
        if self.member != 0 or not np.isfinite(value):
            return
        self.trial.report(float(value), state.epoch)
        if self.trial.should_prune():
            self.pruned = True
            state.stopped = f"pruned by the HPO pruner at epoch {state.epoch}"


def _make_pruner(cfg: HpoConfig) -> Any:
    import optuna

    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=cfg.pruner_startup_trials, n_warmup_steps=cfg.pruner_warmup_epochs
        )
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=cfg.epochs)
    return optuna.pruners.NopPruner()


def _finished(study: Any) -> int:
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return sum(t.state in done for t in study.get_trials(deepcopy=False))


def run_hpo(
    train: Sequence[Any],
    validation: Any,
    cfg: HpoConfig,
    out: str | Path,
    pseudopotentials: dict[str, Any] | None = None,
    plots: bool = True,
) -> HpoResult:
    """Run (or continue) the search on ``train`` snapshot folders, scored on the ``validation`` snapshot; write the
    trials table, best params and best model config to ``out``; return the :class:`HpoResult`."""
    import optuna

    from alml.surrogate.model import predict_ldos
    from alml.surrogate.train import train_ldos_model
    from alml.surrogate.validation import ValidationSnapshot

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    storage = cfg.storage or f"sqlite:///{(out / 'hpo.db').resolve()}"
    probe = optuna.load_study(study_name=cfg.study_name, storage=storage) if _exists(cfg.study_name, storage) else None
    n_before = _finished(probe) if probe is not None else 0
    seed = int(np.random.SeedSequence([cfg.seed, n_before]).generate_state(1)[0])
    study = optuna.create_study(
        study_name=cfg.study_name, storage=storage, direction="minimize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed), pruner=_make_pruner(cfg),
    )
    study.set_user_attr("objective", OBJECTIVE)
    val = ValidationSnapshot.read(validation)

    def objective(trial: Any) -> float:
        params = suggest(trial, cfg.space)
        model_cfg = apply_params(
            cfg.base, params, training={"epochs": cfg.epochs}, members=cfg.members, workers=1
        )
        report = _PruningReport(trial)
        model = train_ldos_model(train, validation, model_cfg, None, pseudopotentials=pseudopotentials,
                                 callbacks=[report])
        if report.pruned:
            raise optuna.TrialPruned(f"pruned at epoch {report.last}")
        mean, _ = predict_ldos(model, val.x, val.atoms)
        return float(val.band_energy_error(mean))

    remaining = max(0, cfg.trials - n_before)
    if remaining:
        log.info("study %s: %d finished trials, running %d more", cfg.study_name, n_before, remaining)
        study.optimize(objective, n_trials=remaining, timeout=cfg.timeout, catch=(ValueError, RuntimeError))
    return write_results(study, cfg, out, storage, plots)


def _exists(name: str, storage: str) -> bool:
    import optuna

    return name in optuna.study.get_all_study_names(storage=storage)


def trials_table(study: Any) -> list[dict[str, Any]]:
    """One dict per trial: number, state, value (meV/atom), epochs reported, duration (s), the params."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        last = max(t.intermediate_values) if t.intermediate_values else None
        value = t.value if t.value is not None else (t.intermediate_values[last] if last is not None else None)
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        rows.append({
            "number": t.number, "state": t.state.name, "value": value, "epochs_reported": last,
            "duration_s": duration, **{f"param_{k}": v for k, v in t.params.items()},
        })
    return rows


def _csv(rows: list[dict[str, Any]]) -> str:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_results(study: Any, cfg: HpoConfig, out: Path, storage: str, plots: bool = True) -> HpoResult:
    """Write ``trials.csv``, ``trials.json``, ``best.json``, ``best_config.yaml`` (and ``history.png``) for a study."""
    import optuna

    rows = trials_table(study)
    files = {"trials_csv": out / "trials.csv", "trials_json": out / "trials.json"}
    atomic_write_text(files["trials_csv"], _csv(rows))
    atomic_write_json(files["trials_json"], rows)
    if plots and rows:
        import matplotlib.pyplot as plt

        from alml.plot.surrogate import hpo_history_figure

        vals = [r["value"] if r["value"] is not None else float("nan") for r in rows]
        fig = hpo_history_figure([r["number"] for r in rows], vals, [r["state"] for r in rows])
        files["history_png"] = out / "history.png"
        fig.savefig(files["history_png"], dpi=120)
        plt.close(fig)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(
            f"study {cfg.study_name!r} has no complete trial yet ({len(rows)} trials, see {files['trials_csv']}): "
            "run more trials, or loosen the pruner"
        )
    best = study.best_trial
    best_cfg = apply_params(cfg.base, best.params)
    files["best_json"], files["best_config"] = out / "best.json", out / "best_config.yaml"
    atomic_write_json(files["best_json"], {
        "study_name": cfg.study_name, "storage": storage, "objective": OBJECTIVE, "best_trial": best.number,
        "best_value": best.value, "best_params": best.params, "finished_trials": len(rows),
    })
    dump_config(best_cfg, files["best_config"])
    return HpoResult(cfg.study_name, storage, best.number, float(best.value), dict(best.params), rows, best_cfg, files)


__all__ = ["HpoConfig", "HpoResult", "SearchSpace", "apply_params", "run_hpo", "suggest", "trials_table"]
