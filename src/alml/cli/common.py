"""Small helpers shared by the CLI modules: logging to a file, config loading, tables."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.console import Console

console = Console(stderr=False)


def setup_logging(logfile: Path, verbose: bool = False) -> None:
    """Log INFO (DEBUG if verbose) to ``logfile`` and warnings to the terminal."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    fh = logging.FileHandler(logfile)
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(fh)
    sh = logging.StreamHandler()
    sh.setLevel(logging.WARNING)
    root.addHandler(sh)



def fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)
