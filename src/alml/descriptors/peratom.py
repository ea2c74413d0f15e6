"""Per-atom bispectrum descriptors B_i and their per-pair derivatives dB_i/dr_j, from LAMMPS.

How the pairs are made image-resolved. ``compute snap ... bikflag 1 dgradflag 1`` lists dB_i/dr_j
for every pair of atom *ids* in a dense (N + 3N² + 1, K + 3) array, and it files the contribution of
a periodic image of j under j's id. In a cell smaller than twice the cutoff one atom i sees several
images of the same j, so the folded entry no longer has a single displacement r_ij and the virial
cannot be formed from it. alml therefore never hands LAMMPS the periodic cell for gradients: an
image-resolved neighbour list (ASE's ``primitive_neighbor_list``) gives, for a chunk of central atoms,
every neighbour image within the cutoff; those images become distinct atoms (own ids) of a
non-periodic cluster; ``compute snap`` runs on that cluster with only the central atoms in its group.
Each (central atom, neighbour image) pair is then a separate row with its own r_ij, and the dense
array stays small because the cluster is (chunk + its neighbours), bounded by ``max_cluster_atoms``.

Sign found in LAMMPS 2025.7.22 (verified against finite differences in the tests): the dgradflag
rows hold **minus** dB_i/dr_j (the values are accumulated like ``snad/atom``); alml negates them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from alml.descriptors.lammps_session import LammpsBox, LammpsSession, lammps_box, wrapped_fractional
from alml.descriptors.settings import BispectrumSettings

#: Memory (bytes) LAMMPS may use for one chunk's dense dgradflag arrays (it keeps two copies).
DEFAULT_CHUNK_BYTES = 256 * 2**20
#: Cluster size per chunk: the dense array costs ~ cluster² per chunk, each chunk a fixed LAMMPS setup;
#: 45-60 atoms was fastest for fcc Al at the MALA cutoff (2J = 6 and 10, 108 atoms).
DEFAULT_CLUSTER_ATOMS = 60


@dataclass(frozen=True)
class PerAtomDescriptors:
    """Bispectrum descriptors of N atoms, and optionally their derivatives over P image-resolved pairs.

    Shapes and units (float64 throughout; positions in Å):

    - ``B`` (N, K): descriptors of each atom (K = ``settings.n_components``).
    - ``dBdr`` (P, 3, K): ``dBdr[p, a, k]`` = ∂B_{i_p, k} / ∂r_{j_p, a} (1/Å), where the derivative is
      taken with respect to the position of the *image* of atom ``j[p]`` displaced by ``rij[p]`` from
      atom ``i[p]``. Pairs are sorted by ``i``; each atom's self term (``i == j``, ``rij == 0``,
      ∂B_i/∂r_i) comes first among its pairs. A periodic image of i itself appears as a pair
      ``i == j`` with ``rij != 0``.
    - ``i``, ``j`` (P,) int64: central atom and owner (0..N-1) of the neighbour image.
    - ``rij`` (P, 3): r_j(image) - r_i (Å), exactly as used by LAMMPS.

    For an energy E = Σ_i E_i(B_i) with G_i = ∂E_i/∂B_i (N, K):
    forces F_j = -Σ_{p: j_p = j} dBdr[p] · G_{i_p}  (see :meth:`forces`), and
    stress σ = (1/V) ∂E/∂ε = (1/V) Σ_p (dBdr[p] · G_{i_p}) ⊗ rij[p]  (ASE's sign, see :meth:`stress`);
    self terms have rij = 0 and add nothing to σ.
    """

    B: np.ndarray
    dBdr: np.ndarray | None = None
    i: np.ndarray | None = None
    j: np.ndarray | None = None
    rij: np.ndarray | None = None

    @property
    def n_atoms(self) -> int:
        return int(self.B.shape[0])

    @property
    def n_components(self) -> int:
        return int(self.B.shape[1])

    @property
    def has_gradients(self) -> bool:
        return self.dBdr is not None

    def _pair_gradients(self, dEdB: np.ndarray) -> np.ndarray:
        """G_p = dBdr[p] · ∂E/∂B_{i_p}: (P, 3), the gradient of E_i with respect to r_j(image)."""
        if self.dBdr is None or self.i is None:
            raise ValueError("these descriptors were computed without gradients")
        dEdB = np.asarray(dEdB, dtype=float)
        if dEdB.shape != self.B.shape:
            raise ValueError(f"dE/dB must have shape {self.B.shape}, got {dEdB.shape}")
        return np.einsum("pak,pk->pa", self.dBdr, dEdB[self.i])

    def forces(self, dEdB: np.ndarray) -> np.ndarray:
        """Forces (N, 3) in eV/Å for an energy E = Σ_i E_i(B_i) with ``dEdB`` = ∂E/∂B (N, K) in eV."""
        g = self._pair_gradients(dEdB)
        f = np.zeros((self.n_atoms, 3))
        np.add.at(f, self.j, -g)
        return f

    def stress(self, dEdB: np.ndarray, volume: float) -> np.ndarray:
        """Stress (3, 3) in eV/Å³, ASE convention σ = (1/V) ∂E/∂ε (ASE's ``get_stress`` sign)."""
        g = self._pair_gradients(dEdB)
        return np.einsum("pa,pb->ab", g, self.rij) / volume

    def virial(self, dEdB: np.ndarray) -> np.ndarray:
        """Virial W = Σ_p rij[p] ⊗ f_p with f_p = -G_p the pair's force on j (eV); W = -V σ."""
        g = self._pair_gradients(dEdB)
        return -np.einsum("pa,pb->ab", self.rij, g)


def atom_types(atoms: Atoms, settings: BispectrumSettings) -> np.ndarray:
    """LAMMPS types (1-based, settings' element order) of the atoms; error on an unknown element."""
    order = {s: k + 1 for k, s in enumerate(settings.symbols)}
    symbols = atoms.get_chemical_symbols()
    unknown = sorted(set(symbols) - set(order))
    if unknown:
        raise ValueError(f"elements {unknown} have no bispectrum parameters (settings know {settings.symbols})")
    return np.array([order[s] for s in symbols], dtype=np.int64)


def per_atom(
    atoms: Atoms,
    settings: BispectrumSettings,
    gradients: bool = True,
    *,
    max_cluster_atoms: int | None = None,
) -> PerAtomDescriptors:
    """Bispectrum B_i of every atom and, with ``gradients``, the image-resolved pairs dB_i/dr_j.

    Periodic along ``atoms.pbc``; cells of any shape and size (the cutoff may exceed the cell).
    ``max_cluster_atoms`` bounds the size of each LAMMPS cluster used for gradients (its memory grows as
    the square): default 60 atoms, fewer if one chunk's arrays would pass 256 MiB.
    """
    types = atom_types(atoms, settings)
    if len(atoms) == 0:
        k = settings.n_components
        empty = PerAtomDescriptors(B=np.zeros((0, k)))
        if not gradients:
            return empty
        return PerAtomDescriptors(
            B=empty.B,
            dBdr=np.zeros((0, 3, k)),
            i=np.zeros(0, np.int64),
            j=np.zeros(0, np.int64),
            rij=np.zeros((0, 3)),
        )
    if not gradients and all(atoms.pbc):
        b = _periodic_sna_atom(atoms, types, settings)
        return PerAtomDescriptors(B=_with_quadratic(b, settings))
    pairs = _image_pairs(atoms, types, settings)
    kq = settings.n_linear
    if max_cluster_atoms is None:
        max_cluster_atoms = min(DEFAULT_CLUSTER_ATOMS, int(np.sqrt(DEFAULT_CHUNK_BYTES / (2 * 3 * (kq + 3) * 8))))
    b, dbdr = _cluster_snap(atoms, types, settings, pairs, max_cluster_atoms, gradients)
    if not gradients:
        return PerAtomDescriptors(B=_with_quadratic(b, settings))
    if settings.quadraticflag:
        dbdr = _quadratic_gradients(b, dbdr, pairs.i)
        b = _with_quadratic(b, settings)
    return PerAtomDescriptors(B=b, dBdr=dbdr, i=pairs.i, j=pairs.j, rij=pairs.rij)


# --- periodic box, no gradients ---------------------------------------------------------------


def _periodic_sna_atom(atoms: Atoms, types: np.ndarray, settings: BispectrumSettings) -> np.ndarray:
    box = lammps_box(atoms.cell[:], atoms.pbc)
    x = box.to_lammps(wrapped_fractional(atoms.cell[:], atoms.positions, atoms.pbc))
    with LammpsSession() as s:
        s.create_system(box, x, types, len(settings.elements), ghost_cutoff=settings.max_cutoff)
        s.command(f"compute alml_b all sna/atom {settings.sna_args()}")
        s.run0()
        return s.atom_array("alml_b")


# --- image-resolved pairs and clusters ---------------------------------------------------------


@dataclass(frozen=True)
class _Pairs:
    """Image-resolved pairs: self terms first per i; ``key`` = (owner, S0, S1, S2) of each neighbour."""

    i: np.ndarray
    j: np.ndarray
    shift: np.ndarray  # (P, 3) int: lattice image of j
    rij: np.ndarray
    start: np.ndarray  # (N + 1,) pairs of atom i are start[i]:start[i+1]


def _image_pairs(atoms: Atoms, types: np.ndarray, settings: BispectrumSettings) -> _Pairs:
    from ase.neighborlist import primitive_neighbor_list

    n = len(atoms)
    cell = atoms.cell[:]
    if not all(atoms.pbc):
        # ASE needs a usable cell; non-periodic directions only bound the binning.
        cell = atoms.cell.complete()[:] if atoms.cell.rank < 3 else cell
    ii, jj, dd, ss = primitive_neighbor_list(
        "ijDS", atoms.pbc, cell, atoms.positions, settings.max_cutoff * (1.0 + 1e-9) + 1e-6
    )
    symbols = settings.symbols
    rad = np.array([settings.elements[s].radius for s in symbols])
    cut = settings.rcutfac * (rad[types[ii] - 1] + rad[types[jj] - 1])
    rsq = np.einsum("pa,pa->p", dd, dd)
    keep = (rsq < cut**2) & (rsq > 1e-20)  # LAMMPS's own test
    ii, jj, dd, ss = ii[keep], jj[keep], dd[keep], ss[keep]
    # self terms, then neighbours; stable sort by i keeps ASE's neighbour order within each i
    ar = np.arange(n)
    i_all = np.concatenate([ar, ii])
    j_all = np.concatenate([ar, jj])
    s_all = np.concatenate([np.zeros((n, 3), np.int64), ss.astype(np.int64)])
    d_all = np.concatenate([np.zeros((n, 3)), dd])
    first = np.concatenate([np.zeros(n, np.int64), np.ones(len(ii), np.int64)])
    order = np.lexsort((first, i_all))
    i_all, j_all, s_all, d_all = i_all[order], j_all[order], s_all[order], d_all[order]
    start = np.searchsorted(i_all, np.arange(n + 1))
    return _Pairs(i=i_all, j=j_all, shift=s_all, rij=d_all, start=start)


def _chunks(atoms: Atoms, pairs: _Pairs, max_cluster: int, max_cutoff: float) -> list[np.ndarray]:
    """Groups of central atoms, spatially compact, whose clusters hold at most ``max_cluster`` atoms."""
    n = len(atoms)
    if all(atoms.pbc):
        frac = wrapped_fractional(atoms.cell[:], atoms.positions, atoms.pbc)
        heights = atoms.cell.volume / np.linalg.norm(np.cross(atoms.cell[[1, 2, 0]], atoms.cell[[2, 0, 1]]), axis=1)
        nbin = np.maximum(1, np.floor(heights / max(max_cutoff, 1e-6))).astype(int)
        bins = np.minimum((frac * nbin).astype(int), nbin - 1)
    else:
        x = atoms.positions - atoms.positions.min(axis=0)
        bins = np.floor(x / max(max_cutoff, 1e-6)).astype(int)
    order = np.lexsort((bins[:, 2], bins[:, 1], bins[:, 0]))
    chunks: list[list[int]] = []
    current: list[int] = []
    members: set[tuple[int, int, int, int]] = set()
    for c in order:
        sl = slice(pairs.start[c], pairs.start[c + 1])
        keys = {(int(j), *map(int, s)) for j, s in zip(pairs.j[sl], pairs.shift[sl], strict=True)}
        union = members | keys
        if current and len(union) > max_cluster:
            chunks.append(current)
            current, union = [], keys
        current.append(int(c))
        members = union
    if current:
        chunks.append(current)
    assert sum(len(c) for c in chunks) == n
    return [np.array(c, dtype=np.int64) for c in chunks]


def _cluster_snap(
    atoms: Atoms,
    types: np.ndarray,
    settings: BispectrumSettings,
    pairs: _Pairs,
    max_cluster: int,
    gradients: bool,
) -> tuple[np.ndarray, np.ndarray]:
    n = len(atoms)
    k = settings.n_linear
    b = np.zeros((n, k))
    dbdr = np.zeros((len(pairs.i), 3, k)) if gradients else np.zeros((0, 3, k))
    cell = np.asarray(atoms.cell[:])
    ntypes = len(settings.elements)
    chunks = _chunks(atoms, pairs, max_cluster, settings.max_cutoff)
    with LammpsSession() as s:
        for centers in chunks:
            # cluster atoms: the centres first (image 0), then every other neighbour image
            index: dict[tuple[int, int, int, int], int] = {}
            for c in centers:
                index[(int(c), 0, 0, 0)] = len(index)
            psl = np.concatenate([np.arange(pairs.start[c], pairs.start[c + 1]) for c in centers])
            for p in psl:
                key = (int(pairs.j[p]), *map(int, pairs.shift[p]))
                if key not in index:
                    index[key] = len(index)
            keys = np.array(list(index), dtype=np.int64)
            owner, shift = keys[:, 0], keys[:, 1:]
            x = atoms.positions[owner] + shift @ cell
            lo = x.min(axis=0) - 1.0
            extent = x.max(axis=0) - lo + 1.0
            box = LammpsBox(h=np.diag(extent), rotation=np.eye(3), pbc=(False, False, False))
            s.clear()
            s.create_system(box, x - lo, types[owner], ntypes, ghost_cutoff=settings.max_cutoff)
            ids = " ".join(str(i + 1) for i in range(len(centers)))
            s.command(f"group alml_c id {ids}")
            if gradients:
                s.command(f"compute alml_s alml_c snap {settings.sna_args()} bikflag 1 dgradflag 1")
                s.run0()
                a = s.global_array("alml_s", copy=False)  # (ncl + 3 ncl² + 1, K + 3)
                ncl = len(keys)
                b[centers] = a[: len(centers), 3:]
                li = np.repeat(np.arange(len(centers)), [pairs.start[c + 1] - pairs.start[c] for c in centers])
                lj = np.array([index[(int(pairs.j[p]), *map(int, pairs.shift[p]))] for p in psl], dtype=np.int64)
                rows = ncl + lj[:, None] * 3 * ncl + 3 * li[:, None] + np.arange(3)[None, :]
                dbdr[psl] = -a[rows, 3:]  # LAMMPS stores -dB_i/dr_j
            else:
                s.command(f"compute alml_b alml_c sna/atom {settings.sna_args()}")
                s.run0()
                b[centers] = s.atom_array("alml_b")[: len(centers)]
    return b, dbdr


# --- quadratic terms (LAMMPS order: for k: 0.5 B_k², then B_k B_l for l > k) ---------------------


def _quadratic_index(k: int) -> tuple[np.ndarray, np.ndarray]:
    iu = np.triu_indices(k)
    return iu[0], iu[1]


def _with_quadratic(b: np.ndarray, settings: BispectrumSettings) -> np.ndarray:
    if not settings.quadraticflag:
        return b
    a, c = _quadratic_index(b.shape[1])
    q = b[:, a] * b[:, c]
    q[:, a == c] *= 0.5
    return np.concatenate([b, q], axis=1)


def _quadratic_gradients(b: np.ndarray, dbdr: np.ndarray, i: np.ndarray) -> np.ndarray:
    a, c = _quadratic_index(b.shape[1])
    bi = b[i]  # (P, K)
    dq = dbdr[:, :, a] * bi[:, None, c] + bi[:, None, a] * dbdr[:, :, c]
    dq[:, :, a == c] *= 0.5
    return np.concatenate([dbdr, dq], axis=2)
