"""The demo's stages after the DFT labelling (``alml demo``): a small version of each pillar, end to end.

- :func:`potential_stage`: a committee potential trained on the demo's labelled cells, a short ASE NVT run with
  the committee's uncertainty logged, and the same cell in LAMMPS with the exported model (energies compared).
- :func:`mldft_stage`: LDOS training data (pw.x at 933 K, native LDOS, 4-atom snapshots), an LDOS committee, and a
  prediction for a cell twice the training size compared with pw.x on that cell.

Both are sized to take a few minutes on two cores, not to be accurate: a handful of structures and epochs.
Each returns a dict of figures for the console and writes everything under its ``out`` folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

#: DFT settings of the demo: the defaults with a coarser k-mesh, so distorted cells take seconds, not minutes
DEMO_KSPACING = 0.25


def potential_stage(images: list[Atoms], out: Path, members: int = 4, epochs: int = 200) -> dict[str, Any]:
    """Train a small committee on ``images``; run 100 NVT steps at 600 K in ASE (uncertainty logged) and 100 in
    LAMMPS with the exported model; return errors, the largest committee disagreement and the LAMMPS check."""
    from alml.nn.mlp import MLPConfig
    from alml.potential.calculator import NNCalculator
    from alml.potential.config import CommitteeConfig, PotentialConfig, TrainingConfig
    from alml.potential.dataset import pack
    from alml.potential.lammps_export import export_lammps
    from alml.potential.md import MDConfig, read_thermo, run_ase_md, run_lammps_md
    from alml.potential.train import predict_dataset, train_potential
    from alml.structures import bulk, rattle, supercell

    pc = PotentialConfig(
        network=MLPConfig(hidden=(32, 32), activation="tanh"),
        training=TrainingConfig(epochs=epochs, lr=3e-3, batch_size=4, val_fraction=0.1, patience=None),
        committee=CommitteeConfig(members=members, workers=2),
    )
    data = pack(images, pc.descriptors, cache=out / "descriptors", progress=True)
    pot = train_potential(data, pc, out / "model", provenance={"data": "alml demo"})
    m = predict_dataset(pot, data).metrics  # training-set errors: a sanity check, not a test

    start = rattle(supercell(bulk("Al", "fcc", a=4.04, cubic=True), 2), 0.05, seed=1)
    md = MDConfig(ensemble="nvt", temperature=600.0, steps=100, log_every=10, traj_every=50)
    calc = NNCalculator(pot)
    run_ase_md(start, calc, md, out / "md-ase", progress=True, title="demo: ASE NVT 600 K, committee")
    thermo = read_thermo(out / "md-ase" / "thermo.csv")

    ex = export_lammps(pot, out / "lammps")
    run_lammps_md(start, ex.commands(), ex.elements, md.model_copy(update={"steps": 0, "traj_every": 0}),
                  out / "md-lammps-check", progress=False)
    e_lammps = float(read_thermo(out / "md-lammps-check" / "thermo.csv")["epot_eV"][0])
    probe = start.copy()
    probe.calc = calc
    e_torch = probe.get_potential_energy()
    run_lammps_md(start, ex.commands(), ex.elements, md, out / "md-lammps", progress=True,
                  title="demo: LAMMPS NVT 600 K, exported committee mean")
    return {
        "train_e_rmse_mev_atom": m["e_rmse"], "train_f_rmse_eV_A": m["f_rmse"],
        "md_max_energy_std_mev_atom": 1e3 * float(np.nanmax(thermo["energy_std_eV_atom"])),
        "md_max_force_std_eV_A": float(np.nanmax(thermo["forces_std_max_eV_A"])),
        "lammps_minus_torch_eV_atom": (e_lammps - e_torch) / len(start),
    }


def _snapshots(temperature: float, n: int) -> list[Atoms]:
    from alml.structures import bulk, rattle

    frames = []
    for seed in range(n):
        a = rattle(bulk("Al", "fcc", a=4.05, cubic=True), 0.12, seed=seed)
        a.info["temperature"] = temperature
        frames.append(a)
    return frames


def mldft_stage(out: Path, temperature: float = 933.0, epochs: int = 40) -> dict[str, Any]:
    """LDOS data for three 4-atom snapshots (2 train, 1 validation), an LDOS committee, its test on the validation
    snapshot, and a prediction for an 8-atom cell compared with pw.x on it (the same DFT settings)."""
    from alml.compute import ExecutorConfig
    from alml.dft.ldos import dft_at_temperature
    from alml.dft.settings import DFTSettings, PwProfile
    from alml.dft.tasks import label
    from alml.io import atomic_write
    from alml.nn import LoopConfig, MLPConfig
    from alml.plot.surrogate import prediction_figure
    from alml.structures import rattle, supercell
    from alml.surrogate.data import TrainingDataConfig, make_training_data
    from alml.surrogate.evaluate import evaluate_model
    from alml.surrogate.model import LdosModelConfig
    from alml.surrogate.predict import PredictConfig, predict
    from alml.surrogate.train import train_ldos_model

    dft = DFTSettings(kspacing=DEMO_KSPACING, forces=False)
    cfg = TrainingDataConfig(dft=dft, root=str(out / "data"), temperature=temperature)
    outcomes = make_training_data(_snapshots(temperature, 3), cfg, ExecutorConfig(workers=1, cores=2, retries=0),
                                  PwProfile(ranks=2))
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise RuntimeError(f"LDOS data failed for snapshot(s) {[o.index for o in failed]}: {failed[0].error}")
    dirs = [Path(o.ldos).parent for o in outcomes]
    model_cfg = LdosModelConfig(
        network=MLPConfig(hidden=(64, 64), activation="relu"), members=2, batch_size=512,
        monitor="val_band_energy_mev_per_atom",
        training=LoopConfig(epochs=epochs, lr=2e-3, patience=None, schedule="cosine", checkpoint_every=10),
    )
    from alml.dft.pseudo import pseudopotential

    pseudos = {"Al": pseudopotential("Al")}
    model = train_ldos_model(dirs[:2], dirs[2], model_cfg, out / "model", pseudopotentials=pseudos)
    ev = evaluate_model(model, [dirs[2]], out=out / "test")

    big = rattle(supercell(_snapshots(temperature, 1)[0], (2, 1, 1)), 0.05, seed=7)
    pred = predict(big, model, PredictConfig(workers=2), out=out / "predict-8atoms", progress=True)
    fig = prediction_figure(pred.energies, pred.dos, pred.dos_std, pred.density, pred.fermi_level.value,
                            title="demo: ML-DFT prediction, 8 atoms")
    atomic_write(out / "predict-8atoms" / "prediction.png", lambda p: fig.savefig(p, format="png", dpi=120))
    ref = label(big, dft_at_temperature(dft, temperature), PwProfile(ranks=2), out / "pw-8atoms")
    n = len(big)
    row = ev.rows[0]
    return {
        "validation_band_energy_error_mev_atom": row.band_energy_error_mev_per_atom,
        "validation_total_energy_error_mev_atom": row.total_energy_error_mev_per_atom,
        "validation_density_error_percent": row.density_error_percent,
        "big_free_energy_ml_eV": pred.free_energy.value, "big_free_energy_std_eV": pred.free_energy.std,
        "big_free_energy_pw_eV": ref.free_energy,
        "big_error_mev_atom": 1e3 * (pred.free_energy.value - ref.free_energy) / n,
        "big_std_mev_atom": 1e3 * pred.free_energy.std / n,
        "big_fermi_ml_eV": pred.fermi_level.value, "big_fermi_pw_eV": ref.fermi_level,
        "prediction_seconds": pred.timings["total"],
    }
