"""Test a trained LDOS committee on held-out snapshots, in physics units.

For every snapshot (an alml snapshot folder: ``ldos.h5`` + ``descriptors.h5``) the committee predicts the LDOS on the
whole grid; the committee-mean LDOS goes through :func:`alml.surrogate.total_energy.energies_from_ldos` (Fermi level,
band energy, density, Harris–Foulkes free energy) and is compared with a reference:

- **qe**: QE's own values stored in the LDOS file's ``qe`` group (Fermi level, band energy Σ w f ε, free energy
  "! total energy"); so the error includes that of the LDOS → observables route (< 0.1 meV/atom on QE's own LDOS,
  docs/benchmarks.md);
- **true-ldos**: where QE's value is missing (no ``qe`` group, or a NaN band energy from an output without
  eigenvalues), the same observable computed from the snapshot's true LDOS. Each row says which it used.

The density reference is always the true LDOS's density (QE's is not stored). Definitions
(:mod:`alml.surrogate.metrics`): energy errors ``(E_pred − E_ref)/N_atoms`` in meV/atom and Fermi-level errors in
meV, both signed; density error ``100 · ∫|n_pred − n_true| dr / ∫ n_true dr`` in %. Committee spreads: the std (ddof=1)
over members of each member's observable (meV/atom, meV), and for the density ``100 · ∫ σ_n dr / ∫ n_true dr``.

Memory: one snapshot's descriptors and M + 1 LDOS arrays at a time (no streaming yet).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from alml.data.grids import LdosMeta, open_ldos_h5
from alml.io import atomic_write_json, atomic_write_text
from alml.surrogate.metrics import density_error_percent, density_spread_percent, mev_per_atom
from alml.surrogate.observables import LdosObservables, dos, observables
from alml.surrogate.snapshots import DESCRIPTORS_FILE, LDOS_FILE

ERRORS = (
    "band_energy_error_mev_per_atom",
    "total_energy_error_mev_per_atom",
    "density_error_percent",
    "fermi_level_error_mev",
)
DEFINITIONS = {
    "band_energy_error_mev_per_atom": "1000 (E_b,pred - E_b,ref) / N_atoms, E_b of the committee-mean LDOS",
    "total_energy_error_mev_per_atom": "1000 (F_pred - F_ref) / N_atoms, F the Harris-Foulkes free energy",
    "density_error_percent": "100 * integral |n_pred - n_true| dr / integral n_true dr, n_true from the true LDOS",
    "fermi_level_error_mev": "1000 (mu_pred - mu_ref)",
    "*_std_*": "std (ddof=1) over committee members of each member's value; density: 100 * int sigma_n / int n_true",
    "reference": "qe: QE's values from the LDOS file; true-ldos: the same observable of the true LDOS",
}


@dataclass(frozen=True)
class SnapshotErrors:
    """Errors of one held-out snapshot (signed; NaN where not computed) and the values they come from (eV)."""

    name: str
    n_atoms: int
    reference: str
    band_energy_error_mev_per_atom: float
    band_energy_std_mev_per_atom: float
    total_energy_error_mev_per_atom: float
    total_energy_std_mev_per_atom: float
    density_error_percent: float
    density_std_percent: float
    fermi_level_error_mev: float
    fermi_level_std_mev: float
    band_energy: float
    band_energy_ref: float
    total_energy: float
    total_energy_ref: float
    fermi_level: float
    fermi_level_ref: float


@dataclass(frozen=True)
class SnapshotCurves:
    """What the plots need: energies (n_e,) eV, DOS of the truth and the committee (mean, std) in 1/eV,
    Fermi levels (eV), densities (nx, ny, nz) in 1/Å³ of the truth and the committee-mean LDOS."""

    energies: np.ndarray
    dos_true: np.ndarray
    dos_pred: np.ndarray
    dos_std: np.ndarray
    fermi_level_true: float
    fermi_level_pred: float
    density_true: np.ndarray = field(repr=False)
    density_pred: np.ndarray = field(repr=False)


@dataclass
class Evaluation:
    """Per-snapshot rows, the summary (MAE and max |error| of each error, mean of each std) and the curves."""

    rows: list[SnapshotErrors]
    summary: dict[str, float]
    curves: list[SnapshotCurves] = field(default_factory=list, repr=False)


def _nan_std(values: Sequence[float], scale: float = 1.0) -> float:
    v = np.asarray(values, dtype=float)
    return float(scale * v.std(ddof=1)) if len(v) > 1 else 0.0


def _observe(ldos: np.ndarray, meta: LdosMeta, pseudos: dict[str, Any] | None) -> tuple[LdosObservables, float]:
    """Observables of an LDOS (nx, ny, nz, n_e) and its free energy (eV; NaN without pseudopotentials)."""
    if pseudos is None:
        obs = observables(ldos, meta.ladder, meta.atoms.get_volume(), meta.n_electrons, meta.temperature)
        return obs, float("nan")
    from alml.surrogate.total_energy import energies_from_ldos

    obs, terms = energies_from_ldos(
        ldos, meta.ladder, meta.atoms, meta.temperature, meta.n_electrons, pseudos, meta.ecutrho
    )
    return obs, float(terms.free_energy)


def _try_observe(ldos: np.ndarray, meta: LdosMeta, pseudos: dict[str, Any] | None) -> tuple[Any, float]:
    try:
        return _observe(ldos, meta, pseudos)
    except (ValueError, RuntimeError, ArithmeticError):  # e.g. no Fermi level in the ladder
        return None, float("nan")


def snapshot_errors(
    members: Iterable[np.ndarray],
    truth: np.ndarray,
    meta: LdosMeta,
    name: str = "",
    pseudopotentials: dict[str, Any] | None = None,
) -> tuple[SnapshotErrors, SnapshotCurves]:
    """Errors of member LDOS predictions ``members`` (M, nx, ny, nz, n_e), or an iterable of M arrays (nx, ny, nz,
    n_e), against the true LDOS ``truth`` of a snapshot described by ``meta``; the committee's prediction is the
    members' mean. Members are consumed one at a time, so an iterable holds three LDOS arrays in memory (the truth,
    the running sum, one member), not M + 1. Without ``pseudopotentials`` (element -> UPF path or PseudoData) the total
    energy is not evaluated (NaN)."""
    truth = np.asarray(truth, dtype=np.float64)
    n = len(meta.atoms)
    volume = meta.atoms.get_volume()
    true_obs, true_f = _observe(truth, meta, pseudopotentials)
    total: np.ndarray | None = None
    per: list[tuple[Any, float]] = []
    member_dos: list[np.ndarray] = []
    for member in members:
        member = np.asarray(member, dtype=np.float64)
        if member.shape != truth.shape:
            raise ValueError(f"predictions {member.shape} and truth {truth.shape} differ in shape")
        per.append(_try_observe(member, meta, pseudopotentials))
        member_dos.append(dos(member, volume))
        total = member.copy() if total is None else np.add(total, member, out=total)
        del member
    if total is None:
        raise ValueError("snapshot_errors needs at least one member prediction")
    if len(per) == 1:
        mean_obs, mean_f = per[0]
    else:
        total /= len(per)  # in place: the committee mean, without a fourth array
        mean_obs, mean_f = _try_observe(total, meta, pseudopotentials)
    del total
    nan = float("nan")

    ref = meta.reference
    used: list[str] = []

    def reference(qe_value: float | None, true_value: float, what: str) -> float:
        if ref is not None and qe_value is not None and math.isfinite(qe_value):
            return float(qe_value)
        if ref is not None:
            used.append(what)
        return float(true_value)

    eb_ref = reference(ref.band_energy if ref else None, true_obs.band_energy, "band energy")
    mu_ref = reference(ref.fermi_level if ref else None, true_obs.fermi_level, "Fermi level")
    f_ref = reference(ref.free_energy if ref and pseudopotentials is not None else None, true_f, "total energy")
    label = "true-ldos" if ref is None else "qe" + (f" ({', '.join(used)} from true-ldos)" if used else "")

    eb = mean_obs.band_energy if mean_obs else nan
    mu = mean_obs.fermi_level if mean_obs else nan
    dens = mean_obs.density if mean_obs else np.full(truth.shape[:-1], nan)
    member_dens = [o.density if o else np.full(truth.shape[:-1], nan) for o, _ in per]
    row = SnapshotErrors(
        name=name,
        n_atoms=n,
        reference=label,
        band_energy_error_mev_per_atom=mev_per_atom(eb - eb_ref, n),
        band_energy_std_mev_per_atom=_nan_std([o.band_energy if o else nan for o, _ in per], 1000.0 / n),
        total_energy_error_mev_per_atom=mev_per_atom(mean_f - f_ref, n),
        total_energy_std_mev_per_atom=_nan_std([f for _, f in per], 1000.0 / n),
        density_error_percent=density_error_percent(dens, true_obs.density),
        density_std_percent=density_spread_percent(np.stack(member_dens), true_obs.density),
        fermi_level_error_mev=1000.0 * (mu - mu_ref),
        fermi_level_std_mev=_nan_std([o.fermi_level if o else nan for o, _ in per], 1000.0),
        band_energy=float(eb),
        band_energy_ref=eb_ref,
        total_energy=float(mean_f),
        total_energy_ref=f_ref,
        fermi_level=float(mu),
        fermi_level_ref=mu_ref,
    )
    dos_members = np.stack(member_dos)
    curves = SnapshotCurves(
        energies=meta.ladder.energies, dos_true=true_obs.dos, dos_pred=dos_members.mean(axis=0),
        dos_std=dos_members.std(axis=0, ddof=1) if len(per) > 1 else np.zeros(meta.ladder.n),
        fermi_level_true=float(true_obs.fermi_level), fermi_level_pred=float(mu),
        density_true=np.asarray(true_obs.density), density_pred=np.asarray(dens),
    )
    return row, curves


def summarize(rows: Sequence[SnapshotErrors]) -> dict[str, float]:
    """``<error>_mae`` and ``<error>_max`` (of |error|, NaNs skipped) and ``<std>_mean`` over the rows."""
    out: dict[str, float] = {"snapshots": float(len(rows))}
    for f in fields(SnapshotErrors):
        if f.name.endswith(("_mev_per_atom", "_percent", "_mev")):
            v = np.abs(np.array([getattr(r, f.name) for r in rows], dtype=float))
            ok = v[np.isfinite(v)]
            if "_std_" in f.name:
                out[f"{f.name}_mean"] = float(ok.mean()) if ok.size else float("nan")
            else:
                out[f"{f.name}_mae"] = float(ok.mean()) if ok.size else float("nan")
                out[f"{f.name}_max"] = float(ok.max()) if ok.size else float("nan")
    return out


def _read_descriptors(path: Path) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        return f["descriptors"][...]


def evaluate_model(
    model: Any,
    snapshots: Sequence[str | Path],
    out: str | Path | None = None,
    pseudopotentials: dict[str, Any] | None = None,
    total_energy: bool = True,
    plots: bool = True,
) -> Evaluation:
    """Evaluate ``model`` (an :class:`~alml.surrogate.model.LdosModel` or its folder) on held-out snapshot folders.

    ``pseudopotentials``: element -> UPF path (or PseudoData) for the total energy; by default alml's own
    (:func:`alml.dft.pseudo.pseudopotential`, generated by ld1.x once); ``total_energy=False`` skips it. With ``out``,
    writes ``evaluation.json`` (rows, summary, definitions), ``evaluation.csv`` and, with ``plots``, PNG figures.
    """
    from alml.surrogate.model import iter_member_predictions, load_ldos_model

    m = model if not isinstance(model, (str, Path)) else load_ldos_model(model)
    rows, curves = [], []
    for s in snapshots:
        s = Path(s)
        with open_ldos_h5(s / LDOS_FILE) as f:  # float64 straight away: one copy of the truth, not two
            truth, meta = f.read(np.float64), f.meta()
        if meta.ladder.key() != m.ladder.key():
            raise ValueError(f"{s}: energy ladder {meta.ladder.key()} differs from the model's {m.ladder.key()}")
        pseudos = None
        if total_energy:
            pseudos = pseudopotentials or _default_pseudos(meta)
        pred = iter_member_predictions(m, _read_descriptors(s / DESCRIPTORS_FILE), meta.atoms)
        row, curve = snapshot_errors(pred, truth, meta, s.name, pseudos)
        del truth
        rows.append(row)
        curves.append(curve)
    result = Evaluation(rows, summarize(rows), curves)
    if out is not None:
        write_evaluation(result, Path(out), plots)
    return result


def _default_pseudos(meta: LdosMeta) -> dict[str, Any]:
    from alml.dft.pseudo import pseudopotential

    return {el: pseudopotential(el) for el in sorted(set(meta.atoms.get_chemical_symbols()))}


def rows_csv(rows: Sequence[SnapshotErrors]) -> str:
    """The rows as CSV text (one header line)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[f.name for f in fields(SnapshotErrors)], lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(asdict(r))
    return buf.getvalue()


def write_evaluation(result: Evaluation, out: Path, plots: bool = True) -> None:
    """``evaluation.json``, ``evaluation.csv`` and (with ``plots``) ``errors.png``, ``dos_<name>.png``,
    ``density_<name>.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {"rows": [asdict(r) for r in result.rows], "summary": result.summary, "definitions": DEFINITIONS}
    atomic_write_json(out / "evaluation.json", payload)
    atomic_write_text(out / "evaluation.csv", rows_csv(result.rows))
    if not plots:
        return
    import matplotlib.pyplot as plt

    from alml.plot.surrogate import density_slices_figure, dos_figure, snapshot_errors_figure

    figs = {"errors.png": snapshot_errors_figure(
        [r.name for r in result.rows],
        [r.band_energy_error_mev_per_atom for r in result.rows], [r.band_energy_std_mev_per_atom for r in result.rows],
        [r.total_energy_error_mev_per_atom for r in result.rows],
        [r.total_energy_std_mev_per_atom for r in result.rows],
    )}
    for r, c in zip(result.rows, result.curves):
        figs[f"dos_{r.name}.png"] = dos_figure(
            c.energies, c.dos_true, c.dos_pred, c.dos_std, c.fermi_level_true, title=r.name
        )
        figs[f"density_{r.name}.png"] = density_slices_figure(c.density_pred, c.density_true, title=r.name)
    for fname, fig in figs.items():
        fig.savefig(out / fname, dpi=120)
        plt.close(fig)


__all__ = [
    "DEFINITIONS",
    "Evaluation",
    "SnapshotCurves",
    "SnapshotErrors",
    "evaluate_model",
    "rows_csv",
    "snapshot_errors",
    "summarize",
    "write_evaluation",
]
