"""pw.x wall time against cell size (fcc Al: 1, 4, 32 atoms) at alml's default DFT settings, 1 and 2 MPI ranks.

Usage:  .venv/bin/python bench/bench_pw.py [--sizes 1 4 32] [--ranks 1 2] [--out runs/bench/pw.json]

Each run goes to a fresh work directory (no reuse). Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from ase.build import bulk

from alml.dft.espresso import kpoint_grid
from alml.dft.settings import DFTSettings, PwProfile
from alml.dft.tasks import label

CELLS = {
    1: lambda: bulk("Al", "fcc", a=4.04),
    4: lambda: bulk("Al", "fcc", a=4.04, cubic=True),
    32: lambda: bulk("Al", "fcc", a=4.04, cubic=True).repeat(2),
    108: lambda: bulk("Al", "fcc", a=4.04, cubic=True).repeat(3),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 32])
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=Path("runs/bench/pw.json"))
    args = ap.parse_args()
    settings = DFTSettings()
    rows = []
    for n in args.sizes:
        atoms = CELLS[n]()
        for ranks in args.ranks:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                r = label(atoms, settings, PwProfile(ranks=ranks, timeout=None), tmp)
                wall = time.perf_counter() - t0
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
            row = dict(atoms=n, ranks=ranks, kmesh="x".join(map(str, kpoint_grid(atoms, settings.kspacing))),
                       k_irreducible=r.n_kpoints, fft=r.fft_grid, scf_iterations=r.n_iterations,
                       wall_s=round(wall, 1), peak_rss_gb_children=round(peak, 2))
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))
    print("\n| atoms | k-mesh (irreducible) | FFT grid | SCF iterations | ranks | wall (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['atoms']} | {r['kmesh']} ({r['k_irreducible']}) | {'x'.join(map(str, r['fft']))} | "
              f"{r['scf_iterations']} | {r['ranks']} | {r['wall_s']} |")


if __name__ == "__main__":
    main()
