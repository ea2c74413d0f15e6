"""Report of bench/mldft_acceptance.py: the verdict against the issue's thresholds, the markdown tables and the
error plot, from the ``acceptance.json`` dictionary the run writes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

MILESTONE_MEV = 5.0
GOAL_MEV = 1.0


def _f(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:+.{digits}f}"


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Largest |band| and |total| energy error (meV/atom) over ``rows`` and the milestone/goal flags."""
    worst = max((max(abs(r["band_energy_error_mev_per_atom"]), abs(r["total_energy_error_mev_per_atom"]))
                 if math.isfinite(r["total_energy_error_mev_per_atom"]) else math.inf for r in rows), default=math.inf)
    return {"worst_energy_error_mev_per_atom": worst, f"milestone_{MILESTONE_MEV:g}_mev": worst <= MILESTONE_MEV,
            f"goal_{GOAL_MEV:g}_mev": worst <= GOAL_MEV}


def _kept(cfg: dict[str, Any]) -> str:
    """Which weights the training kept, in words (``training.keep``, ``refit_output``)."""
    keep = cfg["training"].get("keep", "best")
    words = "last epoch kept" if keep == "last" else "best validation epoch kept"
    return words + (", output layer refitted" if cfg.get("refit_output") else "")


def markdown(report: dict[str, Any]) -> str:
    head = ("| snapshot | condition | N | ΔE_band (meV/atom) | ΔF total (meV/atom) | density error (%) | Δμ (meV) "
            "| committee std band / total (meV/atom) | floor band / total (meV/atom) |")
    lines = [
        "# ML-DFT acceptance (issue #4)", "",
        f"Data: `{report['data']}`; model: `{report['model']}` ({report['model_config']['members']} members, hidden "
        f"{report['model_config']['network']['hidden']}, {report['model_config']['network']['activation']}); "
        f"trained on {len(report['train'])} snapshots, validation snapshot `{report['validation']}` "
        f"({_kept(report['model_config'])}).",
        "Errors: ML − pw.x, signed, committee-mean LDOS; density vs the true LDOS (training-size cells) or pw.x's "
        "SCF density (large cell). Floor: the true LDOS's own observables vs pw.x (no ML).", "", head,
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for cond, block in report["test"].items():
        for r in block["rows"]:
            lines.append(
                f"| {r['candidate']} | {cond} | {r['n_atoms']} | {_f(r['band_energy_error_mev_per_atom'])} | "
                f"{_f(r['total_energy_error_mev_per_atom'])} | {r['density_error_percent']:.3f} | "
                f"{_f(r['fermi_level_error_mev'], 1)} | {r['band_energy_std_mev_per_atom']:.3f} / "
                f"{r['total_energy_std_mev_per_atom']:.3f} | {_f(r['floor_band_mev_per_atom'])} / "
                f"{_f(r['floor_total_mev_per_atom'])} |")
    lg = report.get("large")
    if lg:
        lines.append(
            f"| {lg['candidate']} | large ({lg['temperature']:g} K) | {lg['n_atoms']} | "
            f"{_f(lg['band_energy_error_mev_per_atom'])} | {_f(lg['total_energy_error_mev_per_atom'])} | "
            f"{lg['density_error_percent']:.3f} | {_f(lg['fermi_level_error_mev'], 1)} | "
            f"{lg['band_energy_std_mev_per_atom']:.3f} / {lg['total_energy_std_mev_per_atom']:.3f} | n/a |")
    lines += ["", "| group | snapshots | MAE band | max band | MAE total | max total | MAE density (%) |",
              "|---|---|---|---|---|---|---|"]
    for cond, block in {**report["test"], **report["fit"]}.items():
        s = block["summary"]
        lines.append(
            f"| {cond} | {int(s['snapshots'])} | {s['band_energy_error_mev_per_atom_mae']:.3f} | "
            f"{s['band_energy_error_mev_per_atom_max']:.3f} | {s['total_energy_error_mev_per_atom_mae']:.3f} | "
            f"{s['total_energy_error_mev_per_atom_max']:.3f} | {s['density_error_percent_mae']:.3f} |")
    v = report["verdict"]
    lines += ["", f"Worst |energy error| over the test snapshots and the large cell: "
              f"**{v['worst_energy_error_mev_per_atom']:.3f} meV/atom** — milestone (≤ {MILESTONE_MEV:g}): "
              f"{'met' if v[f'milestone_{MILESTONE_MEV:g}_mev'] else 'not met'}; goal (≤ {GOAL_MEV:g}): "
              f"{'met' if v[f'goal_{GOAL_MEV:g}_mev'] else 'not met'}.",
              f"Wall time: training {report['timings_s']['train']:.0f} s (all members' epochs), evaluation "
              f"{report['timings_s']['evaluate']:.0f} s, large-cell prediction {report['timings_s']['large']:.0f} s.",
              ""]
    return "\n".join(lines)


def errors_plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    from alml.plot.surrogate import snapshot_errors_figure

    rows = [r for block in report["test"].values() for r in block["rows"]]
    if report.get("large"):
        rows.append(report["large"])
    fig = snapshot_errors_figure(
        [r["candidate"] for r in rows], [r["band_energy_error_mev_per_atom"] for r in rows],
        [r["band_energy_std_mev_per_atom"] for r in rows], [r["total_energy_error_mev_per_atom"] for r in rows],
        [r["total_energy_std_mev_per_atom"] for r in rows], title="ML − pw.x per test snapshot (bars: committee std)")
    ax = fig.axes[0]
    for y in (-MILESTONE_MEV, MILESTONE_MEV):
        ax.axhline(y, color="0.5", ls=":", lw=0.8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


