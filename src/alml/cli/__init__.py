"""Command line: thin. Each sub-module parses arguments, calls one library function, prints.

Sub-command groups live in their own modules and are registered here.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="alml",
    help="Machine-learned surrogates for first-principles simulation of metals (aluminium first).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from alml.cli import demo, dft, pseudo

    app.add_typer(dft.app, name="dft", help="Label structures with Quantum ESPRESSO (pw.x).")
    app.command("pseudo", help="Generate the Al pseudopotential with ld1.x and validate it (E(V), cutoff).")(
        pseudo.main
    )
    app.command("demo", help="Run the main job end to end on an embedded default.")(demo.main)
    for name in ("descriptors", "potential", "surrogate"):
        try:
            mod = __import__(f"alml.cli.{name}", fromlist=["app"])
        except ModuleNotFoundError as err:  # a group not built yet
            if err.name != f"alml.cli.{name}":
                raise
            continue
        app.add_typer(mod.app, name=name, help=mod.HELP)


_register()
