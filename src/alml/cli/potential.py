"""``alml potential ...``: train a committee potential, test it on labelled data, export it to LAMMPS."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alml.cli.common import console, fail, setup_logging

HELP = "Committee neural-network potential on bispectrum descriptors: train, test, export to LAMMPS."

app = typer.Typer(no_args_is_help=True)


def _images(source: str, select: str | None):  # noqa: ANN202
    from alml.data import Store, read_structures
    from alml.data.store import is_db_url

    try:
        if select:
            if not is_db_url(source):
                fail(f"--select needs an ASE database (.db or postgresql://), not {source}")
            if not source.startswith(("postgresql://", "postgres://")) and not Path(source).is_file():
                fail(f"database {source} does not exist")
            return list(Store(source).select(select))
        return read_structures(source)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))


@app.command("train")
def train(
    config: Annotated[Path, typer.Argument(help="YAML with data:, potential:, output:, warm_start: (see docs)")],
    output: Annotated[Path | None, typer.Option(help="model folder (overrides output:)")] = None,
    warm_start: Annotated[Path | None, typer.Option(help="earlier model folder to start from")] = None,
    members: Annotated[int | None, typer.Option(help="committee size (overrides committee.members)")] = None,
    epochs: Annotated[int | None, typer.Option(help="maximum epochs (overrides training.epochs)")] = None,
    workers: Annotated[int | None, typer.Option(help="members trained at once (overrides committee.workers)")] = None,
) -> None:
    """Train (or resume training) a committee potential; write the model folder."""
    from alml.config import ConfigError, load_config
    from alml.potential.config import TrainJob
    from alml.potential.dataset import pack
    from alml.potential.train import train_potential

    try:
        job = load_config(TrainJob, config)
    except ConfigError as err:
        fail(str(err))
    pc = job.potential
    if members is not None or workers is not None:
        cc = pc.committee.model_copy(
            update={k: v for k, v in (("members", members), ("workers", workers)) if v is not None}
        )
        pc = pc.model_copy(update={"committee": cc})
    if epochs is not None:
        pc = pc.model_copy(update={"training": pc.training.model_copy(update={"epochs": epochs})})
    out = output or job.output
    setup_logging(out / "alml-potential.log")
    from alml.runtime import set_threads

    set_threads(pc.training.threads)
    images = _images(job.data.store, job.data.select)
    if not images:
        fail(f"no structures in {job.data.store} (select {job.data.select!r})")
    console.print(f"{len(images)} structures from {job.data.store}; descriptors (cache {job.data.cache})")
    try:
        data = pack(images, pc.descriptors, cache=job.data.cache, energy_key=pc.energy_key, progress=True)
    except ValueError as err:
        fail(str(err))
    dft_hashes = sorted({str(a.info.get("settings_hash", "")) for a in images} - {""})
    console.print(f"training {pc.committee.members} member(s) into {out}")
    pot = train_potential(
        data, pc, out, warm_start=warm_start or job.warm_start,
        provenance={"data": job.data.model_dump(mode="json"), "dft_settings_hashes": dft_hashes},
        progress_every=10,
    )
    _print_members(out)
    console.print(f"wrote {pot.path} ({pot.n_members} members); learning curves in {out / 'learning_curves.png'}")


def _print_members(out: Path) -> None:
    import json

    from rich.table import Table

    from alml.nn.folder import METRICS

    p = out / METRICS
    if not p.is_file():
        return
    table = Table(title="committee members (best epoch)")
    for col in ("member", "epochs", "best", "E val (meV/at)", "F val (eV/Å)", "E train", "F train"):
        table.add_column(col)
    for r in json.loads(p.read_text())["members"]:
        b = r.get("best", {})

        def f(key: str, b: dict = b) -> str:
            return f"{b[key]:.4g}" if key in b else ""

        table.add_row(str(r["member"]), str(r["epochs"]), str(r["best_epoch"]), f("val_e_rmse"), f("val_f_rmse"),
                      f("train_e_rmse"), f("train_f_rmse"))
    console.print(table)


@app.command("test")
def test(
    model: Annotated[Path, typer.Argument(help="model folder")],
    data: Annotated[str, typer.Option(help="labelled structures: ASE .db, postgresql:// URL or extxyz")],
    select: Annotated[str | None, typer.Option(help="ASE db query")] = None,
    cache: Annotated[Path | None, typer.Option(help="descriptor cache folder")] = Path("cache/descriptors"),
    plot: Annotated[Path | None, typer.Option(help="parity plot to write (PNG)")] = None,
    out: Annotated[Path | None, typer.Option(help="JSON file for the errors")] = None,
) -> None:
    """Errors of a model (committee mean) on labelled structures; optional parity plot."""
    from alml.io import atomic_write, atomic_write_json
    from alml.potential.dataset import pack
    from alml.potential.folder import load_potential
    from alml.potential.train import predict_dataset

    try:
        pot = load_potential(model)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    images = _images(data, select)
    if not images:
        fail(f"no structures in {data}")
    try:
        packed = pack(images, pot.settings, cache=cache, energy_key=pot.config.energy_key, progress=True)
    except ValueError as err:
        fail(str(err))
    pred = predict_dataset(pot, packed)
    m = pred.metrics
    console.print(f"{len(packed)} structures, {int(packed.n_atoms.sum())} atoms, {pot.n_members} members")
    units = {"e_rmse": "meV/atom", "e_mae": "meV/atom", "f_rmse": "eV/Å", "f_mae": "eV/Å", "s_rmse": "GPa"}
    for k, unit in units.items():
        if k in m:
            console.print(f"  {k:7s} {m[k]:.4g} {unit}")
    if out is not None:
        atomic_write_json(out, {"model": str(model), "data": data, "select": select, "n": len(packed), **m})
    if plot is not None:
        from alml.plot.learning import parity_figure

        fig = parity_figure(pred.energy_ref, pred.energy_pred, pred.forces_ref, pred.forces_pred, title=str(model))
        atomic_write(plot, lambda p: fig.savefig(p, format="png", dpi=120))
        console.print(f"parity plot: {plot}")


@app.command("export")
def export(
    model: Annotated[Path, typer.Argument(help="model folder")],
    out: Annotated[Path, typer.Option(help="folder for the .mliap.model and .mliap.descriptor files")],
    member: Annotated[int | None, typer.Option(help="export one member (default: the committee mean)")] = None,
    name: Annotated[str | None, typer.Option(help="file name stem (default: the elements)")] = None,
) -> None:
    """Write LAMMPS ML-IAP files and print the pair_style / pair_coeff lines."""
    from alml.potential.lammps_export import export_lammps

    try:
        ex = export_lammps(model, out, member=member, name=name)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    what = f"member {member}" if member is not None else f"committee mean of {len(ex.members)} member(s)"
    files = f"{ex.model_file.name}, {ex.descriptor_file.name}, {ex.include_file.name}"
    print(f"# {what}: {files} in {ex.model_file.parent}")
    for line in ex.commands():
        print(line)


@app.command("md")
def md(
    config: Annotated[Path, typer.Argument(help="YAML with model:, engine:, structure:, md:, lammps:, output:")],
    engine: Annotated[str | None, typer.Option(help="ase or lammps (overrides engine:)")] = None,
    steps: Annotated[int | None, typer.Option(help="MD steps (overrides md.steps)")] = None,
    ranks: Annotated[int | None, typer.Option(help="LAMMPS MPI ranks (overrides lammps.ranks)")] = None,
    output: Annotated[Path | None, typer.Option(help="output folder (overrides output:)")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Molecular dynamics (NVE, NVT Langevin, NPT) with a trained potential: in ASE with the committee
    (its disagreement logged along the trajectory) or in LAMMPS with the exported model (MPI ranks)."""
    from alml.config import ConfigError, load_config, parse_config
    from alml.potential.md import MDJob, run_md_job

    try:
        job = load_config(MDJob, config)
        data = job.model_dump()
        data.update({k: v for k, v in (("engine", engine), ("output", output)) if v is not None})
        if steps is not None:
            data["md"]["steps"] = steps
        if ranks is not None:
            data["lammps"]["ranks"] = ranks
        job = parse_config(MDJob, data, str(config))
    except ConfigError as err:
        fail(str(err))
    if not job.model.is_dir():
        fail(f"model folder {job.model} does not exist")
    setup_logging(job.output / "alml-md.log")
    try:
        res = run_md_job(job, progress=progress)
    except (FileNotFoundError, ValueError, RuntimeError, TimeoutError) as err:
        fail(str(err))
    _print_md(res)


def _print_md(res) -> None:  # noqa: ANN001
    import numpy as np

    from alml.potential.md import UNCERTAINTY_COLUMNS, read_thermo

    th = read_thermo(res.thermo)
    console.print(
        f"{res.engine} {res.ensemble}: {res.n_atoms} atoms x {res.steps} steps on {res.ranks} rank(s) in "
        f"{res.loop_time:.3g} s ({res.atom_steps_per_s:.4g} atom-steps/s)"
    )
    if len(th["step"]):
        console.print(f"  final T {th['temperature_K'][-1]:.1f} K, Epot {th['epot_eV'][-1]:.6f} eV, "
                      f"P {th['pressure_GPa'][-1]:.3f} GPa, V {th['volume_A3'][-1]:.2f} Å³")
        rho = th.get(UNCERTAINTY_COLUMNS[0])
        if rho is not None and np.isfinite(rho).any():
            console.print(f"  committee ρ (energy std): mean {1000 * np.nanmean(rho):.3g}, "
                          f"max {1000 * np.nanmax(rho):.3g} meV/atom; "
                          f"max force std {1000 * np.nanmax(th[UNCERTAINTY_COLUMNS[2]]):.3g} meV/Å")
    console.print(f"  thermo {res.thermo}" + (f", trajectory {res.trajectory}" if res.trajectory else "")
                  + (f", plot {res.files['plot']}" if "plot" in res.files else ""))
