"""Per-epoch physics validation of the LDOS committee on one whole snapshot.

The band energy (:func:`alml.surrogate.observables.observables`, with the snapshot's own ladder, temperature and
electron count) of the predicted LDOS against that of the true LDOS, in meV/atom, the density error in %
(:func:`alml.surrogate.metrics.density_error_percent`) and, given pseudopotentials, the total-energy error in
meV/atom. :func:`alml.surrogate.train.train_ldos_model` adds the scaled MSE (``val_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from alml.data.grids import EnergyLadder, LdosFile
from alml.surrogate.metrics import density_error_percent, mev_per_atom
from alml.surrogate.observables import observables
from alml.surrogate.snapshots import Snapshot, _snapshot, descriptor_points


@dataclass(frozen=True)
class ValidationSnapshot:
    """A whole snapshot for physics validation: descriptors (P, K), LDOS (P, n_e) and what observables need.

    ``density`` (P,) 1/Å³ is the true LDOS's density; with ``pseudopotentials`` (element -> UPF path or
    :class:`~alml.surrogate.total_energy.PseudoData`) the true LDOS's total free energy is kept too, and
    :meth:`metrics` adds the total-energy error.
    """

    x: np.ndarray
    y: np.ndarray
    ladder: EnergyLadder
    volume: float
    n_electrons: float
    temperature: float
    n_atoms: int
    band_energy: float  #: eV, of the true LDOS
    density: np.ndarray | None = None  #: (P,) 1/Å³, of the true LDOS
    atoms: Atoms | None = None
    shape: tuple[int, int, int] | None = None
    ecut: float | None = None  #: eV, the density cutoff (QE's ecutrho), None: no G-sphere
    pseudopotentials: dict[str, Any] | None = None
    total_energy: float | None = None  #: eV, free energy of the true LDOS (with pseudopotentials)

    @classmethod
    def read(cls, s: Snapshot | str | Path, pseudopotentials: dict[str, Any] | None = None) -> ValidationSnapshot:
        s = _snapshot(s)
        with LdosFile(s.ldos) as f:
            y = f.read(np.float32).reshape(f.n_points, f.ladder.n)
            x = descriptor_points(s.descriptors, np.arange(f.n_points)).astype(np.float32, copy=False)
            obs = observables(y, f.ladder, f.volume, f.n_electrons, f.temperature)
            v = cls(
                x, y, f.ladder, f.volume, f.n_electrons, f.temperature, len(f.atoms), float(obs.band_energy),
                obs.density, f.atoms, f.shape, f.ecutrho, pseudopotentials,
            )
            if pseudopotentials is not None:
                object.__setattr__(v, "total_energy", v._free_energy(obs))
            return v

    def _free_energy(self, obs: Any) -> float:
        from alml.surrogate.total_energy import total_energy

        assert self.atoms is not None and self.shape is not None and self.pseudopotentials is not None
        terms = total_energy(
            np.reshape(obs.density, self.shape), self.atoms, obs.band_energy, obs.entropy_term,
            self.pseudopotentials, self.ecut,
        )
        return float(terms.free_energy)

    def band_energy_error(self, pred: np.ndarray) -> float:
        """|E_b(pred) − E_b(true)| in meV/atom (NaN when the prediction has no Fermi level)."""
        try:
            eb = observables(
                pred, self.ladder, self.volume, self.n_electrons, self.temperature, with_density=False
            ).band_energy
        except (ValueError, RuntimeError, ArithmeticError):
            return float("nan")
        return abs(eb - self.band_energy) * 1000.0 / max(self.n_atoms, 1)

    def metrics(self, pred: np.ndarray) -> dict[str, float]:
        """Per-epoch physics metrics of a predicted LDOS (P, n_e): ``val_band_energy_mev_per_atom`` (|ΔE_b|),
        ``val_density_error_percent`` (:func:`alml.surrogate.metrics.density_error_percent`) and, with
        pseudopotentials, ``val_total_energy_mev_per_atom`` (|ΔF|); NaN where the prediction has no Fermi level."""
        nan = float("nan")
        out = {"val_band_energy_mev_per_atom": nan, "val_density_error_percent": nan}
        if self.total_energy is not None:
            out["val_total_energy_mev_per_atom"] = nan
        try:
            obs = observables(pred, self.ladder, self.volume, self.n_electrons, self.temperature)
        except (ValueError, RuntimeError, ArithmeticError):
            return out
        out["val_band_energy_mev_per_atom"] = abs(mev_per_atom(obs.band_energy - self.band_energy, self.n_atoms))
        if self.density is not None:
            out["val_density_error_percent"] = density_error_percent(obs.density, self.density)
        if self.total_energy is not None:
            try:
                out["val_total_energy_mev_per_atom"] = abs(
                    mev_per_atom(self._free_energy(obs) - self.total_energy, self.n_atoms)
                )
            except (ValueError, RuntimeError, ArithmeticError, FloatingPointError):
                pass
        return out
