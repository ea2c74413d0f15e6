"""Held-out evaluation in physics units, per-epoch validation metrics, and the surrogate plots."""

from __future__ import annotations

import csv
import gc
import json
import weakref
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from surrogate_data import LADDER, pseudo, write_snapshot

from alml.data.grids import EnergyLadder, LdosMeta, QEReference, read_ldos_h5
from alml.nn import LoopConfig, MLPConfig
from alml.plot.surrogate import density_slices_figure, dos_figure, snapshot_errors_figure
from alml.surrogate.evaluate import evaluate_model, snapshot_errors
from alml.surrogate.metrics import density_error_percent, density_spread_percent
from alml.surrogate.model import LdosModelConfig
from alml.surrogate.total_energy import energies_from_ldos
from alml.surrogate.train import train_ldos_model

ECUT = 400.0  # eV, a G-sphere inside the 6^3 grid


def test_density_percent_matches_hand_computation() -> None:
    true = np.array([[1.0, 2.0], [3.0, 4.0]])
    pred = np.array([[1.5, 2.0], [2.0, 4.0]])
    assert density_error_percent(pred, true) == pytest.approx(100 * (0.5 + 1.0) / 10.0)
    members = np.stack([true, pred])
    assert density_spread_percent(members, true) == pytest.approx(100 * (0.5 + 1.0) / np.sqrt(2) / 10.0)
    assert density_spread_percent(members[:1], true) == 0.0
    with pytest.raises(ValueError, match="different grids"):
        density_error_percent(pred.ravel(), true)


def _snapshot(tmp_path: Path, reference: QEReference | None = None, seed: int = 1) -> tuple[np.ndarray, LdosMeta]:
    d = write_snapshot(tmp_path / f"s{seed}", seed=seed, reference=reference, ecutrho=ECUT)
    return read_ldos_h5(d / "ldos.h5")


def test_truth_scores_zero_and_a_perturbed_committee_does_not(tmp_path: Path) -> None:
    truth, meta = _snapshot(tmp_path)
    row, curves = snapshot_errors(np.stack([truth, truth]), truth, meta, "s1", pseudo())
    assert row.reference == "true-ldos"
    for name in ("band_energy_error_mev_per_atom", "total_energy_error_mev_per_atom", "density_error_percent",
                 "fermi_level_error_mev", "band_energy_std_mev_per_atom", "total_energy_std_mev_per_atom",
                 "density_std_percent", "fermi_level_std_mev"):
        assert abs(getattr(row, name)) < 1e-9, name
    assert np.isfinite(row.total_energy) and np.allclose(curves.dos_pred, curves.dos_true)

    rng = np.random.default_rng(0)
    members = np.stack([truth * (1 + 0.05 * rng.standard_normal(truth.shape)) for _ in range(3)])
    bad, curves = snapshot_errors(members, truth, meta, "s1", pseudo())
    assert abs(bad.band_energy_error_mev_per_atom) > 1e-3 and abs(bad.total_energy_error_mev_per_atom) > 1e-3
    assert bad.density_error_percent > 0.1 and bad.density_std_percent > 0.1
    assert min(bad.band_energy_std_mev_per_atom, bad.total_energy_std_mev_per_atom, bad.fermi_level_std_mev) > 0
    assert bad.density_error_percent == pytest.approx(density_error_percent(curves.density_pred, curves.density_true))
    no_total, _ = snapshot_errors(members, truth, meta, "s1", None)  # no pseudopotentials: no total energy
    assert np.isnan(no_total.total_energy_error_mev_per_atom)
    assert no_total.band_energy_error_mev_per_atom == pytest.approx(bad.band_energy_error_mev_per_atom)


def test_members_are_consumed_one_at_a_time(tmp_path: Path) -> None:
    """A generator of members gives the stacked array's result while no earlier member is still alive."""
    truth, meta = _snapshot(tmp_path)
    rng = np.random.default_rng(3)
    scales = [1 + 0.05 * rng.standard_normal(truth.shape) for _ in range(3)]
    stacked, stacked_curves = snapshot_errors(np.stack([truth * s for s in scales]), truth, meta, "s1", pseudo())
    alive: list[weakref.ref] = []

    def members():
        for s in scales:
            gc.collect()
            assert all(r() is None for r in alive), "an earlier member is still held"
            m = truth * s
            alive.append(weakref.ref(m))
            yield m
            del m

    streamed, curves = snapshot_errors(members(), truth, meta, "s1", pseudo())
    assert len(alive) == 3
    for name in ("band_energy_error_mev_per_atom", "total_energy_error_mev_per_atom", "density_error_percent",
                 "density_std_percent", "band_energy_std_mev_per_atom", "fermi_level_std_mev"):
        assert getattr(streamed, name) == pytest.approx(getattr(stacked, name), rel=1e-12, abs=1e-12), name
    assert np.allclose(curves.dos_std, stacked_curves.dos_std, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="at least one member"):
        snapshot_errors(iter(()), truth, meta, "s1", None)


def test_qe_values_are_the_reference_when_present(tmp_path: Path) -> None:
    truth, meta = _snapshot(tmp_path, seed=2)
    obs, terms = energies_from_ldos(truth, meta.ladder, meta.atoms, meta.temperature, meta.n_electrons, pseudo(), ECUT)
    n = len(meta.atoms)
    ref = QEReference(
        fermi_level=obs.fermi_level + 0.010, band_energy=obs.band_energy + 0.004 * n,
        free_energy=terms.free_energy - 0.008 * n, energy=terms.energy, n_electrons=meta.n_electrons, terms={},
    )
    truth, meta = _snapshot(tmp_path / "qe", reference=ref, seed=2)
    row, _ = snapshot_errors(truth[None], truth, meta, "s2", pseudo())
    assert row.reference == "qe"
    assert row.band_energy_error_mev_per_atom == pytest.approx(-4.0, abs=1e-6)
    assert row.total_energy_error_mev_per_atom == pytest.approx(8.0, abs=1e-6)
    assert row.fermi_level_error_mev == pytest.approx(-10.0, abs=1e-6)
    meta.reference.band_energy = float("nan")  # an output without eigenvalues: no QE band energy
    row, _ = snapshot_errors(truth[None], truth, meta, "s2", pseudo())
    assert row.reference == "qe (band energy from true-ldos)"
    assert row.band_energy_error_mev_per_atom == pytest.approx(0.0, abs=1e-9)


def test_evaluate_trained_model_writes_table_and_plots(tmp_path: Path) -> None:
    train = [write_snapshot(tmp_path / f"t{i}", seed=i, ecutrho=ECUT) for i in range(2)]
    val = write_snapshot(tmp_path / "val", seed=10, ecutrho=ECUT)
    test = [write_snapshot(tmp_path / f"test{i}", seed=20 + i, ecutrho=ECUT) for i in range(2)]
    cfg = LdosModelConfig(
        network=MLPConfig(hidden=(32, 32), activation="tanh"), members=2, seed=3, batch_size=64,
        training=LoopConfig(epochs=30, lr=5e-3, patience=None, schedule="constant", checkpoint_every=30),
    )
    model = train_ldos_model(train, val, cfg, tmp_path / "model", pseudopotentials=pseudo())
    history = json.loads((tmp_path / "model" / "training" / "member_00" / "history.json").read_text())
    for key in ("val_band_energy_mev_per_atom", "val_density_error_percent", "val_total_energy_mev_per_atom"):
        assert all(np.isfinite(r[key]) for r in history[-5:]), key
    assert history[-1]["val_density_error_percent"] < history[0]["val_density_error_percent"]
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert "val_total_energy_mev_per_atom" in metrics["members"][0]

    res = evaluate_model(model, test, tmp_path / "eval", pseudopotentials=pseudo())
    assert [r.name for r in res.rows] == ["test0", "test1"]
    for r in res.rows:
        assert r.reference == "true-ldos"
        assert abs(r.band_energy_error_mev_per_atom) < 20 and 0 < r.density_error_percent < 10  # a toy fit
        assert r.band_energy_std_mev_per_atom > 0 and np.isfinite(r.total_energy_error_mev_per_atom)
    assert res.summary["density_error_percent_max"] == pytest.approx(max(r.density_error_percent for r in res.rows))
    rows = list(csv.DictReader((tmp_path / "eval" / "evaluation.csv").open()))
    assert len(rows) == 2
    assert float(rows[1]["density_error_percent"]) == pytest.approx(res.rows[1].density_error_percent)
    saved = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert "density_error_percent" in saved["definitions"] and saved["summary"]["snapshots"] == 2
    for f in ("errors.png", "dos_test0.png", "density_test1.png"):
        assert (tmp_path / "eval" / f).stat().st_size > 1000

    other = tmp_path / "other"
    other.mkdir()
    meta_ladder = EnergyLadder.uniform(-6.0, 0.25, LADDER.n, 0.25, "gaussian")
    y, meta = read_ldos_h5(test[0] / "ldos.h5")
    from alml.data.grids import write_ldos_h5

    meta.ladder = meta_ladder
    write_ldos_h5(other / "ldos.h5", meta, y)
    (other / "descriptors.h5").write_bytes((test[0] / "descriptors.h5").read_bytes())
    with pytest.raises(ValueError, match="differs from the model's"):
        evaluate_model(model, [other], total_energy=False)


def test_plots_return_figures_with_expected_axes() -> None:
    e = LADDER.energies
    fig = dos_figure(e, np.exp(-e**2), np.exp(-e**2) * 1.1, 0.05 * np.ones_like(e), fermi_level=0.0, title="x")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.axes[0].get_ylabel() == "DOS (states/eV)" and len(fig.axes[0].collections) == 1  # the band
    n = np.random.default_rng(0).random((4, 5, 6))
    fig = density_slices_figure(n * 1.01, n, axis=1)
    assert len(fig.axes) == 6  # three images and their colour bars
    assert fig.axes[0].images[0].get_array().shape == (6, 4)  # the (x, z) plane, transposed for imshow
    with pytest.raises(ValueError, match="one grid"):
        density_slices_figure(n, n[:2])
    fig = snapshot_errors_figure(["a", "b", "c"], [1.0, -2.0, 0.5], [0.1, 0.2, 0.3], [3.0, 1.0, -1.0], [0.3, 0.1, 0.2])
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 6
    fig = snapshot_errors_figure(["a"], [1.0], None, [float("nan")], None)
    assert len(fig.axes[0].patches) == 1  # an all-NaN total-energy series is left out
