"""Build, label (pw.x) and export the Al acceptance dataset ``data/al_dft_v1.extxyz``. Resumable.

Continue the labelling (from the repo root; background, lowest priority, commits the data file
every ``--chunk`` new labels)::

    nohup nice -n 19 .venv/bin/python bench/build_al_dataset.py --commit > /dev/null 2>&1 &

Progress: ``.venv/bin/python bench/build_al_dataset.py --status``, or ``tail runs/al_dft_v1/build.log`` (its log).
Run ``--status`` first in a fresh checkout: it builds the candidates and shows any error on the terminal.

What it does:

1. candidates: :func:`alml.potential.dataset_builder.acceptance_set` (213 structures of 4–32 atoms,
   seeded; hot/liquid snapshots from EAM MD in LAMMPS), cached in ``runs/al_dft_v1/candidates.extxyz``;
2. resumes: frames already in ``data/al_dft_v1.extxyz`` with the same DFT settings hash are imported into
   the store ``runs/al_dft_v1/al_dft_v1.db`` and not recomputed; pw.x work folders under
   ``runs/al_dft_v1/pw/`` are named by a hash of structure and settings, so an interrupted run
   picks up finished pw.x results too;
3. labels the rest with :func:`alml.dft.batch.label_structures` (1 worker x 1 rank by default): ``fcc-eos``
   first, then round-robin over categories, smallest cells first, except that within each window of
   ``--chunk`` cells the largest start first; a free worker takes the next cell at once, and each result goes
   into the store as it finishes;
4. after every ``--chunk`` new labels, and at the end, writes ``data/al_dft_v1.extxyz`` (atomically; labels,
   ``candidate``, ``category``, ``split`` (a fixed held-out test set, 20 % per category:
   ``dataset_builder.assign_splits``), ``source``,
   DFT settings in ``info``) and, with ``--commit``, commits that one file. Labels whose structure is no longer a
   candidate (the unrelaxed interstitials, retired to ``data/al_dft_v1_unrelaxed_interstitials.extxyz``) stay in
   the store and are not exported;
5. once >= 5 ``fcc-eos`` points are labelled, fits QE's E(V) (same settings as every label) and writes
   ``runs/al_dft_v1/qe_eos.json``.

Cost (measured here, 1 rank, niced, on a shared and loaded 2-core machine): perfect 4-atom cells 0.5-2 min,
rattled 4-atom cells (~900 k-points without symmetry) ~5 min, 7-atom vacancy cells ~9 min; 16-atom cells
are estimated at 20-40 min and 32-atom ones at hours, ~1-2 days in all. On a quiet machine use
``--ranks 2`` (pw.x with 2 k-point pools). A pw.x run that fails (or passes ``--timeout``) is recorded in
``runs/al_dft_v1/failed.json`` and skipped later unless ``--retry-failed``.

DFT settings: the default ``DFTSettings()`` (PBE, TM norm-conserving pseudopotential, ecutwfc 40 Ry,
Marzari-Vanderbilt 0.05 Ry, kspacing 0.13 / Å, forces, no stress) for every structure. Why these
(docs/benchmarks.md, "k-point convergence of the potential's labels"):

- ``bench/kmesh_convergence.py`` (4-atom fcc cube, error against 24³): with 0.02 Ry the free energy at the
  0.13 spacing (12³/13³) is +2.2/-1.2 meV/atom off, and errors stay above 1 meV/atom up to 15³; with 0.05 Ry
  it is +0.45/+0.10. The first 35 labels (0.02 Ry) are superseded and relabelled at 0.05 Ry.
- Coarser meshes were rejected: ``bench/kmesh_check.py`` at kspacing 0.25 (0.02 Ry) moved the free energy by a
  cell-dependent 8.9 meV/atom (std), up to 25; at 0.05 Ry, kspacing 0.2 (8³ on the cube) is still -3.3
  meV/atom off and 0.25 (7³ -> 6³) jumps by 9 meV/atom along the fcc E(V) scan. A mesh error depends on
  the cell, so it is label noise, and it must stay well below the 2-3 meV/atom target.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

from ase import Atoms

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("build_al_dataset")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=REPO / "runs" / "al_dft_v1", help="work folder (not committed)")
    p.add_argument("--out", type=Path, default=REPO / "data" / "al_dft_v1.extxyz", help="labelled data file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=20,
                   help="new labels between exports/commits; also the window in which the largest cells start first")
    p.add_argument("--limit", type=int, default=None, help="stop after this many new labels")
    p.add_argument("--max-atoms", type=int, default=None,
                   help="label only the pending cells of at most this many atoms (the others wait)")
    p.add_argument("--workers", type=int, default=1, help="concurrent pw.x runs")
    p.add_argument("--ranks", type=int, default=1, help="MPI ranks per pw.x run")
    p.add_argument("--timeout", type=float, default=8 * 3600.0, help="seconds per pw.x run")
    p.add_argument("--commit", action="store_true", help="git-commit the data file at each export")
    p.add_argument("--retry-failed", action="store_true", help="retry candidates that failed before")
    p.add_argument("--status", action="store_true", help="print what is labelled and exit")
    return p.parse_args(argv)


def settings():  # noqa: ANN201
    from alml.dft.settings import DFTSettings

    return DFTSettings()


def candidates(root: Path, seed: int) -> list[Atoms]:
    """The candidate set, built once and cached (so structure hashes never drift within a tree)."""
    from ase.io import read

    cache = root / "candidates.extxyz"
    if not cache.is_file():
        _build(cache, root, seed)
    # always the file's (8-decimal) positions, so structure hashes match the labelled data file's
    return read(cache, index=":")


def _build(cache: Path, root: Path, seed: int) -> None:
    from ase.io import write

    from alml.io import atomic_write
    from alml.potential.dataset_builder import acceptance_set

    log.info("building candidates (EAM MD for hot/liquid snapshots) ...")
    cands = acceptance_set(seed, root / "eam_md", progress=lambda name: log.info("  %s", name))
    for a in cands:
        if "momenta" in a.arrays:
            del a.arrays["momenta"]
    atomic_write(cache, lambda p: write(p, cands, format="extxyz"))


def git_commit(path: Path, message: str, tries: int = 30, logger: logging.Logger = log) -> bool:
    """``git add PATH && git commit -m MESSAGE -- PATH`` (only that file), waiting out others' index locks."""
    rel = str(path.resolve().relative_to(REPO))
    for _ in range(tries):
        if (REPO / ".git" / "index.lock").exists():
            time.sleep(10)
            continue
        add = subprocess.run(["git", "add", rel], cwd=REPO, capture_output=True, text=True)
        if add.returncode == 0:
            c = subprocess.run(["git", "commit", "-m", message, "--", rel], cwd=REPO, capture_output=True, text=True)
            if c.returncode == 0:
                logger.info("committed %s: %s", rel, message)
                return True
            if "nothing to commit" in c.stdout + c.stderr or "no changes added" in c.stdout + c.stderr:
                return True
            err = c.stderr
        else:
            err = add.stderr
        if "index.lock" not in err:
            logger.warning("git commit of %s failed: %s", rel, err.strip())
            return False
        time.sleep(10)
    logger.warning("git commit of %s gave up (index locked)", rel)
    return False


def export(store, cands: list[Atoms], sh: str, out: Path) -> list[Atoms]:  # noqa: ANN001
    """Write the labelled candidates (in candidate order) to ``out``, atomically; return them."""
    from ase.io import write

    from alml.io import atomic_write
    from alml.potential.dataset_builder import assign_splits
    from alml.structures import structure_hash

    s = settings()
    splits = assign_splits(cands)
    by_hash = {structure_hash(a): a for a in cands}
    rows = {}
    for a in store.select(settings_hash=sh):
        rows[a.info["structure_hash"]] = a
    order = {structure_hash(a): k for k, a in enumerate(cands)}
    retired = sorted(h for h in rows if h not in by_hash)
    if retired:  # labels of structures this build no longer has (e.g. the unrelaxed interstitials): store only
        log.info("%d stored labels are not candidates of this build; not exported", len(retired))
    frames = []
    for h in sorted((h for h in rows if h in by_hash), key=order.__getitem__):
        a = rows[h]
        c = by_hash[h]
        info = {k: a.info[k] for k in ("source", "settings_hash", "structure_hash", "dft_job", "fermi_level")
                if k in a.info}
        info.update(candidate=c.info["candidate"], category=c.info["category"], source=c.info["source"],
                    split=splits[c.info["candidate"]])
        info.update(dft_ecutwfc=s.ecutwfc, dft_kspacing=s.kspacing, dft_smearing=s.smearing, dft_degauss_ry=s.degauss)
        a.info = info
        frames.append(a)
    atomic_write(out, lambda p: write(p, frames, format="extxyz"))
    return frames


def qe_eos(frames: list[Atoms], root: Path) -> dict | None:
    """a0 and B of fcc from the labelled ``fcc-eos`` points (QE, the labels' own settings)."""
    from alml.io import atomic_write_json
    from alml.validate.eos import fit_eos

    pts = sorted((a.get_volume() / len(a), a.get_potential_energy(force_consistent=True) / len(a))
                 for a in frames if a.info.get("category") == "fcc-eos")
    if len(pts) < 5:
        return None
    try:
        fit = fit_eos([v for v, _ in pts], [e for _, e in pts])
    except ValueError as err:
        log.info("QE E(V) not fitted yet: %s", err)
        return None
    res = {"a0_A": fit.lattice_constant(4), "B_GPa": fit.bulk_modulus, "v0_A3": fit.v0, "e0_eV": fit.e0,
           "points": pts, "energy": "free_energy", "settings": settings().model_dump(mode="json")}
    atomic_write_json(root / "qe_eos.json", res)
    return res


def cpu_cost(root: Path, cands: list[Atoms], frames: list[Atoms]) -> str:
    """Measured pw.x CPU minutes per cell size (finished work folders, all their parts) and the CPU hours left."""
    import re
    import statistics

    from alml.dft.parse import parse_cpu_time
    from alml.structures import structure_hash

    per_size: dict[int, list[float]] = collections.defaultdict(list)
    for d in sorted((root / "pw").glob("*/")):
        m = re.search(r"nat\s*=\s*(\d+)", (d / "pw.in").read_text()) if (d / "pw.in").is_file() else None
        if m is None or not (d / "result.json").is_file():
            continue
        parts = [d / "pw.out", *d.glob("pw.out.stopped*")]
        cpu = [parse_cpu_time(f.read_text(errors="replace")) for f in parts if f.is_file()]
        per_size[int(m.group(1))].append(sum(c or 0.0 for c in cpu) / 60.0)
    done = {a.info.get("structure_hash") for a in frames}
    left = collections.Counter(len(a) for a in cands if structure_hash(a) not in done)
    lines, hours, unmeasured = ["pw.x CPU (one process) per cell size, measured: median min (n) -> cells left"], 0.0, 0
    for n in sorted(set(per_size) | set(left)):
        med = statistics.median(per_size[n]) if per_size.get(n) else None
        if med is not None:
            hours += med * left.get(n, 0) / 60.0
        else:
            unmeasured += left.get(n, 0)
        lines.append(f"  {n:3d} atoms  " + (f"{med:6.1f} ({len(per_size[n])})" if med is not None else "     —    ")
                     + f"  -> {left.get(n, 0)} left")
    lines.append(f"left: ~{hours:.0f} CPU-h over the measured sizes, plus {unmeasured} cells of unmeasured sizes")
    return "\n".join(lines)


def status(frames: list[Atoms], cands: list[Atoms], failed: dict) -> str:
    """Labelled / planned per category, with the span of the labels' free energy per atom above the lowest."""
    per_atom: dict[str, list[float]] = collections.defaultdict(list)
    for a in frames:
        per_atom[a.info.get("category", "?")].append(a.get_potential_energy(force_consistent=True) / len(a))
    e_min = min((min(v) for v in per_atom.values()), default=0.0)
    total = collections.Counter(a.info["category"] for a in cands)
    lines = [f"{len(frames)} of {len(cands)} labelled ({len(failed)} failed); E/N above the lowest label (eV/atom)"]
    for c, n in total.items():
        e = per_atom.get(c, [])
        span = f"{min(e) - e_min:6.3f} - {max(e) - e_min:.3f}" if e else ""
        lines.append(f"  {c:13s} {len(e):4d} / {n:<4d} {span}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(root / "build.log"), logging.StreamHandler(sys.stdout)],
    )
    from alml.runtime import set_threads

    set_threads(1)
    from ase.io import read

    from alml.compute import ExecutorConfig
    from alml.data import Store
    from alml.data.store import import_extxyz
    from alml.dft.batch import LabelOutcome, label_structures
    from alml.dft.settings import PwProfile
    from alml.dft.tasks import settings_hash
    from alml.potential.dataset_builder import interleave
    from alml.structures import structure_hash

    cands = candidates(root, args.seed)
    s = settings()
    sh = settings_hash(s)
    store = Store(root / "al_dft_v1.db")
    if args.out.is_file() and args.out.stat().st_size > 0:
        same = [a for a in read(args.out, index=":", format="extxyz") if str(a.info.get("settings_hash")) == sh]
        if same:
            tmp = root / "import.extxyz"
            from ase.io import write

            write(tmp, same, format="extxyz")
            new = sum(added for _, added in import_extxyz(tmp, store))
            tmp.unlink()
            if new:
                log.info("imported %d labelled structures from %s", new, args.out)
    failed_path = root / "failed.json"
    failed: dict = json.loads(failed_path.read_text()) if failed_path.is_file() else {}
    if args.status:
        hashes = {structure_hash(a): a for a in cands}
        frames = [a for a in store.select(settings_hash=sh) if a.info.get("structure_hash") in hashes]
        for a in frames:
            a.info["category"] = hashes[a.info["structure_hash"]].info["category"]
        print(status(frames, cands, failed))
        print(cpu_cost(root, cands, frames))
        eos = qe_eos(frames, root)
        if eos:
            print(f"QE fcc E(V): a0 = {eos['a0_A']:.4f} Å, B = {eos['B_GPa']:.1f} GPa")
        return 0
    frames = export(store, cands, sh, args.out)
    done = {a.info["structure_hash"] for a in frames} | {a.info.get("candidate") for a in frames}
    pending = [a for a in interleave(cands) if structure_hash(a) not in done and a.info["candidate"] not in done
               and (args.retry_failed or a.info["candidate"] not in failed)]
    if args.max_atoms is not None:
        pending = [a for a in pending if len(a) <= args.max_atoms]
    if args.limit is not None:
        pending = pending[: args.limit]
    log.info("settings %s; %d labelled, %d to do (%d failed before)", sh, len(frames), len(pending), len(failed))
    executor = ExecutorConfig(workers=args.workers, cores=args.workers * args.ranks, retries=0)
    # The runs start in the interleaved order, but within each window of --chunk the largest cells go first
    # (pw.x cost grows with the atom count), so that a long cell does not start last and leave a core idle at
    # the end. A worker takes the next cell as soon as it is free; results are stored as they finish.
    queue = [a for k in range(0, len(pending), args.chunk)
             for a in sorted(pending[k : k + args.chunk], key=len, reverse=True)]
    t0, new = time.perf_counter(), 0

    def save() -> list[Atoms]:
        """Write the data file, log the state, commit with ``--commit``."""
        from alml.io import atomic_write_json

        atomic_write_json(failed_path, failed)
        frames = export(store, cands, sh, args.out)
        log.info("%d new labels in %.0f s; %s", new, time.perf_counter() - t0, status(frames, cands, failed))
        eos = qe_eos(frames, root)
        if eos:
            log.info("QE fcc E(V): a0 = %.4f Å, B = %.1f GPa", eos["a0_A"], eos["B_GPa"])
        if args.commit:
            git_commit(args.out, f"data: al_dft_v1.extxyz, {len(frames)} of {len(cands)} labelled (pw.x)")
        return frames

    def on_label(o: LabelOutcome) -> None:
        nonlocal new
        a = queue[o.index]
        log.info("%-34s %3d atoms %-7s %s", a.info["candidate"], o.n_atoms, o.status,
                 f"{o.wall_time:.0f} s" if o.wall_time else (o.error or "")[:200])
        if o.status == "failed":
            failed[a.info["candidate"]] = o.error
        else:
            new += 1
            if new % args.chunk == 0:
                save()

    label_structures(queue, s, PwProfile(timeout=args.timeout), root / "pw", store, executor,
                     source="al_dft_v1", generation=0, progress=True, on_label=on_label)
    frames = save()
    log.info("done: %s", status(frames, cands, failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
