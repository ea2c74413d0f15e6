"""Interatomic potential: a committee of per-element networks on per-atom bispectrum descriptors.

Public API:

- :class:`PotentialConfig` (+ :class:`LossWeights`, :class:`TrainingConfig`, :class:`CommitteeConfig`,
  :class:`DataConfig`, :class:`TrainJob`)
- :class:`NNPotential`, :class:`AtomsBatch`, :class:`Prediction`, :class:`Normalization`
- :func:`pack`, :class:`PackedDataset`, :func:`descriptors_cached`
- :func:`train_potential`, :func:`predict_dataset`
- :class:`TrainedPotential`, :func:`load_potential`, :func:`save_potential`
- :class:`NNCalculator` and the uncertainty keys ``ENERGY_STD``, ``FORCES_STD``, ``FORCES_STD_MEAN``,
  ``FORCES_STD_MAX``
- :func:`export_lammps`, :class:`LammpsExport`, :func:`lammps_evaluate`
"""

from alml.potential.calculator import (
    ENERGIES_COMMITTEE,
    ENERGY_STD,
    FORCES_COMMITTEE,
    FORCES_STD,
    FORCES_STD_MAX,
    FORCES_STD_MEAN,
    NNCalculator,
)
from alml.potential.config import (
    CommitteeConfig,
    DataConfig,
    LossWeights,
    PotentialConfig,
    TrainingConfig,
    TrainJob,
)
from alml.potential.dataset import PackedDataset, descriptors_cached, pack
from alml.potential.folder import TrainedPotential, load_potential, save_potential
from alml.potential.lammps_export import LammpsExport, export_lammps, lammps_evaluate
from alml.potential.model import AtomsBatch, NNPotential, Normalization, Prediction
from alml.potential.train import predict_dataset, train_potential

__all__ = [
    "ENERGIES_COMMITTEE",
    "ENERGY_STD",
    "FORCES_COMMITTEE",
    "FORCES_STD",
    "FORCES_STD_MAX",
    "FORCES_STD_MEAN",
    "AtomsBatch",
    "CommitteeConfig",
    "DataConfig",
    "LammpsExport",
    "LossWeights",
    "NNCalculator",
    "NNPotential",
    "Normalization",
    "PackedDataset",
    "PotentialConfig",
    "Prediction",
    "TrainJob",
    "TrainedPotential",
    "TrainingConfig",
    "descriptors_cached",
    "export_lammps",
    "lammps_evaluate",
    "load_potential",
    "pack",
    "predict_dataset",
    "save_potential",
    "train_potential",
]
