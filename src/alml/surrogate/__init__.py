"""ML-DFT surrogate: training data, the LDOS committee, observables and total energy.

The model and training API is exported lazily (importing :mod:`alml.surrogate.observables` does not import torch):

- :class:`LdosModelConfig`, :class:`LdosModel`, :func:`load_ldos_model`, :func:`save_ldos_model`
- :func:`predict_ldos` (committee mean and std), :func:`predict_members`, :func:`band_energy_committee`
- :func:`train_ldos_model`, :class:`Snapshot`, :func:`load_points`
- :func:`predict_structure` (new structures, any size; it is :func:`alml.surrogate.predict.predict`, exported
  under another name because the submodule ``predict`` would shadow it) -> :class:`Prediction`,
  :class:`PredictConfig`, :class:`Estimate`, :func:`write_prediction`; :class:`LdosCalculator` (ASE: energy and
  free energy, no forces)
- :func:`evaluate_model` (held-out snapshots: band/total energy meV/atom, density %, Fermi level, with committee
  std) -> :class:`Evaluation`; :func:`write_evaluation`
- :class:`HpoConfig`, :func:`run_hpo` (Optuna, study in SQLite by default)
- :class:`MalaImportConfig`, :func:`import_mala_snapshot`, :func:`import_mala_dataset`,
  :func:`export_mala_snapshot` (MALA's .in.npy / .out.npy layout)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "BandEnergyStats": "alml.surrogate.model",
    "LdosModel": "alml.surrogate.model",
    "LdosModelConfig": "alml.surrogate.model",
    "band_energy_committee": "alml.surrogate.model",
    "load_ldos_model": "alml.surrogate.model",
    "predict_ldos": "alml.surrogate.model",
    "predict_members": "alml.surrogate.model",
    "save_ldos_model": "alml.surrogate.model",
    "Snapshot": "alml.surrogate.snapshots",
    "load_points": "alml.surrogate.snapshots",
    "train_ldos_model": "alml.surrogate.train",
    "Estimate": "alml.surrogate.predict",
    "PredictConfig": "alml.surrogate.predict",
    "Prediction": "alml.surrogate.predict",
    "predict_structure": "alml.surrogate.predict",
    "write_prediction": "alml.surrogate.predict",
    "LdosCalculator": "alml.surrogate.calculator",
    "Evaluation": "alml.surrogate.evaluate",
    "evaluate_model": "alml.surrogate.evaluate",
    "write_evaluation": "alml.surrogate.evaluate",
    "HpoConfig": "alml.surrogate.hpo",
    "run_hpo": "alml.surrogate.hpo",
    "MalaImportConfig": "alml.surrogate.mala",
    "export_mala_snapshot": "alml.surrogate.mala",
    "import_mala_dataset": "alml.surrogate.mala",
    "import_mala_snapshot": "alml.surrogate.mala",
}

__all__ = sorted(_LAZY)


_RENAMED = {"predict_structure": "predict"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), _RENAMED.get(name, name))
    raise AttributeError(f"module 'alml.surrogate' has no attribute {name!r}")
