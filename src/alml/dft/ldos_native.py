"""The LDOS on the FFT grid computed from pw.x's wavefunctions: the default engine (pp.x is the other).

    d_j(r) = Σ_{n,k} w_k K_σ(E_j − ε_nk) |ψ_nk(r)|²        (1/(eV·Å³), spin included: Σ_k w_k = 2)

with K_σ pp.x's broadening (:func:`alml.data.grids.broadening_kernel`: the derivative of the run's smearing
function, width ``degauss_ldos``) and ψ normalised to 1 over the cell. This is what pp.x (QE 6.7,
``plot_num = 3``, ``local_dos`` with ``iflag = 1``) computes, one energy per call, re-reading every
wavefunction each time. Here each k-point is read once: every band's coefficients are placed on the dense
FFT grid by Miller index, inverse-FFT'd, squared, and added into all energies at once with one matrix product
(weights (n_E, bands) @ densities (bands, points)) into an (n_E, n_points) float64 buffer.

Like pp.x, the sum over the irreducible k-points is then symmetrised with the crystal symmetries pw.x used
(read from its XML; on the grid, a symmetry is a permutation of the points, as its fractional translation is
commensurate with the FFT grid or pw.x would have dropped it). Time reversal needs nothing: |ψ_{−k}|² = |ψ_k|².

Only for norm-conserving pseudopotentials, collinear spin-unpolarised runs, and not gamma-only files: with
ultrasoft or PAW pseudopotentials |ψ|² is not the density (augmentation charges are missing); those cases are
refused and need ``engine: ppx``. BLAS runs with the threads the environment gives it (``OPENBLAS_NUM_THREADS``);
the FFTs use one thread.
"""

from __future__ import annotations

import logging
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from alml.data.grids import EnergyLadder, LdosMeta, broadening_kernel, energy_chunk, write_ldos_h5
from alml.dft.errors import DFTError
from alml.dft.wavefunctions import grid_index, read_wfc, wfc_files

log = logging.getLogger(__name__)

#: weights below this fraction of the kernel's peak are dropped (pp.x drops those below machine epsilon × max)
_NEGLIGIBLE = 1e-13
_USE_PPX = "use the pp.x engine (ldos: {engine: ppx})"


class UnsupportedWavefunctions(DFTError):
    """The native LDOS cannot be computed from these files (ultrasoft/PAW, gamma-only, spin-polarised)."""


# --- checks and symmetries from pw.x's save folder ----------------------------------------------------


def pseudo_type(path: str | Path) -> str:
    """The ``pseudo_type`` of a UPF file (v2 attribute or v1 header line): ``NC``, ``SL``, ``US``, ``PAW``, …"""
    text = Path(path).read_text(errors="replace")
    m = re.search(r"<PP_HEADER(.*?)(?:/>|</PP_HEADER>)", text, re.S)
    if m is None:
        raise DFTError(f"{path}: no PP_HEADER, not a UPF file")
    t = re.search(r'pseudo_type\s*=\s*"\s*([A-Za-z]+)', m.group(1))
    if t is not None:
        return t.group(1).upper()
    lines = [ln for ln in m.group(1).splitlines()[1:] if ln.strip()]
    return lines[2].split()[0].upper() if len(lines) > 2 else "?"  # UPF v1: version, element, type


def check_supported(save_dir: str | Path) -> ET.Element:
    """Refuse what the native LDOS cannot do; return the parsed ``data-file-schema.xml``."""
    save = Path(save_dir)
    root = ET.parse(save / "data-file-schema.xml").getroot()
    for sp in root.findall("output/atomic_species/species"):
        upf = save / str(sp.findtext("pseudo_file", "")).strip()
        kind = pseudo_type(upf)
        if kind not in ("NC", "SL"):
            raise UnsupportedWavefunctions(
                f"{upf.name} is a {kind} pseudopotential: |psi|^2 is not the density there (augmentation charges), "
                f"so the native LDOS would be wrong; {_USE_PPX}"
            )
    for tag in ("output/magnetization/lsda", "output/magnetization/noncolin", "output/basis_set/gamma_only"):
        if str(root.findtext(tag, "false")).strip().lower() == "true":
            raise UnsupportedWavefunctions(f"the native LDOS does not support {tag.rsplit('/', 1)[1]} runs; {_USE_PPX}")
    return root


def read_symmetries(root: ET.Element) -> list[tuple[np.ndarray, np.ndarray]]:
    """pw.x's crystal symmetries as maps x → R x + t of fractional coordinates: [(R (3, 3) int, t (3,))].

    QE stores s and ft (``output/symmetries``, the first ``nsym`` entries); in fractional coordinates the
    operation is x → s x − ft with s read row by row (measured on hcp Al, whose screw axes have ft ≠ 0). The
    convention is checked on every operation against QE's own ``equivalent_atoms``.
    """
    sy = root.find("output/symmetries")
    if sy is None:
        raise DFTError("pw.x's XML has no output/symmetries")
    nsym = int(str(sy.findtext("nsym")))
    cell = np.array([str(root.findtext(f"output/atomic_structure/cell/a{i}")).split() for i in (1, 2, 3)], float)
    pos = np.array([a.text.split() for a in root.findall("output/atomic_structure/atomic_positions/atom")], float)
    frac = pos @ np.linalg.inv(cell)
    ops = []
    for s in sy.findall("symmetry")[:nsym]:
        rot = np.array(str(s.findtext("rotation")).split(), dtype=float).reshape(3, 3)
        t = -np.array(str(s.findtext("fractional_translation")).split(), dtype=float)
        irt = np.array(str(s.findtext("equivalent_atoms")).split(), dtype=int) - 1
        d = frac @ rot.T + t - frac[irt]
        if np.abs(d - np.round(d)).max() > 1e-5:
            raise DFTError(f"symmetry '{s.find('info').get('name')}' does not map the atoms as QE says")  # type: ignore[union-attr]
        ops.append((np.rint(rot).astype(np.int64), t))
    return ops


def symmetry_permutations(ops: list[tuple[np.ndarray, np.ndarray]], shape: tuple[int, int, int]) -> list[np.ndarray]:
    """For each map x → R x + t, the flat grid index of R x_i + t for every grid point i (C order) of ``shape``."""
    n = np.asarray(shape, dtype=np.int64)
    idx = np.indices(tuple(shape)).reshape(3, -1)  # (3, N) grid indices
    perms = []
    for rot, t in ops:
        # (R x + t)_a n_a with x_b = i_b / n_b: R_ab n_a / n_b must be integer, as must t_a n_a
        scaled = rot * n[:, None] / n[None, :]
        shift = t * n
        if np.abs(scaled - np.rint(scaled)).max() > 1e-9 or np.abs(shift - np.rint(shift)).max() > 1e-6:
            raise DFTError(f"a symmetry of pw.x is not commensurate with the FFT grid {tuple(shape)}")
        new = (np.rint(scaled).astype(np.int64) @ idx + np.rint(shift).astype(np.int64)[:, None]) % n[:, None]
        perms.append(np.ravel_multi_index(tuple(new), tuple(shape)))
    return perms


# --- accumulation ---------------------------------------------------------------------------------------


def band_weights(ladder: EnergyLadder, eigenvalues: np.ndarray, k_weight: float, volume: float) -> np.ndarray:
    """(n_E, n_bands) weights w_k K_σ(E_j − ε_n) / Ω in 1/(eV·Å³) for eigenvalues (n_bands,) eV, Ω in Å³."""
    e = np.asarray(eigenvalues, dtype=float)
    return broadening_kernel(ladder.energies[:, None] - e[None, :], ladder.broadening, ladder.kernel) * (
        k_weight / volume
    )


def accumulate_kpoint(
    buf: np.ndarray,
    coefficients: np.ndarray,
    index: np.ndarray,
    weights: np.ndarray,
    shape: tuple[int, int, int],
    batch: int = 16,
    chunk: int = 1 << 15,
) -> int:
    """Add Σ_n weights[:, n] |ψ_n(r)|² into ``buf`` (n_E, N): coefficients (n_bands, n_pw) at flat grid
    ``index`` (n_pw,), ``weights`` (n_E, n_bands). Bands whose weights are all negligible are skipped, and each
    batch only touches the energies where its weights are not. Returns the number of bands used."""
    n_points = int(np.prod(shape))
    cut = _NEGLIGIBLE * float(np.abs(weights).max(initial=0.0))
    live = np.nonzero(np.abs(weights).max(axis=0) > cut)[0]
    for b0 in range(0, live.size, batch):
        bands = live[b0 : b0 + batch]
        w = weights[:, bands]
        rows = np.nonzero(np.abs(w).max(axis=1) > cut)[0]
        j0, j1 = int(rows[0]), int(rows[-1]) + 1
        grid = np.zeros((bands.size, n_points), dtype=np.complex128)
        grid[:, index] = coefficients[bands]
        psi = _ifft(grid.reshape(bands.size, *shape))
        dens = (psi.real**2 + psi.imag**2).reshape(bands.size, n_points)
        norm = dens.sum(axis=1) / n_points  # Σ_r |ψ|² Ω/N with ψ = Ω^{-1/2} Σ c e^{iGr}
        if np.abs(norm - 1.0).max() > 1e-6:
            raise DFTError(f"wavefunctions are not normalised to 1 over the cell (Σ|ψ|²dV = {norm.min():.8f} …)")
        wj = np.ascontiguousarray(w[j0:j1])
        for p0 in range(0, n_points, chunk):
            buf[j0:j1, p0 : p0 + chunk] += wj @ dens[:, p0 : p0 + chunk]
    return int(live.size)


def _ifft(grid: np.ndarray) -> np.ndarray:
    """Σ_G c_G e^{2πi m·i/n} over the last three axes (unnormalised inverse FFT), one thread."""
    from scipy import fft

    return fft.ifftn(grid, axes=(-3, -2, -1), norm="forward", workers=1, overwrite_x=True)


def native_ldos(
    save_dir: str | Path,
    ladder: EnergyLadder,
    shape: tuple[int, int, int],
    eigenvalues: np.ndarray,
    k_weights: np.ndarray,
    volume: float,
    batch: int = 16,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The unsymmetrised LDOS (n_E, N) float64 in 1/(eV·Å³) (points in C order over ``shape``) from the
    wavefunctions in ``save_dir``, and the symmetry permutations that :func:`symmetrise` averages over.

    ``eigenvalues`` (n_k, n_bands) eV and ``k_weights`` (n_k,) (sum 2) are those of the run that wrote the
    files (its XML); ``volume`` is the cell volume in Å³.
    """
    root = check_supported(save_dir)
    files = wfc_files(save_dir)
    eig = np.asarray(eigenvalues, dtype=float)
    if len(files) != eig.shape[0] or len(k_weights) != eig.shape[0]:
        raise DFTError(f"{save_dir}: {len(files)} wavefunction files for {eig.shape[0]} k-points in the XML")
    perms = symmetry_permutations(read_symmetries(root), shape)
    buf = np.zeros((ladder.n, int(np.prod(shape))), dtype=np.float64)
    t0 = time.perf_counter()
    for k, path in enumerate(files):
        wfc = read_wfc(path)
        if wfc.gamma_only:
            raise UnsupportedWavefunctions(f"{path} is a gamma-only file (half the G vectors); {_USE_PPX}")
        if wfc.npol != 1 or wfc.ispin != 1:
            raise UnsupportedWavefunctions(f"{path}: spin-polarised or noncollinear wavefunctions; {_USE_PPX}")
        if wfc.ik != k + 1 or wfc.n_bands != eig.shape[1]:
            raise DFTError(f"{path}: k-point {wfc.ik} with {wfc.n_bands} bands, expected {k + 1} with {eig.shape[1]}")
        w = band_weights(ladder, eig[k], float(k_weights[k]), volume)
        used = accumulate_kpoint(buf, wfc.coefficients, grid_index(wfc.miller, shape), w, shape, batch)
        dt = time.perf_counter() - t0
        log.info("native LDOS: k-point %d/%d (%d of %d bands in the ladder), %.1f s, ~%.0f s left",
                 k + 1, len(files), used, wfc.n_bands, dt, dt / (k + 1) * (len(files) - k - 1))
    return buf, perms


def symmetrise(values: np.ndarray, perms: list[np.ndarray]) -> np.ndarray:
    """Values (N, m), points first, averaged over the symmetry permutations (each (N,)): (1/n_sym) Σ_S v(S r).

    Points first, so that each gather moves a row of m contiguous values (3–6x faster than gathering columns).
    """
    if len(perms) <= 1:
        return values
    v = np.ascontiguousarray(values)
    out, tmp = np.zeros_like(v), np.empty_like(v)
    for p in perms:
        np.take(v, p, axis=0, out=tmp)
        out += tmp
    out /= len(perms)
    return out


def write_native_ldos_h5(
    save_dir: str | Path, meta: LdosMeta, path: str | Path, eigenvalues: np.ndarray, k_weights: np.ndarray,
    dtype: str = "float32", batch: int = 16,
) -> Path:
    """Compute the native LDOS from ``save_dir`` for ``meta`` (ladder, grid, structure) and write ``path``
    (:func:`alml.data.grids.write_ldos_h5`, atomic), symmetrised and transposed to (nx, ny, nz, n_E) by
    energy blocks (peak memory ≈ the float64 buffer plus one block)."""
    shape = tuple(int(v) for v in meta.shape)
    buf, perms = native_ldos(save_dir, meta.ladder, shape, eigenvalues, k_weights,  # type: ignore[arg-type]
                             float(meta.atoms.get_volume()), batch)

    def fill(ds) -> None:  # noqa: ANN001
        ce = energy_chunk(shape, meta.ladder.n)  # type: ignore[arg-type]
        for j0 in range(0, meta.ladder.n, ce):
            block = symmetrise(buf[j0 : j0 + ce].T, perms)  # (N, ce)
            ds[..., j0 : j0 + block.shape[1]] = block.reshape(*shape, block.shape[1]).astype(dtype)

    return write_ldos_h5(path, meta, fill, dtype=np.dtype(dtype))
