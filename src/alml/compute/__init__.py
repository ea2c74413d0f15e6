"""Compute: executors (local threads or Dask) and a batch runner with retries."""

from alml.compute.executor import (
    ExecutorConfig,
    ManagedExecutor,
    TaskOutcome,
    make_executor,
    plan_cores,
    run_batch,
)

__all__ = ["ExecutorConfig", "ManagedExecutor", "TaskOutcome", "make_executor", "plan_cores", "run_batch"]
