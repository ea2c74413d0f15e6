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

Memory. Reciprocal space is a :class:`~alml.surrogate.reciprocal.ReciprocalGrid` (rfftn half grid: |G|², the
kept set, G components formed on the fly), built once per structure and shared by Hartree, the xc gradients
and the core charge (pass ``recip=`` to reuse it over densities); n(G) is transformed once per density;
∫ v_H n = 2 E_H by Parseval, so v_H is never synthesised. The peak is the GGA input (4 full-grid doubles)
plus libxc's outputs and one half-grid complex scratch. Ewald: :mod:`alml.surrogate.ewald` (O(N) memory).

Units: inputs and outputs in alml units (Å, eV, densities in 1/Å³); Hartree atomic units inside. Grid arrays are
(nx, ny, nz) with point (i, j, k) at fractional (i/nx, j/ny, k/nz), as everywhere in alml.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from ase import Atoms
from scipy.integrate import simpson

from alml.data.grids import EnergyLadder
from alml.surrogate.ewald import ewald_energy
from alml.surrogate.observables import LdosObservables, Method, observables
from alml.surrogate.reciprocal import ReciprocalGrid
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
    """G vectors (nx, ny, nz, 3) in 1/Bohr of the full FFT grid (numpy's FFT order), ``cell`` rows in Å.

    A full-grid array of 3 doubles per point: the energy terms use :class:`ReciprocalGrid` (half grid, no
    stored components) instead.
    """
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


def _recip(
    cell: np.ndarray, shape: tuple[int, ...], ecut: float | None, recip: ReciprocalGrid | None
) -> ReciprocalGrid:
    """``recip`` after checking it matches (cell, shape, ecut), or a new one."""
    if recip is None:
        return ReciprocalGrid.build(cell, shape, ecut)  # type: ignore[arg-type]
    same = recip.shape == tuple(shape) and np.allclose(recip.cell, cell, rtol=0, atol=1e-12) and recip.ecut == ecut
    if not same:
        raise ValueError(
            f"the ReciprocalGrid was built for grid {recip.shape}, ecut {recip.ecut} eV and another cell, not grid "
            f"{tuple(shape)}, ecut {ecut} eV and this cell: build it with ReciprocalGrid.build(cell, shape, ecut)"
        )
    return recip


# --- Hartree ------------------------------------------------------------------------------------------


def hartree(
    density: np.ndarray, cell: np.ndarray, ecut: float | None = None, recip: ReciprocalGrid | None = None
) -> tuple[float, np.ndarray]:
    """Hartree energy E_H (eV) and potential v_H (nx, ny, nz) in eV of a density (nx, ny, nz) in 1/Å³.

    E_H = (Ω/2) Σ_{G≠0} 4π |n(G)|²/G² (atomic units); the G = 0 term is dropped (neutralising background),
    as in QE. ``ecut`` (eV) keeps only G with ħ²G²/2m ≤ ecut. ``recip``: a prebuilt :class:`ReciprocalGrid`.
    """
    recip = _recip(cell, np.shape(density), ecut, recip)
    ng = recip.to_g(np.asarray(density, dtype=float) * BOHR**3)
    e_h = _hartree_energy(ng, recip)
    ng *= recip.coulomb
    return e_h * HARTREE, recip.to_r(ng, overwrite=True) * HARTREE


def _hartree_energy(ng: np.ndarray, recip: ReciprocalGrid) -> float:
    """(Ω/2) Σ_G 4π|n(G)|²/G², Hartree, from the coefficients ``ng`` (1/Bohr³, rfftn layout)."""
    a = np.abs(ng)
    a *= a
    a *= recip.coulomb
    return 0.5 * recip.omega * recip.sum_all(a)


def hartree_energy(
    density: np.ndarray, cell: np.ndarray, ecut: float | None = None, recip: ReciprocalGrid | None = None
) -> float:
    """Hartree energy (eV) of a density (nx, ny, nz) in 1/Å³; see :func:`hartree`."""
    recip = _recip(cell, np.shape(density), ecut, recip)
    return _hartree_energy(recip.to_g(np.asarray(density, dtype=float) * BOHR**3), recip) * HARTREE


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


def structure_factor(
    atoms: Atoms, shape: tuple[int, int, int], indices: np.ndarray | None = None, half: bool = False
) -> np.ndarray:
    """S(G) = Σ_a e^{−iG·R_a} (nx, ny, nz) over ``indices`` (default all atoms), by separable phases.

    ``half``: only the rfftn half (nx, ny, nz//2 + 1). Atoms are taken in blocks so the (atoms, nx·ny) phase
    table stays ≤ ~64 MB however large the cell.
    """
    idx = np.arange(len(atoms)) if indices is None else np.asarray(indices)
    s = atoms.get_scaled_positions(wrap=False)[idx]
    nx, ny, nz = shape
    m = [np.fft.fftfreq(nx, 1.0 / nx), np.fft.fftfreq(ny, 1.0 / ny)]
    m.append(np.fft.rfftfreq(nz, 1.0 / nz) if half else np.fft.fftfreq(nz, 1.0 / nz))
    out = np.zeros((nx * ny, len(m[2])), dtype=complex)
    block = max(1, (4 << 20) // (nx * ny))
    for a0 in range(0, len(idx), block):
        p = [np.exp(-2j * np.pi * np.outer(s[a0 : a0 + block, d], m[d])) for d in range(3)]  # (block, n_d)
        pxy = (p[0][:, :, None] * p[1][:, None, :]).reshape(len(p[0]), nx * ny)
        out += pxy.T @ p[2]
    return out.reshape(nx, ny, len(m[2]))


def core_density(
    atoms: Atoms,
    shape: tuple[int, int, int],
    pseudos: dict[str, PseudoData],
    ecut: float | None = None,
    recip: ReciprocalGrid | None = None,
) -> np.ndarray:
    """Non-linear core charge n_c (nx, ny, nz) in 1/Å³ on the FFT grid, from the UPFs' PP_NLCC.

    n_c(G) = (1/Ω) Σ_species S_s(G) · 4π ∫ r² ρ_c(r) j₀(|G| r) dr, kept to the G-sphere of ``ecut`` (eV).
    """
    recip = _recip(atoms.cell[:], shape, ecut, recip)
    symbols = np.array(atoms.get_chemical_symbols())
    ng = np.zeros(recip.g2.shape, dtype=complex)
    gn = np.sqrt(recip.g2 if recip.keep is None else recip.g2[recip.keep])
    shells, inverse = np.unique(np.round(gn, 10), return_inverse=True)
    del gn
    for el in sorted(set(symbols)):
        pp = pseudos[el]
        if pp.rho_core is None:
            continue
        form = radial_transform(pp, shells)[inverse.reshape(-1)] / recip.omega
        sf = structure_factor(atoms, shape, np.nonzero(symbols == el)[0], half=True)
        if recip.keep is None:
            ng += sf * form.reshape(ng.shape)
        else:
            ng[recip.keep] += sf[recip.keep] * form
    return recip.to_r(ng, overwrite=True) / BOHR**3


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
    recip: ReciprocalGrid | None = None,
) -> XCTerms:
    """xc energy of ρ = n + n_c and ∫ v_xc[ρ] n dr, through libxc (PySCF); densities (nx, ny, nz) in 1/Å³.

    GGA: ∇ρ spectrally (as QE); ∫ v_xc n = ∫ (∂e/∂ρ) n + 2 ∫ (∂e/∂σ) ∇ρ·∇n (exact by parts on the grid).
    ``functional``: a key of :data:`XC_CODES` or a libxc code string (e.g. ``"GGA_X_PBE,GGA_C_PBE"``).
    ``recip``: a prebuilt :class:`ReciprocalGrid` for (cell, grid, ecut).
    """
    recip = _recip(cell, np.shape(density), ecut, recip)
    n = np.asarray(density, dtype=float) * BOHR**3
    return _xc(n, recip.to_g(n), recip, core, functional, with_potential)


def _xc(
    n: np.ndarray,
    ng: np.ndarray,
    recip: ReciprocalGrid,
    core: np.ndarray | None,
    functional: str,
    with_potential: bool = False,
) -> XCTerms:
    """:func:`exchange_correlation` from n (1/Bohr³) and its coefficients ``ng``; one full-grid array per ∇ component.

    With a G-sphere (``recip.filtered``) n and ρ are re-synthesised from their kept G, as QE holds them.
    """
    from pyscf.dft import libxc

    code = XC_CODES.get(functional.upper(), functional)
    shape = n.shape
    nc = None if core is None else np.asarray(core, dtype=float) * BOHR**3
    rg = ng if nc is None else ng + recip.to_g(nc)
    gga = libxc.is_gga(code)
    rho_in = np.empty((4 if gga else 1, n.size))
    rho_r = rho_in[0].reshape(shape)
    if recip.filtered:
        rho_r[...] = recip.to_r(rg)
    else:
        np.add(n, 0.0 if nc is None else nc, out=rho_r)
    del nc
    for a in range(3 if gga else 0):
        rho_in[1 + a] = recip.derivative(rg, a).reshape(-1)
    del rg
    exc, vxc = libxc.eval_xc(code, rho_in if gga else rho_in[0], spin=0, deriv=1)[:2]
    n_r = recip.to_r(ng) if recip.filtered else n
    dv = recip.omega / n.size
    e_xc = float(np.dot(exc, rho_in[0])) * dv
    del exc
    vrho = vxc[0]
    vn = float(np.dot(vrho, n_r.reshape(-1))) * dv
    potential = None
    if gga:
        vsigma = vxc[1]
        for a in range(3):
            vn += 2.0 * float(np.dot(vsigma * rho_in[1 + a], recip.derivative(ng, a).reshape(-1))) * dv
        if with_potential:
            div = np.zeros(shape)  # v_xc = vrho − ∇·(2 vsigma ∇ρ)
            for a in range(3):
                div += recip.derivative(recip.to_g((2.0 * vsigma * rho_in[1 + a]).reshape(shape)), a)
            potential = (vrho.reshape(shape) - div) * HARTREE
    elif with_potential:
        potential = vrho.reshape(shape) * HARTREE
    return XCTerms(energy=e_xc * HARTREE, v_times_n=vn * HARTREE, potential=potential)


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
    recip: ReciprocalGrid | None = None,
) -> EnergyTerms:
    """Total free energy of ``atoms`` from its valence density (nx, ny, nz) in 1/Å³, band energy E_b and −TS (eV).

    ``pseudopotentials``: element -> UPF path (or :class:`PseudoData`) for Z_v, the core charge and the
    functional (overridable with ``functional``). ``ecut``: the density cutoff in eV (QE's ecutrho · Ry);
    give it to match QE to the last meV. ``core`` (1/Å³, from :func:`core_density`), ``ewald`` (eV, from
    :func:`ewald_energy`) and ``recip`` (:meth:`ReciprocalGrid.build` of cell, grid, ecut) depend on the structure
    only: pass them to reuse them over several densities.
    """
    pps = {el: (p if isinstance(p, PseudoData) else read_upf(str(p))) for el, p in pseudopotentials.items()}
    shape = tuple(np.shape(density))
    recip = _recip(atoms.cell[:], shape, ecut, recip)
    functional = functional or _functional(pps)
    if core is None and any(p.rho_core is not None for p in pps.values()):
        core = core_density(atoms, shape, pps, ecut, recip)  # type: ignore[arg-type]
    n = np.asarray(density, dtype=float) * BOHR**3
    ng = recip.to_g(n)
    e_h = _hartree_energy(ng, recip) * HARTREE
    vh_n = 2.0 * e_h  # ∫ v_H n dr = Ω Σ_G n(G)* 4π n(G)/G² = 2 E_H (Parseval, same kept G)
    xc = _xc(n, ng, recip, core, functional)
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
