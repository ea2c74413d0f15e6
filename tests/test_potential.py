"""The committee potential: dataset cache, model, numerical gradients, calculator, training, model folder.

Reference labels come from ASE's EMT (a cheap stand-in for DFT in plumbing tests); descriptors use
2J = 4 (14 components); networks are tiny and train for a few dozen epochs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from labels import emt_labelled

from alml import structures as st
from alml.descriptors import BispectrumSettings, ElementParams, per_atom
from alml.nn.mlp import MLPConfig
from alml.nn.scaling import fit_standardizer
from alml.potential import (
    ENERGIES_COMMITTEE,
    ENERGY_STD,
    FORCES_COMMITTEE,
    FORCES_STD,
    FORCES_STD_MAX,
    FORCES_STD_MEAN,
    NNCalculator,
    NNPotential,
    Normalization,
    PackedDataset,
    PotentialConfig,
    TrainedPotential,
    load_potential,
    pack,
    predict_dataset,
    train_potential,
)
from alml.potential import dataset as dataset_mod
from alml.potential.dataset import batch_from_descriptors, element_indices, settings_hash
from alml.potential.folder import MODEL_JSON, save_potential
from alml.runtime import set_threads

set_threads(1)

S4 = BispectrumSettings(
    twojmax=4, rcutfac=4.67637, rfac0=0.99363, bzeroflag=False, elements={"Al": ElementParams(radius=0.5)}
)
FCC = st.bulk("Al", "fcc", a=4.05, cubic=True)



def emt_images() -> list[Atoms]:
    cell = st.supercell(FCC, 2)
    out = [st.rattle(st.random_strain(cell, 0.03, seed=k), 0.08, seed=k) for k in range(8)]
    out.append(st.rattle(st.vacancies(cell, 1, seed=1), 0.05, seed=9))
    out.append(st.random_packing(20, 2.5, min_dist=2.3, seed=2))
    out.append(st.rattle(FCC, 0.1, seed=11))
    return [emt_labelled(a) for a in out]


def small_config(**over) -> PotentialConfig:
    base = {
        "descriptors": S4,
        "network": {"hidden": [12, 12], "activation": "tanh"},
        "loss": {"energy": 1.0, "forces": 0.1, "stress": 0.1},
        "training": {"epochs": 80, "batch_size": 2, "lr": 1e-2, "patience": None, "checkpoint_every": 10},
        "committee": {"members": 2, "workers": 1},
    }
    for k, v in over.items():
        base[k] = {**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return PotentialConfig.model_validate(base)


@pytest.fixture(scope="module")
def images() -> list[Atoms]:
    return emt_images()


@pytest.fixture(scope="module")
def packed(images, tmp_path_factory) -> PackedDataset:
    return pack(images, S4, cache=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def trained(packed, tmp_path_factory) -> TrainedPotential:
    return train_potential(packed, small_config(), tmp_path_factory.mktemp("model") / "m")


def random_potential(members: int = 1, activation: str = "tanh", seed: int = 0, hidden=(8, 8)) -> TrainedPotential:
    """Untrained but far from linear: weights ~ N(0, 0.4²), normalisation from a rattled cell."""
    torch.manual_seed(seed)
    d = per_atom(st.rattle(st.supercell(FCC, 2), 0.15, seed=seed), S4, gradients=False)
    norm = Normalization(fit_standardizer(d.B, np.zeros(len(d.B), int), 1), np.array([-3.4]), 0.25)
    model = NNPotential(["Al"], S4.n_components, MLPConfig(hidden=hidden, activation=activation), members, norm)
    model = model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.4)
    cfg = small_config(committee={"members": members}, network={"hidden": list(hidden), "activation": activation})
    return TrainedPotential(model=model.eval(), config=cfg)


# --- dataset and cache ---------------------------------------------------------------------------


def test_pack_reads_the_cache_and_recomputes_damaged_files(images, tmp_path, monkeypatch):
    cache = tmp_path / "c"
    first = pack(images[:3], S4, cache=cache)
    files = sorted((cache / settings_hash(S4)).glob("*.npz"))
    assert len(files) == 3
    calls = []
    real = dataset_mod.per_atom
    monkeypatch.setattr(dataset_mod, "per_atom", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = pack(images[:3], S4, cache=cache)
    assert calls == [] and np.array_equal(again.dBdr, first.dBdr) and np.array_equal(again.B, first.B)
    files[0].write_bytes(b"not an npz")
    pack(images[:3], S4, cache=cache)
    assert len(calls) == 1
    other = S4.model_copy(update={"twojmax": 2})
    assert settings_hash(other) != settings_hash(S4)
    assert pack(images[:1], other, cache=cache).n_descriptors == 5


def test_packed_dataset_layout_subset_and_file(packed, images, tmp_path):
    assert len(packed) == len(images)
    assert packed.n_atoms.tolist() == [len(a) for a in images]
    assert np.allclose(packed.energy, [a.calc.results["free_energy"] for a in images])
    assert packed.has_forces.all() and packed.has_stress.all()
    sub = packed.subset([2, 0])
    assert np.array_equal(sub.B[: len(images[2])], packed.B[packed.atom_ptr[2] : packed.atom_ptr[3]])
    assert sub.hashes.tolist() == [packed.hashes[2], packed.hashes[0]]
    batch, t = packed.batch([0, 2])
    assert batch.n_structures == 2 and int(batch.pair_j.max()) < batch.B.shape[0]
    assert int(batch.pair_i[batch.pair_struct == 1].min()) == len(images[0])
    packed.save(tmp_path / "d.npz")
    back = PackedDataset.load(tmp_path / "d.npz")
    assert back.content_hash() == packed.content_hash() and np.array_equal(back.dBdr, packed.dBdr)


def test_pack_needs_the_energy_label(images):
    bare = images[0].copy()
    with pytest.raises(ValueError, match="free_energy"):
        pack([bare], S4)
    e_only = images[0].copy()
    e_only.calc = SinglePointCalculator(e_only, energy=-1.0)
    d = pack([e_only], S4, energy_key="energy")
    assert not d.has_forces[0] and not d.has_stress[0] and np.isnan(d.forces).all()


# --- model ---------------------------------------------------------------------------------------


def test_batch_of_structures_equals_one_by_one(packed):
    pot = random_potential(members=3)
    batch, _ = packed.batch([0, 9, 10])
    together = pot.model(batch, forces=True, stress=True)
    for k, s in enumerate([0, 9, 10]):
        one, _ = packed.batch([s])
        alone = pot.model(one, forces=True, stress=True)
        rows = (batch.atom_struct == k).nonzero().squeeze(1)
        assert torch.allclose(together.energy[:, k], alone.energy[:, 0], rtol=0, atol=1e-10)
        assert torch.allclose(together.forces[:, rows], alone.forces, atol=1e-12)
        assert torch.allclose(together.stress[:, k], alone.stress[:, 0], atol=1e-12)
    assert together.energies.shape == (3, batch.B.shape[0])


def test_member_and_stack_roundtrip():
    pot = random_potential(members=3)
    parts = [pot.model.member(k) for k in range(3)]
    again = NNPotential.stack(parts)
    d = per_atom(st.rattle(FCC, 0.1, seed=3), S4)
    b = batch_from_descriptors(d, np.zeros(4, int), FCC.get_volume())
    assert torch.allclose(again(b).energy, pot.model(b).energy)
    assert torch.allclose(parts[1](b).forces[0], pot.model(b).forces[1])


# --- numerical gradients -------------------------------------------------------------------------


def _numerical_forces(atoms: Atoms, h: float = 1e-4) -> np.ndarray:
    f = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for a in range(3):
            e = []
            for sgn in (1, -1):
                b = atoms.copy()
                b.positions[i, a] += sgn * h
                b.calc = atoms.calc
                e.append(b.get_potential_energy())
            f[i, a] = -(e[0] - e[1]) / (2 * h)
    return f


def _numerical_stress(atoms: Atoms, h: float = 1e-5) -> np.ndarray:
    """σ_ab = (1/V) ∂E/∂ε_ab under the finite homogeneous strain r -> (1 + ε) r."""
    v = atoms.get_volume()
    s = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = []
            for sgn in (1, -1):
                eps = np.eye(3)
                eps[a, b] += sgn * h
                c = atoms.copy()
                c.set_cell(atoms.cell[:] @ eps.T, scale_atoms=True)
                c.calc = atoms.calc
                e.append(c.get_potential_energy())
            s[a, b] = (e[0] - e[1]) / (2 * h) / v
    return s


@pytest.mark.parametrize(
    "name, atoms",
    [
        ("cubic 4 atoms (cutoff > half the box)", st.rattle(FCC, 0.12, seed=4)),
        ("strained triclinic 8 atoms", st.rattle(st.random_strain(st.supercell(st.bulk("Al", "fcc", a=4.05), 2),
                                                                   0.04, seed=5), 0.1, seed=5)),
        ("vacancy 31 atoms", st.rattle(st.vacancies(st.supercell(FCC, 2), 1, seed=2), 0.06, seed=6)),
    ],
)
def test_forces_and_stress_are_gradients_of_the_energy(name, atoms):
    pot = random_potential(members=2, activation="tanh", seed=1)
    atoms = atoms.copy()
    atoms.calc = NNCalculator(pot)
    f = atoms.get_forces()
    s = atoms.get_stress(voigt=False)
    if len(atoms) > 8:  # finite differences of a few atoms suffice for the big cell
        idx = [0, 7, 19]
        sub_f = _numerical_forces(atoms)[idx]
        assert np.abs(f[idx] - sub_f).max() < 1e-6, name
    else:
        assert np.abs(f - _numerical_forces(atoms)).max() < 1e-6, name
    assert np.abs(f.sum(axis=0)).max() < 1e-10  # no net force
    assert np.abs(s - _numerical_stress(atoms)).max() < 1e-7, name
    assert np.allclose(s, s.T, atol=1e-12)  # rotational invariance


def test_forces_of_a_cluster_and_no_stress():
    pot = random_potential(members=1, activation="sigmoid", seed=2)
    atoms = st.rattle(FCC, 0.1, seed=8)
    atoms.pbc = False
    atoms.center(vacuum=3.0)
    atoms.calc = NNCalculator(pot)
    assert np.abs(atoms.get_forces() - _numerical_forces(atoms)).max() < 1e-6
    from ase.calculators.calculator import PropertyNotImplementedError

    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


# --- calculator --------------------------------------------------------------------------------


def test_calculator_results_and_committee_keys():
    pot = random_potential(members=3, seed=3)
    atoms = st.rattle(st.supercell(FCC, 2), 0.1, seed=1)
    n = len(atoms)
    calc = NNCalculator(pot)
    atoms.calc = calc
    e = atoms.get_potential_energy()
    assert atoms.get_potential_energy(force_consistent=True) == e
    assert np.sum(atoms.get_potential_energies()) == pytest.approx(e, abs=1e-9)
    ek = calc.get_property(ENERGIES_COMMITTEE, atoms)
    fk = calc.get_property(FORCES_COMMITTEE, atoms)
    assert ek.shape == (3,) and fk.shape == (3, n, 3)
    assert e == pytest.approx(ek.mean())
    assert calc.get_property(ENERGY_STD, atoms) == pytest.approx(np.std(ek, ddof=1) / np.sqrt(n))
    fstd = calc.get_property(FORCES_STD, atoms)
    assert fstd.shape == (n,) and np.allclose(fstd, np.sqrt(fk.var(axis=0, ddof=1).sum(axis=1)))
    assert calc.get_property(FORCES_STD_MEAN, atoms) == pytest.approx(fstd.mean())
    assert calc.get_property(FORCES_STD_MAX, atoms) == pytest.approx(fstd.max())
    assert np.allclose(atoms.get_forces(), fk.mean(axis=0))
    assert atoms.get_stress().shape == (6,)
    one = NNCalculator(TrainedPotential(pot.model.member(0), pot.config))
    assert one.get_property(ENERGY_STD, atoms) == 0.0
    assert np.all(one.get_property(FORCES_STD, atoms) == 0.0)
    assert one.get_potential_energy(atoms) == pytest.approx(ek[0])


def test_energy_only_skips_gradients(monkeypatch):
    pot = random_potential()
    seen = []
    import alml.potential.calculator as calc_mod

    real = calc_mod.per_atom
    monkeypatch.setattr(calc_mod, "per_atom", lambda a, s, gradients: seen.append(gradients) or real(a, s, gradients))
    atoms = st.rattle(FCC, 0.05, seed=2)
    atoms.calc = NNCalculator(pot)
    atoms.get_potential_energy()
    atoms.get_forces()
    assert seen == [False, True]


# --- training ------------------------------------------------------------------------------------


def test_training_beats_the_constant_baseline(trained, packed):
    pred = predict_dataset(trained, packed)
    e_base = 1000 * np.std(packed.energy / packed.n_atoms)
    f_base = np.sqrt(np.mean(packed.forces**2))
    assert pred.metrics["e_rmse"] < 0.3 * e_base
    assert pred.metrics["f_rmse"] < 0.5 * f_base
    assert pred.energy_std.shape == (len(packed),) and np.all(pred.energy_std > 0)
    hist = json.loads((trained.path / "training" / "member_00" / "history.json").read_text())
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]


def test_per_structure_errors_add_up_to_the_dataset_metrics(trained, packed):
    pred = predict_dataset(trained, packed, chunk=3)  # several chunks
    e_rmse, f_rmse = pred.rmse()
    assert e_rmse * 1e3 == pytest.approx(pred.metrics["e_rmse"], rel=1e-9)
    assert f_rmse == pytest.approx(pred.metrics["f_rmse"], rel=1e-9)
    off = np.cumsum([0, *packed.n_atoms])
    d = pred.forces_pred - pred.forces_ref  # every structure has force labels here
    direct = [np.sqrt(np.mean(d[off[i]:off[i + 1]] ** 2)) for i in range(len(packed))]
    np.testing.assert_allclose(pred.force_rmse_per_structure(), direct, rtol=1e-9)
    e_sub, f_sub = pred.rmse([1, 3])
    assert e_sub == pytest.approx(np.sqrt(np.mean((pred.energy_pred - pred.energy_ref)[[1, 3]] ** 2)))
    assert f_sub == pytest.approx(np.sqrt(np.mean(np.concatenate([d[off[i]:off[i + 1]] for i in (1, 3)]) ** 2)))


def test_model_folder_layout_and_roundtrip(trained, packed):
    p = trained.path
    for f in ("model.json", "weights.pt", "normalization.json", "config.yaml", "provenance.json", "metrics.json",
              "learning_curves.png", "training/dataset.npz", "training/member_01/split.json"):
        assert (p / f).is_file(), f
    prov = json.loads((p / "provenance.json").read_text())
    assert prov["dataset_hash"] == packed.content_hash() and prov["versions"]["torch"] == torch.__version__
    split = [json.loads((p / f"training/member_{k:02d}/split.json").read_text())["val"] for k in range(2)]
    assert split[0] != split[1]  # members differ in data split
    again = load_potential(p)
    assert again.n_members == 2 and again.config == trained.config
    batch, _ = packed.batch([0, 1])
    assert torch.equal(again.model(batch).forces, trained.model(batch).forces)
    (p / MODEL_JSON).rename(p / "model.off")
    try:
        with pytest.raises(FileNotFoundError, match="not a complete"):
            load_potential(p)
    finally:
        (p / "model.off").rename(p / MODEL_JSON)


def _weights(pot: TrainedPotential) -> list[torch.Tensor]:
    return [v for k, v in pot.model.state_dict().items() if k.startswith("nets")]


def test_rerun_resumes_and_extends_to_the_uninterrupted_result(packed, tmp_path):
    short = small_config(training={"epochs": 4, "checkpoint_every": 2}, committee={"members": 1})
    long = small_config(training={"epochs": 8, "checkpoint_every": 2}, committee={"members": 1})
    train_potential(packed, short, tmp_path / "a")
    resumed = train_potential(packed, long, tmp_path / "a")
    hist = json.loads((tmp_path / "a/training/member_00/history.json").read_text())
    assert len(hist) == 8
    fresh = train_potential(packed, long, tmp_path / "b")
    for x, y in zip(_weights(resumed), _weights(fresh)):
        assert torch.allclose(x, y, rtol=0, atol=1e-12)
    mtime = (tmp_path / "b/training/member_00/member.pt").stat().st_mtime_ns
    train_potential(packed, long, tmp_path / "b")  # finished: nothing is retrained
    assert (tmp_path / "b/training/member_00/member.pt").stat().st_mtime_ns == mtime


def test_warm_start_starts_from_the_earlier_weights(trained, packed, tmp_path):
    cfg = small_config(training={"epochs": 0}, committee={"members": 3})
    warm = train_potential(packed, cfg, tmp_path / "w", warm_start=trained.path)
    old = trained.model
    for k in range(3):
        for x, y in zip(warm.model.nets[k].parameters(), old.nets[k % 2].parameters()):
            assert torch.equal(x, y)
    assert np.allclose(warm.model.normalization().descriptors.mean, old.normalization().descriptors.mean)
    bad = small_config(network={"hidden": [4]}, training={"epochs": 0})
    with pytest.raises(ValueError, match="network"):
        train_potential(packed, bad, tmp_path / "x", warm_start=trained.path)


def test_committee_in_parallel_processes_equals_sequential(packed, tmp_path):
    cfg = small_config(training={"epochs": 3}, committee={"members": 2, "workers": 1})
    seq = train_potential(packed.subset(range(6)), cfg, tmp_path / "seq")
    par_cfg = cfg.model_copy(update={"committee": cfg.committee.model_copy(update={"workers": 2})})
    par = train_potential(packed.subset(range(6)), par_cfg, tmp_path / "par")
    for x, y in zip(_weights(seq), _weights(par)):
        assert torch.allclose(x, y, rtol=0, atol=1e-12)
    assert not torch.allclose(seq.model.nets[0][0].net[0].weight, seq.model.nets[1][0].net[0].weight)


def test_save_potential_writes_model_json_last(tmp_path):
    pot = random_potential(members=2)
    save_potential(tmp_path / "m", pot.model, pot.config, {"note": "test"})
    back = load_potential(tmp_path / "m")
    assert back.provenance == {"note": "test"}
    d = per_atom(st.rattle(FCC, 0.1, seed=3), S4)
    b = batch_from_descriptors(d, element_indices(FCC, S4), FCC.get_volume())
    assert torch.allclose(back.model(b).energy, pot.model(b).energy, rtol=0, atol=1e-12)
