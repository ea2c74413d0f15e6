"""LDOS engines side by side: the native one (:mod:`alml.dft.ldos_native`) against pp.x, on the same wavefunctions.

A perfect 32-atom fcc Al cube (2x2x2 conventional, a = 4.05 Å) at 298 K with the default ``DFTSettings``
(ecutwfc 40 Ry, kspacing 0.13/Å: 6³ k, 20 irreducible k-points, 48 symmetries), the ladder of the earlier
"32 atoms, 136 energies" row of docs/benchmarks.md (μ − 12 … μ + 1.5 eV, spacing 0.1 eV, Fermi–Dirac σ 0.07 eV).
:func:`alml.dft.ldos.compute_ldos` runs the SCF and the nscf (more bands) and keeps ``out/``; then, on those
files, each engine is timed on its own: native (wavefunctions → ``ldos.h5``) and pp.x (``run_pp`` + the cube
conversion). Both at nice 19 with one thread (the process renices itself; pp.x inherits it). Prints wall and CPU
seconds and max |native − pp.x| / max LDOS, and writes ``<root>/bench_ldos_engine.json``.

    .venv/bin/python bench/bench_ldos_engine.py                     # ~40 min on the shared 2-core VM
    .venv/bin/python bench/bench_ldos_engine.py --reps 1 --ecutwfc 15   # a quick smoke run
    .venv/bin/python bench/bench_ldos_engine.py --workdir runs/bench_ldos_engine/<job>   # engines only, again
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402


def _pw_times(text: str, program: str) -> tuple[float, float]:
    """(CPU, WALL) seconds of QE's final timing line, e.g. ``POST-PROC : 4m59.69s CPU 5m11.56s WALL``; NaN if absent."""
    from alml.dft.parse import qe_times

    return qe_times(text, program) or (float("nan"), float("nan"))


def main() -> None:
    from alml.data.grids import LdosFile
    from alml.dft.ldos import LdosSettings, compute_ldos, read_qe_xml
    from alml.dft.ldos_native import write_native_ldos_h5
    from alml.dft.ppx import cubes_to_h5, run_pp
    from alml.dft.settings import DFTSettings, PwProfile
    from alml.io import atomic_write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="runs/bench_ldos_engine")
    p.add_argument("--temperature", type=float, default=298.0)
    p.add_argument("--ecutwfc", type=float, default=40.0)
    p.add_argument("--reps", type=int, default=2, help="repetitions of the conventional cube (2: 32 atoms)")
    p.add_argument("--workdir", default=None, help="time the engines on this finished LDOS work dir (kept out/)")
    args = p.parse_args()
    os.nice(19)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    root = Path(args.root)

    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(args.reps)
    dft = DFTSettings(ecutwfc=args.ecutwfc, forces=False)
    settings = LdosSettings(emin=-12.0, emax=1.5, spacing=0.1, broadening=0.07, keep_outdir=True)
    t_route = None
    if args.workdir is None:
        t0 = time.perf_counter()
        first = compute_ldos(atoms, args.temperature, dft, settings, root=root, pw_profile=PwProfile(timeout=None))
        t_route = time.perf_counter() - t0
        work = first.parent
    else:
        work = Path(args.workdir)
        root = work.parent
    save = work / "out" / "pw.save"
    bands = read_qe_xml(save / "data-file-schema.xml")
    with LdosFile(work / "ldos.h5") as f:
        meta = f.meta()

    c0, t0 = time.process_time(), time.perf_counter()
    native = write_native_ldos_h5(save, meta, work / "native.h5", bands.eigenvalues, bands.k_weights)
    t_native, c_native = time.perf_counter() - t0, time.process_time() - c0

    t0 = time.perf_counter()
    cubes = run_pp(work, meta.ladder)
    t_pp = time.perf_counter() - t0
    pp_cpu, pp_wall = _pw_times((work / "pp.out").read_text(), "POST-PROC")
    c0, t0 = time.process_time(), time.perf_counter()
    ppx = cubes_to_h5(cubes, meta, work / "ppx.h5")
    t_conv, c_conv = time.perf_counter() - t0, time.process_time() - c0
    for c in cubes:
        c.unlink()

    with LdosFile(native) as a, LdosFile(ppx) as b:
        diff, top = 0.0, 0.0
        for (_, _, sa), (_, _, sb) in zip(a.iter_slabs(), b.iter_slabs(), strict=True):
            diff = max(diff, float(np.abs(sa.astype(np.float64) - sb).max()))
            top = max(top, float(np.abs(sb).max()))
    scf = json.loads((work / "dft.json").read_text())
    nscf_cpu, nscf_wall = (_pw_times((work / "nscf.out").read_text(), "PWSCF") if (work / "nscf.out").is_file()
                           else (0.0, 0.0))
    row = {
        "n_atoms": len(meta.atoms), "grid": list(meta.shape), "n_energies": meta.ladder.n,
        "n_kpoints": len(bands.k_weights),
        "n_bands": int(bands.eigenvalues.shape[1]), "ecutwfc": args.ecutwfc, "temperature": args.temperature,
        "scf_wall_s": scf.get("wall_time"), "nscf_cpu_s": nscf_cpu, "nscf_wall_s": nscf_wall,
        "route_wall_s": t_route, "native_wall_s": t_native, "native_cpu_s": c_native,
        "ppx_wall_s": t_pp, "ppx_cpu_s": pp_cpu, "ppx_wall_own_s": pp_wall,
        "cube_conversion_wall_s": t_conv, "cube_conversion_cpu_s": c_conv,
        "max_abs_diff": diff, "max_ldos": top, "max_rel_diff": diff / top,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "host": platform.node(),
        "load_avg_end": os.getloadavg(), "workdir": str(work),
    }
    atomic_write_json(root / "bench_ldos_engine.json", row)
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
