"""Shared test set-up: a private ALML_HOME (generated pseudopotentials), deliberate thread counts,
and cheap DFT settings for real pw.x runs on 1–4 atom cells."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Before anything imports alml: generated files go to a throwaway folder, and BLAS/OpenMP/torch
# use one thread each (tests run pw.x and LAMMPS as separate processes beside them).
if "ALML_HOME" not in os.environ:
    os.environ["ALML_HOME"] = tempfile.mkdtemp(prefix="alml-test-home-")
    atexit.register(shutil.rmtree, os.environ["ALML_HOME"], ignore_errors=True)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


@pytest.fixture(scope="session")
def fast_dft():
    """Low-cost pw.x settings: 15 Ry, coarse k, loose enough to run in ~1 s per small cell."""
    from alml.dft.settings import DFTSettings

    return DFTSettings(ecutwfc=15.0, kspacing=0.6, conv_thr_per_atom=1e-10)


@pytest.fixture(scope="session")
def dft_root(tmp_path_factory) -> Path:
    """One work-directory root per test session, so repeated structures are reused across tests."""
    return tmp_path_factory.mktemp("dft-runs")
