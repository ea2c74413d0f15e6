"""YAML job files of the ML-DFT commands (``alml surrogate data|train``): one model per job, unknown keys refused.

``data`` job::

    snapshots: runs/md/snapshots.extxyz     # any file alml.data.read_structures reads (info['temperature'] in K)
    data:                                    # TrainingDataConfig: dft, ldos (ladder), descriptors, temperature, root
      root: runs/mldft
      ldos: {emin: -10.0, emax: 5.0, relative_to_fermi: true}
    executor: {workers: 1}
    pw: {ranks: 2}

``train`` job::

    train: [runs/mldft/*/]                   # snapshot folders (ldos.h5 + descriptors.h5), globs allowed
    validation: runs/mldft/<job>/            # one snapshot folder
    model: {network: {hidden: [64, 64]}, members: 4, training: {epochs: 200}}
    output: models/ldos-al

``hpo`` job: ``train:`` and ``validation:`` as above, ``hpo:`` an :class:`~alml.surrogate.hpo.HpoConfig`
(trials, epochs, search space, ``base`` model config), ``output:`` the folder of ``hpo.db`` and the results.
"""

from __future__ import annotations

import glob
from pathlib import Path

from pydantic import Field

from alml.compute import ExecutorConfig
from alml.config import Config
from alml.dft.ppx import PpProfile
from alml.dft.settings import PwProfile
from alml.surrogate.data import TrainingDataConfig
from alml.surrogate.hpo import HpoConfig
from alml.surrogate.model import LdosModelConfig


class DataJob(Config):
    """``alml surrogate data``: LDOS + grid descriptors for every snapshot."""

    snapshots: str = Field(description="structures file (extxyz, ASE db, ...); temperatures in info['temperature']")
    data: TrainingDataConfig = Field(default_factory=TrainingDataConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    pw: PwProfile = Field(default_factory=PwProfile)
    pp: PpProfile = Field(default_factory=PpProfile)


class TrainJob(Config):
    """``alml surrogate train``: an LDOS committee from snapshot folders."""

    train: list[str] = Field(min_length=1, description="snapshot folders (globs allowed)")
    validation: str = Field(description="the validation snapshot folder")
    model: LdosModelConfig = Field(default_factory=LdosModelConfig)
    output: Path = Field(Path("models/ldos"), description="model folder to write")


class HpoJob(Config):
    """``alml surrogate hpo``: an Optuna search on snapshot folders (study in ``hpo.storage``, default SQLite)."""

    train: list[str] = Field(min_length=1, description="snapshot folders (globs allowed)")
    validation: str = Field(description="the validation snapshot folder")
    hpo: HpoConfig = Field(default_factory=HpoConfig)
    output: Path = Field(Path("runs/hpo"), description="folder for hpo.db, trials and best_config.yaml")


def snapshot_dirs(patterns: list[str], base: Path | None = None) -> list[Path]:
    """Expand folder patterns (relative to ``base``) to snapshot folders, sorted, each holding ldos.h5.

    Raises ValueError naming the pattern that matched nothing or the folder that is not a snapshot.
    """
    from alml.surrogate.snapshots import LDOS_FILE

    out: list[Path] = []
    for pat in patterns:
        p = pat if base is None or Path(pat).is_absolute() else str(base / pat)
        hits = sorted(Path(h) for h in glob.glob(p)) or ([Path(p)] if Path(p).exists() else [])
        if not hits:
            raise ValueError(f"snapshot pattern {pat!r} matches nothing")
        for h in hits:
            if not (h / LDOS_FILE).is_file():
                raise ValueError(f"{h} is not a snapshot folder (no {LDOS_FILE}); make one with `alml surrogate data`")
            out.append(h)
    return out
