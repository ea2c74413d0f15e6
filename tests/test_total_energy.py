"""Total-energy terms: Ewald against Madelung constants and pw.x, Hartree against analytic charges, xc against
the uniform gas and pw.x, the NLCC core charge against its radial integral.

The QE checks feed pw.x's own SCF density (``charge-density.dat``) to alml's Hartree, xc and Ewald and compare
with the terms pw.x prints, on a 2-atom, non-orthogonal, symmetry-broken cell (ecutwfc 15 Ry, 20 k-points:
~3 s of pw.x).
"""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from alml.surrogate import total_energy as te
from alml.units import BOHR, HARTREE, RYDBERG

needs_qe = pytest.mark.skipif(shutil.which("pw.x") is None or shutil.which("ld1.x") is None, reason="QE not installed")


# --- Ewald ------------------------------------------------------------------------------------------


def test_ewald_rocksalt_madelung() -> None:
    """NaCl: E per ion pair = −M/d with M = 1.747565 (d the nearest-neighbour distance; Hartree units)."""
    a = 5.0 * BOHR  # Å
    nacl = bulk("NaCl", "rocksalt", a=a, cubic=True)
    z = np.where(nacl.numbers == 11, 1.0, -1.0)
    e = te.ewald_energy(nacl, z) / HARTREE
    d = 2.5
    assert e / 4 == pytest.approx(-1.7475645946 / d, rel=1e-8)


@pytest.mark.parametrize("lattice,madelung", [("fcc", 0.895873615195), ("bcc", 0.895929255682)])
def test_ewald_jellium_madelung(lattice: str, madelung: float) -> None:
    """Point charges Z in a neutralising background: E per ion = −α Z²/r_ws (α: fcc 0.895874, bcc 0.895929)."""
    for cubic in (False, True):
        at = bulk("Al", lattice, a=4.05, cubic=cubic)
        z = 3.0
        r_ws = (3 * at.get_volume() / len(at) / (4 * math.pi)) ** (1 / 3) / BOHR
        e = te.ewald_energy(at, {"Al": z}) / HARTREE / len(at)
        assert e == pytest.approx(-madelung * z**2 / r_ws, rel=1e-9)


def test_ewald_is_translation_invariant_and_additive_in_images() -> None:
    at = bulk("Al", "fcc", a=4.05).repeat((2, 1, 1))
    at.positions[1] += [0.1, -0.2, 0.05]
    e1 = te.ewald_energy(at, {"Al": 3.0})
    at2 = at.copy()
    at2.positions += [0.3, 0.7, -1.1]
    assert te.ewald_energy(at2, {"Al": 3.0}) == pytest.approx(e1, abs=1e-9)
    assert te.ewald_energy(at.repeat((1, 2, 1)), {"Al": 3.0}) == pytest.approx(2 * e1, abs=1e-8)


# --- Hartree ---------------------------------------------------------------------------------------


def _box_grid(length: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    cell = np.eye(3) * length
    x = np.arange(n) / n * length
    r = np.stack(np.meshgrid(x, x, x, indexing="ij"), axis=-1)
    return cell, r


def test_hartree_of_gaussian_charges() -> None:
    """Neutral pair of concentric Gaussians (exponents α, β, in Bohr⁻²) in a big box: the isolated-system value
    E_H = √(α/2π) + √(β/2π) − 2√(αβ/(α+β))/√π (Hartree atomic units; periodic images do not interact)."""
    alpha, beta = 1.2, 0.5
    length_bohr, n = 22.0, 64
    cell, r = _box_grid(length_bohr * BOHR, n)
    c = np.array([length_bohr / 2] * 3) * BOHR
    r2 = np.sum((r - c) ** 2, axis=-1) / BOHR**2
    rho = ((alpha / np.pi) ** 1.5 * np.exp(-alpha * r2) - (beta / np.pi) ** 1.5 * np.exp(-beta * r2)) / BOHR**3
    e = te.hartree_energy(rho, cell) / HARTREE
    ref = math.sqrt(alpha / (2 * math.pi)) + math.sqrt(beta / (2 * math.pi)) - 2 * math.sqrt(
        alpha * beta / (alpha + beta)
    ) / math.sqrt(math.pi)
    assert e == pytest.approx(ref, rel=1e-8)


def test_hartree_of_a_cosine_wave_and_potential() -> None:
    """n = n₀ + A cos(G₀x): E_H = π Ω A²/G₀² (the mean is neutralised); ∫ v_H n = 2 E_H; v_H has zero mean."""
    length, n = 7.0, 24
    cell, r = _box_grid(length, n)
    g0 = 2 * np.pi / (length / BOHR) * 2
    amp = 0.01 / BOHR**3
    dens = 0.05 / BOHR**3 + amp * np.cos(g0 * r[..., 0] / BOHR)
    e, v = te.hartree(dens, cell)
    omega = length**3 / BOHR**3
    assert e / HARTREE == pytest.approx(np.pi * omega * (amp * BOHR**3) ** 2 / g0**2, rel=1e-12)
    assert np.sum(v * dens) * length**3 / dens.size == pytest.approx(2 * e, rel=1e-10)
    assert abs(v.mean()) < 1e-12


# --- exchange-correlation ------------------------------------------------------------------------------


def test_xc_uniform_gas() -> None:
    """Constant density: Slater exchange −(3/4)(3/π)^{1/3} n^{4/3} per volume; PBE = PW92 LDA (no gradient)."""
    length, n = 5.0, 12
    cell = np.eye(3) * length
    n0 = 0.03  # 1/Bohr³
    dens = np.full((n, n, n), n0 / BOHR**3)
    omega = (length / BOHR) ** 3
    ex = te.exchange_correlation(dens, cell, functional="LDA_X")
    assert ex.energy / HARTREE == pytest.approx(-0.75 * (3 / np.pi) ** (1 / 3) * n0 ** (4 / 3) * omega, rel=1e-10)
    # v_x = (4/3) e_x/n: ∫ v n = (4/3) E_x
    assert ex.v_times_n == pytest.approx(4 / 3 * ex.energy, rel=1e-10)
    pbe = te.exchange_correlation(dens, cell, functional="PBE")
    lda = te.exchange_correlation(dens, cell, functional="LDA_X,LDA_C_PW_MOD")
    assert pbe.energy == pytest.approx(lda.energy, rel=1e-10)


def test_xc_v_times_n_matches_explicit_potential() -> None:
    """∫ v_xc[n + n_c] n dr by parts (gradients only) equals the sum with the explicit GGA potential."""
    length, n = 6.0, 20
    cell, r = _box_grid(length, n)
    k = 2 * np.pi / length
    dens = 0.02 * (1.3 + np.cos(k * r[..., 0]) * np.sin(2 * k * r[..., 1]) + 0.4 * np.cos(k * r[..., 2]))
    core = 0.01 * (1.1 + np.sin(k * r[..., 0] + k * r[..., 2]))
    xc = te.exchange_correlation(dens, cell, core, "PBE", with_potential=True)
    assert xc.potential is not None
    explicit = float(np.sum(xc.potential * dens)) * length**3 / dens.size
    assert xc.v_times_n == pytest.approx(explicit, rel=1e-9)


# --- core charge and the QE checks -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qe_scf(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """pw.x SCF on 2 Al atoms (primitive fcc doubled, one atom displaced), 1000 K, ecutwfc 15 Ry."""
    from alml.dft.ldos import read_charge_density
    from alml.dft.pseudo import pseudopotential
    from alml.dft.settings import DFTSettings, PwProfile
    from alml.dft.tasks import label

    atoms = bulk("Al", "fcc", a=4.05).repeat((2, 1, 1))
    atoms.positions[1] += [0.07, -0.05, 0.03]
    settings = DFTSettings(electronic_temperature=1000.0, ecutwfc=15.0, kspacing=0.7, forces=False)
    res = label(atoms, settings, PwProfile(), tmp_path_factory.mktemp("qe-te"), keep_outdir=True)
    dens = read_charge_density(f"{res.workdir}/out/pw.save/charge-density.dat", res.fft_grid)
    return {"atoms": atoms, "result": res, "density": dens, "ecut": settings.ecutrho_ry * RYDBERG,
            "upf": pseudopotential("Al")}


@needs_qe
def test_core_charge_integrates_to_its_radial_norm(qe_scf: dict) -> None:
    pp = te.read_upf(str(qe_scf["upf"]))
    assert pp.z_valence == 3.0 and pp.rho_core is not None and pp.functional.upper() == "PBE"
    atoms = qe_scf["atoms"]
    shape = qe_scf["result"].fft_grid
    core = te.core_density(atoms, shape, {"Al": pp})
    per_atom = float(te.radial_transform(pp, np.array([0.0]))[0])
    assert core.sum() * atoms.get_volume() / core.size == pytest.approx(len(atoms) * per_atom, rel=1e-10)
    assert per_atom > 0.5  # a real partial core


@needs_qe
def test_terms_from_qe_density_match_pw(qe_scf: dict) -> None:
    """Fed pw.x's own density: Hartree and Ewald to 1e-3 meV, xc to 0.05 meV (libxc vs QE's PBE), per atom;
    one-electron and total (with QE's band energy and −TS) to 0.2 meV/atom."""
    atoms, res, dens, ecut = qe_scf["atoms"], qe_scf["result"], qe_scf["density"], qe_scf["ecut"]
    n_at = len(atoms)
    assert dens.sum() * atoms.get_volume() / dens.size == pytest.approx(6.0, abs=1e-6)
    pp = te.read_upf(str(qe_scf["upf"]))
    core = te.core_density(atoms, res.fft_grid, {"Al": pp}, ecut)
    e_h = te.hartree_energy(dens, atoms.cell[:], ecut)
    xc = te.exchange_correlation(dens, atoms.cell[:], core, "PBE", ecut)
    e_ew = te.ewald_energy(atoms, {"Al": pp.z_valence})
    assert abs(e_h - res.terms["hartree"]) / n_at < 1e-6
    assert abs(e_ew - res.terms["ewald"]) / n_at < 1e-6
    assert abs(xc.energy - res.terms["xc"]) / n_at < 5e-5
    # the same through total_energy(), with QE's band energy and -TS: the full Harris-Foulkes energy
    from alml.dft.ldos import read_qe_xml

    bands = read_qe_xml(f"{res.workdir}/out/pw.save/data-file-schema.xml")
    terms = te.total_energy(dens, atoms, bands.band_energy, res.terms["smearing_minus_ts"], {"Al": qe_scf["upf"]}, ecut)
    # QE's one-electron term uses its last input density, the file holds the output one: ~0.05 meV/atom apart
    assert abs(terms.one_electron - res.terms["one_electron"]) / n_at < 2e-4
    assert abs(terms.free_energy - res.free_energy) / n_at < 2e-4
    assert terms.energy == pytest.approx(terms.free_energy - terms.smearing_minus_ts)


def test_total_energy_requires_consistent_functional(tmp_path) -> None:  # noqa: ANN001
    pp = te.PseudoData("Al", 3.0, "PZ", np.array([0.1]), np.array([0.1]), None)
    pp2 = te.PseudoData("Al", 3.0, "PBE", np.array([0.1]), np.array([0.1]), None)
    with pytest.raises(ValueError, match="disagree"):
        te._functional({"Al": pp, "X": pp2})
    at = Atoms("Al", cell=np.eye(3) * 3.0, pbc=True)
    dens = np.full((8, 8, 8), 3.0 / 27.0)
    terms = te.total_energy(dens, at, 10.0, 0.0, {"Al": pp})
    assert terms.hartree == pytest.approx(0.0, abs=1e-12)


# --- the half-grid (rfft) implementation against the original full-grid one -------------------------------


def _full_fft_reference(dens: np.ndarray, atoms: Atoms, pp: te.PseudoData, ecut: float) -> dict[str, float]:
    """The energy terms as first implemented: full complex FFTs, a G-sphere mask, full G-vector arrays, and
    ASE's neighbour list for the Ewald real-space sum (all pairs at once). Hartree units; PBE."""
    from ase.neighborlist import neighbor_list
    from pyscf.dft import libxc
    from scipy.special import erfc

    cell, shape = atoms.cell[:], dens.shape
    g = te.reciprocal_vectors(cell, shape)
    g2 = np.einsum("...a,...a->...", g, g)
    mask = g2 * RYDBERG <= ecut * (1 + 1e-10)
    omega = atoms.get_volume() / BOHR**3

    def to_g(v: np.ndarray) -> np.ndarray:
        return np.where(mask, np.fft.fftn(v) / v.size, 0.0)

    def to_r(fg: np.ndarray) -> np.ndarray:
        return np.real(np.fft.ifftn(fg) * fg.size)

    # core charge
    gn = np.sqrt(g2[mask])
    shells, inverse = np.unique(np.round(gn, 10), return_inverse=True)
    ncg = np.zeros(shape, dtype=complex)
    ncg[mask] = te.structure_factor(atoms, shape)[mask] * te.radial_transform(pp, shells)[inverse] / omega
    # Hartree
    n = dens * BOHR**3
    ng = to_g(n)
    safe = np.where(g2 > 0, g2, 1.0)
    vg = np.where(g2 > 0, 4 * np.pi * ng / safe, 0.0)
    e_h = 0.5 * omega * float(np.sum(np.real(np.conj(ng) * vg)))
    n_r = to_r(ng)
    dv = omega / n.size
    vh_n = float(np.sum(to_r(vg) * n_r)) * dv
    # xc (PBE)
    rg = ng + to_g(to_r(ncg))
    grad = np.stack([to_r(1j * g[..., a] * rg) for a in range(3)])
    rho_r = to_r(rg)
    exc, vxc = libxc.eval_xc(te.XC_CODES["PBE"], np.concatenate([rho_r[None], grad]).reshape(4, -1), spin=0,
                             deriv=1)[:2]
    grad_n = np.stack([to_r(1j * g[..., a] * ng) for a in range(3)])
    vsig = vxc[1].reshape(shape)
    e_xc = float(np.sum(exc.reshape(shape) * rho_r)) * dv
    vn = float(np.sum(vxc[0].reshape(shape) * n_r)) * dv + 2 * float(np.sum(vsig * np.sum(grad * grad_n, 0))) * dv
    # Ewald, real space from ASE's neighbour list (all pairs), the rest from alml.surrogate.ewald
    from alml.surrogate import ewald

    eta = math.sqrt(math.pi) * (len(atoms) / omega**2) ** (1 / 6)
    p = math.sqrt(-math.log(1e-12))
    i, j, d = neighbor_list("ijd", atoms, p / eta * BOHR, self_interaction=False)
    z = np.full(len(atoms), pp.z_valence)
    e_real = 0.5 * float(np.sum(z[i] * z[j] * erfc(eta * d / BOHR) / (d / BOHR)))
    cell_b = cell / BOHR
    e_ew = e_real + ewald.reciprocal_sum(atoms.get_scaled_positions(), cell_b, z, eta, 2 * eta * p)
    e_ew += -eta / math.sqrt(math.pi) * float(np.sum(z**2)) - math.pi * float(np.sum(z)) ** 2 / (2 * omega * eta**2)
    return {"hartree": e_h, "vh_n": vh_n, "xc": e_xc, "v_xc_n": vn, "ewald": e_ew, "core": to_r(ncg) / BOHR**3}


@pytest.mark.parametrize("repeat,ecut_ry", [(1, 160.0), (3, 60.0)])
def test_half_grid_terms_match_the_full_grid_implementation(
    repeat: int, ecut_ry: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """4 and 108 rattled atoms, a density of atom-centred Gaussians on a background: every term as before;
    the Ewald sums also in chunks of a few atoms and G vectors."""
    from alml.descriptors import qe_fft_shape
    from alml.dft.pseudo import pseudopotential
    from alml.surrogate import ewald

    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(repeat)
    atoms.rattle(0.1, seed=2)
    shape = qe_fft_shape(atoms.cell[:], ecut_ry)
    ecut = ecut_ry * RYDBERG
    frac = np.stack(np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij"), axis=-1)
    dens = np.full(shape, 2.1 * len(atoms) / atoms.get_volume())
    for s in atoms.get_scaled_positions():
        d = frac - s
        d -= np.round(d)
        dens += 0.9 / (1.5 * np.pi) ** 1.5 * np.exp(-np.sum((d @ atoms.cell[:]) ** 2, axis=-1) / 1.5)
    pp = te.read_upf(str(pseudopotential("Al")))
    ref = _full_fft_reference(dens, atoms, pp, ecut)
    recip = te.ReciprocalGrid.build(atoms.cell[:], shape, ecut)
    assert recip.g2.shape == (shape[0], shape[1], shape[2] // 2 + 1)
    core = te.core_density(atoms, shape, {"Al": pp}, ecut, recip)
    assert np.allclose(core, ref["core"], rtol=0, atol=1e-10 * np.abs(core).max())
    terms = te.total_energy(dens, atoms, 10.0, -0.1, {"Al": pp}, ecut, recip=recip)
    for key in ("hartree", "xc", "ewald"):
        assert terms.as_dict()[key] / HARTREE == pytest.approx(ref[key], rel=1e-10, abs=1e-10), key
    monkeypatch.setattr(ewald, "_ENTRIES", 7 * len(atoms))  # 7 central atoms / G vectors per chunk
    assert te.ewald_energy(atoms, {"Al": 3.0}) / HARTREE == pytest.approx(ref["ewald"], rel=1e-10)
    one = 10.0 / HARTREE - ref["vh_n"] - ref["v_xc_n"]
    assert terms.one_electron / HARTREE == pytest.approx(one, rel=1e-10)
    with pytest.raises(ValueError, match="ReciprocalGrid"):
        te.total_energy(dens, atoms, 10.0, -0.1, {"Al": pp}, None, recip=recip)  # built for another ecut
