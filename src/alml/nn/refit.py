"""Exact least-squares refit of an MLP's output layer after gradient training.

The output layer is linear in its weights, so given the last hidden layer's features h(x) of all training points
the best output weights (in the mean-squared sense) solve the normal equations
``(H₁ᵀH₁ + λI) W = H₁ᵀY`` with ``H₁ = [h, 1]``. Solving them once after training removes what stochastic gradient
steps leave in that layer: with the bias column the residuals sum to zero over the training set for every output,
and every linear functional of the outputs (for an LDOS network: electron count, band energy) gets the
least-squares readout of the same features. The sums are accumulated batch by batch in float64, so the data may
stream from disk.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from alml.nn.mlp import MLP


@dataclass(frozen=True)
class RefitResult:
    """Training-set mean squared error (over points and outputs) of the output layer before and after the refit."""

    mse_before: float
    mse_after: float
    n_points: int


def _features(mlp: MLP, x: torch.Tensor) -> torch.Tensor:
    body = mlp.net[:-1]
    with torch.no_grad():
        return body(x)


def refit_output_layer(
    mlp: MLP, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], ridge: float = 1e-8
) -> RefitResult:
    """Replace ``mlp``'s last Linear layer by the least-squares fit of its targets on the last hidden features.

    ``batches`` yields (inputs, targets) in the units the MLP is trained in (here: standardised); ``ridge`` is the
    Tikhonov strength relative to the mean diagonal of H₁ᵀH₁ (it only matters for dead or collinear units).
    """
    last = mlp.net[-1]
    if not isinstance(last, torch.nn.Linear):
        raise TypeError("the MLP's last module must be its linear output layer")
    n_feat = last.in_features + 1
    gram = np.zeros((n_feat, n_feat))
    cross = np.zeros((n_feat, last.out_features))
    yy, n = 0.0, 0
    for x, y in batches:
        h = _features(mlp, x).double().numpy()
        h1 = np.hstack([h, np.ones((len(h), 1))])
        y64 = y.double().numpy()
        gram += h1.T @ h1
        cross += h1.T @ y64
        yy += float((y64**2).sum())
        n += len(h1)
    if n == 0:
        raise ValueError("no training points to refit the output layer on")
    old = np.vstack([last.weight.detach().double().numpy().T, last.bias.detach().double().numpy()[None, :]])
    reg = gram + ridge * np.trace(gram) / n_feat * np.eye(n_feat)
    new = np.linalg.solve(reg, cross)

    def mse(w: np.ndarray) -> float:
        return float(yy - 2.0 * np.sum(w * cross) + np.sum(w * (gram @ w))) / (n * last.out_features)

    with torch.no_grad():
        last.weight.copy_(torch.as_tensor(new[:-1].T, dtype=last.weight.dtype))
        last.bias.copy_(torch.as_tensor(new[-1], dtype=last.bias.dtype))
    return RefitResult(mse_before=mse(old), mse_after=mse(new), n_points=n)
