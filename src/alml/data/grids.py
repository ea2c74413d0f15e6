"""LDOS snapshots in HDF5: one file per snapshot, written atomically, read whole or streamed by slabs.

Layout of a file (``format = "alml-ldos"``, ``format_version = 1``):

- ``ldos`` (nx, ny, nz, n_e), float32 by default, in 1/(eV·Å³), spin included: point (i, j, k) at fractional
  (i/nx, j/ny, k/nz) of the cell (QE's FFT order, the same as :func:`alml.descriptors.on_grid`); chunks
  (nx, ny, 1, ≤32) so a slab of k-planes or a block of energies reads without touching the rest;
- ``energies`` (n_e,) eV, absolute (QE's energy zero), uniform; attributes ``broadening`` (eV, pp.x's
  ``degauss_ldos``), ``kernel`` (``fermi-dirac`` or ``gaussian``), ``spacing`` (eV);
- ``cell`` (3, 3) Å, ``positions`` (N, 3) Å, ``numbers`` (N,), ``pbc`` (3,): the structure;
- group ``qe``: QE's own results for the snapshot, in eV: attributes ``fermi_level``, ``band_energy``
  (Σ w f ε), ``free_energy`` ("! total energy"), ``energy`` (F + TS), ``n_electrons``, one attribute per
  energy term (``one_electron``, ``hartree``, ``xc``, ``ewald``, ``smearing_minus_ts``), and datasets
  ``eigenvalues`` (n_k, n_bands) eV, ``k_weights`` (n_k,) (summing to 2: spin included), ``occupations``
  (n_k, n_bands) in [0, 1];
- file attributes: ``temperature`` (K), ``n_electrons``, ``shape``, ``ecutrho`` (eV: the density cutoff, for
  the G-sphere of :mod:`alml.surrogate.total_energy`), ``complete_below`` (eV: the LDOS holds every state
  below this energy), ``layout``, ``units``, ``structure_hash``, ``alml_version``, ``provenance`` (JSON).

The grid descriptors of the same snapshot live in a separate file beside it
(:func:`alml.descriptors.write_grid_h5`), on the same grid.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms

from alml.io import atomic_write

FORMAT = "alml-ldos"
FORMAT_VERSION = 1
LAYOUT = "ldos[i, j, k, e] at fractional (i/nx, j/ny, k/nz) of the cell and energy energies[e]; QE FFT order"
UNITS = "ldos 1/(eV*Angstrom^3) (spin included); energies eV (absolute, QE zero); cell, positions Angstrom"

Kernel = Literal["fermi-dirac", "gaussian"]
KERNELS: tuple[str, ...] = ("fermi-dirac", "gaussian")
QE_TERMS: tuple[str, ...] = ("one_electron", "hartree", "xc", "ewald", "smearing_minus_ts")


# --- the energy ladder ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EnergyLadder:
    """Uniform ladder of energies (eV, absolute) at which the LDOS was sampled, and its broadening.

    ``broadening`` is pp.x's ``degauss_ldos`` (eV) and ``kernel`` the broadening function (the SCF's
    smearing: ``fermi-dirac`` after a Fermi–Dirac SCF, ``gaussian`` after a Gaussian-smearing nscf).
    """

    energies: np.ndarray = field(repr=False)
    broadening: float
    kernel: Kernel

    def __post_init__(self) -> None:
        e = np.asarray(self.energies, dtype=float).reshape(-1)
        object.__setattr__(self, "energies", e)
        if e.size < 2:
            raise ValueError("an energy ladder needs at least two energies")
        d = np.diff(e)
        if not np.all(d > 0) or np.ptp(d) > 1e-6 * max(1.0, abs(float(d.mean()))):
            raise ValueError("ladder energies must be increasing and uniformly spaced")
        if not self.broadening > 0:
            raise ValueError(f"broadening must be > 0 eV, got {self.broadening}")
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r}: use one of {KERNELS}")

    @classmethod
    def uniform(cls, emin: float, spacing: float, n: int, broadening: float, kernel: Kernel) -> EnergyLadder:
        """``n`` energies emin, emin + spacing, … (eV)."""
        return cls(emin + spacing * np.arange(int(n)), float(broadening), kernel)

    @property
    def n(self) -> int:
        return int(self.energies.size)

    @property
    def spacing(self) -> float:
        return float((self.energies[-1] - self.energies[0]) / (self.n - 1))

    @property
    def emin(self) -> float:
        return float(self.energies[0])

    @property
    def emax(self) -> float:
        return float(self.energies[-1])

    def key(self) -> tuple[float, float, int, float, str]:
        """Hashable identity (rounded), for caches."""
        return (round(self.emin, 9), round(self.spacing, 12), self.n, round(self.broadening, 12), self.kernel)


def broadening_kernel(delta: np.ndarray, width: float, kernel: Kernel) -> np.ndarray:
    """pp.x's broadening K_σ(Δ) in 1/eV for Δ = E − ε (eV), width σ = ``degauss_ldos`` (eV); ∫ K dΔ = 1.

    ``fermi-dirac``: 1/(2 + eˣ + e⁻ˣ)/σ (QE ``w0gauss(x, -99)``); ``gaussian``: exp(−x²)/(√π σ) (``ngauss 0``).
    """
    x = np.asarray(delta, dtype=float) / width
    if kernel == "fermi-dirac":
        ax = np.abs(x)
        e = np.exp(-ax)
        return e / (1.0 + e) ** 2 / width
    if kernel == "gaussian":
        return np.exp(-x * x) / (math.sqrt(math.pi) * width)
    raise ValueError(f"unknown kernel {kernel!r}: use 'fermi-dirac' or 'gaussian'")


# --- QE's reference results ------------------------------------------------------------------------


@dataclass
class QEReference:
    """QE's results for a snapshot (eV): what the observables computed from its LDOS are checked against."""

    fermi_level: float
    band_energy: float
    free_energy: float
    energy: float
    n_electrons: float
    terms: dict[str, float]
    eigenvalues: np.ndarray | None = field(default=None, repr=False)  #: (n_k, n_bands) eV
    k_weights: np.ndarray | None = field(default=None, repr=False)  #: (n_k,), sum 2
    occupations: np.ndarray | None = field(default=None, repr=False)  #: (n_k, n_bands) in [0, 1]


# --- writing --------------------------------------------------------------------------------------


@dataclass
class LdosMeta:
    """Everything in an LDOS file except the LDOS values."""

    atoms: Atoms
    ladder: EnergyLadder
    shape: tuple[int, int, int]
    temperature: float  #: K
    n_electrons: float
    ecutrho: float | None = None  #: eV
    complete_below: float | None = None  #: eV
    reference: QEReference | None = None
    provenance: dict[str, Any] = field(default_factory=dict)


def energy_chunk(shape: tuple[int, int, int], n_energies: int, max_bytes: int = 256 << 20) -> int:
    """Energies per chunk (and per write block): ≤ 32, and a (nx, ny, nz, chunk) float32 block ≤ ``max_bytes``."""
    per_energy = 4 * int(np.prod(shape))
    return int(max(1, min(n_energies, 32, max_bytes // max(1, per_energy))))


def write_ldos_h5(
    path: str | Path,
    meta: LdosMeta,
    ldos: np.ndarray | Callable[[Any], None],
    *,
    dtype: np.dtype | type = np.float32,
    compression: str | None = None,
) -> Path:
    """Write an LDOS file atomically; ``ldos`` is the array (nx, ny, nz, n_e) in 1/(eV·Å³) or a callable
    ``fill(dataset)`` that writes the (already created) ``ldos`` dataset block by block."""
    import h5py

    path = Path(path)
    shape = tuple(int(v) for v in meta.shape)
    n_e = meta.ladder.n
    if not callable(ldos):
        arr = np.asarray(ldos)
        if arr.shape != (*shape, n_e):
            raise ValueError(f"ldos must have shape {(*shape, n_e)}, got {arr.shape}")

    def writer(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            _write_header(f, meta)
            ce = energy_chunk(shape, n_e)
            ds = f.create_dataset(
                "ldos", shape=(*shape, n_e), dtype=np.dtype(dtype), chunks=(shape[0], shape[1], 1, ce),
                compression=compression,
            )
            if callable(ldos):
                ldos(ds)
            else:
                for j0 in range(0, n_e, ce):
                    ds[..., j0 : j0 + ce] = arr[..., j0 : j0 + ce]

    atomic_write(path, writer)
    return path


def _write_header(f: Any, meta: LdosMeta) -> None:
    import alml
    from alml.structures import structure_hash

    a = meta.atoms
    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["layout"] = LAYOUT
    f.attrs["units"] = UNITS
    f.attrs["shape"] = np.asarray(meta.shape, dtype=np.int64)
    f.attrs["temperature"] = float(meta.temperature)
    f.attrs["n_electrons"] = float(meta.n_electrons)
    f.attrs["ecutrho"] = float("nan") if meta.ecutrho is None else float(meta.ecutrho)
    f.attrs["complete_below"] = float("nan") if meta.complete_below is None else float(meta.complete_below)
    f.attrs["structure_hash"] = structure_hash(a)
    f.attrs["alml_version"] = alml.__version__
    f.attrs["provenance"] = json.dumps(meta.provenance, sort_keys=True, default=str)
    f.create_dataset("cell", data=np.asarray(a.cell[:], dtype=float))
    f.create_dataset("positions", data=np.asarray(a.positions, dtype=float))
    f.create_dataset("numbers", data=np.asarray(a.numbers, dtype=np.int64))
    f.create_dataset("pbc", data=np.asarray(a.pbc, dtype=bool))
    e = f.create_dataset("energies", data=meta.ladder.energies)
    e.attrs["broadening"] = meta.ladder.broadening
    e.attrs["kernel"] = meta.ladder.kernel
    e.attrs["spacing"] = meta.ladder.spacing
    e.attrs["units"] = "eV"
    ref = meta.reference
    if ref is not None:
        g = f.create_group("qe")
        for k in ("fermi_level", "band_energy", "free_energy", "energy", "n_electrons"):
            g.attrs[k] = float(getattr(ref, k))
        for k, v in ref.terms.items():
            g.attrs[k] = float(v)
        for k in ("eigenvalues", "k_weights", "occupations"):
            v = getattr(ref, k)
            if v is not None:
                g.create_dataset(k, data=np.asarray(v, dtype=float))


# --- reading --------------------------------------------------------------------------------------


class LdosFile:
    """An open LDOS file: metadata at once, the LDOS lazily (whole, by k-slabs, by points or by energies).

    Use as a context manager, or call :meth:`close`. ``slab(k0, k1)`` returns (nx, ny, k1 − k0, n_e);
    :meth:`iter_slabs` streams the grid in slabs of k-planes with bounded memory.
    """

    def __init__(self, path: str | Path) -> None:
        import h5py

        self.path = Path(path)
        self._f = h5py.File(self.path, "r")
        f = self._f
        if f.attrs.get("format") != FORMAT:
            self._f.close()
            raise ValueError(f"{self.path} is not an alml LDOS file (format attribute {f.attrs.get('format')!r})")
        self.ldos = f["ldos"]
        e = f["energies"]
        self.ladder = EnergyLadder(e[...], float(e.attrs["broadening"]), str(e.attrs["kernel"]))  # type: ignore[arg-type]
        self.shape: tuple[int, int, int] = tuple(int(v) for v in f.attrs["shape"])  # type: ignore[assignment]
        self.temperature = float(f.attrs["temperature"])
        self.n_electrons = float(f.attrs["n_electrons"])
        self.ecutrho = _opt(f.attrs.get("ecutrho"))
        self.complete_below = _opt(f.attrs.get("complete_below"))
        self.provenance = json.loads(f.attrs.get("provenance", "{}"))
        self.atoms = Atoms(
            numbers=f["numbers"][...], positions=f["positions"][...], cell=f["cell"][...], pbc=f["pbc"][...]
        )
        self.reference = _read_reference(f["qe"]) if "qe" in f else None

    # context manager
    def __enter__(self) -> LdosFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._f.close()

    @property
    def volume(self) -> float:
        """Cell volume, Å³."""
        return float(abs(np.linalg.det(self.atoms.cell[:])))

    @property
    def n_points(self) -> int:
        return int(np.prod(self.shape))

    def meta(self) -> LdosMeta:
        return LdosMeta(
            atoms=self.atoms.copy(), ladder=self.ladder, shape=self.shape, temperature=self.temperature,
            n_electrons=self.n_electrons, ecutrho=self.ecutrho, complete_below=self.complete_below,
            reference=self.reference, provenance=dict(self.provenance),
        )

    def read(self, dtype: np.dtype | type | None = None) -> np.ndarray:
        """The whole LDOS (nx, ny, nz, n_e)."""
        v = self.ldos[...]
        return v if dtype is None else v.astype(dtype, copy=False)

    def slab(self, k0: int, k1: int) -> np.ndarray:
        """k-planes [k0, k1): (nx, ny, k1 − k0, n_e)."""
        return self.ldos[:, :, k0:k1, :]

    def iter_slabs(
        self, planes: int | None = None, max_bytes: int = 256 << 20
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield (k0, k1, slab) over the grid; ``planes`` k-planes per slab (default: as many as fit ``max_bytes``)."""
        nx, ny, nz = self.shape
        if planes is None:
            per_plane = nx * ny * self.ladder.n * self.ldos.dtype.itemsize
            planes = max(1, min(nz, max_bytes // max(1, per_plane)))
        for k0 in range(0, nz, planes):
            k1 = min(nz, k0 + planes)
            yield k0, k1, self.slab(k0, k1)

    def points(self, indices: np.ndarray) -> np.ndarray:
        """LDOS at flat grid indices (C order over (nx, ny, nz)): (len(indices), n_e), in the order given."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        i, j, k = np.unravel_index(idx, self.shape)
        out = np.empty((idx.size, self.ladder.n), dtype=self.ldos.dtype)
        for kk in np.unique(k):  # one k-plane (a chunk row) at a time
            sel = np.nonzero(k == kk)[0]
            plane = self.ldos[:, :, int(kk), :]
            out[sel] = plane[i[sel], j[sel]]
        return out

    def dos(self) -> np.ndarray:
        """DOS (n_e,) in states/eV: the LDOS summed over the grid times the voxel volume, streamed by slabs."""
        total = np.zeros(self.ladder.n)
        for _, _, slab in self.iter_slabs():
            total += slab.reshape(-1, self.ladder.n).sum(axis=0, dtype=np.float64)
        return total * (self.volume / self.n_points)

    def energies_block(self, j0: int, j1: int) -> np.ndarray:
        """LDOS for energies [j0, j1): (nx, ny, nz, j1 − j0)."""
        return self.ldos[..., j0:j1]


def _opt(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


def _read_reference(g: Any) -> QEReference:
    a = g.attrs
    return QEReference(
        fermi_level=float(a["fermi_level"]),
        band_energy=float(a["band_energy"]),
        free_energy=float(a["free_energy"]),
        energy=float(a["energy"]),
        n_electrons=float(a["n_electrons"]),
        terms={k: float(a[k]) for k in QE_TERMS if k in a},
        eigenvalues=g["eigenvalues"][...] if "eigenvalues" in g else None,
        k_weights=g["k_weights"][...] if "k_weights" in g else None,
        occupations=g["occupations"][...] if "occupations" in g else None,
    )


def open_ldos_h5(path: str | Path) -> LdosFile:
    """Open an LDOS file for lazy reading (see :class:`LdosFile`)."""
    return LdosFile(path)


def read_ldos_h5(path: str | Path) -> tuple[np.ndarray, LdosMeta]:
    """Read a whole LDOS file: (ldos (nx, ny, nz, n_e), metadata)."""
    with LdosFile(path) as f:
        return f.read(), f.meta()


def is_valid_ldos_h5(path: str | Path) -> bool:
    """True if ``path`` is a complete, readable LDOS file (used to skip finished snapshots)."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        with LdosFile(p) as f:
            return f.ldos.shape == (*f.shape, f.ladder.n)
    except Exception:
        return False
