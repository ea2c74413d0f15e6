"""QE's pp.x as the LDOS engine (``engine: ppx`` of :func:`alml.dft.ldos.compute_ldos`): input, launch, cube files.

pp.x runs with ``plot_num = 3``, serially or ``mpirun -np R pp.x`` — never with k-point pools (``-nk`` gives a
wrong LDOS for ultrasoft pseudopotentials in QE 6.7) — and writes ``ldosNNN.cube`` per energy in 1/(Ry·Bohr³),
converted here to 1/(eV·Å³).

pp.x facts relied on (QE 6.7, measured; /work/shared/recipes): ``emin``, ``emax``, ``delta_e``,
``degauss_ldos`` in eV and absolute; the energy count is INT((emax − emin)/delta_e) + 1, so emax is passed as
emin + (n − ½)·delta_e; the broadening kernel is the smearing function of the SCF/nscf; cube files hold the
full dense FFT grid, z fastest, 5 significant digits, spin summed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
from pydantic import Field

from alml.config import Config
from alml.data.grids import EnergyLadder, LdosMeta, energy_chunk, write_ldos_h5
from alml.dft.errors import DFTCrashError, DFTError, DFTTimeoutError
from alml.dft.settings import PwProfile
from alml.io import atomic_write_text
from alml.units import BOHR, RYDBERG

CUBE_TO_EV_ANG3 = 1.0 / (RYDBERG * BOHR**3)  #: 1/(Ry·Bohr³) -> 1/(eV·Å³)


class PpProfile(Config):
    """How pp.x (and an nscf pw.x) is launched. pp.x never gets ``-nk``."""

    pp: str = "pp.x"
    mpirun: str = Field("mpirun.openmpi", description="OpenMPI launcher for Debian's QE")
    ranks: int = Field(1, ge=1)
    threads: int = Field(1, ge=1)
    timeout: float | None = Field(7200.0, gt=0, description="seconds; None for no limit")

    def command(self, input_file: str = "pp.in") -> list[str]:
        if shutil.which(self.pp) is None:
            raise FileNotFoundError(f"'{self.pp}' not found on PATH: install Quantum ESPRESSO (quantum-espresso)")
        cmd = [self.pp, "-in", input_file]
        if self.ranks > 1:
            launcher = shutil.which(self.mpirun)
            if launcher is None:
                raise FileNotFoundError(f"MPI launcher '{self.mpirun}' not found: install openmpi-bin, or use ranks: 1")
            cmd = [launcher, "--allow-run-as-root", "-np", str(self.ranks), *cmd]
        return cmd

    def environment(self) -> dict[str, str]:
        return PwProfile(threads=self.threads).environment()


def read_cube(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Values (nx, ny, nz) as written (z fastest, C order) and the cell (3, 3) in Bohr of a Gaussian cube file."""
    with open(path) as fh:
        fh.readline()
        fh.readline()
        natoms = abs(int(fh.readline().split()[0]))
        rows = [fh.readline().split() for _ in range(3)]
        shape = tuple(int(r[0]) for r in rows)
        cell = np.array([[float(x) for x in r[1:4]] for r in rows]) * np.array(shape)[:, None]
        for _ in range(natoms):
            fh.readline()
        data = np.array(fh.read().split(), dtype=np.float64)
    n = int(np.prod(shape))
    if data.size != n:
        raise DFTError(f"cube {path} holds {data.size} values, expected {n} for grid {shape}")
    return data.reshape(shape), cell


def pp_input(ladder: EnergyLadder, prefix: str = "pw", outdir: str = "./out", filplot: str = "ldos") -> str:
    """pp.x input for the LDOS on ``ladder`` (cubes ``<filplot>NNN.cube``)."""
    emax = ladder.emin + (ladder.n - 0.5) * ladder.spacing  # pp.x truncates the count: aim half a step beyond
    return (
        "&INPUTPP\n"
        f"  prefix = '{prefix}'\n  outdir = '{outdir}'\n  filplot = '{filplot}'\n  plot_num = 3\n"
        f"  emin = {ladder.emin!r}\n  emax = {emax!r}\n  delta_e = {ladder.spacing!r}\n"
        f"  degauss_ldos = {ladder.broadening!r}\n/\n"
        "&PLOT\n  iflag = 3\n  output_format = 6\n  fileout = '.cube'\n/\n"
    )


def cube_files(workdir: Path, filplot: str = "ldos") -> list[Path]:
    """pp.x's cubes in ``workdir`` in energy order (``<filplot>NNN.cube``, NNN = 1, 2, …)."""
    pat = re.compile(rf"^{re.escape(filplot)}(\d+)\.cube$")
    found = [(int(m.group(1)), p) for p in Path(workdir).iterdir() if (m := pat.match(p.name))]
    return [p for _, p in sorted(found)]


def run_qe(cmd: list[str], workdir: Path, out_name: str, env: dict[str, str], timeout: float | None, what: str) -> str:
    """Run a QE program in ``workdir``; raise unless it exits 0 and prints JOB DONE (also the nscf pw.x of
    :mod:`alml.dft.ldos`)."""
    out_path = workdir / out_name
    try:
        with open(out_path, "w") as out, open(workdir / (out_name + ".err"), "w") as err:
            proc = subprocess.run(cmd, cwd=workdir, stdout=out, stderr=err, env={**os.environ, **env}, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DFTTimeoutError(f"{what} ran past {timeout} s in {workdir}") from None
    text = out_path.read_text(errors="replace")
    if proc.returncode != 0 or "JOB DONE" not in text:
        crash = workdir / "CRASH"
        detail = crash.read_text(errors="replace")[-1500:] if crash.is_file() else text[-1500:]
        raise DFTCrashError(f"{what} failed (exit {proc.returncode}) in {workdir}:\n{detail.strip()}")
    return text


def run_pp(workdir: Path, ladder: EnergyLadder, profile: PpProfile | None = None) -> list[Path]:
    """Run pp.x in ``workdir`` (which holds ``out/``) for ``ladder``; return the cubes in energy order."""
    profile = profile or PpProfile()
    workdir = Path(workdir)
    for p in cube_files(workdir):
        p.unlink()
    (workdir / "pp.in").write_text(pp_input(ladder))
    run_qe(profile.command("pp.in"), workdir, "pp.out", profile.environment(), profile.timeout, "pp.x")
    cubes = cube_files(workdir)
    if len(cubes) != ladder.n:
        raise DFTError(f"pp.x wrote {len(cubes)} cube files in {workdir}, expected {ladder.n}")
    return cubes


def cubes_to_h5(cubes: list[Path], meta: LdosMeta, path: Path, dtype: str = "float32") -> Path:
    """Stream pp.x cubes (energy order) into an LDOS file in 1/(eV·Å³), block by block (atomic write)."""
    if len(cubes) != meta.ladder.n:
        raise ValueError(f"{len(cubes)} cubes for a ladder of {meta.ladder.n} energies")
    shape = tuple(meta.shape)

    def fill(ds) -> None:  # noqa: ANN001
        ce = energy_chunk(shape, meta.ladder.n)  # type: ignore[arg-type]
        for j0 in range(0, len(cubes), ce):
            block = np.empty((*shape, min(ce, len(cubes) - j0)), dtype=dtype)
            for jj, cube in enumerate(cubes[j0 : j0 + ce]):
                values, _ = read_cube(cube)
                if values.shape != shape:
                    raise DFTError(f"cube {cube} has grid {values.shape}, expected {shape}")
                block[..., jj] = values * CUBE_TO_EV_ANG3
            ds[..., j0 : j0 + block.shape[-1]] = block

    return write_ldos_h5(path, meta, fill, dtype=np.dtype(dtype))


def pp_stage(workdir: Path, ladder: EnergyLadder, profile: PpProfile) -> list[Path]:
    marker = workdir / "pp.json"
    if marker.is_file():
        cubes = cube_files(workdir)
        if len(cubes) == ladder.n:
            return cubes
    cubes = run_pp(workdir, ladder, profile)
    atomic_write_text(marker, json.dumps({"n_cubes": len(cubes)}))
    return cubes
