"""Structure builders: geometry, densities, counts, seeds, error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atoms

from alml import structures as S

A = 4.05  # Å, fcc Al


# ---------------------------------------------------------------- lattices

NN_OVER_A = {"fcc": 1 / math.sqrt(2), "bcc": math.sqrt(3) / 2, "sc": 1.0, "diamond": math.sqrt(3) / 4, "hcp": 1.0}
ATOMS = {("fcc", False): 1, ("fcc", True): 4, ("bcc", False): 1, ("bcc", True): 2, ("sc", False): 1,
         ("sc", True): 1, ("diamond", False): 2, ("diamond", True): 8, ("hcp", False): 2, ("hcp", True): 4}


@pytest.mark.parametrize("lattice", S.LATTICES)
@pytest.mark.parametrize("cubic", [False, True])
def test_bulk_at_density_has_that_density_and_nn_distance(lattice: str, cubic: bool) -> None:
    atoms = S.bulk("Al", lattice, density=2.5, cubic=cubic)
    assert len(atoms) == ATOMS[(lattice, cubic)]
    assert S.mass_density(atoms) == pytest.approx(2.5, rel=1e-9)
    a = S.lattice_constant_for_density(lattice, "Al", 2.5)
    assert S.min_distance(atoms) == pytest.approx(NN_OVER_A[lattice] * a, rel=1e-9)
    assert atoms.info["source"].startswith(f"bulk({lattice},Al,")


def test_bulk_at_lattice_constant() -> None:
    atoms = S.bulk("Al", "fcc", a=4.0, cubic=True)
    assert np.allclose(atoms.cell.lengths(), 4.0)
    assert S.mass_density(atoms) == pytest.approx(4 * 26.9815385 * S.AMU_PER_A3_IN_G_PER_CM3 / 64, rel=1e-6)
    hcp = S.bulk("Al", "hcp", a=2.9, c_over_a=1.6)
    assert hcp.cell.lengths()[2] == pytest.approx(2.9 * 1.6)


def test_bulk_defaults_to_reference_lattice_constant_only_for_reference_structure() -> None:
    assert S.min_distance(S.bulk()) == pytest.approx(A / math.sqrt(2))
    with pytest.raises(ValueError, match="give a= .* or density="):
        S.bulk("Al", "bcc")


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"lattice": "bct", "a": 4.0}, "unknown lattice 'bct': use one of fcc, bcc, hcp, sc, diamond"),
        ({"element": "AL", "a": 4.0}, "unknown element 'AL'"),
        ({"a": 4.0, "density": 2.7}, "either a .* or density"),
        ({"density": -1.0}, "density must be positive"),
        ({"lattice": "fcc", "a": 4.0, "c_over_a": 1.6}, "c_over_a applies to hcp only"),
    ],
)
def test_bulk_errors_name_the_problem(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        S.bulk(**kwargs)


def test_supercell_counts_and_volume() -> None:
    prim = S.bulk("Al", "fcc", a=A)
    assert len(S.supercell(prim, 2)) == 8
    assert len(S.supercell(prim, (1, 2, 3))) == 6
    p = [[-1, 1, 1], [1, -1, 1], [1, 1, -1]]  # primitive fcc -> conventional cube
    cube = S.supercell(prim, p)
    assert len(cube) == 4
    assert np.allclose(np.abs(cube.cell[:]), A * np.eye(3))
    assert cube.info["source"].endswith("|supercell([[-1,1,1],[1,-1,1],[1,1,-1]])")
    with pytest.raises(ValueError, match="positive integers"):
        S.supercell(prim, (0, 1, 1))


# ---------------------------------------------------------------- defects


def test_vacancies_remove_n_reproducibly() -> None:
    big = S.supercell(S.bulk(cubic=True), 2)
    v1, v2, v3 = S.vacancies(big, 3, seed=1), S.vacancies(big, 3, seed=1), S.vacancies(big, 3, seed=2)
    assert len(v1) == 29
    assert np.array_equal(v1.positions, v2.positions)
    assert not np.array_equal(v1.positions, v3.positions)
    with pytest.raises(ValueError, match="make a supercell"):
        S.vacancies(S.bulk(), 1)


@pytest.mark.parametrize(("site", "dist"), [("octahedral", A / 2), ("tetrahedral", A * math.sqrt(3) / 4)])
@pytest.mark.parametrize("cell", ["primitive", "cubic222"])
def test_fcc_interstitial_sites_sit_at_the_right_distance(site: str, dist: float, cell: str) -> None:
    host = S.bulk(a=A) if cell == "primitive" else S.supercell(S.bulk(a=A, cubic=True), 2)
    atoms = S.interstitial(host, site)
    assert len(atoms) == len(host) + 1
    d = atoms.get_distances(len(atoms) - 1, range(len(host)), mic=True)
    assert d.min() == pytest.approx(dist, abs=1e-6)
    n_first = 6 if site == "octahedral" else 4
    if cell == "cubic222":  # big enough to count the shell of neighbours
        assert np.sum(np.isclose(d, dist, atol=1e-6)) == n_first


def test_fcc_site_on_rotated_cell_is_refused() -> None:
    host = S.bulk(a=A, cubic=True)
    host.rotate(30, "z", rotate_cell=True)
    with pytest.raises(ValueError, match="cubic axes along x, y, z"):
        S.interstitial(host, "octahedral")


def test_random_interstitial_respects_min_distance_and_seed() -> None:
    host = S.supercell(S.bulk(a=A, cubic=True), 2)
    a1 = S.interstitial(host, "random", min_dist=1.6, seed=5)
    a2 = S.interstitial(host, "random", min_dist=1.6, seed=5)
    a3 = S.interstitial(host, "random", min_dist=1.6, seed=6)
    assert np.array_equal(a1.positions, a2.positions)
    assert not np.allclose(a1.positions[-1], a3.positions[-1])
    assert a1.get_distances(len(host), range(len(host)), mic=True).min() >= 1.6
    with pytest.raises(ValueError, match="lower min_dist"):
        S.interstitial(host, "random", min_dist=2.5, max_tries=200)


# ---------------------------------------------------------------- surfaces


def _gap_and_planes(slab: Atoms) -> tuple[float, int]:
    z = slab.positions[:, 2]
    c_perp = slab.get_volume() / np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
    return c_perp - (z.max() - z.min()), len(np.unique(np.round(z, 4)))


@pytest.mark.parametrize(
    ("lattice", "miller", "per_plane"),
    [("fcc", (1, 1, 1), 1), ("fcc", (1, 0, 0), 1), ("fcc", (1, 1, 0), 1), ("bcc", (1, 1, 0), 1),
     ("hcp", (0, 0, 0, 1), 1), ("fcc", (2, 1, 1), 2), ("sc", (1, 0, 0), 1)],
)
def test_surface_has_layers_planes_and_vacuum_gap(lattice: str, miller: tuple, per_plane: int) -> None:
    a = {"fcc": A, "bcc": 3.2, "hcp": 2.86, "sc": 2.7}[lattice]
    slab = S.surface("Al", miller, layers=5, vacuum=9.0, lattice=lattice, a=a)
    gap, planes = _gap_and_planes(slab)
    assert planes == 5
    assert gap == pytest.approx(9.0, abs=1e-6)
    assert len(slab) == 5 * per_plane
    assert slab.pbc.all()
    assert S.min_distance(slab) == pytest.approx(NN_OVER_A[lattice] * a, rel=1e-6)


def test_surface_size_repeats_in_plane() -> None:
    assert len(S.surface("Al", (1, 1, 1), layers=3, vacuum=8.0, size=(2, 2))) == 12
    with pytest.raises(ValueError, match="all zeros"):
        S.surface("Al", (0, 0, 0))


# ---------------------------------------------------------------- disorder


def test_random_packing_density_min_distance_and_seeds() -> None:
    p1 = S.random_packing(40, 2.7, min_dist=2.45, seed=1)
    p2 = S.random_packing(40, 2.7, min_dist=2.45, seed=1)
    p3 = S.random_packing(40, 2.7, min_dist=2.45, seed=2)
    assert len(p1) == 40
    assert S.mass_density(p1) == pytest.approx(2.7, rel=1e-9)
    assert S.min_distance(p1) >= 2.45
    assert np.array_equal(p1.positions, p2.positions)
    assert not np.allclose(p1.positions, p3.positions)


def test_random_packing_few_atoms_in_small_box() -> None:
    p = S.random_packing(2, 2.7, min_dist=2.4, seed=0)
    assert S.min_distance(p) >= 2.4  # includes each atom's own periodic images


def test_random_packing_impossible_fails_clearly() -> None:
    with pytest.raises(ValueError, match="cannot place 20 Al atoms .* lower min_dist below"):
        S.random_packing(20, 2.7, min_dist=3.1)
    with pytest.raises(ValueError, match="box edge"):
        S.random_packing(1, 2.7, min_dist=2.6)


@pytest.mark.parametrize(
    "eps",
    [np.diag([0.01, 0.02, -0.015]), [0.01, -0.02, 0.005, 0.02, -0.01, 0.03]],
)
def test_strain_changes_volume_by_det(eps) -> None:
    atoms = S.supercell(S.bulk(a=A, cubic=True), (1, 1, 2))
    strained = S.strain(atoms, eps)
    e = np.asarray(eps, dtype=float)
    if e.shape == (6,):
        e = np.array([[e[0], e[5] / 2, e[4] / 2], [e[5] / 2, e[1], e[3] / 2], [e[4] / 2, e[3] / 2, e[2]]])
    assert strained.get_volume() / atoms.get_volume() == pytest.approx(np.linalg.det(np.eye(3) + e), rel=1e-12)
    # atoms move with the cell: fractional coordinates are unchanged
    assert np.allclose(strained.get_scaled_positions(), atoms.get_scaled_positions())


def test_voigt_and_tensor_strain_agree_and_asymmetric_rejected() -> None:
    atoms = S.bulk(a=A)
    voigt = S.strain(atoms, [0, 0, 0, 0.02, 0, 0])
    tensor = S.strain(atoms, [[0, 0, 0], [0, 0, 0.01], [0, 0.01, 0]])
    assert np.allclose(voigt.cell[:], tensor.cell[:])
    with pytest.raises(ValueError, match="symmetric"):
        S.strain(atoms, [[0, 0.1, 0], [0, 0, 0], [0, 0, 0]])


def test_rattle_is_seeded_gaussian() -> None:
    atoms = S.supercell(S.bulk(a=A, cubic=True), 3)
    r1, r2, r3 = S.rattle(atoms, 0.05, seed=3), S.rattle(atoms, 0.05, seed=3), S.rattle(atoms, 0.05, seed=4)
    disp = r1.positions - atoms.positions
    assert np.array_equal(r1.positions, r2.positions)
    assert not np.allclose(r1.positions, r3.positions)
    assert disp.std() == pytest.approx(0.05, rel=0.1)
    assert abs(disp.mean()) < 0.01


# ---------------------------------------------------------------- min_distance and hashing


def test_min_distance_small_and_nonperiodic_cells() -> None:
    assert S.min_distance(S.bulk("Al", "sc", a=2.7)) == pytest.approx(2.7)  # only self-images
    skew = Atoms("Al", cell=[[3.0, 0, 0], [2.9, 0.5, 0], [0, 0, 3.0]], pbc=True)
    assert S.min_distance(skew) == pytest.approx(math.hypot(0.1, 0.5))  # b - a
    dimer = Atoms("Al2", positions=[[0, 0, 0], [0, 0, 2.5]])
    assert S.min_distance(dimer) == pytest.approx(2.5)
    assert S.min_distance(Atoms("Al", positions=[[0, 0, 0]])) == math.inf


def test_structure_hash_invariant_to_wrapping_sensitive_to_change() -> None:
    atoms = S.rattle(S.bulk(a=A, cubic=True), 0.05, seed=0)
    h = S.structure_hash(atoms)
    moved = atoms.copy()
    moved.positions[1] += atoms.cell[0] - 2 * atoms.cell[2]  # same point, another image
    assert S.structure_hash(moved) == h
    nudged = atoms.copy()
    nudged.positions[2, 1] += 1e-4
    assert S.structure_hash(nudged) != h
    strained = S.strain(atoms, [1e-4, 0, 0, 0, 0, 0])
    assert S.structure_hash(strained) != h
    assert S.structure_hash(atoms[[1, 0, 2, 3]]) != h  # atom order matters


def test_diverse_al_set_is_small_varied_reproducible() -> None:
    s1, s2, s3 = S.diverse_al_set(0), S.diverse_al_set(0), S.diverse_al_set(1)
    assert len(s1) >= 8
    assert all(1 <= len(a) <= 8 for a in s1)
    assert sum(len(a) for a in s1) <= 40
    assert all(a.info.get("source") for a in s1)
    assert all(set(a.get_chemical_symbols()) == {"Al"} for a in s1)
    assert all(S.min_distance(a) > 2.0 for a in s1)
    hashes = [S.structure_hash(a) for a in s1]
    assert len(set(hashes)) == len(hashes)
    assert hashes == [S.structure_hash(a) for a in s2]
    assert hashes != [S.structure_hash(a) for a in s3]
    kinds = {a.info["source"].split("(")[1].split(",")[0] for a in s1 if a.info["source"].startswith("bulk")}
    assert {"fcc", "bcc", "hcp", "sc"} <= kinds
