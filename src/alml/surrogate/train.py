"""Train the LDOS committee on snapshots made by :func:`alml.surrogate.data.make_training_data`.

Each snapshot is a folder with ``ldos.h5`` and ``descriptors.h5`` on the same grid
(:class:`alml.surrogate.snapshots.Snapshot`). Training points are drawn from every training snapshot (all of them,
or ``points_per_snapshot`` at random, read point-wise from disk by :func:`alml.surrogate.snapshots.load_points` so
only the sample is held in memory), pooled, and shuffled across snapshots every epoch with a seed of
(member, epoch) — so members differ in initial weights and data order, and a resumed run repeats its batches.

After every epoch each member is validated in physics units on one whole validation snapshot
(:class:`alml.surrogate.validation.ValidationSnapshot`): the band energy error of the predicted LDOS in meV/atom,
the density error in % and, given pseudopotentials, the total-energy error in meV/atom, plus the scaled MSE
(``val_loss``).

After the best epoch is restored, ``refit_output`` (opt-in) replaces each member's output layer by the exact
least-squares fit on all training points (:func:`alml.nn.refit.refit_output_layer`) and validates again
(``metrics.json``: ``refit``). Integrated observables are sums over ~10⁵ points per cell, so the small common bias
that the last SGD steps leave in the outputs comes back multiplied: on the Al dataset it moved every snapshot's
band energy together by tens of meV/atom from one epoch to the next. The refit removes that common part; it does
not remove a held-out snapshot's own error (docs/benchmarks.md, "Integrated observables amplify a common output
bias").

With ``streaming``, points are instead read from disk by k-slabs every epoch (:class:`SlabStream`): memory is
one shuffle buffer of ``buffer_slabs`` slabs drawn from shuffled snapshots, and the scalers come from running sums.
Not yet: validation on several snapshots, and validation of a snapshot larger than memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alml.data.grids import LdosFile
from alml.io import sha256_json
from alml.nn import fit, member_seed, plan_workers, run_members
from alml.nn.refit import refit_output_layer
from alml.nn.training import Callback, log_progress
from alml.surrogate.inputs import global_values, with_globals
from alml.surrogate.model import (
    TRAINING,
    LdosModel,
    LdosModelConfig,
    Scalers,
    fit_scalers,
    new_committee,
    per_energy_std,
    save_ldos_model,
)
from alml.surrogate.snapshots import (
    Snapshot,
    _check_snapshots,
    _descriptor_settings,
    _snapshot,
    load_points,
    training_context,
)
from alml.surrogate.validation import ValidationSnapshot

log = logging.getLogger(__name__)


class InMemoryPoints:
    """Training points held in memory: inputs x (N, K + G), LDOS y (N, n_e); shuffled anew every epoch."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    @property
    def n_points(self) -> int:
        return len(self.x)

    def batches(self, seed: int, epoch: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = np.random.default_rng([seed, epoch]).permutation(len(self.x))
        for i0 in range(0, len(order), batch_size):
            idx = order[i0 : i0 + batch_size]
            yield self.x[idx], self.y[idx]


class SlabStream:
    """Training points streamed from disk: every epoch the (snapshot, k-slab) pieces are visited in a shuffled
    order, ``buffer_slabs`` pieces at a time (so from different snapshots), and the points of a buffer are
    shuffled into batches. Memory: one buffer. Every point is seen exactly once per epoch."""

    def __init__(
        self,
        snapshots: Sequence[Snapshot | str | Path],
        planes_per_slab: int = 1,
        buffer_slabs: int = 8,
        global_inputs: Sequence[str] = (),
    ) -> None:
        self.snapshots = [_snapshot(s) for s in snapshots]
        self.buffer_slabs = int(buffer_slabs)
        self.ladder, shapes = _check_snapshots(self.snapshots)
        self.globals = []
        for s in self.snapshots:
            with LdosFile(s.ldos) as f:
                self.globals.append(global_values(f.atoms, global_inputs))
        self.slabs: list[tuple[int, int, int]] = [
            (n, k0, min(k0 + planes_per_slab, shape[2]))
            for n, shape in enumerate(shapes)
            for k0 in range(0, shape[2], planes_per_slab)
        ]
        self.n_points = int(sum(np.prod(shape) for shape in shapes))

    def iter_slabs(self, order: Sequence[int] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(x (P, K + G), y (P, n_e)) float32 of each slab, in ``order`` (default: file order)."""
        import h5py

        order = range(len(self.slabs)) if order is None else order
        with ExitStack() as stack:
            ld = [stack.enter_context(LdosFile(s.ldos)) for s in self.snapshots]
            de = [stack.enter_context(h5py.File(s.descriptors, "r"))["descriptors"] for s in self.snapshots]
            for j in order:
                n, k0, k1 = self.slabs[j]
                x = np.asarray(de[n][:, :, k0:k1, :], dtype=np.float32)
                y = np.asarray(ld[n].slab(k0, k1), dtype=np.float32)
                yield with_globals(x.reshape(-1, x.shape[-1]), self.globals[n]), y.reshape(-1, y.shape[-1])

    def batches(self, seed: int, epoch: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(self.slabs))
        slabs = self.iter_slabs(order)
        try:
            yield from self._buffered(rng, order, slabs, batch_size)
        finally:
            slabs.close()

    def _buffered(
        self,
        rng: np.random.Generator,
        order: np.ndarray,
        slabs: Iterator[tuple[np.ndarray, np.ndarray]],
        batch_size: int,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        carry_x = carry_y = None
        for b0 in range(0, len(order), self.buffer_slabs):
            parts = [next(slabs) for _ in range(min(self.buffer_slabs, len(order) - b0))]
            if carry_x is not None:
                parts.insert(0, (carry_x, carry_y))
            x = np.concatenate([p[0] for p in parts])
            y = np.concatenate([p[1] for p in parts])
            perm = rng.permutation(len(x))
            last = b0 + self.buffer_slabs >= len(order)
            full = len(x) if last else len(x) - len(x) % batch_size
            for i0 in range(0, full, batch_size):
                idx = perm[i0 : min(i0 + batch_size, full)]
                yield x[idx], y[idx]
            rest = perm[full:]
            carry_x, carry_y = (x[rest], y[rest]) if len(rest) else (None, None)

    def scalers(self, output_scaling: str = "per-energy") -> Scalers:
        """The scalers :func:`fit_scalers` would give on all points, from running sums (float64) over the slabs."""
        n = 0
        sx = sxx = sy = syy = None
        for x, y in self.iter_slabs():
            x64, y64 = x.astype(np.float64), y.astype(np.float64)
            if sx is None:
                sx, sxx, sy, syy = (
                    np.zeros(x.shape[1]),
                    np.zeros(x.shape[1]),
                    np.zeros(y.shape[1]),
                    np.zeros(y.shape[1]),
                )
            n += len(x)
            sx += x64.sum(0)
            sxx += (x64**2).sum(0)
            sy += y64.sum(0)
            syy += (y64**2).sum(0)
        return _scalers_from_moments(n, sx, sxx, sy, syy, output_scaling)


def _flat_safe(mean: np.ndarray, var: np.ndarray, rel_tol: float = 1e-8) -> np.ndarray:
    std = np.sqrt(np.maximum(var, 0.0))
    return np.where(std > rel_tol * np.maximum(np.abs(mean), 1.0), std, 1.0)


def _scalers_from_moments(n: int, sx: Any, sxx: Any, sy: Any, syy: Any, output_scaling: str) -> Scalers:
    xm = sx / n
    ym = sy / n
    x_std = _flat_safe(xm, sxx / n - xm**2)
    if output_scaling == "per-energy":
        return Scalers(xm, x_std, ym, per_energy_std(np.sqrt(np.maximum(syy / n - ym**2, 0.0))))
    m = float(sy.sum() / (n * len(sy)))
    s = float(np.sqrt(max(float(syy.sum() / (n * len(sy))) - m**2, 0.0)))
    return Scalers(xm, x_std, np.zeros_like(ym), np.full_like(ym, s if s > 0 else 1.0))


PointSource = InMemoryPoints | SlabStream


#: points per batch when accumulating the output-layer refit's normal equations
_REFIT_BATCH = 65536

# settings that do not change a member's checkpointed training, so a folder resumes under another value of them:
# the refit runs afterwards on the restored weights, and member k's seed and data do not depend on the committee
# size (a grown committee keeps its trained members)
_NOT_IN_FINGERPRINT = {"refit_output", "members", "workers", "threads"}
_KEPT_KEYS = (
    "val_loss", "val_band_energy_mev_per_atom", "val_density_error_percent", "val_total_energy_mev_per_atom"
)


def _train_member(
    k: int,
    *,
    source: PointSource,
    val: ValidationSnapshot,
    scalers: Scalers,
    cfg: LdosModelConfig,
    root: Path | None,
    fingerprint: str,
    callbacks: Sequence[Callback] = (),
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Train member ``k``; return its (float64) state dict and its best metrics."""
    seed = member_seed(cfg.seed, k)
    torch.manual_seed(seed)
    net = new_committee(len(scalers.x_mean), val.y.shape[1], cfg.network, 1)[0]
    net.set_scalers(scalers)
    x_mean, x_std, y_mean, y_std = (
        torch.as_tensor(v, dtype=torch.float32) for v in (scalers.x_mean, scalers.x_std, scalers.y_mean, scalers.y_std)
    )
    vx = (torch.as_tensor(with_globals(val.x, global_values(val.atoms, cfg.global_inputs))) - x_mean) / x_std
    vy = (torch.as_tensor(val.y) - y_mean) / y_std

    def batches(epoch: int, size: int = cfg.batch_size) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in source.batches(seed, epoch, size):
            yield (torch.as_tensor(x) - x_mean) / x_std, (torch.as_tensor(y) - y_mean) / y_std

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        xhat, yhat = batch
        return torch.mean((net.normalized(xhat) - yhat) ** 2)

    def evaluate() -> dict[str, float]:
        with torch.no_grad():
            out = net.normalized(vx)
            loss = float(torch.mean((out - vy) ** 2))
            pred = (out * y_std + y_mean).double().numpy()
        return {"val_loss": loss, **val.metrics(pred)}

    workdir = root / f"member_{k:02d}" if root is not None else None
    state = fit(
        net,
        step,
        batches,
        evaluate,
        cfg.training,
        monitor=cfg.monitor,
        workdir=workdir,
        callbacks=(log_progress(1, log, f"member {k}: "), *callbacks),
        fingerprint=f"{fingerprint}-{k}",
    )
    kept_epoch = state.best_epoch if cfg.training.keep == "best" else state.epoch
    kept = state.history[kept_epoch - 1] if kept_epoch > 0 else {}
    info = {
        "member": k,
        "seed": seed,
        "best_epoch": state.best_epoch,
        "kept_epoch": kept_epoch,
        "stopped": state.stopped,
        **{key: kept.get(key) for key in _KEPT_KEYS if key in kept},
    }
    if cfg.refit_output:
        refit = refit_output_layer(net.mlp, batches(0, _REFIT_BATCH))
        after = evaluate()
        info["refit"] = {"train_mse_before": refit.mse_before, "train_mse_after": refit.mse_after, **after}
        log.info("member %d: output layer refit, training MSE %.4g -> %.4g; validation %s", k, refit.mse_before,
                 refit.mse_after, " ".join(f"{key}={v:.4g}" for key, v in after.items()))
    return {key: v.detach().double().clone() for key, v in net.state_dict().items()}, info


def train_ldos_model(
    train: Sequence[Snapshot | str | Path],
    validation: Snapshot | str | Path,
    cfg: LdosModelConfig,
    out: str | Path | None = None,
    *,
    pseudopotentials: dict[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
) -> LdosModel:
    """Train a committee on ``train`` snapshots, validate on ``validation``; with ``out``, write the model folder
    there (checkpoints under ``out/training``, so an interrupted call resumes). Returns the (float64) model.

    ``pseudopotentials`` (element -> UPF path or PseudoData) adds the total-energy error to the per-epoch
    validation metrics; ``callbacks`` are passed to every member's :func:`alml.nn.fit` (they run in this process,
    so use them with ``workers: 1``)."""
    from alml.nn.folder import make_provenance

    train = [_snapshot(s) for s in train]
    if callbacks and cfg.workers > 1 and cfg.members > 1:
        raise ValueError("training callbacks run in this process only: set workers: 1 to use them")
    val = ValidationSnapshot.read(validation, pseudopotentials)
    source: PointSource
    if cfg.streaming:
        source = SlabStream(train, cfg.planes_per_slab, cfg.buffer_slabs, cfg.global_inputs)
        ladder, scalers = source.ladder, source.scalers(cfg.output_scaling)
    else:
        x, y, ladder = load_points(train, cfg.points_per_snapshot, cfg.seed, cfg.global_inputs)
        source, scalers = InMemoryPoints(x, y), fit_scalers(x, y, cfg.output_scaling)
    if ladder.key() != val.ladder.key():
        raise ValueError("the validation snapshot's energy ladder differs from the training snapshots'")
    n_in, n_points = len(scalers.x_mean), source.n_points
    files = [
        {
            "ldos": str(s.ldos),
            "descriptors": str(s.descriptors),
            "bytes": [s.ldos.stat().st_size, s.descriptors.stat().st_size],
        }
        for s in train
    ]
    dataset_hash = sha256_json({"files": files, "n_points": n_points})
    trained_by = cfg.model_dump(mode="json", exclude=_NOT_IN_FINGERPRINT)
    fingerprint = sha256_json({"config": trained_by, "dataset": dataset_hash})[:16]
    root = Path(out) / TRAINING if out is not None else None
    fn = partial(
        _train_member, source=source, val=val, scalers=scalers, cfg=cfg, root=root, fingerprint=fingerprint,
        callbacks=tuple(callbacks),
    )
    workers = plan_workers(cfg.members, cfg.threads) if cfg.workers > 1 else 1
    results = run_members(fn, range(cfg.members), workers=min(workers, cfg.workers), threads=cfg.threads)
    members = new_committee(n_in, ladder.n, cfg.network, cfg.members).double()
    for net, (state, _) in zip(members, results):
        net.load_state_dict(state)
    members.eval()
    settings = _descriptor_settings(train[0].descriptors)
    model = LdosModel(members, cfg, ladder, n_in, settings, training_data=training_context(train))
    if out is not None:
        prov = make_provenance(
            dataset_hash=dataset_hash,
            training_files=files,
            validation={"ldos": str(_snapshot(validation).ldos)},
            n_training_points=n_points,
        )
        metrics = {"members": [info for _, info in results], "validation_band_energy_eV": val.band_energy}
        save_ldos_model(Path(out), model, prov, metrics)
        model.path, model.provenance = Path(out), prov
    return model

