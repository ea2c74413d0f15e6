"""Electronic structure of new structures from a trained LDOS committee, in bounded memory, at any cell size.

:func:`predict` runs, for ``atoms`` (periodic, elements the model knows):

1. **Descriptors + DOS (pass 1).** The grid — QE's FFT grid for the training ``ecutrho``, i.e. the training
   grid spacing — is computed in interleaved blocks (:func:`alml.descriptors.iter_grid_blocks`: block (p, q, r)
   holds the points (p + sx·i', q + sy·j', r + sz·k'), each one LAMMPS call on the whole cell with no padding;
   at most ``max_points_per_chunk`` points per block, ``workers`` MPI ranks). Each block goes through every
   member's hidden layers (``network_dtype``) in batches of ``batch_points``; only the per-member sums of the
   last hidden layer are kept. The output layer is affine, so the DOS is its read-out of that sum
   (:class:`~alml.surrogate.passes.Readout`) and the LDOS is never formed. The block's descriptors are appended,
   flat, to a cache file.
2. **Fermi level, band energy, −TS** of every member's DOS and of the committee-mean DOS, from the electron
   count Σ Z_v of the pseudopotentials (:mod:`alml.surrogate.observables`, kernel-aware by default).
3. **Density (pass 2).** n(r) = Σ_j c_j(μ) d_j(r) needs μ, known only after pass 1, so the LDOS is needed
   twice. The descriptors of pass 1 are *cached* (``cache_dtype``, float32 by default like the training
   files, in a temporary HDF5 file in ``scratch``, else in the output folder, else the system's temp folder;
   deleted at the end) and pass 2 re-runs only the hidden layers: each density is the last hidden layer dotted
   with the read-out of the occupation weights. Both passes feed the network the cached values.
   Why cache rather than recompute: the bispectrum costs ~0.3 ms per grid point at 2J = 10 on one rank
   (measured at 4000 atoms), the network ~40 µs per pass (4 members of 400 × 400, float32, one thread). The cache is
   4·K bytes per point (0.36 kB at K = 91), far smaller than the LDOS of all members (M·n_e·8 bytes: 9 kB at
   M = 4, n_e = 270), which is never stored.
   The densities of every member and of the mean LDOS go to the same cache file, written back into the grid
   with strided assignment.
4. **Total energy** (Harris–Foulkes, :func:`alml.surrogate.total_energy.total_energy`: FFT Hartree, libxc
   xc with the NLCC core charge, Ewald) of the mean and of each member, one density in memory at a time;
   the core charge and the Ewald energy are computed once.

Every energy is an :class:`Estimate`: the value from the committee-mean LDOS and the spread (std, ddof=1)
over the members' own values. Memory: one descriptor block and one network batch in passes 1–2; the energy
stage holds a few full-grid float64 arrays and half-grid (rfft) complex ones, O(grid points), independent of
n_e and K (docs/benchmarks.md, "ML-DFT prediction memory at 4000 atoms").
Results do not depend on the chunking beyond floating-point summation order (~1e-14 relative).

Units: eV, Å, K; DOS in states/eV, density in electrons/Å³.
"""

from __future__ import annotations

import logging
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms
from pydantic import Field, PositiveInt

from alml.config import Config
from alml.data.grids import EnergyLadder
from alml.surrogate.inputs import extrapolation_warnings, global_values
from alml.surrogate.observables import Method
from alml.surrogate.passes import density_pass, dos_pass, energies, members_observables
from alml.surrogate.prediction_io import prediction_summary, write_prediction

log = logging.getLogger(__name__)

#: energy terms of :class:`alml.surrogate.total_energy.EnergyTerms`, in its order
TERMS: tuple[str, ...] = (
    "band_energy", "one_electron", "hartree", "xc", "ewald", "smearing_minus_ts", "free_energy", "energy",
)


class PredictConfig(Config):
    """How :func:`predict` computes and what it writes."""

    max_points_per_chunk: int | Literal["auto"] | None = Field(
        "auto",
        description="most grid points per descriptor block (an interleaved sub-grid, the fewest blocks that "
        "respect it); None: the whole grid in one go; auto: the fewest blocks that fit descriptor_memory_mb",
    )
    descriptor_memory_mb: float = Field(
        4096.0, gt=0, description="auto chunking: memory for one block's descriptors, LAMMPS's array included"
    )
    cache_dtype: Literal["float32", "float64"] = Field(
        "float32", description="descriptors as cached and as the network sees them (training files are float32)"
    )
    batch_points: int = Field(8192, ge=1, description="grid points per network batch")
    network_dtype: Literal["float32", "float64"] = Field(
        "float32", description="precision of the members' hidden layers (training runs in float32); the output "
        "layer and every sum are float64"
    )
    workers: int = Field(1, ge=1, description="MPI ranks for the descriptors")
    threads: int | None = Field(None, ge=1, description="torch threads (None: leave as set)")
    temperature: float | None = Field(
        None, gt=0, description="electronic temperature, K; None: atoms.info['temperature'], else the training one"
    )
    ecutrho: float | None = Field(None, gt=0, description="density cutoff, Ry; None: the training data's")
    grid_shape: tuple[PositiveInt, PositiveInt, PositiveInt] | None = Field(
        None, description="override the grid (else QE's FFT grid for ecutrho)"
    )
    method: Method = "kernel"
    pseudopotentials: dict[str, str] = Field(
        default_factory=dict, description="element -> UPF path; default the built-in (checked against training)"
    )
    write_density: bool = Field(True, description="write density.cube (with out=)")
    write_ldos: bool = Field(False, description="write the committee-mean LDOS to ldos.h5 (with out=)")
    ldos_dtype: Literal["float32", "float64"] = "float32"
    keep_density: bool = Field(True, description="return the mean density array in the Prediction")
    scratch: str | None = Field(None, description="folder for the temporary descriptor cache")


@dataclass(frozen=True)
class Estimate:
    """A committee estimate: ``value`` from the committee-mean LDOS, ``std`` (ddof=1) over ``members``."""

    value: float
    std: float
    members: tuple[float, ...]

    @classmethod
    def of(cls, value: float, members: np.ndarray | list[float]) -> Estimate:
        m = np.asarray(members, dtype=float)
        return cls(float(value), float(m.std(ddof=1)) if m.size > 1 else 0.0, tuple(float(v) for v in m))

    def __float__(self) -> float:
        return self.value


@dataclass
class Prediction:
    """What :func:`predict` returns. Energies in eV, DOS (n_e,) in states/eV on ``ladder.energies``."""

    atoms: Atoms = field(repr=False)
    ladder: EnergyLadder = field(repr=False)
    n_atoms: int
    n_members: int
    n_electrons: float
    grid_shape: tuple[int, int, int]
    volume: float  #: Å³
    temperature: float  #: K
    ecutrho: float | None  #: eV (G-sphere of the energy terms; None: the whole FFT grid)
    method: str
    dos: np.ndarray = field(repr=False)  #: DOS of the committee-mean LDOS = mean of the members' DOS
    dos_std: np.ndarray = field(repr=False)  #: std (ddof=1) over members
    dos_members: np.ndarray = field(repr=False)  #: (M, n_e)
    fermi_level: Estimate
    terms: dict[str, Estimate]  #: keys :data:`TERMS`
    density_electrons: float  #: ∫ n dr of the mean density (= n_electrons up to the quadrature)
    timings: dict[str, float]  #: seconds per stage: descriptors, network, observables, energy, io, total
    peak_rss_mb: float  #: this process's peak resident memory (getrusage), MB
    peak_rss_children_mb: float  #: largest child process's (MPI descriptor ranks), MB
    density: np.ndarray | None = field(default=None, repr=False)  #: (nx, ny, nz) 1/Å³, of the mean LDOS
    model_path: str | None = None
    #: where the structure lies outside what the model was trained on (e.g. a global input out of range)
    warnings: list[str] = field(default_factory=list)

    @property
    def energies(self) -> np.ndarray:
        """The LDOS energy ladder (n_e,), eV."""
        return self.ladder.energies

    @property
    def band_energy(self) -> Estimate:
        return self.terms["band_energy"]

    @property
    def entropy_term(self) -> Estimate:
        """−TS, eV."""
        return self.terms["smearing_minus_ts"]

    @property
    def free_energy(self) -> Estimate:
        """F = E − TS (pw.x's "! total energy"), eV."""
        return self.terms["free_energy"]

    @property
    def energy(self) -> Estimate:
        """E = F + TS, eV."""
        return self.terms["energy"]

    @property
    def grid_points(self) -> int:
        return int(np.prod(self.grid_shape))


@dataclass(frozen=True)
class _Context:
    """Everything resolved before the passes."""

    settings: Any  # BispectrumSettings
    shape: tuple[int, int, int]
    temperature: float
    ecut: float | None  # eV
    pseudos: dict[str, Any]  # element -> PseudoData
    n_electrons: float
    globals: np.ndarray  # (G,) the cell's global inputs (alml.surrogate.inputs), appended to every point's descriptors
    warnings: tuple[str, ...] = ()  # extrapolation beyond the training data


def predict(
    atoms: Atoms,
    model: Any,
    config: PredictConfig | None = None,
    out: str | Path | None = None,
    progress: bool = False,
) -> Prediction:
    """Predict DOS, Fermi level, density and energies of ``atoms`` with an LDOS committee (model or its folder).

    With ``out``, writes :func:`write_prediction`'s files there, and ``ldos.h5`` if ``config.write_ldos``.
    ``progress`` shows a progress bar over blocks and energy evaluations.
    """
    import h5py

    from alml.surrogate.model import LdosModel, load_ldos_model

    config = config or PredictConfig()
    m = with_network_dtype(model if isinstance(model, LdosModel) else load_ldos_model(model), config.network_dtype)
    if config.threads is not None:
        import torch

        torch.set_num_threads(config.threads)
    t_start = time.perf_counter()
    timings = dict.fromkeys(("descriptors", "network", "observables", "energy", "io"), 0.0)
    ctx = _context(atoms, m, config)
    scratch = config.scratch or (str(out) if out is not None else None)
    if scratch is not None:
        Path(scratch).mkdir(parents=True, exist_ok=True)
    strides = block_strides(ctx.settings, ctx.shape, config)
    n_blocks = int(np.prod(strides))
    with (
        tempfile.TemporaryDirectory(dir=scratch, prefix=".alml-predict-") as tmp,
        h5py.File(Path(tmp) / "cache.h5", "w") as cache,
        _progress(progress, 2 * n_blocks + m.n_members + 1) as advance,
    ):
        dos_members = dos_pass(atoms, m, ctx, config, strides, cache, timings, advance)
        t0 = time.perf_counter()
        obs = members_observables(dos_members, m.ladder, ctx, config.method)
        timings["observables"] += time.perf_counter() - t0

        def second_pass(ldos_ds: Any = None) -> None:
            density_pass(m, ctx, config, strides, obs.weights, cache, timings, advance, ldos_ds)

        if out is not None and config.write_ldos:
            _write_ldos(Path(out) / "ldos.h5", atoms, m, ctx, config, second_pass)
        else:
            second_pass()
        terms, n_int, density = energies(atoms, ctx, obs, cache, config.keep_density, timings, advance)
    timings["total"] = time.perf_counter() - t_start
    mean_dos = dos_members.mean(axis=0)
    pred = Prediction(
        atoms=atoms.copy(), ladder=m.ladder, n_atoms=len(atoms), n_members=m.n_members,
        n_electrons=ctx.n_electrons, grid_shape=ctx.shape, volume=float(abs(atoms.cell.volume)),
        temperature=ctx.temperature, ecutrho=ctx.ecut, method=config.method, dos=mean_dos,
        dos_std=dos_members.std(axis=0, ddof=1) if m.n_members > 1 else np.zeros_like(mean_dos),
        dos_members=dos_members, fermi_level=Estimate.of(obs.mu[-1], obs.mu[:-1]),
        terms={k: Estimate.of(v[-1], v[:-1]) for k, v in terms.items()}, density_electrons=n_int,
        timings=timings, peak_rss_mb=_peak_rss(resource.RUSAGE_SELF),
        peak_rss_children_mb=_peak_rss(resource.RUSAGE_CHILDREN), density=density,
        model_path=None if m.path is None else str(m.path), warnings=list(ctx.warnings),
    )
    if out is not None:
        t0 = time.perf_counter()
        write_prediction(pred, out, density=config.write_density)
        pred.timings["io"] += time.perf_counter() - t0
    return pred


def with_network_dtype(model: Any, dtype: str) -> Any:
    """``model`` itself if its members are in ``dtype``, else a copy whose members are (the caller's stays as is)."""
    import copy
    import dataclasses

    import torch

    want = getattr(torch, dtype)
    if next(model.members.parameters()).dtype == want:
        return model
    return dataclasses.replace(model, members=copy.deepcopy(model.members).to(want))


def block_strides(settings: Any, shape: tuple[int, int, int], config: PredictConfig) -> tuple[int, int, int]:
    """Strides (sx, sy, sz) of the interleaved descriptor blocks (:func:`alml.descriptors.choose_strides`).

    ``auto`` takes the fewest blocks whose peak descriptor memory — LAMMPS's rows (K + 6 doubles per point), the
    block in ``cache_dtype`` and, with MPI ranks, their kept rows (:func:`~alml.descriptors.grid_blocks.
    block_bytes_per_point`) — fits ``descriptor_memory_mb``; an int caps the points per block; None: one block.
    """
    from alml.descriptors import choose_strides
    from alml.descriptors.grid_blocks import block_bytes_per_point

    cap = config.max_points_per_chunk
    if cap == "auto":
        per_point = block_bytes_per_point(settings.n_components, np.dtype(config.cache_dtype), config.workers)
        cap = max(1, int(config.descriptor_memory_mb * 2**20 // per_point))
    return choose_strides(shape, None if cap is None else int(cap), config.workers)


def _peak_rss(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux: kB


# --- resolving the model's training context ------------------------------------------------------


def training_data(model: Any) -> dict[str, Any]:
    """The model's record of its training snapshots (temperature, ecutrho, pseudopotentials, elements); for
    folders written before it was recorded, read from the training LDOS files if they still exist, else {}."""
    if model.training_data is not None:
        return dict(model.training_data)
    files = [f["ldos"] for f in model.provenance.get("training_files", []) if Path(f.get("ldos", "")).is_file()]
    if not files:
        return {}
    from alml.surrogate.snapshots import training_context

    return training_context([Path(files[0])])


def prediction_temperature(atoms: Atoms, requested: float | None, training: dict[str, Any]) -> float:
    """The electronic temperature (K) of a prediction: the requested one, else ``atoms.info['temperature']``,
    else the training temperature when the model was trained at a single one; refused when that is ambiguous."""
    if requested is not None:
        return float(requested)
    if atoms.info.get("temperature") is not None:
        return float(atoms.info["temperature"])
    temps = training.get("temperatures") or ([training["temperature"]] if training.get("temperature") else [])
    if len(temps) == 1:
        return float(temps[0])
    if not temps:
        raise ValueError("the model does not record its training temperature: pass the electronic temperature "
                         "(PredictConfig(temperature=K), or --temperature on the command line)")
    raise ValueError(
        f"the model was trained at several electronic temperatures ({', '.join(f'{t:g}' for t in temps)} K): "
        "say which one this structure is at (PredictConfig(temperature=K), --temperature, or "
        "atoms.info['temperature'])"
    )


def _context(atoms: Atoms, model: Any, config: PredictConfig) -> _Context:
    from alml.descriptors import BispectrumSettings, qe_fft_shape
    from alml.units import RYDBERG

    if not all(atoms.pbc) or abs(atoms.cell.volume) < 1e-9:
        raise ValueError(
            "prediction needs a periodic cell (pbc all True and a non-degenerate cell), like the DFT grid the "
            f"model learnt on; got pbc={atoms.pbc.tolist()}: set atoms.pbc = True and give the atoms a cell "
            "(for a molecule or surface, add vacuum with atoms.center(vacuum=...))"
        )
    if model.descriptor_settings is None:
        raise ValueError(
            "the model does not record its descriptor settings (model.json 'descriptors'), so its inputs cannot be "
            "computed: retrain it from snapshots whose descriptors.h5 records its settings"
        )
    settings = BispectrumSettings.model_validate(model.descriptor_settings)
    td = training_data(model)
    known = set(td.get("elements") or settings.symbols)
    unknown = sorted(set(atoms.get_chemical_symbols()) - known)
    if unknown:
        raise ValueError(
            f"the structure has element(s) {unknown} the model was not trained on (it knows {sorted(known)}): "
            "train a model on data containing them"
        )
    temperature = prediction_temperature(atoms, config.temperature, td)
    ecut = config.ecutrho * RYDBERG if config.ecutrho is not None else td.get("ecutrho")
    if config.grid_shape is not None:
        shape = tuple(int(v) for v in config.grid_shape)
    elif ecut is not None:
        shape = qe_fft_shape(atoms.cell[:], ecut / RYDBERG)
    else:
        raise ValueError(
            "the model does not record the training density cutoff (ecutrho), which sets the grid spacing: "
            "pass PredictConfig(ecutrho=Ry) or PredictConfig(grid_shape=(nx, ny, nz))"
        )
    pseudos = _pseudopotentials(atoms, config, td)
    n_el = float(sum(pseudos[s].z_valence for s in atoms.get_chemical_symbols()))
    g = global_values(atoms, model.global_inputs)
    warnings = extrapolation_warnings(atoms, model.global_inputs, td.get("global_input_ranges") or {})
    for w in warnings:
        log.warning(w)
    return _Context(settings, shape, float(temperature), ecut, pseudos, n_el, g, tuple(warnings))  # type: ignore[arg-type]


def _pseudopotentials(atoms: Atoms, config: PredictConfig, td: dict[str, Any]) -> dict[str, Any]:
    """element -> PseudoData, the training one (checked by checksum when the model recorded it)."""
    from alml.dft.pseudo import checksum, pseudopotential
    from alml.surrogate.total_energy import read_upf

    out = {}
    recorded = td.get("pseudopotentials") or {}
    for el in sorted(set(atoms.get_chemical_symbols())):
        path = pseudopotential(el, config.pseudopotentials)
        if el in recorded and "sha256:" in recorded[el]:
            want = recorded[el].split("sha256:")[1].strip()
            if not checksum(path).startswith(want):
                raise ValueError(
                    f"the pseudopotential for {el} at {path} differs from the one the model's training data used "
                    f"({recorded[el]}): pass PredictConfig(pseudopotentials={{'{el}': '/path/to/that.UPF'}})"
                )
        out[el] = read_upf(str(path))
    return out


# --- writing the LDOS and showing progress --------------------------------------------------------


def _write_ldos(
    path: Path, atoms: Atoms, model: Any, ctx: _Context, config: PredictConfig, fill: Callable[[Any], None]
) -> None:
    from alml.data.grids import LdosMeta, write_ldos_h5

    meta = LdosMeta(
        atoms=atoms.copy(), ladder=model.ladder, shape=ctx.shape, temperature=ctx.temperature,
        n_electrons=ctx.n_electrons, ecutrho=ctx.ecut,
        provenance={"predicted_by": None if model.path is None else str(model.path), "ldos": "committee mean"},
    )
    write_ldos_h5(path, meta, fill, dtype=np.dtype(config.ldos_dtype))


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[str], None]]:
    """A rich progress bar over ``total`` steps (or nothing); yields ``advance(description)``."""
    if not enabled:
        yield lambda _text: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task("prediction", total=total)
        yield lambda text: bar.update(task, advance=1, description=text)


__all__ = [
    "TERMS", "Estimate", "PredictConfig", "Prediction", "predict", "prediction_summary", "training_data",
    "write_prediction",
]
