"""``alml dft ...``: label structures with pw.x."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from alml.cli.common import console, fail, setup_logging

app = typer.Typer(no_args_is_help=True)


@app.command("run")
def run(
    structures: Annotated[Path, typer.Argument(help="extxyz (or any ASE-readable file) or an ASE .db")],
    db: Annotated[str, typer.Option(help="store for the labelled structures: .db file or postgresql:// URL")],
    config: Annotated[
        Path | None, typer.Option(help="YAML with sections dft:, profile:, executor: (all optional)")
    ] = None,
    root: Annotated[Path, typer.Option(help="folder of hashed pw.x work directories")] = Path("runs/dft"),
    source: Annotated[str, typer.Option(help="source tag for rows without one")] = "dft",
    generation: Annotated[int, typer.Option(help="generation recorded with each row")] = 0,
    dask: Annotated[bool, typer.Option(help="run on an in-process Dask LocalCluster")] = False,
) -> None:
    """Label structures with pw.x in parallel; print done / reused / failed."""
    from alml.compute import ExecutorConfig
    from alml.config import ConfigError, parse_config
    from alml.data import Store, read_structures
    from alml.dft.batch import label_structures
    from alml.dft.settings import DFTSettings, PwProfile

    setup_logging(root / "alml-dft.log")
    sections: dict = {}
    if config is not None:
        if not config.is_file():
            fail(f"config file {config} does not exist")
        sections = yaml.safe_load(config.read_text()) or {}
        unknown = set(sections) - {"dft", "profile", "executor"}
        if unknown:
            fail(f"{config}: unknown section(s) {sorted(unknown)}; allowed: dft, profile, executor")
    try:
        settings = parse_config(DFTSettings, sections.get("dft"), f"{config}:dft")
        profile = parse_config(PwProfile, sections.get("profile"), f"{config}:profile")
        ex = dict(sections.get("executor") or {})
        if dask:
            ex["kind"] = "dask"
        executor = parse_config(ExecutorConfig, ex, f"{config}:executor")
        frames = read_structures(structures)
        store = Store(db)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        fail(str(err))
    console.print(f"labelling {len(frames)} structure(s) from {structures} into {db}")
    outcomes = label_structures(frames, settings, profile, root, store, executor, source, generation)
    print_summary(outcomes)
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(1)


def print_summary(outcomes) -> None:
    table = Table(title="pw.x labelling")
    for col in ("#", "formula", "atoms", "status", "F (eV)", "time (s)", "reason"):
        table.add_column(col)
    colour = {"done": "green", "reused": "cyan", "failed": "red"}
    for o in outcomes:
        table.add_row(
            str(o.index),
            o.formula,
            str(o.n_atoms),
            f"[{colour[o.status]}]{o.status}[/]",
            f"{o.free_energy:.5f}" if o.free_energy is not None else "",
            f"{o.wall_time:.1f}" if o.wall_time else "",
            (o.error or "").splitlines()[0][:90] if o.error else "",
        )
    console.print(table)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "reused", "failed")}
    console.print(", ".join(f"{v} {k}" for k, v in counts.items()))
