"""End-to-end ML-DFT prediction time against cell size: fcc Al supercells, per-stage timings, memory, cost exponent.

Usage:
  .venv/bin/python bench/bench_surrogate.py --model runs/mldft/model [--atoms 32 108 256 1000 4000]
  .venv/bin/python bench/bench_surrogate.py --untrained [--atoms 32] [--workers 2] [--pw]

``--model``: any trained LDOS model folder (its ecutrho and descriptors are used; the cells are at ``--temperature``,
298 K by default).
``--untrained``: TIMING ONLY — a freshly initialised committee (MALA's Al descriptors, 2J = 10, K = 91; the default
LdosModelConfig network and members; the default LDOS ladder, 0.05 eV) whose output is pinned near a free-electron
LDOS so that every stage runs; its energies mean nothing. Grid at ecutrho 160 Ry (alml's default DFT), 298 K.
``--a0`` sets the lattice constant (default 4.04 Å); a trained model's energies mean most inside its training
density range.

Cells: N = 4k³ atoms is the conventional cube repeated k times (32, 108, 256, 4000), N = k³ the primitive cell
repeated (1000); a = ``--a0``. Each size runs in a fresh process (so the peak RSS is that size's own), with
``--workers`` MPI ranks for the descriptors and ``--threads`` torch threads. ``--pw`` also times pw.x (alml's
default DFT settings at the model's ecutrho and temperature, Fermi–Dirac, same ranks) for sizes ≤ ``--pw-max``
atoms, and reports the free-energy difference for a trained model.

Writes runs/bench_surrogate/<label>-<time>.json (rows, fitted exponents, machine) after every size, and prints a
Markdown table. ``--resume FILE`` continues such a file: sizes already in it are not run again, so a sweep whose
largest cell takes hours can be spread over several sittings (the options must match the file's).
The cost exponent is the slope of log(time) against log(atoms) over the sizes run (small sizes carry fixed costs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk

A0 = 4.04
ECUTRHO_RY = 160.0
TEMPERATURE = 298.0
STAGES = ("descriptors", "network", "observables", "energy", "io", "total")


def fcc_cell(n: int, a: float = A0) -> Atoms:
    """fcc Al with ``n`` atoms, lattice constant ``a`` Å: the cube repeated k times (n = 4k³) or the primitive cell
    (n = k³)."""
    k = round((n / 4) ** (1 / 3))
    if 4 * k**3 == n:
        return bulk("Al", "fcc", a=a, cubic=True).repeat(k)
    k = round(n ** (1 / 3))
    if k**3 == n:
        return bulk("Al", "fcc", a=a).repeat(k)
    raise SystemExit(f"--atoms {n}: use 4k^3 (4, 32, 108, 256, 500, ..., 4000) or k^3 (1, 8, 27, ..., 1000) atoms")


def timing_model(members: int | None, hidden: tuple[int, ...] | None, seed: int = 0) -> Any:
    """An untrained committee whose LDOS is a free-electron DOS (3 e/atom at a = 4.04 Å, μ ≈ 0) ± 0.01 %."""
    import torch

    from alml.descriptors import MALA_AL
    from alml.dft.ldos import LdosSettings
    from alml.nn import MLPConfig
    from alml.surrogate.model import LdosModel, LdosModelConfig, Scalers, new_committee
    from alml.units import RYDBERG

    cfg = LdosModelConfig()
    if members is not None:
        cfg = cfg.model_copy(update={"members": members})
    if hidden is not None:
        cfg = cfg.model_copy(update={"network": MLPConfig(hidden=hidden, activation=cfg.network.activation)})
    ladder = LdosSettings().ladder(-0.5)
    e_f = (3 * math.pi**2 * 3 / (A0**3 / 4)) ** (2 / 3) / 0.2625  # ħ²/2m = 1/0.2625 eV Å²
    y = 0.2625**1.5 / (2 * math.pi**2) * np.sqrt(np.clip(ladder.energies + e_f, 0.0, None))
    n_in = MALA_AL.n_components + len(cfg.global_inputs)  # as a trained model: descriptors, then the atom density
    torch.manual_seed(seed)
    nets = new_committee(n_in, ladder.n, cfg.network, cfg.members).double()
    for net in nets:
        net.set_scalers(Scalers(np.zeros(n_in), np.ones(n_in), y, 1e-4 * y + 1e-9))
    nets.eval()
    td = {"temperature": TEMPERATURE, "ecutrho": ECUTRHO_RY * RYDBERG, "elements": ["Al"], "timing_only": True}
    return LdosModel(nets, cfg, ladder, n_in, MALA_AL.model_dump(mode="json"), training_data=td)


def run_size(n: int, args: dict[str, Any]) -> dict[str, Any]:
    """One prediction (in a child process): the prediction's summary plus the set-up."""
    from alml.runtime import set_threads
    from alml.surrogate.model import load_ldos_model
    from alml.surrogate.predict import PredictConfig, predict, prediction_summary

    set_threads(args["threads"])
    model = timing_model(args["members"], args["hidden"]) if args["untrained"] else load_ldos_model(args["model"])
    cfg = PredictConfig(workers=args["workers"], max_points_per_chunk=args["chunk"], keep_density=False,
                        temperature=args["temperature"])
    with tempfile.TemporaryDirectory(prefix="alml-bench-") as tmp:
        t0 = time.perf_counter()
        pred = predict(fcc_cell(n, args["a0"]), model, cfg, out=Path(tmp) if args["write"] else None)
        wall = time.perf_counter() - t0
    s = prediction_summary(pred)
    return {
        "atoms": n, "wall_s": wall, "grid_shape": s["grid_shape"], "grid_points": s["grid_points"],
        "grid_points_per_s": s["grid_points_per_s"], "timings_s": s["timings_s"], "peak_rss_mb": s["peak_rss_mb"],
        "peak_rss_children_mb": s["peak_rss_children_mb"], "members": model.n_members,
        "network": model.config.network.model_dump(mode="json"), "n_energies": model.n_out,
        "n_descriptors": model.n_in, "free_energy_eV": s["energies"]["free_energy"]["eV"],
        "free_energy_std_meV_per_atom": s["energies"]["free_energy"]["std_meV_per_atom"],
        "fermi_level_eV": s["fermi_level"]["eV"], "temperature_K": s["temperature_K"],
        "ecutrho_eV": s["ecutrho_eV"],
    }


def pw_timing(n: int, a0: float, temperature: float, ecutrho_ev: float | None, ranks: int) -> dict[str, Any]:
    """pw.x SCF (no forces) on the same cell, fresh work directory: wall time and free energy."""
    from alml.dft.settings import DFTSettings, PwProfile
    from alml.dft.tasks import label
    from alml.units import RYDBERG

    ecutrho = ECUTRHO_RY if ecutrho_ev is None else ecutrho_ev / RYDBERG
    dft = DFTSettings(ecutwfc=ecutrho / 4, electronic_temperature=temperature, forces=False)
    with tempfile.TemporaryDirectory(prefix="alml-bench-pw-") as tmp:
        t0 = time.perf_counter()
        r = label(fcc_cell(n, a0), dft, PwProfile(ranks=ranks, timeout=None), tmp)
        wall = time.perf_counter() - t0
    return {"pw_wall_s": wall, "pw_free_energy_eV": r.free_energy, "pw_fft": list(r.fft_grid),
            "pw_k_irreducible": r.n_kpoints, "pw_scf_iterations": r.n_iterations}


def exponents(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Slope of log(stage time) against log(atoms), per stage, over the sizes run (≥ 2)."""
    if len({r["atoms"] for r in rows}) < 2:
        return {}
    x = np.log([r["atoms"] for r in rows])
    out = {}
    for st in STAGES:
        t = np.array([r["timings_s"].get(st, 0.0) for r in rows])
        if np.all(t > 0):
            out[st] = float(np.polyfit(x, np.log(t), 1)[0])
    if all("pw_wall_s" in r for r in rows):
        out["pw"] = float(np.polyfit(x, np.log([r["pw_wall_s"] for r in rows]), 1)[0])
    return out


def resumed_rows(path: Path, opts: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of an earlier run of this script, refusing one made with other options."""
    import json

    old = json.loads(path.read_text())
    now = json.loads(json.dumps(opts))  # tuples as the file has them: lists
    differ = sorted(k for k in now if old["options"].get(k) != now[k])
    if differ:
        raise SystemExit(f"--resume {path}: it was made with other options ({', '.join(differ)}); "
                         "rerun with the same options or start a new file")
    return list(old["rows"])


def save(path: Path, label: str, untrained: bool, opts: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Write the rows so far (atomically) with their fitted exponents; return what was written."""
    from alml.io import atomic_write_json

    result = {
        "label": label, "timing_only": bool(untrained), "options": opts, "rows": rows,
        "cost_exponent": exponents(rows), "cpus": os.cpu_count(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    atomic_write_json(path, result)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", type=Path, help="trained LDOS model folder")
    src.add_argument("--untrained", action="store_true", help="timing only: a freshly initialised committee")
    ap.add_argument("--atoms", type=int, nargs="+", default=[32, 108, 256, 1000, 4000])
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="MPI ranks for descriptors")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: --workers)")
    ap.add_argument("--chunk", default="auto", help="max_points_per_chunk: auto, none or a number")
    ap.add_argument("--members", type=int, default=None, help="--untrained: committee size (default config's)")
    ap.add_argument("--hidden", type=int, nargs="+", default=None, help="--untrained: hidden layer widths")
    ap.add_argument("--a0", type=float, default=A0, help=f"fcc lattice constant, Å (default {A0}; the acceptance "
                    "data's 298 K solid, 2.699 g/cm³, is a = 4.049)")
    ap.add_argument("--temperature", type=float, default=TEMPERATURE,
                    help=f"electronic temperature of the cells, K (default {TEMPERATURE:g}: room-temperature Al)")
    ap.add_argument("--write", action="store_true", help="also write the prediction files (timed as io)")
    ap.add_argument("--pw", action="store_true", help="also time pw.x for sizes <= --pw-max")
    ap.add_argument("--pw-max", type=int, default=32)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_surrogate"))
    ap.add_argument("--resume", type=Path, default=None, help="a JSON this script wrote: keep its rows, run the rest")
    args = ap.parse_args()
    chunk = None if args.chunk == "none" else ("auto" if args.chunk == "auto" else int(args.chunk))
    opts = dict(untrained=args.untrained, model=str(args.model) if args.model else None, workers=args.workers,
                threads=args.threads or args.workers, chunk=chunk, members=args.members,
                hidden=tuple(args.hidden) if args.hidden else None, write=args.write,
                temperature=args.temperature, a0=args.a0)
    label = "untrained-timing-only" if args.untrained else args.model.resolve().name
    for n in args.atoms:
        fcc_cell(n)  # fail early on an impossible size
    path = args.resume or args.out / f"{label}-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    rows = resumed_rows(args.resume, opts) if args.resume else []
    done = {r["atoms"] for r in rows}
    for n in sorted(set(args.atoms) - done):
        load = os.getloadavg()[0]
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as ex:
            row = ex.submit(run_size, n, opts).result()
        row["load_before"] = load
        if args.pw and n <= args.pw_max:
            row.update(pw_timing(n, args.a0, row["temperature_K"], row["ecutrho_eV"], args.workers))
            if not args.untrained:
                row["ml_minus_pw_meV_per_atom"] = 1000 * (row["free_energy_eV"] - row["pw_free_energy_eV"]) / n
        rows.append(row)
        rows.sort(key=lambda r: r["atoms"])
        save(path, label, args.untrained, opts, rows)
        print({k: row[k] for k in ("atoms", "grid_shape", "wall_s", "timings_s", "peak_rss_mb")}, flush=True)
    result = save(path, label, args.untrained, opts, rows)
    print(f"\n{'TIMING ONLY (untrained model): energies are meaningless' if args.untrained else label}; -> {path}")
    print("\n| atoms | grid | descriptors (s) | network (s) | observables (s) | energy (s) | total (s) | "
          "points/s | peak RSS (MB) | pw.x (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        t = r["timings_s"]
        print(f"| {r['atoms']} | {'x'.join(map(str, r['grid_shape']))} | {t['descriptors']:.1f} | {t['network']:.1f} "
              f"| {t['observables']:.1f} | {t['energy']:.1f} | {t['total']:.1f} | {r['grid_points_per_s']:.0f} | "
              f"{max(r['peak_rss_mb'], r['peak_rss_children_mb']):.0f} | {r.get('pw_wall_s', float('nan')):.1f} |")
    if result["cost_exponent"]:
        print("\ncost exponent (time ~ atoms^x):", {k: round(v, 2) for k, v in result["cost_exponent"].items()})


if __name__ == "__main__":
    main()
