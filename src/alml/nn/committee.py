"""Committees (ensembles): run member trainings in parallel processes, and committee statistics.

Query by committee (PHYSICS.md, Active learning): K members differing in initial weights and data
split; their disagreement flags configurations worth labelling. The statistics are pure functions
of the members' predictions.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeVar

import numpy as np

log = logging.getLogger(__name__)
T = TypeVar("T")


def member_seed(seed: int, member: int) -> int:
    """Seed of committee member ``member`` from the committee's ``seed`` (distinct, reproducible)."""
    return int(np.random.SeedSequence([seed, member]).generate_state(1)[0])


def plan_workers(members: int, threads_per_member: int = 1, cores: int | None = None) -> int:
    """Member trainings that fit side by side: cores // threads, at most ``members``, at least 1."""
    cores = cores or os.cpu_count() or 1
    return max(1, min(members, cores // max(threads_per_member, 1)))


def _init_worker(threads: int) -> None:
    from alml.runtime import set_threads

    set_threads(threads)


def run_members(
    fn: Callable[[int], T], members: Sequence[int], workers: int = 1, threads: int = 1
) -> list[T]:
    """``[fn(k) for k in members]``, in ``workers`` spawned processes with ``threads`` torch threads each.

    ``fn`` must be picklable (a module-level function or a ``functools.partial`` of one). With
    ``workers <= 1`` or one member, runs here, sequentially, with ``threads`` threads. A member
    that raises stops the committee: the other futures are cancelled and the error is re-raised.
    """
    members = list(members)
    if workers <= 1 or len(members) <= 1:
        _init_worker(threads)
        return [fn(k) for k in members]
    ctx = mp.get_context("spawn")  # fork after torch has started threads is unsafe
    with cf.ProcessPoolExecutor(max_workers=min(workers, len(members)), mp_context=ctx,
                                initializer=_init_worker, initargs=(threads,)) as ex:
        futures = [ex.submit(fn, k) for k in members]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


class CommitteeStats(NamedTuple):
    """Committee mean and disagreement of one structure of N atoms.

    ``energy`` eV and ``forces`` (N, 3) eV/Å: member means. ``energy_std`` = ρ = std_k(E_k)/√N
    (eV/atom). ``forces_std`` (N,) eV/Å: per atom, the std over members of the force vector,
    sqrt(Σ_a var_k F_{k,i,a}). ``forces_std_mean`` and ``forces_std_max``: its mean and max over
    atoms. Standard deviations use ddof=1 (unbiased, as ``torch.std``); one member gives zeros.
    """

    energy: float
    energy_std: float
    forces: np.ndarray | None
    forces_std: np.ndarray | None
    forces_std_mean: float
    forces_std_max: float


def committee_statistics(
    energies: np.ndarray, forces: np.ndarray | None = None, n_atoms: int | None = None
) -> CommitteeStats:
    """Statistics of member energies (K,) eV and forces (K, N, 3) eV/Å (see :class:`CommitteeStats`).

    ``n_atoms`` defaults to N of ``forces``; give it when there are no forces.
    """
    e = np.asarray(energies, dtype=float)
    if n_atoms is None:
        if forces is None:
            raise ValueError("give n_atoms when there are no forces")
        n_atoms = int(np.shape(forces)[1])
    rho = energy_disagreement(e, n_atoms)
    if forces is None:
        return CommitteeStats(float(e.mean()), rho, None, None, float("nan"), float("nan"))
    f = np.asarray(forces, dtype=float)
    fstd = np.sqrt(f.var(axis=0, ddof=1).sum(axis=-1)) if len(f) > 1 else np.zeros(f.shape[1])
    fmean = float(fstd.mean()) if len(fstd) else 0.0
    fmax = float(fstd.max()) if len(fstd) else 0.0
    return CommitteeStats(float(e.mean()), rho, f.mean(axis=0), fstd, fmean, fmax)


def energy_disagreement(energies: np.ndarray, n_atoms: int) -> float:
    """ρ = std_k(E_k) / √N (eV/atom, ddof=1) of member energies (K,) of an N-atom structure."""
    e = np.asarray(energies, dtype=float)
    return float(e.std(ddof=1)) / np.sqrt(max(n_atoms, 1)) if len(e) > 1 else 0.0
