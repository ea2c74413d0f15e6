"""Parse pw.x (QE 6.7) output text into alml units (eV, Å). Pure functions of the text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from alml.dft.errors import DFTNotConvergedError, DFTParseError
from alml.units import BOHR, RY_PER_BOHR, RYDBERG

_FLOAT = r"[-+]?\d+\.\d*(?:[EeDd][-+]?\d+)?"
_TERM = re.compile(rf"^\s{{5}}([A-Za-z][A-Za-z \-().,=+]*?)\s*=\s*({_FLOAT})\s+Ry\s*$")
#: pw.x energy-term labels -> alml keys
TERM_KEYS = {
    "one-electron contribution": "one_electron",
    "hartree contribution": "hartree",
    "xc contribution": "xc",
    "ewald contribution": "ewald",
    "smearing contrib. (-TS)": "smearing_minus_ts",
    "one-center paw contrib.": "one_center_paw",
    "Dispersion Correction": "dispersion",
}


@dataclass(frozen=True)
class PwOutput:
    """Results of one pw.x SCF run, in eV, eV/Å and eV/Å³ (ASE's stress sign convention, Voigt order)."""

    free_energy: float  #: Mermin free energy F = E - TS ("! total energy"); forces are its gradient
    energy: float  #: internal energy E = F + TS
    forces: np.ndarray | None  #: (N, 3) eV/Å
    stress: np.ndarray | None  #: (6,) eV/Å³, xx yy zz yz xz xy
    fermi_level: float | None  #: eV
    terms: dict[str, float]  #: pw.x's energy terms in eV (one_electron, hartree, xc, ewald, smearing_minus_ts)
    n_iterations: int
    fft_grid: tuple[int, int, int]
    n_kpoints: int  #: irreducible k-points used
    n_electrons: float
    wall_time: float | None  #: s, PWSCF wall time
    qe_version: str = ""
    warnings: list[str] = field(default_factory=list)


def check_converged(text: str) -> int:
    """Number of SCF iterations if pw.x reports convergence; raise otherwise.

    pw.x prints ``JOB DONE`` even when the SCF did not converge, so that line is not enough.
    """
    m = re.search(r"convergence has been achieved in\s+(\d+) iterations", text)
    if m is None:
        if "convergence NOT achieved" in text:
            raise DFTNotConvergedError("pw.x SCF did not converge (convergence NOT achieved)")
        raise DFTNotConvergedError("pw.x output has no 'convergence has been achieved' line")
    return int(m.group(1))




def parse_pw_output(text: str, n_atoms: int) -> PwOutput:
    """Parse a finished, converged pw.x SCF output for a cell of ``n_atoms`` atoms."""
    n_iter = check_converged(text)
    lines = text.splitlines()

    def last_float(pattern: str, scale: float = 1.0, required: bool = True) -> float | None:
        hits = re.findall(pattern, text, flags=re.MULTILINE)
        if not hits:
            if required:
                raise DFTParseError(f"pw.x output lacks {pattern!r}")
            return None
        return float(hits[-1].replace("D", "E").replace("d", "e")) * scale

    free = last_float(rf"^!\s+total energy\s+=\s+({_FLOAT}) Ry", RYDBERG)
    internal = last_float(rf"internal energy E=F\+TS\s+=\s+({_FLOAT}) Ry", RYDBERG, required=False)
    fermi = last_float(rf"the Fermi energy is\s+({_FLOAT}) ev", required=False)
    n_el = last_float(rf"number of electrons\s+=\s+({_FLOAT})")
    wall = parse_wall_time(text)

    terms: dict[str, float] = {}
    start = max((i for i, ln in enumerate(lines) if ln.startswith("!")), default=None)
    if start is None:
        raise DFTParseError("pw.x output has no final '!    total energy' line")
    for ln in lines[start + 1 : start + 30]:
        mt = _TERM.match(ln)
        if mt and mt.group(1) in TERM_KEYS:
            terms[TERM_KEYS[mt.group(1)]] = float(mt.group(2)) * RYDBERG
    for needed in ("one_electron", "hartree", "xc", "ewald"):
        if needed not in terms:
            raise DFTParseError(f"pw.x output lacks the '{needed}' energy term")
    terms.setdefault("smearing_minus_ts", 0.0)
    if internal is None:
        internal = free - terms["smearing_minus_ts"]

    forces = None
    hdr = [i for i, ln in enumerate(lines) if "Forces acting on atoms" in ln]
    if hdr:
        rows = []
        for ln in lines[hdr[-1] + 1 :]:
            mf = re.match(rf"\s+atom\s+\d+\s+type\s+\d+\s+force =\s+({_FLOAT})\s+({_FLOAT})\s+({_FLOAT})", ln)
            if mf:
                rows.append([float(v) for v in mf.groups()])
                if len(rows) == n_atoms:
                    break
        if len(rows) != n_atoms:
            raise DFTParseError(f"found {len(rows)} force lines for {n_atoms} atoms")
        forces = np.array(rows) * RY_PER_BOHR

    stress = None
    hs = [i for i, ln in enumerate(lines) if "total   stress" in ln]
    if hs:
        s = np.array([[float(v) for v in lines[hs[-1] + k].split()[:3]] for k in (1, 2, 3)])
        s = -s * RYDBERG / BOHR**3  # QE's sign is opposite to ASE's
        stress = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])

    mg = re.search(r"FFT dimensions: \(\s*(\d+),\s*(\d+),\s*(\d+)\)", text)
    if mg is None:
        raise DFTParseError("pw.x output lacks the FFT dimensions line")
    mk = re.search(r"number of k points=\s+(\d+)", text)
    warnings = [ln.strip() for ln in lines if "Warning" in ln or "WARNING" in ln]
    return PwOutput(
        free_energy=float(free),
        energy=float(internal),
        forces=forces,
        stress=stress,
        fermi_level=fermi,
        terms=terms,
        n_iterations=n_iter,
        fft_grid=(int(mg.group(1)), int(mg.group(2)), int(mg.group(3))),
        n_kpoints=int(mk.group(1)) if mk else 0,
        n_electrons=float(n_el),
        wall_time=wall,
        qe_version=(mv.group(1) if (mv := re.search(r"Program PWSCF (v\.\S+)", text)) else ""),
        warnings=warnings,
    )


def qe_times(text: str, program: str = "PWSCF") -> tuple[float, float] | None:
    """(CPU, wall) seconds of the last closing timing line of a QE program's output, e.g.
    ``PWSCF : 5m50.95s CPU 58m21.92s WALL`` or ``POST-PROC : ...``; None if there is none (unfinished run)."""
    found = re.findall(rf"{program}\s*:\s*(.*?)CPU\s+(.*?)\s*WALL", text)
    return (_parse_qe_time(found[-1][0]), _parse_qe_time(found[-1][1])) if found else None


def parse_wall_time(text: str) -> float | None:
    """pw.x's total wall time in seconds, or None."""
    times = qe_times(text)
    return times[1] if times else None


def parse_cpu_time(text: str) -> float | None:
    """pw.x's total CPU time in seconds (one process), or None."""
    times = qe_times(text)
    return times[0] if times else None


def _parse_qe_time(s: str) -> float:
    """'1m 2.34s' / '1h 2m' / '3.51s' -> seconds (QE drops the seconds past an hour)."""
    return sum(float(val) * {"h": 3600, "m": 60, "s": 1}[unit] for val, unit in re.findall(r"([\d.]+)\s*([hms])", s))
