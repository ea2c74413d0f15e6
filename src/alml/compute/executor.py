"""Where tasks run: a :class:`concurrent.futures.Executor`, local threads by default, Dask when asked.

The tasks alml distributes are mostly external programs (pw.x, pp.x under MPI), so local
execution uses threads, and :func:`plan_cores` splits the cores between concurrent tasks and the
MPI ranks of each. :func:`run_batch` runs a function over items with retries and records every
outcome, so one failed DFT run never stops a batch.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from alml.config import Config

log = logging.getLogger(__name__)


class ExecutorConfig(Config):
    """How and where tasks run.

    kind: ``local`` (threads in this process) or ``dask``.
    workers: concurrent tasks; None lets :func:`plan_cores` decide from the number of tasks.
    address: Dask scheduler address (``tcp://host:8786``); None starts an in-process LocalCluster.
    slurm: keyword arguments for ``dask_jobqueue.SLURMCluster`` (cores, memory, queue, walltime, ...);
        ``workers`` Slurm jobs are requested. Exclusive with ``address``.
    retries: extra attempts for a failed task after the first.
    cores: cores to share between tasks (and their MPI ranks); None: all of this machine's. With
        ``address`` or ``slurm`` the tasks run elsewhere: set ``workers`` and ``cores`` for that cluster.
    """

    kind: Literal["local", "dask"] = "local"
    workers: int | None = Field(default=None, ge=1)
    address: str | None = None
    slurm: dict[str, Any] | None = None
    retries: int = Field(default=1, ge=0)
    cores: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> ExecutorConfig:
        if self.address is not None and self.slurm is not None:
            raise ValueError("give either address (an existing Dask scheduler) or slurm (a new Slurm cluster), "
                             "not both")
        if self.kind == "local" and (self.address is not None or self.slurm is not None):
            raise ValueError("address and slurm need kind: dask")
        return self

    @property
    def total_cores(self) -> int:
        """``cores``, or this machine's core count when unset."""
        return self.cores or os.cpu_count() or 1

    def plan(self, n_tasks: int, min_ranks: int = 1) -> tuple[int, int]:
        """(workers, MPI ranks per task) for ``n_tasks`` tasks; an explicit ``workers`` is kept."""
        if self.workers is None:
            return plan_cores(n_tasks, self.total_cores, min_ranks)
        return self.workers, max(min_ranks, self.total_cores // self.workers)


def plan_cores(n_tasks: int, cores: int, min_ranks: int = 1) -> tuple[int, int]:
    """Split ``cores`` between concurrent tasks and the MPI ranks of each: (workers, ranks_per_task).

    Task-level parallelism first (it scales best): as many workers as tasks, up to
    ``cores // min_ranks``; the cores left over go to each task's ranks. Never oversubscribes:
    ``workers * ranks_per_task <= cores``. ``min_ranks`` above ``cores`` is lowered to ``cores``.
    """
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores}")
    if min_ranks < 1:
        raise ValueError(f"min_ranks must be at least 1, got {min_ranks}")
    if min_ranks > cores:
        log.warning("min_ranks %d exceeds the %d cores available; using %d", min_ranks, cores, cores)
        min_ranks = cores
    workers = max(1, min(n_tasks, cores // min_ranks))
    return workers, cores // workers


class ManagedExecutor(cf.Executor):
    """An executor that owns what it was built on (Dask client, cluster) and closes it on shutdown.

    ``workers`` and ``ranks_per_task`` record the plan it was made with: give each task
    ``ranks_per_task`` MPI ranks.
    """

    def __init__(self, inner: cf.Executor, workers: int, ranks_per_task: int,
                 closers: Iterable[Callable[[], Any]] = ()) -> None:
        self._inner = inner
        self.workers = workers
        self.ranks_per_task = ranks_per_task
        self._closers = list(closers)
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        return self._inner.submit(fn, *args, **kwargs)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1) -> Any:
        return self._inner.map(fn, *iterables, timeout=timeout)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if isinstance(self._inner, cf.ThreadPoolExecutor):
                self._inner.shutdown(wait=wait, cancel_futures=cancel_futures)
            else:
                self._inner.shutdown(wait=wait)
        finally:
            for close in self._closers:
                try:
                    close()
                except Exception as err:  # closing must not hide the real outcome
                    log.warning("closing %r failed: %s", close, err)

    def __repr__(self) -> str:
        return f"ManagedExecutor({type(self._inner).__name__}, workers={self.workers}, " \
               f"ranks_per_task={self.ranks_per_task})"


def make_executor(cfg: ExecutorConfig | None = None, n_tasks: int = 1, min_ranks: int = 1) -> ManagedExecutor:
    """An executor for ``n_tasks`` tasks; use it as a context manager so everything it started closes.

    local: a ThreadPoolExecutor with the planned number of workers. dask: a Dask client's
    executor on an in-process LocalCluster (threads, one per worker, no dashboard), on the
    scheduler at ``address``, or on a dask-jobqueue SLURMCluster scaled to ``workers`` jobs.
    """
    cfg = cfg or ExecutorConfig()
    workers, ranks = cfg.plan(n_tasks, min_ranks)
    if cfg.kind == "local":
        pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="alml")
        return ManagedExecutor(pool, workers, ranks)

    from distributed import Client

    closers: list[Callable[[], Any]] = []
    if cfg.address is not None:
        client = Client(cfg.address)
    elif cfg.slurm is not None:
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError:
            raise ImportError("slurm needs dask-jobqueue: pip install dask-jobqueue") from None
        cluster = SLURMCluster(**cfg.slurm)
        closers.append(cluster.close)
        cluster.scale(jobs=workers)
        client = Client(cluster)
    else:
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=False,
                               dashboard_address=None)
        closers.append(cluster.close)
        client = Client(cluster)
    closers.insert(0, client.close)
    # pure=False: every submission is a new task, so a retried task really runs again.
    return ManagedExecutor(client.get_executor(pure=False), workers, ranks, closers)


@dataclass(frozen=True)
class TaskOutcome:
    """What became of one item of a batch: ``status`` is "done" (``value`` set) or "failed"
    (``error`` holds "ExceptionType: message" of the last attempt)."""

    index: int
    item: Any
    status: Literal["done", "failed"]
    value: Any = None
    error: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.status == "done"


def _error_text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def run_batch(
    executor: cf.Executor,
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    retries: int = 1,
    description: str = "",
    progress: bool = True,
    on_outcome: Callable[[TaskOutcome], None] | None = None,
) -> list[TaskOutcome]:
    """Run ``fn(item)`` for every item on ``executor``; return one :class:`TaskOutcome` per item,
    in item order.

    ``on_outcome``, when given, is called in this thread with each item's final outcome as it comes
    (in completion order), so that a caller can save results while the rest still run.

    A task that raises is resubmitted up to ``retries`` more times, then recorded as failed (and
    logged); the other tasks go on. Progress shows with rich when ``progress`` and stderr is a
    terminal. On a Dask executor ``fn`` and the items are pickled (cloudpickle): keep state that
    must be shared out of ``fn`` (files, the store), not in a closure.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    items = list(items)
    outcomes: list[TaskOutcome | None] = [None] * len(items)
    attempts = [0] * len(items)
    pending: dict[cf.Future, int] = {}

    def submit(i: int) -> None:
        attempts[i] += 1
        pending[executor.submit(fn, items[i])] = i

    show = progress and sys.stderr.isatty()
    label = description or getattr(fn, "__name__", "tasks")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(),
                  disable=not show, transient=False) as bar:
        task = bar.add_task(label, total=len(items), failed=0)
        n_failed = 0
        for i in range(len(items)):
            submit(i)
        while pending:
            done, _ = cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                try:
                    value = fut.result()
                except Exception as err:
                    text = _error_text(err)
                    if attempts[i] <= retries:
                        log.info("%s: item %d failed (attempt %d of %d), retrying: %s",
                                 label, i, attempts[i], retries + 1, text)
                        submit(i)
                        continue
                    log.error("%s: item %d failed after %d attempt(s): %s", label, i, attempts[i], text)
                    out = TaskOutcome(i, items[i], "failed", None, text, attempts[i])
                    n_failed += 1
                else:
                    out = TaskOutcome(i, items[i], "done", value, None, attempts[i])
                outcomes[i] = out
                bar.update(task, advance=1, failed=n_failed)
                if on_outcome is not None:
                    on_outcome(out)
    return [o for o in outcomes if o is not None]
