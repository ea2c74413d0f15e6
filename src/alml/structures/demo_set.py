"""A small, diverse set of Al cells for demos and smoke tests."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from alml.structures.defects import vacancies
from alml.structures.disorder import random_packing, random_strain, rattle
from alml.structures.lattices import bulk
from alml.structures.surfaces import surface


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
