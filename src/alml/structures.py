"""Structure builders for Al (and other elements): lattices, defects, surfaces, disorder.

All functions return new :class:`ase.Atoms`; randomness comes only from an explicit ``seed``.
"""

from __future__ import annotations

import hashlib

import numpy as np
from ase import Atoms


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
