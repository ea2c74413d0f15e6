"""LAMMPS export: ``pair_style mliap model nn`` reproduces the PyTorch model; the CLI trains, tests, exports.

Tolerances of the issue: |ΔE| ≤ 1e-6 eV/atom and |ΔF| ≤ 1e-5 eV/Å on random, strained and defected
Al cells (the measured agreement is ~1e-13, float64 round-off).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from alml import structures as st
from alml.cli import app
from alml.descriptors import BispectrumSettings, ElementParams, per_atom
from alml.nn.mlp import MLPConfig
from alml.nn.scaling import fit_standardizer
from alml.potential import (
    NNCalculator,
    NNPotential,
    Normalization,
    TrainedPotential,
    export_lammps,
    lammps_evaluate,
    load_potential,
)
from alml.potential.config import PotentialConfig
from alml.potential.lammps_export import descriptor_text, model_text
from alml.runtime import set_threads

set_threads(1)

S6 = BispectrumSettings(
    twojmax=6, rcutfac=4.67637, rfac0=0.99363, bzeroflag=False, elements={"Al": ElementParams(radius=0.5)}
)
FCC = st.bulk("Al", "fcc", a=4.05, cubic=True)
E_TOL = 1e-6  # eV/atom
F_TOL = 1e-5  # eV/Å

CELLS = {
    "random packing": lambda: st.random_packing(32, 2.4, min_dist=2.2, seed=3),
    "strained": lambda: st.rattle(st.random_strain(st.supercell(FCC, 2), 0.04, seed=1), 0.08, seed=1),
    "vacancy": lambda: st.rattle(st.vacancies(st.supercell(FCC, 2), 2, seed=4), 0.08, seed=2),
    "triclinic primitive": lambda: st.rattle(st.supercell(st.bulk("Al", "fcc", a=4.05), [3, 2, 2]), 0.1, seed=3),
    "small cubic (cutoff > half box)": lambda: st.rattle(FCC, 0.1, seed=5),
}


def potential(settings: BispectrumSettings, members: int, activation: str, bzero: bool = False) -> TrainedPotential:
    torch.manual_seed(7)
    s = settings.model_copy(update={"bzeroflag": bzero})
    d = per_atom(st.rattle(st.supercell(FCC, 2), 0.15, seed=0), s, gradients=False)
    norm = Normalization(fit_standardizer(d.B, np.zeros(len(d.B), int), 1), np.array([-3.4]), 0.3)
    model = NNPotential(["Al"], s.n_components, MLPConfig(hidden=(10, 8), activation=activation), members, norm)
    model = model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    cfg = PotentialConfig(descriptors=s, network=model.network, committee={"members": members})
    return TrainedPotential(model=model.eval(), config=cfg)


def agreement(pot: TrainedPotential, atoms, export) -> tuple[float, float, float, float]:
    """max |ΔE|/atom, max |ΔF|, max |Δσ| (eV/Å³), max |ΔE_i| between the torch model and LAMMPS."""
    atoms = atoms.copy()
    atoms.calc = NNCalculator(pot)
    e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)
    ei = atoms.get_potential_energies()
    r = lammps_evaluate(atoms, export)
    n = len(atoms)
    return abs(e - r.energy) / n, np.abs(f - r.forces).max(), np.abs(s - r.stress).max(), np.abs(ei - r.energies).max()


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_lammps_matches_torch_committee_mean(activation, tmp_path):
    pot = potential(S6, members=3, activation=activation)
    ex = export_lammps(pot, tmp_path)
    worst = np.zeros(4)
    for make in CELLS.values():
        worst = np.maximum(worst, agreement(pot, make(), ex))
    de, df, ds, dei = worst
    print(f"{activation}: max|dE|/atom={de:.2e} eV, max|dF|={df:.2e} eV/A, max|dsigma|={ds:.2e} eV/A^3")
    assert de <= E_TOL and df <= F_TOL
    assert ds <= 1e-8 and dei <= 1e-8  # per-atom energies and the virial agree as well


def test_one_member_export_and_bzeroflag(tmp_path):
    pot = potential(S6, members=2, activation="tanh", bzero=True)
    ex = export_lammps(pot, tmp_path, member=1, name="m1")
    assert ex.members == (1,) and ex.model_file.name == "m1.mliap.model"
    one = TrainedPotential(pot.model.member(1), pot.config)
    for name in ("strained", "vacancy"):
        de, df, _, _ = agreement(one, CELLS[name](), ex)
        assert de <= E_TOL and df <= F_TOL, name


def test_file_formats(tmp_path):
    pot = potential(S6, members=2, activation="relu")
    text = model_text(pot.model)
    rows = [line.split("#")[0].split() for line in text.splitlines()]
    rows = [r for r in rows if r]
    k = S6.n_components
    nparams = (k + 1) * 20 + (20 + 1) * 16 + (16 + 1) * 1  # two members side by side
    assert rows[0] == ["1", str(nparams)]
    assert rows[1] == ["NET", str(k), "3", "relu", "20", "relu", "16", "linear", "1"]
    assert sum(len(r) for r in rows[2:]) == 2 * k + nparams
    assert max(len(r) for r in rows) <= 30 and max(len(line) for line in text.splitlines()) < 1024
    d = descriptor_text(S6)
    assert "bzeroflag 0" in d and "twojmax 6" in d and "elems Al" in d and "radelems 0.5" in d
    with pytest.raises(ValueError, match="quadratic"):
        descriptor_text(S6.model_copy(update={"quadraticflag": True}))
    ex = export_lammps(pot, tmp_path)
    folder = tmp_path.resolve()
    assert ex.commands() == [
        f"pair_style mliap model nn {folder}/Al.mliap.model descriptor sna {folder}/Al.mliap.descriptor",
        "pair_coeff * * Al",
    ]
    assert ex.include_file.read_text().splitlines() == ex.commands()
    with pytest.raises(ValueError, match="not in the potential"):
        ex.pair_coeff(["Cu"])


# --- CLI: train -> test -> export ----------------------------------------------------------------


def _labelled_store(path):
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    from alml.data import Store

    store = Store(path)
    cell = st.supercell(FCC, 2)
    frames = [st.rattle(st.random_strain(cell, 0.03, seed=k), 0.08, seed=k) for k in range(5)]
    frames.append(st.rattle(st.vacancies(cell, 1, seed=1), 0.05, seed=9))
    for k, a in enumerate(frames):
        a.calc = EMT()
        r = {p: a.calc.get_property(p, a) for p in ("energy", "free_energy", "forces")}
        a.calc = SinglePointCalculator(a, **r)
        store.add(a, source=f"test{k}", generation=0 if k < 4 else 1, settings_hash="emt")
    return store


def test_cli_train_test_export(tmp_path):
    _labelled_store(tmp_path / "al.db")
    cfg = {
        "data": {"store": str(tmp_path / "al.db"), "cache": str(tmp_path / "cache")},
        "potential": {
            "descriptors": {"twojmax": 4, "rcutfac": 4.67637, "rfac0": 0.99363, "bzeroflag": False,
                            "elements": {"Al": {"radius": 0.5}}},
            "network": {"hidden": [8], "activation": "tanh"},
            "training": {"epochs": 5, "batch_size": 2},
            "committee": {"members": 2, "workers": 1},
        },
        "output": str(tmp_path / "model"),
    }
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(cfg))
    runner = CliRunner()
    r = runner.invoke(app, ["potential", "train", str(tmp_path / "train.yaml")])
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and (tmp_path / "model" / "model.json").is_file()
    prov = load_potential(tmp_path / "model").provenance
    assert prov["dft_settings_hashes"] == ["emt"]

    r = runner.invoke(app, ["potential", "test", str(tmp_path / "model"), "--data", str(tmp_path / "al.db"),
                            "--select", "generation=1", "--cache", str(tmp_path / "cache"),
                            "--plot", str(tmp_path / "parity.png"), "--out", str(tmp_path / "err.json")])
    assert r.exit_code == 0, r.output
    assert "e_rmse" in r.output and (tmp_path / "parity.png").is_file() and (tmp_path / "err.json").is_file()

    r = runner.invoke(app, ["potential", "export", str(tmp_path / "model"), "--out", str(tmp_path / "lmp")])
    assert r.exit_code == 0, r.output
    assert re.search(r"^pair_style mliap model nn \S+Al\.mliap\.model descriptor sna \S+Al\.mliap\.descriptor$",
                     r.output, re.M)
    assert "pair_coeff * * Al" in r.output
    trained = load_potential(tmp_path / "model")
    ex = export_lammps(trained, tmp_path / "lmp")
    de, df, _, _ = agreement(trained, CELLS["vacancy"](), ex)
    assert de <= E_TOL and df <= F_TOL

    bad = {**cfg, "potential": {**cfg["potential"], "network": {"hidden": [8], "activation": "gelu"}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    r = runner.invoke(app, ["potential", "train", str(tmp_path / "bad.yaml")])
    assert r.exit_code == 2 and "potential.network.activation" in r.output
