"""What a pw.x calculation computes (:class:`DFTSettings`) and how it is launched (:class:`PwProfile`).

The split follows ASE's Template/Profile idea: settings change the physics and enter the
work-directory hash; the profile only changes how fast it runs and does not.
"""

from __future__ import annotations

import shutil
from typing import Literal

from pydantic import Field, model_validator

from alml.config import Config
from alml.units import kelvin_to_ry

Smearing = Literal["fermi-dirac", "marzari-vanderbilt", "gaussian", "methfessel-paxton"]


class DFTSettings(Config):
    """Physics of a pw.x SCF run. Cutoffs and smearing width in Ry (QE's own units); k-spacing in 1/Å.

    ``kspacing`` includes the 2π: each direction gets ``ceil(2π|b_i| / kspacing)`` k-points, so cells of
    any shape and size get the same sampling density (0.13 gives 21³ for 1-atom fcc Al, 12³ for the
    4-atom cube, 6³ for the 32-atom cube). Setting ``electronic_temperature`` (K) selects Fermi–Dirac
    smearing with degauss = k_B·T, as the ML-DFT route needs.

    The default cold smearing of 0.05 Ry is chosen for k-convergence (``bench/kmesh_convergence.py``, 4-atom
    fcc cube, error against a 24³ mesh): at the default spacing (12³) the free energy is 0.45 meV/atom off
    with 0.05 Ry but 2.2 meV/atom with 0.02 Ry, whose errors stay above 1 meV/atom up to 15³ (docs/benchmarks.md).
    """

    ecutwfc: float = Field(40.0, gt=0, description="wavefunction cutoff, Ry")
    ecutrho: float | None = Field(None, gt=0, description="density cutoff, Ry; default 4 x ecutwfc")
    smearing: Smearing = "marzari-vanderbilt"
    degauss: float = Field(0.05, gt=0, description="smearing width, Ry")
    electronic_temperature: float | None = Field(None, gt=0, description="K; implies Fermi-Dirac")
    kspacing: float = Field(0.13, gt=0, description="k-point spacing including 2*pi, 1/Angstrom")
    gamma_only: bool = False
    conv_thr_per_atom: float = Field(1e-9, gt=0, description="SCF threshold per atom, Ry")
    mixing_beta: float = Field(0.4, gt=0, le=1)
    electron_maxstep: int = Field(100, ge=1)
    nbnd: int | None = Field(
        None, ge=1, description="Kohn-Sham bands; None: pw.x's default. Empty bands change cost, not results: "
        "not part of the work-directory hash. Never set it below pw.x's default"
    )
    forces: bool = True
    stress: bool = False
    pseudopotentials: dict[str, str] = Field(
        default_factory=dict, description="element -> UPF path; built-in ones are generated when absent"
    )
    min_distance: float = Field(1.0, ge=0, description="refuse structures with atoms closer than this, Å")

    @model_validator(mode="after")
    def _check(self) -> DFTSettings:
        if self.electronic_temperature is not None and self.smearing != "fermi-dirac":
            if "smearing" in self.model_fields_set:
                raise ValueError(
                    "electronic_temperature implies Fermi-Dirac smearing: drop 'smearing' or set it to fermi-dirac"
                )
        if self.ecutrho is not None and self.ecutrho < 4 * self.ecutwfc - 1e-9:
            raise ValueError(f"ecutrho ({self.ecutrho} Ry) must be at least 4 x ecutwfc ({4 * self.ecutwfc} Ry)")
        return self

    @property
    def ecutrho_ry(self) -> float:
        return self.ecutrho if self.ecutrho is not None else 4.0 * self.ecutwfc

    @property
    def smearing_kind(self) -> Smearing:
        return "fermi-dirac" if self.electronic_temperature is not None else self.smearing

    @property
    def degauss_ry(self) -> float:
        if self.electronic_temperature is not None:
            return kelvin_to_ry(self.electronic_temperature)
        return self.degauss


class PwProfile(Config):
    """How pw.x is launched: binary, MPI ranks, k-point pools, OpenMP threads, time limit."""

    pw: str = "pw.x"
    mpirun: str = Field(
        "mpirun.openmpi",
        description="OpenMPI launcher for Debian's QE; the venv's mpirun is MPICH and must not be used",
    )
    ranks: int = Field(1, ge=1)
    pools: int | None = Field(None, ge=1, description="k-point pools (-nk); default: one per rank")
    threads: int = Field(1, ge=1)
    timeout: float | None = Field(3600.0, gt=0, description="seconds; None for no limit")

    def command(self, input_file: str = "pw.in") -> list[str]:
        exe = self.pw
        if shutil.which(exe) is None:
            raise FileNotFoundError(
                f"'{exe}' not found on PATH: install Quantum ESPRESSO (bash scripts/install.sh, "
                "or apt-get install quantum-espresso) or set the profile's 'pw' to its full path"
            )
        cmd = [exe, "-in", input_file]
        if self.ranks > 1:
            launcher = shutil.which(self.mpirun)
            if launcher is None:
                raise FileNotFoundError(
                    f"MPI launcher '{self.mpirun}' not found: apt-get install openmpi-bin, or use ranks: 1"
                )
            cmd = [launcher, "--allow-run-as-root", "-np", str(self.ranks), *cmd]
            cmd += ["-nk", str(self.pools or self.ranks)]
        return cmd

    def environment(self) -> dict[str, str]:
        return {
            "OMP_NUM_THREADS": str(self.threads),
            "OPENBLAS_NUM_THREADS": str(self.threads),
            "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
            "OMPI_ALLOW_RUN_AS_ROOT": "1",
            "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        }
