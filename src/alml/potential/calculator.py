"""ASE calculator of a trained committee potential, with query-by-committee statistics.

Results (committee means): ``energy`` = ``free_energy`` (eV; the model is trained on the Mermin
free energy, whose gradient the forces are), ``forces`` (N, 3) eV/Å, ``stress`` (6,) eV/Å³ (Voigt,
ASE sign; 3-D periodic cells only), ``energies`` (N,) eV per atom. Committee statistics, under the
fixed keys below (:func:`alml.nn.committee.committee_statistics`):

- ``energy_std``: ρ = std_k(E_k) / √N, eV/atom;
- ``forces_std``: (N,) per-atom std of the force vector over members, eV/Å;
- ``forces_std_mean``, ``forces_std_max``: its mean and max over atoms, eV/Å;
- ``energies_committee`` (K,) and ``forces_committee`` (K, N, 3): the members' own predictions.

Standard deviations use ddof=1; a one-member model reports zeros.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from alml.descriptors import per_atom
from alml.nn.committee import committee_statistics
from alml.potential.dataset import batch_from_descriptors, cell_volume, element_indices
from alml.potential.folder import TrainedPotential, load_potential

ENERGY_STD = "energy_std"
FORCES_STD = "forces_std"
FORCES_STD_MEAN = "forces_std_mean"
FORCES_STD_MAX = "forces_std_max"
ENERGIES_COMMITTEE = "energies_committee"
FORCES_COMMITTEE = "forces_committee"
UNCERTAINTY_KEYS = (ENERGY_STD, FORCES_STD, FORCES_STD_MEAN, FORCES_STD_MAX)

_GRADIENT_PROPERTIES = {"forces", "stress", FORCES_STD, FORCES_STD_MEAN, FORCES_STD_MAX, FORCES_COMMITTEE}


class NNCalculator(Calculator):
    """ASE calculator of an alml committee potential (a model folder or a loaded :class:`TrainedPotential`).

    Descriptors (and their gradients, when forces or stress are asked for) are computed with LAMMPS
    on every call; all properties of one kind are computed together.
    """

    implemented_properties = [
        "energy",
        "free_energy",
        "forces",
        "stress",
        "energies",
        ENERGY_STD,
        FORCES_STD,
        FORCES_STD_MEAN,
        FORCES_STD_MAX,
        ENERGIES_COMMITTEE,
        FORCES_COMMITTEE,
    ]

    def __init__(self, potential: TrainedPotential | str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.potential = potential if isinstance(potential, TrainedPotential) else load_potential(Path(potential))
        self.model = self.potential.model.eval()

    def calculate(
        self, atoms: Atoms | None = None, properties: Any = ("energy",), system_changes: Any = all_changes
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        settings = self.potential.settings
        need_grad = bool(_GRADIENT_PROPERTIES & set(properties))
        d = per_atom(atoms, settings, gradients=need_grad)
        volume = cell_volume(atoms)
        batch = batch_from_descriptors(d, element_indices(atoms, settings), volume, self.model.mean.dtype)
        pred = self.model(batch, forces=need_grad, stress=need_grad and volume > 0)
        energies_k = pred.energy[:, 0].detach().double().numpy()
        forces_k = pred.forces.detach().double().numpy() if pred.forces is not None else None
        stats = committee_statistics(energies_k, forces_k, n_atoms=len(atoms))
        r: dict[str, Any] = {
            "energy": stats.energy,
            "free_energy": stats.energy,
            "energies": pred.energies.detach().double().numpy().mean(axis=0),
            ENERGY_STD: stats.energy_std,
            ENERGIES_COMMITTEE: energies_k,
        }
        if forces_k is not None:
            r.update(
                {
                    "forces": stats.forces,
                    FORCES_STD: stats.forces_std,
                    FORCES_STD_MEAN: stats.forces_std_mean,
                    FORCES_STD_MAX: stats.forces_std_max,
                    FORCES_COMMITTEE: forces_k,
                }
            )
        if pred.stress is not None:
            sigma = pred.stress[:, 0].detach().double().numpy().mean(axis=0)
            r["stress"] = full_3x3_to_voigt_6_stress(sigma)
        self.results = r

