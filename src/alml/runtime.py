"""Process-wide runtime settings: thread counts and where alml keeps generated files.

Oversubscribing two cores makes PyTorch ~10x slower, so threads are set deliberately.
"""

from __future__ import annotations

import os
from pathlib import Path


def alml_home() -> Path:
    """Folder for generated, reusable files (pseudopotentials, caches): ``$ALML_HOME`` or ~/.cache/alml."""
    return Path(os.environ.get("ALML_HOME", Path.home() / ".cache" / "alml"))


def set_threads(n: int | None = None) -> int:
    """Set OpenMP/BLAS/PyTorch threads to ``n`` (default: all cores); return the number used."""
    n = n or os.cpu_count() or 1
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return n
