"""Writing a :class:`~alml.surrogate.predict.Prediction`: JSON scalars, the DOS as CSV, the density as a cube.

Files in the output folder, each written atomically (temporary file, then rename):

- ``prediction.json``: every scalar (:func:`prediction_summary`): energies in eV with their committee std and
  the members' values, and per atom in meV/atom; Fermi level in eV; grid, electron count, timings (s), memory.
- ``dos.csv``: ``energy_eV, dos_mean, dos_std, dos_member_0, ...``: DOS in states/eV (whole cell).
- ``density.cube``: the committee-mean electron density on the FFT grid, Gaussian cube format as ASE writes
  it (positions and voxel vectors in Bohr, per the format) but with values in electrons/Å³ (stated on the
  cube's first line), so ``ase.io.cube.read_cube`` gives back exactly what ``Prediction.density`` held.

The LDOS itself is never held in memory; :func:`~alml.surrogate.predict.predict` streams it to ``ldos.h5``
(:func:`alml.data.grids.write_ldos_h5`) when ``PredictConfig.write_ldos`` is set.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from alml.io import atomic_write, atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from alml.surrogate.predict import Estimate, Prediction

PREDICTION_JSON = "prediction.json"
DOS_CSV = "dos.csv"
DENSITY_CUBE = "density.cube"
CUBE_COMMENT = "alml ML-DFT predicted electron density (committee mean); values in electrons/Angstrom^3"


def _estimate(e: Estimate, n_atoms: int | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"eV": e.value, "std_eV": e.std, "members_eV": list(e.members)}
    if n_atoms:
        d["meV_per_atom"] = 1000.0 * e.value / n_atoms
        d["std_meV_per_atom"] = 1000.0 * e.std / n_atoms
    return d


def prediction_summary(pred: Prediction) -> dict[str, Any]:
    """All scalars of a prediction as a JSON-ready dict (eV, meV/atom, K, Å³, s, MB)."""
    return {
        "units": "energies eV (and meV/atom); std = committee spread (ddof=1); value = of the committee-mean LDOS",
        "n_atoms": pred.n_atoms,
        "symbols": pred.atoms.get_chemical_formula(),
        "n_members": pred.n_members,
        "n_electrons": pred.n_electrons,
        "density_electrons": pred.density_electrons,
        "grid_shape": list(pred.grid_shape),
        "grid_points": pred.grid_points,
        "volume_A3": pred.volume,
        "temperature_K": pred.temperature,
        "ecutrho_eV": pred.ecutrho,
        "method": pred.method,
        "fermi_level": {"eV": pred.fermi_level.value, "std_eV": pred.fermi_level.std,
                        "members_eV": list(pred.fermi_level.members)},
        "energies": {k: _estimate(v, pred.n_atoms) for k, v in pred.terms.items()},
        "ladder": {"emin_eV": pred.ladder.emin, "spacing_eV": pred.ladder.spacing, "n": pred.ladder.n,
                   "broadening_eV": pred.ladder.broadening, "kernel": pred.ladder.kernel},
        "timings_s": dict(pred.timings),
        "grid_points_per_s": pred.grid_points / pred.timings["total"] if pred.timings.get("total") else None,
        "peak_rss_mb": pred.peak_rss_mb,
        "peak_rss_children_mb": pred.peak_rss_children_mb,
        "model": pred.model_path,
        "warnings": list(pred.warnings),
    }


def dos_csv(pred: Prediction) -> str:
    """The DOS table as CSV text (energies eV, DOS states/eV)."""
    cols = [pred.energies, pred.dos, pred.dos_std, *pred.dos_members]
    header = ["energy_eV", "dos_mean", "dos_std", *(f"dos_member_{k}" for k in range(len(pred.dos_members)))]
    buf = io.StringIO()
    np.savetxt(buf, np.column_stack(cols), delimiter=",", header=",".join(header), comments="", fmt="%.12g")
    return buf.getvalue()


def write_density_cube(path: str | Path, atoms: Any, density: np.ndarray) -> Path:
    """Write ``density`` (nx, ny, nz) in electrons/Å³ on the cell's grid as a cube file (atomic)."""
    import ase.io

    path = Path(path)
    atomic_write(path, lambda tmp: ase.io.write(tmp, atoms, format="cube", data=density, comment=CUBE_COMMENT))
    return path


def write_prediction(pred: Prediction, out_dir: str | Path, density: bool = True) -> dict[str, Path]:
    """Write ``prediction.json``, ``dos.csv`` and (if ``density`` and the prediction kept it) ``density.cube``
    into ``out_dir``; return the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"dos": out / DOS_CSV}
    atomic_write_text(written["dos"], dos_csv(pred))
    if density and pred.density is not None:
        written["density"] = write_density_cube(out / DENSITY_CUBE, pred.atoms, pred.density)
    written["prediction"] = out / PREDICTION_JSON
    atomic_write_json(written["prediction"], prediction_summary(pred))  # last: its presence marks a full set
    return written
