"""Train the LDOS committee on snapshots made by :func:`alml.surrogate.data.make_training_data`.

Each snapshot is a folder with ``ldos.h5`` and ``descriptors.h5`` on the same grid. Training points are drawn
from every training snapshot (all of them, or ``points_per_snapshot`` at random, read point-wise from disk so
only the sample is held in memory), pooled, and shuffled across snapshots every epoch with a seed of
(member, epoch) — so members differ in initial weights and data order, and a resumed run repeats its batches.

After every epoch each member is validated in physics units on one whole validation snapshot: the band energy
(:func:`alml.surrogate.observables.observables`, with the snapshot's own ladder, temperature and electron count)
of the predicted LDOS against that of the true LDOS, in meV/atom, plus the scaled MSE (``val_loss``).

Not yet: a slab-streaming batch source for training sets larger than memory (the sample is in memory) and
validation on several snapshots.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alml.data.grids import EnergyLadder, LdosFile
from alml.io import sha256_json
from alml.nn import fit, member_seed, plan_workers, run_members
from alml.surrogate.model import (
    TRAINING,
    LdosModel,
    LdosModelConfig,
    Scalers,
    fit_scalers,
    new_committee,
    save_ldos_model,
)
from alml.surrogate.observables import observables

log = logging.getLogger(__name__)

LDOS_FILE = "ldos.h5"
DESCRIPTORS_FILE = "descriptors.h5"


@dataclass(frozen=True)
class Snapshot:
    """The two files of one snapshot: LDOS and grid descriptors on the same grid."""

    ldos: Path
    descriptors: Path

    @classmethod
    def from_dir(cls, d: str | Path) -> Snapshot:
        d = Path(d)
        return cls(d / LDOS_FILE, d / DESCRIPTORS_FILE)


def _snapshot(s: Snapshot | str | Path) -> Snapshot:
    return s if isinstance(s, Snapshot) else Snapshot.from_dir(s)


def descriptor_points(path: str | Path, indices: np.ndarray) -> np.ndarray:
    """Descriptors (len(indices), K) at flat grid indices (C order over (nx, ny, nz)), read one k-plane at a time."""
    import h5py

    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    with h5py.File(path, "r") as f:
        ds = f["descriptors"]
        i, j, k = np.unravel_index(idx, ds.shape[:3])
        out = np.empty((idx.size, ds.shape[3]), dtype=ds.dtype)
        for kk in np.unique(k):
            sel = np.nonzero(k == kk)[0]
            plane = ds[:, :, int(kk), :]
            out[sel] = plane[i[sel], j[sel]]
    return out


def _grid_shape(path: Path) -> tuple[int, ...]:
    import h5py

    with h5py.File(path, "r") as f:
        return tuple(int(v) for v in f["descriptors"].shape)


def load_points(
    snapshots: Sequence[Snapshot | str | Path], points_per_snapshot: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, EnergyLadder]:
    """Descriptors (N, K) and LDOS (N, n_e) float32 of grid points pooled from ``snapshots`` (all points, or
    ``points_per_snapshot`` drawn without replacement from each), and their common energy ladder."""
    xs, ys = [], []
    ladder: EnergyLadder | None = None
    for n, s in enumerate(map(_snapshot, snapshots)):
        with LdosFile(s.ldos) as f:
            dshape = _grid_shape(s.descriptors)
            if tuple(dshape[:3]) != tuple(f.shape):
                raise ValueError(f"{s.descriptors} grid {dshape[:3]} differs from {s.ldos} grid {f.shape}")
            if ladder is None:
                ladder = f.ladder
            elif f.ladder.key() != ladder.key():
                raise ValueError(f"{s.ldos}: energy ladder {f.ladder.key()} differs from {ladder.key()}")
            if points_per_snapshot is None or points_per_snapshot >= f.n_points:
                idx = np.arange(f.n_points)
            else:
                rng = np.random.default_rng([seed, n])
                idx = np.sort(rng.choice(f.n_points, size=points_per_snapshot, replace=False))
            ys.append(f.points(idx).astype(np.float32, copy=False))
        xs.append(descriptor_points(s.descriptors, idx).astype(np.float32, copy=False))
    if ladder is None:
        raise ValueError("no training snapshots given")
    return np.concatenate(xs), np.concatenate(ys), ladder


@dataclass(frozen=True)
class ValidationSnapshot:
    """A whole snapshot for physics validation: descriptors (P, K), LDOS (P, n_e) and what observables need."""

    x: np.ndarray
    y: np.ndarray
    ladder: EnergyLadder
    volume: float
    n_electrons: float
    temperature: float
    n_atoms: int
    band_energy: float  #: eV, of the true LDOS

    @classmethod
    def read(cls, s: Snapshot | str | Path) -> ValidationSnapshot:
        s = _snapshot(s)
        with LdosFile(s.ldos) as f:
            y = f.read(np.float32).reshape(f.n_points, f.ladder.n)
            x = descriptor_points(s.descriptors, np.arange(f.n_points)).astype(np.float32, copy=False)
            eb = observables(y, f.ladder, f.volume, f.n_electrons, f.temperature, with_density=False).band_energy
            return cls(x, y, f.ladder, f.volume, f.n_electrons, f.temperature, len(f.atoms), float(eb))

    def band_energy_error(self, pred: np.ndarray) -> float:
        """|E_b(pred) − E_b(true)| in meV/atom (NaN when the prediction has no Fermi level)."""
        try:
            eb = observables(
                pred, self.ladder, self.volume, self.n_electrons, self.temperature, with_density=False
            ).band_energy
        except (ValueError, RuntimeError, ArithmeticError):
            return float("nan")
        return abs(eb - self.band_energy) * 1000.0 / max(self.n_atoms, 1)


def _train_member(
    k: int,
    *,
    x: np.ndarray,
    y: np.ndarray,
    val: ValidationSnapshot,
    scalers: Scalers,
    cfg: LdosModelConfig,
    root: Path | None,
    fingerprint: str,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Train member ``k``; return its (float64) state dict and its best metrics."""
    seed = member_seed(cfg.seed, k)
    torch.manual_seed(seed)
    net = new_committee(x.shape[1], y.shape[1], cfg.network, 1)[0]
    net.set_scalers(scalers)
    xhat = torch.as_tensor((x - scalers.x_mean) / scalers.x_std, dtype=torch.float32)
    yhat = torch.as_tensor((y - scalers.y_mean) / scalers.y_std, dtype=torch.float32)
    vx = torch.as_tensor((val.x - scalers.x_mean) / scalers.x_std, dtype=torch.float32)
    vy = torch.as_tensor((val.y - scalers.y_mean) / scalers.y_std, dtype=torch.float32)
    y_std = torch.as_tensor(scalers.y_std, dtype=torch.float32)
    y_mean = torch.as_tensor(scalers.y_mean, dtype=torch.float32)
    n, bs = len(xhat), cfg.batch_size

    def batches(epoch: int) -> Any:
        order = torch.as_tensor(np.random.default_rng([seed, epoch]).permutation(n))
        for i0 in range(0, n, bs):
            yield order[i0 : i0 + bs]

    def step(idx: torch.Tensor) -> torch.Tensor:
        return torch.mean((net.normalized(xhat[idx]) - yhat[idx]) ** 2)

    def evaluate() -> dict[str, float]:
        with torch.no_grad():
            out = net.normalized(vx)
            loss = float(torch.mean((out - vy) ** 2))
            pred = (out * y_std + y_mean).double().numpy()
        return {"val_loss": loss, "val_band_energy_mev_per_atom": val.band_energy_error(pred)}

    workdir = root / f"member_{k:02d}" if root is not None else None
    state = fit(
        net,
        step,
        batches,
        evaluate,
        cfg.training,
        monitor=cfg.monitor,
        workdir=workdir,
        fingerprint=f"{fingerprint}-{k}",
    )
    best = state.history[state.best_epoch - 1] if state.best_epoch > 0 else {}
    info = {
        "member": k,
        "seed": seed,
        "best_epoch": state.best_epoch,
        "stopped": state.stopped,
        **{key: best.get(key) for key in ("val_loss", "val_band_energy_mev_per_atom")},
    }
    return {key: v.detach().double().clone() for key, v in net.state_dict().items()}, info


def train_ldos_model(
    train: Sequence[Snapshot | str | Path],
    validation: Snapshot | str | Path,
    cfg: LdosModelConfig,
    out: str | Path | None = None,
) -> LdosModel:
    """Train a committee on ``train`` snapshots, validate on ``validation``; with ``out``, write the model folder
    there (checkpoints under ``out/training``, so an interrupted call resumes). Returns the (float64) model."""
    from alml.potential.folder import make_provenance

    train = [_snapshot(s) for s in train]
    val = ValidationSnapshot.read(validation)
    x, y, ladder = load_points(train, cfg.points_per_snapshot, cfg.seed)
    if ladder.key() != val.ladder.key():
        raise ValueError("the validation snapshot's energy ladder differs from the training snapshots'")
    scalers = fit_scalers(x, y, cfg.output_scaling)
    files = [
        {
            "ldos": str(s.ldos),
            "descriptors": str(s.descriptors),
            "bytes": [s.ldos.stat().st_size, s.descriptors.stat().st_size],
        }
        for s in train
    ]
    dataset_hash = sha256_json({"files": files, "n_points": len(x)})
    fingerprint = sha256_json({"config": cfg.model_dump(mode="json"), "dataset": dataset_hash})[:16]
    root = Path(out) / TRAINING if out is not None else None
    fn = partial(_train_member, x=x, y=y, val=val, scalers=scalers, cfg=cfg, root=root, fingerprint=fingerprint)
    workers = plan_workers(cfg.members, cfg.threads) if cfg.workers > 1 else 1
    results = run_members(fn, range(cfg.members), workers=min(workers, cfg.workers), threads=cfg.threads)
    members = new_committee(x.shape[1], y.shape[1], cfg.network, cfg.members).double()
    for net, (state, _) in zip(members, results):
        net.load_state_dict(state)
    members.eval()
    settings = _descriptor_settings(train[0].descriptors)
    model = LdosModel(members, cfg, ladder, int(x.shape[1]), settings)
    if out is not None:
        prov = make_provenance(
            dataset_hash=dataset_hash,
            training_files=files,
            validation={"ldos": str(_snapshot(validation).ldos)},
            n_training_points=len(x),
        )
        metrics = {"members": [info for _, info in results], "validation_band_energy_eV": val.band_energy}
        save_ldos_model(Path(out), model, prov, metrics)
        model.path, model.provenance = Path(out), prov
    return model


def _descriptor_settings(path: Path) -> dict[str, Any] | None:
    import json

    import h5py

    with h5py.File(path, "r") as f:
        s = f.attrs.get("settings")
    return json.loads(s) if s is not None else None
