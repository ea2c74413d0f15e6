"""The ML-DFT network: grid-point inputs (K descriptors + G global inputs) → LDOS (n_e,), a committee of MLPs,
and its model folder.

Each member is an :class:`~alml.nn.MLP` between an input standardiser (input mean/std) and an output
scaler (per-energy LDOS mean/std, or one global scale with zero shift); both live in the module as buffers,
so ``member(x)`` maps raw inputs to an LDOS in 1/(eV·Å³). The inputs are a point's descriptors followed by the
cell's ``global_inputs`` (:mod:`alml.surrogate.inputs`; by default its atom density). The committee's spread over
members is the uncertainty.

A trained model is a folder::

    <model>/
      model.json          format, version, n_in, n_out, members, network, energy ladder, descriptor settings,
                          global inputs
                          (written last: a folder without it is incomplete and never loaded)
      weights.pt          state dict of the committee (float64, scalers included)
      scalers.json        descriptor mean/std and LDOS mean/std (readable without torch)
      config.yaml         the resolved LdosModelConfig
      provenance.json     versions, git commit, creation time, dataset hash and files
      metrics.json        per-member best epoch and validation errors (after training)
      training/           member_XX/{checkpoint.pt, best.pt, history.json}
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from ase import Atoms
from pydantic import Field, model_validator

from alml.config import Config, load_config
from alml.data.grids import EnergyLadder
from alml.nn import MLP, LoopConfig, MLPConfig
from alml.nn.folder import CONFIG, MODEL_JSON, PROVENANCE, WEIGHTS, write_model_folder
from alml.surrogate.inputs import GlobalInput, global_values, with_globals
from alml.surrogate.observables import observables

FORMAT = "alml-ldos"
FORMAT_VERSION = 1
SCALERS = "scalers.json"
TRAINING = "training"


class LdosModelConfig(Config):
    """Network, training loop and committee of the LDOS surrogate."""

    network: MLPConfig = Field(default_factory=lambda: MLPConfig(hidden=(64, 64), activation="relu"))
    training: LoopConfig = Field(default_factory=lambda: LoopConfig(epochs=100, patience=20, lr=1e-3))
    members: int = Field(4, ge=1, description="committee members (different seeds and data order)")
    seed: int = Field(0, description="committee seed; member k uses alml.nn.member_seed(seed, k)")
    batch_size: int = Field(1024, ge=1, description="grid points per batch")
    points_per_snapshot: int | None = Field(
        None, ge=1, description="grid points drawn at random from each training snapshot (None: all)"
    )
    streaming: bool = Field(
        False, description="stream training points from disk by k-slabs (larger-than-memory data) instead of loading"
    )
    planes_per_slab: int = Field(1, ge=1, description="streaming: k-planes read per slab")
    buffer_slabs: int = Field(
        8, ge=1, description="streaming: slabs (from shuffled snapshots) mixed per shuffle buffer"
    )
    output_scaling: Literal["per-energy", "single"] = Field(
        "per-energy", description="LDOS scaling: per-energy mean/std, or one global std (no shift)"
    )
    monitor: Literal["val_loss", "val_band_energy_mev_per_atom"] = Field(
        "val_loss", description="validation metric for early stopping and the best epoch"
    )
    global_inputs: list[GlobalInput] = Field(
        default_factory=lambda: ["atom_density"],
        description="cell-wide inputs appended to every point's descriptors (alml.surrogate.inputs): the atom "
        "density lets one model follow the absolute energy reference across densities; [] for descriptors only",
    )
    refit_output: bool = Field(
        False,
        description="after training, refit each member's output layer by exact least squares on all training points "
        "(alml.nn.refit): removes the common output bias SGD leaves, which integrated observables (band energy) "
        "amplify; on the Al data it made in-sample errors small and stable, but lowered a held-out error in only 1 "
        "of 4 comparisons",
    )
    workers: int = Field(1, ge=1, description="member trainings side by side (processes)")
    threads: int = Field(1, ge=1, description="torch threads per member training")

    @model_validator(mode="after")
    def _streaming_uses_all_points(self) -> LdosModelConfig:
        if self.streaming and self.points_per_snapshot is not None:
            raise ValueError("points_per_snapshot applies to in-memory training; with streaming every point is used")
        return self


class LdosNet(torch.nn.Module):
    """One member: raw descriptors x (N, K) → LDOS (N, n_e), with scalers as buffers."""

    def __init__(self, n_in: int, n_out: int, network: MLPConfig) -> None:
        super().__init__()
        self.mlp = MLP(n_in, tuple(network.hidden), network.activation, n_out=n_out)
        self.register_buffer("x_mean", torch.zeros(n_in))
        self.register_buffer("x_std", torch.ones(n_in))
        self.register_buffer("y_mean", torch.zeros(n_out))
        self.register_buffer("y_std", torch.ones(n_out))

    def set_scalers(self, scalers: Scalers) -> None:
        dt = self.x_mean.dtype
        for name in ("x_mean", "x_std", "y_mean", "y_std"):
            getattr(self, name).copy_(torch.as_tensor(getattr(scalers, name), dtype=dt))

    def normalized(self, xhat: torch.Tensor) -> torch.Tensor:
        """Scaled output ŷ of standardised input x̂ (what training fits)."""
        return self.mlp(xhat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp((x - self.x_mean) / self.x_std) * self.y_std + self.y_mean

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations h (N, H) of raw inputs x (N, n_in); the standardised inputs when the
        network has no hidden layer. ``forward(x) = h @ a.T + c`` with ``(a, c) = readout()``."""
        return self.mlp.net[:-1]((x - self.x_mean) / self.x_std)

    def readout(self) -> tuple[np.ndarray, np.ndarray]:
        """The affine map from :meth:`features` to the LDOS, output scaling included: a (n_e, H), c (n_e,), float64."""
        last = self.mlp.net[-1]
        w, b = last.weight.detach().double(), last.bias.detach().double()
        y_std, y_mean = self.y_std.double(), self.y_mean.double()
        return (y_std[:, None] * w).numpy(), (y_std * b + y_mean).numpy()


@dataclass(frozen=True)
class Scalers:
    """Descriptor mean/std (K,) and LDOS mean/std (n_e,), float64."""

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {k: np.asarray(getattr(self, k)).tolist() for k in ("x_mean", "x_std", "y_mean", "y_std")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scalers:
        return cls(**{k: np.asarray(d[k], dtype=float) for k in ("x_mean", "x_std", "y_mean", "y_std")})


#: per-energy LDOS scaling: no energy's std below this fraction of the largest. Energies the training data leaves
#: (almost) empty, e.g. below the band bottom, have stds ~1e-8 of the rest; scaled by those, their tiny errors would be
#: amplified ~1e8-fold and dominate the loss and the choice of the best epoch.
OUTPUT_STD_FLOOR = 1e-2


def per_energy_std(std: np.ndarray) -> np.ndarray:
    """Per-energy LDOS stds (n_e,) floored at :data:`OUTPUT_STD_FLOOR` x their maximum (all ones if all are 0)."""
    std = np.asarray(std, dtype=float)
    top = float(std.max()) if std.size else 0.0
    return np.maximum(std, OUTPUT_STD_FLOOR * top) if top > 0 else np.ones_like(std)


def fit_scalers(x: np.ndarray, y: np.ndarray, output_scaling: str = "per-energy") -> Scalers:
    """Scalers of training descriptors ``x`` (N, K) and LDOS ``y`` (N, n_e) (flat features keep std 1)."""
    from alml.nn import fit_standardizer

    zeros = np.zeros(len(x), dtype=np.int64)
    sx = fit_standardizer(x, zeros, 1)
    if output_scaling == "per-energy":
        y64 = np.asarray(y, dtype=float)
        y_mean, y_std = y64.mean(axis=0), per_energy_std(y64.std(axis=0))
    else:
        s = float(np.asarray(y, dtype=float).std())
        y_mean, y_std = np.zeros(y.shape[1]), np.full(y.shape[1], s if s > 0 else 1.0)
    return Scalers(sx.mean[0], sx.std[0], np.asarray(y_mean, float), np.asarray(y_std, float))


@dataclass
class LdosModel:
    """A committee of :class:`LdosNet` and what it needs to turn an LDOS into observables."""

    members: torch.nn.ModuleList
    config: LdosModelConfig
    ladder: EnergyLadder
    n_in: int
    descriptor_settings: dict[str, Any] | None = None
    path: Path | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    #: what prediction needs from the training snapshots (temperature K, ecutrho eV, pseudopotentials, grid);
    #: None for folders written before it was recorded
    training_data: dict[str, Any] | None = None

    @property
    def n_members(self) -> int:
        return len(self.members)

    @property
    def n_out(self) -> int:
        return self.ladder.n

    @property
    def global_inputs(self) -> list[str]:
        return list(self.config.global_inputs)

    def inputs(self, descriptors: np.ndarray, atoms: Atoms | None) -> np.ndarray:
        """Network inputs (..., n_in) of ``descriptors`` (..., K) of a cell ``atoms`` (needed when the model has
        global inputs)."""
        x = np.asarray(descriptors)
        n_g = len(self.global_inputs)
        if x.shape[-1] + n_g != self.n_in:
            raise ValueError(f"the model takes {self.n_in - n_g} descriptor components, got {x.shape[-1]}")
        if n_g == 0:
            return x
        if atoms is None:
            raise ValueError(f"this model also takes the cell's {', '.join(self.global_inputs)}: pass atoms=")
        return with_globals(x, global_values(atoms, self.global_inputs))

    def spec(self) -> dict[str, Any]:
        return {
            "n_in": self.n_in,
            "n_out": self.n_out,
            "members": self.n_members,
            "network": self.config.network.model_dump(mode="json"),
            "ladder": {
                "energies": self.ladder.energies.tolist(),
                "broadening": self.ladder.broadening,
                "kernel": self.ladder.kernel,
            },
            "descriptors": self.descriptor_settings,
            "global_inputs": self.global_inputs,
            **({"training_data": self.training_data} if self.training_data is not None else {}),
        }

    def scalers(self) -> Scalers:
        m = self.members[0]
        return Scalers(*(getattr(m, k).detach().double().numpy() for k in ("x_mean", "x_std", "y_mean", "y_std")))


def new_committee(n_in: int, n_out: int, network: MLPConfig, members: int) -> torch.nn.ModuleList:
    return torch.nn.ModuleList(LdosNet(n_in, n_out, network) for _ in range(members))


def save_ldos_model(
    path: Path, model: LdosModel, provenance: dict[str, Any], metrics: dict[str, Any] | None = None
) -> Path:
    """Write the model folder (``model.json`` last); return its path."""
    return write_model_folder(
        path, model.members, model.config, provenance, {"format": FORMAT, "version": FORMAT_VERSION, **model.spec()},
        {SCALERS: model.scalers().to_dict()}, metrics,
    )


def is_ldos_model_folder(path: Path) -> bool:
    return (Path(path) / MODEL_JSON).is_file()


def load_ldos_model(path: str | Path) -> LdosModel:
    """Read a folder written by :func:`save_ldos_model` (float64, eval mode)."""
    path = Path(path)
    if not is_ldos_model_folder(path):
        raise FileNotFoundError(f"{path} is not a complete alml LDOS model folder (no {MODEL_JSON})")
    spec = json.loads((path / MODEL_JSON).read_text())
    if spec.get("format") != FORMAT or int(spec.get("version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported model format {spec.get('format')} v{spec.get('version')}")
    config = load_config(LdosModelConfig, path / CONFIG)
    if "global_inputs" not in spec:  # written before global inputs existed: descriptors only
        config = config.model_copy(update={"global_inputs": []})
    network = MLPConfig.model_validate(spec["network"])
    members = new_committee(int(spec["n_in"]), int(spec["n_out"]), network, int(spec["members"])).double()
    members.load_state_dict(torch.load(path / WEIGHTS, weights_only=True))
    members.eval()
    lad = spec["ladder"]
    ladder = EnergyLadder(np.asarray(lad["energies"], float), float(lad["broadening"]), lad["kernel"])
    prov = json.loads((path / PROVENANCE).read_text()) if (path / PROVENANCE).is_file() else {}
    return LdosModel(
        members, config, ladder, int(spec["n_in"]), spec.get("descriptors"), path, prov, spec.get("training_data")
    )


def _as_model(model: LdosModel | str | Path) -> LdosModel:
    return model if isinstance(model, LdosModel) else load_ldos_model(model)


def iter_member_predictions(
    model: LdosModel | str | Path, descriptors: np.ndarray, atoms: Atoms | None = None, chunk: int = 65536
) -> Iterator[np.ndarray]:
    """Each member's LDOS (..., n_e) in 1/(eV·Å³), float64, one member at a time, for descriptors (..., K) of the cell
    ``atoms`` (needed when the model has global inputs), evaluated in chunks of points. Holds one member's LDOS."""
    m = _as_model(model)
    x = m.inputs(descriptors, atoms)
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    dtype = next(m.members.parameters()).dtype
    with torch.no_grad():
        for net in m.members:
            out = np.empty((flat.shape[0], m.n_out))
            for i0 in range(0, flat.shape[0], chunk):
                out[i0 : i0 + chunk] = net(torch.as_tensor(flat[i0 : i0 + chunk], dtype=dtype)).double().numpy()
            yield out.reshape(*lead, m.n_out)


def predict_members(
    model: LdosModel | str | Path, descriptors: np.ndarray, atoms: Atoms | None = None, chunk: int = 65536
) -> np.ndarray:
    """Every member's LDOS (M, ..., n_e) in 1/(eV·Å³) (see :func:`iter_member_predictions`, which holds one)."""
    return np.stack(list(iter_member_predictions(model, descriptors, atoms, chunk)))


def predict_ldos(
    model: LdosModel | str | Path, descriptors: np.ndarray, atoms: Atoms | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Committee mean and std (ddof=1; zeros for one member) of the LDOS, both (..., n_e), for descriptors (..., K)
    of the cell ``atoms`` (see :func:`predict_members`)."""
    p = predict_members(model, descriptors, atoms)
    std = p.std(axis=0, ddof=1) if len(p) > 1 else np.zeros(p.shape[1:])
    return p.mean(axis=0), std


class BandEnergyStats(NamedTuple):
    """Band energy (eV) of the committee-mean LDOS, mean and std (ddof=1) over members' band energies, members (M,)."""

    of_mean_ldos: float
    mean: float
    std: float
    members: np.ndarray


def band_energy_committee(
    model: LdosModel | str | Path,
    descriptors: np.ndarray,
    atoms: Atoms,
    n_electrons: float,
    temperature: float,
    ladder: EnergyLadder | None = None,
) -> BandEnergyStats:
    """Band energies (eV) of a whole cell's predicted LDOS: descriptors (..., K) on the full grid of the cell
    ``atoms``, ``n_electrons``, ``temperature`` K; ``ladder`` defaults to the model's."""
    m = _as_model(model)
    lad = ladder or m.ladder
    p = predict_members(m, descriptors, atoms)
    volume = abs(float(atoms.cell.volume))
    per = np.array([observables(pk, lad, volume, n_electrons, temperature, with_density=False).band_energy for pk in p])
    of_mean = observables(p.mean(axis=0), lad, volume, n_electrons, temperature, with_density=False).band_energy
    std = float(per.std(ddof=1)) if len(per) > 1 else 0.0
    return BandEnergyStats(float(of_mean), float(per.mean()), std, per)


__all__: Sequence[str] = (
    "BandEnergyStats",
    "LdosModel",
    "LdosModelConfig",
    "LdosNet",
    "Scalers",
    "band_energy_committee",
    "fit_scalers",
    "is_ldos_model_folder",
    "load_ldos_model",
    "predict_ldos",
    "iter_member_predictions",
    "predict_members",
    "save_ldos_model",
)
