"""The stages of :func:`alml.surrogate.predict.predict`: two streaming passes over the grid and the energies.

Arrays: M committee members, P grid points of a block (an interleaved sub-grid), piece or batch, n_e ladder
energies, K descriptor components.
Per-member arrays carry one extra last row for the committee mean (index M), so member k is row k and the
mean is row −1. Each stage adds its wall time to ``timings`` (seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms

from alml.data.grids import EnergyLadder
from alml.surrogate.inputs import with_globals
from alml.surrogate.observables import Method, band_energy, entropy_term, fermi_level, integration_weights

Advance = Callable[[str], None]


def members_features(model: Any, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Every member's last hidden layer h (M, P, H) float64 for raw descriptors x (P, K) and the cell's global
    inputs g (G,) (:mod:`alml.surrogate.inputs`). The LDOS is affine in h (:class:`Readout`)."""
    import torch

    dtype = next(model.members.parameters()).dtype
    with torch.no_grad():
        xb = torch.as_tensor(with_globals(x, g), dtype=dtype)
        return np.stack([net.features(xb).double().numpy() for net in model.members])


@dataclass(frozen=True)
class Readout:
    """The members' output layers, scaling included: LDOS_m(p) = a_m h_m(p) + c_m in 1/(eV·Å³).

    Because the map is affine, the DOS needs only Σ_p h_m(p) and a density only h_m(p) · (a_mᵀ w): the passes
    never form the (M, P, n_e) LDOS unless it is written out. The output layer is a large share of a member's
    work: H × n_e multiply-adds per point, 116 k of 313 k for 92 → 400 → 400 → 291.
    """

    a: np.ndarray  #: (M, n_e, H)
    c: np.ndarray  #: (M, n_e)

    @classmethod
    def of(cls, model: Any) -> Readout:
        parts = [net.readout() for net in model.members]
        return cls(np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts]))

    def mean_ldos(self, h: np.ndarray) -> np.ndarray:
        """The committee-mean LDOS (P, n_e) of features h (M, P, H)."""
        return np.einsum("mph,meh->pe", h, self.a) / len(self.a) + self.c.mean(axis=0)

    def densities(self, h: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Densities (M+1, P) of features h (M, P, H) with occupation weights (M+1, n_e): each member's LDOS with
        its own weights, then the committee-mean LDOS with the last row."""
        n_m = len(self.a)
        own = np.einsum("meh,me->mh", self.a, weights[:n_m])
        of_mean = np.einsum("meh,e->mh", self.a, weights[n_m]) / n_m
        rho = np.empty((n_m + 1, h.shape[1]))
        rho[:n_m] = np.einsum("mph,mh->mp", h, own) + np.einsum("me,me->m", self.c, weights[:n_m])[:, None]
        rho[n_m] = np.einsum("mph,mh->p", h, of_mean) + self.c.mean(axis=0) @ weights[n_m]
        return rho


def _desc_chunks(n_points: int, k: int, itemsize: int) -> tuple[int, int, int]:
    """HDF5 chunks of the (blocks, points, K) descriptor cache: one block's rows, ≈ 4 MB per chunk."""
    return (1, max(1, min(n_points, (4 << 20) // (k * itemsize))), k)


def dos_pass(
    atoms: Atoms,
    model: Any,
    ctx: Any,
    config: Any,
    strides: tuple[int, int, int],
    cache: Any,
    timings: dict[str, float],
    advance: Advance,
) -> np.ndarray:
    """Pass 1: descriptors block by block (interleaved sub-grids of ``strides``, :mod:`alml.descriptors.grid_blocks`;
    cached flat in ``cache['descriptors']`` (blocks, points, K)), the network on each, and every member's DOS
    (M, n_e) in states/eV."""
    from alml.descriptors import iter_grid_blocks

    nx, ny, nz = ctx.shape
    k = ctx.settings.n_components
    if model.n_in != k + len(ctx.globals):
        raise ValueError(f"the model takes {model.n_in - len(ctx.globals)} descriptor components but its settings "
                         f"give {k}")
    dtype = np.dtype(config.cache_dtype)
    n_blocks = int(np.prod(strides))
    per_block = nx * ny * nz // n_blocks
    desc = cache.create_dataset(
        "descriptors", shape=(n_blocks, per_block, k), dtype=dtype, chunks=_desc_chunks(per_block, k, dtype.itemsize)
    )
    readout = Readout.of(model)
    sums = np.zeros((model.n_members, readout.a.shape[2]))  # Σ_p h_m(p)
    # LAMMPS's float64 values are cast straight to the cache dtype: the network sees what pass 2 reads back
    blocks = iter_grid_blocks(atoms, ctx.settings, ctx.shape, strides=strides, workers=config.workers, dtype=dtype)
    for n in range(n_blocks):
        t0 = time.perf_counter()
        block = next(blocks)
        timings["descriptors"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        x = block.rows
        desc[n] = x
        timings["io"] += time.perf_counter() - t0
        for b0 in range(0, len(x), config.batch_points):
            t0 = time.perf_counter()
            h = members_features(model, x[b0 : b0 + config.batch_points], ctx.globals)
            t1 = time.perf_counter()
            sums += h.sum(axis=1)
            timings["network"] += t1 - t0
            timings["observables"] += time.perf_counter() - t1
        del block, x
        advance(f"descriptors + DOS: block {n + 1} of {n_blocks}")
    blocks.close()  # ends the MPI runner (its temporary folder) now, not at garbage collection
    n_points = nx * ny * nz
    dos_sums = np.einsum("meh,mh->me", readout.a, sums) + n_points * readout.c
    return dos_sums * (abs(atoms.cell.volume) / n_points)


@dataclass(frozen=True)
class MemberObservables:
    """Per member and (last row) for the mean DOS: μ (M+1,) eV, E_b and −TS (M+1,) eV, weights (M+1, n_e)."""

    mu: np.ndarray
    band: np.ndarray
    minus_ts: np.ndarray
    weights: np.ndarray  #: occupation weights c_j(μ): n(r) = Σ_j c_j d_j(r)


def members_observables(dos_members: np.ndarray, ladder: EnergyLadder, ctx: Any, method: Method) -> MemberObservables:
    """Fermi level, band energy, −TS and occupation weights of each member's DOS and of their mean."""
    rows = np.vstack([dos_members, dos_members.mean(axis=0)])
    mu, band, ts, w = [], [], [], []
    for i, d in enumerate(rows):
        try:
            m = fermi_level(d, ladder, ctx.n_electrons, ctx.temperature, method)
        except ValueError as err:
            who = "the committee mean" if i == len(rows) - 1 else f"member {i}"
            raise ValueError(f"{who}: {err} (the predicted LDOS is unphysical for this structure)") from None
        mu.append(m)
        band.append(band_energy(d, ladder, m, ctx.temperature, method))
        ts.append(entropy_term(d, ladder, m, ctx.temperature, method))
        w.append(integration_weights(ladder, "occupation", m, ctx.temperature, method))
    return MemberObservables(np.array(mu), np.array(band), np.array(ts), np.array(w))


#: bytes of the mean LDOS held at once in pass 2 when it is written out (whole coarse k-planes, at least one)
LDOS_PIECE_BYTES = 256 << 20


def density_pass(
    model: Any,
    ctx: Any,
    config: Any,
    strides: tuple[int, int, int],
    weights: np.ndarray,
    cache: Any,
    timings: dict[str, float],
    advance: Advance,
    ldos_ds: Any = None,
) -> None:
    """Pass 2: the network again on the cached descriptors; densities (M+1, nx, ny, nz) in 1/Å³ into
    ``cache['density']`` (members, then the mean LDOS's); the mean LDOS into ``ldos_ds`` when given.

    Each block is read in pieces of whole coarse k-planes and written back with strided assignment
    (``dens[:, p::sx, q::sy, r::sz]``); with strides only along c those are whole (nx, ny, 1) HDF5 chunks.
    """
    from alml.descriptors.grid_blocks import block_phases

    nx, ny, nz = ctx.shape
    sx, sy, sz = strides
    mx, my, mz = nx // sx, ny // sy, nz // sz
    n_m = model.n_members
    desc = cache["descriptors"]
    dens = cache.create_dataset("density", shape=(n_m + 1, nx, ny, nz), dtype=np.float64, chunks=(1, nx, ny, 1))
    plane = mx * my
    piece = mx * my * mz
    if ldos_ds is not None:
        piece = min(piece, max(plane, LDOS_PIECE_BYTES // (8 * model.n_out)))
    planes = max(1, piece // plane)
    phases = block_phases(strides)
    readout = Readout.of(model)
    for n, (p, q, r) in enumerate(phases):
        for k0 in range(0, mz, planes):
            k1 = min(mz, k0 + planes)
            t0 = time.perf_counter()
            x = desc[n, k0 * plane : k1 * plane]
            timings["io"] += time.perf_counter() - t0
            rho, mean_ldos = _piece_density(model, readout, x, ctx.globals, weights, config.batch_points,
                                            ldos_ds is not None, timings)
            t0 = time.perf_counter()
            idx = (slice(p, None, sx), slice(q, None, sy), slice(r + sz * k0, r + sz * (k1 - 1) + 1, sz))
            dens[(slice(None), *idx)] = rho.reshape(n_m + 1, k1 - k0, my, mx).transpose(0, 3, 2, 1)
            if mean_ldos is not None:
                ldos_ds[idx] = mean_ldos.reshape(k1 - k0, my, mx, model.n_out).transpose(2, 1, 0, 3)
            timings["io"] += time.perf_counter() - t0
        advance(f"density: block {n + 1} of {len(phases)}")


def _piece_density(
    model: Any, readout: Readout, x: np.ndarray, g: np.ndarray, weights: np.ndarray, batch: int, want_ldos: bool,
    timings: dict[str, float],
) -> tuple[np.ndarray, np.ndarray | None]:
    """Densities (M+1, P) in 1/Å³ of descriptors x (P, K), members then the mean LDOS's; the mean LDOS (P, n_e)."""
    n_m = model.n_members
    rho = np.empty((n_m + 1, len(x)))
    mean_ldos = np.empty((len(x), model.n_out)) if want_ldos else None
    for b0 in range(0, len(x), batch):
        b1 = min(len(x), b0 + batch)
        t0 = time.perf_counter()
        h = members_features(model, x[b0:b1], g)
        t1 = time.perf_counter()
        rho[:, b0:b1] = readout.densities(h, weights)
        if mean_ldos is not None:
            mean_ldos[b0:b1] = readout.mean_ldos(h)
        timings["network"] += t1 - t0
        timings["observables"] += time.perf_counter() - t1
    return rho, mean_ldos


def energies(
    atoms: Atoms,
    ctx: Any,
    obs: MemberObservables,
    cache: Any,
    keep_density: bool,
    timings: dict[str, float],
    advance: Advance,
) -> tuple[dict[str, np.ndarray], float, np.ndarray | None]:
    """Total-energy terms (each (M+1,) eV: members, then the mean) from the cached densities, one at a time;
    ∫ n dr of the mean density; the mean density itself when ``keep_density``."""
    from alml.surrogate.predict import TERMS
    from alml.surrogate.reciprocal import ReciprocalGrid
    from alml.surrogate.total_energy import core_density, ewald_energy, total_energy

    t0 = time.perf_counter()
    dens = cache["density"]
    pps = ctx.pseudos
    recip = ReciprocalGrid.build(atoms.cell[:], ctx.shape, ctx.ecut)  # shared by every density
    core = None
    if any(p.rho_core is not None for p in pps.values()):
        core = core_density(atoms, ctx.shape, pps, ctx.ecut, recip)
    ewald = ewald_energy(atoms, {el: p.z_valence for el, p in pps.items()})
    out: dict[str, list[float]] = {k: [] for k in TERMS}
    density = None
    n_int = float("nan")
    for i in range(len(dens)):
        n = dens[i]
        t = total_energy(n, atoms, obs.band[i], obs.minus_ts[i], pps, ctx.ecut, core=core, ewald=ewald, recip=recip)
        for k, v in t.as_dict().items():
            out[k].append(v)
        advance("energy: " + ("committee mean" if i == len(dens) - 1 else f"member {i}"))
        if i == len(dens) - 1:
            n_int = float(n.sum() * abs(atoms.cell.volume) / n.size)
            density = n if keep_density else None
    timings["energy"] += time.perf_counter() - t0
    return {k: np.array(v) for k, v in out.items()}, n_int, density
