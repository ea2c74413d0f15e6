"""Does an explicit electrostatic reference explain the snapshot-to-snapshot band-energy errors? A ridge probe.

A periodic cell's eigenvalues are measured from its average Coulomb potential (QE sets it to zero). The local
potential near an atom, relative to that average, carries the cell's mean inner potential

    φ̄ = (2π/3Ω) Σ_a ∫_{Voronoi(a)} |r − R_a|² n(r) d³r · e²/(4πε₀)      (electrons about their own ion)

which is a cell sum of local terms but not visible to one grid point's descriptor. This probe computes φ̄ per
snapshot (from the true density, an oracle, and from a superposition of the pseudopotential's atomic densities,
ions only) and asks a quadratic ridge (descriptors, squares, atom density; as bench/ldos_density_probe.py)
whether learning the LDOS on an energy axis shifted by φ̄ (E' = E − φ̄ + const) lowers its leave-one-snapshot-out
Fermi-level and band-energy errors. Targets are moved onto the shifted axis by cubic interpolation; predictions are
evaluated exactly on the shifted ladder. No network, ~9 min of one busy core:

    .venv/bin/python bench/ldos_reference_probe.py       # every finished 32-atom snapshot of runs/ldos_v1

Findings: docs/benchmarks.md, "Integrated observables amplify a common output bias".
"""

# ruff: noqa: E402  (imports follow the sys.path set-up for src/ and bench/)

import dataclasses
import json
import re
import sys
from pathlib import Path

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial import cKDTree

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
from alml.runtime import set_threads

set_threads(1)
from ldos_density_probe import features

from alml.data.grids import EnergyLadder, open_ldos_h5
from alml.descriptors.grid_io import read_grid_h5
from alml.dft.pseudo import pseudopotential
from alml.surrogate import total_energy as te
from alml.surrogate.inputs import global_values, with_globals
from alml.surrogate.observables import density, observables

E2 = 14.399645  # e²/(4πε₀), eV·Å
POINTS, RIDGE, REF = 40000, 1e-3, 8.0


def atomic_density_pseudo() -> te.PseudoData:
    """The UPF's PP_RHOATOM as a PseudoData 'core charge', so te.core_density superposes it on the grid."""
    upf = Path(pseudopotential("Al"))
    pp = te.read_upf(upf)
    block = re.search(r"<PP_RHOATOM[^>]*>(.*?)</PP_RHOATOM>", upf.read_text(), re.S)
    r2rho = np.array(block.group(1).split(), float)  # 4π r² ρ(r)
    rho = np.where(pp.r > 0, r2rho / (4 * np.pi * np.maximum(pp.r, 1e-12) ** 2), 0.0)
    return dataclasses.replace(pp, rho_core=rho)


def mean_inner_potential(atoms, n: np.ndarray) -> float:
    """φ̄ (eV) of electrons n (grid, 1/Å³) about their nearest ion (Voronoi pieces); orthorhombic cells."""
    cell = atoms.cell[:]
    if not np.allclose(cell, np.diag(np.diag(cell))):
        raise ValueError("the probe's Voronoi partition needs an orthorhombic cell")
    lengths, shape = np.diag(cell), n.shape
    grid = np.stack(np.meshgrid(*[np.arange(s) / s for s in shape], indexing="ij"), -1).reshape(-1, 3) * lengths
    d, _ = cKDTree(atoms.get_positions() % lengths, boxsize=lengths).query(grid % lengths)
    return 2 * np.pi / 3 * E2 * float((d**2 * n.reshape(-1)).mean())  # (1/Ω) ∫ ... d³r is the grid mean


def shifted(y: np.ndarray, energies: np.ndarray, s: float) -> np.ndarray:
    """y (P, n_e) sampled at ``energies`` -> values at energies + s (edge values outside)."""
    e = np.clip(energies + s, energies[0], energies[-1])
    return CubicSpline(energies, y, axis=1)(e)


def main() -> int:
    data = REPO / "runs" / "ldos_v1"
    snaps = {c: r for c, r in json.loads((data / "dataset.json").read_text())["snapshots"].items()
             if r.get("status") == "done" and r["split"] != "large"}
    names = sorted(snaps)
    atomic = atomic_density_pseudo()
    rng = np.random.default_rng(0)
    snap = {}
    for c in names:
        folder = data / snaps[c]["folder"]
        with open_ldos_h5(folder / "ldos.h5") as f:
            meta = f.meta()
            n = np.concatenate([density(s, meta.ladder, meta.reference.fermi_level, meta.temperature)
                                for _, _, s in f.iter_slabs()], axis=2)
            idx = np.sort(rng.choice(meta.shape[0] * meta.shape[1] * meta.shape[2], POINTS, replace=False))
            y = f.points(idx).astype(np.float64)
        x, _, _ = read_grid_h5(folder / "descriptors.h5")
        x = with_globals(x.reshape(-1, x.shape[-1]).astype(np.float64), global_values(meta.atoms, ["atom_density"]))
        phi = {"true density": mean_inner_potential(meta.atoms, n),
               "atomic superposition": mean_inner_potential(meta.atoms, te.core_density(meta.atoms, n.shape,
                                                                                         {"Al": atomic}))}
        snap[c] = dict(x=x, idx=idx, y=y, meta=meta, phi=phi)
        print(f"{c:16s} mu {meta.reference.fermi_level:.4f} eV  phi(true n) {phi['true density']:.4f}  "
              f"phi(atomic) {phi['atomic superposition']:.4f}", flush=True)
    x_all = np.vstack([s["x"][s["idx"]] for s in snap.values()])
    mu_x, sd_x = x_all.mean(0), x_all.std(0)
    sd_x[sd_x < 1e-12] = 1.0
    print("\nleave-one-snapshot-out ridge: Δμ (meV) / ΔE_band (meV/atom) against pw.x\n")
    variants = ["none", "true density", "atomic superposition"]
    print("| snapshot | " + " | ".join(f"shift: {v}" for v in variants) + " |")
    print("|---|" + "---|" * len(variants))
    normal = {}
    for v in variants:  # per-snapshot normal equations, so leaving one out is a subtraction
        for c, s in snap.items():
            f = features((s["x"][s["idx"]] - mu_x) / sd_x, True)
            e = s["meta"].ladder.energies
            t = s["y"] if v == "none" else shifted(s["y"], e, s["phi"][v] - REF)
            normal[v, c] = (f.T @ f, f.T @ t)
    for c in names:
        s, cells = snap[c], []
        meta, ref, n_atoms = s["meta"], s["meta"].reference, len(s["meta"].atoms)
        f_all = features((s["x"] - mu_x) / sd_x, True)
        for v in variants:
            a = sum(normal[v, o][0] for o in names if o != c)
            b = sum(normal[v, o][1] for o in names if o != c)
            w = np.linalg.solve(a + RIDGE * POINTS * (len(names) - 1) * np.eye(len(a)), b)
            shift = 0.0 if v == "none" else s["phi"][v] - REF
            lad = meta.ladder
            ladder = EnergyLadder(lad.energies + shift, lad.broadening, lad.kernel)
            obs = observables(f_all @ w, ladder, meta.atoms.get_volume(), meta.n_electrons, meta.temperature,
                              with_density=False)
            cells.append(f"{1000 * (obs.fermi_level - ref.fermi_level):+.1f} / "
                         f"{1000 * (obs.band_energy - ref.band_energy) / n_atoms:+.1f}")
        print(f"| {c} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
