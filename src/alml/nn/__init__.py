"""Generic neural-network pieces: LAMMPS-exportable MLPs, scalers, one training loop, committees.

- :class:`MLP`, :class:`MLPConfig` (activations linear/tanh/sigmoid/relu only)
- :class:`Standardizer`, :func:`fit_standardizer`, :func:`fit_reference_energies`
- :func:`fit`, :class:`LoopConfig`, :class:`LoopState`, :func:`read_history`
- :func:`run_members`, :func:`committee_statistics`, :class:`CommitteeStats`, :func:`member_seed`
"""

from alml.nn.committee import CommitteeStats, committee_statistics, member_seed, plan_workers, run_members
from alml.nn.mlp import MLP, MLPConfig
from alml.nn.scaling import Standardizer, fit_reference_energies, fit_standardizer
from alml.nn.training import LoopConfig, LoopState, fit, read_history

__all__ = [
    "MLP",
    "CommitteeStats",
    "LoopConfig",
    "LoopState",
    "MLPConfig",
    "Standardizer",
    "committee_statistics",
    "fit",
    "fit_reference_energies",
    "fit_standardizer",
    "member_seed",
    "plan_workers",
    "read_history",
    "run_members",
]
