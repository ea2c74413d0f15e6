"""``alml pseudo``: generate the Al pseudopotential and validate it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alml.cli.common import console


def main(
    out: Annotated[Path, typer.Option(help="folder for the report (JSON) and plot (PNG)")] = Path("runs/pseudo"),
    root: Annotated[Path, typer.Option(help="folder of hashed pw.x work directories")] = Path("runs/dft"),
    ranks: Annotated[int, typer.Option(help="MPI ranks per pw.x run")] = 2,
) -> None:
    """Generate Al.pbe-n-nc-tm.UPF with ld1.x, then check a0, B and cutoff convergence with pw.x."""
    run_pseudo_validation(out, root, ranks)


def run_pseudo_validation(out: Path, root: Path, ranks: int) -> bool:
    from alml.dft.pseudo import checksum, pseudopotential
    from alml.dft.settings import DFTSettings, PwProfile
    from alml.io import atomic_write, atomic_write_json
    from alml.plot.eos import pseudo_validation_figure
    from alml.validate.pseudo import A0_REF, B_REF, validate_pseudopotential

    upf = pseudopotential("Al")
    console.print(f"pseudopotential: {upf} (sha256 {checksum(upf)[:16]})")
    with console.status("pw.x scans") as status:
        rep = validate_pseudopotential(
            DFTSettings(), PwProfile(ranks=ranks), root, progress=lambda m: status.update(f"pw.x scans: {m}")
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "pseudo_validation.json", rep.as_dict())
    fig = pseudo_validation_figure(
        rep.lattice_constants, rep.energies, rep.a0, rep.bulk_modulus, rep.cutoffs, rep.delta_e_error,
        rep.default_cutoff,
    )
    atomic_write(out / "pseudo_validation.png", lambda p: fig.savefig(p, dpi=120, format="png"))
    ok = "[green]pass[/]" if rep.passed else "[red]FAIL[/]"
    console.print(
        f"a0 = {rep.a0:.4f} Å ({rep.a0_error_pct:+.2f} % vs {A0_REF}), "
        f"B = {rep.bulk_modulus:.1f} GPa ({rep.b_error_pct:+.1f} % vs {B_REF})"
    )
    for c, d, e in zip(rep.cutoffs, rep.delta_e, rep.delta_e_error):
        console.print(f"  ecutwfc {c:5.0f} Ry: E(3.95) - E(4.12) = {d:8.3f} meV/atom, error {e:+.3f}")
    console.print(f"default cutoff {rep.default_cutoff:g} Ry: error {rep.default_cutoff_error:+.3f} meV/atom → {ok}")
    console.print(f"report: {out / 'pseudo_validation.json'}, plot: {out / 'pseudo_validation.png'}")
    return rep.passed
