"""ML-DFT observables vs QE: fed QE's own LDOS, does alml reproduce QE's Fermi level, band energy and total energy?

For fcc Al cells (4 atoms = the conventional cube, 32 = its 2x2x2 supercell) at 298 K, default DFT settings
(ecutwfc 40 Ry, k-spacing 0.13/Å, Fermi–Dirac smearing at T): pw.x, pp.x LDOS on the ladder, then
:func:`alml.surrogate.total_energy.energies_from_ldos` with kernel-aware weights (and the naive trapezoid
rule for comparison), each number against QE's. Results accumulate in ``<root>/results.json``; the table is
written to the section ``## ML-DFT observables vs QE`` of docs/benchmarks.md (only that section is touched).

    .venv/bin/python bench/validate_observables.py --cells 4            # ~1 min on 1 core
    .venv/bin/python bench/validate_observables.py --cells 32 --ranks 2  # ~30-60 min
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

from alml.data.grids import LdosFile
from alml.dft.ldos import LdosSettings, compute_ldos
from alml.dft.ppx import PpProfile
from alml.dft.pseudo import pseudopotential
from alml.dft.settings import DFTSettings, PwProfile
from alml.io import atomic_write_json, atomic_write_text
from alml.surrogate.total_energy import energies_from_ldos

SECTION = "## ML-DFT observables vs QE"
TERMS = ("one_electron", "hartree", "xc", "ewald", "smearing_minus_ts")


def cell(n_atoms: int, a: float, rattle: float, seed: int = 0):  # noqa: ANN201
    reps = {4: 1, 32: 2, 108: 3}[n_atoms]
    atoms = bulk("Al", "fcc", a=a, cubic=True).repeat(reps)
    if rattle > 0:
        atoms.rattle(stdev=rattle, seed=seed)
    return atoms


def run_one(n_atoms: int, args: argparse.Namespace) -> dict:
    atoms = cell(n_atoms, args.a, args.rattle)
    ldos_settings = LdosSettings(
        emin=args.emin, emax=args.emax, spacing=args.spacing, broadening=args.broadening, kernel=args.kernel
    )
    dft = DFTSettings(forces=False, ecutwfc=args.ecutwfc)
    t0 = time.perf_counter()
    path = compute_ldos(
        atoms, args.temperature, dft, ldos_settings, root=args.root,
        pw_profile=PwProfile(ranks=args.ranks, timeout=None), pp_profile=PpProfile(ranks=args.ranks, timeout=None),
    )
    t_dft = time.perf_counter() - t0
    with LdosFile(path) as f:
        ld = f.read(np.float64)
        lad, ref, temp, nel, ecut, shape = f.ladder, f.reference, f.temperature, f.n_electrons, f.ecutrho, f.shape
        prov = f.provenance
    row: dict = {
        "n_atoms": n_atoms, "grid": list(shape), "n_energies": lad.n, "kernel": lad.kernel,
        "broadening": lad.broadening, "spacing": lad.spacing, "emin": lad.emin, "emax": lad.emax,
        "temperature": temp, "ecutwfc": args.ecutwfc, "rattle": args.rattle, "file": str(path),
        "dft_job": prov.get("dft_job"), "wall_dft_pp_s": t_dft, "host": platform.node(),
        "qe": {"fermi_level": ref.fermi_level, "band_energy": ref.band_energy, "free_energy": ref.free_energy,
               **ref.terms},
        "n_kpoints": None if ref.k_weights is None else int(ref.k_weights.size),
    }
    for name, method in (("alml", "kernel"), ("naive", "trapezoid")):
        t1 = time.perf_counter()
        obs, terms = energies_from_ldos(ld, lad, atoms, temp, nel, {"Al": pseudopotential("Al")}, ecut, method)
        row[name] = {"fermi_level": obs.fermi_level, "band_energy": obs.band_energy,
                       "free_energy": terms.free_energy, "wall_s": time.perf_counter() - t1,
                       **{k: float(getattr(terms, k)) for k in TERMS}}
    return row


def table(results: dict) -> str:
    lines = [
        SECTION,
        "",
        "Fed QE's own LDOS (pp.x, plot_num 3), alml's observables (`alml.surrogate.observables`, kernel-aware",
        "weights) and Harris–Foulkes total energy (`alml.surrogate.total_energy`: FFT Hartree, libxc PBE via",
        "PySCF, Ewald, NLCC core charge) against QE's own numbers. fcc Al, a = 4.05 Å, 298 K (Fermi–Dirac",
        "smearing at k_B T), TM norm-conserving PBE pseudopotential, ecutwfc 40 Ry, k-spacing 0.13/Å.",
        "QE's band energy is Σ w f ε from its XML. Targets: Fermi level within 10 meV, band and total energy",
        "within 1 meV/atom, each term as pw.x prints it. \"naive\" = trapezoid rule on the broadened ladder.",
        "Produced by `bench/validate_observables.py`.",
        "",
        "Reading. With kernel-aware weights every quantity is within 0.15 meV/atom of QE on the symmetric",
        "cells, on either 0.1 eV ladder, while the naive trapezoid rule is off by ~5 meV/atom in band and total",
        "energy. On the rattled (symmetry-free, 868 k-points) cell a 0.1 eV ladder leaves 0.5-0.8 meV/atom in",
        "the hartree and one-electron terms: a 0.1 eV ladder cannot resolve a 26 meV Fermi function, the",
        "electron count at QE's μ is off by 1.4e-3 and the density by 2e-4 (rms, relative). The default 0.05 eV",
        "ladder (FD σ 0.035 eV; 271 energies, as many as MALA's 0.1 eV over 25 eV) brings every term within",
        "0.06 meV/atom there. Fed pw.x's own density, hartree and ewald agree to 1e-4 meV and xc to",
        "0.02 meV/atom (libxc vs QE's PBE): tests/test_total_energy.py. The perfect 32-atom supercell at 6³ k",
        "samples the same states as the 4-atom cell at 12³ k, hence the same per-atom numbers. The Gaussian",
        "ladder needs an nscf with Gaussian smearing; the Fermi–Dirac ones use the SCF's own smearing function.",
        "Wall times are on a shared 2-core machine under load from other jobs.",
        "",
        "| cell | k-points | ladder (σ / spacing) | energies | Δμ (meV) | ΔE_b (meV/atom) | ΔF (meV/atom) "
        "| largest Δ of a term (meV/atom) | naive ΔF (meV/atom) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(results, key=lambda k: (results[k]["n_atoms"], k)):
        r = results[key]
        n = r["n_atoms"]
        al, qe, nv = r["alml"], r["qe"], r["naive"]
        worst = max(abs(al[t] - qe[t]) for t in TERMS) * 1e3 / n
        lines.append(
            f"| {n}{' rattled' if r['rattle'] else ''} | {r['n_kpoints']} | {r['kernel']} {r['broadening']:g} / "
            f"{r['spacing']:g} eV | {r['n_energies']} | {1e3 * (al['fermi_level'] - qe['fermi_level']):+.3f} | "
            f"{1e3 * (al['band_energy'] - qe['band_energy']) / n:+.3f} | "
            f"{1e3 * (al['free_energy'] - qe['free_energy']) / n:+.3f} | {worst:.3f} | "
            f"{1e3 * (nv['free_energy'] - qe['free_energy']) / n:+.3f} |"
        )
    lines.append("")
    for key in sorted(results, key=lambda k: (results[k]["n_atoms"], k)):
        r = results[key]
        n = r["n_atoms"]
        lines += [
            f"### {n} atoms{' rattled ' + str(r['rattle']) + ' Å' if r['rattle'] else ''}, "
            f"{r['n_kpoints']} k-points, grid {'x'.join(map(str, r['grid']))}, {r['n_energies']} energies "
            f"{r['emin']:.2f} … {r['emax']:.2f} eV, {r['kernel']} kernel σ = {r['broadening']} eV, "
            f"spacing {r['spacing']:.3f} eV",
            "",
            "| quantity | QE (eV) | alml (eV) | alml − QE (meV/atom) | naive − QE (meV/atom) |",
            "|---|---|---|---|---|",
        ]
        for q in ("fermi_level", "band_energy", *TERMS, "free_energy"):
            qe, al, nv = r["qe"][q], r["alml"][q], r["naive"][q]
            per = 1.0 if q == "fermi_level" else n
            unit = " (Δ in meV, not per atom)" if q == "fermi_level" else ""
            lines.append(
                f"| {q.replace('_', ' ')}{unit} | {qe:.6f} | {al:.6f} | {1e3 * (al - qe) / per:+.3f} | "
                f"{1e3 * (nv - qe) / per:+.3f} |"
            )
        lines += ["", f"pw.x + nscf + pp.x + conversion: {r['wall_dft_pp_s']:.0f} s; observables + energy "
                  f"{r['alml']['wall_s']:.1f} s ({r['host']}).", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_section(md: Path, text: str) -> None:
    old = md.read_text() if md.is_file() else "# Benchmarks\n"
    if SECTION in old:
        head, rest = old.split(SECTION, 1)
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1 :] if nxt >= 0 else ""
        new = head + text + ("\n" + tail if tail else "")
    else:
        new = old.rstrip() + "\n\n" + text
    atomic_write_text(md, new)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, nargs="+", default=[4])
    p.add_argument("--temperature", type=float, default=298.0)
    p.add_argument("--a", type=float, default=4.05)
    p.add_argument("--rattle", type=float, default=0.0, help="Å, Gaussian displacement of the atoms")
    p.add_argument("--ecutwfc", type=float, default=40.0)
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--kernel", choices=["scf", "gaussian"], default="scf")
    p.add_argument("--spacing", type=float, default=None, help="eV; default LdosSettings' (0.05)")
    p.add_argument("--broadening", type=float, default=None)
    p.add_argument("--emin", type=float, default=-12.0)
    p.add_argument("--emax", type=float, default=1.5)
    p.add_argument("--root", default="runs/validate_observables")
    p.add_argument("--md", default="docs/benchmarks.md")
    args = p.parse_args()
    if args.spacing is None:
        args.spacing = 0.1 if args.kernel == "gaussian" else LdosSettings().spacing
    if args.broadening is None:
        args.broadening = round((0.7 if args.kernel == "scf" else 2.0) * args.spacing, 6)
    store = Path(args.root) / "results.json"
    results = json.loads(store.read_text()) if store.is_file() else {}
    for n in args.cells:
        key = f"{n}-{args.kernel}-{args.spacing}-{args.broadening}-{args.rattle}"
        row = run_one(n, args)
        if row["wall_dft_pp_s"] < 5 and key in results:  # the LDOS file was reused: keep the measured time
            row["wall_dft_pp_s"] = results[key]["wall_dft_pp_s"]
        results[key] = row
        atomic_write_json(store, results)
        r = results[key]
        print(f"{n} atoms: dmu {1e3 * (r['alml']['fermi_level'] - r['qe']['fermi_level']):+.3f} meV, "
              f"dEb {1e3 * (r['alml']['band_energy'] - r['qe']['band_energy']) / n:+.4f} meV/atom, "
              f"dF {1e3 * (r['alml']['free_energy'] - r['qe']['free_energy']) / n:+.4f} meV/atom")
    write_section(Path(args.md), table(results))


if __name__ == "__main__":
    main()
