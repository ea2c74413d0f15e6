"""Feed-forward networks whose activations LAMMPS ``mliap model nn`` evaluates exactly.

LAMMPS's ML-IAP ``nn`` model knows ``linear``, ``sigmoid``, ``tanh`` and ``relu``; restricting the
networks to those keeps every trained network exportable without approximation.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, field_validator

from alml.config import Config

Activation = Literal["linear", "tanh", "sigmoid", "relu"]
ACTIVATIONS: tuple[str, ...] = ("linear", "tanh", "sigmoid", "relu")


class MLPConfig(Config):
    """Hidden layer widths and their (shared) activation; the output layer is one linear node."""

    hidden: tuple[int, ...] = Field((32, 32), description="widths of the hidden layers (may be empty: linear model)")
    activation: Activation = Field("tanh", description="activation of every hidden layer")

    @field_validator("hidden")
    @classmethod
    def _positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(h < 1 for h in v):
            raise ValueError(f"hidden layer widths must be positive, got {v}")
        return v


def activation_module(name: str) -> torch.nn.Module:
    """The torch module of an activation name (``linear`` is the identity)."""
    table = {"linear": torch.nn.Identity, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU}
    if name not in table:
        raise ValueError(f"activation {name!r} is not one LAMMPS mliap evaluates; choose from {ACTIVATIONS}")
    return table[name]()


class MLP(torch.nn.Module):
    """x (N, n_in) -> y (N, n_out): Linear, activation, ..., Linear (the last layer has no activation)."""

    def __init__(self, n_in: int, hidden: tuple[int, ...], activation: str, n_out: int = 1) -> None:
        super().__init__()
        widths = (n_in, *hidden, n_out)
        self.activations = [*([activation] * len(hidden)), "linear"]
        layers: list[torch.nn.Module] = []
        for k, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(torch.nn.Linear(a, b))
            if k < len(hidden):
                layers.append(activation_module(activation))
        self.net = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def dense_layers(self) -> list[tuple[torch.Tensor, torch.Tensor, str]]:
        """(weight (out, in), bias (out,), activation) of every layer, input to output."""
        linears = [m for m in self.net if isinstance(m, torch.nn.Linear)]
        return [(m.weight.detach(), m.bias.detach(), a) for m, a in zip(linears, self.activations)]
