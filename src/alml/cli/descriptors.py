"""``alml descriptors ...``: bispectrum descriptors of a structure, per atom or on a grid."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

HELP = "Bispectrum (SNAP) descriptors from LAMMPS: per atom (with gradients) or on the DFT grid."

app = typer.Typer(no_args_is_help=True)
console = Console()


def fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


_PresetOpt = Annotated[str, typer.Option(help="named settings (mala-al) used when --config is not given")]
_ConfigOpt = Annotated[Path | None, typer.Option(help="YAML file with BispectrumSettings fields")]
_TwojmaxOpt = Annotated[int | None, typer.Option(help="override twojmax of the preset/config")]


def _settings(preset: str, config: Path | None, twojmax: int | None):  # noqa: ANN202
    from alml.config import ConfigError, load_config
    from alml.descriptors import PRESETS, BispectrumSettings

    try:
        if config is not None:
            s = load_config(BispectrumSettings, config)
        elif preset in PRESETS:
            s = PRESETS[preset]
        else:
            fail(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
        return s if twojmax is None else s.model_copy(update={"twojmax": twojmax})
    except ConfigError as err:
        fail(str(err))


def _read(structure: Path, index: str):  # noqa: ANN202
    from ase.io import read

    if not structure.is_file():
        fail(f"structure file {structure} does not exist")
    try:
        return read(structure, index=index)
    except Exception as err:  # ASE raises many types
        fail(f"cannot read {structure}: {err}")


@app.command("grid")
def grid(
    structure: Annotated[Path, typer.Argument(help="any ASE-readable structure file (periodic)")],
    out: Annotated[Path, typer.Option(help="HDF5 file to write")],
    shape: Annotated[tuple[int, int, int] | None, typer.Option(help="grid nx ny nz")] = None,
    ecutrho: Annotated[
        float | None, typer.Option(help="instead of --shape: QE's dense grid for this cutoff, Ry")
    ] = None,
    preset: _PresetOpt = "mala-al",
    config: _ConfigOpt = None,
    twojmax: _TwojmaxOpt = None,
    workers: Annotated[int, typer.Option(help="MPI ranks")] = 1,
    max_points: Annotated[int | None, typer.Option(help="grid points per block (bounds memory)")] = None,
    float64: Annotated[bool, typer.Option(help="store float64 instead of float32")] = False,
    index: Annotated[str, typer.Option(help="frame of a trajectory file")] = "-1",
) -> None:
    """Descriptors on the QE FFT grid of STRUCTURE, streamed into an HDF5 file."""
    import numpy as np

    from alml.descriptors import qe_fft_shape, write_grid_h5

    atoms = _read(structure, index)
    settings = _settings(preset, config, twojmax)
    if (shape is None) == (ecutrho is None):
        fail("give exactly one of --shape nx ny nz or --ecutrho")
    grid_shape = shape if shape is not None else qe_fft_shape(atoms.cell[:], ecutrho)
    try:
        write_grid_h5(
            out,
            atoms,
            settings,
            grid_shape,
            workers=workers,
            max_points_per_block=max_points,
            dtype=np.float64 if float64 else np.float32,
        )
    except ValueError as err:
        fail(str(err))
    n = grid_shape[0] * grid_shape[1] * grid_shape[2]
    console.print(f"wrote {out}: grid {grid_shape} ({n} points) x {settings.n_components} components")


@app.command("atoms")
def atoms_cmd(
    structure: Annotated[Path, typer.Argument(help="any ASE-readable structure file")],
    out: Annotated[Path, typer.Option(help=".npz file to write (B, and dBdr, i, j, rij with gradients)")],
    gradients: Annotated[bool, typer.Option(help="also dB_i/dr_j for every image-resolved pair")] = True,
    preset: _PresetOpt = "mala-al",
    config: _ConfigOpt = None,
    twojmax: _TwojmaxOpt = None,
    index: Annotated[str, typer.Option(help="frame of a trajectory file")] = "-1",
) -> None:
    """Per-atom descriptors of STRUCTURE (and their gradients) into a .npz file."""
    import io

    import numpy as np

    from alml.descriptors import per_atom
    from alml.io import atomic_write

    atoms = _read(structure, index)
    settings = _settings(preset, config, twojmax)
    try:
        d = per_atom(atoms, settings, gradients=gradients)
    except ValueError as err:
        fail(str(err))
    arrays = {"B": d.B, "settings": np.array(settings.model_dump_json())}
    if d.has_gradients:
        arrays.update(dBdr=d.dBdr, i=d.i, j=d.j, rij=d.rij)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(out, lambda p: p.write_bytes(buf.getvalue()))
    pairs = f", {len(d.i)} pairs" if d.has_gradients else ""
    console.print(f"wrote {out}: {d.n_atoms} atoms x {d.n_components} components{pairs}")


@app.command("fft-shape")
def fft_shape(
    structure: Annotated[Path, typer.Argument(help="any ASE-readable structure file")],
    ecutrho: Annotated[float, typer.Option(help="density cutoff, Ry")],
    index: Annotated[str, typer.Option(help="frame of a trajectory file")] = "-1",
) -> None:
    """Print the dense FFT grid pw.x would use for STRUCTURE at ECUTRHO."""
    from alml.descriptors import qe_fft_shape

    atoms = _read(structure, index)
    console.print(" ".join(str(n) for n in qe_fft_shape(atoms.cell[:], ecutrho)))
