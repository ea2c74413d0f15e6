"""An MD job from YAML: model + start structure + engine."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from ase import Atoms
from pydantic import Field

from alml.config import Config
from alml.potential.md.ase_md import run_ase_md
from alml.potential.md.common import SUMMARY, LammpsRunConfig, MDConfig, MDResult
from alml.potential.md.lammps_md import available_memory, memory_limit, mliap_memory_estimate, run_lammps_md

log = logging.getLogger(__name__)


class StartStructure(Config):
    """Where the MD starts: a structure file (``file``, frame ``index``), or a lattice built here."""

    file: Path | None = Field(None, description="any ASE-readable file (extxyz, traj, POSCAR, ...)")
    index: int = Field(-1, description="frame of file")
    lattice: str = Field("fcc", description="when no file: fcc, bcc, hcp, sc, diamond")
    element: str = "Al"
    a: float | None = Field(None, gt=0, description="lattice constant, Å (None: the element's reference)")
    cubic: bool = True
    repeat: int | tuple[int, int, int] = Field(3, description="supercell repeats")
    rattle: float = Field(0.0, ge=0, description="Gaussian displacement std, Å")
    seed: int = 0

    def build(self) -> Atoms:
        from alml import structures as st

        if self.file is not None:
            from ase.io import read

            atoms = read(self.file, index=self.index)
        else:
            atoms = st.supercell(st.bulk(self.element, self.lattice, a=self.a, cubic=self.cubic), self.repeat)
        if self.rattle > 0:
            atoms = st.rattle(atoms, self.rattle, seed=self.seed)
        return atoms


class MDJob(Config):
    """``alml potential md`` input. YAML example::

        model: models/al-v1            # model folder (committee)
        engine: ase                    # ase (committee, uncertainty logged) or lammps (exported model, MPI)
        structure: {lattice: fcc, a: 4.04, repeat: 3}     # or {file: start.extxyz, index: -1}
        md: {ensemble: nvt, temperature: 600, steps: 2000, timestep: 1.0, log_every: 10, traj_every: 50}
        lammps: {ranks: 2}             # engine lammps only
        output: runs/md/nvt-600
        threads: 1                     # torch threads (engine ase)
    """

    model: Path = Field(description="model folder")
    engine: Literal["ase", "lammps"] = "ase"
    structure: StartStructure = Field(default_factory=StartStructure)
    md: MDConfig = Field(default_factory=MDConfig)
    lammps: LammpsRunConfig = Field(default_factory=LammpsRunConfig)
    output: Path = Field(Path("runs/md"), description="output folder")
    threads: int = Field(1, ge=1, description="torch threads for the ASE engine")


def run_md_job(job: MDJob, *, progress: bool = True) -> MDResult:
    """Load the model, build the start structure, run the job's engine; write the resolved job too."""
    from alml.config import dump_config

    atoms = job.structure.build()
    job.output.mkdir(parents=True, exist_ok=True)
    dump_config(job, job.output / "md_job.yaml")
    if job.engine == "ase":
        from alml.potential.calculator import NNCalculator
        from alml.runtime import set_threads

        set_threads(job.threads)
        calc = NNCalculator(job.model)
        return run_ase_md(atoms, calc, job.md, job.output, progress=progress,
                          title=f"{job.model.name}: ASE {job.md.ensemble}, {len(atoms)} atoms")
    from alml.potential.lammps_export import export_lammps

    ex = export_lammps(job.model, job.output / "potential", member=job.lammps.member)
    from alml.potential.lammps_export import _descriptor_cutoff

    need = mliap_memory_estimate(atoms, ex.model_file, _descriptor_cutoff(ex.descriptor_file), job.lammps.skin,
                                 job.lammps.ranks)
    if need.largest_allocation > memory_limit():
        raise ValueError(
            f"LAMMPS ML-IAP would allocate ~{need.largest_allocation / 1e9:.0f} GB per rank for {len(atoms)} atoms on "
            f"{job.lammps.ranks} rank(s) (its neighbour copy grows as the square of the atoms per rank), more than "
            f"memory + swap ({memory_limit() / 1e9:.0f} GB): use more ranks"
        )
    if need.resident > 0.8 * available_memory():
        log.warning("LAMMPS ML-IAP will need ~%.1f GB for its per-atom gradient array, more than is free (%.1f GB):"
                    " export one member (lammps.member: 0) or use more nodes", need.resident / 1e9,
                    available_memory() / 1e9)
    return run_lammps_md(atoms, ex.commands(), ex.elements, job.md, job.output, run=job.lammps, progress=progress,
                         title=f"{job.model.name}: LAMMPS {job.md.ensemble}, {len(atoms)} atoms, "
                               f"{job.lammps.ranks} rank(s)")


def summary(out_dir: str | Path) -> dict[str, Any]:
    """The ``summary.json`` of a finished run (FileNotFoundError for an unfinished one)."""
    return json.loads((Path(out_dir) / SUMMARY).read_text())
