"""Ewald energy of point charges in a neutralising background, in memory O(N) however large the cell.

E = ½ Σ'_{ijL} Z_i Z_j erfc(η r)/r + (2π/Ω) Σ_{G≠0} e^{−G²/4η²}/G² |Σ_i Z_i e^{iG·r_i}|²
    − η/√π Σ Z_i² − π (Σ Z_i)²/(2 Ω η²)        (Hartree atomic units; independent of η).

η = √π (N/Ω²)^{1/6} balances the two sums; both are truncated where their terms fall below ``tol``.
The real-space sum runs over chunks of central atoms against all atoms and the lattice translations L
that can reach within the cutoff (so a 4000-atom cell never holds its ~27 million pairs at once: memory
is one (chunk, N) table, ≈ 2M entries); the reciprocal sum over chunks of G vectors (≈ 2M phases at once).
Time is O(N²·n_L) for the real-space part (n_L = 27 for cells larger than the cutoff) — seconds at 4000
atoms, small beside the descriptors.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms
from scipy.special import erfc

from alml.units import BOHR, HARTREE

_ENTRIES = 1 << 21  #: (chunk × atoms) or (G chunk × atoms) entries held at once


def _charges(atoms: Atoms, charges: np.ndarray | dict[str, float]) -> np.ndarray:
    if isinstance(charges, dict):
        return np.array([charges[s] for s in atoms.get_chemical_symbols()], dtype=float)
    z = np.asarray(charges, dtype=float)
    if z.shape != (len(atoms),):
        raise ValueError(f"charges must be one per atom ({len(atoms)}) or a dict per element, got shape {z.shape}")
    return z


def _translations(cell: np.ndarray, rcut: float, span: float) -> np.ndarray:
    """Lattice vectors L (rows, Bohr) with |L| ≤ rcut + ``span`` (the largest |r_j − r_i| in the wrapped cell)."""
    omega = abs(np.linalg.det(cell))
    heights = [omega / np.linalg.norm(np.cross(cell[(d + 1) % 3], cell[(d + 2) % 3])) for d in range(3)]
    nmax = [int(math.ceil(rcut / h)) + 1 for h in heights]
    ns = np.stack(np.meshgrid(*[np.arange(-m, m + 1) for m in nmax], indexing="ij"), axis=-1).reshape(-1, 3)
    lv = ns @ cell
    return lv[np.linalg.norm(lv, axis=1) <= rcut + span]


def real_space_sum(pos: np.ndarray, cell: np.ndarray, z: np.ndarray, eta: float, rcut: float) -> float:
    """½ Σ'_{ijL} Z_i Z_j erfc(η r)/r over pairs closer than ``rcut`` (Bohr; ``pos`` wrapped into the cell, Bohr).

    Chunks of central atoms against all atoms, one lattice translation at a time: memory one (chunk, N) table.
    """
    n = len(pos)
    span = float(np.linalg.norm(cell, axis=1).sum())  # bounds |r_j − r_i| inside the cell
    lvs = _translations(cell, rcut, span)
    chunk = max(1, _ENTRIES // max(n, 1))
    total = 0.0
    for i0 in range(0, n, chunk):
        i1 = min(n, i0 + chunk)
        d = pos[None, :, :] - pos[i0:i1, None, :]  # r_j − r_i, (c, N, 3)
        d2 = np.einsum("cna,cna->cn", d, d)
        zz = z[i0:i1, None] * z[None, :]
        reach = np.sqrt(d2.max())
        for lv in lvs:
            ll = float(lv @ lv)
            if math.sqrt(ll) > rcut + reach:
                continue
            r2 = d2 + 2.0 * (d @ lv) + ll
            sel = r2 < rcut * rcut
            if ll == 0.0:  # no self-pair at L = 0
                rows = np.arange(i1 - i0)
                sel[rows, rows + i0] = False
            if sel.any():
                r = np.sqrt(r2[sel])
                total += float(np.sum(zz[sel] * erfc(eta * r) / r))
    return 0.5 * total


def reciprocal_sum(frac: np.ndarray, cell: np.ndarray, z: np.ndarray, eta: float, gcut: float) -> float:
    """(2π/Ω) Σ_{0 < |G| ≤ gcut} e^{−G²/4η²}/G² |Σ_i Z_i e^{iG·r_i}|² (Hartree; ``frac`` fractional positions)."""
    omega = abs(np.linalg.det(cell))
    b = 2.0 * np.pi * np.linalg.inv(cell).T
    mmax = [int(math.ceil(gcut * np.linalg.norm(cell[k]) / (2.0 * np.pi))) for k in range(3)]
    ms = np.stack(np.meshgrid(*[np.arange(-m, m + 1) for m in mmax], indexing="ij"), axis=-1).reshape(-1, 3)
    gv = ms @ b
    g2 = np.einsum("ka,ka->k", gv, gv)
    keep = (g2 > 1e-12) & (g2 <= gcut**2)
    ms, g2 = ms[keep], g2[keep]
    chunk = max(1, _ENTRIES // max(len(frac), 1))
    e = 0.0
    for k0 in range(0, len(g2), chunk):
        sg = np.exp(2j * np.pi * (ms[k0 : k0 + chunk] @ frac.T)) @ z  # (nG,)
        gg = g2[k0 : k0 + chunk]
        e += float(np.sum(np.exp(-gg / (4 * eta**2)) / gg * np.abs(sg) ** 2))
    return e * 2.0 * np.pi / omega


def ewald_energy(atoms: Atoms, charges: np.ndarray | dict[str, float], tol: float = 1e-12) -> float:
    """Ion–ion energy (eV) of point charges (e) at the atoms of a periodic cell in a neutralising background.

    ``charges``: per atom, or per element (valence charges Z_v). See the module doc for the formula and costs.
    """
    z = _charges(atoms, charges)
    cell = np.asarray(atoms.cell[:], dtype=float) / BOHR
    omega = abs(np.linalg.det(cell))
    n = len(atoms)
    eta = math.sqrt(math.pi) * (n / omega**2) ** (1.0 / 6.0)
    p = math.sqrt(-math.log(tol))
    rcut, gcut = p / eta, 2.0 * eta * p
    frac = atoms.get_scaled_positions(wrap=True)
    e_real = real_space_sum(frac @ cell, cell, z, eta, rcut)
    e_recip = reciprocal_sum(frac, cell, z, eta, gcut)
    e_self = -eta / math.sqrt(math.pi) * float(np.sum(z**2))
    e_bg = -math.pi * float(np.sum(z)) ** 2 / (2.0 * omega * eta**2)
    return (e_real + e_recip + e_self + e_bg) * HARTREE
