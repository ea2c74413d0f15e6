"""Executors, the core planner and the batch runner (retries, failures, Dask LocalCluster)."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import threading
from collections import Counter

import pytest

from alml.compute import ExecutorConfig, ManagedExecutor, TaskOutcome, make_executor, plan_cores, run_batch
from alml.config import ConfigError, parse_config

# ---------------------------------------------------------------- planner


@pytest.mark.parametrize(
    ("n_tasks", "cores", "min_ranks", "expected"),
    [
        (100, 16, 1, (16, 1)),  # many small jobs: one rank each, all cores busy
        (1, 16, 1, (1, 16)),  # one job: all cores as its ranks
        (2, 16, 1, (2, 8)),
        (3, 16, 1, (3, 5)),  # never oversubscribe: 15 of 16 cores
        (10, 16, 4, (4, 4)),  # at least 4 ranks per job
        (1, 2, 8, (1, 2)),  # min_ranks above cores is capped
        (0, 4, 1, (1, 4)),
    ],
)
def test_plan_cores(n_tasks: int, cores: int, min_ranks: int, expected: tuple[int, int]) -> None:
    assert plan_cores(n_tasks, cores, min_ranks) == expected


def test_plan_cores_never_oversubscribes_and_uses_tasks_first() -> None:
    for cores in range(1, 33):
        for n in range(1, 40):
            for m in (1, 2, 3):
                w, r = plan_cores(n, cores, m)
                assert w * r <= cores
                assert r >= min(m, cores)
                assert w == max(1, min(n, cores // min(m, cores)))
    with pytest.raises(ValueError, match="cores must be at least 1"):
        plan_cores(1, 0)


def test_executor_config_validation() -> None:
    with pytest.raises(ConfigError, match="not both"):
        parse_config(ExecutorConfig, {"kind": "dask", "address": "tcp://h:8786", "slurm": {"cores": 4}})
    with pytest.raises(ConfigError, match="need kind: dask"):
        parse_config(ExecutorConfig, {"address": "tcp://h:8786"})
    with pytest.raises(ConfigError, match="wrokers: unknown key"):
        parse_config(ExecutorConfig, {"wrokers": 2})
    with pytest.raises(ConfigError, match="retries"):
        parse_config(ExecutorConfig, {"retries": -1})
    cfg = ExecutorConfig(cores=16, workers=4)
    assert cfg.plan(100) == (4, 4)
    assert ExecutorConfig(cores=16).plan(2) == (2, 8)
    assert ExecutorConfig().total_cores >= 1


# ---------------------------------------------------------------- batch runner


class Flaky:
    """Fails the first ``fail_first[item]`` calls for an item, then returns item**2; 'bad' always fails."""

    def __init__(self, fail_first: dict[int, int]) -> None:
        self.fail_first = dict(fail_first)
        self.calls: Counter = Counter()
        self._lock = threading.Lock()

    def __call__(self, item):
        with self._lock:
            self.calls[item] += 1
            n = self.calls[item]
        if item == "bad":
            raise RuntimeError("pw.x did not converge")
        if n <= self.fail_first.get(item, 0):
            raise OSError(f"transient failure {n} of item {item}")
        return item**2


def test_run_batch_retries_then_records_failure_and_continues(caplog: pytest.LogCaptureFixture) -> None:
    fn = Flaky({2: 1, 4: 3})  # item 2 recovers on retry; item 4 fails more often than retries allow
    items = [0, 1, 2, "bad", 4, 5]
    with make_executor(ExecutorConfig(cores=2), n_tasks=len(items)) as ex, caplog.at_level(logging.INFO):
        reported: list[TaskOutcome] = []
        out = run_batch(ex, fn, items, retries=2, progress=False, description="square", on_outcome=reported.append)
    assert [o.index for o in out] == list(range(len(items)))
    assert sorted(reported, key=lambda o: o.index) == out  # each item once, with its final outcome (not a retry)
    assert [o.item for o in out] == items
    by = {o.item: o for o in out}
    assert by[0] == TaskOutcome(0, 0, "done", 0, None, 1)
    assert (by[2].status, by[2].value, by[2].attempts) == ("done", 4, 2)
    assert (by["bad"].status, by["bad"].attempts) == ("failed", 3)
    assert by["bad"].error == "RuntimeError: pw.x did not converge"
    assert (by[4].status, by[4].attempts, by[4].error) == ("failed", 3, "OSError: transient failure 3 of item 4")
    assert by[5].ok and by[5].value == 25
    assert fn.calls["bad"] == 3 and fn.calls[5] == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert any("square: item 3 failed after 3 attempt(s): RuntimeError" in r.getMessage() for r in errors)
    with pytest.raises(dataclasses.FrozenInstanceError):
        by[0].status = "failed"  # type: ignore[misc]


def test_run_batch_without_retries_and_empty() -> None:
    fn = Flaky({1: 1})
    with make_executor(n_tasks=3) as ex:
        out = run_batch(ex, fn, [0, 1, 2], retries=0, progress=False)
        assert run_batch(ex, fn, [], retries=0, progress=False) == []
    assert [o.status for o in out] == ["done", "failed", "done"]
    assert out[1].attempts == 1


def test_local_executor_is_a_thread_pool_of_planned_size() -> None:
    ex = make_executor(ExecutorConfig(cores=4), n_tasks=2)
    assert isinstance(ex, ManagedExecutor) and isinstance(ex, cf.Executor)
    assert (ex.workers, ex.ranks_per_task) == (2, 2)
    with ex:
        names = set(ex.map(lambda _: threading.current_thread().name, range(8)))
    assert all(n.startswith("alml") for n in names)
    with pytest.raises(RuntimeError):  # shut down by the with-block
        ex.submit(print)


# ---------------------------------------------------------------- Dask


_CALLS: Counter = Counter()  # shared with in-process Dask workers (threads of this process)
_CALLS_LOCK = threading.Lock()


def _fails_once_for_one(item: int) -> int:
    """Dask pickles the function, so state lives at module level, reached by reference."""
    with _CALLS_LOCK:
        _CALLS[item] += 1
        n = _CALLS[item]
    if item == 1 and n == 1:
        raise OSError("transient")
    if item == 3:
        raise RuntimeError("always")
    return item**2


def test_dask_local_cluster_runs_a_batch_and_closes() -> None:
    pytest.importorskip("distributed")
    _CALLS.clear()
    cfg = ExecutorConfig(kind="dask", cores=2, retries=1)
    with make_executor(cfg, n_tasks=5) as ex:
        client = ex._inner._client  # the client and cluster it created, to check they get closed
        cluster = client.cluster
        assert len(client.scheduler_info()["workers"]) == 2
        out = run_batch(ex, _fails_once_for_one, range(5), retries=cfg.retries, progress=False)
    assert [o.value for o in out] == [0, 1, 4, None, 16]
    assert out[1].attempts == 2  # pure=False: the retry really ran again
    assert (out[3].status, out[3].attempts, out[3].error) == ("failed", 2, "RuntimeError: always")
    assert _CALLS[3] == 2
    assert client.status == "closed"
    assert cluster.status.name == "closed"
