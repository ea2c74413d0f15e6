"""Bispectrum descriptors from LAMMPS: invariances, periodic images, gradients, grid layout, I/O.

Small band limits (2J = 4, K = 14) and tiny cells keep the file fast on two cores.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from alml.config import ConfigError, parse_config
from alml.descriptors import (
    MALA_AL,
    BispectrumSettings,
    ElementParams,
    LammpsNotAvailableError,
    LammpsSession,
    grid_points,
    lammps_box,
    n_bispectrum,
    on_grid,
    per_atom,
    qe_fft_shape,
    read_grid_h5,
    write_grid_h5,
)
from alml.descriptors.lammps_session import mpich_file

A0 = 4.04
# cutoff 4.2 Å: more than half (and more than all) of the 4.04 Å cubic cell, so images of self count
S4 = BispectrumSettings(
    twojmax=4, rcutfac=4.2, rfac0=0.99363, bzeroflag=False, elements={"Al": ElementParams(radius=0.5)}
)
needs_mpiexec = pytest.mark.skipif(mpich_file("mpiexec") is None, reason="mpich wheel's mpiexec not found")


def rattled_fcc(seed: int = 0, scale: float = 0.12) -> Atoms:
    at = bulk("Al", "fcc", a=A0, cubic=True)
    rng = np.random.default_rng(seed)
    at.positions += rng.normal(scale=scale, size=at.positions.shape)
    return at


def random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def strained(at: Atoms, eps: np.ndarray) -> Atoms:
    s = at.copy()
    f = np.eye(3) + eps
    s.set_cell(at.cell[:] @ f.T, scale_atoms=False)
    s.positions = at.positions @ f.T
    return s


# --- settings --------------------------------------------------------------------------------


def test_settings_counts_and_mala_preset():
    assert [n_bispectrum(t) for t in (0, 2, 4, 6, 8, 10)] == [1, 5, 14, 30, 55, 91]
    assert MALA_AL.n_components == 91
    assert MALA_AL.max_cutoff == pytest.approx(4.67637)
    assert "4.67637 0.99363 10 0.5 1.0 rmin0 0.0 switchflag 1 bzeroflag 0" in MALA_AL.sna_args()
    q = S4.model_copy(update={"quadraticflag": True})
    assert q.n_components == 14 + 14 * 15 // 2


def test_settings_reject_unknown_keys_and_elements():
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config(BispectrumSettings, {**MALA_AL.model_dump(), "twojmx": 4})
    with pytest.raises(ConfigError, match="unknown chemical symbol"):
        parse_config(BispectrumSettings, {**MALA_AL.model_dump(), "elements": {"Xx": {"radius": 0.5}}})
    with pytest.raises(ValueError, match="no bispectrum parameters"):
        per_atom(bulk("Cu", "fcc", a=3.6), S4, gradients=False)


# --- the LAMMPS session and box ---------------------------------------------------------------


def test_session_reports_missing_package():
    with pytest.raises(LammpsNotAvailableError, match="NOT-A-PACKAGE"):
        with LammpsSession(packages=("ML-SNAP", "NOT-A-PACKAGE")):
            pass
    with LammpsSession() as s:
        assert s.version >= 20240829 and s.nprocs == 1


@pytest.mark.parametrize("seed", [0, 1])
def test_lammps_box_keeps_the_lattice(seed):
    rng = np.random.default_rng(seed)
    cell = rng.normal(size=(3, 3)) * 3 + np.eye(3) * 5
    if seed == 1:
        cell = cell[[1, 0, 2]]  # left-handed
    box = lammps_box(cell)
    h, q = box.h, box.rotation
    assert np.allclose(np.triu(h, 1), 0) and np.all(np.diag(h) > 0)
    assert np.allclose(q @ q.T, np.eye(3))
    assert np.allclose(cell @ q, h)
    assert np.allclose(h @ h.T, cell @ cell.T)  # same lengths and angles


# --- per-atom descriptors ----------------------------------------------------------------------


def test_invariance_rotation_translation_permutation():
    at = rattled_fcc(1)
    ref = per_atom(at, S4)
    rot = random_rotation(3)
    r = at.copy()
    r.set_cell(at.cell[:] @ rot.T)
    r.positions = at.positions @ rot.T
    dr = per_atom(r, S4)
    assert np.allclose(dr.B, ref.B, rtol=1e-10, atol=1e-10)
    # gradients rotate like vectors: dB/dr' = R dB/dr
    assert np.allclose(dr.dBdr, np.einsum("ab,pbk->pak", rot, ref.dBdr), atol=1e-9)
    t = at.copy()
    t.positions += [0.37, -1.9, 2.6]  # also crosses the cell boundary
    assert np.allclose(per_atom(t, S4, gradients=False).B, ref.B, atol=1e-10)
    perm = np.array([2, 0, 3, 1])
    assert np.allclose(per_atom(at[perm], S4, gradients=False).B, ref.B[perm], atol=1e-10)


def test_supercell_and_primitive_cell_agree():
    prim = bulk("Al", "fcc", a=A0)  # one atom, triclinic cell
    cubic = bulk("Al", "fcc", a=A0, cubic=True)
    b1 = per_atom(prim, MALA_AL.model_copy(update={"twojmax": 4}), gradients=False).B
    b4 = per_atom(cubic, MALA_AL.model_copy(update={"twojmax": 4}), gradients=False).B
    assert np.allclose(b4, b1[0], rtol=1e-10)
    at = rattled_fcc(2)
    d = per_atom(at, S4)
    sc = at.repeat((2, 1, 2))
    dsc = per_atom(sc, S4)
    for rep in range(4):
        assert np.allclose(dsc.B[4 * rep : 4 * rep + 4], d.B, atol=1e-10)
    # the same pairs exist per atom (each image of j in the small cell is a distinct atom in the big one)
    assert len(dsc.i) == 4 * len(d.i)
    # gradient-free (periodic LAMMPS box) and cluster (explicit images) routes agree
    assert np.allclose(per_atom(at, S4, gradients=False).B, d.B, atol=1e-10)


def _fd_B(at: Atoms, settings: BispectrumSettings, h: float = 1e-5) -> np.ndarray:
    """Central differences: fd[j, a, i, k] = ∂B_ik/∂r_ja."""
    n = len(at)
    fd = np.zeros((n, 3, n, settings.n_components))
    for j in range(n):
        for a in range(3):
            p, m = at.copy(), at.copy()
            p.positions[j, a] += h
            m.positions[j, a] -= h
            fd[j, a] = (per_atom(p, settings, False).B - per_atom(m, settings, False).B) / (2 * h)
    return fd


def _folded(d) -> np.ndarray:  # noqa: ANN001
    n, k = d.B.shape
    an = np.zeros((n, 3, n, k))
    np.add.at(an, (d.j, slice(None), d.i), d.dBdr)
    return an


@pytest.mark.parametrize(
    "settings",
    [S4, S4.model_copy(update={"quadraticflag": True, "twojmax": 2})],
    ids=["linear", "quadratic"],
)
def test_gradients_match_finite_differences(settings):
    at = rattled_fcc(4)
    d = per_atom(at, settings)
    assert np.any((d.i == d.j) & (np.linalg.norm(d.rij, axis=1) > 0))  # images of self are pairs
    an = _folded(d)
    fd = _fd_B(at, settings)
    assert np.abs(fd - an).max() <= 1e-6 * np.abs(an).max()
    # translation invariance: the pairs of each atom sum to zero
    sums = np.zeros_like(d.B)
    np.add.at(sums, d.i, d.dBdr.sum(axis=1))
    assert np.abs(sums).max() < 1e-9 * np.abs(an).max()


def _toy_energy(b: np.ndarray, w: np.ndarray, kind: str) -> tuple[float, np.ndarray]:
    x = b @ w
    if kind == "linear":
        return float(x.sum()), np.broadcast_to(w, b.shape).copy()
    return float(np.tanh(x).sum()), (1 - np.tanh(x) ** 2)[:, None] * w[None, :]


@pytest.mark.parametrize("kind", ["linear", "tanh"])
def test_toy_model_forces_and_stress_match_finite_differences(kind):
    at = rattled_fcc(5)
    w = np.random.default_rng(7).normal(size=S4.n_components) / 50.0

    def energy(a: Atoms) -> float:
        return _toy_energy(per_atom(a, S4, False).B, w, kind)[0]

    d = per_atom(at, S4)
    _, dedb = _toy_energy(d.B, w, kind)
    forces, stress = d.forces(dedb), d.stress(dedb, at.get_volume())
    h = 1e-5
    f_fd = np.zeros_like(forces)
    for j in range(len(at)):
        for a in range(3):
            p, m = at.copy(), at.copy()
            p.positions[j, a] += h
            m.positions[j, a] -= h
            f_fd[j, a] = -(energy(p) - energy(m)) / (2 * h)
    assert np.abs(forces - f_fd).max() <= 1e-6 * np.abs(forces).max()
    assert abs(forces.sum(axis=0)).max() < 1e-9 * np.abs(forces).max()
    s_fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = np.zeros((3, 3))
            e[a, b] = e[b, a] = h / 2 if a != b else h
            s_fd[a, b] = (energy(strained(at, e)) - energy(strained(at, -e))) / (2 * h) / at.get_volume()
    assert np.abs(stress - s_fd).max() <= 1e-6 * np.abs(stress).max()
    assert np.allclose(d.virial(dedb), -at.get_volume() * stress.T)


def test_two_elements_and_open_boundaries():
    s2 = BispectrumSettings(
        twojmax=4,
        rcutfac=1.0,
        rfac0=0.99363,
        bzeroflag=True,
        elements={"Al": ElementParams(radius=2.1), "Mg": ElementParams(radius=2.4, weight=0.7)},
    )
    at = rattled_fcc(6)
    at.symbols[[1, 3]] = "Mg"
    d = per_atom(at, s2)
    fd = _fd_B(at, s2)
    an = _folded(d)
    assert np.abs(fd - an).max() <= 1e-6 * np.abs(an).max()
    # an element that is absent from the structure does not change anything
    al = rattled_fcc(6)
    only_al = s2.model_copy(update={"elements": {"Al": s2.elements["Al"]}})
    assert np.allclose(per_atom(al, s2, False).B, per_atom(al, only_al, False).B, atol=1e-10)
    # a slab: open along z equals periodic with lots of vacuum
    slab = at.repeat((1, 1, 2))
    slab.center(vacuum=6.0, axis=2)
    open_z = slab.copy()
    open_z.pbc = (True, True, False)
    assert np.allclose(per_atom(open_z, s2).B, per_atom(slab, s2, gradients=False).B, atol=1e-10)


def test_chunked_clusters_give_the_same_pairs():
    at = rattled_fcc(8).repeat((2, 1, 1))
    whole = per_atom(at, S4, max_cluster_atoms=10_000)  # one LAMMPS cluster
    small = per_atom(at, S4, max_cluster_atoms=25)  # one or two centres per cluster
    assert np.array_equal(whole.i, small.i) and np.array_equal(whole.j, small.j)
    assert np.allclose(whole.dBdr, small.dBdr, atol=1e-12) and np.allclose(whole.B, small.B, atol=1e-12)


# --- grid descriptors ---------------------------------------------------------------------------


def test_grid_at_atom_sites_equals_per_atom_and_self_term_convention():
    at = bulk("Al", "fcc", a=A0, cubic=True)
    shape = (8, 8, 8)
    rng = np.random.default_rng(9)
    # atoms exactly on grid points (other than the origin), the rest rattled
    at.positions = grid_points(at.cell[:], shape)[[0, 4, 2], [0, 2, 4], [0, 1, 6]].tolist() + [
        at.positions[3] + rng.normal(scale=0.1, size=3)
    ]
    g = on_grid(at, S4, shape)
    b = per_atom(at, S4, gradients=False).B
    for n, (i, j, k) in enumerate([(0, 0, 0), (4, 2, 1), (2, 4, 6)]):
        assert np.allclose(g[i, j, k], b[n], rtol=1e-10, atol=1e-10)
    # an atom a hair off the grid point counts as a neighbour at r ≈ 0: the grid value jumps
    nudged = at.copy()
    nudged.positions[1] += [1e-4, 0, 0]
    g2 = on_grid(nudged, S4, shape)
    jump = np.abs(g2[4, 2, 1] - g[4, 2, 1]).max()
    assert jump > 1e3 * np.abs(per_atom(nudged, S4, False).B[1] - b[1]).max()


def test_grid_triclinic_and_rotated_cells_agree_with_orthogonal():
    at = rattled_fcc(10)
    shape = (6, 6, 6)
    ref = on_grid(at, S4, shape)
    # same crystal, sheared basis c' = c + a: point (i, j, k) of c' is point (i + k, j, k) of c
    sheared = at.copy()
    sheared.set_cell(at.cell[:] + np.array([[0, 0, 0], [0, 0, 0], at.cell[0]]), scale_atoms=False)
    gs = on_grid(sheared, S4, shape)
    i, j, k = np.indices(shape)
    assert np.allclose(gs, ref[(i + k) % 6, j, k], atol=1e-10)
    # a rotated, triclinic description: fractional layout unchanged
    rot = random_rotation(11)
    r = sheared.copy()
    r.set_cell(sheared.cell[:] @ rot.T)
    r.positions = sheared.positions @ rot.T
    assert np.allclose(on_grid(r, S4, shape), gs, atol=1e-10)
    # left-handed: swapping a and b swaps the first two grid indices
    lh = at.copy()
    lh.set_cell(at.cell[[1, 0, 2]], scale_atoms=False)
    assert np.allclose(on_grid(lh, S4, shape), ref.transpose(1, 0, 2, 3), atol=1e-10)
    # translating the atoms by one grid step shifts the grid by one index
    t = at.copy()
    t.positions += at.cell[2] / 6
    assert np.allclose(on_grid(t, S4, shape), np.roll(ref, 1, axis=2), atol=1e-10)


def test_grid_blocks_and_mpi_ranks_agree_with_one_job():
    at = bulk("Al", "fcc", a=A0).repeat((2, 2, 2))  # triclinic, 8 atoms
    at.rattle(0.05, seed=3)
    shape = (6, 5, 9)
    ref = on_grid(at, S4, shape)
    assert ref.shape == (6, 5, 9, 14) and ref.dtype == np.float64
    assert np.allclose(on_grid(at, S4, shape, max_points_per_block=2 * 30), ref, atol=1e-10)
    assert on_grid(at, S4, shape, dtype=np.float32).dtype == np.float32
    if mpich_file("mpiexec") is not None:
        assert np.allclose(on_grid(at, S4, shape, workers=2), ref, atol=1e-10)


def test_grid_rejects_bad_input():
    at = rattled_fcc(0)
    with pytest.raises(ValueError, match="three positive"):
        on_grid(at, S4, (4, 0, 4))
    open_at = at.copy()
    open_at.pbc = (True, True, False)
    with pytest.raises(ValueError, match="periodic"):
        on_grid(open_at, S4, (4, 4, 4))
    with pytest.raises(ValueError, match="max_points_per_block must be >= 1"):
        on_grid(at, S4, (4, 4, 4), max_points_per_block=0)


def test_quadratic_grid_matches_per_atom():
    sq = S4.model_copy(update={"quadraticflag": True, "twojmax": 2})
    at = rattled_fcc(12)
    at.positions[0] = 0.0
    g = on_grid(at, sq, (4, 4, 4))
    assert np.allclose(g[0, 0, 0], per_atom(at, sq, gradients=False).B[0], rtol=1e-10)


def test_hdf5_roundtrip(tmp_path):
    at = rattled_fcc(13)
    shape = (4, 5, 6)
    path = write_grid_h5(tmp_path / "g.h5", at, S4, shape, max_points_per_block=40)
    values, settings, atoms = read_grid_h5(path)
    assert values.dtype == np.float32 and values.shape == (4, 5, 6, 14)
    assert settings == S4
    assert np.allclose(atoms.positions, at.positions) and np.allclose(atoms.cell[:], at.cell[:])
    assert np.allclose(values, on_grid(at, S4, shape), rtol=1e-6, atol=1e-5)
    assert not list(tmp_path.glob(".*tmp"))


def test_qe_fft_shape():
    # pw.x 6.7 (ecutwfc 40, ecutrho 160 Ry) prints these "FFT dimensions"
    cubic = bulk("Al", "fcc", a=A0, cubic=True)
    assert qe_fft_shape(cubic.repeat(2).cell[:], 160.0) == (64, 64, 64)
    assert qe_fft_shape(cubic.cell[:], 160.0) == (32, 32, 32)
    assert qe_fft_shape(bulk("Al", "fcc", a=A0).cell[:], 160.0) == (24, 24, 24)
    # strained, triclinic cells (odd sizes such as 45 and 75 are allowed: factors 2, 3, 5)
    rng = np.random.default_rng(5)
    expected = [(24, 24, 40), (45, 20, 75)]
    for n in range(2):
        a = bulk("Al", "fcc", a=A0).repeat((2, 1, 3)) if n % 2 else bulk("Al", "hcp", a=2.86)
        cell = a.cell[:] @ (np.eye(3) + rng.normal(scale=0.08, size=(3, 3)))
        assert qe_fft_shape(cell, 160.0) == expected[n]


def test_cli_atoms_and_grid(tmp_path):
    from typer.testing import CliRunner

    from alml.cli.descriptors import app

    at = rattled_fcc(14)
    at.write(tmp_path / "al.xyz")
    cfg = tmp_path / "s.yaml"
    cfg.write_text("twojmax: 2\nrcutfac: 4.2\nrfac0: 0.99363\nelements:\n  Al: {radius: 0.5}\n")
    r = CliRunner().invoke(
        app, ["atoms", str(tmp_path / "al.xyz"), "--out", str(tmp_path / "a.npz"), "--config", str(cfg)]
    )
    assert r.exit_code == 0, r.output
    z = np.load(tmp_path / "a.npz")
    assert z["B"].shape == (4, 5) and z["dBdr"].shape[1:] == (3, 5)
    r = CliRunner().invoke(
        app,
        [
            "grid",
            str(tmp_path / "al.xyz"),
            "--out",
            str(tmp_path / "g.h5"),
            "--shape",
            "4",
            "4",
            "4",
            "--config",
            str(cfg),
        ],
    )
    assert r.exit_code == 0, r.output
    assert read_grid_h5(tmp_path / "g.h5")[0].shape == (4, 4, 4, 5)
