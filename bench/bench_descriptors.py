"""Benchmark: bispectrum descriptors on the DFT grid (alml vs MALA 1.4) and per atom with gradients.

    .venv/bin/python bench/bench_descriptors.py [--mala-venv /tmp/mala-venv] [--out results.json]

Grid: 32-atom fcc Al (2x2x2 cubic cells, a = 4.04 Å), the dense FFT grid pw.x picks at ecutrho 160 Ry
(64³), MALA's Al settings at 2J = 6, 8, 10, with 1 and 2 processes (alml: MPI ranks of the `mpich`
wheel; MALA: mpi4py + LAMMPS under the same launcher). alml and MALA run alternately in the same
process of this script, on the same grid and settings, and their arrays are compared point for point.

MALA lives in its own virtual environment (never a dependency of alml): set-up and the LAMMPS inputs the
MALA 1.4.0 wheel lacks are in ``bench/mala_venv.py``. Without the venv the MALA columns are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from ase.build import bulk
from mala_venv import lammps_input, run_mala

from alml.descriptors import MALA_AL, on_grid, per_atom, qe_fft_shape

A0 = 4.04
ECUTRHO = 160.0

# Runs inside the MALA venv: compute the grid with MALA, time it, save rank 0's full array.
MALA_WORKER = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    from ase.io import read
    import mala
    from mala.common.parallelizer import get_rank

    structure, out, twojmax, cutoff, nx, ny, nz, use_mpi, infile, workdir = sys.argv[1:]
    params = mala.Parameters()
    params.use_mpi = use_mpi == "1"
    params.verbosity = 0
    params.descriptors.descriptor_type = "Bispectrum"
    params.descriptors.bispectrum_twojmax = int(twojmax)
    params.descriptors.bispectrum_cutoff = float(cutoff)
    params.descriptors.custom_lammps_compute_file = infile
    params.descriptors.use_z_splitting = True
    calc = mala.descriptors.Bispectrum(params)
    atoms = read(structure)
    t0 = time.perf_counter()
    data, _ = calc.calculate_from_atoms(atoms, [int(nx), int(ny), int(nz)], working_directory=workdir, use_fp64=True)
    if params.use_mpi:
        data = calc.gather_descriptors(data)
    seconds = time.perf_counter() - t0
    if get_rank() == 0:
        np.save(out, data)
        print(json.dumps({"seconds": seconds, "shape": list(data.shape), "mala": mala.__version__}))
    """
)


def _mala_run(
    venv: Path, structure: Path, shape: tuple[int, int, int], twojmax: int, nprocs: int, tmp: Path
) -> tuple[float, float, np.ndarray]:
    """MALA's time inside its calculation (calculate_from_atoms + gather), its process wall time, its array."""
    infile = lammps_input(tmp, nprocs)
    worker = tmp / "mala_worker.py"
    worker.write_text(MALA_WORKER)
    out = tmp / "mala.npy"
    args = [str(worker), str(structure), str(out), str(twojmax), str(MALA_AL.rcutfac), *map(str, shape)]
    args += ["1" if nprocs > 1 else "0", str(infile), str(tmp)]
    info, wall = run_mala(venv, args, cwd=tmp, nprocs=nprocs)
    k = MALA_AL.model_copy(update={"twojmax": twojmax}).n_components
    return float(info["seconds"]), wall, np.load(out)[..., -k:]


def _compare(a: np.ndarray, b: np.ndarray) -> dict:
    """Differences between two (nx, ny, nz, K) arrays; MALA's xyz columns are dropped by the worker."""
    if a.shape != b.shape:
        return {"same_shape": False, "alml": list(a.shape), "mala": list(b.shape)}
    d = np.abs(a - b)
    return {"same_shape": True, "max_abs": float(d.max()), "max_rel": float((d / np.maximum(np.abs(a), 1e-8)).max())}


def bench_grid(args: argparse.Namespace, results: dict) -> None:
    atoms = bulk("Al", "fcc", a=A0, cubic=True).repeat(2)
    shape = tuple(args.shape) if args.shape else qe_fft_shape(atoms.cell[:], ECUTRHO)
    npts = int(np.prod(shape))
    results["grid"] = {"shape": shape, "points": npts, "atoms": len(atoms), "rows": []}
    mala_ok = (Path(args.mala_venv) / "bin" / "python").exists() and not args.skip_mala
    if not mala_ok:
        results["grid"]["note"] = f"MALA venv {args.mala_venv} not found: MALA columns skipped"
        print(results["grid"]["note"])
    with tempfile.TemporaryDirectory(prefix="alml-bench-") as tmpdir:
        tmp = Path(tmpdir)
        structure = tmp / "al32.xyz"
        atoms.write(structure)
        for tj in args.twojmax:
            settings = MALA_AL.model_copy(update={"twojmax": tj})
            for p in args.workers:
                t0 = time.perf_counter()
                ours = on_grid(atoms, settings, shape, workers=p)
                t_alml = time.perf_counter() - t0
                row = {
                    "twojmax": tj,
                    "K": settings.n_components,
                    "procs": p,
                    "alml_s": t_alml,
                    "load_avg_1min": os.getloadavg()[0],
                }
                if mala_ok:
                    t_mala, wall, theirs = _mala_run(Path(args.mala_venv), structure, shape, tj, p, tmp)
                    agree = _compare(ours, theirs)
                    row.update(mala_s=t_mala, mala_process_s=wall, ratio=t_mala / t_alml, agreement=agree)
                    del theirs
                row["alml_pts_per_s"] = npts / t_alml
                if mala_ok:
                    row["mala_pts_per_s"] = npts / row["mala_s"]
                results["grid"]["rows"].append(row)
                print(json.dumps(row), flush=True)


def bench_kernel_cpu(args: argparse.Namespace, results: dict) -> None:
    """CPU seconds (not wall) of alml's grid call vs the MALA-style LAMMPS input, alternating, in this process.

    On a loaded machine wall times scatter by tens of percent; CPU time shows whether the two do the
    same work. The MALA-style run uses MALA's commands (``sna/grid``, global array, ``pair_style zero``
    at the cutoff with the default skin) through alml's session, without MALA's Python around it.
    """
    from alml.descriptors import LammpsSession, lammps_box
    from alml.descriptors.lammps_session import wrapped_fractional

    atoms = bulk("Al", "fcc", a=A0, cubic=True).repeat(2)
    settings = MALA_AL.model_copy(update={"twojmax": 8})
    n = 32

    def mala_style() -> None:
        box = lammps_box(atoms.cell[:])
        x = box.to_lammps(wrapped_fractional(atoms.cell[:], atoms.positions, (True, True, True)))
        with LammpsSession() as ls:
            ls.commands(
                [
                    "units metal",
                    "atom_style atomic",
                    "boundary p p p",
                    box.region_command("b"),
                    "create_box 1 b",
                    "mass * 1.0",
                ]
            )
            ls.lmp.create_atoms(len(x), list(range(1, len(x) + 1)), [1] * len(x), x.ravel().tolist())
            ls.command(f"compute bgrid all sna/grid grid {n} {n} {n} {settings.sna_args()} quadraticflag 0")
            ls.commands(
                ["pair_style zero 4.67637", "pair_coeff * *", "thermo_style custom step c_bgrid[1][1]", "run 0"]
            )
            ls.global_array("bgrid", copy=False)

    rows = []
    for _ in range(3):
        t0 = time.process_time()
        on_grid(atoms, settings, (n, n, n))
        t_alml = time.process_time() - t0
        t0 = time.process_time()
        mala_style()
        rows.append(
            {"alml_cpu_s": t_alml, "mala_style_cpu_s": time.process_time() - t0, "load_avg_1min": os.getloadavg()[0]}
        )
        print(json.dumps(rows[-1]), flush=True)
    results["kernel_cpu"] = {"grid": [n, n, n], "twojmax": 8, "rows": rows}


def bench_per_atom(args: argparse.Namespace, results: dict) -> None:
    results["per_atom"] = []
    for rep in (2, 3):
        atoms = bulk("Al", "fcc", a=A0, cubic=True).repeat(rep)
        atoms.rattle(0.05, seed=1)
        for tj in args.twojmax:
            settings = MALA_AL.model_copy(update={"twojmax": tj})
            per_atom(atoms[:4], settings)  # warm up the library
            t0 = time.perf_counter()
            per_atom(atoms, settings, gradients=False)
            t_b = time.perf_counter() - t0
            t0 = time.perf_counter()
            d = per_atom(atoms, settings, gradients=True)
            t_g = time.perf_counter() - t0
            row = {
                "atoms": len(atoms),
                "twojmax": tj,
                "K": settings.n_components,
                "pairs": len(d.i),
                "B_ms_per_atom": 1e3 * t_b / len(atoms),
                "B_grad_ms_per_atom": 1e3 * t_g / len(atoms),
            }
            results["per_atom"].append(row)
            print(json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mala-venv", default="/tmp/mala-venv", help="virtual environment with MALA 1.4")
    ap.add_argument("--skip-mala", action="store_true")
    ap.add_argument("--twojmax", type=int, nargs="+", default=[6, 8, 10])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--shape", type=int, nargs=3, default=None, help="override the grid (quick checks)")
    ap.add_argument("--skip-grid", action="store_true")
    ap.add_argument("--skip-per-atom", action="store_true")
    ap.add_argument("--kernel-check", action="store_true", help="only the CPU-time check of the LAMMPS kernel")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = ap.parse_args()
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "node": platform.node()}}
    if args.kernel_check:
        bench_kernel_cpu(args, results)
    else:
        if not args.skip_grid:
            bench_grid(args, results)
        if not args.skip_per_atom:
            bench_per_atom(args, results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
