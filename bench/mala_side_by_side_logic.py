"""The pure half of ``bench/bench_mala_side_by_side.py`` (no MALA, no files): how alml's LDOS model config maps to
MALA 1.4's ``Parameters``, which LDOS scaling MALA gets, when two accuracies count as equal, and the report's tables.
Tested in ``tests/test_bench_mala_side_by_side.py``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: alml activation -> torch.nn class name MALA instantiates
MALA_ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "linear": "Identity"}
#: accuracies count as comparable within this factor, or within this many meV/atom
EQUAL_RATIO, EQUAL_ABS_MEV = 1.5, 0.5


def mala_output_scaling(output_scaling: str, y_std: np.ndarray, requested: str = "auto") -> tuple[str, str]:
    """MALA's ``output_rescaling_type`` closest to alml's ``output_scaling``, and why.

    alml ``per-energy`` standardises each energy with its std floored at ``OUTPUT_STD_FLOOR`` x the largest
    (:func:`alml.surrogate.model.per_energy_std`); MALA's ``feature-wise-standard`` is the same without the floor,
    so it is used only when no energy's std is below the floor (else MALA would blow up those energies' scaled
    errors, or divide by zero), and MALA's documented LDOS choice ``minmax`` (one global min/max) otherwise.
    alml ``single`` (one global std, no shift) maps to MALA ``standard`` (one global mean and std).
    """
    from alml.surrogate.model import OUTPUT_STD_FLOOR

    if requested != "auto":
        return requested, f"set by --mala-output-scaling (alml: {output_scaling})"
    if output_scaling == "single":
        return "standard", "alml 'single' (one global std, no shift) ~ MALA 'standard' (one global mean and std)"
    small = np.asarray(y_std) < OUTPUT_STD_FLOOR * float(np.max(y_std))
    if not small.any():
        return "feature-wise-standard", "per-energy mean/std in both (no energy's std is below alml's floor)"
    return "minmax", (
        f"{int(small.sum())} of {small.size} energies have an LDOS std below {OUTPUT_STD_FLOOR:g} x the largest "
        "(empty energies, e.g. below the band bottom): MALA's feature-wise-standard has no floor and would scale "
        "them up without bound, so MALA uses its LDOS default, one global min-max; alml: per-energy with its floor"
    )


def mala_parameters(
    cfg: Any, n_in: int, n_out: int, mala_meta: dict[str, Any], output_scaling: str
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """MALA ``Parameters`` sections (``{section: {attribute: value}}``) for alml's :class:`LdosModelConfig` ``cfg``
    (``n_in`` descriptors, ``n_out`` energies; ``mala_meta``: the ``mala_parameters`` of an exported snapshot's
    info.json), and the notes on what MALA cannot match."""
    t = cfg.training
    notes = []
    if t.schedule == "cosine":
        notes.append("MALA 1.4 has no cosine schedule: MALA runs at a constant learning rate")
    if t.weight_decay:
        notes.append("weight decay: alml AdamW (decoupled), MALA Adam with L2 penalty (l2_regularization)")
    if t.grad_clip is not None:
        notes.append("gradient clipping: alml only (MALA has none)")
    if t.schedule == "plateau":
        notes.append(f"learning-rate floor lr_min = {t.lr_min:g}: alml only (MALA passes no min_lr)")
    notes.append("weights: MALA keeps the last epoch's, alml " + ("the last epoch's too" if t.keep == "last"
                                                                 else "the best validation epoch's"))
    if cfg.refit_output:
        notes.append("alml refits its output layer by least squares on the training points after training; MALA "
                     "has no such step")
    sections: dict[str, dict[str, Any]] = {"descriptors": {}, "targets": {}}
    for key, value in mala_meta.items():
        section, attr = key.split(".")
        sections[section][attr] = value
    sections["data"] = {"input_rescaling_type": "feature-wise-standard", "output_rescaling_type": output_scaling}
    sections["network"] = {
        "nn_type": "feed-forward", "layer_sizes": [n_in, *cfg.network.hidden, n_out],
        "layer_activations": MALA_ACTIVATIONS[cfg.network.activation], "layer_activations_include_output_layer": False,
    }
    sections["running"] = {
        "optimizer": "Adam", "learning_rate": t.lr, "l2_regularization": t.weight_decay,
        "max_number_epochs": t.epochs, "mini_batch_size": cfg.batch_size,
        "learning_rate_scheduler": "ReduceLROnPlateau" if t.schedule == "plateau" else None,
        "learning_rate_decay": t.plateau_factor, "learning_rate_patience": t.plateau_patience,
        "early_stopping_epochs": t.patience or 0, "early_stopping_threshold": t.min_delta,
        "use_shuffling_for_samplers": True,
        "validation_metric": "ldos" if cfg.monitor == "val_loss" else "band_energy",
    }
    return sections, notes


def mae(rows: list[dict[str, Any]], key: str) -> float:
    v = np.abs([r[key] for r in rows], dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def accuracy_note(mae_mala: float, mae_alml: float) -> str:
    """Whether two band-energy MAEs (meV/atom) are close enough to call the throughputs 'at equal accuracy'."""
    if not (math.isfinite(mae_mala) and math.isfinite(mae_alml)):
        return "accuracy not comparable: a band-energy MAE is missing"
    lo, hi = sorted((mae_mala, mae_alml))
    ratio = hi / lo if lo > 0 else math.inf
    if hi - lo <= EQUAL_ABS_MEV or ratio <= EQUAL_RATIO:
        return f"comparable accuracy: band-energy MAE MALA {mae_mala:.3g}, alml {mae_alml:.3g} meV/atom"
    better = "alml" if mae_alml < mae_mala else "MALA"
    return (f"NOT equal accuracy: band-energy MAE MALA {mae_mala:.3g} vs alml {mae_alml:.3g} meV/atom ({ratio:.1f}x, "
            f"{better} better): read the throughputs with that in mind")


def _f(v: Any, fmt: str = "+.3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def _schedule(t: dict[str, Any]) -> str:
    if t["schedule"] == "plateau":
        return f"plateau schedule: x{t['plateau_factor']:g} after {t['plateau_patience']} epochs without improvement"
    if t["schedule"] == "cosine":
        return "cosine schedule in alml; MALA, which has none, at a constant rate"
    return f"{t['schedule']} schedule"


def markdown(r: dict[str, Any]) -> str:
    ta, tm = r["training"]["alml"], r["training"]["mala"]
    lines = [
        "# alml vs MALA 1.4 side by side", "",
        f"Data: {len(r['snapshots']['train'])} training, 1 validation, {len(r['snapshots']['test'])} test "
        f"snapshots; network {r['network']}; {r['config']['training']['epochs']} epochs max, batch "
        f"{r['config']['batch_size']}, lr {r['config']['training']['lr']:g} ({_schedule(r['config']['training'])}); "
        f"MALA output scaling `{r['mala_output_scaling']}`. Training: "
        + ("both codes at the same time, each on its own core." if ta.get("trained_beside_mala")
           and tm.get("trained_beside_alml") else "one code after the other."), "",
        "| code | epochs run | s / epoch (mean) | training s (all) | weights kept |", "|---|---|---|---|---|",
        f"| alml | {ta['epochs']} | {ta['mean_epoch_s']:.2f} (physics validation {ta['physics_validation_s']:.2f}) "
        f"| {ta['train_s']:.1f} | {ta['weights']} (epoch {ta['best_epoch']}) |",
        f"| MALA | {tm['epochs']} | {tm['mean_epoch_s']:.2f} | {tm['train_s'] + tm['prepare_s']:.1f} "
        f"| {tm['weights']} |", "",
        "Test errors vs DFT (meV/atom for band energy, meV for the Fermi level; floor = that route's observables of "
        "the true LDOS):", "",
        "| snapshot | N | T (K) | ΔE_band MALA | ΔE_band alml | ΔE_band MALA net + alml obs | Δμ MALA | Δμ alml "
        "| floor band MALA / alml | ΔF total alml |", "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in r["test"]:
        lines.append(
            f"| {t['name']} | {t['n_atoms']} | {t['temperature']:g} | {_f(t['mala_band_mev_per_atom'])} | "
            f"{_f(t['alml_band_mev_per_atom'])} | {_f(t['mala_net_alml_obs_band_mev_per_atom'])} | "
            f"{_f(t['mala_fermi_mev'], '+.1f')} | {_f(t['alml_fermi_mev'], '+.1f')} | "
            f"{_f(t['mala_floor_band_mev_per_atom'])} / {_f(t['alml_floor_band_mev_per_atom'])} | "
            f"{_f(t['alml_total_mev_per_atom'])} |")
    s = r["summary"]
    lines += [f"| **MAE** | | | {s['mae_band_mala']:.3f} | {s['mae_band_alml']:.3f} | "
              f"{s['mae_band_mala_net_alml_obs']:.3f} | {s['mae_fermi_mala']:.1f} | {s['mae_fermi_alml']:.1f} | | "
              f"{_f(s['mae_total_alml'], '.3f')} |", "", s["accuracy"], "",
              "Prediction (s; end to end = descriptors + network + observables; alml's network counts both of its "
              "passes):", "",
              "| structure | atoms | grid | cores | code | descriptors | network | observables | end to end | "
              "points/s | process | test MAE band (meV/atom) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in r["throughput"]:
        err = s["mae_band_alml"] if t["code"] == "alml" else s["mae_band_mala"]
        lines.append(
            f"| {t['structure']} | {t['n_atoms']} | {'x'.join(map(str, t['grid']))} | {t['cores']} | {t['code']} | "
            f"{t['descriptors_s']:.2f} | {t['network_s']:.2f} | {t['observables_s']:.2f} | {t['end_to_end_s']:.2f} | "
            f"{t['points_per_s']:,.0f} | {t['process_s']:.1f} | {err:.3f} |")
    lines += ["", "Notes:", *[f"- {n}" for n in r["notes"]], ""]
    return "\n".join(lines)
