"""A trained potential is a folder.

::

    <model>/
      model.json            format, version, elements, descriptor length, network, members (written last)
      weights.pt            state dict of the committee (float64)
      normalization.json    per-element descriptor mean/std, reference energies e_ref, energy scale s_E
      config.yaml           the resolved PotentialConfig (descriptor settings included)
      provenance.json       versions (alml, torch, ase, lammps, numpy, python), git commit, dataset hash,
                            DFT settings hashes of the labels, warm start, creation time
      metrics.json          final train/validation errors of every member (after training)
      learning_curves.png   (after training)
      training/             dataset.npz, member_XX/{checkpoint.pt, best.pt, history.json, split.json}

``model.json`` is written last, so a folder without it is incomplete and is never loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from alml.config import load_config
from alml.descriptors import BispectrumSettings
from alml.nn.folder import (
    CONFIG,
    MODEL_JSON,
    PROVENANCE,
    WEIGHTS,
    write_model_folder,
)
from alml.potential.config import PotentialConfig
from alml.potential.model import NNPotential, Normalization

FORMAT = "alml-nnp"
FORMAT_VERSION = 1
NORMALIZATION = "normalization.json"
TRAINING = "training"


@dataclass(frozen=True)
class TrainedPotential:
    """A loaded model folder: the committee module, its config and provenance."""

    model: NNPotential
    config: PotentialConfig
    path: Path | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> BispectrumSettings:
        return self.config.descriptors

    @property
    def n_members(self) -> int:
        return self.model.n_members


def save_potential(
    path: Path,
    model: NNPotential,
    config: PotentialConfig,
    provenance: dict[str, Any],
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write the model folder (``model.json`` last); return its path."""
    return write_model_folder(
        path, model, config, provenance, {"format": FORMAT, "version": FORMAT_VERSION, **model.spec()},
        {NORMALIZATION: model.normalization().to_dict()}, metrics,
    )


def is_model_folder(path: Path) -> bool:
    return (Path(path) / MODEL_JSON).is_file()


def load_potential(path: Path, dtype: torch.dtype = torch.float64) -> TrainedPotential:
    """Read a model folder written by :func:`save_potential`."""
    path = Path(path)
    if not is_model_folder(path):
        raise FileNotFoundError(f"{path} is not a complete alml model folder (no {MODEL_JSON})")
    spec = json.loads((path / MODEL_JSON).read_text())
    if spec.get("format") != FORMAT or int(spec.get("version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported model format {spec.get('format')} v{spec.get('version')}")
    model = NNPotential.from_spec(spec).to(torch.float64)
    model.load_state_dict(torch.load(path / WEIGHTS, weights_only=True))
    norm = Normalization.from_dict(json.loads((path / NORMALIZATION).read_text()))
    model.set_normalization(norm)
    model = model.to(dtype).eval()
    config = load_config(PotentialConfig, path / CONFIG)
    prov = json.loads((path / PROVENANCE).read_text()) if (path / PROVENANCE).is_file() else {}
    return TrainedPotential(model=model, config=config, path=path, provenance=prov)
