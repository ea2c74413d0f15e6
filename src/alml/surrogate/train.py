"""Train the LDOS committee on snapshots made by :func:`alml.surrogate.data.make_training_data`.

Each snapshot is a folder with ``ldos.h5`` and ``descriptors.h5`` on the same grid. Training points are drawn
from every training snapshot (all of them, or ``points_per_snapshot`` at random, read point-wise from disk so
only the sample is held in memory), pooled, and shuffled across snapshots every epoch with a seed of
(member, epoch) — so members differ in initial weights and data order, and a resumed run repeats its batches.

After every epoch each member is validated in physics units on one whole validation snapshot: the band energy
(:func:`alml.surrogate.observables.observables`, with the snapshot's own ladder, temperature and electron count)
of the predicted LDOS against that of the true LDOS, in meV/atom, the density error in %
(:func:`alml.surrogate.metrics.density_error_percent`) and, given pseudopotentials, the total-energy error in meV/atom,
plus the scaled MSE (``val_loss``).

With ``streaming``, points are instead read from disk by k-slabs every epoch (:class:`SlabStream`): memory is
one shuffle buffer of ``buffer_slabs`` slabs drawn from shuffled snapshots, and the scalers come from running sums.
Not yet: validation on several snapshots, and validation of a snapshot larger than memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms

from alml.data.grids import EnergyLadder, LdosFile
from alml.io import sha256_json
from alml.nn import fit, member_seed, plan_workers, run_members
from alml.nn.training import Callback
from alml.surrogate.metrics import density_error_percent, mev_per_atom
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


def _check_snapshots(snapshots: Sequence[Snapshot]) -> tuple[EnergyLadder, list[tuple[int, int, int]]]:
    """The common energy ladder and each snapshot's grid shape; error if a ladder or a descriptor grid differs."""
    ladder: EnergyLadder | None = None
    shapes = []
    for s in snapshots:
        with LdosFile(s.ldos) as f:
            dshape = _grid_shape(s.descriptors)
            if tuple(dshape[:3]) != tuple(f.shape):
                raise ValueError(f"{s.descriptors} grid {dshape[:3]} differs from {s.ldos} grid {f.shape}")
            if ladder is None:
                ladder = f.ladder
            elif f.ladder.key() != ladder.key():
                raise ValueError(f"{s.ldos}: energy ladder {f.ladder.key()} differs from {ladder.key()}")
            shapes.append(tuple(f.shape))
    if ladder is None:
        raise ValueError("no training snapshots given")
    return ladder, shapes


def load_points(
    snapshots: Sequence[Snapshot | str | Path], points_per_snapshot: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, EnergyLadder]:
    """Descriptors (N, K) and LDOS (N, n_e) float32 of grid points pooled from ``snapshots`` (all points, or
    ``points_per_snapshot`` drawn without replacement from each), and their common energy ladder."""
    snaps = [_snapshot(s) for s in snapshots]
    ladder, shapes = _check_snapshots(snaps)
    xs, ys = [], []
    for n, (s, shape) in enumerate(zip(snaps, shapes)):
        n_points = int(np.prod(shape))
        if points_per_snapshot is None or points_per_snapshot >= n_points:
            idx = np.arange(n_points)
        else:
            rng = np.random.default_rng([seed, n])
            idx = np.sort(rng.choice(n_points, size=points_per_snapshot, replace=False))
        with LdosFile(s.ldos) as f:
            ys.append(f.points(idx).astype(np.float32, copy=False))
        xs.append(descriptor_points(s.descriptors, idx).astype(np.float32, copy=False))
    return np.concatenate(xs), np.concatenate(ys), ladder


@dataclass(frozen=True)
class ValidationSnapshot:
    """A whole snapshot for physics validation: descriptors (P, K), LDOS (P, n_e) and what observables need.

    ``density`` (P,) 1/Å³ is the true LDOS's density; with ``pseudopotentials`` (element -> UPF path or
    :class:`~alml.surrogate.total_energy.PseudoData`) the true LDOS's total free energy is kept too, and
    :meth:`metrics` adds the total-energy error.
    """

    x: np.ndarray
    y: np.ndarray
    ladder: EnergyLadder
    volume: float
    n_electrons: float
    temperature: float
    n_atoms: int
    band_energy: float  #: eV, of the true LDOS
    density: np.ndarray | None = None  #: (P,) 1/Å³, of the true LDOS
    atoms: Atoms | None = None
    shape: tuple[int, int, int] | None = None
    ecut: float | None = None  #: eV, the density cutoff (QE's ecutrho), None: no G-sphere
    pseudopotentials: dict[str, Any] | None = None
    total_energy: float | None = None  #: eV, free energy of the true LDOS (with pseudopotentials)

    @classmethod
    def read(cls, s: Snapshot | str | Path, pseudopotentials: dict[str, Any] | None = None) -> ValidationSnapshot:
        s = _snapshot(s)
        with LdosFile(s.ldos) as f:
            y = f.read(np.float32).reshape(f.n_points, f.ladder.n)
            x = descriptor_points(s.descriptors, np.arange(f.n_points)).astype(np.float32, copy=False)
            obs = observables(y, f.ladder, f.volume, f.n_electrons, f.temperature)
            v = cls(
                x, y, f.ladder, f.volume, f.n_electrons, f.temperature, len(f.atoms), float(obs.band_energy),
                obs.density, f.atoms, f.shape, f.ecutrho, pseudopotentials,
            )
            if pseudopotentials is not None:
                object.__setattr__(v, "total_energy", v._free_energy(obs))
            return v

    def _free_energy(self, obs: Any) -> float:
        from alml.surrogate.total_energy import total_energy

        assert self.atoms is not None and self.shape is not None and self.pseudopotentials is not None
        terms = total_energy(
            np.reshape(obs.density, self.shape), self.atoms, obs.band_energy, obs.entropy_term,
            self.pseudopotentials, self.ecut,
        )
        return float(terms.free_energy)

    def band_energy_error(self, pred: np.ndarray) -> float:
        """|E_b(pred) − E_b(true)| in meV/atom (NaN when the prediction has no Fermi level)."""
        try:
            eb = observables(
                pred, self.ladder, self.volume, self.n_electrons, self.temperature, with_density=False
            ).band_energy
        except (ValueError, RuntimeError, ArithmeticError):
            return float("nan")
        return abs(eb - self.band_energy) * 1000.0 / max(self.n_atoms, 1)

    def metrics(self, pred: np.ndarray) -> dict[str, float]:
        """Per-epoch physics metrics of a predicted LDOS (P, n_e): ``val_band_energy_mev_per_atom`` (|ΔE_b|),
        ``val_density_error_percent`` (:func:`alml.surrogate.metrics.density_error_percent`) and, with
        pseudopotentials, ``val_total_energy_mev_per_atom`` (|ΔF|); NaN where the prediction has no Fermi level."""
        nan = float("nan")
        out = {"val_band_energy_mev_per_atom": nan, "val_density_error_percent": nan}
        if self.total_energy is not None:
            out["val_total_energy_mev_per_atom"] = nan
        try:
            obs = observables(pred, self.ladder, self.volume, self.n_electrons, self.temperature)
        except (ValueError, RuntimeError, ArithmeticError):
            return out
        out["val_band_energy_mev_per_atom"] = abs(mev_per_atom(obs.band_energy - self.band_energy, self.n_atoms))
        if self.density is not None:
            out["val_density_error_percent"] = density_error_percent(obs.density, self.density)
        if self.total_energy is not None:
            try:
                out["val_total_energy_mev_per_atom"] = abs(
                    mev_per_atom(self._free_energy(obs) - self.total_energy, self.n_atoms)
                )
            except (ValueError, RuntimeError, ArithmeticError, FloatingPointError):
                pass
        return out


class InMemoryPoints:
    """Training points held in memory: descriptors x (N, K), LDOS y (N, n_e); shuffled anew every epoch."""

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

    def __init__(self, snapshots: Sequence[Snapshot | str | Path], planes_per_slab: int = 1, buffer_slabs: int = 8):
        self.snapshots = [_snapshot(s) for s in snapshots]
        self.buffer_slabs = int(buffer_slabs)
        self.ladder, shapes = _check_snapshots(self.snapshots)
        self.slabs: list[tuple[int, int, int]] = [
            (n, k0, min(k0 + planes_per_slab, shape[2]))
            for n, shape in enumerate(shapes)
            for k0 in range(0, shape[2], planes_per_slab)
        ]
        self.n_points = int(sum(np.prod(shape) for shape in shapes))

    def iter_slabs(self, order: Sequence[int] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(x (P, K), y (P, n_e)) float32 of each slab, in ``order`` (default: file order)."""
        import h5py

        order = range(len(self.slabs)) if order is None else order
        with ExitStack() as stack:
            ld = [stack.enter_context(LdosFile(s.ldos)) for s in self.snapshots]
            de = [stack.enter_context(h5py.File(s.descriptors, "r"))["descriptors"] for s in self.snapshots]
            for j in order:
                n, k0, k1 = self.slabs[j]
                x = np.asarray(de[n][:, :, k0:k1, :], dtype=np.float32)
                y = np.asarray(ld[n].slab(k0, k1), dtype=np.float32)
                yield x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])

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


_BEST_KEYS = (
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
    net = new_committee(val.x.shape[1], val.y.shape[1], cfg.network, 1)[0]
    net.set_scalers(scalers)
    x_mean, x_std, y_mean, y_std = (
        torch.as_tensor(v, dtype=torch.float32) for v in (scalers.x_mean, scalers.x_std, scalers.y_mean, scalers.y_std)
    )
    vx = (torch.as_tensor(val.x) - x_mean) / x_std
    vy = (torch.as_tensor(val.y) - y_mean) / y_std

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in source.batches(seed, epoch, cfg.batch_size):
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
        callbacks=callbacks,
        fingerprint=f"{fingerprint}-{k}",
    )
    best = state.history[state.best_epoch - 1] if state.best_epoch > 0 else {}
    info = {
        "member": k,
        "seed": seed,
        "best_epoch": state.best_epoch,
        "stopped": state.stopped,
        **{key: best.get(key) for key in _BEST_KEYS if key in best},
    }
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
        source = SlabStream(train, cfg.planes_per_slab, cfg.buffer_slabs)
        ladder, scalers = source.ladder, source.scalers(cfg.output_scaling)
    else:
        x, y, ladder = load_points(train, cfg.points_per_snapshot, cfg.seed)
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
    fingerprint = sha256_json({"config": cfg.model_dump(mode="json"), "dataset": dataset_hash})[:16]
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


def _descriptor_settings(path: Path) -> dict[str, Any] | None:
    import json

    import h5py

    with h5py.File(path, "r") as f:
        s = f.attrs.get("settings")
    return json.loads(s) if s is not None else None


def training_context(snapshots: Sequence[Snapshot | str | Path]) -> dict[str, Any]:
    """What prediction needs to know about the training snapshots, from their LDOS file headers.

    ``temperature`` (K) and ``ecutrho`` (eV, None if not recorded) of the first snapshot, the set of
    ``temperatures``, ``pseudopotentials`` (element -> "file sha256:prefix" from the DFT provenance, when
    recorded), ``elements``, and the first snapshot's ``grid_shape``, ``cell`` (Å) and ``n_electrons``.
    """
    snaps = [_snapshot(s) for s in snapshots]
    temperatures: set[float] = set()
    elements: set[str] = set()
    pseudos: dict[str, str] = {}
    first: dict[str, Any] = {}
    for s in snaps:
        with LdosFile(s.ldos) as f:
            temperatures.add(f.temperature)
            symbols = set(f.atoms.get_chemical_symbols())
            elements |= symbols
            pseudos.update({el: f.provenance[f"pseudo_{el}"] for el in symbols if f"pseudo_{el}" in f.provenance})
            if not first:
                first = {
                    "temperature": f.temperature,
                    "ecutrho": f.ecutrho,
                    "grid_shape": list(f.shape),
                    "cell": np.asarray(f.atoms.cell[:]).tolist(),
                    "n_electrons": f.n_electrons,
                    "n_atoms": len(f.atoms),
                }
    return {
        **first,
        "temperatures": sorted(temperatures),
        "elements": sorted(elements),
        "pseudopotentials": dict(sorted(pseudos.items())),
    }
