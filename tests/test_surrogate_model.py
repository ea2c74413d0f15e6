"""LDOS surrogate: training on synthetic snapshots written through the real file route (no QE, no LAMMPS)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from alml.data.grids import EnergyLadder, LdosMeta, write_ldos_h5
from alml.descriptors import MALA_AL, save_grid_h5
from alml.nn import LoopConfig, MLPConfig
from alml.surrogate.model import (
    MODEL_JSON,
    LdosModelConfig,
    band_energy_committee,
    fit_scalers,
    load_ldos_model,
    predict_ldos,
    predict_members,
)
from alml.surrogate.observables import observables
from alml.surrogate.train import SlabStream, ValidationSnapshot, load_points, train_ldos_model

SHAPE = (6, 6, 6)
SETTINGS = MALA_AL.model_copy(update={"twojmax": 2})  # K = 5
LADDER = EnergyLadder.uniform(-6.0, 0.25, 30, 0.25, "gaussian")
T = 1000.0


def true_ldos(x: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """A smooth, positive LDOS (..., n_e) of descriptors (..., 5): a Gaussian peak whose centre and height
    depend on the descriptors, on a flat background; ``shift`` (eV) moves the whole cell's peaks."""
    e = LADDER.energies
    centre = -2.5 + shift + 1.2 * np.tanh(x[..., 0:1])
    height = 0.05 * (1.5 + 0.5 * np.sin(x[..., 1:2]) + 0.3 * x[..., 2:3] ** 2 / (1 + x[..., 2:3] ** 2))
    return (height * np.exp(-0.5 * ((e - centre) / 0.9) ** 2) + 0.01).astype(np.float32)


def cubic_al(a: float = 4.05) -> Atoms:
    return bulk("Al", "fcc", a=a, cubic=True)


def write_snapshot(d: Path, seed: int, a: float = 4.05, shift: float = 0.0) -> Path:
    atoms = cubic_al(a)
    atoms.rattle(0.05, seed=seed)
    x = np.random.default_rng(seed).normal(size=(*SHAPE, SETTINGS.n_components)).astype(np.float32)
    y = true_ldos(x, shift)
    volume = atoms.get_volume()
    total = float(y.reshape(-1, LADDER.n).sum(axis=0).sum() * volume / np.prod(SHAPE) * LADDER.spacing)
    meta = LdosMeta(atoms=atoms, ladder=LADDER, shape=SHAPE, temperature=T, n_electrons=round(0.5 * total, 3))
    d.mkdir(parents=True)
    write_ldos_h5(d / "ldos.h5", meta, y)
    save_grid_h5(d / "descriptors.h5", x, atoms, SETTINGS)
    return d


def config(**kw: object) -> LdosModelConfig:
    base = dict(
        network=MLPConfig(hidden=(32, 32), activation="tanh"),
        training=LoopConfig(epochs=60, lr=5e-3, patience=None, schedule="constant", checkpoint_every=20),
        members=2,
        seed=3,
        batch_size=64,
    )
    return LdosModelConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], Path]:
    root = tmp_path_factory.mktemp("ldos")
    train = [write_snapshot(root / f"snap{i}", seed=i) for i in range(2)]
    val = write_snapshot(root / "val", seed=10)
    out = root / "model"
    train_ldos_model(train, val, config(refit_output=True), out)
    return out, train, val


def test_beats_constant_baseline_on_held_out_snapshot(trained: tuple[Path, list[Path], Path]) -> None:
    out, train, val = trained
    model = load_ldos_model(out)
    _, y_train, _ = load_points(train)
    v = ValidationSnapshot.read(val)
    mean, std = predict_ldos(model, v.x, v.atoms)
    mse = float(np.mean((mean - v.y) ** 2))
    baseline = float(np.mean((y_train.mean(axis=0) - v.y) ** 2))
    assert mse < 0.05 * baseline
    assert mean.shape == std.shape == v.y.shape
    assert np.all(std >= 0) and std.mean() > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["members"]) == 2
    assert all(np.isfinite(m["val_band_energy_mev_per_atom"]) for m in metrics["members"])
    # the output-layer refit (on in this fixture) can only lower the training MSE, and is validated afterwards
    for m in metrics["members"]:
        assert m["refit"]["train_mse_after"] <= m["refit"]["train_mse_before"]
        assert np.isfinite(m["refit"]["val_band_energy_mev_per_atom"])
    history = json.loads((out / "training" / "member_00" / "history.json").read_text())
    assert len(history) == 60 and "val_band_energy_mev_per_atom" in history[-1]


def test_band_energy_committee_on_whole_cell(trained: tuple[Path, list[Path], Path]) -> None:
    out, _, val = trained
    v = ValidationSnapshot.read(val)
    stats = band_energy_committee(out, v.x, v.atoms, v.n_electrons, v.temperature)
    assert stats.members.shape == (2,)
    assert stats.std > 0
    assert np.isfinite(stats.of_mean_ldos)
    err = abs(stats.of_mean_ldos - v.band_energy) / v.n_atoms * 1000
    true = observables(v.y, LADDER, v.volume, v.n_electrons, T, with_density=False).band_energy
    assert true == pytest.approx(v.band_energy)
    assert err < 20.0  # meV/atom: a sanity bound on a 60-epoch toy fit (about 1 here), not an accuracy claim


def test_folder_round_trip_and_incomplete_folder(trained: tuple[Path, list[Path], Path], tmp_path: Path) -> None:
    out, _, val = trained
    a, b = load_ldos_model(out), load_ldos_model(out)
    v = ValidationSnapshot.read(val)
    x = v.x[:17]
    assert np.array_equal(predict_members(a, x, v.atoms), predict_members(b, x, v.atoms))
    pm = predict_members(a, v.x.reshape(*SHAPE, -1), v.atoms)
    assert pm.shape == (2, *SHAPE, LADDER.n)
    assert a.config == config(refit_output=True)
    assert a.ladder.key() == LADDER.key()
    assert a.descriptor_settings is not None and a.descriptor_settings["twojmax"] == 2
    assert "versions" in a.provenance and "dataset_hash" in a.provenance
    (tmp_path / "half").mkdir()
    for f in out.iterdir():
        if f.is_file() and f.name != MODEL_JSON:
            (tmp_path / "half" / f.name).write_bytes(f.read_bytes())
    with pytest.raises(FileNotFoundError):
        load_ldos_model(tmp_path / "half")


def test_rerun_resumes_from_checkpoints(trained: tuple[Path, list[Path], Path], tmp_path: Path) -> None:
    """A second call on the same folder resumes each member from its final checkpoint: no new epochs,
    the same weights; switching the output refit off resumes too (it is post-processing); another config on that
    folder is refused."""
    out, train, val = trained
    before = load_ldos_model(out)
    again = train_ldos_model(train, val, config(refit_output=True), out)
    v = ValidationSnapshot.read(val)
    assert np.allclose(predict_members(before, v.x, v.atoms), predict_members(again, v.x, v.atoms), atol=1e-6)
    history = json.loads((out / "training" / "member_01" / "history.json").read_text())
    assert len(history) == 60
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    plain = train_ldos_model(train, val, config(refit_output=False, members=1), copy)  # post-processing, committee size
    assert len(json.loads((copy / "training" / "member_00" / "history.json").read_text())) == 60
    assert "refit" not in json.loads((copy / "metrics.json").read_text())["members"][0]
    assert not np.allclose(predict_members(plain, v.x, v.atoms), predict_members(again, v.x, v.atoms)[:1], atol=1e-6)
    with pytest.raises(ValueError, match="another run"):
        train_ldos_model(train, val, config(seed=4), out)


def test_sampled_points_and_single_scale(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    snaps = [write_snapshot(tmp_path / f"s{i}", seed=20 + i) for i in range(2)]
    x, y, ladder = load_points(snaps, points_per_snapshot=50, seed=1)
    assert x.shape == (100, 5) and y.shape == (100, LADDER.n) and ladder.key() == LADDER.key()
    assert np.allclose(y, true_ldos(x), atol=1e-6)  # descriptors and LDOS rows stay paired
    cfg = config(
        members=1,
        output_scaling="single",
        points_per_snapshot=50,
        training=LoopConfig(epochs=2, patience=None, schedule="constant"),
    )
    with caplog.at_level(logging.INFO, logger="alml.surrogate.train"):
        model = train_ldos_model(snaps[:1], snaps[1], cfg)
    epochs = [r.getMessage() for r in caplog.records if "epoch" in r.getMessage()]
    assert [m.split(" val_")[0].split(" lr=")[0] for m in epochs] == ["member 0: epoch 1", "member 0: epoch 2"]
    assert all("val_band_energy_mev_per_atom=" in m for m in epochs)  # progress in physics units, every epoch
    mean, std = predict_ldos(model, x, cubic_al())
    assert mean.shape == y.shape and np.all(std == 0)
    s = model.scalers()
    assert np.all(s.y_mean == 0) and np.ptp(s.y_std) == 0


def test_slab_stream_sees_every_point_once_and_matches_in_memory_scalers(tmp_path: Path) -> None:
    snaps = [write_snapshot(tmp_path / f"s{i}", seed=30 + i) for i in range(2)]
    stream = SlabStream(snaps, planes_per_slab=2, buffer_slabs=2)
    assert stream.n_points == 2 * int(np.prod(SHAPE)) and len(stream.slabs) == 6
    batches = list(stream.batches(seed=5, epoch=0, batch_size=50))
    assert all(len(b[0]) == 50 for b in batches[:-1])
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    x_all, y_all, _ = load_points(snaps)
    assert x.shape == x_all.shape
    assert np.array_equal(np.unique(x, axis=0), np.unique(x_all, axis=0))  # every point exactly once
    assert np.allclose(y, true_ldos(x), atol=1e-6)
    first = [b[0] for b in stream.batches(seed=5, epoch=1, batch_size=50)]
    assert not np.array_equal(first[0], batches[0][0])  # reshuffled every epoch
    again = list(stream.batches(seed=5, epoch=0, batch_size=50))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(again, batches))  # reproducible (resume)
    for scaling in ("per-energy", "single"):
        a, b = stream.scalers(scaling), fit_scalers(x_all, y_all, scaling)
        for key in ("x_mean", "x_std", "y_mean", "y_std"):
            assert np.allclose(getattr(a, key), getattr(b, key), rtol=1e-5, atol=1e-7), (scaling, key)


def test_streaming_training_beats_baseline(tmp_path: Path) -> None:
    snaps = [write_snapshot(tmp_path / f"s{i}", seed=40 + i) for i in range(3)]
    cfg = config(
        members=1,
        streaming=True,
        planes_per_slab=1,
        buffer_slabs=4,
        training=LoopConfig(epochs=25, lr=5e-3, patience=None, schedule="constant"),
    )
    model = train_ldos_model(snaps[:2], snaps[2], cfg, tmp_path / "m")
    v = ValidationSnapshot.read(snaps[2])
    _, y_train, _ = load_points(snaps[:2])
    mean, _ = predict_ldos(tmp_path / "m", v.x, v.atoms)
    assert np.mean((mean - v.y) ** 2) < 0.1 * np.mean((y_train.mean(axis=0) - v.y) ** 2)
    assert load_ldos_model(tmp_path / "m").config.streaming and model.n_members == 1
    with pytest.raises(ValueError, match="points_per_snapshot"):
        config(streaming=True, points_per_snapshot=10)


def test_per_energy_scaling_floors_empty_energies() -> None:
    """An energy the training LDOS leaves (almost) empty must not be scaled up ~1e8-fold: its std is floored at
    OUTPUT_STD_FLOOR x the largest std, the other stds are kept, and a flat descriptor keeps std 1."""
    from alml.surrogate.model import OUTPUT_STD_FLOOR

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3))
    x[:, 2] = 4.0
    y = np.column_stack([1e-9 * rng.normal(size=500), 0.5 * rng.normal(size=500), 0.05 * rng.normal(size=500)])
    s = fit_scalers(x, y)
    assert s.y_std[0] == pytest.approx(OUTPUT_STD_FLOOR * y[:, 1].std())
    assert s.y_std[1:] == pytest.approx(y[:, 1:].std(axis=0))
    assert s.x_std[2] == 1.0


def test_global_atom_density_input_follows_a_density_dependent_energy_shift(tmp_path: Path) -> None:
    """Two densities whose LDOS differ by a whole-cell shift of 0.6 eV, with descriptors of the same distribution
    (as a periodic cell's absolute energy reference moves with its density): with the cell's atom density as an
    input (the default) the held-out error is a small fraction of the error of a descriptors-only model."""
    lattice = {4.05: 0.0, 4.25: 0.6}  # a (Å) -> shift (eV)
    snaps = {a: [write_snapshot(tmp_path / f"a{a}-{i}", seed=50 + 10 * i + int(a * 100), a=a, shift=sh)
                 for i in range(3)] for a, sh in lattice.items()}
    train = [d for a in lattice for d in snaps[a][:2]]
    x, _, _ = load_points(train[:1], global_inputs=["atom_density"])
    assert x.shape[1] == SETTINGS.n_components + 1
    assert np.allclose(x[:, -1], 4 / 4.05**3, rtol=1e-6)
    errors = {}
    for name, inputs in (("global", ["atom_density"]), ("local", [])):
        cfg = config(members=1, global_inputs=inputs, training=LoopConfig(epochs=40, lr=5e-3, patience=None))
        model = train_ldos_model(train, snaps[4.05][2], cfg)
        assert model.n_in == SETTINGS.n_components + len(inputs)
        mse = []
        for a in lattice:
            v = ValidationSnapshot.read(snaps[a][2])
            mean, _ = predict_ldos(model, v.x, v.atoms)
            mse.append(float(np.mean((mean - v.y) ** 2)))
        errors[name] = np.mean(mse)
    assert errors["global"] < 0.3 * errors["local"], errors


@pytest.mark.parametrize("hidden", [(7, 5), ()])
def test_readout_is_the_output_layer(hidden: tuple[int, ...]) -> None:
    """features(x) @ a.T + c equals the member's LDOS (output scaling included), with and without hidden layers;
    the prediction passes rely on it to skip forming the LDOS."""
    import torch

    from alml.surrogate.model import LdosNet, Scalers

    torch.manual_seed(3)
    rng = np.random.default_rng(3)
    net = LdosNet(4, 6, MLPConfig(hidden=hidden, activation="tanh")).double()
    net.set_scalers(Scalers(rng.normal(size=4), 1 + rng.random(4), rng.normal(size=6), 1 + rng.random(6)))
    x = torch.as_tensor(rng.normal(size=(10, 4)))
    a, c = net.readout()
    with torch.no_grad():
        h = net.features(x).numpy()
        want = net(x).numpy()
    assert h.shape == (10, hidden[-1] if hidden else 4)
    assert np.allclose(h @ a.T + c, want, rtol=1e-12, atol=1e-12)
