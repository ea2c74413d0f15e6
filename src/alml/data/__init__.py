"""Data: the structure store (ASE database) and structure file import/export."""

from alml.data.store import Store, export_extxyz, import_extxyz, read_structures

__all__ = ["Store", "export_extxyz", "import_extxyz", "read_structures"]
