"""The interatomic potential: a committee of per-element networks on per-atom bispectrum descriptors.

For atom i of element Z_i with descriptors B_i (K,), committee member m gives

    E_i^m = e_ref[Z_i] + s_E · NN^m_{Z_i}((B_i - μ_{Z_i}) / σ_{Z_i})          (eV)

and the structure energy is E^m = Σ_i E_i^m. μ, σ (per element and component), the reference
energies e_ref and the energy scale s_E are shared by all members (:class:`Normalization`), so the
committee mean is itself one network of the same form (what the LAMMPS export writes).

Forces and stress follow from the chain rule through the fixed descriptor gradients
(:class:`alml.descriptors.PerAtomDescriptors`): with G_p = ∂B_{i_p}/∂r_{j_p} · ∂E/∂B_{i_p} (eV/Å)
over the image-resolved pairs p, F_j = -Σ_{p: j_p = j} G_p and σ = (1/V) Σ_p G_p ⊗ r_ij,p (ASE's
sign). Both are computed with ``index_add`` and stay differentiable in the weights, so a force or
stress loss trains them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from alml.nn.mlp import MLP, MLPConfig
from alml.nn.scaling import Standardizer


@dataclass(frozen=True)
class AtomsBatch:
    """S structures with N atoms and P image-resolved pairs in all, as tensors of one dtype.

    ``B`` (N, K) descriptors; ``elem`` (N,) element index (settings' order); ``atom_struct`` (N,)
    structure of each atom; ``n_atoms`` (S,); ``volume`` (S,) Å³ (0 where the cell is not 3-D
    periodic: no stress); with gradients ``dBdr`` (P, 3, K) 1/Å, ``pair_i``/``pair_j`` (P,) batch
    atom indices of the centre and of the neighbour image's owner, ``rij`` (P, 3) Å, ``pair_struct`` (P,).
    """

    B: torch.Tensor
    elem: torch.Tensor
    atom_struct: torch.Tensor
    n_atoms: torch.Tensor
    volume: torch.Tensor
    dBdr: torch.Tensor | None = None
    pair_i: torch.Tensor | None = None
    pair_j: torch.Tensor | None = None
    rij: torch.Tensor | None = None
    pair_struct: torch.Tensor | None = None

    @property
    def n_structures(self) -> int:
        return int(self.n_atoms.shape[0])

    @property
    def has_gradients(self) -> bool:
        return self.dBdr is not None


class Prediction(NamedTuple):
    """Per committee member m: ``energy`` (M, S) eV, ``energies`` (M, N) eV, ``forces`` (M, N, 3) eV/Å,
    ``stress`` (M, S, 3, 3) eV/Å³ (NaN for structures with zero volume)."""

    energy: torch.Tensor
    energies: torch.Tensor
    forces: torch.Tensor | None
    stress: torch.Tensor | None


@dataclass(frozen=True)
class Normalization:
    """Descriptor standardisation per element, reference energies e_ref (G,) eV, energy scale s_E eV."""

    descriptors: Standardizer
    e_ref: np.ndarray
    energy_scale: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "descriptors": self.descriptors.to_dict(),
            "e_ref": np.asarray(self.e_ref, float).tolist(),
            "energy_scale": float(self.energy_scale),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalization:
        return cls(
            descriptors=Standardizer.from_dict(d["descriptors"]),
            e_ref=np.asarray(d["e_ref"], dtype=float),
            energy_scale=float(d["energy_scale"]),
        )

    @classmethod
    def identity(cls, n_elements: int, n_descriptors: int) -> Normalization:
        return cls(Standardizer.identity(n_elements, n_descriptors), np.zeros(n_elements), 1.0)


class NNPotential(torch.nn.Module):
    """M committee members × G per-element :class:`MLP` networks with one shared :class:`Normalization`."""

    def __init__(
        self,
        elements: Sequence[str],
        n_descriptors: int,
        network: MLPConfig,
        members: int = 1,
        normalization: Normalization | None = None,
    ) -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"a committee needs at least one member, got {members}")
        self.elements = list(elements)
        self.n_descriptors = int(n_descriptors)
        self.network = network
        g = len(self.elements)
        self.nets = torch.nn.ModuleList(
            torch.nn.ModuleList(MLP(n_descriptors, network.hidden, network.activation) for _ in range(g))
            for _ in range(members)
        )
        for member in self.nets:
            for net in member:
                torch.nn.init.zeros_(net.net[-1].bias)
        self.register_buffer("mean", torch.zeros(g, n_descriptors))
        self.register_buffer("std", torch.ones(g, n_descriptors))
        self.register_buffer("e_ref", torch.zeros(g))
        self.register_buffer("energy_scale", torch.ones(()))
        if normalization is not None:
            self.set_normalization(normalization)

    @property
    def n_members(self) -> int:
        return len(self.nets)

    def set_normalization(self, norm: Normalization) -> None:
        g, k = len(self.elements), self.n_descriptors
        if norm.descriptors.mean.shape != (g, k) or np.shape(norm.e_ref) != (g,):
            raise ValueError(f"normalization is for {norm.descriptors.mean.shape}, the model has ({g}, {k})")
        dt = self.mean.dtype
        self.mean.copy_(torch.as_tensor(norm.descriptors.mean, dtype=dt))
        self.std.copy_(torch.as_tensor(norm.descriptors.std, dtype=dt))
        self.e_ref.copy_(torch.as_tensor(norm.e_ref, dtype=dt))
        self.energy_scale.fill_(float(norm.energy_scale))

    def normalization(self) -> Normalization:
        return Normalization(
            Standardizer(self.mean.detach().double().numpy().copy(), self.std.detach().double().numpy().copy()),
            self.e_ref.detach().double().numpy().copy(),
            float(self.energy_scale),
        )

    def atomic_energies(self, b: torch.Tensor, elem: torch.Tensor) -> torch.Tensor:
        """E_i^m (M, N) in eV from descriptors ``b`` (M, N, K) (or (N, K), shared by all members)."""
        x = (b - self.mean[elem]) / self.std[elem]
        x = x.expand(self.n_members, *x.shape[-2:])
        out = x.new_zeros(x.shape[:2])
        for g in range(len(self.elements)):
            idx = torch.nonzero(elem == g).squeeze(1)
            if len(idx):
                y = torch.stack([member[g](x[m, idx]).squeeze(-1) for m, member in enumerate(self.nets)])
                out = out.index_copy(1, idx, y)
        return self.e_ref[elem] + self.energy_scale * out

    def forward(
        self, batch: AtomsBatch, *, forces: bool = True, stress: bool = False, create_graph: bool = False
    ) -> Prediction:
        """Energies of every member and, on request, forces and stress (see the module docstring)."""
        m, s, n = self.n_members, batch.n_structures, batch.B.shape[0]
        with torch.enable_grad():
            b = batch.B.detach().expand(m, *batch.B.shape).clone().requires_grad_(forces or stress)
            e_atom = self.atomic_energies(b, batch.elem)
            energy = e_atom.new_zeros(m, s).index_add(1, batch.atom_struct, e_atom)
            if not (forces or stress):
                return Prediction(energy, e_atom, None, None)
            if not batch.has_gradients:
                raise ValueError("forces and stress need a batch with descriptor gradients")
            (dedb,) = torch.autograd.grad(e_atom.sum(), b, create_graph=create_graph)
        g = torch.einsum("pak,mpk->mpa", batch.dBdr, dedb[:, batch.pair_i])  # ∂E_i/∂r_j(image), (M, P, 3)
        f = -g.new_zeros(m, n, 3).index_add(1, batch.pair_j, g) if forces else None
        sigma = None
        if stress:
            w = torch.einsum("mpa,pb->mpab", g, batch.rij)
            periodic = (batch.volume > 0)[:, None, None]
            vol = torch.where(periodic, batch.volume[:, None, None], torch.ones_like(batch.volume[:, None, None]))
            sigma = g.new_zeros(m, s, 3, 3).index_add(1, batch.pair_struct, w) / vol
            sigma = torch.where(periodic, sigma, torch.full_like(sigma, float("nan")))
        return Prediction(energy, e_atom, f, sigma)

    # -- committees ---------------------------------------------------------------------------

    def member(self, k: int) -> NNPotential:
        """A one-member potential holding (a copy of) member ``k``."""
        one = NNPotential(self.elements, self.n_descriptors, self.network, 1, self.normalization())
        one.nets[0].load_state_dict(self.nets[k].state_dict())
        return one.to(self.mean.dtype)

    @classmethod
    def stack(cls, members: Sequence[NNPotential]) -> NNPotential:
        """One committee from one-or-more-member potentials of the same form (normalisation of the first)."""
        first = members[0]
        for p in members[1:]:
            if p.elements != first.elements or p.n_descriptors != first.n_descriptors or p.network != first.network:
                raise ValueError("committee members must share elements, descriptor length and network")
        nets = [net for p in members for net in p.nets]
        out = cls(first.elements, first.n_descriptors, first.network, len(nets), first.normalization())
        for dst, src in zip(out.nets, nets):
            dst.load_state_dict(src.state_dict())
        return out.to(first.mean.dtype)

    def spec(self) -> dict[str, Any]:
        """What it takes to rebuild this module before loading its state dict."""
        return {
            "elements": self.elements,
            "n_descriptors": self.n_descriptors,
            "network": self.network.model_dump(mode="json"),
            "members": self.n_members,
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> NNPotential:
        return cls(spec["elements"], spec["n_descriptors"], MLPConfig(**spec["network"]), spec["members"])
