"""One generic training loop: optimiser, learning-rate schedule, early stopping, checkpoints, callbacks.

The loop knows nothing about atoms. The caller gives

- ``step(batch) -> loss``: the differentiable loss of one batch (the loop does backward/step);
- ``batches(epoch) -> iterable``: that epoch's batches (shuffle with a seed derived from ``epoch``,
  so a resumed run sees exactly the batches an uninterrupted one would);
- ``evaluate() -> metrics``: a dict of floats computed after each epoch (validation loss, RMSEs);
  ``monitor`` names the one that decides early stopping, the plateau schedule and the best model.

With a ``workdir``, ``checkpoint.pt`` (model, optimiser, scheduler, loop state) is written every
``checkpoint_every`` epochs and at the end, ``best.pt`` whenever the monitored metric improves, and
``history.json`` with the learning curve. ``fit`` resumes from ``checkpoint.pt`` when it exists, so
an interrupted run continues from its last saved epoch and ends where an uninterrupted one would.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from pydantic import Field

from alml.config import Config
from alml.io import atomic_write, atomic_write_json

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
HISTORY = "history.json"


class LoopConfig(Config):
    """Optimiser (Adam), schedule and stopping rules of :func:`fit`."""

    epochs: int = Field(500, ge=0, description="maximum number of epochs")
    lr: float = Field(1e-3, gt=0, description="initial learning rate")
    weight_decay: float = Field(0.0, ge=0, description="Adam(W) weight decay")
    schedule: Literal["plateau", "cosine", "constant"] = Field("plateau", description="learning-rate schedule")
    plateau_factor: float = Field(0.5, gt=0, lt=1, description="plateau: lr multiplier after a plateau")
    plateau_patience: int = Field(20, ge=0, description="plateau: epochs without improvement before lowering lr")
    lr_min: float = Field(1e-6, ge=0, description="lowest learning rate (plateau floor, cosine end)")
    patience: int | None = Field(80, ge=1, description="early stopping: epochs without improvement; None: off")
    min_delta: float = Field(0.0, ge=0, description="relative improvement that counts (0: any decrease)")
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this value")
    checkpoint_every: int = Field(10, ge=1, description="epochs between checkpoints")
    keep: Literal["best", "last"] = Field(
        "best", description="weights returned: the best epoch by the monitored metric, or the last epoch (no "
        "selection on validation data; pair with a cosine schedule that ends at lr_min)"
    )


@dataclass
class LoopState:
    """Where training stands: epochs done, best monitored value and its epoch, the learning curve."""

    epoch: int = 0
    best: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped: str = ""
    history: list[dict[str, float]] = field(default_factory=list)


class Callback(Protocol):
    """Called after every epoch with the loop state and that epoch's record; set ``state.stopped``
    to a reason to stop training after this epoch."""

    def __call__(self, state: LoopState, record: dict[str, float]) -> None: ...


def log_progress(every: int = 10, logger: logging.Logger = log, prefix: str = "") -> Callback:
    """A callback that logs the epoch record every ``every`` epochs (``prefix`` e.g. names the committee member)."""

    def cb(state: LoopState, record: dict[str, float]) -> None:
        if state.epoch % every == 0 or state.stopped:
            text = " ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch")
            logger.info("%sepoch %d %s", prefix, state.epoch, text)

    return cb


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: LoopConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, cfg: LoopConfig) -> Any:
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.lr_min
        )
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1), eta_min=cfg.lr_min)
    return None


def _save(path: Path, obj: Any) -> None:
    atomic_write(path, lambda p: torch.save(obj, p))


def _improved(value: float, best: float, min_delta: float) -> bool:
    if not math.isfinite(value):
        return False
    if not math.isfinite(best):
        return True
    return value < best - min_delta * abs(best)


def fit(
    model: torch.nn.Module,
    step: Callable[[Any], torch.Tensor],
    batches: Callable[[int], Iterable[Any]],
    evaluate: Callable[[], dict[str, float]],
    cfg: LoopConfig,
    *,
    monitor: str = "val_loss",
    workdir: Path | None = None,
    callbacks: Sequence[Callback] = (),
    fingerprint: str = "",
) -> LoopState:
    """Train ``model`` in place; on return it holds the weights of the best epoch (``cfg.keep == "best"``) or of
    the last one (``"last"``).

    ``fingerprint`` (e.g. a hash of the config and data) is stored in the checkpoint; resuming
    from a checkpoint with another fingerprint is an error, so a changed run never continues an
    old one silently. Returns the final :class:`LoopState` (history, best epoch, stop reason).
    """
    opt = make_optimizer(model.parameters(), cfg)
    sched = make_scheduler(opt, cfg)
    state = LoopState()
    best_weights = copy.deepcopy(model.state_dict())
    ckpt = workdir / CHECKPOINT if workdir is not None else None
    if ckpt is not None and ckpt.is_file():
        saved = torch.load(ckpt, weights_only=False)
        if saved.get("fingerprint", "") != fingerprint:
            raise ValueError(
                f"{ckpt} belongs to another run (fingerprint {saved.get('fingerprint')!r}, expected {fingerprint!r}); "
                "delete it or use another folder"
            )
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        if sched is not None and saved.get("scheduler") is not None:
            sched.load_state_dict(saved["scheduler"])
        state = LoopState(**saved["state"])
        best_weights = saved["best_model"]
        log.info("resumed %s at epoch %d (best %.4g at epoch %d)", workdir, state.epoch, state.best, state.best_epoch)

    def checkpoint() -> None:
        if workdir is None:
            return
        _save(
            workdir / CHECKPOINT,
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict() if sched is not None else None,
                "state": asdict(state),
                "best_model": best_weights,
                "fingerprint": fingerprint,
            },
        )
        atomic_write_json(workdir / HISTORY, state.history)

    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    while state.epoch < cfg.epochs and not state.stopped:
        t0 = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for batch in batches(state.epoch):
            opt.zero_grad(set_to_none=True)
            loss = step(batch)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            total += float(loss.detach())
            count += 1
        model.eval()
        metrics = evaluate()
        if monitor not in metrics:
            raise KeyError(f"evaluate() returned {sorted(metrics)}, without the monitored metric {monitor!r}")
        value = float(metrics[monitor])
        lr = opt.param_groups[0]["lr"]
        state.epoch += 1
        record = {"epoch": float(state.epoch), "lr": lr, "train_step_loss": total / max(count, 1), **metrics}
        record["time_s"] = time.perf_counter() - t0
        state.history.append(record)
        if _improved(value, state.best, cfg.min_delta):
            state.best, state.best_epoch, state.bad_epochs = value, state.epoch, 0
            best_weights = copy.deepcopy(model.state_dict())
            if workdir is not None:
                _save(workdir / BEST, best_weights)
        else:
            state.bad_epochs += 1
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(value)
        elif sched is not None:
            sched.step()
        if not math.isfinite(value):
            state.stopped = f"{monitor} is not finite ({value})"
        elif cfg.patience is not None and state.bad_epochs >= cfg.patience:
            state.stopped = f"no improvement of {monitor} in {cfg.patience} epochs"
        for cb in callbacks:
            cb(state, record)
        if state.epoch % cfg.checkpoint_every == 0 or state.stopped or state.epoch >= cfg.epochs:
            checkpoint()
    if not state.stopped:
        state.stopped = f"reached {cfg.epochs} epochs"
    if cfg.keep == "best":
        model.load_state_dict(best_weights)
    return state


def read_history(workdir: Path) -> list[dict[str, float]]:
    """The learning curve written by :func:`fit` into ``workdir`` (empty when there is none)."""
    p = Path(workdir) / HISTORY
    return json.loads(p.read_text()) if p.is_file() else []
