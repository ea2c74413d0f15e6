"""Training snapshots on disk: a folder with ``ldos.h5`` and ``descriptors.h5`` on the same grid.

:class:`Snapshot` names the two files; :func:`descriptor_points` and :func:`load_points` read grid points from them
(point-wise, so only the sample is held in memory); :func:`training_context` is what a model records about the
snapshots it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alml.data.grids import EnergyLadder, LdosFile
from alml.dft.ldos import LDOS_FILE
from alml.surrogate.inputs import global_input_ranges, global_values, with_globals

DESCRIPTORS_FILE = "descriptors.h5"


@dataclass(frozen=True)
class Snapshot:
    """The two files of one snapshot: LDOS and grid descriptors on the same grid."""

    ldos: Path
    descriptors: Path

    @classmethod
    def from_dir(cls, d: str | Path) -> Snapshot:
        d = Path(d)
        return cls(d / LDOS_FILE, d / DESCRIPTORS_FILE)


def _snapshot(s: Snapshot | str | Path) -> Snapshot:
    return s if isinstance(s, Snapshot) else Snapshot.from_dir(s)


def descriptor_points(path: str | Path, indices: np.ndarray) -> np.ndarray:
    """Descriptors (len(indices), K) at flat grid indices (C order over (nx, ny, nz)), read one k-plane at a time."""
    import h5py

    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    with h5py.File(path, "r") as f:
        ds = f["descriptors"]
        i, j, k = np.unravel_index(idx, ds.shape[:3])
        out = np.empty((idx.size, ds.shape[3]), dtype=ds.dtype)
        for kk in np.unique(k):
            sel = np.nonzero(k == kk)[0]
            plane = ds[:, :, int(kk), :]
            out[sel] = plane[i[sel], j[sel]]
    return out


def _grid_shape(path: Path) -> tuple[int, ...]:
    import h5py

    with h5py.File(path, "r") as f:
        return tuple(int(v) for v in f["descriptors"].shape)


def _check_snapshots(snapshots: Sequence[Snapshot]) -> tuple[EnergyLadder, list[tuple[int, int, int]]]:
    """The common energy ladder and each snapshot's grid shape; error if a ladder or a descriptor grid differs."""
    ladder: EnergyLadder | None = None
    shapes = []
    for s in snapshots:
        with LdosFile(s.ldos) as f:
            dshape = _grid_shape(s.descriptors)
            if tuple(dshape[:3]) != tuple(f.shape):
                raise ValueError(f"{s.descriptors} grid {dshape[:3]} differs from {s.ldos} grid {f.shape}")
            if ladder is None:
                ladder = f.ladder
            elif f.ladder.key() != ladder.key():
                raise ValueError(f"{s.ldos}: energy ladder {f.ladder.key()} differs from {ladder.key()}")
            shapes.append(tuple(f.shape))
    if ladder is None:
        raise ValueError("no training snapshots given")
    return ladder, shapes


def load_points(
    snapshots: Sequence[Snapshot | str | Path],
    points_per_snapshot: int | None = None,
    seed: int = 0,
    global_inputs: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray, EnergyLadder]:
    """Network inputs (N, K + G) and LDOS (N, n_e) float32 of grid points pooled from ``snapshots`` (all points, or
    ``points_per_snapshot`` drawn without replacement from each), and their common energy ladder. The inputs are the
    descriptors followed by each snapshot's ``global_inputs`` (:mod:`alml.surrogate.inputs`)."""
    snaps = [_snapshot(s) for s in snapshots]
    ladder, shapes = _check_snapshots(snaps)
    xs, ys = [], []
    for n, (s, shape) in enumerate(zip(snaps, shapes)):
        n_points = int(np.prod(shape))
        if points_per_snapshot is None or points_per_snapshot >= n_points:
            idx = np.arange(n_points)
        else:
            rng = np.random.default_rng([seed, n])
            idx = np.sort(rng.choice(n_points, size=points_per_snapshot, replace=False))
        with LdosFile(s.ldos) as f:
            ys.append(f.points(idx).astype(np.float32, copy=False))
            g = global_values(f.atoms, global_inputs)
        xs.append(with_globals(descriptor_points(s.descriptors, idx).astype(np.float32, copy=False), g))
    return np.concatenate(xs), np.concatenate(ys), ladder


def _descriptor_settings(path: Path) -> dict[str, Any] | None:
    import json

    import h5py

    with h5py.File(path, "r") as f:
        s = f.attrs.get("settings")
    return json.loads(s) if s is not None else None


def training_context(snapshots: Sequence[Snapshot | str | Path]) -> dict[str, Any]:
    """What prediction needs to know about the training snapshots, from their LDOS file headers.

    ``temperature`` (K) and ``ecutrho`` (eV, None if not recorded) of the first snapshot, the set of
    ``temperatures``, ``pseudopotentials`` (element -> "file sha256:prefix" from the DFT provenance, when
    recorded), ``elements``, ``global_input_ranges`` (each global input's [min, max] over the snapshots, which
    prediction checks for extrapolation), and the first snapshot's ``grid_shape``, ``cell`` (Å) and ``n_electrons``.
    """
    snaps = [_snapshot(s) for s in snapshots]
    temperatures: set[float] = set()
    elements: set[str] = set()
    cells = []
    pseudos: dict[str, str] = {}
    first: dict[str, Any] = {}
    for s in snaps:
        with LdosFile(s.ldos) as f:
            temperatures.add(f.temperature)
            cells.append(f.atoms)
            symbols = set(f.atoms.get_chemical_symbols())
            elements |= symbols
            pseudos.update({el: f.provenance[f"pseudo_{el}"] for el in symbols if f"pseudo_{el}" in f.provenance})
            if not first:
                first = {
                    "temperature": f.temperature,
                    "ecutrho": f.ecutrho,
                    "grid_shape": list(f.shape),
                    "cell": np.asarray(f.atoms.cell[:]).tolist(),
                    "n_electrons": f.n_electrons,
                    "n_atoms": len(f.atoms),
                }
    return {
        **first,
        "temperatures": sorted(temperatures),
        "global_input_ranges": global_input_ranges(cells),
        "elements": sorted(elements),
        "pseudopotentials": dict(sorted(pseudos.items())),
    }
