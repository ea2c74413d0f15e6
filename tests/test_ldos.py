"""LDOS training data: settings and ladders, pp.x/nscf inputs, cube parsing, the HDF5 snapshot format, and the
whole route on real pw.x runs (2 Al atoms, ecutwfc 15 Ry, 20 k-points, 1000 K), with the native engine (the
default) and with pp.x.

The QE runs check what matters downstream: the LDOS lies on the grid exactly as QE's density does (point
(i, j, k) at fractional (i/nx, j/ny, k/nz); checked against pw.x's own charge density on a non-orthogonal,
symmetry-broken cell with nx ≠ ny), units are 1/(eV·Å³), the observables computed from it reproduce QE, and
the native engine gives pp.x's LDOS from the same wavefunctions (also on a cell with 24 symmetries).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from alml.config import ConfigError, parse_config
from alml.data.grids import (
    EnergyLadder,
    LdosFile,
    LdosMeta,
    QEReference,
    broadening_kernel,
    is_valid_ldos_h5,
    read_ldos_h5,
    write_ldos_h5,
)
from alml.dft.ldos import LdosSettings, bands_needed, nscf_input
from alml.dft.ppx import CUBE_TO_EV_ANG3, PpProfile, pp_input, read_cube
from alml.units import BOHR, RYDBERG

needs_pp = pytest.mark.skipif(
    any(shutil.which(x) is None for x in ("pw.x", "pp.x", "ld1.x")), reason="Quantum ESPRESSO not installed"
)


# --- settings, ladders, inputs ---------------------------------------------------------------------------


def test_settings_validation() -> None:
    LdosSettings()  # defaults are valid
    LdosSettings(kernel="gaussian", broadening=0.2, spacing=0.1)
    with pytest.raises(ConfigError, match="broadening/spacing"):
        parse_config(LdosSettings, {"broadening": 0.2, "spacing": 0.1})  # FD kernel far too wide
    with pytest.raises(ConfigError, match="broadening/spacing"):
        parse_config(LdosSettings, {"kernel": "gaussian", "broadening": 0.05, "spacing": 0.1})
    with pytest.raises(ConfigError, match="emax"):
        parse_config(LdosSettings, {"emin": 1.0, "emax": 1.05})
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config(LdosSettings, {"degauss_ldos": 0.1})


def test_ladder_relative_aligned_and_absolute() -> None:
    s = LdosSettings(emin=-12.0, emax=1.5, spacing=0.1, broadening=0.07)
    lad = s.ladder(7.8081)
    assert lad.emin == pytest.approx(-4.2)  # 7.8081 - 12 = -4.1919, snapped down to the global 0.1 grid
    assert lad.emax >= 7.8081 + 1.5 - 0.1 and lad.emax <= 7.8081 + 1.5
    assert lad.spacing == pytest.approx(0.1) and lad.kernel == "fermi-dirac" and lad.broadening == 0.07
    other = s.ladder(7.91)
    shift = (other.emin - lad.emin) / 0.1
    assert shift == pytest.approx(round(shift))  # ladders of different snapshots share one grid
    a = LdosSettings(reference="absolute", emin=-5.0, emax=10.0, spacing=0.5, broadening=1.0, kernel="gaussian")
    la = a.ladder(123.0)
    assert la.n == 31 and la.emin == -5.0 and la.emax == pytest.approx(10.0) and la.kernel == "gaussian"


def test_pp_input_and_energy_count() -> None:
    lad = EnergyLadder.uniform(-4.2, 0.1, 136, 0.07, "fermi-dirac")
    text = pp_input(lad)
    vals = dict(
        (k.strip(), v.strip().strip("'")) for k, v in (ln.split("=") for ln in text.splitlines() if "=" in ln)
    )
    assert vals["plot_num"] == "3" and vals["output_format"] == "6" and vals["iflag"] == "3"
    emin, emax, de = float(vals["emin"]), float(vals["emax"]), float(vals["delta_e"])
    assert int((emax - emin) / de) + 1 == 136  # pp.x's (truncating) energy count
    assert float(vals["degauss_ldos"]) == 0.07


def test_nscf_input_patch() -> None:
    scf = (
        "&CONTROL\n   calculation      = 'scf'\n   prefix = 'pw'\n/\n&SYSTEM\n   ecutwfc = 15.0\n"
        "   degauss          = 0.006\n   smearing         = 'fermi-dirac'\n   nat = 2\n/\n"
        "&ELECTRONS\n   conv_thr = 1e-9\n/\nK_POINTS automatic\n2 2 2  0 0 0\n"
    )
    text = nscf_input(scf, 17)
    assert "calculation = 'nscf'" in text and "nbnd = 17" in text and "diago_full_acc = .true." in text
    assert "smearing         = 'fermi-dirac'" in text
    g = nscf_input(scf, 12, "gaussian", 0.0147)
    assert "smearing = 'gaussian'" in g and "degauss = 0.0147" in g and "fermi-dirac" not in g
    assert g.count("degauss") == 1
    assert "diagonalization = 'cg'" in nscf_input(scf, 12, diagonalization="cg")


def test_pp_profile_never_uses_pools() -> None:
    if shutil.which("pp.x") is None or shutil.which("mpirun.openmpi") is None:
        pytest.skip("pp.x or OpenMPI missing")
    cmd = PpProfile(ranks=2).command()
    assert "-nk" not in cmd and "-np" in cmd and cmd[-3:] == ["pp.x", "-in", "pp.in"]
    assert PpProfile().command() == ["pp.x", "-in", "pp.in"]


def test_ladder_must_start_below_the_band() -> None:
    from alml.dft.ldos import check_ladder_bottom

    lad = EnergyLadder.uniform(-4.2, 0.1, 136, 0.07, "fermi-dirac")
    check_ladder_bottom(lad, -3.3)
    with pytest.raises(ValueError, match="lower ldos.emin"):
        check_ladder_bottom(lad, -3.9)


def test_bands_needed_grows_with_target() -> None:
    eig = np.array([[0.0, 3.0, 6.0, 9.0], [1.0, 4.0, 7.0, 10.0]])
    assert bands_needed(eig, 8.0) == 4  # min of the top band is 9: complete
    assert bands_needed(eig, 12.0) > 4


def test_read_cube_layout_matches_ase(tmp_path: Path) -> None:
    """The fast cube parser returns the values in ASE's (z fastest) order and the cell in Bohr."""
    from ase.io.cube import read_cube_data, write_cube

    at = Atoms("Al2", positions=[[0, 0, 0], [1.1, 0.3, 2.0]], cell=[3.0, 4.0, 5.0], pbc=True)
    data = np.random.default_rng(0).random((4, 5, 7))
    with open(tmp_path / "x.cube", "w") as fh:
        write_cube(fh, at, data)
    values, cell = read_cube(tmp_path / "x.cube")
    ref, _ = read_cube_data(str(tmp_path / "x.cube"))
    assert values.shape == (4, 5, 7)
    assert np.allclose(values, ref) and np.allclose(values, data, rtol=1e-5)
    assert np.allclose(cell * BOHR, at.cell[:], atol=1e-5)
    assert CUBE_TO_EV_ANG3 == pytest.approx(1 / (RYDBERG * BOHR**3))


# --- HDF5 snapshot format ---------------------------------------------------------------------------------


def _meta(shape: tuple[int, int, int] = (4, 3, 5), n_e: int = 40) -> LdosMeta:
    at = bulk("Al", "fcc", a=4.05).repeat((2, 1, 1))
    ref = QEReference(7.8, 40.9, -148.0, -147.99, 6.0, {"one_electron": 1.0, "hartree": 0.2, "xc": -82.0,
                      "ewald": -146.6, "smearing_minus_ts": -0.01},
                      eigenvalues=np.arange(12.0).reshape(3, 4), k_weights=np.full(3, 2 / 3),
                      occupations=np.ones((3, 4)))
    return LdosMeta(atoms=at, ladder=EnergyLadder.uniform(-4.0, 0.1, n_e, 0.07, "fermi-dirac"), shape=shape,
                    temperature=1000.0, n_electrons=6.0, ecutrho=60 * RYDBERG, complete_below=12.0,
                    reference=ref, provenance={"qe": "6.7"})


def test_h5_round_trip_lazy_reads(tmp_path: Path) -> None:
    meta = _meta()
    ldos = np.random.default_rng(1).random((*meta.shape, meta.ladder.n)).astype(np.float32)
    path = write_ldos_h5(tmp_path / "s.h5", meta, ldos)
    assert is_valid_ldos_h5(path)
    arr, m = read_ldos_h5(path)
    assert np.array_equal(arr, ldos)
    assert m.shape == meta.shape and m.temperature == 1000.0 and m.n_electrons == 6.0
    assert m.ecutrho == pytest.approx(60 * RYDBERG) and m.complete_below == 12.0
    assert np.allclose(m.ladder.energies, meta.ladder.energies) and m.ladder.kernel == "fermi-dirac"
    assert m.reference is not None and m.reference.terms["xc"] == -82.0
    assert np.array_equal(m.reference.eigenvalues, meta.reference.eigenvalues)  # type: ignore[union-attr]
    assert np.allclose(m.atoms.positions, meta.atoms.positions) and m.provenance == {"qe": "6.7"}
    with LdosFile(path) as f:
        assert f.ldos.chunks[:3] == (4, 3, 1)
        assert np.array_equal(f.slab(1, 3), ldos[:, :, 1:3])
        slabs = list(f.iter_slabs(planes=2))
        assert [(k0, k1) for k0, k1, _ in slabs] == [(0, 2), (2, 4), (4, 5)]
        assert np.array_equal(np.concatenate([s for _, _, s in slabs], axis=2), ldos)
        idx = np.array([17, 3, 59, 0])
        assert np.array_equal(f.points(idx), ldos.reshape(-1, meta.ladder.n)[idx])
        assert np.array_equal(f.energies_block(5, 9), ldos[..., 5:9])
        assert f.volume == pytest.approx(meta.atoms.get_volume())
        vox = meta.atoms.get_volume() / ldos[..., 0].size
        assert f.dos() == pytest.approx(ldos.reshape(-1, meta.ladder.n).sum(axis=0, dtype=np.float64) * vox)


def test_h5_write_is_atomic_and_checked(tmp_path: Path) -> None:
    meta = _meta()

    def broken(ds) -> None:  # noqa: ANN001
        ds[..., :2] = 1.0
        raise RuntimeError("crash while filling")

    with pytest.raises(RuntimeError):
        write_ldos_h5(tmp_path / "b.h5", meta, broken)
    assert not (tmp_path / "b.h5").exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="shape"):
        write_ldos_h5(tmp_path / "c.h5", meta, np.zeros((2, 2, 2, 2)))
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    assert not is_valid_ldos_h5(tmp_path / "junk.h5")
    assert not is_valid_ldos_h5(tmp_path / "missing.h5")


# --- the whole route with QE ---------------------------------------------------------------------------------


def _snapshot() -> Atoms:
    at = bulk("Al", "fcc", a=4.05).repeat((2, 1, 1))
    at.positions[1] += [0.07, -0.05, 0.03]
    at.info["temperature"] = 1000.0
    return at


def _compute(tmp_path_factory: pytest.TempPathFactory, engine: str) -> dict:
    from alml.dft.ldos import compute_ldos
    from alml.dft.settings import DFTSettings, PwProfile

    root = tmp_path_factory.mktemp(f"ldos-{engine}")
    dft = DFTSettings(ecutwfc=15.0, kspacing=0.7, forces=False)
    # 0.1 eV resolves f at 1000 K
    settings = LdosSettings(keep_outdir=True, spacing=0.1, broadening=0.07, engine=engine)  # type: ignore[arg-type]
    path = compute_ldos(_snapshot(), 1000.0, dft, settings, root=root, pw_profile=PwProfile())
    return {"path": path, "root": root, "dft": dft, "settings": settings, "engine": engine}


@pytest.fixture(scope="module")
def qe_ldos(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The default route: SCF, nscf, native LDOS."""
    return _compute(tmp_path_factory, "native")


@pytest.fixture(scope="module")
def ppx_ldos(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same snapshot through pp.x (its own work tree: the engine is not part of the job name)."""
    return _compute(tmp_path_factory, "ppx")


@needs_pp
@pytest.mark.parametrize("run", ["qe_ldos", "ppx_ldos"])
def test_compute_ldos_files_and_cleanup(run: str, request: pytest.FixtureRequest) -> None:
    data = request.getfixturevalue(run)
    path: Path = data["path"]
    work = path.parent
    assert path.name == "ldos.h5" and is_valid_ldos_h5(path)
    assert not list(work.glob("*.cube")) and not list(work.glob("ldos[0-9]*"))  # cubes and pp.x files gone
    assert (work / "pp.json").is_file() == (data["engine"] == "ppx")
    with LdosFile(path) as f:
        assert f.provenance["ldos_engine"] == data["engine"]
        assert f.ldos.shape == (*f.shape, f.ladder.n)
        assert f.shape == (27, 15, 15)
        assert f.ldos.dtype == np.float32
        ref = f.reference
        assert ref is not None and ref.k_weights is not None
        assert ref.k_weights.sum() == pytest.approx(2.0)
        assert f.complete_below is not None and f.complete_below > f.ladder.emax  # nscf added bands
        assert f.ladder.emin < ref.eigenvalues.min() - 0.3  # type: ignore[union-attr]
        assert f.temperature == 1000.0 and f.n_electrons == 6.0


@needs_pp
@pytest.mark.parametrize(("run", "tol"), [("qe_ldos", 2e-4), ("ppx_ldos", 5e-4)])
def test_ldos_layout_and_units_match_qe_density(run: str, tol: float, request: pytest.FixtureRequest) -> None:
    """∫ f d(ε, r) dε equals pw.x's own SCF density point by point (layout, units, grid, spin), for either engine:
    for the native one a check of its physics that does not rely on pp.x."""
    from alml.dft.ldos import read_charge_density
    from alml.surrogate.observables import density

    path: Path = request.getfixturevalue(run)["path"]
    with LdosFile(path) as f:
        ld, lad, ref, shape = f.read(np.float64), f.ladder, f.reference, f.shape
    assert ref is not None
    n_qe = read_charge_density(path.parent / "out" / "pw.save" / "charge-density.dat", shape)
    n = density(ld, lad, ref.fermi_level, 1000.0)
    # measured 5.4e-5 (native) and 5.6e-5 (pp.x): the 0.1 eV ladder's integration error (with either engine the
    # electron count at QE's mu is 6.00026 of 6), not the engine's; pp.x's bound is looser for its 5-digit cubes
    assert np.abs(n - n_qe).max() < tol * n_qe.max()
    # a transposed or mis-ordered grid would be far off (the cell has no symmetry mapping x onto y or z)
    assert np.abs(n.transpose(0, 2, 1) - n_qe).max() > 10 * np.abs(n - n_qe).max()


@needs_pp
def test_observables_reproduce_qe(qe_ldos: dict) -> None:
    """From QE's own LDOS: Fermi level within 10 meV; band and total energy, each term within 1 meV/atom."""
    from alml.dft.pseudo import pseudopotential
    from alml.surrogate.total_energy import energies_from_ldos

    with LdosFile(qe_ldos["path"]) as f:
        ld, lad, ref, atoms, temp, nel, ecut = (f.read(np.float64), f.ladder, f.reference, f.atoms, f.temperature,
                                                f.n_electrons, f.ecutrho)
    assert ref is not None
    obs, terms = energies_from_ldos(ld, lad, atoms, temp, nel, {"Al": pseudopotential("Al")}, ecut)
    n_at = len(atoms)
    assert abs(obs.fermi_level - ref.fermi_level) < 0.010
    assert abs(obs.band_energy - ref.band_energy) / n_at < 1e-3
    assert abs(terms.free_energy - ref.free_energy) / n_at < 1e-3
    for k in ("one_electron", "hartree", "xc", "ewald", "smearing_minus_ts"):
        assert abs(getattr(terms, k) - ref.terms[k]) / n_at < 1e-3, k


@needs_pp
def test_resume_and_training_data_driver(qe_ldos: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """A finished snapshot is not recomputed; the driver adds descriptors beside it and writes a manifest."""
    import json

    import alml.dft.ldos as ldos_mod
    import alml.dft.ppx as ppx_mod
    from alml.compute import ExecutorConfig
    from alml.descriptors import BispectrumSettings, ElementParams
    from alml.surrogate.data import TrainingDataConfig, make_training_data

    def no_run(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a finished snapshot must not run QE again")

    monkeypatch.setattr(ldos_mod, "run_qe", no_run)  # the nscf
    monkeypatch.setattr(ppx_mod, "run_qe", no_run)  # pp.x
    monkeypatch.setattr(ldos_mod, "label", no_run)
    desc = BispectrumSettings(twojmax=2, rcutfac=4.0, rfac0=0.99363, elements={"Al": ElementParams(radius=0.5)})
    cfg = TrainingDataConfig(dft=qe_ldos["dft"], ldos=qe_ldos["settings"], descriptors=desc,
                             root=str(qe_ldos["root"]))
    out = make_training_data([_snapshot()], cfg, ExecutorConfig(workers=1, cores=1), progress=False)
    assert out[0].status in ("done", "reused"), out[0].error
    assert Path(out[0].ldos) == qe_ldos["path"]  # type: ignore[arg-type]
    import h5py

    with h5py.File(out[0].descriptors, "r") as f:  # type: ignore[arg-type]
        assert f["descriptors"].shape == (27, 15, 15, desc.n_components)
    again = make_training_data([_snapshot()], cfg, ExecutorConfig(workers=1, cores=1), progress=False)
    assert again[0].status == "reused"
    manifest = json.loads((qe_ldos["root"] / "manifest.json").read_text())
    assert manifest["snapshots"][0]["ldos"] == str(qe_ldos["path"])
    bad = make_training_data([Atoms("Al", cell=[3, 3, 3], pbc=True)], cfg.model_copy(update={"temperature": None}),
                             ExecutorConfig(workers=1, cores=1), progress=False)
    assert bad[0].status == "failed" and "temperature" in (bad[0].error or "")


# --- the native engine against pp.x, and its refusals ----------------------------------------------------------

#: pp.x's cubes hold 5 significant digits (0.12345E-01): a value is rounded by up to 5e-5 of its leading decade,
#: so where the LDOS is largest the cube can differ from the exact value by 5e-5 x max; float32 adds 6e-8.
TOL_VS_PPX = 1e-4


def _save(data: dict) -> Path:
    return data["path"].parent / "out" / "pw.save"


@needs_pp
def test_wavefunction_reader_on_real_files(ppx_ldos: dict) -> None:
    """The record layout read back from pw.x's own files: k-points, plane-wave counts, orthonormal bands."""
    import xml.etree.ElementTree as ET

    from alml.dft.wavefunctions import read_wfc, wfc_files

    save = _save(ppx_ldos)
    root = ET.parse(save / "data-file-schema.xml").getroot()
    alat = float(root.find("output/atomic_structure").get("alat"))  # type: ignore[union-attr,arg-type]
    ks = root.findall("output/band_structure/ks_energies")
    files = wfc_files(save)
    assert len(files) == len(ks) == 20
    for i in (0, 7, 19):
        w = read_wfc(files[i])
        kxml = np.array(ks[i].findtext("k_point").split(), dtype=float)  # type: ignore[union-attr]
        assert w.ik == i + 1 and not w.gamma_only and w.npol == 1 and w.ispin == 1 and w.scalef == 1.0
        assert w.n_pw == int(ks[i].findtext("npw"))  # type: ignore[arg-type]
        assert w.n_bands == len(ks[i].findtext("eigenvalues").split())  # type: ignore[union-attr]
        assert np.allclose(w.xk, kxml * 2 * np.pi / alat, atol=1e-10)  # 1/Bohr vs the XML's 2 pi/alat
        assert np.allclose(w.coefficients.conj() @ w.coefficients.T, np.eye(w.n_bands), atol=1e-8)
        assert np.abs(w.miller).max() < 20 and np.all(w.miller[0] == 0)  # G = 0 first


@needs_pp
def test_native_equals_ppx_on_the_same_wavefunctions(ppx_ldos: dict, tmp_path: Path) -> None:
    """(a) The native LDOS from pp.x's own run (after the nscf) against pp.x's file, on the whole ladder."""
    from alml.dft.ldos import read_qe_xml
    from alml.dft.ldos_native import write_native_ldos_h5

    save = _save(ppx_ldos)
    bands = read_qe_xml(save / "data-file-schema.xml")
    pp, meta = read_ldos_h5(ppx_ldos["path"])
    out = write_native_ldos_h5(save, meta, tmp_path / "native.h5", bands.eigenvalues, bands.k_weights, "float64")
    native, _ = read_ldos_h5(out)
    assert native.shape == pp.shape and native.dtype == np.float64
    diff = np.abs(native - pp).max() / pp.max()
    assert diff < TOL_VS_PPX  # measured 9e-6
    # the DOS is the kernel-broadened eigenvalue spectrum (normalisation and k weights; no pp.x involved)
    spectrum = np.einsum("k,jkn->j", bands.k_weights, broadening_kernel(
        meta.ladder.energies[:, None, None] - bands.eigenvalues[None], meta.ladder.broadening, meta.ladder.kernel))
    dos = native.reshape(-1, meta.ladder.n).sum(axis=0) * meta.atoms.get_volume() / native[..., 0].size
    assert np.abs(dos - spectrum).max() < 1e-10 * spectrum.max()  # measured 2e-14


@needs_pp
def test_native_symmetrises_like_ppx(tmp_path: Path) -> None:
    """(a) hcp Al: 24 symmetries, half with fractional translations (screw axes), 8 irreducible k-points. The
    native LDOS, symmetrised with pw.x's operations, matches pp.x on a short ladder; unsymmetrised it would not."""
    from alml.dft.ldos import dft_at_temperature, read_qe_xml
    from alml.dft.ldos_native import native_ldos, symmetrise
    from alml.dft.ppx import read_cube, run_pp
    from alml.dft.settings import DFTSettings
    from alml.dft.tasks import label

    atoms = bulk("Al", "hcp", a=2.86, c=4.67)
    dft = dft_at_temperature(DFTSettings(ecutwfc=15.0, kspacing=0.7, forces=False), 1000.0)
    res = label(atoms, dft, root=tmp_path, keep_outdir=True)
    work = Path(res.workdir)
    bands = read_qe_xml(work / "out" / "pw.save" / "data-file-schema.xml")
    ladder = EnergyLadder.uniform(float(np.floor(bands.eigenvalues.min())) - 1.0, 0.2, 50, 0.14, "fermi-dirac")
    cubes = run_pp(work, ladder)
    pp = np.stack([read_cube(c)[0].reshape(-1) for c in cubes]) * CUBE_TO_EV_ANG3
    buf, perms = native_ldos(work / "out" / "pw.save", ladder, res.fft_grid, bands.eigenvalues, bands.k_weights,
                             atoms.get_volume())
    assert len(perms) == 24 and len(bands.k_weights) == 8
    native = symmetrise(buf.T, perms).T
    assert np.abs(native - pp).max() < TOL_VS_PPX * pp.max()  # measured 4e-5
    assert np.abs(buf - pp).max() > 30 * TOL_VS_PPX * pp.max()  # the irreducible k-points alone: 0.37


@needs_pp
def test_native_refuses_ultrasoft_paw_and_gamma(qe_ldos: dict, tmp_path: Path) -> None:
    """(c) |psi|^2 is not the density with augmentation charges; gamma-only files hold half the G vectors."""
    from alml.dft.ldos import dft_at_temperature, read_qe_xml
    from alml.dft.ldos_native import UnsupportedWavefunctions, native_ldos, pseudo_type
    from alml.dft.settings import DFTSettings
    from alml.dft.tasks import label
    from alml.dft.wavefunctions import read_wfc, wfc_files

    src = _save(qe_ldos)
    bands = read_qe_xml(src / "data-file-schema.xml")
    with LdosFile(qe_ldos["path"]) as f:
        ladder, shape, vol = f.ladder, f.shape, f.volume
    for kind in ("US", "PAW"):
        save = tmp_path / kind
        shutil.copytree(src, save)
        upf = save / "Al.pbe-n-nc-tm.UPF"
        text = upf.read_text()
        assert 'pseudo_type="NC"' in text
        upf.write_text(text.replace('pseudo_type="NC"', f'pseudo_type="{kind}"'))
        assert pseudo_type(upf) == kind
        with pytest.raises(UnsupportedWavefunctions, match=rf"{kind} pseudopotential.*engine: ppx"):
            native_ldos(save, ladder, shape, bands.eigenvalues, bands.k_weights, vol)
    v1 = tmp_path / "v1.UPF"
    v1.write_text("<PP_INFO>\n</PP_INFO>\n<PP_HEADER>\n   0   Version Number\n  Al   Element\n   US   Ultrasoft\n"
                  "</PP_HEADER>\n")
    assert pseudo_type(v1) == "US"

    gamma = dft_at_temperature(DFTSettings(ecutwfc=15.0, gamma_only=True, forces=False), 1000.0)
    res = label(_snapshot(), gamma, root=tmp_path / "gamma", keep_outdir=True)
    save = Path(res.workdir) / "out" / "pw.save"
    assert read_wfc(wfc_files(save)[0]).gamma_only
    g = read_qe_xml(save / "data-file-schema.xml")
    with pytest.raises(UnsupportedWavefunctions, match="gamma_only.*engine: ppx"):
        native_ldos(save, ladder, res.fft_grid, g.eigenvalues, g.k_weights, vol)


def test_scf_with_enough_bands_needs_no_nscf(qe_ldos: dict, tmp_path: Path) -> None:
    """``scf_bands_per_atom``: the SCF's own bands cover the ladder, so no nscf runs; same job name, and the
    same LDOS as SCF + nscf. The two SCFs (7 and 12 bands) converge along different paths to conv_thr: measured
    1.5e-4 of the largest value at most, scattered over the band, none at the ladder's top; bound 3e-4."""
    from alml.dft.ldos import compute_ldos
    from alml.dft.settings import PwProfile

    settings = qe_ldos["settings"].model_copy(update={"scf_bands_per_atom": 6.0})
    path = compute_ldos(_snapshot(), 1000.0, qe_ldos["dft"], settings, root=tmp_path, pw_profile=PwProfile())
    assert path.parent.name == qe_ldos["path"].parent.name
    assert not (path.parent / "nscf.in").exists()
    assert "nbnd" in (path.parent / "scf.in").read_text()
    with LdosFile(path) as a, LdosFile(qe_ldos["path"]) as b:
        assert a.complete_below > a.ladder.emax
        la, lb = a.read(np.float64), b.read(np.float64)
        assert np.abs(la - lb).max() < 3e-4 * lb.max()
        assert a.reference.fermi_level == pytest.approx(b.reference.fermi_level, abs=1e-4)  # measured 1.3e-5 eV
