"""Total (free) energy from a density on QE's FFT grid: Hartree by FFT, xc through libxc, Ewald for the ions.

Harris–Foulkes form (PHYSICS.md), exact at self-consistency, with n the valence density, n_c the
pseudopotential's non-linear core charge and E_b, −TS from the LDOS (:mod:`alml.surrogate.observables`):

    F = E_b − E_H[n] + E_xc[n + n_c] − ∫ v_xc[n + n_c] n dr + E_Ewald − TS.

The terms are grouped as pw.x prints them, so each can be checked against QE:

- ``one_electron`` = E_b − ∫ (v_H[n] + v_xc[n + n_c]) n dr  (QE's ``eband + deband``),
- ``hartree`` = E_H[n] = (Ω/2) Σ_{G≠0} 4π|n(G)|²/G²  (Hartree atomic units),
- ``xc`` = E_xc[n + n_c] (QE's ``etxc``; the core charge is included, as in QE),
- ``ewald`` = ion–ion energy of point charges Z_v in a neutralising background,
- ``smearing_minus_ts`` = −TS.

Conventions follow QE so the numbers line up: densities are kept to the G-sphere |G|² ≤ ecutrho (QE stores
ρ(G) only there); gradients are spectral (iG·n(G)); the core charge is built in reciprocal space from the UPF's
``PP_NLCC`` on the radial mesh (Simpson on the mesh up to r = 10 Bohr, as QE's ``drhoc``) times the structure
factor. Exchange–correlation goes through libxc via PySCF's maintained binding (``pyscf.dft.libxc``).

Units: inputs and outputs in alml units (Å, eV, densities in 1/Å³); Hartree atomic units inside. Grid arrays are
(nx, ny, nz) with point (i, j, k) at fractional (i/nx, j/ny, k/nz), as everywhere in alml.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from ase import Atoms
from scipy.integrate import simpson
from scipy.special import erfc

from alml.data.grids import EnergyLadder
from alml.surrogate.observables import LdosObservables, Method, observables
from alml.units import BOHR, HARTREE, RYDBERG

#: alml functional names -> libxc (PySCF) codes
XC_CODES: dict[str, str] = {"PBE": "GGA_X_PBE,GGA_C_PBE", "PZ": "LDA_X,LDA_C_PZ", "PW": "LDA_X,LDA_C_PW"}
_RCUT_BOHR = 10.0  #: QE integrates radial functions up to this radius (Bohr)


# --- pseudopotential data -------------------------------------------------------------------------


@dataclass(frozen=True)
class PseudoData:
    """What the total energy needs from a UPF: valence charge, functional, radial mesh and core charge (Bohr)."""

    element: str
    z_valence: float
    functional: str
    r: np.ndarray  #: radial mesh, Bohr
    rab: np.ndarray  #: dr/di on the mesh, Bohr
    rho_core: np.ndarray | None  #: core charge ρ_c(r), electrons/Bohr³ (∫ 4π r² ρ_c dr = core electrons); None: no NLCC


def _floats(node: ET.Element | None) -> np.ndarray:
    if node is None or node.text is None:
        raise ValueError("UPF lacks a required array")
    return np.array(node.text.split(), dtype=float)


@lru_cache(maxsize=16)
def read_upf(path: str | Path) -> PseudoData:
    """Read a UPF v2 file (as ld1.x writes it) for its header, mesh and non-linear core charge."""
    text = Path(path).read_text()
    text = text.replace("&", "&amp;")  # UPF's PP_INFO may hold bare ampersands
    start = text.find("<UPF")
    root = ET.fromstring(text[start:])
    head = root.find("PP_HEADER")
    if head is None:
        raise ValueError(f"{path}: no PP_HEADER (only UPF v2 is supported)")
    nlcc = head.get("core_correction", "false").strip().lower() in ("true", "t", ".true.")
    return PseudoData(
        element=head.get("element", "").strip(),
        z_valence=float(head.get("z_valence", "nan")),
        functional=head.get("functional", "").strip(),
        r=_floats(root.find("PP_MESH/PP_R")),
        rab=_floats(root.find("PP_MESH/PP_RAB")),
        rho_core=_floats(root.find("PP_NLCC")) if nlcc else None,
    )


# --- reciprocal space helpers ----------------------------------------------------------------------


def reciprocal_vectors(cell: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """G vectors (nx, ny, nz, 3) in 1/Bohr of the FFT grid (numpy's FFT order), ``cell`` rows in Å."""
    b = 2.0 * np.pi * np.linalg.inv(np.asarray(cell, dtype=float) / BOHR).T  # rows b_i, 1/Bohr
    m = [np.fft.fftfreq(n, 1.0 / n) for n in shape]
    return (
        m[0][:, None, None, None] * b[0] + m[1][None, :, None, None] * b[1] + m[2][None, None, :, None] * b[2]
    )


def g_sphere(cell: np.ndarray, shape: tuple[int, int, int], ecut: float | None) -> np.ndarray | None:
    """Mask (nx, ny, nz) of G vectors with ħ²G²/2m ≤ ``ecut`` (eV; QE's ecutrho), or None for no cutoff."""
    if ecut is None:
        return None
    g = reciprocal_vectors(cell, shape)
    return np.einsum("...a,...a->...", g, g) * RYDBERG <= ecut * (1 + 1e-10)


def _to_g(values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Fourier coefficients f(G) with f(r) = Σ_G f(G) e^{iG·r}, restricted to ``mask``."""
    fg = np.fft.fftn(values) / values.size
    if mask is not None:
        fg = np.where(mask, fg, 0.0)
    return fg


def _to_r(fg: np.ndarray) -> np.ndarray:
    return np.real(np.fft.ifftn(fg) * fg.size)


def _gradient(fg: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Spectral gradient (3, nx, ny, nz) of the real field with coefficients ``fg``; units of f per Bohr."""
    return np.stack([_to_r(1j * g[..., a] * fg) for a in range(3)])


# --- Hartree ------------------------------------------------------------------------------------------


def hartree(density: np.ndarray, cell: np.ndarray, ecut: float | None = None) -> tuple[float, np.ndarray]:
    """Hartree energy E_H (eV) and potential v_H (nx, ny, nz) in eV of a density (nx, ny, nz) in 1/Å³.

    E_H = (Ω/2) Σ_{G≠0} 4π |n(G)|²/G² (atomic units); the G = 0 term is dropped (neutralising background),
    as in QE. ``ecut`` (eV) keeps only G with ħ²G²/2m ≤ ecut.
    """
    n = np.asarray(density, dtype=float) * BOHR**3
    shape = n.shape
    g = reciprocal_vectors(cell, shape)
    g2 = np.einsum("...a,...a->...", g, g)
    ng = _to_g(n, g_sphere(cell, shape, ecut))
    g2[0, 0, 0] = 1.0
    vg = 4.0 * np.pi * ng / g2
    vg[0, 0, 0] = 0.0
    omega = abs(np.linalg.det(np.asarray(cell, dtype=float))) / BOHR**3
    e_h = 0.5 * omega * float(np.sum(np.real(np.conj(ng) * vg)))
    return e_h * HARTREE, _to_r(vg) * HARTREE


def hartree_energy(density: np.ndarray, cell: np.ndarray, ecut: float | None = None) -> float:
    """Hartree energy (eV) of a density (nx, ny, nz) in 1/Å³; see :func:`hartree`."""
    return hartree(density, cell, ecut)[0]


# --- core charge ---------------------------------------------------------------------------------------


def _qe_mesh(pp: PseudoData) -> int:
    """QE's ``msh``: mesh points up to r = 10 Bohr, made odd (for Simpson)."""
    msh = int(np.searchsorted(pp.r, _RCUT_BOHR, side="right")) + 1
    msh = min(msh, pp.r.size)
    return 2 * ((msh + 1) // 2) - 1


def radial_transform(pp: PseudoData, q: np.ndarray) -> np.ndarray:
    """4π ∫ r² ρ_c(r) j₀(q r) dr (electrons) at |G| = ``q`` (1/Bohr), Simpson on the UPF mesh as QE's drhoc."""
    if pp.rho_core is None:
        return np.zeros_like(q, dtype=float)
    msh = _qe_mesh(pp)
    r, rab, rho = pp.r[:msh], pp.rab[:msh], pp.rho_core[:msh]
    out = np.empty(q.size)
    for i0 in range(0, q.size, 512):
        qq = q.reshape(-1)[i0 : i0 + 512]
        j0 = np.sinc(np.outer(qq, r) / np.pi)  # sin(x)/x
        out[i0 : i0 + 512] = simpson(r**2 * rho * rab * j0, dx=1.0, axis=1)
    return 4.0 * np.pi * out.reshape(q.shape)


def structure_factor(atoms: Atoms, shape: tuple[int, int, int], indices: np.ndarray | None = None) -> np.ndarray:
    """S(G) = Σ_a e^{−iG·R_a} (nx, ny, nz) over ``indices`` (default all atoms), by separable phases.

    Atoms are taken in blocks so the (atoms, nx·ny) phase table stays ≤ ~64 MB however large the cell.
    """
    idx = np.arange(len(atoms)) if indices is None else np.asarray(indices)
    s = atoms.get_scaled_positions(wrap=False)[idx]
    nx, ny, nz = shape
    m = [np.fft.fftfreq(n, 1.0 / n) for n in shape]
    out = np.zeros((nx * ny, nz), dtype=complex)
    block = max(1, (4 << 20) // (nx * ny))
    for a0 in range(0, len(idx), block):
        p = [np.exp(-2j * np.pi * np.outer(s[a0 : a0 + block, d], m[d])) for d in range(3)]  # (block, n_d)
        pxy = (p[0][:, :, None] * p[1][:, None, :]).reshape(len(p[0]), nx * ny)
        out += pxy.T @ p[2]
    return out.reshape(nx, ny, nz)


def core_density(
    atoms: Atoms,
    shape: tuple[int, int, int],
    pseudos: dict[str, PseudoData],
    ecut: float | None = None,
) -> np.ndarray:
    """Non-linear core charge n_c (nx, ny, nz) in 1/Å³ on the FFT grid, from the UPFs' PP_NLCC.

    n_c(G) = (1/Ω) Σ_species S_s(G) · 4π ∫ r² ρ_c(r) j₀(|G| r) dr, kept to the G-sphere of ``ecut`` (eV).
    """
    cell = atoms.cell[:]
    g = reciprocal_vectors(cell, shape)
    gn = np.sqrt(np.einsum("...a,...a->...", g, g))
    mask = g_sphere(cell, shape, ecut)
    omega = abs(atoms.cell.volume) / BOHR**3
    symbols = np.array(atoms.get_chemical_symbols())
    ng = np.zeros(shape, dtype=complex)
    for el in sorted(set(symbols)):
        pp = pseudos[el]
        if pp.rho_core is None:
            continue
        sel = gn if mask is None else gn[mask]
        shells, inverse = np.unique(np.round(sel, 10), return_inverse=True)
        form = radial_transform(pp, shells)[inverse] / omega
        sf = structure_factor(atoms, shape, np.nonzero(symbols == el)[0])
        if mask is None:
            ng += sf * form.reshape(shape)
        else:
            ng[mask] += sf[mask] * form
    return _to_r(ng) / BOHR**3


# --- exchange-correlation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class XCTerms:
    """E_xc[n + n_c] and ∫ v_xc[n + n_c] n dr (both eV), and v_xc on the grid (eV) when asked."""

    energy: float
    v_times_n: float
    potential: np.ndarray | None = None


def exchange_correlation(
    density: np.ndarray,
    cell: np.ndarray,
    core: np.ndarray | None = None,
    functional: str = "PBE",
    ecut: float | None = None,
    with_potential: bool = False,
) -> XCTerms:
    """xc energy of ρ = n + n_c and ∫ v_xc[ρ] n dr, through libxc (PySCF); densities (nx, ny, nz) in 1/Å³.

    GGA: ∇ρ spectrally (as QE); ∫ v_xc n = ∫ (∂e/∂ρ) n + 2 ∫ (∂e/∂σ) ∇ρ·∇n (exact by parts on the grid).
    ``functional``: a key of :data:`XC_CODES` or a libxc code string (e.g. ``"GGA_X_PBE,GGA_C_PBE"``).
    """
    from pyscf.dft import libxc

    code = XC_CODES.get(functional.upper(), functional)
    n = np.asarray(density, dtype=float) * BOHR**3
    nc = np.zeros_like(n) if core is None else np.asarray(core, dtype=float) * BOHR**3
    shape = n.shape
    mask = g_sphere(cell, shape, ecut)
    ng = _to_g(n, mask)
    rg = ng + _to_g(nc, mask)
    n_r, rho_r = _to_r(ng), _to_r(rg)
    dv = abs(np.linalg.det(np.asarray(cell, dtype=float))) / BOHR**3 / n.size
    gga = libxc.is_gga(code)
    if gga:
        g = reciprocal_vectors(cell, shape)
        grad_rho = _gradient(rg, g)
        rho_in = np.concatenate([rho_r[None], grad_rho]).reshape(4, -1)
    else:
        rho_in = rho_r.reshape(-1)
    exc, vxc = libxc.eval_xc(code, rho_in, spin=0, deriv=1)[:2]
    vrho = vxc[0].reshape(shape)
    e_xc = float(np.sum(exc.reshape(shape) * rho_r)) * dv
    vn = float(np.sum(vrho * n_r)) * dv
    potential = None
    if gga:
        vsigma = vxc[1].reshape(shape)
        grad_n = _gradient(ng, g)
        vn += 2.0 * float(np.sum(vsigma * np.einsum("a...,a...->...", grad_rho, grad_n))) * dv
        if with_potential:
            h = 2.0 * vsigma * grad_rho  # v_xc = vrho − ∇·(2 vsigma ∇ρ)
            div = sum(_to_r(1j * g[..., a] * _to_g(h[a], mask)) for a in range(3))
            potential = (vrho - div) * HARTREE
    elif with_potential:
        potential = vrho * HARTREE
    return XCTerms(energy=e_xc * HARTREE, v_times_n=vn * HARTREE, potential=potential)


# --- Ewald ------------------------------------------------------------------------------------------------


def ewald_energy(atoms: Atoms, charges: np.ndarray | dict[str, float], tol: float = 1e-12) -> float:
    """Ion–ion energy (eV) of point charges (e) at the atoms of a periodic cell in a neutralising background.

    E = ½ Σ'_{ijL} Z_i Z_j erfc(η r)/r + (2π/Ω) Σ_{G≠0} e^{−G²/4η²}/G² |Σ_i Z_i e^{iG·r_i}|²
        − η/√π Σ Z_i² − π (Σ Z_i)²/(2 Ω η²)   (Hartree atomic units; independent of η).
    ``charges``: per atom, or per element (valence charges Z_v).
    """
    from ase.neighborlist import neighbor_list

    if isinstance(charges, dict):
        z = np.array([charges[s] for s in atoms.get_chemical_symbols()], dtype=float)
    else:
        z = np.asarray(charges, dtype=float)
    cell = atoms.cell[:] / BOHR
    omega = abs(np.linalg.det(cell))
    n = len(atoms)
    eta = math.sqrt(math.pi) * (n / omega**2) ** (1.0 / 6.0)
    p = math.sqrt(-math.log(tol))
    rcut, gcut = p / eta, 2.0 * eta * p
    # real space (neighbour pairs within rcut, images included, no i == j at L = 0)
    i, j, d = neighbor_list("ijd", atoms, rcut * BOHR, self_interaction=False)
    d = d / BOHR
    e_real = 0.5 * float(np.sum(z[i] * z[j] * erfc(eta * d) / d))
    # reciprocal space
    b = 2.0 * np.pi * np.linalg.inv(cell).T
    mmax = [int(math.ceil(gcut * np.linalg.norm(cell[k]) / (2.0 * np.pi))) for k in range(3)]
    ms = np.stack(
        np.meshgrid(*[np.arange(-m, m + 1) for m in mmax], indexing="ij"), axis=-1
    ).reshape(-1, 3)
    gv = ms @ b
    g2 = np.einsum("ka,ka->k", gv, gv)
    keep = (g2 > 1e-12) & (g2 <= gcut**2)
    gv, g2 = gv[keep], g2[keep]
    frac = atoms.get_scaled_positions(wrap=False)
    e_recip = 0.0
    for k0 in range(0, len(g2), 4096):
        phase = np.exp(2j * np.pi * (ms[keep][k0 : k0 + 4096] @ frac.T))  # (nG, n)
        sg = phase @ z
        e_recip += float(np.sum(np.exp(-g2[k0 : k0 + 4096] / (4 * eta**2)) / g2[k0 : k0 + 4096] * np.abs(sg) ** 2))
    e_recip *= 2.0 * np.pi / omega
    e_self = -eta / math.sqrt(math.pi) * float(np.sum(z**2))
    e_bg = -math.pi * float(np.sum(z)) ** 2 / (2.0 * omega * eta**2)
    return (e_real + e_recip + e_self + e_bg) * HARTREE


# --- total energy ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnergyTerms:
    """Harris–Foulkes energy and its terms in eV, keyed like pw.x's (``alml.dft.parse.TERM_KEYS``)."""

    band_energy: float
    one_electron: float
    hartree: float
    xc: float
    ewald: float
    smearing_minus_ts: float
    free_energy: float  #: F = E − TS, pw.x's "! total energy"
    energy: float  #: E = F + TS

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def total_energy(
    density: np.ndarray,
    atoms: Atoms,
    band_energy: float,
    entropy_term: float,
    pseudopotentials: dict[str, str | Path | PseudoData],
    ecut: float | None = None,
    functional: str | None = None,
    core: np.ndarray | None = None,
    ewald: float | None = None,
) -> EnergyTerms:
    """Total free energy of ``atoms`` from its valence density (nx, ny, nz) in 1/Å³, band energy E_b and −TS (eV).

    ``pseudopotentials``: element -> UPF path (or :class:`PseudoData`) for Z_v, the core charge and the
    functional (overridable with ``functional``). ``ecut``: the density cutoff in eV (QE's ecutrho · Ry);
    give it to match QE to the last meV. ``core`` (1/Å³, from :func:`core_density`) and ``ewald`` (eV, from
    :func:`ewald_energy`) depend on the structure only: pass them to reuse them over several densities.
    """
    pps = {el: (p if isinstance(p, PseudoData) else read_upf(str(p))) for el, p in pseudopotentials.items()}
    cell = atoms.cell[:]
    shape = tuple(np.shape(density))
    functional = functional or _functional(pps)
    if core is None and any(p.rho_core is not None for p in pps.values()):
        core = core_density(atoms, shape, pps, ecut)  # type: ignore[arg-type]
    e_h, v_h = hartree(density, cell, ecut)
    xc = exchange_correlation(density, cell, core, functional, ecut)
    dv = abs(atoms.cell.volume) / np.size(density)
    mask = g_sphere(cell, shape, ecut)  # type: ignore[arg-type]
    n_r = _to_r(_to_g(np.asarray(density, dtype=float), mask))
    vh_n = float(np.sum(v_h * n_r)) * dv
    e_ew = ewald_energy(atoms, {el: p.z_valence for el, p in pps.items()}) if ewald is None else float(ewald)
    one = band_energy - vh_n - xc.v_times_n
    free = one + e_h + xc.energy + e_ew + entropy_term
    return EnergyTerms(
        band_energy=band_energy, one_electron=one, hartree=e_h, xc=xc.energy, ewald=e_ew,
        smearing_minus_ts=entropy_term, free_energy=free, energy=free - entropy_term,
    )


def _functional(pps: dict[str, PseudoData]) -> str:
    names = {p.functional.upper() for p in pps.values()}
    if len(names) != 1:
        raise ValueError(f"pseudopotentials disagree on the functional ({names}): pass functional=")
    name = names.pop()
    if name not in XC_CODES:
        raise ValueError(f"functional {name!r} from the UPF is not mapped to libxc: pass functional= a libxc code")
    return name


def energies_from_ldos(
    ldos: np.ndarray,
    ladder: EnergyLadder,
    atoms: Atoms,
    temperature: float,
    n_electrons: float,
    pseudopotentials: dict[str, str | Path | PseudoData],
    ecut: float | None = None,
    method: Method = "kernel",
) -> tuple[LdosObservables, EnergyTerms]:
    """LDOS (nx, ny, nz, n_e) in 1/(eV·Å³) -> (Fermi level, E_b, −TS, DOS, density) and the total energy terms.

    The route a predicted LDOS takes; fed QE's own LDOS it reproduces QE (docs/benchmarks.md).
    """
    obs = observables(ldos, ladder, abs(atoms.cell.volume), n_electrons, temperature, method=method)
    terms = total_energy(obs.density, atoms, obs.band_energy, obs.entropy_term, pseudopotentials, ecut)  # type: ignore[arg-type]
    return obs, terms
