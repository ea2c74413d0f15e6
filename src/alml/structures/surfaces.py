"""Slabs: :func:`surface` cuts ``layers`` atomic planes normal to a Miller index, with a vacuum gap along z."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from alml.structures.core import _check_element, _check_lattice, _fmt
from alml.structures.lattices import bulk

_SURFACE_BUILDERS: dict[tuple[str, tuple[int, ...]], str] = {
    ("fcc", (1, 1, 1)): "fcc111",
    ("fcc", (1, 0, 0)): "fcc100",
    ("fcc", (1, 1, 0)): "fcc110",
    ("bcc", (1, 0, 0)): "bcc100",
    ("bcc", (1, 1, 0)): "bcc110",
    ("bcc", (1, 1, 1)): "bcc111",
    ("hcp", (0, 0, 1)): "hcp0001",
    ("hcp", (0, 0, 0, 1)): "hcp0001",
    ("hcp", (1, 0, -1, 0)): "hcp10m10",
    ("diamond", (1, 0, 0)): "diamond100",
    ("diamond", (1, 1, 1)): "diamond111",
}


def _planes(z: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """Distinct heights (sorted) among ``z``, merging values closer than ``tol``."""
    zs = np.sort(z)
    keep = [zs[0]]
    for v in zs[1:]:
        if v - keep[-1] > tol:
            keep.append(v)
    return np.asarray(keep)


def surface(
    element: str = "Al",
    miller: Sequence[int] = (1, 1, 1),
    layers: int = 4,
    vacuum: float = 10.0,
    *,
    lattice: str = "fcc",
    a: float | None = None,
    density: float | None = None,
    c_over_a: float | None = None,
    size: tuple[int, int] = (1, 1),
    orthogonal: bool | None = None,
) -> Atoms:
    """A slab of ``layers`` atomic planes normal to ``miller`` with a ``vacuum`` gap (Å) along z.

    ``vacuum`` is the full gap between the slab and its periodic image. The cell is periodic in all
    three directions (as a plane-wave code sees it). Low-index faces use ASE's minimal cells
    (``fcc111`` etc.; for hcp give (0,0,1)/(0,0,0,1) or (1,0,-1,0)); other indices are cut from the
    conventional cubic cell (hexagonal cell for hcp) with :func:`ase.build.surface`, then trimmed to
    ``layers`` planes. ``size`` repeats the surface cell in-plane; ``orthogonal`` is passed to the
    ASE builder when set.
    """
    import ase.build

    _check_element(element)
    _check_lattice(lattice)
    if layers < 1:
        raise ValueError(f"layers must be at least 1, got {layers}")
    if vacuum < 0:
        raise ValueError(f"vacuum must be non-negative (Å), got {vacuum}")
    hkl = tuple(int(i) for i in miller)
    if not any(hkl):
        raise ValueError(f"miller index {miller} is all zeros: give a plane such as (1, 1, 1)")
    b = bulk(element, lattice, a=a, density=density, c_over_a=c_over_a, cubic=lattice != "hcp")
    a_used = b.cell.lengths()[0] if lattice != "hcp" else float(np.linalg.norm(b.cell[0]))
    key = (lattice, hkl)
    if key in _SURFACE_BUILDERS:
        fn = getattr(ase.build, _SURFACE_BUILDERS[key])
        kw: dict = {"a": a_used, "vacuum": vacuum / 2}
        if lattice == "hcp":
            kw["c"] = float(np.linalg.norm(b.cell[2]))
        if orthogonal is not None:
            kw["orthogonal"] = orthogonal
        slab = fn(element, size=(size[0], size[1], layers), **kw)
    else:
        if len(hkl) != 3:
            raise ValueError(f"give three Miller indices for {lattice} {miller} (relative to the cell of bulk())")
        one = ase.build.surface(b, hkl, 1, vacuum=1.0)
        per_repeat = len(_planes(one.positions[:, 2]))
        slab = ase.build.surface(b, hkl, math.ceil(layers / per_repeat), vacuum=1.0)
        z = slab.positions[:, 2]
        planes = _planes(z)
        del slab[[i for i, zi in enumerate(z) if zi > planes[layers - 1] + 1e-3]]
        slab.center(vacuum=vacuum / 2, axis=2)
        slab = slab.repeat((size[0], size[1], 1))
    slab.pbc = True
    slab.info = {"source": f"surface({lattice},{element},{''.join(map(str, hkl))},layers={layers},"
                           f"vacuum={_fmt(vacuum)},a={_fmt(a_used)})"}
    return slab
