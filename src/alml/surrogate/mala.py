"""Datasets in MALA's layout: import them as alml snapshots, and export alml snapshots for MALA.

MALA's layout, per snapshot ``<name>`` (checked in the source of MALA, ``mala/descriptors/descriptor.py``,
``bispectrum.py``, ``mala/targets/ldos.py``, ``target.py``, and of its data generator MALADA,
``malada/providers/dft.py``, both on github.com/mala-project; MALA's test data names files this way):

- ``<name>.in.npy``: descriptors (nx, ny, nz, 3 + K). With MALA's default ``descriptors_contain_xyz = True`` the
  first three columns are the Cartesian coordinates x, y, z in Å of grid point (i, j, k), i.e.
  i/nx·a₁ + j/ny·a₂ + k/nz·a₃ (LAMMPS ``compute sna/grid`` output in metal units; for a triclinic cell in LAMMPS's
  frame: a₁ along x, a₂ in the xy plane); MALA drops them before training. The K bispectrum components follow in
  LAMMPS order (MALA's Al: ``bispectrum_twojmax`` 10, ``bispectrum_cutoff`` 4.67637 Å: :data:`MALA_AL`).
- ``<name>.out.npy``: the LDOS (nx, ny, nz, n_e) in 1/(eV·Å³) (MALA's unit), on QE's FFT grid in the same order.
- The energy ladder is ``E_j = ldos_gridoffset_ev + j·ldos_gridspacing_ev``, j = 0 … ``ldos_gridsize`` − 1 (eV,
  absolute: QE's energy zero). MALADA runs pp.x with ``plot_num=3``, ``emin`` = offset, ``delta_e`` = spacing,
  ``degauss_ldos = smearing_factor × spacing`` and ``use_gauss_ldos=.true.``: a Gaussian kernel of width
  σ = 2 × spacing for MALA's Al data (0.1 eV spacing, σ = 0.2 eV). MALA's own integration does not undo it;
  alml's kernel-aware observables need σ, so it is part of the import config.
- ``<name>.out``: the pw.x SCF output, for the cell and atoms (``ase.io.read(format="espresso-out")``), the Fermi
  level, electron count and energies (:func:`alml.dft.parse.parse_pw_output`), the electronic temperature
  (MALA reads it from ``Fermi-Dirac smearing, width (Ry)=``, printed with 4 decimals: ±0.00005 Ry ≈ ±8 K, so
  give ``temperature`` when it is known), the density cutoff, and eigenvalues for QE's band energy Σ w f ε.

alml adds ``<name>.info.json`` on export (MALA ignores it): the exact structure, ladder, temperature, QE's reference
values and the MALA parameters to set (``ldos_gridsize``, …), so an export → import round trip is exact.
:mod:`alml.surrogate.mala_meta` reads both metadata sources.

Both directions stream: ``.npy`` files are memory-mapped and copied by slabs of k-planes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from alml.config import Config
from alml.data.grids import EnergyLadder, Kernel, LdosFile, LdosMeta, is_valid_ldos_h5, write_ldos_h5
from alml.descriptors.settings import MALA_AL, BispectrumSettings, n_bispectrum
from alml.io import atomic_write, atomic_write_json, sha256_json
from alml.surrogate.mala_meta import SnapshotInfo, info_dict, read_info, read_qe_output
from alml.surrogate.snapshots import DESCRIPTORS_FILE, LDOS_FILE

_SLAB_BYTES = 128 << 20


class MalaImportConfig(Config):
    """How to read a MALA snapshot: its energy ladder, descriptor settings and where the metadata comes from."""

    ldos_gridoffset_ev: float | None = Field(None, description="MALA's ldos_gridoffset_ev: first energy, eV (absolute)")
    ldos_gridspacing_ev: float | None = Field(None, gt=0, description="MALA's ldos_gridspacing_ev, eV")
    ldos_gridsize: int | None = Field(None, ge=2, description="MALA's ldos_gridsize (default: the file's n_e)")
    smearing_factor: float = Field(2.0, gt=0, description="pp.x degauss_ldos / spacing (MALADA's smearing_factor)")
    broadening: float | None = Field(None, gt=0, description="degauss_ldos in eV (default: smearing_factor x spacing)")
    kernel: Kernel = Field("gaussian", description="pp.x broadening function: MALADA sets use_gauss_ldos")
    descriptors_contain_xyz: bool = Field(True, description="the first three descriptor columns are x, y, z (Å)")
    check_xyz: bool = Field(True, description="check those columns against the cell's grid (catches a wrong order)")
    xyz_tolerance: float = Field(1e-3, gt=0, description="Å")
    descriptors: BispectrumSettings | None = Field(
        None, description="settings the descriptors were made with (default: MALA's Al with twojmax from K)"
    )
    temperature: float | None = Field(None, gt=0, description="K; default: from pw.x's Fermi-Dirac width")
    metadata: Literal["auto", "qe", "info"] = Field(
        "auto", description="structure and reference values from: auto (info.json if present, else pw.x output)"
    )
    ldos_dtype: Literal["float32", "float64"] = "float32"
    descriptor_dtype: Literal["float32", "float64"] = "float32"


@dataclass(frozen=True)
class MalaFiles:
    """The files of one snapshot in MALA's layout (``qe_output`` and ``info`` may be absent)."""

    name: str
    descriptors: Path
    ldos: Path
    qe_output: Path | None = None
    info: Path | None = None

    @classmethod
    def named(cls, directory: str | Path, name: str, qe_suffix: str = ".out") -> MalaFiles:
        d = Path(directory)
        qe, info = d / f"{name}{qe_suffix}", d / f"{name}.info.json"
        return cls(name, d / f"{name}.in.npy", d / f"{name}.out.npy",
                   qe if qe.is_file() else None, info if info.is_file() else None)


# --- metadata --------------------------------------------------------------------------------------


def _info_of(files: MalaFiles, cfg: MalaImportConfig) -> SnapshotInfo:
    use_info = cfg.metadata == "info" or (cfg.metadata == "auto" and files.info is not None)
    if use_info:
        if files.info is None:
            raise FileNotFoundError(f"{files.name}: metadata 'info' asked for, but there is no {files.name}.info.json")
        info = read_info(files.info)
        if cfg.temperature is not None:
            info.temperature = cfg.temperature
        return info
    if files.qe_output is None:
        raise FileNotFoundError(
            f"{files.name}: no metadata: pass the snapshot's pw.x output (qe_output=..., in a dataset "
            f"{files.name}.out) or the {files.name}.info.json alml writes on export"
        )
    return read_qe_output(files.qe_output, cfg.temperature)


def _ladder(cfg: MalaImportConfig, n_e: int, info: SnapshotInfo) -> EnergyLadder:
    if cfg.ldos_gridsize is not None and cfg.ldos_gridsize != n_e:
        raise ValueError(f"the LDOS file has {n_e} energies but ldos_gridsize is {cfg.ldos_gridsize}")
    if cfg.ldos_gridoffset_ev is None or cfg.ldos_gridspacing_ev is None:
        if info.ladder is None:
            raise ValueError(
                "no energy ladder: set ldos_gridoffset_ev and ldos_gridspacing_ev (MALA's parameters) in the config"
            )
        if info.ladder.n != n_e:
            raise ValueError(f"info.json's ladder has {info.ladder.n} energies, the LDOS file {n_e}")
        return info.ladder
    spacing = cfg.ldos_gridspacing_ev
    broadening = cfg.broadening if cfg.broadening is not None else cfg.smearing_factor * spacing
    return EnergyLadder(cfg.ldos_gridoffset_ev + spacing * np.arange(n_e), broadening, cfg.kernel)


def _settings(cfg: MalaImportConfig, info: SnapshotInfo, k: int) -> BispectrumSettings:
    s = cfg.descriptors or info.descriptors
    if s is None:
        twojmax = next((j for j in range(21) if n_bispectrum(j) == k), None)
        if twojmax is None:
            raise ValueError(
                f"{k} descriptor components is no bispectrum length: give the descriptor settings in the config "
                "(or set descriptors_contain_xyz: false if the file has no x, y, z columns)"
            )
        s = MALA_AL.model_copy(update={"twojmax": twojmax})
    if s.n_components != k:
        raise ValueError(f"the descriptor settings give {s.n_components} components, the file holds {k}")
    return s


# --- grids ---------------------------------------------------------------------------------------------


def lammps_frame(cell: np.ndarray) -> np.ndarray:
    """The cell rotated into LAMMPS's frame (a₁ along x, a₂ in the xy plane), rows in Å."""
    from ase.geometry import cell_to_cellpar, cellpar_to_cell

    return np.asarray(cellpar_to_cell(cell_to_cellpar(np.asarray(cell, dtype=float))))


def grid_coordinates(cell: np.ndarray, shape: tuple[int, int, int], k0: int, k1: int) -> np.ndarray:
    """Cartesian coordinates (nx, ny, k1 − k0, 3) in Å of grid points (i, j, k): i/nx·a₁ + j/ny·a₂ + k/nz·a₃."""
    nx, ny, nz = shape
    f = [np.arange(nx) / nx, np.arange(ny) / ny, np.arange(k0, k1) / nz]
    c = np.asarray(cell, dtype=float)
    return f[0][:, None, None, None] * c[0] + f[1][None, :, None, None] * c[1] + f[2][None, None, :, None] * c[2]


def _planes(shape: tuple[int, ...], itemsize: int) -> int:
    per_plane = int(np.prod(shape[:2])) * int(shape[3]) * itemsize
    return max(1, min(int(shape[2]), _SLAB_BYTES // max(per_plane, 1)))


def _check_xyz(xyz: np.ndarray, cell: np.ndarray, shape: tuple[int, int, int], k0: int, tol: float, name: str) -> None:
    k1 = k0 + xyz.shape[2]
    for frame in (np.asarray(cell, dtype=float), lammps_frame(cell)):
        if np.max(np.abs(xyz - grid_coordinates(frame, shape, k0, k1)), initial=0.0) <= tol:
            return
    raise ValueError(
        f"{name}: the first three descriptor columns are not the grid points' x, y, z (Å) at k-planes {k0}..{k1 - 1}: "
        "is the grid stored in another order, or in another cell? If the file has no coordinate columns set "
        "descriptors_contain_xyz: false; to skip the check set check_xyz: false"
    )


# --- import ----------------------------------------------------------------------------------------------


def import_mala_snapshot(
    files: MalaFiles,
    out: str | Path,
    config: MalaImportConfig | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert one MALA snapshot into an alml snapshot folder ``out`` (``ldos.h5`` + ``descriptors.h5``); return it.

    A folder already imported from the same files with the same config is kept unless ``overwrite``.
    """
    from alml.descriptors.grid_io import save_grid_h5

    cfg = config or MalaImportConfig()
    out = Path(out)
    for p in (files.descriptors, files.ldos):
        if not p.is_file():
            raise FileNotFoundError(f"{files.name}: {p} does not exist (MALA names them <name>.in.npy, <name>.out.npy)")
    for p in (files.qe_output, files.info):
        if p is not None and not p.is_file():
            raise FileNotFoundError(f"{files.name}: {p} does not exist")
    key = sha256_json({
        "config": cfg.model_dump(mode="json"),
        "files": {str(p): [p.stat().st_size, p.stat().st_mtime_ns] for p in _present(files)},
    })[:16]
    if not overwrite and _already_imported(out, key):
        return out
    x = np.load(files.descriptors, mmap_mode="r")
    y = np.load(files.ldos, mmap_mode="r")
    if x.ndim != 4 or y.ndim != 4:
        raise ValueError(
            f"{files.name}: MALA arrays are (nx, ny, nz, features): descriptors {x.shape}, LDOS {y.shape} "
            "(flattened (n_points, features) files are not supported: reshape them to the grid first)"
        )
    if x.shape[:3] != y.shape[:3]:
        raise ValueError(f"{files.name}: descriptor grid {x.shape[:3]} differs from LDOS grid {y.shape[:3]}")
    shape: tuple[int, int, int] = tuple(int(v) for v in y.shape[:3])  # type: ignore[assignment]
    info = _info_of(files, cfg)
    if info.fft_grid is not None and tuple(info.fft_grid) != shape:
        raise ValueError(f"{files.name}: the arrays' grid {shape} is not pw.x's FFT grid {info.fft_grid}")
    ladder = _ladder(cfg, int(y.shape[3]), info)
    n0 = 3 if cfg.descriptors_contain_xyz else 0
    if x.shape[3] <= n0:
        raise ValueError(f"{files.name}: descriptors have {x.shape[3]} columns, no components after x, y, z")
    settings = _settings(cfg, info, int(x.shape[3]) - n0)
    if cfg.descriptors_contain_xyz and cfg.check_xyz:
        planes = _planes(x.shape, 8)
        for k0 in range(0, shape[2], planes):
            xyz = np.asarray(x[:, :, k0 : k0 + planes, :3], dtype=float)
            _check_xyz(xyz, info.atoms.cell[:], shape, k0, cfg.xyz_tolerance, files.name)
    meta = LdosMeta(
        atoms=info.atoms, ladder=ladder, shape=shape, temperature=info.temperature, n_electrons=info.n_electrons,
        ecutrho=info.ecutrho, complete_below=info.complete_below, reference=info.reference,
        provenance={"source": "mala", "mala_import": key, "files": {k: str(v) for k, v in _named(files).items()}},
    )
    out.mkdir(parents=True, exist_ok=True)
    dtype = np.dtype(cfg.ldos_dtype)

    def fill(ds: Any) -> None:
        planes = _planes(y.shape, y.dtype.itemsize)
        for k0 in range(0, shape[2], planes):
            ds[:, :, k0 : k0 + planes, :] = np.asarray(y[:, :, k0 : k0 + planes, :], dtype=dtype)

    save_grid_h5(out / DESCRIPTORS_FILE, x[..., n0:], info.atoms, settings, dtype=np.dtype(cfg.descriptor_dtype))
    write_ldos_h5(out / LDOS_FILE, meta, fill, dtype=dtype)  # written last: its key marks a finished import
    return out


def _present(files: MalaFiles) -> list[Path]:
    return [p for p in (files.descriptors, files.ldos, files.qe_output, files.info) if p is not None]


def _named(files: MalaFiles) -> dict[str, Path]:
    d = {"descriptors": files.descriptors, "ldos": files.ldos, "qe_output": files.qe_output, "info": files.info}
    return {k: v for k, v in d.items() if v is not None}


def _already_imported(out: Path, key: str) -> bool:
    if not (is_valid_ldos_h5(out / LDOS_FILE) and (out / DESCRIPTORS_FILE).is_file()):
        return False
    with LdosFile(out / LDOS_FILE) as f:
        return f.provenance.get("mala_import") == key


def find_mala_snapshots(directory: str | Path, qe_suffix: str = ".out") -> list[MalaFiles]:
    """Every ``<name>.in.npy`` in ``directory`` (natural order: snapshot2 before snapshot10) with its files."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"MALA dataset folder {d} does not exist")
    names = [p.name[: -len(".in.npy")] for p in d.glob("*.in.npy")]
    if not names:
        raise FileNotFoundError(f"no <name>.in.npy descriptor files in {d}: is it a MALA dataset folder?")
    natural = sorted(names, key=lambda s: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)])
    return [MalaFiles.named(d, n, qe_suffix) for n in natural]


def import_mala_dataset(
    directory: str | Path,
    out_root: str | Path,
    config: MalaImportConfig | None = None,
    qe_suffix: str = ".out",
    overwrite: bool = False,
) -> list[Path]:
    """Import every snapshot of a MALA dataset folder into ``out_root/<name>/``; return the snapshot folders."""
    return [
        import_mala_snapshot(f, Path(out_root) / f.name, config, overwrite)
        for f in find_mala_snapshots(directory, qe_suffix)
    ]


# --- export ----------------------------------------------------------------------------------------------


def export_mala_snapshot(
    snapshot: str | Path,
    out_dir: str | Path,
    name: str,
    qe_output: str | Path | None = None,
    dtype: Literal["float32", "float64"] | None = None,
) -> MalaFiles:
    """Write an alml snapshot folder (``ldos.h5`` + ``descriptors.h5``) in MALA's layout as ``out_dir/<name>.*``:
    ``.in.npy`` (x, y, z in LAMMPS's frame, then the descriptors), ``.out.npy`` (LDOS), ``.info.json`` (alml's
    metadata and the MALA parameters to set) and, given the snapshot's pw.x output, a copy as ``.out``.
    ``dtype`` defaults to the source files' types."""
    import shutil

    import h5py

    snap, out_dir = Path(snapshot), Path(out_dir)
    base = out_dir / name
    files = MalaFiles(name, Path(f"{base}.in.npy"), Path(f"{base}.out.npy"), None, Path(f"{base}.info.json"))
    with LdosFile(snap / LDOS_FILE) as lf, h5py.File(snap / DESCRIPTORS_FILE, "r") as df:
        ds = df["descriptors"]
        shape = lf.shape
        if tuple(ds.shape[:3]) != tuple(shape):
            raise ValueError(f"{snap}: descriptor grid {ds.shape[:3]} differs from LDOS grid {shape}")
        settings = json.loads(df.attrs["settings"]) if "settings" in df.attrs else None
        frame = lammps_frame(lf.atoms.cell[:])
        xdt = np.dtype(dtype or ds.dtype)
        k = int(ds.shape[3])

        def write_x(tmp: Path) -> None:
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=xdt, shape=(*shape, 3 + k))
            planes = _planes((*shape, 3 + k), 8)
            for k0 in range(0, shape[2], planes):
                k1 = min(shape[2], k0 + planes)
                mm[:, :, k0:k1, :3] = grid_coordinates(frame, shape, k0, k1)
                mm[:, :, k0:k1, 3:] = ds[:, :, k0:k1, :]
            mm.flush()
            del mm

        def write_y(tmp: Path) -> None:
            ydt = np.dtype(dtype or lf.ldos.dtype)
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=ydt, shape=(*shape, lf.ladder.n))
            for k0, k1, slab in lf.iter_slabs(max_bytes=_SLAB_BYTES):
                mm[:, :, k0:k1, :] = slab
            mm.flush()
            del mm

        atomic_write(files.descriptors, write_x)
        atomic_write(files.ldos, write_y)
        atomic_write_json(files.info, info_dict(lf, settings))
    if qe_output is not None:
        dest = out_dir / f"{name}.out"
        atomic_write(dest, lambda tmp: shutil.copyfile(qe_output, tmp))
        files = MalaFiles(name, files.descriptors, files.ldos, dest, files.info)
    return files


__all__ = [
    "MalaFiles",
    "MalaImportConfig",
    "SnapshotInfo",
    "export_mala_snapshot",
    "find_mala_snapshots",
    "grid_coordinates",
    "import_mala_dataset",
    "import_mala_snapshot",
    "lammps_frame",
    "read_info",
    "read_qe_output",
]
