"""Perfect crystals (:func:`bulk`) and their repeats (:func:`supercell`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.data import reference_states

from alml.structures.core import (
    _IDEAL_C_OVER_A,
    _append_source,
    _check_element,
    _check_lattice,
    _fmt,
    lattice_constant_for_density,
)


def bulk(
    element: str = "Al",
    lattice: str = "fcc",
    *,
    a: float | None = None,
    density: float | None = None,
    c_over_a: float | None = None,
    cubic: bool = False,
) -> Atoms:
    """A perfect crystal of ``element`` on ``lattice`` (one of :data:`LATTICES`).

    Give at most one of ``a`` (lattice constant, Å) and ``density`` (g/cm³); with neither, the
    element's reference lattice constant is used when its reference structure is ``lattice``
    (fcc Al: 4.05 Å). ``cubic=True`` gives the conventional cubic cell (fcc: 4 atoms, bcc: 2,
    sc: 1, diamond: 8) or, for hcp, the orthogonal 4-atom cell; otherwise the primitive cell.
    For hcp, ``c_over_a`` defaults to the ideal sqrt(8/3).
    """
    from ase.build import bulk as ase_bulk

    z = _check_element(element)
    _check_lattice(lattice)
    if a is not None and density is not None:
        raise ValueError("give either a (lattice constant, Å) or density (g/cm³), not both")
    if c_over_a is not None and lattice != "hcp":
        raise ValueError(f"c_over_a applies to hcp only, not {lattice}; leave it unset")
    if density is not None:
        a = lattice_constant_for_density(lattice, element, density, c_over_a)
    elif a is None:
        ref = reference_states[z] or {}
        if ref.get("symmetry") == lattice and "a" in ref:
            a = float(ref["a"])
            if lattice == "hcp" and c_over_a is None and "c/a" in ref:
                c_over_a = float(ref["c/a"])
        else:
            raise ValueError(
                f"{element} has no reference lattice constant for {lattice}: give a= (Å) or density= (g/cm³)"
            )
    if not a > 0:
        raise ValueError(f"lattice constant a must be positive (Å), got {a}")
    if lattice == "hcp":
        q = c_over_a or _IDEAL_C_OVER_A
        atoms = ase_bulk(element, "hcp", a=a, c=q * a, orthorhombic=cubic)
    else:
        atoms = ase_bulk(element, lattice, a=a, cubic=cubic)
    extra = f",c/a={_fmt(c_over_a or _IDEAL_C_OVER_A)}" if lattice == "hcp" else ""
    atoms.info["source"] = f"bulk({lattice},{element},a={_fmt(a)}{extra}{',cubic' if cubic else ''})"
    return atoms


def supercell(atoms: Atoms, size: int | Sequence[int] | Sequence[Sequence[int]]) -> Atoms:
    """Repeat ``atoms``: an int (n×n×n), three ints (diagonal), or a 3×3 integer matrix ``P``
    (new cell = ``P @ cell``, as :func:`ase.build.make_supercell`)."""
    from ase.build import make_supercell

    arr = np.asarray(size)
    if arr.ndim == 0:
        arr = np.full(3, int(arr))
    if arr.shape == (3,):
        if np.any(arr < 1) or not np.all(arr == np.round(arr)):
            raise ValueError(f"supercell repeats must be positive integers, got {size}")
        new = atoms.repeat(tuple(int(x) for x in arr))
        label = "x".join(str(int(x)) for x in arr)
    elif arr.shape == (3, 3):
        if not np.all(arr == np.round(arr)) or round(abs(np.linalg.det(arr))) < 1:
            raise ValueError(f"supercell matrix must be integer with nonzero determinant, got {size}")
        new = make_supercell(atoms, arr.astype(int))
        label = str(arr.astype(int).tolist()).replace(" ", "")
    else:
        raise ValueError(f"size must be an int, 3 ints or a 3x3 integer matrix, got shape {arr.shape}")
    new.info = dict(atoms.info)
    _append_source(new, f"supercell({label})")
    return new
