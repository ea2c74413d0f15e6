"""``alml surrogate ...``: ML-DFT — LDOS training data, the LDOS committee, its tests, predictions and HPO."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alml.cli.common import console, fail, setup_logging

HELP = "ML-DFT: LDOS data (pw.x wavefunctions), LDOS committee training, testing, prediction, HPO, MALA import."
app = typer.Typer(no_args_is_help=True)


def _load(model: type, path: Path):  # noqa: ANN202
    from alml.config import ConfigError, load_config

    try:
        return load_config(model, path)
    except (ConfigError, FileNotFoundError) as err:
        fail(str(err))


def _threads(n: int) -> None:
    from alml.runtime import set_threads

    set_threads(n)


@app.command("data")
def data(
    config: Annotated[Path, typer.Argument(help="YAML: snapshots:, data:, executor:, pw:, pp:")],
) -> None:
    """pw.x (Fermi–Dirac at each snapshot's temperature) → LDOS → HDF5, and grid descriptors beside it."""
    from alml.surrogate.data import make_training_data
    from alml.surrogate.jobs import DataJob

    job = _load(DataJob, config)
    root = Path(job.data.root)
    setup_logging(root / "alml-surrogate-data.log")
    try:
        outcomes = make_training_data(job.snapshots, job.data, job.executor, job.pw, job.pp, progress=True)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    for o in outcomes:
        where = Path(o.ldos).parent if o.ldos else ""
        extra = f"{o.wall_time:.0f} s" if o.wall_time else (o.error or "").splitlines()[0][:100] if o.error else ""
        console.print(f"  {o.index:3d} T={o.temperature or 0:.0f} K  {o.status:7s} {where}  {extra}")
    n_failed = sum(o.status == "failed" for o in outcomes)
    console.print(f"{len(outcomes) - n_failed} snapshot(s) ready under {root} ({n_failed} failed); "
                  f"manifest {root / 'manifest.json'}")
    if n_failed:
        raise typer.Exit(1)


@app.command("train")
def train(
    config: Annotated[Path, typer.Argument(help="YAML: train:, validation:, model:, output:")],
    output: Annotated[Path | None, typer.Option(help="model folder (overrides output:)")] = None,
    members: Annotated[int | None, typer.Option(help="committee size (overrides model.members)")] = None,
    epochs: Annotated[int | None, typer.Option(help="maximum epochs (overrides model.training.epochs)")] = None,
    total_energy: Annotated[bool, typer.Option(help="validate the total energy each epoch")] = True,
) -> None:
    """Train (or resume) an LDOS committee on snapshot folders; validate each epoch in meV/atom and density %."""
    from alml.surrogate.jobs import TrainJob, snapshot_dirs
    from alml.surrogate.train import train_ldos_model

    job = _load(TrainJob, config)
    cfg = job.model
    if members is not None:
        cfg = cfg.model_copy(update={"members": members})
    if epochs is not None:
        cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"epochs": epochs})})
    out = output or job.output
    try:
        train_dirs = snapshot_dirs(job.train, config.parent)
        val = snapshot_dirs([job.validation], config.parent)[0]
    except ValueError as err:
        fail(str(err))
    setup_logging(out / "alml-surrogate-train.log")
    _threads(cfg.threads)
    console.print(f"training {cfg.members} member(s) on {len(train_dirs)} snapshot(s), validating on {val}")
    try:
        pseudos = _pseudopotentials(val) if total_energy else None
        model = train_ldos_model(train_dirs, val, cfg, out, pseudopotentials=pseudos)
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
    console.print(f"wrote {model.path} ({model.n_members} members)")


def _pseudopotentials(snapshot: Path) -> dict[str, Path]:
    """alml's pseudopotential of every element of a snapshot (generated once by ld1.x)."""
    from alml.data.grids import LdosFile
    from alml.dft.pseudo import pseudopotential
    from alml.surrogate.snapshots import LDOS_FILE

    with LdosFile(snapshot / LDOS_FILE) as f:
        elements = sorted(set(f.atoms.get_chemical_symbols()))
    return {el: pseudopotential(el) for el in elements}


@app.command("predict")
def predict(
    structure: Annotated[Path, typer.Argument(help="structure file (first frame) any ASE reader takes")],
    model: Annotated[Path, typer.Option(help="LDOS model folder")],
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/predict"),
    config: Annotated[Path | None, typer.Option(help="YAML of PredictConfig (optional)")] = None,
    density: Annotated[bool, typer.Option(help="write density.cube")] = True,
    ldos: Annotated[bool, typer.Option(help="write the committee-mean LDOS to ldos.h5")] = False,
    workers: Annotated[int | None, typer.Option(help="MPI ranks for the descriptors")] = None,
    temperature: Annotated[float | None, typer.Option(
        help="electronic temperature, K (default: the structure's info, else the model's single training one)"
    )] = None,
    plot: Annotated[bool, typer.Option(help="write dos.png and density_slice.png")] = True,
) -> None:
    """DOS, Fermi level, band energy and total energy (with committee std) of a structure of any size."""
    from ase.io import read

    from alml.config import parse_config
    from alml.surrogate.predict import PredictConfig
    from alml.surrogate.predict import predict as run_predict

    cfg = _load(PredictConfig, config) if config is not None else parse_config(PredictConfig, {})
    upd = {"write_density": density, "write_ldos": ldos, **({"workers": workers} if workers else {}),
           **({"temperature": temperature} if temperature is not None else {})}
    cfg = cfg.model_copy(update=upd)
    setup_logging(out / "alml-surrogate-predict.log")
    _threads(cfg.threads or 1)
    try:
        atoms = read(structure)
        pred = run_predict(atoms, model, cfg, out=out, progress=True)
    except (FileNotFoundError, ValueError, KeyError) as err:
        fail(str(err))
    n = pred.n_atoms
    console.print(f"{n} atoms, grid {'x'.join(map(str, pred.grid_shape))}, {pred.n_members} members, "
                  f"T = {pred.temperature:.0f} K")
    console.print(f"  Fermi level   {pred.fermi_level.value:12.5f} ± {pred.fermi_level.std:.5f} eV")
    for key, label in (("band_energy", "band energy"), ("free_energy", "free energy"), ("energy", "energy")):
        e = pred.terms[key]
        console.print(f"  {label:13s} {e.value:12.5f} ± {e.std:.5f} eV   "
                      f"({1e3 * e.value / n:.2f} ± {1e3 * e.std / n:.2f} meV/atom)")
    for w in pred.warnings:
        console.print(f"  [yellow]warning:[/yellow] {w}")
    t = pred.timings
    console.print(f"  time {t['total']:.1f} s (descriptors {t['descriptors']:.1f}, network {t['network']:.1f}, "
                  f"energy {t['energy']:.1f}); peak memory {max(pred.peak_rss_mb, pred.peak_rss_children_mb):.0f} MB")
    if plot:
        _plot_prediction(pred, out)
    console.print(f"wrote {out}")


def _plot_prediction(pred, out: Path) -> None:  # noqa: ANN001
    from alml.io import atomic_write
    from alml.plot.surrogate import prediction_figure

    fig = prediction_figure(pred.energies, pred.dos, pred.dos_std, pred.density, pred.fermi_level.value,
                            title=f"{pred.atoms.get_chemical_formula()}: ML-DFT prediction")
    atomic_write(out / "prediction.png", lambda p: fig.savefig(p, format="png", dpi=120))


@app.command("test")
def test(
    model: Annotated[Path, typer.Argument(help="LDOS model folder")],
    snapshots: Annotated[list[str], typer.Argument(help="held-out snapshot folders (globs allowed)")],
    out: Annotated[Path, typer.Option(help="folder for evaluation.json/csv and plots")] = Path("runs/surrogate-test"),
    total_energy: Annotated[bool, typer.Option(help="also the total energy (libxc, FFT Hartree, Ewald)")] = True,
    plots: Annotated[bool, typer.Option(help="write DOS, density-slice and error plots")] = True,
) -> None:
    """Band-energy, total-energy, Fermi-level and density errors on held-out snapshots, with committee std."""
    from alml.surrogate.evaluate import evaluate_model
    from alml.surrogate.jobs import snapshot_dirs

    setup_logging(out / "alml-surrogate-test.log")
    _threads(1)
    try:
        dirs = snapshot_dirs(snapshots)
        res = evaluate_model(model, dirs, out=out, total_energy=total_energy, plots=plots)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    console.print(f"{'snapshot':28s} {'atoms':>5s} {'ΔE_band':>9s} {'ΔE_tot':>9s} {'Δn %':>7s} {'ΔE_F meV':>9s}  "
                  "(meV/atom unless stated; ± committee std)")
    for r in res.rows:
        console.print(f"{r.name[:28]:28s} {r.n_atoms:5d} {r.band_energy_error_mev_per_atom:+9.3f} "
                      f"{r.total_energy_error_mev_per_atom:+9.3f} {r.density_error_percent:7.3f} "
                      f"{r.fermi_level_error_mev:+9.2f}  ± {r.band_energy_std_mev_per_atom:.3f} / "
                      f"{r.total_energy_std_mev_per_atom:.3f}")
    s = res.summary
    console.print(f"MAE: band {s['band_energy_error_mev_per_atom_mae']:.3f}, total "
                  f"{s['total_energy_error_mev_per_atom_mae']:.3f} meV/atom; density "
                  f"{s['density_error_percent_mae']:.3f} %; references: {sorted({r.reference for r in res.rows})}")
    console.print(f"wrote {out}")


@app.command("hpo")
def hpo(
    config: Annotated[Path, typer.Argument(help="YAML: train:, validation:, hpo: (HpoConfig), output:")],
    trials: Annotated[int | None, typer.Option(help="finished trials the study should hold (overrides hpo.trials)")]
    = None,
) -> None:
    """Optuna search over the LDOS network (study in SQLite by default; rerun to continue it)."""
    from alml.surrogate.hpo import run_hpo
    from alml.surrogate.jobs import HpoJob, snapshot_dirs

    job = _load(HpoJob, config)
    cfg = job.hpo if trials is None else job.hpo.model_copy(update={"trials": trials})
    try:
        train_dirs = snapshot_dirs(job.train, config.parent)
        val = snapshot_dirs([job.validation], config.parent)[0]
        setup_logging(job.output / "alml-surrogate-hpo.log")
        _threads(cfg.base.threads)
        res = run_hpo(train_dirs, val, cfg, job.output)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    console.print(f"study {res.study_name!r} in {res.storage}: {len(res.trials)} trials; best #{res.best_trial} "
                  f"{res.best_value:.3f} meV/atom with {res.best_params}")
    console.print(f"best model config: {job.output / 'best_config.yaml'}")


@app.command("import-mala")
def import_mala(
    directory: Annotated[Path, typer.Argument(help="MALA dataset folder (*.in.npy, *.out.npy, pw.x outputs)")],
    out: Annotated[Path, typer.Option(help="folder for the alml snapshot folders")],
    config: Annotated[Path | None, typer.Option(help="YAML of MalaImportConfig (ladder, broadening, ...)")] = None,
    qe_suffix: Annotated[str, typer.Option(help="suffix of the pw.x output files")] = ".out",
    overwrite: Annotated[bool, typer.Option(help="re-import snapshots already imported")] = False,
) -> None:
    """Convert a MALA-layout dataset into alml snapshot folders (ldos.h5 + descriptors.h5)."""
    from alml.config import parse_config
    from alml.surrogate.mala import MalaImportConfig, import_mala_dataset

    cfg = _load(MalaImportConfig, config) if config is not None else parse_config(MalaImportConfig, {})
    try:
        dirs = import_mala_dataset(directory, out, cfg, qe_suffix=qe_suffix, overwrite=overwrite)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    if not dirs:
        fail(f"no MALA snapshots (*.in.npy with *.out.npy) found in {directory}")
    for d in dirs:
        console.print(f"  {d}")
    console.print(f"imported {len(dirs)} snapshot(s) into {out}")
