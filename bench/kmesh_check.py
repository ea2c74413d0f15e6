"""Is a coarser k-mesh good enough for the potential's training labels? Relabel labelled frames and compare.

Usage (repo root; background, lowest priority)::

    nice -n 19 .venv/bin/python bench/kmesh_check.py --kspacing 0.25 --workers 2

Takes every frame of ``data/al_dft_v1.extxyz`` (labelled at the default kspacing 0.13 / Å), relabels it at
``--kspacing`` with otherwise identical settings (work folders under ``runs/kmesh_check/``, reused on
rerun) and reports what matters for training a potential on the coarse labels:

- the free energy per atom difference (coarse - reference) per frame, its mean (a constant offset, which the
  per-element reference energy absorbs) and its spread after removing that mean (label noise);
- the RMS and maximum force-component difference;
- the cost ratio (pw.x wall time, reference / coarse).

``--degauss`` also changes the Marzari-Vanderbilt width (Ry): the difference then holds the k-mesh noise of
both label sets plus the (smooth) change of the smeared free energy with the width.

Writes ``runs/kmesh_check/kmesh_<kspacing>[_d<degauss>].json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=REPO / "data" / "al_dft_v1.extxyz")
    p.add_argument("--root", type=Path, default=REPO / "runs" / "kmesh_check")
    p.add_argument("--kspacing", type=float, default=0.25)
    p.add_argument("--degauss", type=float, default=None,
                   help="Marzari-Vanderbilt width, Ry (default: the reference's); wider converges faster in k")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)

    from ase.io import read

    from alml.compute import ExecutorConfig
    from alml.dft.batch import label_structures
    from alml.dft.settings import DFTSettings
    from alml.dft.tasks import job_hash, load_result, settings_hash
    from alml.io import atomic_write_json
    from alml.runtime import set_threads

    set_threads(1)
    ref = read(args.data, index=":", format="extxyz")
    degauss = args.degauss if args.degauss is not None else DFTSettings().degauss
    tag = f"k{args.kspacing}" if args.degauss is None else f"k{args.kspacing}_d{degauss}"
    coarse = DFTSettings(kspacing=args.kspacing, degauss=degauss)
    sh = settings_hash(coarse)
    frames = [a.copy() for a in ref]
    out = label_structures(frames, coarse, root=args.root / tag,
                           executor=ExecutorConfig(workers=args.workers, cores=args.workers, retries=0))
    ref_root = REPO / "runs" / "al_dft_v1" / "pw"  # where bench/build_al_dataset.py ran the reference labels
    by_structure = {}
    for f in ref_root.glob("*/result.json"):
        d = json.loads(f.read_text())
        by_structure[d.get("structure_hash")] = d.get("wall_time")
    ref_times = {str(a.info.get("candidate")): by_structure.get(a.info.get("structure_hash")) for a in ref}
    rows = []
    for a, o in zip(ref, out):
        if o.status == "failed":
            print(f"{a.info.get('candidate')}: failed: {o.error}", file=sys.stderr)
            continue
        r = load_result(args.root / tag / job_hash(a, sh))
        n = len(a)
        de = (r.free_energy - a.get_potential_energy(force_consistent=True)) / n
        df = np.asarray(r.forces) - a.get_forces()
        rows.append({"candidate": a.info.get("candidate"), "n_atoms": n, "dE_meV_atom": 1e3 * de,
                     "dF_rms": float(np.sqrt(np.mean(df**2))), "dF_max": float(np.abs(df).max()),
                     "time_ref_s": ref_times.get(str(a.info.get("candidate"))), "time_s": r.wall_time})
    de = np.array([r["dE_meV_atom"] for r in rows])
    dfr = np.sqrt(np.mean([r["dF_rms"] ** 2 for r in rows]))
    pairs = [(r["time_ref_s"], r["time_s"]) for r in rows if r["time_ref_s"] and r["time_s"]]
    summary = {"kspacing": args.kspacing, "degauss_ry": degauss, "reference_degauss_ry": DFTSettings().degauss,
               "reference_kspacing": DFTSettings().kspacing, "n": len(rows),
               "dE_mean_meV_atom": float(de.mean()), "dE_std_meV_atom": float(de.std()),
               "dE_maxdev_meV_atom": float(np.abs(de - de.mean()).max()), "dF_rms": float(dfr),
               "dF_max": max(r["dF_max"] for r in rows),
               "cost_ratio": float(sum(t for t, _ in pairs) / sum(t for _, t in pairs)) if pairs else None,
               "rows": rows}
    atomic_write_json(args.root / f"kmesh_{tag[1:]}.json", summary)
    print(f"{'candidate':34s} {'N':>3s} {'dE meV/at':>10s} {'dF rms':>8s} {'dF max':>8s} {'t_ref':>6s} {'t':>6s}")
    for r in rows:
        print(f"{r['candidate']:34s} {r['n_atoms']:3d} {r['dE_meV_atom']:10.3f} {r['dF_rms']:8.4f} "
              f"{r['dF_max']:8.4f} {r['time_ref_s'] or 0:6.0f} {r['time_s'] or 0:6.0f}")
    ref_s = DFTSettings()
    print(f"kspacing {args.kspacing}, degauss {degauss} Ry vs {ref_s.kspacing}, {ref_s.degauss} Ry: "
          f"dE mean {de.mean():+.3f} meV/atom, spread (std) "
          f"{de.std():.3f}, max |dev| {summary['dE_maxdev_meV_atom']:.3f}; force RMS diff {dfr:.4f} eV/Å "
          f"(max {summary['dF_max']:.4f}); cost ratio {summary['cost_ratio']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
