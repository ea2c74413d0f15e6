"""Configuration of the potential: descriptors, network, loss, training, committee; and a training job.

YAML example (every key optional except where noted; ``descriptors`` takes a preset name or fields)::

    data:
      store: data/al.db          # required: ASE db or postgresql:// URL
      select: "generation<3"     # ASE query (optional)
      cache: cache/descriptors   # descriptor cache folder
    potential:
      descriptors: mala-al       # or {twojmax: 6, rcutfac: 4.67637, rfac0: 0.99363, elements: {Al: {radius: 0.5}}}
      network: {hidden: [32, 32], activation: tanh}
      loss: {energy: 1.0, forces: 0.1, stress: 0.0}
      training: {epochs: 500, batch_size: 8, lr: 1.0e-3, val_fraction: 0.1}
      committee: {members: 8, seed: 0}
    output: models/al-v1
    warm_start: null             # a previous model folder to start the weights from
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from alml.config import Config
from alml.descriptors import PRESETS, BispectrumSettings
from alml.nn.mlp import MLPConfig
from alml.nn.training import LoopConfig


class LossWeights(Config):
    """Weights of the loss terms, each a mean squared error:
    energy per atom (eV/atom)², force components (eV/Å)², stress as V·σ/N (eV/atom)²."""

    energy: float = Field(1.0, ge=0, description="weight of MSE of E/N")
    forces: float = Field(0.1, ge=0, description="weight of MSE of force components")
    stress: float = Field(0.0, ge=0, description="weight of MSE of V·σ/N (structures with a stress label)")


class TrainingConfig(LoopConfig):
    """The loop's settings plus batching, validation split, precision and threads of one member."""

    batch_size: int = Field(8, ge=1, description="structures per optimiser step")
    eval_batch_size: int = Field(64, ge=1, description="structures per evaluation chunk (bounds memory)")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="held-out fraction per member (its own split)")
    dtype: Literal["float32", "float64"] = Field(
        "float32",
        description="training precision (float32: ~5x faster on CPU; the saved model and inference are float64)",
    )
    threads: int = Field(1, ge=1, description="torch threads per member")
    energy_scale: float | None = Field(
        None, gt=0, description="s_E (eV); None: RMS force component × 1 Å (or std of E/N without forces)"
    )


class CommitteeConfig(Config):
    """K members differing in seed and data split; trained side by side when cores allow."""

    members: int = Field(8, ge=1, description="committee size K")
    seed: int = Field(0, description="committee seed (member seeds derive from it)")
    workers: int | None = Field(None, ge=1, description="members trained at once; None: cores // threads")


class PotentialConfig(Config):
    """Everything that defines a trained potential, apart from the data."""

    descriptors: BispectrumSettings = Field(default_factory=lambda: PRESETS["mala-al"])
    network: MLPConfig = Field(default_factory=MLPConfig)
    loss: LossWeights = Field(default_factory=LossWeights)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    committee: CommitteeConfig = Field(default_factory=CommitteeConfig)
    energy_key: Literal["free_energy", "energy"] = Field(
        "free_energy", description="label trained on: the Mermin free energy, whose gradient the forces are"
    )

    @field_validator("descriptors", mode="before")
    @classmethod
    def _preset(cls, v: Any) -> Any:
        if isinstance(v, str):
            if v not in PRESETS:
                raise ValueError(f"unknown descriptor preset {v!r}; known: {sorted(PRESETS)}")
            return PRESETS[v]
        return v


class DataConfig(Config):
    """Where the labelled structures come from."""

    store: str = Field(description="ASE database: a .db file or a postgresql:// URL")
    select: str | None = Field(None, description="ASE db query, e.g. 'generation<3,natoms>1'")
    cache: Path | None = Field(Path("cache/descriptors"), description="descriptor cache folder; None: no cache")


class TrainJob(Config):
    """``alml potential train`` input: data, potential, output folder, optional warm start."""

    data: DataConfig
    potential: PotentialConfig = Field(default_factory=PotentialConfig)
    output: Path = Field(Path("models/potential"), description="model folder to write")
    warm_start: Path | None = Field(None, description="model folder whose weights start this training")
