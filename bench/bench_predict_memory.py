"""Peak memory and per-stage time of ML-DFT prediction on a large fcc Al cell, at a cheap band limit.

Usage:
  .venv/bin/python bench/bench_predict_memory.py [--atoms 4000] [--twojmax 2] [--members 2] [--hidden 16]

Proxy for the memory bound: the descriptors at 2J = 10 make a 4000-atom run take hours, but apart from the
per-block descriptor array every stage's memory is independent of K. So this runs :func:`alml.surrogate.predict`
with a tiny untrained committee (``--members`` MLPs, ``--hidden`` units, the default 271-energy LDOS ladder,
output pinned near a free-electron LDOS so every stage runs; TIMING/MEMORY ONLY, energies mean nothing) at
2J = ``--twojmax``, 1 MPI rank (LAMMPS in this process), 1 torch/BLAS thread, and with the *same blocks* the
production setting (2J = 10, K = 91, ``descriptor_memory_mb`` default) would use, unless ``--block-points``.

Records per stage (descriptors + DOS pass, observables, density pass, energy) its wall time and the peak RSS
seen while it ran (sampled every 0.2 s from /proc/self/status, and ru_maxrss at its end), the final
getrusage peaks for this process and its children, and the analytic per-block descriptor memory at K = 91.
Cells: the conventional cube (a = 4.04 Å) repeated k times, N = 4k³ (500, 1372, 2048, 4000, ...); grid from
ecutrho 160 Ry. Writes runs/bench_predict_memory/<atoms>-<time>.json.
"""

from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import datetime as dt  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402

A0 = 4.04
ECUTRHO_RY = 160.0
TEMPERATURE = 298.0


def rss_mb() -> float:
    """Current resident set size of this process, MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class StageMonitor:
    """Wall time and peak RSS per stage; a thread samples RSS every ``interval`` s into the current stage."""

    def __init__(self, interval: float = 0.2) -> None:
        self.stage = "outside stages"
        self.peak: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self.maxrss_after: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.peak[self.stage] = max(self.peak.get(self.stage, 0.0), rss_mb())

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            previous, self.stage = self.stage, name
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - t0
                self.peak[name] = max(self.peak.get(name, 0.0), rss_mb())
                self.maxrss_after[name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
                self.stage = previous

        return run

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def tiny_model(twojmax: int, members: int, hidden: int, seed: int = 0) -> Any:
    """An untrained committee at 2J = ``twojmax`` whose LDOS is a free-electron DOS (3 e/atom) ± 0.01 %."""
    import torch

    from alml.descriptors import MALA_AL
    from alml.dft.ldos import LdosSettings
    from alml.nn import MLPConfig
    from alml.surrogate.model import LdosModel, LdosModelConfig, Scalers, new_committee
    from alml.units import RYDBERG

    settings = MALA_AL.model_copy(update={"twojmax": twojmax})
    k = settings.n_components
    ladder = LdosSettings().ladder(-0.5)
    e_f = (3 * math.pi**2 * 3 / (A0**3 / 4)) ** (2 / 3) / 0.2625  # ħ²/2m = 1/0.2625 eV Å²
    y = 0.2625**1.5 / (2 * math.pi**2) * np.sqrt(np.clip(ladder.energies + e_f, 0.0, None))
    cfg = LdosModelConfig(network=MLPConfig(hidden=(hidden,), activation="tanh"), members=members, global_inputs=[])
    torch.manual_seed(seed)
    nets = new_committee(k, ladder.n, cfg.network, members).double()
    for net in nets:
        net.set_scalers(Scalers(np.zeros(k), np.ones(k), y, 1e-4 * y + 1e-9))
    nets.eval()
    td = {"temperature": TEMPERATURE, "ecutrho": ECUTRHO_RY * RYDBERG, "elements": ["Al"], "timing_only": True}
    return LdosModel(nets, cfg, ladder, k, settings.model_dump(mode="json"), training_data=td)


def production_block_points(shape: tuple[int, int, int], k: int = 91) -> tuple[tuple[int, int, int], int]:
    """Strides and points per block that ``PredictConfig()`` (auto, 4096 MB, float32 cache, 1 rank) picks at K."""
    from alml.descriptors import choose_strides
    from alml.descriptors.grid_blocks import block_bytes_per_point
    from alml.surrogate.predict import PredictConfig

    cfg = PredictConfig()
    cap = int(cfg.descriptor_memory_mb * 2**20 // block_bytes_per_point(k, np.float32, 1))
    st = choose_strides(shape, cap, 1)
    return st, int(np.prod(shape)) // int(np.prod(st))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--atoms", type=int, default=4000, help="4k^3 atoms (conventional cube repeated k times)")
    ap.add_argument("--twojmax", type=int, default=2)
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--block-points", type=int, default=None, help="default: the K = 91 production block size")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_predict_memory"))
    args = ap.parse_args()
    k_cube = round((args.atoms / 4) ** (1 / 3))
    if 4 * k_cube**3 != args.atoms:
        raise SystemExit(f"--atoms {args.atoms}: use 4k^3 atoms (500, 864, 1372, 2048, 2916, 4000, ...)")

    import torch

    import alml.surrogate.predict as pr
    from alml.descriptors import qe_fft_shape
    from alml.descriptors.grid_blocks import block_bytes_per_point

    torch.set_num_threads(1)
    atoms = bulk("Al", "fcc", a=A0, cubic=True).repeat(k_cube)
    shape = qe_fft_shape(atoms.cell[:], ECUTRHO_RY)
    strides91, points91 = production_block_points(shape)
    block_points = args.block_points or points91
    model = tiny_model(args.twojmax, args.members, args.hidden)
    mon = StageMonitor()
    for name, stage in (("descriptors+dos", "dos_pass"), ("observables", "members_observables"),
                        ("density", "density_pass"), ("energy", "energies")):
        setattr(pr, stage, mon.wrap(name, getattr(pr, stage)))
    cfg = pr.PredictConfig(workers=1, threads=1, max_points_per_chunk=block_points, keep_density=False)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="alml-bench-mem-") as tmp:
        t0 = time.perf_counter()
        pred = pr.predict(atoms, model, cfg.model_copy(update={"scratch": tmp}))
        wall = time.perf_counter() - t0
    mon.stop()
    strides = pr.block_strides(_settings(model), shape, cfg)
    k = model.n_in
    row = {
        "atoms": len(atoms), "grid_shape": list(shape), "grid_points": int(np.prod(shape)), "twojmax": args.twojmax,
        "K": k, "members": args.members, "hidden": args.hidden, "n_energies": model.n_out, "strides": list(strides),
        "block_points": int(np.prod(shape)) // int(np.prod(strides)), "wall_s": wall, "timings_s": pred.timings,
        "stage_wall_s": mon.wall, "stage_peak_rss_mb": mon.peak, "maxrss_after_stage_mb": mon.maxrss_after,
        "peak_rss_mb": pred.peak_rss_mb, "peak_rss_children_mb": pred.peak_rss_children_mb,
        "block_descriptor_mb_at_K": block_points * block_bytes_per_point(k, np.float32, 1) / 2**20,
        "block_descriptor_mb_at_K91": block_points * block_bytes_per_point(91, np.float32, 1) / 2**20,
        "production_strides_K91": list(strides91), "load_before": load,
        "free_energy_eV_meaningless": pred.free_energy.value, "density_electrons": pred.density_electrons,
        "n_electrons": pred.n_electrons, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    from alml.io import atomic_write_json

    path = args.out / f"{len(atoms)}-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    atomic_write_json(path, row)
    print(f"TIMING/MEMORY ONLY (untrained model) -> {path}")
    for key, value in row.items():
        print(f"{key}: {value}")


def _settings(model: Any) -> Any:
    from alml.descriptors import BispectrumSettings

    return BispectrumSettings.model_validate(model.descriptor_settings)


if __name__ == "__main__":
    main()
