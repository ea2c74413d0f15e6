"""Input standardisation and target offsets: pure functions on arrays, plain dataclasses out.

A :class:`Standardizer` holds one mean and standard deviation per group (per element) and per
feature: x̂ = (x - mean[g]) / std[g]. That is exactly LAMMPS ``mliap model nn``'s per-element
``scale0``/``scale1``, so a fitted standardizer exports without change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Standardizer:
    """Per-group feature shift and scale: ``mean`` and ``std`` are (G, K) float64 arrays."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        if self.mean.shape != self.std.shape or self.mean.ndim != 2:
            raise ValueError(f"mean and std must both be (G, K); got {self.mean.shape} and {self.std.shape}")
        if np.any(~(self.std > 0)):
            raise ValueError("every std must be positive")

    @property
    def n_groups(self) -> int:
        return int(self.mean.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[1])

    def apply(self, x: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """x̂ (N, K) of features ``x`` (N, K) whose rows belong to ``groups`` (N,)."""
        return (x - self.mean[groups]) / self.std[groups]

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Standardizer:
        return cls(mean=np.asarray(d["mean"], dtype=float), std=np.asarray(d["std"], dtype=float))

    @classmethod
    def identity(cls, n_groups: int, n_features: int) -> Standardizer:
        return cls(mean=np.zeros((n_groups, n_features)), std=np.ones((n_groups, n_features)))


def fit_standardizer(
    x: np.ndarray, groups: np.ndarray, n_groups: int, *, rel_tol: float = 1e-8
) -> Standardizer:
    """Mean and population std of ``x`` (N, K) within each group (``groups`` (N,) in 0..G-1).

    A feature that (nearly) does not vary within a group — std below ``rel_tol`` times its
    magnitude, or exactly zero — keeps std 1 so that it is shifted but never amplified; a group
    with no rows gets mean 0 and std 1.
    """
    x = np.asarray(x, dtype=float)
    groups = np.asarray(groups, dtype=np.int64)
    k = x.shape[1]
    mean = np.zeros((n_groups, k))
    std = np.ones((n_groups, k))
    for g in range(n_groups):
        rows = x[groups == g]
        if len(rows) == 0:
            continue
        m = rows.mean(axis=0)
        s = rows.std(axis=0)
        flat = ~(s > rel_tol * np.maximum(np.abs(m), 1.0))
        mean[g] = m
        std[g] = np.where(flat, 1.0, s)
    return Standardizer(mean=mean, std=std)


def fit_reference_energies(counts: np.ndarray, energies: np.ndarray, *, ridge: float = 1e-10) -> np.ndarray:
    """Per-element reference energies e (G,) with E_s ≈ Σ_g counts[s, g] e_g, by least squares.

    ``counts`` (S, G): atoms of each element in each structure; ``energies`` (S,) in eV. Elements
    absent from every structure get 0. A tiny ridge keeps collinear compositions well posed.
    """
    counts = np.asarray(counts, dtype=float)
    energies = np.asarray(energies, dtype=float)
    present = counts.sum(axis=0) > 0
    e = np.zeros(counts.shape[1])
    if not present.any():
        return e
    a = counts[:, present]
    lhs = a.T @ a + ridge * np.eye(a.shape[1]) * max(1.0, float(np.trace(a.T @ a)) / a.shape[1])
    e[present] = np.linalg.solve(lhs, a.T @ energies)
    return e
