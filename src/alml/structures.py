"""Structure builders for Al (and other elements): lattices, defects, surfaces, disorder.

All functions return new :class:`ase.Atoms`; randomness comes only from an explicit ``seed``
(through :func:`numpy.random.default_rng`). Lengths are in Å, densities in g/cm³.

Every builder records how a structure was made in ``atoms.info["source"]``; transformations
(supercell, strain, rattle, vacancies, ...) append to it with ``|``, so the string reads as a recipe.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers, chemical_symbols, reference_states

LATTICES: tuple[str, ...] = ("fcc", "bcc", "hcp", "sc", "diamond")
"""Lattice names understood by :func:`bulk` and :func:`surface`."""

AMU_PER_A3_IN_G_PER_CM3 = 1.66053906660
"""One atomic mass unit per Å³ expressed in g/cm³."""

# Random sequential addition of hard spheres jams at a packing fraction of about 0.38 in 3D, so
# insertion is done at most at 0.25 and denser packings are reached by pushing atoms apart. No packing
# of equal spheres is denser than fcc/hcp, pi/(3 sqrt 2) ~ 0.7405: above that it is impossible.
_RSA_EASY_FRACTION = 0.25
_MAX_PACKING_FRACTION = math.pi / (3.0 * math.sqrt(2.0))

# Volume per atom (Å³) of each lattice at a = 1 Å; hcp at ideal c/a is handled separately.
_VOLUME_PER_ATOM_A1 = {"fcc": 0.25, "bcc": 0.5, "sc": 1.0, "diamond": 0.125}
_IDEAL_C_OVER_A = math.sqrt(8.0 / 3.0)


def structure_hash(atoms: Atoms, decimals: int = 6) -> str:
    """Content hash of a structure: species, cell, pbc and wrapped positions rounded to 1e-``decimals`` Å.

    Two structures with the same hash are the same DFT problem (atom order matters).
    """
    a = atoms.copy()
    if a.pbc.any():
        a.wrap(eps=10.0 ** (-decimals))
    h = hashlib.sha256()
    h.update(np.asarray(a.numbers, dtype=np.int64).tobytes())
    h.update(np.round(np.asarray(a.cell[:], dtype=float), decimals).tobytes())
    h.update(np.asarray(a.pbc, dtype=bool).tobytes())
    pos = np.round(a.positions, decimals) + 0.0  # +0.0 turns -0.0 into 0.0
    h.update(pos.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# helpers


def _check_element(element: str) -> int:
    if element not in atomic_numbers or element == "X":
        raise ValueError(
            f"unknown element {element!r}: give a chemical symbol such as 'Al' "
            f"(case matters; one of {', '.join(chemical_symbols[1:])})"
        )
    return atomic_numbers[element]


def _check_lattice(lattice: str) -> None:
    if lattice not in LATTICES:
        raise ValueError(f"unknown lattice {lattice!r}: use one of {', '.join(LATTICES)}")


def _append_source(atoms: Atoms, step: str) -> None:
    prev = atoms.info.get("source")
    atoms.info["source"] = f"{prev}|{step}" if prev else step


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def mass_density(atoms: Atoms) -> float:
    """Mass density of a periodic cell in g/cm³."""
    return float(atoms.get_masses().sum() / atoms.get_volume() * AMU_PER_A3_IN_G_PER_CM3)


def volume_per_atom_for_density(element: str, density: float) -> float:
    """Volume per atom (Å³) of pure ``element`` at mass ``density`` (g/cm³)."""
    z = _check_element(element)
    if not density > 0:
        raise ValueError(f"density must be positive (g/cm³), got {density}")
    return float(atomic_masses[z] * AMU_PER_A3_IN_G_PER_CM3 / density)


def lattice_constant_for_density(
    lattice: str, element: str, density: float, c_over_a: float | None = None
) -> float:
    """Lattice constant ``a`` (Å) that gives ``density`` (g/cm³) for ``element`` on ``lattice``.

    For hcp, ``c_over_a`` defaults to the ideal sqrt(8/3).
    """
    _check_lattice(lattice)
    v = volume_per_atom_for_density(element, density)
    if lattice == "hcp":
        q = c_over_a or _IDEAL_C_OVER_A
        v1 = math.sqrt(3.0) / 4.0 * q  # sqrt(3)/2 a^2 c / 2 atoms, at a = 1
    else:
        v1 = _VOLUME_PER_ATOM_A1[lattice]
    return (v / v1) ** (1.0 / 3.0)


# --------------------------------------------------------------------------------------------
# lattices


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


# --------------------------------------------------------------------------------------------
# defects


def vacancies(atoms: Atoms, n: int = 1, seed: int = 0) -> Atoms:
    """Remove ``n`` atoms chosen at random (reproducibly from ``seed``)."""
    if not 1 <= n < len(atoms):
        raise ValueError(f"can remove 1 to {len(atoms) - 1} atoms from a {len(atoms)}-atom cell, not {n}; "
                         "make a supercell first")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(atoms), size=n, replace=False)
    new = atoms.copy()
    del new[sorted(int(i) for i in idx)]
    _append_source(new, f"vacancies(n={n},seed={seed})")
    return new


def _distances_to_point(atoms: Atoms, point: np.ndarray) -> np.ndarray:
    """Minimum-image distances (Å) from ``point`` (3,) to every atom, shape (N,)."""
    from ase.geometry import get_distances

    _, d = get_distances(np.asarray(point, dtype=float)[None, :], atoms.positions, cell=atoms.cell,
                         pbc=atoms.pbc)
    return d[0]


def interstitial(
    atoms: Atoms,
    site: Literal["octahedral", "tetrahedral", "random"] = "octahedral",
    *,
    element: str | None = None,
    min_dist: float = 1.5,
    seed: int = 0,
    max_tries: int = 10000,
) -> Atoms:
    """Add one atom of ``element`` (default: that of atom 0) at an interstitial site.

    ``octahedral``/``tetrahedral`` need an fcc cell with cubic axes along x, y, z (as built by
    :func:`bulk`, any supercell of it); the site next to a seeded random atom is used (all are
    equivalent in a perfect crystal). ``random`` places the atom uniformly in the cell, at least
    ``min_dist`` Å from every atom (periodic images included).
    """
    element = element or atoms.get_chemical_symbols()[0]
    _check_element(element)
    rng = np.random.default_rng(seed)
    if site in ("octahedral", "tetrahedral"):
        d_nn = min_distance(atoms)
        a = d_nn * math.sqrt(2.0)
        base = atoms.positions[int(rng.integers(len(atoms)))]
        if site == "octahedral":
            point, expected = base + np.array([a / 2, 0.0, 0.0]), a / 2
        else:
            point, expected = base + np.array([a / 4, a / 4, a / 4]), a * math.sqrt(3.0) / 4
        got = float(_distances_to_point(atoms, point).min())
        if abs(got - expected) > 1e-3 * a:
            raise ValueError(
                f"{site} site not found: the cell is not an fcc lattice with cubic axes along x, y, z "
                f"(nearest atom at {got:.3f} Å, expected {expected:.3f} Å); build it with "
                "alml.structures.bulk(lattice='fcc') or use site='random'"
            )
    elif site == "random":
        for _ in range(max_tries):
            point = rng.random(3) @ atoms.cell[:]
            if _distances_to_point(atoms, point).min() >= min_dist:
                break
        else:
            raise ValueError(
                f"no point at least {min_dist} Å from every atom found in {max_tries} tries: "
                "lower min_dist or use a larger (less dense) cell"
            )
    else:
        raise ValueError(f"unknown interstitial site {site!r}: use octahedral, tetrahedral or random")
    new = atoms.copy()
    new.append(element)
    new.positions[-1] = point
    if new.pbc.any():
        new.wrap()
    _append_source(new, f"interstitial({site},{element},seed={seed})")
    return new


# --------------------------------------------------------------------------------------------
# surfaces

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


# --------------------------------------------------------------------------------------------
# disorder


def random_packing(
    n: int,
    density: float,
    *,
    element: str = "Al",
    min_dist: float = 2.0,
    seed: int = 0,
    max_iter: int = 5000,
) -> Atoms:
    """``n`` atoms placed at random in a periodic cubic box at mass ``density`` (g/cm³), no two
    (periodic images included) closer than ``min_dist`` Å.

    Atoms are first inserted at random (random sequential addition) at a distance that insertion
    reaches easily; when ``min_dist`` is larger, overlapping pairs are then pushed apart
    (steepest descent on a harmonic overlap penalty) until every distance is at least ``min_dist``.
    Raises ValueError when the request is impossible (box edge below ``min_dist``, or a packing
    fraction of spheres of diameter ``min_dist`` above the close-packed 0.7405), or when the
    push-apart does not converge in ``max_iter`` steps (likely above ~0.6, random close packing).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if min_dist < 0:
        raise ValueError(f"min_dist must be non-negative (Å), got {min_dist}")
    volume = n * volume_per_atom_for_density(element, density)
    edge = volume ** (1.0 / 3.0)

    def d_at(fraction: float) -> float:  # sphere diameter giving a packing fraction
        return (fraction * volume * 6.0 / (math.pi * n)) ** (1.0 / 3.0)

    fraction = n * math.pi / 6.0 * min_dist**3 / volume
    if edge < min_dist or fraction > _MAX_PACKING_FRACTION:
        d_max = min(edge, d_at(_MAX_PACKING_FRACTION))
        raise ValueError(
            f"cannot place {n} {element} atoms at {density} g/cm³ with min_dist {min_dist} Å "
            f"(box edge {edge:.3f} Å, packing fraction {fraction:.2f} of spheres of diameter min_dist; "
            f"no packing exceeds {_MAX_PACKING_FRACTION:.4f}): lower min_dist below {d_max:.2f} Å "
            "(random packings need about 10% less) or lower the density"
        )
    rng = np.random.default_rng(seed)
    d_insert = min(min_dist, d_at(_RSA_EASY_FRACTION))
    pos = np.empty((n, 3))
    placed = 0
    while placed < n:
        for _ in range(100000):
            p = rng.random(3) * edge
            d = pos[:placed] - p
            d -= edge * np.round(d / edge)  # exact minimum image in an orthogonal box
            if placed == 0 or np.einsum("ij,ij->i", d, d).min() >= d_insert**2:
                pos[placed] = p
                placed += 1
                break
        else:  # pragma: no cover - insertion at a packing fraction of 0.25 does not stall
            raise ValueError(f"random insertion stalled after {placed} of {n} atoms; lower min_dist")
    if d_insert < min_dist:
        try:
            pos = _push_apart(pos, edge, min_dist, max_iter)
        except ValueError:
            raise ValueError(
                f"could not push {n} atoms {min_dist} Å apart at {density} g/cm³ in {max_iter} steps "
                f"(packing fraction {fraction:.2f}; random packings jam near 0.64): lower min_dist to "
                f"about {d_at(0.55):.2f} Å or lower the density"
            ) from None
    atoms = Atoms(f"{element}{n}", positions=pos, cell=[edge] * 3, pbc=True)
    atoms.info["source"] = (
        f"random_packing({element},n={n},density={_fmt(density)},min_dist={_fmt(min_dist)},seed={seed})"
    )
    return atoms


def _push_apart(pos: np.ndarray, edge: float, min_dist: float, max_iter: int) -> np.ndarray:
    """Move atoms (N, 3) in a cubic periodic box of ``edge`` Å until all pairs are ≥ ``min_dist`` apart."""
    target = 1.02 * min_dist
    pos = pos.copy()
    for _ in range(max_iter):
        d = pos[:, None, :] - pos[None, :, :]
        d -= edge * np.round(d / edge)
        r = np.sqrt(np.einsum("ijk,ijk->ij", d, d))
        np.fill_diagonal(r, np.inf)
        if r.min() >= min_dist:
            return pos
        overlap = np.clip(target - r, 0.0, None)
        pos = (pos + 0.5 * np.einsum("ij,ijk->ik", overlap / r, d)) % edge
    raise ValueError("push-apart did not converge")


def _strain_tensor(strain: Sequence[float] | Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    eps = np.asarray(strain, dtype=float)
    if eps.shape == (6,):
        xx, yy, zz, yz, xz, xy = eps
        return np.array([[xx, xy / 2, xz / 2], [xy / 2, yy, yz / 2], [xz / 2, yz / 2, zz]])
    if eps.shape == (3, 3):
        if not np.allclose(eps, eps.T):
            raise ValueError("a 3x3 strain must be symmetric (a rotation is not a strain)")
        return eps
    raise ValueError(f"strain must be a 3x3 matrix or a Voigt 6-vector, got shape {eps.shape}")


def strain(atoms: Atoms, strain: Sequence[float] | Sequence[Sequence[float]] | np.ndarray) -> Atoms:
    """Apply a homogeneous small strain: every vector ``v`` becomes ``(I + ε) v``; atoms move with the cell.

    ``strain`` is a symmetric 3×3 tensor ε or a Voigt vector (xx, yy, zz, yz, xz, xy) with
    engineering shear strains (γ_yz = 2 ε_yz). The volume changes by the factor det(I + ε).
    """
    eps = _strain_tensor(strain)
    f = np.eye(3) + eps
    if np.linalg.det(f) <= 0:
        raise ValueError("strain inverts or collapses the cell (det(I + eps) <= 0); use a smaller strain")
    new = atoms.copy()
    new.set_cell(atoms.cell[:] @ f.T, scale_atoms=True)
    voigt = [eps[0, 0], eps[1, 1], eps[2, 2], 2 * eps[1, 2], 2 * eps[0, 2], 2 * eps[0, 1]]
    _append_source(new, "strain(" + ",".join(_fmt(x) for x in voigt) + ")")
    return new


def random_strain(atoms: Atoms, max_strain: float = 0.02, seed: int = 0) -> Atoms:
    """Apply a random symmetric strain with every component uniform in ±``max_strain``."""
    rng = np.random.default_rng(seed)
    e = rng.uniform(-max_strain, max_strain, size=(3, 3))
    return strain(atoms, (e + e.T) / 2)


def rattle(atoms: Atoms, stdev: float = 0.05, seed: int = 0) -> Atoms:
    """Displace every atom by independent Gaussian noise of ``stdev`` Å per Cartesian component."""
    if stdev < 0:
        raise ValueError(f"stdev must be non-negative (Å), got {stdev}")
    rng = np.random.default_rng(seed)
    new = atoms.copy()
    new.positions = atoms.positions + rng.normal(0.0, stdev, size=(len(atoms), 3))
    _append_source(new, f"rattle({_fmt(stdev)},seed={seed})")
    return new


def min_distance(atoms: Atoms) -> float:
    """Shortest interatomic distance (Å), periodic images included (also an atom's own images,
    so a one-atom periodic cell gives its shortest lattice vector). ``inf`` for a lone atom."""
    from ase.neighborlist import neighbor_list

    if not atoms.pbc.any():
        if len(atoms) < 2:
            return math.inf
        from scipy.spatial.distance import pdist

        return float(pdist(atoms.positions).min())
    if len(atoms) == 0:
        return math.inf
    # A periodic axis bounds the answer by its lattice vector's length (the atom's own image).
    cap = float(np.linalg.norm(atoms.cell[:][atoms.pbc], axis=1).min()) + 1e-6
    cutoff = min(1.0, cap)
    while True:
        d = neighbor_list("d", atoms, cutoff)
        if len(d):
            return float(d.min())
        if cutoff >= cap:  # cannot happen for a valid periodic cell; guard against looping
            return math.inf
        cutoff = min(2.0 * cutoff, cap)


# --------------------------------------------------------------------------------------------
# a small, diverse set for demos


def diverse_al_set(seed: int = 0) -> list[Atoms]:
    """Small (1–4 atom) Al cells of varied structure and density, reproducible from ``seed``.

    Meant for demos and smoke tests: labelling them all with pw.x at a low cutoff takes well under a
    minute. Each has ``info["source"]`` naming how it was built.
    """
    rng = np.random.default_rng(seed)
    sub = rng.integers(0, 2**31 - 1, size=8)
    out = [
        bulk("Al", "fcc", a=4.04),
        bulk("Al", "fcc", density=3.1),
        bulk("Al", "bcc", a=3.24),
        bulk("Al", "hcp", a=2.86),
        bulk("Al", "sc", a=2.73),
        bulk("Al", "diamond", density=1.8),
        random_strain(bulk("Al", "fcc", a=4.04), 0.03, seed=int(sub[0])),
        rattle(bulk("Al", "fcc", a=4.04, cubic=True), 0.1, seed=int(sub[1])),
        vacancies(bulk("Al", "fcc", a=4.04, cubic=True), 1, seed=int(sub[2])),
        random_packing(3, 2.4, min_dist=2.3, seed=int(sub[3])),
        surface("Al", (1, 0, 0), layers=2, vacuum=6.0, a=4.04),
    ]
    return out


__all__ = [
    "AMU_PER_A3_IN_G_PER_CM3",
    "LATTICES",
    "bulk",
    "diverse_al_set",
    "interstitial",
    "lattice_constant_for_density",
    "mass_density",
    "min_distance",
    "random_packing",
    "random_strain",
    "rattle",
    "strain",
    "structure_hash",
    "supercell",
    "surface",
    "vacancies",
    "volume_per_atom_for_density",
]
