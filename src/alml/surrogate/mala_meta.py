"""Metadata of MALA-layout snapshots: the pw.x output MALA keeps beside its arrays, and alml's ``<name>.info.json``.

- :func:`read_qe_output`: structure, electronic temperature, electron count, density cutoff and QE's reference
  values (Fermi level, energies and their terms, band energy from the printed eigenvalues) of a converged pw.x SCF;
- :func:`read_info` / :func:`info_dict`: the exact metadata alml writes on export (MALA ignores the file).

Units: eV, Å, K, as everywhere in alml (pw.x's Ry converted here).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from alml.data.grids import EnergyLadder, LdosFile, QEReference
from alml.descriptors.settings import BispectrumSettings
from alml.units import KB, RYDBERG

INFO_FORMAT = "alml-mala-info"


@dataclass
class SnapshotInfo:
    """What an alml LDOS file needs besides the arrays."""

    atoms: Atoms
    temperature: float  #: K
    n_electrons: float
    ecutrho: float | None = None  #: eV
    fft_grid: tuple[int, int, int] | None = None
    reference: QEReference | None = None
    ladder: EnergyLadder | None = None
    complete_below: float | None = None
    descriptors: BispectrumSettings | None = None


def read_qe_output(path: str | Path, temperature: float | None = None) -> SnapshotInfo:
    """Structure, electronic temperature (K), electron count, density cutoff (eV) and QE's reference values
    (eV) from a converged pw.x SCF output. QE's band energy Σ_k w_k Σ_n f(ε_nk) ε_nk needs the eigenvalues in the
    output (pw.x prints them for up to 100 k-points, or with verbosity='high'); without them it is NaN."""
    import ase.io

    from alml.dft.parse import parse_pw_output

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pw.x output {path} does not exist")
    text = path.read_text(errors="replace")
    atoms = ase.io.read(path, format="espresso-out", index=-1)
    out = parse_pw_output(text, len(atoms))
    if temperature is None:
        m = re.search(r"Fermi-Dirac smearing, width \(Ry\)=\s*([-+0-9.EeDd]+)", text)
        if m is None:
            raise ValueError(
                f"{path}: no Fermi-Dirac smearing width, so no electronic temperature: give temperature (K) in "
                "the import config"
            )
        temperature = float(m.group(1).replace("D", "E").replace("d", "e")) * RYDBERG / KB
    if out.fermi_level is None:
        raise ValueError(f"{path}: pw.x output has no Fermi level (smearing run needed)")
    m = re.search(r"charge density cutoff\s*=\s*([0-9.]+)\s*Ry", text)
    ecutrho = float(m.group(1)) * RYDBERG if m else None
    eig, wk, occ, eband = _band_energy(atoms, out.n_electrons, float(temperature))
    ref = QEReference(
        fermi_level=float(out.fermi_level), band_energy=eband, free_energy=out.free_energy, energy=out.energy,
        n_electrons=out.n_electrons, terms=dict(out.terms), eigenvalues=eig, k_weights=wk, occupations=occ,
    )
    plain = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell[:], pbc=atoms.pbc)
    return SnapshotInfo(plain, float(temperature), out.n_electrons, ecutrho, tuple(out.fft_grid), ref)


def _band_energy(atoms: Atoms, n_electrons: float, temperature: float) -> tuple[Any, Any, Any, float]:
    """Eigenvalues (n_k, n_bands) eV, k weights (sum 2), occupations and Σ w f ε (eV) from the output's bands.

    μ is solved from the printed eigenvalues (Σ w f = N_e) rather than taken from the printed Fermi level: both are
    rounded to 0.1 meV, and the rounded μ leaves ~1e-5 electrons per atom that shift Σ w f ε by ~0.15 meV/atom,
    where the solved μ reproduces QE's band energy (from its XML) to ~0.01 meV/atom.
    """
    from scipy.optimize import brentq

    from alml.surrogate.observables import fermi_function

    try:
        calc = atoms.calc
        if calc.get_number_of_spins() != 1:
            raise ValueError("spin-polarised pw.x output: alml's LDOS files hold spin-summed data only")
        wk = np.asarray(calc.get_k_point_weights(), dtype=float)
        eig = np.array([calc.get_eigenvalues(kpt=k, spin=0) for k in range(len(wk))], dtype=float)
    except (AttributeError, IndexError, TypeError, KeyError):
        return None, None, None, float("nan")
    wk = wk * 2.0 / wk.sum()  # spin included: weights sum to 2, as in alml's QEReference

    def excess(mu: float) -> float:
        return float(np.sum(wk[:, None] * fermi_function(eig, mu, temperature))) - n_electrons

    if not excess(float(eig.min()) - 1.0) < 0 < excess(float(eig.max()) + 1.0):
        return eig, wk, None, float("nan")  # too few bands printed to hold the electrons
    mu = brentq(excess, float(eig.min()) - 1.0, float(eig.max()) + 1.0, xtol=1e-12)
    occ = fermi_function(eig, mu, temperature)
    return eig, wk, occ, float(np.sum(wk[:, None] * occ * eig))


def read_info(path: str | Path) -> SnapshotInfo:
    """Read the ``<name>.info.json`` that :func:`export_mala_snapshot` writes."""
    d = json.loads(Path(path).read_text())
    if d.get("format") != INFO_FORMAT:
        raise ValueError(f"{path} is not an alml MALA info file (format {d.get('format')!r})")
    a = d["atoms"]
    atoms = Atoms(numbers=a["numbers"], positions=a["positions"], cell=a["cell"], pbc=a["pbc"])
    lad = d["ladder"]
    ref = None
    if d.get("qe") is not None:
        q = dict(d["qe"])
        for k in ("eigenvalues", "k_weights", "occupations"):
            q[k] = None if q.get(k) is None else np.asarray(q[k], dtype=float)
        ref = QEReference(**q)
    return SnapshotInfo(
        atoms, float(d["temperature"]), float(d["n_electrons"]), d.get("ecutrho"), None, ref,
        EnergyLadder(np.asarray(lad["energies"], float), float(lad["broadening"]), lad["kernel"]),
        d.get("complete_below"),
        BispectrumSettings.model_validate(d["descriptors"]) if d.get("descriptors") else None,
    )


def info_dict(lf: LdosFile, settings: dict[str, Any] | None) -> dict[str, Any]:
    """The ``<name>.info.json`` of an open LDOS file and its descriptor settings (a dict, or None): structure,
    ladder, temperature, electrons, cutoff, QE's reference and the MALA parameters to set."""
    a, lad = lf.atoms, lf.ladder
    ref = lf.reference
    qe = None
    if ref is not None:
        qe = {k: getattr(ref, k) for k in ("fermi_level", "band_energy", "free_energy", "energy", "n_electrons")}
        qe["terms"] = dict(ref.terms)
        for k in ("eigenvalues", "k_weights", "occupations"):
            v = getattr(ref, k)
            qe[k] = None if v is None else np.asarray(v).tolist()
    mala = {
        "targets.target_type": "LDOS",
        "targets.ldos_gridsize": lad.n,
        "targets.ldos_gridspacing_ev": lad.spacing,
        "targets.ldos_gridoffset_ev": lad.emin,
        "descriptors.descriptors_contain_xyz": True,
    }
    if settings is not None:
        mala.update({"descriptors.descriptor_type": "Bispectrum",
                     "descriptors.bispectrum_twojmax": settings.get("twojmax")})
        if len(settings.get("elements", {})) == 1:
            el = next(iter(settings["elements"].values()))
            mala["descriptors.bispectrum_cutoff"] = 2.0 * settings["rcutfac"] * el["radius"]
    return {
        "format": INFO_FORMAT,
        "version": 1,
        "atoms": {"cell": a.cell[:].tolist(), "positions": a.positions.tolist(), "numbers": a.numbers.tolist(),
                  "pbc": a.pbc.tolist()},
        "ladder": {"energies": lad.energies.tolist(), "broadening": lad.broadening, "kernel": lad.kernel},
        "temperature": lf.temperature,
        "n_electrons": lf.n_electrons,
        "ecutrho": lf.ecutrho,
        "complete_below": lf.complete_below,
        "qe": qe,
        "descriptors": settings,
        "mala_parameters": mala,
        "note": "MALA's LDOS here is pp.x's broadened LDOS: broadening (eV) and kernel are in 'ladder'",
        "source": str(lf.path),
    }


__all__ = ["INFO_FORMAT", "SnapshotInfo", "info_dict", "read_info", "read_qe_output"]
