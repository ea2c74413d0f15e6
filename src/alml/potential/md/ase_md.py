"""MD in ASE with any calculator; committee disagreement logged along the trajectory."""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator

from alml.potential.md.common import (
    SUMMARY,
    THERMO,
    THERMO_COLUMNS,
    UNCERTAINTY_COLUMNS,
    MDConfig,
    MDResult,
    _finish,
    _progress,
    _trajectory_writer,
)

log = logging.getLogger(__name__)


def _init_velocities(atoms: Atoms, config: MDConfig) -> None:
    from ase.md import velocitydistribution as vd

    if config.keep_velocities and np.any(atoms.get_momenta() != 0):
        return
    t0 = config.start_temperature
    if t0 > 0:
        thermalize = getattr(vd, "thermalize_momenta", None)  # ASE >= 3.29; MaxwellBoltzmannDistribution before
        if thermalize is None:
            vd.MaxwellBoltzmannDistribution(atoms, temperature_K=t0, rng=np.random.default_rng(config.seed))
        else:
            thermalize(atoms, t0, rng=np.random.default_rng(config.seed))
        vd.Stationary(atoms)
    else:
        atoms.set_momenta(np.zeros((len(atoms), 3)))


# --- ASE ---------------------------------------------------------------------------------------------


def make_ase_dynamics(atoms: Atoms, config: MDConfig) -> Any:
    """The ASE integrator of ``config`` for ``atoms`` (calculator attached, velocities set)."""
    dt = config.timestep * units.fs
    if config.ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, timestep=dt)
    if config.ensemble == "nvt":
        from ase.constraints import FixCom
        from ase.md.langevin import Langevin

        if not atoms.constraints:  # ASE >= 3.28: keep the centre of mass with FixCom, not fixcm
            atoms.set_constraint(FixCom())
        return Langevin(
            atoms, timestep=dt, temperature_K=config.temperature, friction=config.friction / units.fs,
            fixcm=False, rng=np.random.default_rng(config.seed + 1),
        )
    if config.temperature_end is not None:
        raise ValueError("ASE's MTK NPT keeps one temperature: leave temperature_end unset, or use LAMMPS")
    if not all(atoms.pbc):
        raise ValueError("NPT needs a cell periodic in all three directions")
    try:
        from ase.md.nose_hoover_chain import MTKNPT, IsotropicMTKNPT
    except ImportError:  # pragma: no cover - old ASE
        raise ValueError("NPT in ASE needs the MTK integrators of a recent ASE (>= 3.26): pip install -U ase") from None

    cls = IsotropicMTKNPT if config.cell == "isotropic" else MTKNPT
    return cls(
        atoms, timestep=dt, temperature_K=config.temperature, pressure_au=config.pressure * units.GPa,
        tdamp=config.thermostat_time * units.fs, pdamp=config.barostat_time * units.fs,
    )


def _ase_row(atoms: Atoms, step: int, config: MDConfig) -> list[float]:
    from alml.potential.calculator import ENERGY_STD, FORCES_STD_MAX, FORCES_STD_MEAN

    epot = float(atoms.get_potential_energy())
    ekin = float(atoms.get_kinetic_energy())
    res = atoms.calc.results if atoms.calc is not None else {}
    if all(atoms.pbc):
        try:
            s = atoms.get_stress(include_ideal_gas=True)
            press = float(-np.mean(s[:3]) / units.GPa)
        except Exception:  # noqa: BLE001 - a calculator without stress
            press = float("nan")
        vol = float(atoms.get_volume())
    else:
        press, vol = float("nan"), float("nan")
    unc = [float(res.get(k, np.nan)) for k in (ENERGY_STD, FORCES_STD_MEAN, FORCES_STD_MAX)]
    return [step, step * config.timestep, float(atoms.get_temperature()), epot, ekin, epot + ekin, press, vol, *unc]


def _frame(atoms: Atoms, row: Sequence[float]) -> Atoms:
    """A copy of ``atoms`` with its current results frozen in a SinglePointCalculator."""
    from alml.potential.calculator import FORCES_STD

    f = atoms.copy()
    res = atoms.calc.results if atoms.calc is not None else {}
    kw = {k: res[k] for k in ("energy", "free_energy", "forces", "stress") if k in res}
    f.calc = SinglePointCalculator(f, **kw)
    f.info.update({"step": int(row[0]), "time_fs": float(row[1])})
    for name, value in zip(UNCERTAINTY_COLUMNS, row[len(THERMO_COLUMNS):]):
        if np.isfinite(value):
            f.info[name] = float(value)
    if FORCES_STD in res:
        f.arrays["forces_std"] = np.asarray(res[FORCES_STD], dtype=float)
    return f


def run_ase_md(
    atoms: Atoms,
    calculator: Calculator,
    config: MDConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    title: str = "",
) -> MDResult:
    """Run MD in ASE; write ``thermo.csv``, the trajectory, ``thermo.png`` and ``summary.json``.

    ``atoms`` is copied; its velocities are drawn from ``config`` (or kept, ``keep_velocities``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SUMMARY).unlink(missing_ok=True)
    atoms = atoms.copy()
    atoms.calc = calculator
    _init_velocities(atoms, config)
    dyn = make_ase_dynamics(atoms, config)
    t_start = time.perf_counter()
    thermo_path = out_dir / THERMO
    traj_path = out_dir / f"trajectory.{config.trajectory_format}" if config.traj_every else None
    columns = (*THERMO_COLUMNS, *UNCERTAINTY_COLUMNS)
    log.info("ASE %s MD: %d atoms, %d steps of %.3g fs into %s", config.ensemble, len(atoms), config.steps,
             config.timestep, out_dir)
    with open(thermo_path, "w", newline="") as fthermo, _trajectory_writer(traj_path) as write_frame, \
            _progress(progress, config.steps, f"ASE {config.ensemble} MD") as update:
        writer = csv.writer(fthermo)
        writer.writerow(columns)
        fthermo.flush()
        state = {"row": None, "step": 0}

        def current_row() -> list[float]:
            if state["row"] is None or state["row"][0] != state["step"]:
                state["row"] = _ase_row(atoms, state["step"], config)
            return state["row"]

        def on_log() -> None:
            row = current_row()
            writer.writerow([f"{v:.10g}" for v in row])
            fthermo.flush()
            text = f"T {row[2]:.0f} K"
            if np.isfinite(row[len(THERMO_COLUMNS)]):
                text += f"  ρ {1000 * row[len(THERMO_COLUMNS)]:.2f} meV/atom"
            update(state["step"], text)
            if state["step"] % max(config.log_every, config.steps // 10 or 1) == 0:
                log.info("step %d: %s, Epot %.6f eV", state["step"], text, row[3])

        def on_traj() -> None:
            write_frame(_frame(atoms, current_row()))

        def on_step() -> None:  # runs first among observers: keeps the step count and the ramp
            state["step"] = dyn.nsteps
            if config.temperature_end is not None and hasattr(dyn, "set_temperature"):
                dyn.set_temperature(temperature_K=config.target_temperature(dyn.nsteps))

        dyn.attach(on_step, interval=1)
        dyn.attach(on_log, interval=config.log_every)
        if traj_path is not None:
            dyn.attach(on_traj, interval=config.traj_every)
        t_loop = time.perf_counter()
        dyn.run(config.steps)
        loop_time = time.perf_counter() - t_loop
    result = MDResult(
        engine="ase", ensemble=config.ensemble, n_atoms=len(atoms), steps=config.steps, ranks=1,
        wall_time=time.perf_counter() - t_start, loop_time=loop_time, out_dir=out_dir, thermo=thermo_path,
        trajectory=traj_path,
    )
    return _finish(result, config, title or f"ASE {config.ensemble}, {len(atoms)} atoms", {})

