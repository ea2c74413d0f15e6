"""Training data for the potential: descriptors computed once per structure, cached, packed.

Descriptors and their gradients are fixed inputs of training, so each structure is featurised once
by :func:`descriptors_cached`, which keeps an ``.npz`` per structure under
``<cache>/<settings hash>/<structure hash>.npz``. :class:`PackedDataset` concatenates many
structures' descriptors with their labels (free energy or energy, forces, stress) into flat
arrays plus offsets; :meth:`PackedDataset.batch` gathers any subset into an
:class:`~alml.potential.model.AtomsBatch`. A packed set is saved as one ``.npz``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from ase import Atoms

from alml.descriptors import BispectrumSettings, PerAtomDescriptors, per_atom
from alml.io import atomic_write, sha256_json
from alml.potential.model import AtomsBatch
from alml.structures import structure_hash

log = logging.getLogger(__name__)

#: Bumped when the cached arrays change meaning; part of every cache key.
CACHE_VERSION = 1

EnergyKey = Literal["free_energy", "energy"]


def settings_hash(settings: BispectrumSettings) -> str:
    """Short hash of the descriptor settings (the cache folder name)."""
    return sha256_json({"settings": settings.model_dump(mode="json"), "version": CACHE_VERSION})[:16]


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def descriptors_cached(atoms: Atoms, settings: BispectrumSettings, cache: Path | None) -> PerAtomDescriptors:
    """:func:`alml.descriptors.per_atom` with gradients, read from / written to ``cache`` when given."""
    if cache is None:
        return per_atom(atoms, settings, gradients=True)
    path = Path(cache) / settings_hash(settings) / f"{structure_hash(atoms)}.npz"
    if path.is_file():
        try:
            with np.load(path) as z:
                return PerAtomDescriptors(B=z["B"], dBdr=z["dBdr"], i=z["i"], j=z["j"], rij=z["rij"])
        except (OSError, KeyError, ValueError) as err:  # a damaged file is recomputed
            log.warning("recomputing unreadable cache file %s (%s)", path, err)
    d = per_atom(atoms, settings, gradients=True)
    data = _npz_bytes(B=d.B, dBdr=d.dBdr, i=d.i, j=d.j, rij=d.rij)
    atomic_write(path, lambda p: p.write_bytes(data))
    return d


def element_indices(atoms: Atoms, settings: BispectrumSettings) -> np.ndarray:
    """Index (0-based, the settings' element order) of every atom's element."""
    order = {s: k for k, s in enumerate(settings.symbols)}
    try:
        return np.array([order[s] for s in atoms.get_chemical_symbols()], dtype=np.int64)
    except KeyError as err:
        raise ValueError(f"element {err.args[0]} has no descriptor parameters (known: {settings.symbols})") from None


def cell_volume(atoms: Atoms) -> float:
    """Cell volume (Å³) of a 3-D periodic cell; 0 otherwise (no stress is defined)."""
    return float(atoms.get_volume()) if all(atoms.pbc) else 0.0


def labels(atoms: Atoms, energy_key: EnergyKey = "free_energy") -> tuple[float, np.ndarray | None, np.ndarray | None]:
    """(energy eV, forces (N, 3) eV/Å or None, stress (3, 3) eV/Å³ or None) from ``atoms.calc``'s results."""
    from ase.stress import voigt_6_to_full_3x3_stress

    calc = atoms.calc
    results = getattr(calc, "results", {}) if calc is not None else {}
    if energy_key not in results:
        raise ValueError(
            f"structure {atoms.get_chemical_formula()} has no {energy_key!r} label (has {sorted(results)})"
        )
    f = results.get("forces")
    s = results.get("stress")
    if s is not None:
        s = np.asarray(s, float)
        s = voigt_6_to_full_3x3_stress(s) if s.shape == (6,) else s.reshape(3, 3)
    return float(results[energy_key]), None if f is None else np.asarray(f, float), s


@dataclass(frozen=True)
class PackedDataset:
    """S structures packed: atoms rows ``atom_ptr[s]:atom_ptr[s+1]``, pairs ``pair_ptr[s]:pair_ptr[s+1]``.

    Arrays: ``B`` (N, K), ``elem`` (N,), ``dBdr`` (P, 3, K), ``pair_i``/``pair_j`` (P,) atom indices
    *within* their structure, ``rij`` (P, 3), ``volume`` (S,) Å³, ``energy`` (S,) eV, ``forces``
    (N, 3) eV/Å (NaN where missing), ``has_forces`` (S,), ``stress`` (S, 3, 3) eV/Å³ (NaN where
    missing), ``has_stress`` (S,), ``hashes`` (S,) structure hashes.
    """

    B: np.ndarray
    elem: np.ndarray
    atom_ptr: np.ndarray
    dBdr: np.ndarray
    pair_i: np.ndarray
    pair_j: np.ndarray
    rij: np.ndarray
    pair_ptr: np.ndarray
    volume: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    has_forces: np.ndarray
    stress: np.ndarray
    has_stress: np.ndarray
    hashes: np.ndarray

    def __len__(self) -> int:
        return int(len(self.energy))

    @property
    def n_atoms(self) -> np.ndarray:
        return np.diff(self.atom_ptr)

    @property
    def n_descriptors(self) -> int:
        return int(self.B.shape[1])

    def content_hash(self) -> str:
        """Hash of the structures, their labels and descriptors (not of the descriptor gradients)."""
        import hashlib

        return sha256_json(
            {
                "descriptors": hashlib.sha256(np.ascontiguousarray(self.B, dtype=np.float64).tobytes()).hexdigest(),
                "hashes": self.hashes.tolist(),
                "energy": np.round(self.energy, 8).tolist(),
                "forces": np.round(np.nan_to_num(self.forces, nan=1e9), 6).sum(axis=1).tolist(),
                "stress": np.round(np.nan_to_num(self.stress, nan=1e9), 8).reshape(len(self), 9).tolist(),
            }
        )

    def element_counts(self, n_elements: int) -> np.ndarray:
        """(S, G) atoms of each element in each structure."""
        out = np.zeros((len(self), n_elements))
        s = np.repeat(np.arange(len(self)), self.n_atoms)
        np.add.at(out, (s, self.elem), 1.0)
        return out

    def _rows(self, ptr: np.ndarray, idx: np.ndarray) -> np.ndarray:
        if len(idx) == 0:
            return np.zeros(0, np.int64)
        return np.concatenate([np.arange(ptr[s], ptr[s + 1]) for s in idx])

    def subset(self, idx: Sequence[int] | np.ndarray) -> PackedDataset:
        """The structures ``idx``, in that order, as a new packed set."""
        idx = np.asarray(idx, dtype=np.int64)
        ar, pr = self._rows(self.atom_ptr, idx), self._rows(self.pair_ptr, idx)
        return PackedDataset(
            B=self.B[ar],
            elem=self.elem[ar],
            atom_ptr=np.concatenate([[0], np.cumsum(self.n_atoms[idx])]).astype(np.int64),
            dBdr=self.dBdr[pr],
            pair_i=self.pair_i[pr],
            pair_j=self.pair_j[pr],
            rij=self.rij[pr],
            pair_ptr=np.concatenate([[0], np.cumsum(np.diff(self.pair_ptr)[idx])]).astype(np.int64),
            volume=self.volume[idx],
            energy=self.energy[idx],
            forces=self.forces[ar],
            has_forces=self.has_forces[idx],
            stress=self.stress[idx],
            has_stress=self.has_stress[idx],
            hashes=self.hashes[idx],
        )

    def astype(self, dtype: np.dtype | type) -> PackedDataset:
        """A copy with the floating-point arrays in ``dtype`` (labels stay float64)."""
        return replace(self, B=self.B.astype(dtype), dBdr=self.dBdr.astype(dtype), rij=self.rij.astype(dtype))

    def batch(self, idx: Sequence[int] | np.ndarray, dtype: torch.dtype = torch.float64) -> tuple[AtomsBatch, Targets]:
        """The structures ``idx`` as a model batch and its targets."""
        idx = np.asarray(idx, dtype=np.int64)
        sub = self.subset(idx) if not (len(idx) == len(self) and np.all(idx == np.arange(len(self)))) else self
        n_atoms = sub.n_atoms
        n_pairs = np.diff(sub.pair_ptr)
        atom_struct = np.repeat(np.arange(len(sub)), n_atoms)
        pair_struct = np.repeat(np.arange(len(sub)), n_pairs)
        offset = sub.atom_ptr[:-1][pair_struct]

        def t(a: np.ndarray, dt: torch.dtype = dtype) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(a), dtype=dt)

        long = torch.int64
        batch = AtomsBatch(
            B=t(sub.B),
            elem=t(sub.elem, long),
            atom_struct=t(atom_struct, long),
            n_atoms=t(n_atoms),
            volume=t(sub.volume),
            dBdr=t(sub.dBdr),
            pair_i=t(sub.pair_i + offset, long),
            pair_j=t(sub.pair_j + offset, long),
            rij=t(sub.rij),
            pair_struct=t(pair_struct, long),
        )
        targets = Targets(
            energy=t(sub.energy),
            forces=t(sub.forces),
            force_mask=t(np.repeat(sub.has_forces, n_atoms), torch.bool),
            stress=t(sub.stress),
            stress_mask=t(sub.has_stress, torch.bool),
        )
        return batch, targets

    # -- files ------------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the packed set as one ``.npz`` (atomically)."""
        arrays = {f.name: getattr(self, f.name) for f in fields(self)}
        arrays["hashes"] = np.asarray(self.hashes, dtype="U64")
        data = _npz_bytes(**arrays)
        atomic_write(Path(path), lambda p: p.write_bytes(data))

    @classmethod
    def load(cls, path: Path) -> PackedDataset:
        with np.load(path) as z:
            return cls(**{f.name: z[f.name] for f in fields(cls)})

    @classmethod
    def concatenate(cls, parts: Sequence[PackedDataset]) -> PackedDataset:
        if not parts:
            raise ValueError("nothing to concatenate")
        cat = {name: np.concatenate([getattr(p, name) for p in parts]) for name in
               ("B", "elem", "dBdr", "pair_i", "pair_j", "rij", "volume", "energy", "forces", "has_forces",
                "stress", "has_stress", "hashes")}
        atom_ptr = np.concatenate([[0], np.cumsum(np.concatenate([p.n_atoms for p in parts]))]).astype(np.int64)
        pair_ptr = np.concatenate([[0], np.cumsum(np.concatenate([np.diff(p.pair_ptr) for p in parts]))])
        return cls(atom_ptr=atom_ptr, pair_ptr=pair_ptr.astype(np.int64), **cat)


@dataclass(frozen=True)
class Targets:
    """Labels of a batch: ``energy`` (S,) eV, ``forces`` (N, 3) eV/Å with ``force_mask`` (N,),
    ``stress`` (S, 3, 3) eV/Å³ with ``stress_mask`` (S,)."""

    energy: torch.Tensor
    forces: torch.Tensor
    force_mask: torch.Tensor
    stress: torch.Tensor
    stress_mask: torch.Tensor


def pack(
    images: Iterable[Atoms],
    settings: BispectrumSettings,
    *,
    cache: Path | None = None,
    energy_key: EnergyKey = "free_energy",
    progress: bool = False,
) -> PackedDataset:
    """Featurise labelled structures (descriptors from ``cache`` when there) into a :class:`PackedDataset`."""
    images = list(images)
    if not images:
        raise ValueError("no structures to pack")
    parts: list[PackedDataset] = []
    it: Iterable[Atoms] = images
    if progress:
        from rich.progress import track

        it = track(images, description="descriptors")
    for atoms in it:
        energy, forces, stress = labels(atoms, energy_key)
        d = descriptors_cached(atoms, settings, cache)
        n = len(atoms)
        parts.append(
            PackedDataset(
                B=d.B,
                elem=element_indices(atoms, settings),
                atom_ptr=np.array([0, n], np.int64),
                dBdr=d.dBdr,
                pair_i=d.i,
                pair_j=d.j,
                rij=d.rij,
                pair_ptr=np.array([0, len(d.i)], np.int64),
                volume=np.array([cell_volume(atoms)]),
                energy=np.array([energy]),
                forces=np.full((n, 3), np.nan) if forces is None else forces,
                has_forces=np.array([forces is not None]),
                stress=np.full((1, 3, 3), np.nan) if stress is None or not all(atoms.pbc) else stress[None],
                has_stress=np.array([stress is not None and all(atoms.pbc)]),
                hashes=np.array([structure_hash(atoms)], dtype="U64"),
            )
        )
    return PackedDataset.concatenate(parts)


def batch_from_descriptors(
    d: PerAtomDescriptors, elem: np.ndarray, volume: float, dtype: torch.dtype = torch.float64
) -> AtomsBatch:
    """One structure's descriptors (gradients optional) as a model batch."""

    def t(a: np.ndarray, dt: torch.dtype = dtype) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dt)

    n = d.n_atoms
    long = torch.int64
    common = dict(
        B=t(d.B),
        elem=t(elem, long),
        atom_struct=torch.zeros(n, dtype=long),
        n_atoms=torch.tensor([float(n)], dtype=dtype),
        volume=torch.tensor([float(volume)], dtype=dtype),
    )
    if not d.has_gradients:
        return AtomsBatch(**common)
    return AtomsBatch(
        **common,
        dBdr=t(d.dBdr),
        pair_i=t(d.i, long),
        pair_j=t(d.j, long),
        rij=t(d.rij),
        pair_struct=torch.zeros(len(d.i), dtype=long),
    )
