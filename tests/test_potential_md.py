"""MD drivers (ASE with the committee, LAMMPS with the exported model), the ``md`` CLI, the dataset builder.

A tiny committee (2 members, 2J = 4, 12x12 tanh) is trained on EMT labels, as in test_potential.py.
Tolerances:
- NVE, velocity Verlet, 1 fs, 60 steps, 32 atoms at 300 K: |E_tot(t) - E_tot(0)| <= 0.2 meV/atom
  (the networks and switched descriptors are smooth; measured 5e-6 eV/atom, while the kinetic energy
  swings by 0.7 meV/atom);
- LAMMPS's first-step energy equals the ASE calculator's to 1e-6 eV/atom (measured 5e-17; the thermo
  file keeps 15 significant digits).
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.io import read
from labels import emt_labelled
from typer.testing import CliRunner

from alml import structures as st
from alml.cli import app
from alml.descriptors import BispectrumSettings, ElementParams
from alml.potential import NNCalculator, PotentialConfig, TrainedPotential, export_lammps, pack, train_potential
from alml.potential import dataset_builder as db
from alml.potential.md import (
    SUMMARY,
    THERMO_COLUMNS,
    UNCERTAINTY_COLUMNS,
    LammpsRunConfig,
    MDConfig,
    eam_commands,
    lammps_md_input,
    parse_loop_times,
    read_thermo,
    run_ase_md,
    run_lammps_md,
)
from alml.runtime import set_threads

set_threads(1)

S4 = BispectrumSettings(
    twojmax=4, rcutfac=4.67637, rfac0=0.99363, bzeroflag=False, elements={"Al": ElementParams(radius=0.5)}
)
FCC = st.bulk("Al", "fcc", a=4.05, cubic=True)
CELL32 = st.supercell(FCC, 2)
E_CONSERVE = 2e-4  # eV/atom
E_LAMMPS = 1e-6  # eV/atom



@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> TrainedPotential:
    images = [st.rattle(st.random_strain(CELL32, 0.03, seed=k), 0.1, seed=k) for k in range(6)]
    images.append(st.rattle(st.vacancies(CELL32, 1, seed=1), 0.05, seed=9))
    data = pack([emt_labelled(a) for a in images], S4, cache=None)
    cfg = PotentialConfig.model_validate({
        "descriptors": S4,
        "network": {"hidden": [12, 12], "activation": "tanh"},
        "loss": {"energy": 1.0, "forces": 0.1, "stress": 0.1},
        "training": {"epochs": 30, "batch_size": 2, "lr": 1e-2, "patience": None, "checkpoint_every": 30},
        "committee": {"members": 2, "workers": 1},
    })
    return train_potential(data, cfg, tmp_path_factory.mktemp("model") / "m")


@pytest.fixture(scope="module")
def nve_run(trained, tmp_path_factory):
    cfg = MDConfig(ensemble="nve", steps=60, timestep=1.0, temperature=300.0, log_every=5, traj_every=20,
                   trajectory_format="extxyz")
    out = tmp_path_factory.mktemp("nve")
    start = st.rattle(CELL32, 0.03, seed=3)
    return start, run_ase_md(start, NNCalculator(trained), cfg, out, progress=False)


def test_ase_nve_conserves_energy_and_logs_uncertainty(nve_run):
    _, res = nve_run
    th = read_thermo(res.thermo)
    assert list(th) == [*THERMO_COLUMNS, *UNCERTAINTY_COLUMNS]
    assert th["step"].tolist() == list(range(0, 61, 5))
    drift = np.abs(th["etot_eV"] - th["etot_eV"][0]).max() / res.n_atoms
    assert drift <= E_CONSERVE, f"NVE energy drift {drift:.2e} eV/atom"
    # not trivially conserved: kinetic and potential energy exchange far more than the drift
    assert np.ptp(th["ekin_eV"]) / res.n_atoms > 10 * drift
    for col in UNCERTAINTY_COLUMNS:
        assert np.all(np.isfinite(th[col])) and np.all(th[col] >= 0), col
    assert th["energy_std_eV_atom"].max() > 0  # two members disagree somewhere
    assert np.all(np.isfinite(th["pressure_GPa"]))


def test_ase_trajectory_and_summary(nve_run):
    start, res = nve_run
    frames = read(res.trajectory, index=":")
    assert [f.info["step"] for f in frames] == [0, 20, 40, 60]
    assert frames[0].get_potential_energy() == pytest.approx(read_thermo(res.thermo)["epot_eV"][0], abs=1e-6)
    assert frames[-1].arrays["forces_std"].shape == (len(start),)
    assert "energy_std_eV_atom" in frames[-1].info
    assert np.abs(frames[-1].positions - frames[0].positions).max() > 0.01
    assert (res.out_dir / SUMMARY).is_file() and (res.out_dir / "thermo.png").is_file()
    assert res.atom_steps_per_s > 0


def test_ase_nvt_langevin_heats_toward_target(trained, tmp_path):
    cfg = MDConfig(ensemble="nvt", steps=80, timestep=2.0, temperature=600.0, initial_temperature=0.0,
                   friction=0.05, log_every=10, traj_every=0, seed=1)
    res = run_ase_md(CELL32, NNCalculator(trained), cfg, tmp_path, progress=False)
    t = read_thermo(res.thermo)["temperature_K"]
    assert t[0] == 0.0
    assert t[-4:].mean() > 250.0, t  # from 0 K toward 600 K (friction 0.05/fs: 20 fs relaxation)
    assert res.trajectory is None


def test_ase_npt_changes_the_volume(trained, tmp_path):
    cfg = MDConfig(ensemble="npt", steps=30, timestep=2.0, temperature=300.0, pressure=5.0, barostat_time=100.0,
                   thermostat_time=50.0, log_every=10, traj_every=10)
    res = run_ase_md(CELL32, NNCalculator(trained), cfg, tmp_path, progress=False)
    th = read_thermo(res.thermo)
    assert th["volume_A3"][-1] != pytest.approx(th["volume_A3"][0], rel=1e-6)
    assert len(read(res.trajectory, index=":")) == 4


def test_lammps_md_first_step_matches_ase_and_mpi(trained, tmp_path):
    ex = export_lammps(trained, tmp_path / "export")
    start = st.rattle(CELL32, 0.05, seed=4)
    e_ase = NNCalculator(trained).get_potential_energy(start)
    cfg = MDConfig(ensemble="nve", steps=20, timestep=1.0, temperature=300.0, log_every=5, traj_every=10)
    one = run_lammps_md(start, ex.commands(), ex.elements, cfg, tmp_path / "r1", progress=False)
    th1 = read_thermo(one.thermo)
    assert th1["step"].tolist() == [0, 5, 10, 15, 20]
    assert abs(th1["epot_eV"][0] - e_ase) / len(start) <= E_LAMMPS
    assert np.abs(th1["etot_eV"] - th1["etot_eV"][0]).max() / len(start) <= E_CONSERVE
    frames = read(one.trajectory, index=":", format="lammps-dump-text")
    assert len(frames) == 3
    two = run_lammps_md(start, ex.commands(), ex.elements, cfg, tmp_path / "r2", progress=False,
                        run=LammpsRunConfig(ranks=2))
    th2 = read_thermo(two.thermo)
    assert abs(th2["epot_eV"][0] - e_ase) / len(start) <= E_LAMMPS
    # same velocities on any number of ranks (loop geom): the two runs follow each other
    np.testing.assert_allclose(th2["etot_eV"], th1["etot_eV"], atol=1e-6 * len(start))
    assert two.ranks == 2 and two.loop_time > 0
    assert parse_loop_times((two.out_dir / "log.lammps").read_text())[-1][1] == 2


def test_lammps_nvt_npt_eam(tmp_path):
    cell = st.supercell(FCC, 3)
    nvt = MDConfig(ensemble="nvt", steps=400, timestep=2.0, temperature=900.0, initial_temperature=0.0,
                   friction=0.02, log_every=50, traj_every=0)
    th = read_thermo(run_lammps_md(cell, eam_commands(), ["Al"], nvt, tmp_path / "nvt", progress=False).thermo)
    assert th["temperature_K"][0] == 0.0 and th["temperature_K"][-4:].mean() > 500.0
    npt = MDConfig(ensemble="npt", steps=400, timestep=2.0, temperature=300.0, pressure=-2.0, log_every=50,
                   traj_every=0, barostat_time=200.0)
    th = read_thermo(run_lammps_md(cell, eam_commands(), ["Al"], npt, tmp_path / "npt", progress=False).thermo)
    assert th["volume_A3"][-1] > th["volume_A3"][0]  # tension expands the cell


def test_lammps_input_units():
    cfg = MDConfig(ensemble="nvt", timestep=2.0, temperature=500.0, temperature_end=700.0, friction=0.01, steps=10)
    text = lammps_md_input(cfg, ["pair_style zero 5.0", "pair_coeff * *"])
    assert "timestep 0.002\n" in text
    assert "fix alml_thermostat all langevin 500 700 0.1 " in text  # damp 1/friction = 100 fs = 0.1 ps
    npt = lammps_md_input(cfg.model_copy(update={"ensemble": "npt", "pressure": 1.5, "cell": "anisotropic"}),
                          ["pair_style zero 5.0"])
    assert "fix alml_int all npt temp 500 700 0.1 tri 15000 15000 1" in npt.splitlines()  # GPa -> bar, fs -> ps
    with pytest.raises(ValueError, match="thermostat"):
        MDConfig(ensemble="nve", temperature_end=10.0)


def test_cli_md_ase_and_lammps(trained, tmp_path):
    job = {"model": str(trained.path), "engine": "ase", "structure": {"lattice": "fcc", "a": 4.05, "repeat": 2},
           "md": {"ensemble": "nvt", "steps": 10, "log_every": 5, "traj_every": 5}, "output": str(tmp_path / "a")}
    (tmp_path / "md.yaml").write_text(yaml.safe_dump(job))
    runner = CliRunner()
    r = runner.invoke(app, ["potential", "md", str(tmp_path / "md.yaml"), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "committee ρ" in r.output and (tmp_path / "a" / SUMMARY).is_file()
    r = runner.invoke(app, ["potential", "md", str(tmp_path / "md.yaml"), "--engine", "lammps", "--steps", "20",
                            "--output", str(tmp_path / "l"), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert read_thermo(tmp_path / "l" / "thermo.csv")["step"][-1] == 20
    assert (tmp_path / "l" / "potential" / "Al.mliap.model").is_file()
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**job, "md": {"ensembel": "nvt"}}))
    r = runner.invoke(app, ["potential", "md", str(tmp_path / "bad.yaml")])
    assert r.exit_code == 2 and "md.ensembel" in r.output


def test_dataset_builder_static_part_is_seeded_and_sized():
    from alml.structures import structure_hash

    def build(seed):
        return [*db.fcc_eos(), *db.other_lattices(seed), *db.strained(seed), *db.rattled(seed), *db.vacancies(seed),
                *db.interstitials(seed), *db.surfaces(seed)]

    a, b, c = build(0), build(0), build(1)
    assert [structure_hash(x) for x in a] == [structure_hash(x) for x in b]
    assert [structure_hash(x) for x in a] != [structure_hash(x) for x in c]
    assert all(4 <= len(x) <= 32 for x in a)
    assert len({x.info["candidate"] for x in a}) == len(a) == 133
    assert min(st.min_distance(x) for x in a) > 1.6
    fcc = db.fcc_eos()
    assert [round(x.cell[0, 0], 3) for x in fcc] == [3.85, 3.9, 3.95, 4.0, 4.05, 4.1, 4.15, 4.2, 4.25]
    hcp = [x for x in a if x.info["candidate"] == "hcp/v1.00"][0]
    assert hcp.get_volume() / len(hcp) == pytest.approx(db.A0**3 / 4)
    order = db.interleave(a)
    assert [x.info["category"] for x in order[:10]] == ["fcc-eos"] * 9 + ["bcc"]
    assert len({x.info["category"] for x in order[9:17]}) == 7  # round-robin over the other categories


def test_eam_relaxed_interstitial_reaches_a_minimum():
    """The relaxed interstitial sits at a force-free point of the EAM, far below the unrelaxed site, and the
    dataset's interstitials (relaxed, then rattled) stay within the energy range of the melt (< 0.5 eV/atom
    above fcc under the same EAM)."""
    cell = st.supercell(st.bulk("Al", "fcc", a=db.A0, cubic=True), (2, 1, 1))
    start = st.rattle(st.interstitial(cell, "tetrahedral", seed=1), 0.02, seed=2)
    relaxed = db.eam_relaxed(start, fmax=1e-3)
    calc = db.eam_calculator()

    def per_atom(a: Atoms) -> tuple[float, np.ndarray]:
        a = a.copy()
        a.calc = calc
        return a.get_potential_energy() / len(a), a.get_forces()

    try:
        e_fcc, e_start, (e_relaxed, f_relaxed) = per_atom(cell)[0], per_atom(start)[0], per_atom(relaxed)
        above = [per_atom(a)[0] - e_fcc for a in db.interstitials(0)]
    finally:
        calc.clean()
    assert np.abs(f_relaxed).max() < 1.5e-3
    assert np.allclose(relaxed.cell, start.cell) and "eam_relaxed" in relaxed.info["source"]
    assert (e_start - e_fcc) * 9 > 15.0  # tetrahedral site: ~20 eV unrelaxed
    assert 2.0 < (e_relaxed - e_fcc) * 9 < 5.0  # formation energy of the relaxed defect
    assert len(above) == 10 and 0.1 < min(above) and max(above) < 0.5


def test_eam_snapshots_are_deterministic(tmp_path):
    from alml.structures import structure_hash

    md = MDConfig(ensemble="nvt", temperature=800.0, timestep=2.0, seed=5, traj_every=50)
    runs = [db.eam_snapshots(st.supercell(FCC, (2, 1, 1)), md, 2, tmp_path / f"r{k}",
                             equilibrate=md.model_copy(update={"steps": 100})) for k in range(2)]
    assert len(runs[0]) == 2
    assert [structure_hash(a) for a in runs[0]] == [structure_hash(a) for a in runs[1]]
    assert runs[0][0].get_chemical_symbols() == ["Al"] * 8
    assert runs[0][0].get_temperature() > 100.0


def test_mliap_memory_estimate_matches_lammps_allocation(tmp_path):
    from alml.potential.md import mliap_memory_estimate

    model = tmp_path / "m.mliap.model"
    model.write_text("# nelements nparams\n1 4033\n")
    cell = st.supercell(FCC, 10)  # 4,000 atoms, 18 neighbours each within 4.676 Å
    est = mliap_memory_estimate(cell, model, 4.67637, skin=1.0, ranks=1)
    # LAMMPS 2025.7.22 allocates owned atoms x pairs ints (32,000 atoms on one rank: 73,728,000,000 bytes)
    assert est.largest_allocation == 4000 * 4000 * 18 * 4
    assert mliap_memory_estimate(cell, model, 4.67637, ranks=2).largest_allocation == est.largest_allocation / 4
    assert est.resident == pytest.approx(3 * 4033 * 8 * 4000 * (1 + 11.35 / 40.5) ** 3, rel=1e-3)
