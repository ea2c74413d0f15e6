"""How fast does the free energy converge with the k-mesh, per smearing width? fcc Al, 4-atom cubic cell.

Usage (repo root; background, lowest priority)::

    nice -n 19 .venv/bin/python bench/kmesh_convergence.py --degauss 0.02 0.05 --meshes 6-20 --reference 24

For each Marzari–Vanderbilt width (Ry) and each Γ-centred n×n×n mesh, pw.x (default DFTSettings otherwise)
gives the free energy per atom of the 4-atom cubic fcc cell at ``--a`` Å; the error is taken against the
``--reference`` mesh at the same width. The dataset's labels use ``kspacing`` (1/Å, 2π included), which on
this cell means n = ceil(2π / (a · kspacing)); the table also lists that equivalence and k-points × atoms,
which carries over to other cells. Work folders under ``runs/kmesh_convergence/`` (reused on rerun); writes
``runs/kmesh_convergence/convergence.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def meshes(spec: str) -> list[int]:
    lo, _, hi = spec.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", type=float, default=4.05, help="cubic lattice constant, Å")
    p.add_argument("--degauss", type=float, nargs="+", default=[0.02, 0.05])
    p.add_argument("--meshes", default="6-20")
    p.add_argument("--reference", type=int, default=24)
    p.add_argument("--root", type=Path, default=REPO / "runs" / "kmesh_convergence")
    args = p.parse_args(argv)

    from ase.build import bulk

    from alml.dft.settings import DFTSettings
    from alml.dft.tasks import label
    from alml.io import atomic_write_json
    from alml.runtime import set_threads

    set_threads(1)
    atoms = bulk("Al", "fcc", a=args.a, cubic=True)
    out: dict = {"a_A": args.a, "n_atoms": len(atoms), "rows": []}
    for d in args.degauss:
        results = {}
        for n in [*meshes(args.meshes), args.reference]:
            ks = 2 * math.pi / (args.a * (n - 0.5))  # ceil(2π/(a·ks)) = n
            r = label(atoms, DFTSettings(kspacing=ks, degauss=d), root=args.root)
            results[n] = (r.free_energy / len(atoms), r.wall_time, r.n_kpoints)
        ref = results[args.reference][0]
        for n, (f, t, nk) in sorted(results.items()):
            row = {"degauss_ry": d, "n": n, "kspacing_max": 2 * math.pi / (args.a * (n - 1)) if n > 1 else None,
                   "k_atoms": n**3 * len(atoms), "error_meV_atom": 1e3 * (f - ref), "wall_s": t, "irr_k": nk}
            out["rows"].append(row)
            print(f"degauss {d:5.3f}  n {n:3d}  k·atoms {row['k_atoms']:6d}  error {row['error_meV_atom']:+8.3f} "
                  f"meV/atom  ({nk} k, {t:.0f} s)", flush=True)
    atomic_write_json(args.root / "convergence.json", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
