"""The data half of ``bench/bench_mala_side_by_side.py``: which snapshots train, validate and test, their export to
MALA's layout (once per snapshot file), and the LDOS statistics that choose MALA's output scaling."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("mala_side_by_side")


def snapshot_sets(args: argparse.Namespace) -> dict[str, list[tuple[str, Path]]]:
    """(name, folder) of the train, validation (the first one only, as alml validates on one) and test snapshots."""
    if args.train:
        from alml.surrogate.jobs import snapshot_dirs

        sets = {"train": snapshot_dirs(args.train), "validation": snapshot_dirs([args.val])[:1],
                "test": snapshot_dirs(args.test)}
        return {k: [(d.name, d) for d in v] for k, v in sets.items()}
    from mldft_acceptance import snapshot_groups

    groups = snapshot_groups(args.data, args.out)
    tests = [d for dirs in groups["test"].values() for d in dirs]
    if not tests:
        raise SystemExit(f"{args.data}: no finished test snapshot yet")
    val = groups["validation"][0]
    return {"train": [(d.name, d) for d in groups["train"]], "validation": [(val.name, val)],
            "test": [(d.name, d) for d in tests]}


def pw_output(snapshot: Path) -> Path:
    """The pw.x SCF output of a snapshot folder (``dft.json``'s work directory), which MALA reads."""
    dft = snapshot / "dft.json"
    path = Path(json.loads(dft.read_text())["workdir"]) / "pw.out" if dft.is_file() else None
    if path is None or not path.is_file():
        raise SystemExit(f"{snapshot}: no pw.x output found (dft.json's workdir/pw.out): MALA needs it for the "
                         "temperature, electron count and cell")
    return path


def export_all(sets: dict[str, list[tuple[str, Path]]], folder: Path) -> dict[str, dict[str, Any]]:
    """Export every snapshot in MALA's layout into ``folder`` (skipped when already exported from the same file);
    name -> {dir, name, grid, temperature, n_electrons, n_atoms, mala_parameters, descriptors} (what the MALA worker
    and the configuration need)."""
    from alml.data.grids import LdosFile
    from alml.surrogate.mala import export_mala_snapshot

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, snap in {n: s for v in sets.values() for n, s in v}.items():
        info_path = folder / f"{name}.info.json"
        ldos = (snap / "ldos.h5").resolve()
        fresh = (info_path.is_file() and (folder / f"{name}.out").is_file()
                 and json.loads(info_path.read_text()).get("source") == str(ldos)
                 and info_path.stat().st_mtime > ldos.stat().st_mtime)
        if not fresh:
            log.info("exporting %s to MALA's layout", name)
            export_mala_snapshot(snap.resolve(), folder, name, qe_output=pw_output(snap))
        info = json.loads(info_path.read_text())
        with LdosFile(snap / "ldos.h5") as f:
            out[name] = {"dir": str(folder), "name": name, "grid": list(f.shape), "temperature": f.temperature,
                         "n_electrons": f.n_electrons, "n_atoms": len(f.atoms),
                         "mala_parameters": info["mala_parameters"], "descriptors": info["descriptors"]}
    return out


def ldos_std(snapshots: list[Path]) -> np.ndarray:
    """Per-energy std (n_e,) of the LDOS over every grid point of ``snapshots`` (float64 running sums)."""
    from alml.data.grids import LdosFile

    n, s, ss = 0, 0.0, 0.0
    for d in snapshots:
        with LdosFile(d / "ldos.h5") as f:
            for _, _, slab in f.iter_slabs(max_bytes=64 << 20):
                y = np.asarray(slab, dtype=np.float64).reshape(-1, slab.shape[-1])
                n, s, ss = n + len(y), s + y.sum(0), ss + (y**2).sum(0)
    mean = s / n
    return np.sqrt(np.maximum(ss / n - mean**2, 0.0))
