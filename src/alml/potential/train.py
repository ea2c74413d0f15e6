"""Training a committee potential on a packed dataset; errors and predictions of a trained one.

:func:`train_potential` fits the shared :class:`~alml.potential.model.Normalization` on all data,
then trains every member (own seed, own train/validation split) with :func:`alml.nn.training.fit`,
side by side in processes when cores allow (:func:`alml.nn.committee.run_members`), and writes the
model folder (:mod:`alml.potential.folder`). Members that finished are not retrained and an
interrupted member resumes from its checkpoint, so rerunning the same job completes it.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alml.io import atomic_write, atomic_write_json, sha256_file, sha256_json
from alml.nn.committee import member_seed, plan_workers, run_members
from alml.nn.folder import make_provenance
from alml.nn.scaling import fit_reference_energies, fit_standardizer
from alml.nn.training import fit, log_progress, read_history
from alml.potential.config import LossWeights, PotentialConfig
from alml.potential.dataset import PackedDataset, Targets
from alml.potential.folder import (
    NORMALIZATION,
    TRAINING,
    TrainedPotential,
    load_potential,
    save_potential,
)
from alml.potential.model import AtomsBatch, NNPotential, Normalization, Prediction

log = logging.getLogger(__name__)

EV_PER_A3_TO_GPA = 160.21766208
DATASET = "dataset.npz"
MEMBER_WEIGHTS = "member.pt"
MEMBER_RESULT = "result.json"
SPLIT = "split.json"


# --- pure pieces ---------------------------------------------------------------------------------


def fit_normalization(data: PackedDataset, n_elements: int, energy_scale: float | None = None) -> Normalization:
    """Descriptor mean/std per element, least-squares reference energies, and the energy scale s_E.

    s_E defaults to the RMS force component times 1 Å (the size of the energy changes the network
    must resolve), or the std of the residual energy per atom when there are no forces; at least 1 meV.
    """
    desc = fit_standardizer(data.B, data.elem, n_elements)
    counts = data.element_counts(n_elements)
    e_ref = fit_reference_energies(counts, data.energy)
    if energy_scale is None:
        f = data.forces[np.repeat(data.has_forces, data.n_atoms)]
        if f.size:
            energy_scale = float(np.sqrt(np.mean(f**2)))
        else:
            energy_scale = float(np.std((data.energy - counts @ e_ref) / data.n_atoms))
        energy_scale = max(energy_scale, 1e-3)
    return Normalization(desc, e_ref, float(energy_scale))


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices of ``n`` structures; at least one of each when n ≥ 2 and val_fraction > 0."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(val_fraction * n))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    else:
        n_val = 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


@dataclass(frozen=True)
class SquaredErrors:
    """Sums of squared (and absolute) errors and their counts: energy per atom (eV/atom), force
    components (eV/Å), V·σ/N (eV/atom) and stress components (eV/Å³)."""

    e: torch.Tensor
    n_e: int
    f: torch.Tensor
    n_f: int
    s: torch.Tensor
    n_s: int
    e_abs: float = 0.0
    f_abs: float = 0.0
    s_gpa: float = 0.0

    def loss(self, w: LossWeights) -> torch.Tensor:
        """w_E·MSE(E/N) + w_F·MSE(F) + w_S·MSE(Vσ/N), each mean over what has a label."""
        zero = self.e * 0.0
        out = w.energy * self.e / max(self.n_e, 1)
        out = out + (w.forces * self.f / self.n_f if self.n_f and w.forces else zero)
        return out + (w.stress * self.s / self.n_s if self.n_s and w.stress else zero)


def squared_errors(pred: Prediction, t: Targets, batch: AtomsBatch, member: int | None = 0) -> SquaredErrors:
    """Errors of member ``member`` (None: of the committee mean) against the targets."""

    def pick(x: torch.Tensor) -> torch.Tensor:
        return x.mean(0) if member is None else x[member]

    de = (pick(pred.energy) - t.energy) / batch.n_atoms
    out: dict[str, Any] = {"e": (de**2).sum(), "n_e": int(de.numel()), "e_abs": float(de.detach().abs().sum())}
    zero = de.sum() * 0.0
    out.update(f=zero, n_f=0, s=zero, n_s=0)
    if pred.forces is not None and bool(t.force_mask.any()):
        df = (pick(pred.forces) - t.forces)[t.force_mask]
        out.update(f=(df**2).sum(), n_f=int(df.numel()), f_abs=float(df.detach().abs().sum()))
    if pred.stress is not None and bool(t.stress_mask.any()):
        ds = (pick(pred.stress) - t.stress)[t.stress_mask]
        per_atom = (batch.volume / batch.n_atoms)[t.stress_mask][:, None, None]
        out.update(s=((ds * per_atom) ** 2).sum(), n_s=int(ds.numel()), s_gpa=float((ds.detach()**2).sum()))
    return SquaredErrors(**out)


def _float(v: torch.Tensor | float) -> float:
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


def metrics(errors: list[SquaredErrors], w: LossWeights, prefix: str = "") -> dict[str, float]:
    """Loss and RMSE/MAE over several chunks: e in meV/atom, f in eV/Å, s in GPa."""
    if not errors:
        return {}
    n_e, n_f, n_s = (sum(getattr(x, k) for x in errors) for k in ("n_e", "n_f", "n_s"))
    tot = SquaredErrors(
        e=sum(_float(x.e) for x in errors), n_e=n_e, f=sum(_float(x.f) for x in errors), n_f=n_f,
        s=sum(_float(x.s) for x in errors), n_s=n_s,
    )
    out = {
        "loss": float(tot.loss(w)),
        "e_rmse": 1000 * float(np.sqrt(tot.e / max(n_e, 1))),
        "e_mae": 1000 * sum(x.e_abs for x in errors) / max(n_e, 1),
    }
    if n_f:
        out["f_rmse"] = float(np.sqrt(tot.f / n_f))
        out["f_mae"] = sum(x.f_abs for x in errors) / n_f
    if n_s:
        out["s_rmse"] = EV_PER_A3_TO_GPA * float(np.sqrt(sum(x.s_gpa for x in errors) / n_s))
    return {f"{prefix}{k}": v for k, v in out.items()}


def chunks(idx: np.ndarray, size: int) -> list[np.ndarray]:
    return [idx[k : k + size] for k in range(0, len(idx), size)]


# --- one member ----------------------------------------------------------------------------------


def _torch_dtype(name: str) -> torch.dtype:
    return torch.float64 if name == "float64" else torch.float32


def _fingerprint(config: PotentialConfig, dataset_hash: str, member: int, init: str, resumable: bool) -> str:
    """What makes a member's training: config, data, member index, initial weights.

    Settings that do not change one member's result (committee size, workers, threads, evaluation
    chunk) are left out, so growing a committee keeps its trained members. With ``resumable`` the
    stopping rules and checkpoint interval are left out too: a checkpoint stays valid when only
    the number of epochs changes, so a finished run can be extended.
    """
    d = config.model_dump(mode="json")
    for key in ("members", "workers"):
        d["committee"].pop(key)
    drop = ["threads", "eval_batch_size"] + (["epochs", "patience", "checkpoint_every"] if resumable else [])
    for key in drop:
        d["training"].pop(key)
    return sha256_json({"config": d, "data": dataset_hash, "member": member, "init": init})[:20]


def train_member(
    member: int, *, workdir: Path, config: PotentialConfig, init_dir: Path | None = None, progress_every: int = 0
) -> dict[str, Any]:
    """Train committee member ``member`` in ``workdir/member_XX``; return its result record.

    Reads ``workdir/dataset.npz`` and ``workdir/normalization.json``; ``init_dir/member_XX.pt``
    (warm start) gives initial network weights. A finished member (``result.json`` with the same
    fingerprint) is returned as it is. Module-level and picklable, for :func:`run_members`.
    """
    workdir = Path(workdir)
    mdir = workdir / f"member_{member:02d}"
    data_file = workdir / DATASET
    data_hash = sha256_file(data_file)
    init_file = None if init_dir is None else Path(init_dir) / f"member_{member:02d}.pt"
    init_hash = sha256_file(init_file) if init_file else ""
    fp = _fingerprint(config, data_hash, member, init_hash, resumable=False)
    result_file = mdir / MEMBER_RESULT
    if result_file.is_file() and (mdir / MEMBER_WEIGHTS).is_file():
        done = json.loads(result_file.read_text())
        if done.get("fingerprint") == fp:
            return done

    tc = config.training
    dtype = _torch_dtype(tc.dtype)
    data = PackedDataset.load(data_file)
    if tc.dtype == "float32":
        data = data.astype(np.float32)
    norm = Normalization.from_dict(json.loads((workdir / NORMALIZATION).read_text()))
    seed = member_seed(config.committee.seed, member)
    train_idx, val_idx = split_indices(len(data), tc.val_fraction, seed)
    mdir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(mdir / SPLIT, {"train": data.hashes[train_idx].tolist(), "val": data.hashes[val_idx].tolist()})

    torch.manual_seed(seed)
    model = NNPotential(config.descriptors.symbols, data.n_descriptors, config.network, 1, norm).to(dtype)
    if init_file is not None:
        model.nets[0].load_state_dict(torch.load(init_file, weights_only=True))
    w = config.loss
    need_f = w.forces > 0 and bool(data.has_forces[train_idx].any())
    need_s = w.stress > 0 and bool(data.has_stress[train_idx].any())
    eval_sets = {
        "train_": [data.batch(c, dtype) for c in chunks(train_idx, tc.eval_batch_size)],
        "val_": [data.batch(c, dtype) for c in chunks(val_idx, tc.eval_batch_size)],
    }
    eval_f = bool(data.has_forces.any())
    eval_s = bool(data.has_stress.any())

    def batches(epoch: int) -> Iterator[tuple[AtomsBatch, Targets]]:
        order = np.random.default_rng([seed, epoch]).permutation(train_idx)
        for c in chunks(order, tc.batch_size):
            yield data.batch(c, dtype)

    def step(b: tuple[AtomsBatch, Targets]) -> torch.Tensor:
        batch, t = b
        pred = model(batch, forces=need_f, stress=need_s, create_graph=True)
        return squared_errors(pred, t, batch).loss(w)

    def evaluate() -> dict[str, float]:
        out: dict[str, float] = {}
        for prefix, sets in eval_sets.items():
            errs = []
            for batch, t in sets:
                pred = model(batch, forces=eval_f, stress=eval_s)
                errs.append(squared_errors(pred, t, batch))
            out.update(metrics(errs, w, prefix))
        return out

    mlog = logging.getLogger(f"{__name__}.member{member:02d}")
    mlog.setLevel(logging.INFO)
    handler = logging.FileHandler(mdir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    mlog.addHandler(handler)
    callbacks = [log_progress(progress_every, mlog)] if progress_every else []
    try:
        state = fit(
            model, step, batches, evaluate, tc,
            monitor="val_loss" if len(val_idx) else "train_loss", workdir=mdir, callbacks=callbacks,
            fingerprint=_fingerprint(config, data_hash, member, init_hash, resumable=True),
        )
        mlog.info("member %d: %s; best epoch %d", member, state.stopped, state.best_epoch)
    finally:
        mlog.removeHandler(handler)
        handler.close()
    best = state.history[state.best_epoch - 1] if state.best_epoch > 0 else {}
    net_state = {k: v.detach().to(torch.float64).clone() for k, v in model.nets[0].state_dict().items()}
    atomic_write(mdir / MEMBER_WEIGHTS, lambda p: torch.save(net_state, p))
    result = {
        "member": member,
        "seed": seed,
        "fingerprint": fp,
        "epochs": state.epoch,
        "best_epoch": state.best_epoch,
        "stopped": state.stopped,
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "best": best,
    }
    atomic_write_json(result_file, result)
    return result


# --- the committee -------------------------------------------------------------------------------


def _check_warm_start(old: TrainedPotential, config: PotentialConfig, n_descriptors: int) -> None:
    if old.config.descriptors != config.descriptors:
        raise ValueError("warm start: the earlier model used other descriptor settings")
    if old.model.network != config.network or old.model.n_descriptors != n_descriptors:
        raise ValueError("warm start: the earlier model has another network shape")
    if old.model.elements != config.descriptors.symbols:
        raise ValueError("warm start: the earlier model has other elements")


def train_potential(
    data: PackedDataset,
    config: PotentialConfig,
    output: Path,
    *,
    warm_start: Path | None = None,
    provenance: dict[str, Any] | None = None,
    progress_every: int = 0,
) -> TrainedPotential:
    """Train the committee of ``config`` on ``data``; write and return the model folder ``output``.

    ``warm_start``: an earlier model folder; its normalisation is kept and member k starts from its
    member k mod K_old (same descriptors and network required).
    """
    output = Path(output)
    workdir = output / TRAINING
    workdir.mkdir(parents=True, exist_ok=True)
    if data.n_descriptors != config.descriptors.n_components:
        raise ValueError(
            f"dataset has {data.n_descriptors} descriptors, settings give {config.descriptors.n_components}"
        )
    data_file = workdir / DATASET
    content = data.content_hash()
    old_hash = ""
    if data_file.is_file():
        try:
            old_hash = PackedDataset.load(data_file).content_hash()
        except (OSError, KeyError, ValueError):
            old_hash = ""
    if old_hash != content:
        data.save(data_file)

    init_dir = None
    n_el = len(config.descriptors.symbols)
    if warm_start is not None:
        old = load_potential(warm_start)
        _check_warm_start(old, config, data.n_descriptors)
        norm = old.model.normalization()
        init_dir = workdir / "warm_start"
        for k in range(config.committee.members):
            src = old.model.nets[k % old.n_members].state_dict()
            state = {name: v.detach().clone() for name, v in src.items()}
            atomic_write(init_dir / f"member_{k:02d}.pt", lambda p, s=state: torch.save(s, p))
    else:
        norm = fit_normalization(data, n_el, config.training.energy_scale)
    atomic_write_json(workdir / NORMALIZATION, norm.to_dict())

    cc = config.committee
    workers = cc.workers or plan_workers(cc.members, config.training.threads)
    fn = functools.partial(
        train_member, workdir=workdir, config=config, init_dir=init_dir, progress_every=progress_every
    )
    log.info("training %d member(s), %d at a time", cc.members, workers)
    results = run_members(fn, range(cc.members), workers=workers, threads=config.training.threads)

    model = NNPotential(config.descriptors.symbols, data.n_descriptors, config.network, cc.members, norm)
    model = model.to(torch.float64)
    for k in range(cc.members):
        model.nets[k].load_state_dict(torch.load(workdir / f"member_{k:02d}" / MEMBER_WEIGHTS, weights_only=True))
    prov = make_provenance(
        dataset_hash=content,
        n_structures=len(data),
        n_atoms=int(data.n_atoms.sum()),
        warm_start=str(warm_start) if warm_start else None,
        **(provenance or {}),
    )
    save_potential(output, model, config, prov, metrics={"members": results})
    _plot_learning_curves(output)
    return load_potential(output)


def member_histories(output: Path) -> list[list[dict[str, float]]]:
    """The learning curve of every member of a model folder's training."""
    work = Path(output) / TRAINING
    return [read_history(d) for d in sorted(work.glob("member_*")) if d.is_dir()]


def _plot_learning_curves(output: Path) -> None:
    from alml.plot.learning import learning_curves_figure

    histories = member_histories(output)
    if not any(histories):
        return
    fig = learning_curves_figure(histories)
    atomic_write(output / "learning_curves.png", lambda p: fig.savefig(p, format="png", dpi=120))
    import matplotlib.pyplot as plt

    plt.close(fig)


# --- evaluation of a trained potential ------------------------------------------------------------


@dataclass(frozen=True)
class DatasetPredictions:
    """Reference and predicted (committee mean) labels of a dataset, for errors and parity plots.

    ``energy_*`` (S,) eV/atom; ``forces_*`` (n, 3) eV/Å over atoms with force labels; ``stress_*``
    (m, 3, 3) eV/Å³ over structures with stress labels; ``energy_std`` (S,) ρ in eV/atom;
    ``force_sq`` (S,) each structure's sum of squared force-component errors (eV²/Å²) and
    ``force_count`` (S,) its number of labelled components (0 without force labels).
    """

    energy_ref: np.ndarray
    energy_pred: np.ndarray
    energy_std: np.ndarray
    forces_ref: np.ndarray
    forces_pred: np.ndarray
    stress_ref: np.ndarray
    stress_pred: np.ndarray
    force_sq: np.ndarray
    force_count: np.ndarray
    metrics: dict[str, float]

    def rmse(self, idx: Sequence[int] | np.ndarray | None = None) -> tuple[float, float]:
        """Energy RMSE (eV/atom) and force-component RMSE (eV/Å) over the structures ``idx``
        (all by default); the force RMSE is NaN when none of them has force labels."""
        idx = np.arange(len(self.energy_ref)) if idx is None else np.asarray(idx, dtype=np.int64)
        e = float(np.sqrt(np.mean((self.energy_pred[idx] - self.energy_ref[idx]) ** 2))) if len(idx) else np.nan
        n_f = self.force_count[idx].sum()
        return e, float(np.sqrt(self.force_sq[idx].sum() / n_f)) if n_f else np.nan

    def force_rmse_per_structure(self) -> np.ndarray:
        """(S,) each structure's force-component RMSE (eV/Å), NaN without force labels."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(self.force_sq / self.force_count)


def predict_dataset(
    potential: TrainedPotential | NNPotential, data: PackedDataset, chunk: int = 32
) -> DatasetPredictions:
    """Committee-mean predictions and errors (:func:`metrics` keys) of ``potential`` on ``data``."""
    model = potential.model if isinstance(potential, TrainedPotential) else potential
    w = potential.config.loss if isinstance(potential, TrainedPotential) else LossWeights()
    dtype = model.mean.dtype
    er, ep, es, fr, fp, sr, sp, fsq, fcount, errs = [], [], [], [], [], [], [], [], [], []
    want_s = bool(data.has_stress.any())
    for c in chunks(np.arange(len(data)), chunk):
        batch, t = data.batch(c, dtype)
        pred = model(batch, forces=True, stress=want_s)
        errs.append(squared_errors(pred, t, batch, member=None))
        n = batch.n_atoms
        er.append((t.energy / n).numpy())
        ep.append((pred.energy.mean(0) / n).detach().numpy())
        std = pred.energy.std(0) if model.n_members > 1 else torch.zeros_like(n)
        es.append((std / n.sqrt()).detach().numpy())
        fr.append(t.forces[t.force_mask].numpy())
        fp.append(pred.forces.mean(0)[t.force_mask].detach().numpy())
        d2 = torch.where(t.force_mask[:, None], pred.forces.mean(0).detach() - t.forces, 0.0) ** 2
        fsq.append(torch.zeros_like(n).index_add_(0, batch.atom_struct, d2.sum(1)).numpy())
        fcount.append(3 * np.bincount(batch.atom_struct[t.force_mask].numpy(), minlength=len(c)))
        if pred.stress is not None:
            sr.append(t.stress[t.stress_mask].numpy())
            sp.append(pred.stress.mean(0)[t.stress_mask].detach().numpy())
    cat = np.concatenate
    return DatasetPredictions(
        energy_ref=cat(er), energy_pred=cat(ep), energy_std=cat(es),
        forces_ref=cat(fr) if fr else np.zeros((0, 3)), forces_pred=cat(fp) if fp else np.zeros((0, 3)),
        stress_ref=cat(sr) if sr else np.zeros((0, 3, 3)), stress_pred=cat(sp) if sp else np.zeros((0, 3, 3)),
        force_sq=cat(fsq), force_count=cat(fcount), metrics=metrics(errs, w),
    )
