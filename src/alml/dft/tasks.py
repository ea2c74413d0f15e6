"""Idempotent DFT jobs: a work directory named by the hash of its inputs; a finished result is reused.

Layout of ``<root>/<hash>/``: ``pw.in``, ``pw.out``, ``pseudo/``, and ``result.json`` — written
atomically and only after a converged, parsed run. A directory without ``result.json`` is unfinished
and is recomputed; a crash never leaves a result that is later read as good.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from filelock import FileLock

from alml import __version__
from alml.dft.espresso import run_pw, validate_structure
from alml.dft.pseudo import checksum, pseudopotential
from alml.dft.settings import DFTSettings, PwProfile
from alml.io import atomic_write_json, sha256_json
from alml.structures import structure_hash

RESULT_FILE = "result.json"


def settings_hash(settings: DFTSettings) -> str:
    """Hash of the physics: the settings plus the checksum of every pseudopotential they may use.

    With an electronic temperature (Fermi–Dirac at k_B·T) ``smearing`` and ``degauss`` are not used, so they
    are left out: a change of their defaults does not rename the finished LDOS runs. ``nbnd`` is left out too:
    bands above pw.x's default are empty and change the cost, not the result."""
    unused = {"smearing", "degauss"} if settings.electronic_temperature is not None else set()
    payload = settings.model_dump(mode="json", exclude={"pseudopotentials", "nbnd", *unused})
    payload["pseudopotentials"] = {
        el: checksum(pseudopotential(el, settings.pseudopotentials))
        for el in sorted({*settings.pseudopotentials, "Al"})
    }
    return sha256_json(payload)[:16]


def job_hash(atoms: Atoms, settings_h: str) -> str:
    return sha256_json({"structure": structure_hash(atoms), "settings": settings_h})[:20]


@dataclass
class DFTResult:
    """A converged pw.x result in eV, Å (see :class:`alml.dft.parse.PwOutput` for the fields)."""

    job: str
    settings_hash: str
    structure_hash: str
    energy: float
    free_energy: float
    forces: np.ndarray | None
    stress: np.ndarray | None
    fermi_level: float | None
    terms: dict[str, float]
    n_iterations: int
    fft_grid: tuple[int, int, int]
    n_kpoints: int
    wall_time: float | None
    workdir: str
    provenance: dict[str, str] = field(default_factory=dict)
    reused: bool = False

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("reused")
        return d

    @classmethod
    def from_json(cls, d: dict, reused: bool = False) -> DFTResult:
        d = dict(d)
        for k in ("forces", "stress"):
            if d.get(k) is not None:
                d[k] = np.asarray(d[k], dtype=float)
        d["fft_grid"] = tuple(d["fft_grid"])
        return cls(**d, reused=reused)

    def to_atoms(self, atoms: Atoms) -> Atoms:
        """A copy of ``atoms`` labelled with this result (SinglePointCalculator) and its metadata in info."""
        a = atoms.copy()
        results = {"energy": self.energy, "free_energy": self.free_energy}
        if self.forces is not None:
            results["forces"] = self.forces
        if self.stress is not None:
            results["stress"] = self.stress
        a.calc = SinglePointCalculator(a, **results)
        a.info.update(dft_job=self.job, settings_hash=self.settings_hash, fermi_level=self.fermi_level)
        return a


def _provenance(settings: DFTSettings, atoms: Atoms, qe_version: str) -> dict[str, str]:
    import ase

    prov = {"alml": __version__, "ase": ase.__version__, "qe": f"pw.x {qe_version}".strip()}
    for el in sorted(set(atoms.get_chemical_symbols())):
        p = pseudopotential(el, settings.pseudopotentials)
        prov[f"pseudo_{el}"] = f"{p.name} sha256:{checksum(p)[:16]}"
    return prov


def load_result(workdir: Path) -> DFTResult | None:
    f = Path(workdir) / RESULT_FILE
    if not f.is_file():
        return None
    return DFTResult.from_json(json.loads(f.read_text()), reused=True)


def label(
    atoms: Atoms,
    settings: DFTSettings | None = None,
    profile: PwProfile | None = None,
    root: str | Path = "runs/dft",
    keep_outdir: bool = False,
    settings_h: str | None = None,
) -> DFTResult:
    """Compute (or reuse) the DFT result for ``atoms``. Raises a :class:`alml.dft.errors.DFTError` on failure.

    ``keep_outdir`` keeps pw.x's ``out/`` folder (charge density, wavefunctions) for post-processing (pp.x).
    """
    settings = settings or DFTSettings()
    profile = profile or PwProfile()
    validate_structure(atoms, settings)
    settings_h = settings_h or settings_hash(settings)
    job = job_hash(atoms, settings_h)
    workdir = Path(root) / job
    workdir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(workdir / ".lock")):
        done = load_result(workdir)
        if done is not None and (not keep_outdir or (workdir / "out").is_dir()):
            return done
        t0 = time.perf_counter()
        out = run_pw(atoms, settings, profile, workdir)
        result = DFTResult(
            job=job,
            settings_hash=settings_h,
            structure_hash=structure_hash(atoms),
            energy=out.energy,
            free_energy=out.free_energy,
            forces=out.forces,
            stress=out.stress,
            fermi_level=out.fermi_level,
            terms=out.terms,
            n_iterations=out.n_iterations,
            fft_grid=out.fft_grid,
            n_kpoints=out.n_kpoints,
            wall_time=out.wall_time or time.perf_counter() - t0,
            workdir=str(workdir),
            provenance=_provenance(settings, atoms, out.qe_version),
        )
        atomic_write_json(workdir / RESULT_FILE, result.to_json())
        if not keep_outdir:
            shutil.rmtree(workdir / "out", ignore_errors=True)
        return result
