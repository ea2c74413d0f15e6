"""Validate a pseudopotential with pw.x: fcc E(V) scan (a₀, B) and a cutoff-convergence scan.

Targets (PBE, fcc Al): a₀ within 1 % of 4.04 Å, B within 10 % of 77 GPa at the default cutoff, and
the default cutoff converged to 1 meV/atom in energy differences (E(a_small) − E(a_large)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase.build import bulk

from alml.dft.settings import DFTSettings, PwProfile
from alml.dft.tasks import label
from alml.validate.eos import fit_eos

A0_REF, B_REF = 4.04, 77.0  # PBE literature values for fcc Al


@dataclass(frozen=True)
class PseudoReport:
    lattice_constants: list[float]  #: Å, scanned
    energies: list[float]  #: eV/atom (free energy)
    a0: float  #: Å
    bulk_modulus: float  #: GPa
    a0_error_pct: float
    b_error_pct: float
    cutoffs: list[float]  #: ecutwfc scanned, Ry
    delta_e: list[float]  #: E(a_lo) − E(a_hi) at each cutoff, meV/atom
    delta_e_error: list[float]  #: relative to the highest cutoff, meV/atom
    default_cutoff: float
    default_cutoff_error: float  #: meV/atom
    passed: bool

    def as_dict(self) -> dict:
        return asdict(self)


def validate_pseudopotential(
    settings: DFTSettings | None = None,
    profile: PwProfile | None = None,
    root: str | Path = "runs/dft",
    lattice_constants: np.ndarray | None = None,
    cutoffs: tuple[float, ...] = (30.0, 40.0, 50.0, 60.0, 80.0),
    pair: tuple[float, float] = (3.95, 4.12),
    progress: Callable[[str], None] | None = None,
) -> PseudoReport:
    """Run the E(V) and cutoff scans (reusing finished pw.x runs) and compare with the targets."""
    settings = settings or DFTSettings()
    profile = profile or PwProfile()
    alats = np.linspace(3.92, 4.16, 7) if lattice_constants is None else np.asarray(lattice_constants)
    say = progress or (lambda _msg: None)

    energies = []
    for a in alats:
        say(f"E(V): a = {a:.3f} Å")
        energies.append(label(bulk("Al", "fcc", a=float(a)), settings, profile, root).free_energy)
    vols = alats**3 / 4.0
    fit = fit_eos(vols, np.array(energies))
    a0 = fit.lattice_constant(4)

    cut = sorted({*cutoffs, settings.ecutwfc})
    delta = []
    for ec in cut:
        say(f"cutoff scan: ecutwfc = {ec:g} Ry")
        s = settings.model_copy(update={"ecutwfc": ec, "ecutrho": None})
        e_lo, e_hi = (label(bulk("Al", "fcc", a=a), s, profile, root).free_energy for a in pair)
        delta.append(1000.0 * (e_lo - e_hi))
    err = [d - delta[-1] for d in delta]
    default_err = err[cut.index(settings.ecutwfc)]
    a_err = 100 * (a0 - A0_REF) / A0_REF
    b_err = 100 * (fit.bulk_modulus - B_REF) / B_REF
    return PseudoReport(
        lattice_constants=[float(a) for a in alats],
        energies=[float(e) for e in energies],
        a0=a0,
        bulk_modulus=fit.bulk_modulus,
        a0_error_pct=a_err,
        b_error_pct=b_err,
        cutoffs=[float(c) for c in cut],
        delta_e=delta,
        delta_e_error=err,
        default_cutoff=settings.ecutwfc,
        default_cutoff_error=default_err,
        passed=abs(a_err) <= 1.0 and abs(b_err) <= 10.0 and abs(default_err) <= 1.0,
    )
