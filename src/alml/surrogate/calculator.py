"""ASE calculator on the LDOS committee: energy and free energy of any periodic Al structure, with uncertainty.

**No forces, no stress.** The ML-DFT route gives energies from a predicted LDOS; forces would need the
derivative of the whole chain (descriptors → LDOS → density → Harris–Foulkes energy) with respect to the
atomic positions, which is not implemented. Asking for them raises
:class:`ase.calculators.calculator.PropertyNotImplementedError` (ASE's contract), so this calculator cannot
drive MD or relaxations; use :mod:`alml.potential` for those.

Results (eV): ``energy`` (E = F + TS) and ``free_energy`` (F, pw.x's "! total energy"), both from the
committee-mean LDOS, and beside them ``energy_std``, ``free_energy_std`` (committee spread), ``fermi_level``,
``fermi_level_std``, ``band_energy`` and ``band_energy_std``. The full :class:`~alml.surrogate.predict.Prediction`
of the last calculation is :attr:`LdosCalculator.prediction`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from alml.surrogate.predict import PredictConfig, Prediction, predict


class LdosCalculator(Calculator):
    """ASE calculator: ``LdosCalculator(model, config)`` with a trained LDOS model (or its folder)."""

    implemented_properties = ("energy", "free_energy")

    def __init__(self, model: Any, config: PredictConfig | None = None, out: str | Path | None = None, **kwargs: Any):
        """``out``: write each calculation's files there (see :func:`~alml.surrogate.predict.predict`)."""
        super().__init__(**kwargs)
        from alml.surrogate.model import LdosModel, load_ldos_model

        self.model = model if isinstance(model, LdosModel) else load_ldos_model(model)
        self.config = config or PredictConfig(keep_density=False, write_density=False)
        self.out = out
        self.prediction: Prediction | None = None

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | tuple[str, ...] = ("energy",),
        system_changes: list[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        pred = predict(self.atoms, self.model, self.config, out=self.out)
        self.prediction = pred
        self.results = {
            "energy": pred.energy.value,
            "free_energy": pred.free_energy.value,
            "energy_std": pred.energy.std,
            "free_energy_std": pred.free_energy.std,
            "fermi_level": pred.fermi_level.value,
            "fermi_level_std": pred.fermi_level.std,
            "band_energy": pred.band_energy.value,
            "band_energy_std": pred.band_energy.std,
        }


__all__ = ["LdosCalculator"]
