"""Training data for the ML-DFT surrogate: per snapshot, the LDOS and grid descriptors, in HDF5.

For each snapshot (extxyz / ASE db frames, or MD snapshots as :class:`ase.Atoms`), in its own work directory
``<root>/<job>/``:

- ``ldos.h5``: the LDOS on QE's FFT grid and everything needed to check it (:mod:`alml.data.grids`), made by
  :func:`alml.dft.ldos.compute_ldos` at the snapshot's electronic temperature (``info['temperature']``);
- ``descriptors.h5``: the bispectrum descriptors on the same grid (:func:`alml.descriptors.write_grid_h5`).

Snapshots run in parallel through the executor (cores split between concurrent snapshots and their MPI
ranks); each step is resumable and a finished snapshot is skipped. ``<root>/manifest.json`` lists the files.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Literal

from ase import Atoms
from pydantic import Field

from alml.compute import ExecutorConfig, make_executor, run_batch
from alml.config import Config
from alml.data.grids import LdosFile
from alml.descriptors.settings import MALA_AL, BispectrumSettings
from alml.dft.ldos import (
    LDOS_FILE,
    LdosSettings,
    compute_ldos,
    dft_at_temperature,
    ldos_job,
    snapshot_temperature,
)
from alml.dft.ppx import PpProfile
from alml.dft.settings import DFTSettings, PwProfile
from alml.io import atomic_write_json
from alml.surrogate.snapshots import DESCRIPTORS_FILE

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"


class TrainingDataConfig(Config):
    """What to compute for each snapshot. ``temperature`` (K) is used for snapshots without one in ``info``."""

    dft: DFTSettings = Field(default_factory=lambda: DFTSettings(forces=False))
    ldos: LdosSettings = Field(default_factory=LdosSettings)
    descriptors: BispectrumSettings | None = Field(default=MALA_AL, description="None: no descriptors")
    temperature: float | None = Field(298.0, gt=0, description="K, for snapshots without info['temperature']")
    root: str = "runs/mldft"
    descriptor_dtype: Literal["float32", "float64"] = "float32"


@dataclass(frozen=True)
class SnapshotOutcome:
    """One snapshot of a batch: status "done", "reused" (all files were there) or "failed"."""

    index: int
    status: str
    temperature: float | None = None
    ldos: str | None = None
    descriptors: str | None = None
    wall_time: float | None = None
    error: str | None = None


def descriptors_valid(path: Path, shape: tuple[int, int, int], n_components: int) -> bool:
    """True if ``path`` is a complete descriptor file of the given grid shape."""
    import h5py

    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            return f["descriptors"].shape == (*shape, n_components)
    except Exception:
        return False


def make_snapshot(
    atoms: Atoms,
    config: TrainingDataConfig,
    pw_profile: PwProfile | None = None,
    pp_profile: PpProfile | None = None,
) -> tuple[Path, Path | None, bool]:
    """LDOS and descriptor files of one snapshot: (ldos.h5, descriptors.h5 or None, reused)."""
    from alml.descriptors import write_grid_h5

    pw_profile = pw_profile or PwProfile()
    temperature = snapshot_temperature(atoms, config.temperature)
    root = Path(config.root)
    job_dir = root / ldos_job(atoms, dft_at_temperature(config.dft, temperature), config.ldos)
    reused = (job_dir / LDOS_FILE).is_file()
    ldos_path = compute_ldos(
        atoms, temperature, config.dft, config.ldos, root=root, pw_profile=pw_profile, pp_profile=pp_profile,
        dft_root=root / "dft",
    )
    if config.descriptors is None:
        return ldos_path, None, reused
    with LdosFile(ldos_path) as f:
        shape = f.shape
    desc_path = ldos_path.parent / DESCRIPTORS_FILE
    if descriptors_valid(desc_path, shape, config.descriptors.n_components):
        return ldos_path, desc_path, reused
    write_grid_h5(desc_path, atoms, config.descriptors, shape, workers=pw_profile.ranks,
                  dtype=config.descriptor_dtype)
    return ldos_path, desc_path, False


def _one(
    atoms: Atoms, config: TrainingDataConfig, pw: PwProfile, pp: PpProfile
) -> tuple[Path, Path | None, bool, float]:
    t0 = time.perf_counter()
    ldos, desc, reused = make_snapshot(atoms, config, pw, pp)
    return ldos, desc, reused, time.perf_counter() - t0


def make_training_data(
    snapshots: list[Atoms] | str | Path,
    config: TrainingDataConfig | None = None,
    executor: ExecutorConfig | None = None,
    pw_profile: PwProfile | None = None,
    pp_profile: PpProfile | None = None,
    progress: bool = True,
) -> list[SnapshotOutcome]:
    """LDOS + descriptor files for every snapshot, in parallel; a failed snapshot does not stop the rest.

    ``snapshots``: a list of Atoms, or a file/database any of them can be read from
    (:func:`alml.data.read_structures`). ``profile.ranks`` is set per task by the executor's core plan.
    Updates ``<root>/manifest.json`` (atomically): one entry per finished snapshot, earlier calls' kept.
    """
    from alml.data import read_structures

    config = config or TrainingDataConfig()
    executor = executor or ExecutorConfig()
    frames = read_structures(snapshots) if isinstance(snapshots, str | Path) else list(snapshots)
    pw_profile = pw_profile or PwProfile()
    outcomes: dict[int, SnapshotOutcome] = {}
    runnable: list[int] = []
    for i, a in enumerate(frames):
        try:
            snapshot_temperature(a, config.temperature)
            runnable.append(i)
        except ValueError as err:
            outcomes[i] = SnapshotOutcome(i, "failed", error=str(err))
    with make_executor(executor, n_tasks=max(1, len(runnable))) as ex:
        pw = pw_profile.model_copy(update={"ranks": ex.ranks_per_task})
        pp = (pp_profile or PpProfile()).model_copy(update={"ranks": ex.ranks_per_task})
        fn = partial(_one, config=config, pw=pw, pp=pp)
        results = run_batch(ex, fn, [frames[i] for i in runnable], retries=executor.retries,
                            description=f"LDOS ({ex.workers} x {ex.ranks_per_task} ranks)", progress=progress)
    for i, res in zip(runnable, results):
        t = snapshot_temperature(frames[i], config.temperature)
        if not res.ok:
            outcomes[i] = SnapshotOutcome(i, "failed", t, error=res.error)
            continue
        ldos, desc, reused, wall = res.value
        outcomes[i] = SnapshotOutcome(i, "reused" if reused else "done", t, str(ldos),
                                      None if desc is None else str(desc), wall)
    out = [outcomes[i] for i in range(len(frames))]
    _update_manifest(Path(config.root) / MANIFEST_FILE, config, out)
    return out


def _update_manifest(path: Path, config: TrainingDataConfig, outcomes: list[SnapshotOutcome]) -> None:
    """Add this call's finished snapshots to ``manifest.json``, keeping those of earlier calls (by LDOS file)."""
    old = json.loads(path.read_text()) if path.is_file() else {}
    entries = {e["ldos"]: e for e in old.get("snapshots", []) if e.get("ldos")}
    failed = [asdict(o) for o in outcomes if not o.ldos]
    entries.update({o.ldos: {k: v for k, v in asdict(o).items() if k != "index"} for o in outcomes if o.ldos})
    atomic_write_json(path, {"config": config.model_dump(mode="json"), "snapshots": list(entries.values()),
                             "failed_last_call": failed})
