"""alml.potential.snapshots: fcc order parameter and seeded EAM snapshots of a condition (solid / liquid)."""

from __future__ import annotations

import numpy as np
import pytest

from alml import structures as st
from alml.potential.snapshots import ORDER_THRESHOLD, Condition, MDSchedule, condition_snapshots, fcc_order

SHORT = MDSchedule(equilibrate_ps=0.4, spacing_ps=0.2, quench_ps=1.0)


def test_fcc_order_of_crystal_translated_crystal_rattled_crystal_and_liquid():
    cell = st.supercell(st.bulk("Al", "fcc", a=4.05, cubic=True), 2)
    assert fcc_order(cell, 2) == pytest.approx(1.0, abs=1e-12)
    moved = cell.copy()
    moved.translate([0.37, -1.1, 2.9])
    assert fcc_order(moved, 2) == pytest.approx(1.0, abs=1e-12)
    # Debye-Waller: <|exp(iG.u)|> = exp(-G^2 sigma^2 / 2) per Cartesian sigma, averaged over {111} and {200}
    hot = st.rattle(st.supercell(st.bulk("Al", "fcc", a=4.05, cubic=True), 4), 0.1, seed=1)
    g2 = (2 * np.pi / 4.05) ** 2 * np.array([3.0] * 4 + [4.0] * 3)
    assert fcc_order(hot, 4) == pytest.approx(np.mean(np.exp(-g2 * 0.01 / 2)), abs=0.03)
    liquid = st.random_packing(32, 2.375, min_dist=2.3, seed=3)
    assert fcc_order(liquid, 2) < 0.35
    long = st.supercell(st.bulk("Al", "fcc", a=4.05, cubic=True), (2, 1, 1))
    assert fcc_order(long, (2, 1, 1)) == pytest.approx(1.0, abs=1e-12)
    assert fcc_order(long, 1) < 0.5  # the wrong lattice: the {111} phases of a = 8.1 Å cancel
    with pytest.raises(ValueError, match="orthorhombic"):
        fcc_order(st.bulk("Al", "fcc", a=4.05), 1)


def test_condition_geometry():
    c = Condition(name="x", temperature=933.0, phase="solid", density=2.555, repeats=3)
    assert c.n_atoms == 108
    cell = st.bulk("Al", "fcc", a=c.lattice_constant, cubic=True)
    assert st.mass_density(cell) == pytest.approx(2.555, rel=1e-9)
    assert MDSchedule(timestep=2.0).steps(5.0) == 2500
    assert Condition(name="y", temperature=300.0, phase="solid", density=2.7, repeats=(2, 1, 1)).n_atoms == 8
    with pytest.raises(ValueError, match="cubic"):
        Condition(name="z", temperature=933.0, phase="liquid", density=2.375, repeats=(2, 1, 1))


def test_solid_snapshots_are_seeded_ordered_and_labelled(tmp_path):
    from alml.structures import structure_hash

    c = Condition(name="298K-solid", temperature=298.0, phase="solid", density=2.699, repeats=2)
    runs = [condition_snapshots(c, 2, tmp_path / f"r{k}", SHORT, seed=4) for k in range(2)]
    assert [structure_hash(a) for a in runs[0]] == [structure_hash(a) for a in runs[1]]
    other = condition_snapshots(c, 1, tmp_path / "other", SHORT, seed=5)
    assert structure_hash(other[0]) != structure_hash(runs[0][0])
    a = runs[0][1]
    assert len(a) == 32 and "momenta" not in a.arrays
    assert st.mass_density(a) == pytest.approx(2.699, rel=1e-6)
    assert a.info["condition"] == "298K-solid" and a.info["phase"] == "solid"
    assert a.info["temperature"] == 298.0 and a.info["md_time_ps"] == pytest.approx(0.8)
    assert a.info["fcc_order"] > 0.9
    assert 50.0 < a.info["kinetic_temperature"] < 900.0
    assert st.min_distance(a) > 2.2


def test_liquid_snapshots_are_disordered_and_a_frozen_liquid_is_refused(tmp_path):
    c = Condition(name="933K-liquid", temperature=933.0, phase="liquid", density=2.375, repeats=2)
    frames = condition_snapshots(c, 2, tmp_path / "liq", SHORT, seed=0)
    assert len(frames) == 2
    assert all(f.info["fcc_order"] < ORDER_THRESHOLD for f in frames)
    assert st.mass_density(frames[0]) == pytest.approx(2.375, rel=1e-6)
    assert frames[0].info["md_time_ps"] == pytest.approx(1.0 + 3 * 0.2)  # quench, 2 dropped frames, 1 spacing
    # a "solid" far above its melting point at liquid density melts: refused, not labelled as solid
    molten = Condition(name="bad", temperature=3000.0, phase="solid", density=2.375, repeats=2)
    with pytest.raises(ValueError, match="melted"):
        condition_snapshots(molten, 1, tmp_path / "hot", MDSchedule(equilibrate_ps=4.0, spacing_ps=2.0), seed=0)
