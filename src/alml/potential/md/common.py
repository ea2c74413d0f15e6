"""Shared pieces of the MD drivers: configuration, results, thermo files, plots, progress."""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms
from pydantic import Field, model_validator

from alml.config import Config
from alml.io import atomic_write, atomic_write_json

log = logging.getLogger(__name__)


THERMO_COLUMNS = ("step", "time_fs", "temperature_K", "epot_eV", "ekin_eV", "etot_eV", "pressure_GPa", "volume_A3")
UNCERTAINTY_COLUMNS = ("energy_std_eV_atom", "forces_std_mean_eV_A", "forces_std_max_eV_A")
SUMMARY = "summary.json"
THERMO = "thermo.csv"


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

