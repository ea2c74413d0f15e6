"""Grid descriptors in HDF5: one file per snapshot, written atomically, settings kept as attributes.

Layout of a file:

- dataset ``descriptors`` (nx, ny, nz, K): point (i, j, k) at fractional (i/nx, j/ny, k/nz) (QE FFT order);
- datasets ``cell`` (3, 3) Å, ``positions`` (N, 3) Å, ``numbers`` (N,), ``pbc`` (3,): the structure;
- attributes: ``settings`` (the :class:`BispectrumSettings` as JSON), each setting's scalar value,
  ``layout``, ``units``, ``structure_hash``, ``alml_version``, ``lammps_version``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase import Atoms

from alml.descriptors.grid_blocks import choose_strides, iter_grid_blocks
from alml.descriptors.settings import BispectrumSettings
from alml.io import atomic_write

LAYOUT = "QE FFT order: descriptors[i, j, k] at fractional (i/nx, j/ny, k/nz); (0,0,0) at the cell origin"


def _lammps_version() -> int:
    try:
        from alml.descriptors.lammps_session import import_lammps

        return int(import_lammps().__version__)
    except Exception:  # pragma: no cover - LAMMPS missing
        return -1


def _write_header(f, atoms: Atoms, settings: BispectrumSettings, shape: tuple[int, int, int]) -> None:  # noqa: ANN001
    import alml
    from alml.structures import structure_hash

    f.create_dataset("cell", data=np.asarray(atoms.cell[:], dtype=float))
    f.create_dataset("positions", data=np.asarray(atoms.positions, dtype=float))
    f.create_dataset("numbers", data=np.asarray(atoms.numbers, dtype=np.int64))
    f.create_dataset("pbc", data=np.asarray(atoms.pbc, dtype=bool))
    f.attrs["settings"] = json.dumps(settings.model_dump(mode="json"), sort_keys=True)
    for key in ("twojmax", "rcutfac", "rfac0", "rmin0", "switchflag", "bzeroflag", "quadraticflag"):
        f.attrs[key] = getattr(settings, key)
    f.attrs["n_components"] = settings.n_components
    f.attrs["shape"] = np.asarray(shape, dtype=np.int64)
    f.attrs["layout"] = LAYOUT
    f.attrs["units"] = "positions and cell in Å; descriptors dimensionless"
    f.attrs["structure_hash"] = structure_hash(atoms)
    f.attrs["alml_version"] = alml.__version__
    f.attrs["lammps_version"] = _lammps_version()


def write_grid_h5(
    path: str | Path,
    atoms: Atoms,
    settings: BispectrumSettings,
    shape: tuple[int, int, int],
    *,
    workers: int = 1,
    max_points_per_block: int | None = None,
    dtype: np.dtype | type = np.float32,
) -> Path:
    """Compute the grid descriptors block by block and stream them into ``path`` (atomic; float32 default).

    Memory stays at one block of at most ``max_points_per_block`` points (plus LAMMPS's working arrays) however
    large the grid; None computes the grid in one block.
    """
    import h5py

    path = Path(path)
    shape = tuple(int(v) for v in shape)  # type: ignore[assignment]
    strides = choose_strides(shape, max_points_per_block, workers)

    def writer(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            _write_header(f, atoms, settings, shape)
            ds = f.create_dataset(
                "descriptors",
                shape=(*shape, settings.n_components),
                dtype=np.dtype(dtype),
                chunks=(shape[0], shape[1], 1, settings.n_components),
            )
            for block in iter_grid_blocks(atoms, settings, shape, strides=strides, workers=workers, dtype=dtype):
                ds[block.index] = block.values

    atomic_write(path, writer)
    return path


def save_grid_h5(
    path: str | Path,
    values: np.ndarray,
    atoms: Atoms,
    settings: BispectrumSettings,
    dtype: np.dtype | type | None = None,
) -> Path:
    """Write already computed grid descriptors ``values`` (nx, ny, nz, K) to ``path`` (atomic), one k-plane at a
    time (so a memory-mapped ``values`` is streamed); ``dtype`` defaults to that of ``values``."""
    import h5py

    path = Path(path)
    values = np.asarray(values)
    if values.ndim != 4 or values.shape[3] != settings.n_components:
        raise ValueError(f"values must be (nx, ny, nz, {settings.n_components}), got {values.shape}")

    def writer(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            _write_header(f, atoms, settings, values.shape[:3])
            ds = f.create_dataset(
                "descriptors", shape=values.shape, dtype=np.dtype(dtype or values.dtype),
                chunks=(*values.shape[:2], 1, values.shape[3]),
            )
            for k in range(values.shape[2]):
                ds[:, :, k] = values[:, :, k]

    atomic_write(path, writer)
    return path


def read_grid_h5(path: str | Path) -> tuple[np.ndarray, BispectrumSettings, Atoms]:
    """Read a grid descriptor file: (descriptors (nx, ny, nz, K), settings, structure)."""
    import h5py

    with h5py.File(path, "r") as f:
        values = f["descriptors"][...]
        settings = BispectrumSettings.model_validate(json.loads(f.attrs["settings"]))
        atoms = Atoms(numbers=f["numbers"][...], positions=f["positions"][...], cell=f["cell"][...], pbc=f["pbc"][...])
    return values, settings, atoms
