"""Optuna search over the LDOS network: a study persisted in SQLite, continued by a rerun, best config as YAML."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from matplotlib.figure import Figure
from pydantic import ValidationError
from surrogate_data import write_snapshot

from alml.config import load_config
from alml.nn import LoopConfig, MLPConfig
from alml.plot.surrogate import hpo_history_figure
from alml.surrogate.hpo import HpoConfig, SearchSpace, _PruningReport, run_hpo
from alml.surrogate.model import LdosModelConfig
from alml.surrogate.train import train_ldos_model


@pytest.fixture(scope="module")
def snaps(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("hpo-data")
    return [write_snapshot(root / f"s{i}", seed=40 + i) for i in range(3)]


def hpo_config(trials: int) -> HpoConfig:
    return HpoConfig(
        study_name="tiny",
        trials=trials,
        epochs=3,
        seed=7,
        pruner="median",
        pruner_startup_trials=1,
        pruner_warmup_epochs=1,
        space=SearchSpace(layers=(1, 2), width=(8, 32), activation=("relu", "tanh"), lr=(1e-3, 1e-2),
                          batch_size=(64, 128)),
        base=LdosModelConfig(training=LoopConfig(epochs=200, patience=None, schedule="constant"), members=4),
    )


def test_study_persists_continues_and_gives_a_train_ready_config(snaps: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "hpo"
    first = run_hpo(snaps[:2], snaps[2], hpo_config(3), out)
    storage = f"sqlite:///{(out / 'hpo.db').resolve()}"
    assert first.storage == storage and (out / "hpo.db").is_file()
    stored = optuna.load_study(study_name="tiny", storage=storage).trials  # a fresh connection: on disk
    assert len(stored) == 3 and all(t.state.name in ("COMPLETE", "PRUNED") for t in stored)
    assert any(t.state.name == "COMPLETE" for t in stored)
    before = [t.params for t in stored]

    again = run_hpo(snaps[:2], snaps[2], hpo_config(5), out)  # same name and storage: two more trials
    stored = optuna.load_study(study_name="tiny", storage=storage).trials
    assert [t.number for t in stored] == [0, 1, 2, 3, 4] and [t.params for t in stored[:3]] == before
    assert stored[3].params["lr"] not in [p["lr"] for p in before]  # the continued sampler draws new points
    assert len(again.trials) == 5 and len(run_hpo(snaps[:2], snaps[2], hpo_config(5), out, plots=False).trials) == 5

    best = min((t for t in stored if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert again.best_trial == best.number and again.best_value == pytest.approx(best.value)
    assert again.best_value > 0 and np.isfinite(again.best_value)
    assert json.loads((out / "best.json").read_text())["best_params"] == best.params
    cfg = load_config(LdosModelConfig, out / "best_config.yaml")
    assert cfg == again.config
    assert cfg.network.hidden == (best.params["width"],) * best.params["layers"]
    assert cfg.network.activation == best.params["activation"] and cfg.batch_size == best.params["batch_size"]
    assert cfg.training.lr == pytest.approx(best.params["lr"])
    assert cfg.training.epochs == 200 and cfg.members == 4  # the rest comes from base, not from the trials
    rows = (out / "trials.csv").read_text().splitlines()
    assert len(rows) == 6 and rows[0].startswith("number,state,value")
    assert (out / "history.png").stat().st_size > 1000


class _StopAfter:
    """A stand-in for an Optuna trial whose pruner says stop after ``n`` reports."""

    def __init__(self, n: int) -> None:
        self.n, self.reports = n, []

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return len(self.reports) >= self.n


def test_pruning_callback_stops_training(snaps: list[Path], tmp_path: Path) -> None:
    trial = _StopAfter(2)
    report = _PruningReport(trial)
    cfg = LdosModelConfig(network=MLPConfig(hidden=(8,)), members=1, batch_size=64,
                          training=LoopConfig(epochs=10, patience=None, schedule="constant"))
    train_ldos_model(snaps[:1], snaps[2], cfg, tmp_path / "m", callbacks=[report])
    history = json.loads((tmp_path / "m" / "training" / "member_00" / "history.json").read_text())
    assert report.pruned and len(history) == 2 and [s for s, _ in trial.reports] == [1, 2]
    assert trial.reports[1][1] == pytest.approx(history[1]["val_band_energy_mev_per_atom"])


def test_config_errors_and_history_plot() -> None:
    with pytest.raises(ValidationError, match="extra"):
        HpoConfig(n_trials=3)
    with pytest.raises(ValidationError, match="min <= max"):
        SearchSpace(lr=(1e-2, 1e-4))
    with pytest.raises(ValidationError):
        SearchSpace(activation=("linear",))  # linear is not searched: no hidden non-linearity
    fig = hpo_history_figure([0, 1, 2, 3], [5.0, 3.0, 4.0, 8.0], ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"])
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert len(fig.axes[0].lines) == 3  # complete, pruned, best-so-far
