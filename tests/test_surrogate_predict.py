"""Prediction with an LDOS committee on new structures: chunking, supercells, committee statistics, the ASE
calculator, the output files, and the errors. Real LAMMPS descriptors (2J = 2) on tiny grids; a committee built
directly (random weights around a free-electron-like LDOS) so no training is needed, plus one tiny training run
to check what the model folder records for prediction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError

from alml.data.grids import EnergyLadder, LdosFile, LdosMeta, write_ldos_h5
from alml.descriptors import MALA_AL, on_grid, qe_fft_shape, save_grid_h5
from alml.dft.pseudo import checksum, pseudopotential
from alml.nn import LoopConfig, MLPConfig
from alml.surrogate.calculator import LdosCalculator
from alml.surrogate.inputs import extrapolation_warnings
from alml.surrogate.model import LdosModel, LdosModelConfig, Scalers, load_ldos_model, new_committee, predict_members
from alml.surrogate.predict import PredictConfig, Prediction, predict
from alml.surrogate.total_energy import energies_from_ldos
from alml.surrogate.train import train_ldos_model
from alml.units import RYDBERG

SETTINGS = MALA_AL.model_copy(update={"twojmax": 2})  # K = 5
LADDER = EnergyLadder.uniform(-14.0, 0.1, 171, 0.07, "fermi-dirac")
T = 1000.0
ECUT_RY = 12.0  # 9^3 grid for the 4-atom cube, 18 x 9 x 9 for its 2 x 1 x 1 supercell (same spacing)
SHAPE = (9, 9, 9)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> None:
    torch.set_num_threads(1)


def cell() -> Atoms:
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.rattle(0.05, seed=1)
    return atoms


def free_electron_ldos(volume_per_atom: float) -> np.ndarray:
    """Free-electron LDOS (n_e,) in 1/(eV·Å³) for 3 electrons per atom, μ near 0 eV."""
    c = 0.2625**1.5 / (2 * np.pi**2)  # (2m/ħ²)^{3/2}/(2π²) in eV^-3/2 Å^-3, spin included
    e_f = (3 * np.pi**2 * 3 / volume_per_atom) ** (2 / 3) / 0.2625
    return c * np.sqrt(np.clip(LADDER.energies + e_f, 0.0, None))


def make_model(members: int = 3, seed: int = 0) -> LdosModel:
    """A committee whose members give the free-electron LDOS ±~5 %, varying with the local descriptors."""
    torch.manual_seed(seed)
    x = on_grid(cell(), SETTINGS, SHAPE).reshape(-1, SETTINGS.n_components)
    y = free_electron_ldos(cell().get_volume() / 4)
    # the last input is the cell's atom density (default global_inputs), scaled so that it moves the output
    scalers = Scalers(np.append(x.mean(0), 0.0), np.append(x.std(0) + 1e-12, 0.01), y, 0.05 * y + 1e-4)
    cfg = LdosModelConfig(network=MLPConfig(hidden=(16,), activation="tanh"), members=members)
    assert cfg.global_inputs == ["atom_density"]
    n_in = SETTINGS.n_components + 1
    nets = new_committee(n_in, LADDER.n, cfg.network, members).double()
    for net in nets:
        net.set_scalers(scalers)
    nets.eval()
    td = {"temperature": T, "ecutrho": ECUT_RY * RYDBERG, "elements": ["Al"]}
    return LdosModel(nets, cfg, LADDER, n_in, SETTINGS.model_dump(mode="json"), training_data=td)


@pytest.fixture(scope="module")
def model() -> LdosModel:
    return make_model()


@pytest.fixture(scope="module")
def base(model: LdosModel) -> Prediction:
    return predict(cell(), model, exact(max_points_per_chunk=None))


def exact(**kw: object) -> PredictConfig:
    """A float64 network, as the float64 committee of these tests, so that routes compare to ~1e-10."""
    return PredictConfig(network_dtype="float64", **kw)


def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1.0)


def test_chunked_equals_unchunked(model: LdosModel, base: Prediction) -> None:
    small = predict(cell(), model, exact(max_points_per_chunk=2 * 81, batch_points=50))
    auto = predict(cell(), model, exact(descriptor_memory_mb=0.05))  # auto: 1-plane slabs
    assert np.allclose(auto.dos_members, base.dos_members, rtol=1e-10, atol=0)
    assert _close(auto.free_energy.value, base.free_energy.value, 1e-10)
    assert small.grid_shape == base.grid_shape == SHAPE
    assert np.allclose(small.dos_members, base.dos_members, rtol=1e-10, atol=0)
    assert np.allclose(small.density, base.density, rtol=1e-10, atol=1e-14)
    assert _close(small.fermi_level.value, base.fermi_level.value, 1e-10)
    for k, v in base.terms.items():
        assert _close(small.terms[k].value, v.value, 1e-10), k
        assert np.allclose(small.terms[k].members, v.members, rtol=1e-10), k


def test_blocks_strided_along_every_axis(model: LdosModel, base: Prediction, tmp_path: Path) -> None:
    """27-point blocks of the 9^3 grid (strides 1, 3, 9: along b and c): the same DOS, density, energies and LDOS
    file as one block, written back with strided assignment."""
    from alml.surrogate.predict import block_strides

    cfg = exact(max_points_per_chunk=27, write_ldos=True, batch_points=10)
    assert block_strides(SETTINGS, SHAPE, cfg) == (1, 3, 9)
    pred = predict(cell(), model, cfg, out=tmp_path / "blocks")
    predict(cell(), model, exact(max_points_per_chunk=None, write_ldos=True), out=tmp_path / "one")
    assert np.allclose(pred.dos_members, base.dos_members, rtol=1e-10, atol=0)
    assert np.allclose(pred.density, base.density, rtol=1e-10, atol=1e-14)
    for k, v in base.terms.items():
        assert np.allclose(pred.terms[k].members, v.members, rtol=1e-10), k
    with LdosFile(tmp_path / "blocks" / "ldos.h5") as a, LdosFile(tmp_path / "one" / "ldos.h5") as b:
        assert np.allclose(a.read(), b.read(), rtol=1e-6, atol=0)


def test_matches_the_whole_cell_route(model: LdosModel, base: Prediction) -> None:
    """Streaming prediction = predict_members on the whole grid, then energies_from_ldos on the mean LDOS."""
    x = on_grid(cell(), SETTINGS, SHAPE, dtype=np.float32)  # as PredictConfig.cache_dtype
    pm = predict_members(model, x, cell())  # (M, nx, ny, nz, n_e)
    with pytest.raises(ValueError, match="atom_density: pass atoms="):
        predict_members(model, x)
    vol = cell().get_volume()
    dos_m = pm.reshape(len(pm), -1, LADDER.n).sum(axis=1) * vol / x[..., 0].size
    assert np.allclose(base.dos_members, dos_m, rtol=1e-10)
    assert np.allclose(base.dos, base.dos_members.mean(axis=0), rtol=1e-12)  # mean DOS = DOS of the mean LDOS
    assert np.all(base.dos_std >= 0) and base.dos_std.max() > 0
    obs, terms = energies_from_ldos(pm.mean(axis=0), LADDER, cell(), T, 12.0, {"Al": pseudopotential("Al")},
                                    ECUT_RY * RYDBERG)
    assert base.n_electrons == 12.0
    assert _close(base.fermi_level.value, obs.fermi_level, 1e-9)
    assert np.allclose(base.density, obs.density, rtol=1e-10, atol=1e-14)
    assert base.density_electrons == pytest.approx(12.0, rel=1e-6)
    for k, v in terms.as_dict().items():
        assert _close(base.terms[k].value, v, 1e-9), k
    for e in (base.fermi_level, base.band_energy, base.free_energy, base.energy, base.entropy_term):
        assert e.std > 0 and len(e.members) == 3 and e.std == pytest.approx(np.std(e.members, ddof=1))
    assert set(base.timings) >= {"descriptors", "network", "observables", "energy", "total"}
    assert base.peak_rss_mb > 0


def test_float32_network_agrees_with_float64(model: LdosModel, base: Prediction) -> None:
    """The default float32 hidden layers move the DOS, density and energies by float32 rounding only (~1e-7
    relative per point), and leave the caller's float64 committee as it was."""
    fast = predict(cell(), model, PredictConfig(max_points_per_chunk=None))
    assert next(model.members.parameters()).dtype == torch.float64
    assert np.allclose(fast.dos_members, base.dos_members, rtol=1e-5, atol=1e-8)
    assert not np.array_equal(fast.dos_members, base.dos_members)  # it did run in float32
    assert np.allclose(fast.density, base.density, rtol=1e-5, atol=1e-10)
    assert abs(fast.fermi_level.value - base.fermi_level.value) < 1e-5  # eV
    for k, v in base.terms.items():
        assert np.allclose(fast.terms[k].members, v.members, rtol=0, atol=1e-5), k  # eV, for a 4-atom cell


def test_supercell_gives_the_same_energies_per_atom(model: LdosModel, base: Prediction) -> None:
    sup = predict(cell().repeat((2, 1, 1)), model, exact(max_points_per_chunk=200))
    assert sup.grid_shape == (18, 9, 9) and sup.n_atoms == 8 and sup.n_electrons == 24.0
    assert _close(sup.fermi_level.value, base.fermi_level.value, 1e-9)
    assert np.allclose(sup.dos / 8, base.dos / 4, rtol=1e-9)
    for k in ("band_energy", "hartree", "xc", "ewald", "smearing_minus_ts", "free_energy", "energy"):
        assert _close(sup.terms[k].value / 8, base.terms[k].value / 4, 1e-9), k
        assert np.allclose(np.array(sup.terms[k].members) / 8, np.array(base.terms[k].members) / 4, rtol=1e-9), k


def test_calculator_energy_and_no_forces(model: LdosModel, base: Prediction) -> None:
    atoms = cell()
    calc = LdosCalculator(model, exact(max_points_per_chunk=None, keep_density=False))
    atoms.calc = calc
    assert atoms.get_potential_energy() == pytest.approx(base.energy.value, rel=1e-12)
    assert atoms.get_potential_energy(force_consistent=True) == pytest.approx(base.free_energy.value, rel=1e-12)
    assert calc.results["energy_std"] == pytest.approx(base.energy.std, rel=1e-9) and calc.results["energy_std"] > 0
    assert calc.results["fermi_level"] == pytest.approx(base.fermi_level.value, rel=1e-12)
    assert calc.results["band_energy"] == pytest.approx(base.band_energy.value, rel=1e-12)
    assert isinstance(calc.prediction, Prediction) and calc.prediction.density is None
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_forces()
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_write_prediction_round_trip(model: LdosModel, tmp_path: Path) -> None:
    from ase.io.cube import read_cube

    out = tmp_path / "pred"
    pred = predict(cell(), model, exact(max_points_per_chunk=243, write_ldos=True), out=out)
    assert sorted(p.name for p in out.iterdir()) == ["density.cube", "dos.csv", "ldos.h5", "prediction.json"]
    js = json.loads((out / "prediction.json").read_text())
    assert js["energies"]["free_energy"]["eV"] == pytest.approx(pred.free_energy.value, rel=1e-12)
    assert js["energies"]["free_energy"]["std_eV"] == pytest.approx(pred.free_energy.std, rel=1e-12)
    assert js["energies"]["band_energy"]["meV_per_atom"] == pytest.approx(1000 * pred.band_energy.value / 4)
    assert js["fermi_level"]["eV"] == pytest.approx(pred.fermi_level.value) and js["grid_shape"] == list(SHAPE)
    with open(out / "density.cube") as f:
        cube = read_cube(f)
    assert cube["data"].shape == SHAPE
    assert np.allclose(cube["data"], pred.density, rtol=2e-6)
    assert np.allclose(cube["atoms"].positions, pred.atoms.positions, atol=1e-5)
    table = np.loadtxt(out / "dos.csv", delimiter=",", skiprows=1)
    assert table.shape == (LADDER.n, 3 + 3)
    assert np.allclose(table[:, 0], LADDER.energies) and np.allclose(table[:, 1], pred.dos, rtol=1e-10)
    with LdosFile(out / "ldos.h5") as f:
        assert f.shape == SHAPE and f.temperature == T and f.n_electrons == 12.0
        assert np.allclose(f.dos(), pred.dos, rtol=1e-6)


def test_out_of_range_atom_density_is_reported(tmp_path: Path) -> None:
    """A cell whose atom density lies outside the training range gets a warning in the prediction, its JSON and the
    log; one inside (within the 2 % tolerance) gets none; the bare function agrees."""
    atoms = cell()
    rho = len(atoms) / atoms.get_volume()
    assert extrapolation_warnings(atoms, ["atom_density"], {"atom_density": [0.99 * rho, 0.995 * rho]}) == []
    assert extrapolation_warnings(atoms, ["atom_density"], {}) == []  # no recorded range (older models)
    far = extrapolation_warnings(atoms, ["atom_density"], {"atom_density": [0.8 * rho, 0.9 * rho]})
    assert len(far) == 1 and "outside the training range" in far[0]
    m = make_model(members=2)
    m.training_data = {**m.training_data, "global_input_ranges": {"atom_density": [0.8 * rho, 0.9 * rho]}}
    pred = predict(atoms, m, exact(keep_density=False), out=tmp_path / "pred")
    assert pred.warnings == far
    assert json.loads((tmp_path / "pred" / "prediction.json").read_text())["warnings"] == far
    inside = make_model(members=2)
    inside.training_data = {**inside.training_data, "global_input_ranges": {"atom_density": [rho, rho]}}
    assert predict(atoms, inside, exact(keep_density=False)).warnings == []


def test_clear_errors(model: LdosModel) -> None:
    bad = cell()
    bad[0].symbol = "Cu"
    with pytest.raises(ValueError, match=r"Cu.*not trained on"):
        predict(bad, model)
    slab = cell()
    slab.pbc = (True, True, False)
    with pytest.raises(ValueError, match="periodic"):
        predict(slab, model)
    with pytest.raises(ValueError, match="extra|forbid|Extra"):
        PredictConfig(chunk=3)  # type: ignore[call-arg]


def test_trained_folder_records_what_prediction_needs(tmp_path: Path) -> None:
    """A model trained on (tiny) snapshots records temperature, ecutrho and the pseudopotential; prediction
    uses them without overrides and refuses a different pseudopotential."""
    atoms = cell()
    shape = qe_fft_shape(atoms.cell[:], ECUT_RY)
    x = on_grid(atoms, SETTINGS, shape)
    xs = (x - x.mean((0, 1, 2))) / x.std((0, 1, 2))
    y = free_electron_ldos(atoms.get_volume() / 4) * (1 + 0.05 * np.tanh(xs[..., :1]))
    upf = pseudopotential("Al")
    meta = LdosMeta(atoms=atoms, ladder=LADDER, shape=shape, temperature=T, n_electrons=12.0,
                    ecutrho=ECUT_RY * RYDBERG, provenance={"pseudo_Al": f"{upf.name} sha256:{checksum(upf)[:16]}"})
    snap = tmp_path / "snap"
    snap.mkdir()
    write_ldos_h5(snap / "ldos.h5", meta, y.astype(np.float32))
    save_grid_h5(snap / "descriptors.h5", x.astype(np.float32), atoms, SETTINGS)
    cfg = LdosModelConfig(network=MLPConfig(hidden=(8,), activation="tanh"), members=1, batch_size=256,
                          training=LoopConfig(epochs=2, patience=None, schedule="constant"))
    train_ldos_model([snap], snap, cfg, tmp_path / "model")
    m = load_ldos_model(tmp_path / "model")
    assert m.training_data is not None
    assert m.training_data["temperature"] == T and m.training_data["ecutrho"] == pytest.approx(ECUT_RY * RYDBERG)
    assert m.training_data["elements"] == ["Al"] and "Al" in m.training_data["pseudopotentials"]
    rho = len(atoms) / atoms.get_volume()
    assert m.training_data["global_input_ranges"]["atom_density"] == pytest.approx([rho, rho], rel=1e-12)
    pred = predict(atoms, tmp_path / "model", PredictConfig(keep_density=False))  # the default float32 network
    assert pred.grid_shape == SHAPE and pred.temperature == T and np.isfinite(pred.free_energy.value)
    assert pred.free_energy.std == 0.0  # one member
    m.training_data["pseudopotentials"]["Al"] = "other.UPF sha256:0123456789abcdef"
    with pytest.raises(ValueError, match="pseudopotential"):
        predict(atoms, m)


def test_prediction_temperature_is_never_guessed() -> None:
    """Requested > atoms.info > the single training temperature; several training temperatures and no
    choice is an error that lists them."""
    from alml.surrogate.predict import prediction_temperature

    a = cell()
    one = {"temperature": 298.0, "temperatures": [298.0]}
    two = {"temperature": 298.0, "temperatures": [298.0, 933.0]}
    assert prediction_temperature(a, None, one) == 298.0
    assert prediction_temperature(a, 500.0, two) == 500.0
    with pytest.raises(ValueError, match=r"298, 933 K"):
        prediction_temperature(a, None, two)
    a.info["temperature"] = 933.0
    assert prediction_temperature(a, None, two) == 933.0
    with pytest.raises(ValueError, match="does not record"):
        prediction_temperature(cell(), None, {})
