"""pw.x's binary save files (QE 6.7, built without HDF5): wavefunctions ``<prefix>.save/wfcN.dat``, one per
k-point, and the charge density ``charge-density.dat``.

Layout (QE ``io_base::write_wfc``; Fortran unformatted sequential records, little-endian, 4-byte markers),
checked on files written by Debian's pw.x 6.7:

1. ``ik`` (int32), ``xk(3)`` (float64, Cartesian, 1/Bohr), ``ispin`` (int32), ``gamma_only`` (4-byte logical),
   ``scalef`` (float64): 44 bytes;
2. ``ngw, igwx, npol, nbnd`` (int32): ``igwx`` plane waves are stored for this k-point;
3. ``b1, b2, b3`` (float64, 1/Bohr);
4. ``mill(3, igwx)`` (int32): Miller indices of the G vectors (of G, not k + G) in units of b1, b2, b3;
5. one record per band: ``npol * igwx`` complex128 coefficients c_G, normalised to Σ_G |c_G|² = 1.

ψ_nk(r) = Ω^{-1/2} Σ_G c_G e^{i(k+G)·r}; on an FFT grid (n1, n2, n3) the sum is an inverse FFT of the
coefficients placed at (m1 mod n1, m2 mod n2, m3 mod n3) (:func:`to_grid`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.io import FortranFile

from alml.dft.errors import DFTError
from alml.units import BOHR

#: record 1 of a wavefunction file
HEADER = np.dtype([("ik", "<i4"), ("xk", "<f8", 3), ("ispin", "<i4"), ("gamma_only", "<i4"), ("scalef", "<f8")])


@dataclass(frozen=True)
class Wavefunctions:
    """The Kohn–Sham states of one k-point as pw.x wrote them."""

    ik: int  #: k-point index, 1-based (QE's)
    xk: np.ndarray  #: (3,) Cartesian, 1/Bohr
    ispin: int
    gamma_only: bool
    scalef: float
    ngw: int
    npol: int
    b: np.ndarray  #: (3, 3) rows b1, b2, b3 in 1/Bohr
    miller: np.ndarray  #: (n_pw, 3) int
    coefficients: np.ndarray  #: (n_bands, npol * n_pw) complex128

    @property
    def n_bands(self) -> int:
        return int(self.coefficients.shape[0])

    @property
    def n_pw(self) -> int:
        return int(self.miller.shape[0])


def read_wfc(path: str | Path) -> Wavefunctions:
    """Read one ``wfcN.dat`` (all bands)."""
    with FortranFile(str(path), "r") as f:
        head = f.read_record(HEADER)[0]
        ngw, igwx, npol, nbnd = (int(v) for v in f.read_record("<i4"))
        b = f.read_record("<f8").reshape(3, 3)
        miller = f.read_record("<i4").reshape(igwx, 3)
        coefficients = np.empty((nbnd, npol * igwx), dtype=np.complex128)
        for n in range(nbnd):
            coefficients[n] = f.read_record("<c16")
    return Wavefunctions(
        ik=int(head["ik"]), xk=np.array(head["xk"]), ispin=int(head["ispin"]), gamma_only=bool(head["gamma_only"]),
        scalef=float(head["scalef"]), ngw=ngw, npol=npol, b=b, miller=miller, coefficients=coefficients,
    )


def wfc_files(save_dir: str | Path) -> list[Path]:
    """``wfc1.dat``, ``wfc2.dat``, … of a ``.save`` folder, in k-point order (spin-polarised files are not matched)."""
    pat = re.compile(r"^wfc(\d+)\.dat$")
    found = [(int(m.group(1)), p) for p in Path(save_dir).iterdir() if (m := pat.match(p.name))]
    files = [p for _, p in sorted(found)]
    if [i for i, _ in sorted(found)] != list(range(1, len(files) + 1)):
        raise DFTError(f"{save_dir}: wavefunction files are not wfc1.dat … wfcN.dat without gaps")
    return files


def grid_index(miller: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Flat (C-order) indices on an FFT grid of ``shape`` of the G vectors with Miller indices (n_pw, 3).

    Fails if two G vectors land on one grid point (the grid is too small for the cutoff).
    """
    n = np.asarray(shape, dtype=np.int64)
    idx = np.ravel_multi_index(tuple((np.asarray(miller, dtype=np.int64) % n).T), tuple(int(v) for v in shape))
    if np.unique(idx).size != idx.size:
        raise DFTError(f"the FFT grid {tuple(shape)} is too small for these G vectors (Miller indices collide)")
    return idx


def to_grid(miller: np.ndarray, coefficients: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Coefficients (..., n_pw) placed by Miller index (n_pw, 3) on an FFT grid: (..., n1, n2, n3) complex."""
    lead = coefficients.shape[:-1]
    out = np.zeros((*lead, int(np.prod(shape))), dtype=np.complex128)
    out[..., grid_index(miller, shape)] = coefficients
    return out.reshape(*lead, *shape)


def read_charge_density(path: str | Path, shape: tuple[int, int, int]) -> np.ndarray:
    """pw.x's ``charge-density.dat`` (QE 6.x Fortran binary, one spin) as n(r) (nx, ny, nz) in 1/Å³.

    The file holds ρ(G) (electrons/Bohr³) on the G-sphere with Miller indices; it is placed on the FFT grid
    of ``shape`` (pw.x's dense grid) and transformed, so n(r) is QE's SCF density at the grid points.
    """
    with FortranFile(str(path), "r") as f:
        gamma_only, _, nspin = (int(v) for v in f.read_record(np.int32))
        f.read_record(np.float64)  # reciprocal vectors (2π/alat)
        mill = f.read_record(np.int32).reshape(-1, 3)
        rho = f.read_record(np.complex128)
    if nspin != 1:
        raise DFTError(f"{path}: only spin-unpolarised densities are supported (nspin = {nspin})")
    ng = to_grid(mill, rho, shape)
    if gamma_only:
        ng[tuple(-mill[:, d] % shape[d] for d in range(3))] = np.conj(rho)
    return np.real(np.fft.ifftn(ng) * ng.size) / BOHR**3
