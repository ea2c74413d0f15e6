"""LDOS on the FFT grid from pw.x's wavefunctions (natively, or with pp.x), one HDF5 file per snapshot.

Steps for one snapshot (each resumable; a work directory named by the hash of its inputs):

1. pw.x SCF with Fermi–Dirac smearing at the snapshot's electronic temperature (:func:`alml.dft.tasks.label`,
   ``keep_outdir=True``); pw.x's ``out/`` moves into the LDOS work directory and the SCF's XML is kept as
   ``scf.xml`` (QE's eigenvalues, occupations and band energy: the reference).
2. An nscf, only when needed: with more bands when the SCF's bands do not cover the ladder (the LDOS would
   miss states near its top), and with Gaussian smearing when ``kernel: gaussian`` (pp.x broadens with the
   smearing function of the run it reads). ``scf_bands_per_atom`` gives the SCF enough bands itself instead:
   on 32-atom Al snapshots a whole snapshot took 37–43 % less pw.x CPU this way (docs/benchmarks.md, "LDOS
   snapshot cost"). The count needed depends on density: a liquid needs more bands per atom than the solid.
3. ``engine: native`` (default; :mod:`alml.dft.ldos_native`): the LDOS straight from ``out/pw.save/wfcN.dat``,
   each k-point read once (norm-conserving only). ``engine: ppx`` (:mod:`alml.dft.ppx`): pp.x, one cube file
   per energy. The two agree to the cubes' 5 digits (tests/test_ldos.py).
4. ``ldos.h5`` (:mod:`alml.data.grids`) is written atomically; then the cubes, pp.x's files and ``out/`` go.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms
from filelock import FileLock
from pydantic import Field, model_validator

from alml.config import Config
from alml.data.grids import EnergyLadder, Kernel, LdosMeta, QEReference, is_valid_ldos_h5
from alml.dft.errors import DFTCrashError, DFTError
from alml.dft.ldos_native import write_native_ldos_h5
from alml.dft.ppx import PpProfile, cubes_to_h5, pp_stage, run_qe
from alml.dft.settings import DFTSettings, PwProfile
from alml.dft.tasks import DFTResult, label, settings_hash
from alml.dft.wavefunctions import read_charge_density as read_charge_density  # moved; re-exported
from alml.io import atomic_write_json, sha256_json
from alml.structures import structure_hash
from alml.units import HARTREE, RYDBERG

log = logging.getLogger(__name__)

LDOS_FILE = "ldos.h5"
#: a missing state this many kernel widths above the ladder's top changes it by < 1e-4 (relative)
_COMPLETE_TAIL = {"fermi-dirac": 9.0, "gaussian": 3.0}


class LdosSettings(Config):
    """The energy ladder and broadening of the LDOS. Energies in eV.

    ``reference: fermi`` puts ``emin``/``emax`` relative to QE's Fermi level; with ``align`` the ladder's first
    energy is then snapped down to a multiple of ``spacing`` so that the ladders of all snapshots lie on one
    global grid. ``reference: absolute`` takes them as QE's absolute energies.

    The kernel-aware observables (:mod:`alml.surrogate.observables`) recover exact QE values only when the
    ladder samples the kernel well: Fermi–Dirac (``kernel: scf``) with broadening ≈ 0.5–1 × spacing, or
    Gaussian (``kernel: gaussian``, one extra nscf) with broadening ≈ 2 × spacing (MALA's 0.2 eV on 0.1 eV).
    A kernel much wider than that loses information; one much narrower is undersampled. Both are refused.

    The spacing must also resolve the Fermi function: at 298 K (k_B T = 26 meV) the default 0.05 eV ladder
    (σ = 0.035 eV, Fermi–Dirac, ~270 energies from μ − 12 to μ + 1.5 eV: as many as MALA's 0.1 eV ladder over
    25 eV) reproduces QE to ≤ 0.06 meV/atom in every term on a symmetry-free cell; a 0.1 eV ladder (σ 0.07 eV,
    half the energies and file size) leaves up to ~0.8 meV/atom in single terms there (the Fermi window is
    unresolved; docs/benchmarks.md). At higher temperatures 0.1 eV is as good.
    """

    reference: Literal["fermi", "absolute"] = "fermi"
    emin: float = Field(-12.0, description="lowest energy, eV; must lie several widths below the band bottom")
    emax: float = Field(1.5, description="highest energy, eV; the Fermi function must vanish well below it")
    spacing: float = Field(0.05, gt=0, description="ladder spacing (pp.x delta_e), eV")
    broadening: float = Field(0.035, gt=0, description="pp.x degauss_ldos, eV")
    kernel: Literal["scf", "gaussian"] = Field(
        "scf", description="scf: the SCF's Fermi-Dirac smearing function; gaussian: nscf with Gaussian smearing first"
    )
    align: bool = True
    complete_bands: bool = Field(True, description="run an nscf with more bands when the SCF's do not cover the ladder")
    scf_bands_per_atom: float | None = Field(
        None, gt=0, description="bands per atom for the SCF itself (e.g. 2.5 for Al up to E_F + 2 eV): when they "
        "cover the ladder no nscf is needed, which is cheaper; None: pw.x's default bands, then an nscf"
    )
    engine: Literal["native", "ppx"] = Field("native", description="native: from the wavefunctions; ppx: pp.x")
    dtype: Literal["float32", "float64"] = "float32"
    keep_outdir: bool = Field(False, description="keep pw.x's out/ (wavefunctions) after conversion")

    @model_validator(mode="after")
    def _check(self) -> LdosSettings:
        if self.emax <= self.emin + self.spacing:
            raise ValueError(f"emax ({self.emax}) must exceed emin ({self.emin}) by more than one spacing")
        r = self.broadening / self.spacing
        lo, hi = (0.3, 1.5) if self.kernel == "scf" else (0.8, 4.0)
        if not lo <= r <= hi:
            kind = "Fermi-Dirac" if self.kernel == "scf" else "Gaussian"
            raise ValueError(
                f"broadening/spacing = {r:.2f} is outside [{lo}, {hi}] for the {kind} kernel: the observables "
                "cannot be recovered exactly from such a ladder (too wide loses information, too narrow is "
                f"undersampled); e.g. spacing 0.1 with broadening {0.07 if self.kernel == 'scf' else 0.2}"
            )
        return self

    @property
    def kernel_function(self) -> Kernel:
        return "gaussian" if self.kernel == "gaussian" else "fermi-dirac"

    def ladder(self, fermi_level: float) -> EnergyLadder:
        """The absolute ladder for a snapshot whose QE Fermi level is ``fermi_level`` (eV)."""
        lo, hi = self.emin, self.emax
        if self.reference == "fermi":
            lo, hi = lo + fermi_level, hi + fermi_level
            if self.align:
                lo = math.floor(lo / self.spacing + 1e-9) * self.spacing
        n = int(math.floor((hi - lo) / self.spacing + 1e-9)) + 1
        return EnergyLadder.uniform(lo, self.spacing, n, self.broadening, self.kernel_function)


# --- QE files --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QEBands:
    """Kohn–Sham eigenvalues and more from pw.x's XML (``data-file-schema.xml``), in eV."""

    eigenvalues: np.ndarray  #: (n_k, n_bands) eV
    k_weights: np.ndarray  #: (n_k,), summing to 2 (spin included)
    occupations: np.ndarray  #: (n_k, n_bands) in [0, 1]
    fermi_level: float
    band_energy: float  #: QE's eband = Σ_k w_k Σ_n f_nk ε_nk
    n_electrons: float
    totals: dict[str, float]  #: XML <total_energy> entries in eV (etot, eband, ehart, vtxc, etxc, ewald, demet)

    @property
    def complete_below(self) -> float:
        """Every state below this energy (eV) is among the computed bands: min over k of the highest band."""
        return float(self.eigenvalues[:, -1].min())


def read_qe_xml(path: str | Path) -> QEBands:
    """Parse eigenvalues, weights, occupations, Fermi level and energy totals from pw.x's XML output."""
    root = ET.parse(path).getroot()
    bs = root.find("output/band_structure")
    if bs is None:
        raise DFTError(f"{path} has no output/band_structure")
    ks = bs.findall("ks_energies")
    w = np.array([float(k.find("k_point").get("weight")) for k in ks])  # type: ignore[union-attr]
    e = np.array([k.find("eigenvalues").text.split() for k in ks], dtype=float) * HARTREE  # type: ignore[union-attr]
    f = np.array([k.find("occupations").text.split() for k in ks], dtype=float)  # type: ignore[union-attr]
    ef = bs.find("fermi_energy")
    if ef is None:
        raise DFTError(f"{path} has no Fermi energy (not a smearing run?)")
    totals = {}
    te = root.find("output/total_energy")
    if te is not None:
        totals = {c.tag: float(c.text) * HARTREE for c in te if c.text}  # type: ignore[arg-type]
    nelec = float(bs.find("nelec").text)  # type: ignore[union-attr]
    return QEBands(
        eigenvalues=e, k_weights=w, occupations=f, fermi_level=float(ef.text) * HARTREE,  # type: ignore[arg-type]
        band_energy=float(np.sum(w[:, None] * f * e)), n_electrons=nelec, totals=totals,
    )


# --- nscf ------------------------------------------------------------------------------------------


def bands_needed(eigenvalues: np.ndarray, target: float) -> int:
    """Bands for every state below ``target`` (eV), estimated from a free-electron N(E) ∝ (E − E_0)^{3/2}."""
    nb = eigenvalues.shape[1]
    bottom = float(eigenvalues.min())
    top = float(eigenvalues[:, -1].min())
    if top >= target:
        return nb
    ratio = ((target - bottom) / max(top - bottom, 1e-6)) ** 1.5
    return int(math.ceil(nb * ratio * 1.15)) + 2


def nscf_input(
    scf_input: str,
    nbnd: int,
    smearing: str | None = None,
    degauss_ry: float | None = None,
    diagonalization: str | None = None,
) -> str:
    """An nscf input made from pw.x's SCF input text: same k-points, ``nbnd`` bands, optionally new smearing
    and diagonalisation (``cg`` when Davidson fails)."""
    text = re.sub(r"calculation\s*=\s*'scf'", "calculation = 'nscf'", scf_input)
    if "calculation = 'nscf'" not in text:
        raise DFTError("SCF input has no calculation = 'scf' line to turn into nscf")
    system = [f"   nbnd = {int(nbnd)}"]
    text = re.sub(r"\n\s*nbnd\s*=\s*[^\n]*", "", text)  # the SCF's own, when it had some bands set
    if smearing is not None:
        text = re.sub(r"\n\s*smearing\s*=\s*'[^']*'", "", text)
        system.append(f"   smearing = '{smearing}'")
    if degauss_ry is not None:
        text = re.sub(r"\n\s*degauss\s*=\s*[^\n]*", "", text)
        system.append(f"   degauss = {degauss_ry!r}")
    text = re.sub(r"&SYSTEM\n", "&SYSTEM\n" + "\n".join(system) + "\n", text, count=1)
    electrons = "   diago_full_acc = .true.\n"
    if diagonalization is not None:
        electrons += f"   diagonalization = '{diagonalization}'\n"
    return re.sub(r"&ELECTRONS\n", "&ELECTRONS\n" + electrons, text, count=1)


def run_nscf(workdir: Path, scf_input: str, nbnd: int, profile: PwProfile, gaussian_ry: float | None) -> QEBands:
    """Run an nscf in ``workdir`` (``out/`` and ``pseudo/`` there); return its bands.

    Davidson first; if it fails (QE 6.7's "S matrix not positive definite" in cdiaghg happens with many empty
    bands on low-symmetry cells), once more with conjugate gradients.
    """
    smearing = "gaussian" if gaussian_ry is not None else None
    for diag in (None, "cg"):
        (workdir / "nscf.in").write_text(nscf_input(scf_input, nbnd, smearing, gaussian_ry, diag))
        try:
            run_qe(profile.command("nscf.in"), workdir, "nscf.out", profile.environment(), profile.timeout,
                 "pw.x nscf")
            break
        except DFTCrashError as err:
            if diag is not None:
                raise
            log.warning("nscf with Davidson failed in %s, retrying with cg: %s", workdir, str(err)[-200:])
            (workdir / "CRASH").unlink(missing_ok=True)
    return read_qe_xml(workdir / "out" / "pw.save" / "data-file-schema.xml")


# --- one snapshot, end to end ------------------------------------------------------------------------


def ldos_settings_hash(ldos: LdosSettings) -> str:
    """Hash of what changes the LDOS: not dtype, keep_outdir, engine (the engines agree to 5 digits) or where the
    bands come from (``scf_bands_per_atom``: the SCF or an nscf on its density)."""
    exclude = {"dtype", "keep_outdir", "engine", "scf_bands_per_atom"}
    return sha256_json(ldos.model_dump(mode="json", exclude=exclude))[:16]


def snapshot_temperature(atoms: Atoms, default: float | None = None) -> float:
    """Electronic temperature (K) of a snapshot: ``info['electronic_temperature']`` or ``info['temperature']``."""
    for key in ("electronic_temperature", "temperature"):
        if key in atoms.info:
            return float(atoms.info[key])
    if default is None:
        raise ValueError("snapshot has no info['temperature'] and no default temperature was given")
    return float(default)


def ldos_job(atoms: Atoms, dft: DFTSettings, ldos: LdosSettings) -> str:
    """Name of the LDOS work directory: a hash of structure, DFT settings (with T) and ladder."""
    payload = {"structure": structure_hash(atoms), "dft": settings_hash(dft), "ldos": ldos_settings_hash(ldos)}
    return sha256_json(payload)[:20]


def dft_at_temperature(dft: DFTSettings, temperature: float) -> DFTSettings:
    """``dft`` with Fermi–Dirac smearing at ``temperature`` K (degauss = k_B T)."""
    data = dft.model_dump()
    data.pop("smearing", None)
    data["electronic_temperature"] = float(temperature)
    return DFTSettings.model_validate(data)


def compute_ldos(
    atoms: Atoms,
    temperature: float,
    dft: DFTSettings | None = None,
    ldos: LdosSettings | None = None,
    root: str | Path = "runs/ldos",
    pw_profile: PwProfile | None = None,
    pp_profile: PpProfile | None = None,
    dft_root: str | Path | None = None,
) -> Path:
    """Compute (or reuse) the LDOS file of one snapshot at electronic ``temperature`` (K); return its path.

    The result is ``<root>/<job>/ldos.h5``; an existing valid file is returned at once. An interrupted run
    resumes from the last finished step (SCF, nscf, pp.x).
    """
    dft = dft_at_temperature(dft or DFTSettings(), temperature)
    ldos = ldos or LdosSettings()
    pw_profile = pw_profile or PwProfile()
    pp_profile = pp_profile or PpProfile(ranks=pw_profile.ranks, threads=pw_profile.threads)
    workdir = Path(root) / ldos_job(atoms, dft, ldos)
    workdir.mkdir(parents=True, exist_ok=True)
    h5 = workdir / LDOS_FILE
    with FileLock(str(workdir / ".lock")):
        if is_valid_ldos_h5(h5):
            return h5
        if ldos.scf_bands_per_atom is not None:  # same job names: nbnd is in neither hash
            dft = dft.model_copy(update={"nbnd": math.ceil(ldos.scf_bands_per_atom * len(atoms))})
        result = _scf_stage(atoms, dft, pw_profile, workdir, Path(dft_root) if dft_root else Path(root) / "dft")
        scf = read_qe_xml(workdir / "scf.xml")
        ladder = ldos.ladder(scf.fermi_level)
        check_ladder_bottom(ladder, float(scf.eigenvalues.min()))
        bands = _nscf_stage(workdir, scf, ladder, ldos, pw_profile)
        meta = LdosMeta(
            atoms=atoms.copy(),
            ladder=ladder,
            shape=tuple(result.fft_grid),  # type: ignore[arg-type]
            temperature=float(temperature),
            n_electrons=scf.n_electrons,
            ecutrho=dft.ecutrho_ry * RYDBERG,
            complete_below=bands.complete_below,
            reference=QEReference(
                fermi_level=scf.fermi_level,
                band_energy=scf.band_energy,
                free_energy=result.free_energy,
                energy=result.energy,
                n_electrons=scf.n_electrons,
                terms=dict(result.terms),
                eigenvalues=scf.eigenvalues,
                k_weights=scf.k_weights,
                occupations=scf.occupations,
            ),
            provenance={**result.provenance, "dft_job": result.job, "settings_hash": result.settings_hash,
                        "ldos_settings": ldos.model_dump(mode="json"), "ldos_engine": ldos.engine},
        )
        if ldos.engine == "ppx":
            cubes_to_h5(pp_stage(workdir, ladder, pp_profile), meta, h5, ldos.dtype)
        else:
            write_native_ldos_h5(workdir / "out" / "pw.save", meta, h5, bands.eigenvalues, bands.k_weights, ldos.dtype)
        _cleanup(workdir, keep_outdir=ldos.keep_outdir)
    return h5


def check_ladder_bottom(ladder: EnergyLadder, band_bottom: float) -> None:
    """Refuse a ladder that does not start ≥ 5 kernel standard deviations below the lowest eigenvalue (eV)."""
    std = ladder.broadening * (1 / math.sqrt(2) if ladder.kernel == "gaussian" else math.pi / math.sqrt(3))
    if ladder.emin > band_bottom - 5 * std:
        raise ValueError(
            f"the LDOS ladder starts at {ladder.emin:.3f} eV but the lowest state is at {band_bottom:.3f} eV: "
            f"lower ldos.emin by at least {ladder.emin - band_bottom + 5 * std:.2f} eV (states must lie several "
            "broadening widths above the ladder's first energy)"
        )


def _scf_stage(atoms: Atoms, dft: DFTSettings, profile: PwProfile, workdir: Path, dft_root: Path) -> DFTResult:
    done = workdir / "dft.json"
    if done.is_file() and (workdir / "out").is_dir() and (workdir / "scf.xml").is_file():
        return DFTResult.from_json(json.loads(done.read_text()), reused=True)
    result = label(atoms, dft, profile, dft_root, keep_outdir=True)
    src = Path(result.workdir)
    shutil.rmtree(workdir / "out", ignore_errors=True)
    shutil.rmtree(workdir / "pseudo", ignore_errors=True)
    shutil.move(str(src / "out"), str(workdir / "out"))
    shutil.copytree(src / "pseudo", workdir / "pseudo")
    shutil.copy(src / "pw.in", workdir / "scf.in")
    shutil.copy(workdir / "out" / "pw.save" / "data-file-schema.xml", workdir / "scf.xml")
    for stale in ("nscf.json", "pp.json"):
        (workdir / stale).unlink(missing_ok=True)
    atomic_write_json(done, result.to_json())
    return result


def _nscf_stage(workdir: Path, scf: QEBands, ladder: EnergyLadder, ldos: LdosSettings, profile: PwProfile) -> QEBands:
    marker = workdir / "nscf.json"
    if marker.is_file():
        return read_qe_xml(workdir / "out" / "pw.save" / "data-file-schema.xml")
    target = ladder.emax + _COMPLETE_TAIL[ladder.kernel] * ladder.broadening
    gaussian_ry = ladder.broadening / RYDBERG if ldos.kernel == "gaussian" else None
    bands, nbnd = scf, scf.eigenvalues.shape[1]
    need = ldos.complete_bands and scf.complete_below < target
    if need or gaussian_ry is not None:
        scf_in = (workdir / "scf.in").read_text()
        for _ in range(3):
            if ldos.complete_bands:
                nbnd = max(nbnd, bands_needed(bands.eigenvalues, target))
            bands = run_nscf(workdir, scf_in, nbnd, profile, gaussian_ry)
            if not ldos.complete_bands or bands.complete_below >= target:
                break
            log.info("nscf with %d bands covers up to %.3f eV < %.3f eV: more bands",
                     nbnd, bands.complete_below, target)
        else:
            raise DFTError(f"nscf with {nbnd} bands still does not cover the ladder up to {target:.3f} eV")
    elif scf.complete_below < target:
        log.warning("the LDOS misses states above %.3f eV (ladder top %.3f eV): complete_bands is off",
                    scf.complete_below, ladder.emax)
    atomic_write_json(marker, {"nbnd": nbnd, "complete_below": bands.complete_below, "kernel": ladder.kernel})
    return bands


def _cleanup(workdir: Path, keep_outdir: bool) -> None:
    """Remove cubes and pp.x's intermediate ``ldosNNN`` files; ``out/`` too unless kept."""
    pat = re.compile(r"^ldos\d+(\.cube)?$")
    for p in workdir.iterdir():
        if pat.match(p.name):
            p.unlink()
    if not keep_outdir:
        shutil.rmtree(workdir / "out", ignore_errors=True)
