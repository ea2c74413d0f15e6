"""Generic NN pieces: MLP config, scalers, the training loop (early stopping, exact resume), committees."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from alml.config import ConfigError, parse_config
from alml.nn import (
    MLP,
    LoopConfig,
    MLPConfig,
    committee_statistics,
    fit,
    fit_reference_energies,
    fit_standardizer,
    member_seed,
    plan_workers,
    read_history,
    run_members,
)
from alml.runtime import set_threads

set_threads(1)


# --- MLP and config ---------------------------------------------------------------------------


def test_mlp_layers_and_activations():
    torch.manual_seed(0)
    net = MLP(5, (4, 3), "sigmoid").double()
    layers = net.dense_layers()
    assert [w.shape for w, _, _ in layers] == [(4, 5), (3, 4), (1, 3)]
    assert [a for _, _, a in layers] == ["sigmoid", "sigmoid", "linear"]
    x = torch.randn(7, 5, dtype=torch.float64)
    h = x
    for w, b, a in layers:
        h = h @ w.T + b
        h = torch.sigmoid(h) if a == "sigmoid" else h
    assert torch.allclose(net(x), h)
    assert len(MLP(5, (), "tanh").dense_layers()) == 1  # a linear model


def test_mlp_config_rejects_what_lammps_cannot_evaluate():
    with pytest.raises(ConfigError, match="activation"):
        parse_config(MLPConfig, {"activation": "gelu"})
    with pytest.raises(ConfigError, match="positive"):
        parse_config(MLPConfig, {"hidden": [8, 0]})
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config(MLPConfig, {"hiden": [8]})
    assert parse_config(MLPConfig, {"hidden": [8, 4]}).hidden == (8, 4)


# --- scaling -----------------------------------------------------------------------------------


def test_standardizer_per_group_and_constant_features():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(200, 3))
    x[:, 2] = 7.0  # constant feature: shifted, never amplified
    groups = np.repeat([0, 1], 100)
    x[groups == 1] += 10.0
    s = fit_standardizer(x, groups, 3)
    y = s.apply(x, groups)
    for g in (0, 1):
        assert np.allclose(y[groups == g, :2].mean(0), 0.0, atol=1e-12)
        assert np.allclose(y[groups == g, :2].std(0), 1.0)
    assert np.all(y[:, 2] == 0.0) and np.all(s.std[:, 2] == 1.0)
    assert np.all(s.mean[2] == 0.0) and np.all(s.std[2] == 1.0)  # empty group
    assert np.allclose(type(s).from_dict(s.to_dict()).mean, s.mean)


def test_reference_energies_least_squares():
    e_true = np.array([-3.7, -1.2])
    counts = np.array([[4, 0], [2, 2], [1, 3], [8, 1]], float)
    e = fit_reference_energies(counts, counts @ e_true)
    assert np.allclose(e, e_true, atol=1e-8)
    single = np.array([[4.0], [32.0], [31.0]])
    assert fit_reference_energies(single, -3.5 * single[:, 0])[0] == pytest.approx(-3.5, abs=1e-9)
    assert fit_reference_energies(np.zeros((3, 2)), np.ones(3)).tolist() == [0.0, 0.0]


# --- the training loop ---------------------------------------------------------------------------


def _regression(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(64, 2, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.sin(2 * x[:, :1]) * x[:, 1:]
    return x, y


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = MLP(2, (8,), "tanh").double()
    x, y = _regression()
    xv, yv = x[:16], y[:16]
    xt, yt = x[16:], y[16:]

    def batches(epoch: int):
        order = np.random.default_rng([seed, epoch]).permutation(len(xt))
        for k in range(0, len(order), 12):
            idx = torch.as_tensor(order[k : k + 12])
            yield xt[idx], yt[idx]

    def step(b):
        return ((model(b[0]) - b[1]) ** 2).mean()

    def evaluate():
        with torch.no_grad():
            return {
                "train_loss": float(((model(xt) - yt) ** 2).mean()),
                "val_loss": float(((model(xv) - yv) ** 2).mean()),
            }

    return model, step, batches, evaluate


def test_fit_loss_falls_and_keeps_best(tmp_path):
    model, step, batches, evaluate = _setup()
    before = evaluate()["val_loss"]
    cfg = LoopConfig(epochs=40, lr=1e-2, patience=None, checkpoint_every=10)
    state = fit(model, step, batches, evaluate, cfg, workdir=tmp_path)
    assert state.epoch == 40 and "reached 40" in state.stopped
    assert state.best < 0.3 * before
    assert evaluate()["val_loss"] == pytest.approx(state.best)  # best weights restored
    hist = read_history(tmp_path)
    assert len(hist) == 40 and {"epoch", "lr", "train_loss", "val_loss", "time_s"} <= set(hist[0])
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "checkpoint.pt").is_file()


def test_fit_keep_last_returns_the_last_epoch_not_the_best():
    model, step, batches, evaluate = _setup()
    # a constant, too-high learning rate makes the validation loss wander, so best and last epochs differ
    cfg = LoopConfig(epochs=30, lr=0.3, schedule="constant", patience=None, keep="last")
    state = fit(model, step, batches, evaluate, cfg)
    last = state.history[-1]["val_loss"]
    assert state.best_epoch != state.epoch and state.best < last
    assert evaluate()["val_loss"] == pytest.approx(last, rel=1e-12)


def test_fit_early_stopping_and_plateau_schedule():
    model, step, batches, evaluate = _setup()
    cfg = LoopConfig(epochs=500, lr=0.5, patience=5, plateau_patience=1, plateau_factor=0.5)
    state = fit(model, step, batches, evaluate, cfg)
    assert "no improvement" in state.stopped and state.epoch < 500
    lrs = [h["lr"] for h in state.history]
    assert min(lrs) < 0.5  # the plateau schedule lowered it


class _Interrupt(Exception):
    pass


def test_fit_resume_after_interruption_equals_uninterrupted(tmp_path):
    cfg = LoopConfig(epochs=30, lr=1e-2, checkpoint_every=5, patience=None)
    ref_model, step, batches, evaluate = _setup()
    ref = fit(ref_model, step, batches, evaluate, cfg)

    model, step, batches, evaluate = _setup()

    def crash(state, record):
        if state.epoch == 13:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        fit(model, step, batches, evaluate, cfg, workdir=tmp_path, callbacks=[crash], fingerprint="a")
    assert len(read_history(tmp_path)) == 10  # last checkpoint
    model, step, batches, evaluate = _setup(seed=0)
    torch.manual_seed(123)  # the fresh model's weights are overwritten by the checkpoint
    state = fit(model, step, batches, evaluate, cfg, workdir=tmp_path, fingerprint="a")
    assert state.epoch == 30 and state.best_epoch == ref.best_epoch
    assert [h["val_loss"] for h in state.history] == [h["val_loss"] for h in ref.history]
    for a, b in zip(model.state_dict().values(), ref_model.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="another run"):
        fit(model, step, batches, evaluate, cfg, workdir=tmp_path, fingerprint="b")


def test_fit_extends_a_finished_run(tmp_path):
    model, step, batches, evaluate = _setup()
    fit(model, step, batches, evaluate, LoopConfig(epochs=6, checkpoint_every=3, patience=None), workdir=tmp_path)
    state = fit(model, step, batches, evaluate, LoopConfig(epochs=9, checkpoint_every=3, patience=None),
                workdir=tmp_path)
    assert state.epoch == 9 and len(state.history) == 9


def test_fit_stops_on_non_finite_loss():
    model, step, batches, _ = _setup()
    state = fit(model, step, batches, lambda: {"val_loss": math.nan}, LoopConfig(epochs=5))
    assert "not finite" in state.stopped and state.epoch == 1


# --- committees ----------------------------------------------------------------------------------


def test_committee_statistics_definitions():
    rng = np.random.default_rng(1)
    k, n = 4, 5
    e = rng.normal(-10, 0.1, k)
    f = rng.normal(0, 0.3, (k, n, 3))
    s = committee_statistics(e, f)
    assert s.energy == pytest.approx(e.mean())
    assert s.energy_std == pytest.approx(np.std(e, ddof=1) / np.sqrt(n))
    assert s.forces.shape == (n, 3) and np.allclose(s.forces, f.mean(0))
    expect = np.array([np.sqrt(sum(np.var(f[:, i, a], ddof=1) for a in range(3))) for i in range(n)])
    assert s.forces_std.shape == (n,) and np.allclose(s.forces_std, expect)
    assert s.forces_std_mean == pytest.approx(expect.mean()) and s.forces_std_max == pytest.approx(expect.max())
    one = committee_statistics(e[:1], f[:1])
    assert one.energy_std == 0.0 and np.all(one.forces_std == 0.0)
    no_f = committee_statistics(e, n_atoms=9)
    assert no_f.forces is None and no_f.energy_std == pytest.approx(np.std(e, ddof=1) / 3)


def test_member_seeds_and_worker_plan():
    seeds = {member_seed(0, m) for m in range(8)}
    assert len(seeds) == 8 and member_seed(0, 3) == member_seed(0, 3) != member_seed(1, 3)
    assert plan_workers(8, 1, cores=2) == 2
    assert plan_workers(8, 2, cores=2) == 1
    assert plan_workers(1, 1, cores=16) == 1


def _threads_and_square(k: int) -> tuple[int, int]:
    return torch.get_num_threads(), k * k


def test_run_members_in_processes_with_one_thread_each():
    out = run_members(_threads_and_square, [0, 1, 2], workers=2, threads=1)
    assert out == [(1, 0), (1, 1), (1, 4)]
    assert run_members(_threads_and_square, [3], workers=4, threads=1) == [(1, 9)]


def test_refit_output_layer_is_the_least_squares_readout():
    """After the refit the output layer equals numpy's least-squares solution on [h, 1], the residuals sum to
    zero for every output, and the training MSE it reports is the one recomputed directly (and not above before)."""
    from alml.nn.refit import refit_output_layer

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    mlp = MLP(3, (12,), "tanh", n_out=4).double()
    x = torch.as_tensor(rng.normal(size=(600, 3)))
    y = torch.stack([torch.sin(x[:, 0]), x[:, 1] ** 2, x[:, 0] * x[:, 2], torch.ones(600) * 3.0], 1)
    res = refit_output_layer(mlp, [(x[i : i + 128], y[i : i + 128]) for i in range(0, 600, 128)], ridge=0.0)
    with torch.no_grad():
        h = mlp.net[:-1](x).numpy()
        pred = mlp(x).numpy()
    h1 = np.hstack([h, np.ones((600, 1))])
    w, *_ = np.linalg.lstsq(h1, y.numpy(), rcond=None)
    np.testing.assert_allclose(pred, h1 @ w, atol=1e-9)
    resid = pred - y.numpy()
    assert np.abs(resid.sum(axis=0)).max() < 1e-8 * 600
    assert res.n_points == 600
    assert res.mse_after == pytest.approx(float(np.mean(resid**2)), rel=1e-9, abs=1e-12)
    assert res.mse_after <= res.mse_before
