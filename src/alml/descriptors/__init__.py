"""Bispectrum (SNAP) descriptors from LAMMPS: per atom with image-resolved gradients, and on a grid.

Public API:

- :class:`BispectrumSettings`, :class:`ElementParams`, :data:`MALA_AL`, :data:`PRESETS`
- :func:`per_atom` -> :class:`PerAtomDescriptors` (B, dBdr, i, j, rij; forces/stress helpers)
- :func:`on_grid`, :func:`grid_points`, :func:`qe_fft_shape`
- :func:`iter_grid_blocks` -> :class:`GridBlock` (interleaved blocks, bounded memory), :func:`choose_strides`
- :func:`write_grid_h5`, :func:`save_grid_h5`, :func:`read_grid_h5`
- :class:`LammpsSession`, :func:`lammps_box`, :class:`LammpsNotAvailableError`
"""

from alml.descriptors.grid import grid_points, qe_fft_shape
from alml.descriptors.grid_blocks import GridBlock, choose_strides, iter_grid_blocks, on_grid
from alml.descriptors.grid_io import read_grid_h5, save_grid_h5, write_grid_h5
from alml.descriptors.lammps_session import LammpsBox, LammpsNotAvailableError, LammpsSession, lammps_box
from alml.descriptors.peratom import PerAtomDescriptors, per_atom
from alml.descriptors.settings import MALA_AL, PRESETS, BispectrumSettings, ElementParams, n_bispectrum

__all__ = [
    "MALA_AL",
    "PRESETS",
    "BispectrumSettings",
    "ElementParams",
    "GridBlock",
    "LammpsBox",
    "LammpsNotAvailableError",
    "LammpsSession",
    "PerAtomDescriptors",
    "choose_strides",
    "grid_points",
    "iter_grid_blocks",
    "lammps_box",
    "n_bispectrum",
    "on_grid",
    "per_atom",
    "qe_fft_shape",
    "read_grid_h5",
    "save_grid_h5",
    "write_grid_h5",
]
