"""Labelled structures in an ASE database: an SQLite file by default, PostgreSQL by URL.

Each row holds one structure with its labels (energy, free_energy, forces in eV/Å, stress in eV/Å³,
as a :class:`~ase.calculators.singlepoint.SinglePointCalculator`) and the key-value pairs

``source``        how the structure was made (builder recipe, MD run, import file)
``generation``    active-learning generation that produced it (0: initial data)
``settings_hash`` hash of the DFT settings that labelled it ("" for unlabelled structures)
``structure_hash`` :func:`alml.structures.structure_hash` of the structure
``created``       ISO-8601 UTC time of insertion (ASE also keeps ``ctime``)

plus any extra key-value pairs given to :meth:`Store.add`. A (structure_hash, settings_hash) pair
is stored once. Concurrent writers, threads or processes, are safe: check-and-insert is serialised
by a file lock beside an SQLite file, or by a PostgreSQL advisory lock held for the transaction.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ase.io
from ase import Atoms
from ase.db import connect
from ase.db.core import Database, reserved_keys

from alml.io import atomic_write
from alml.structures import structure_hash

PG_PREFIXES = ("postgresql://", "postgres://")
MANAGED_KEYS = ("source", "generation", "settings_hash", "structure_hash", "created")
"""Key-value pairs every row carries, set by :meth:`Store.add`."""

# Advisory-lock key (any 64-bit integer shared by all alml writers of one PostgreSQL database).
_PG_LOCK_KEY = 0x616C6D6C_73746F72  # "almlstor"
_LOCK_TIMEOUT_S = 600.0
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_db_url(path_or_url: str | Path) -> bool:
    """True for a PostgreSQL URL or a path ending in ``.db`` (an ASE SQLite database)."""
    s = str(path_or_url)
    return s.startswith(PG_PREFIXES) or Path(s).suffix == ".db"


def _looks_numeric(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return value.lower() in ("true", "false")
    return True


def _row_to_atoms(row: Any) -> Atoms:
    atoms = row.toatoms()
    atoms.info.update(row.key_value_pairs)
    atoms.info["id"] = row.id
    return atoms


def _connect_url(url: str) -> Database:
    if url.startswith(PG_PREFIXES):
        try:
            import ase_db_backends.postgresql  # noqa: F401
            import psycopg2  # noqa: F401
        except ImportError as err:
            raise ImportError(
                f"a postgresql:// store needs psycopg2 and ase-db-backends ({err}); "
                "install them with: pip install 'alml[postgres]'"
            ) from None
        return connect(url, type="postgresql")
    return connect(url, type="db")


class Store:
    """A store of (labelled) structures at ``url``: an SQLite file path (``*.db``) or a
    ``postgresql://user@host:port/dbname`` URL (needs the ``postgres`` extra: psycopg2 and
    ase-db-backends). The SQLite file and its folder are created when missing.
    """

    def __init__(self, url: str | Path) -> None:
        self.url = str(url)
        self.is_postgres = self.url.startswith(PG_PREFIXES)
        if not self.is_postgres:
            path = Path(self.url)
            if path.suffix != ".db":
                raise ValueError(
                    f"store {self.url!r} is neither an SQLite file ending in .db nor a postgresql:// URL"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            self.url = str(path.resolve())
        with self._transaction() as db:  # creates the tables once, under the lock
            db.count()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # -- connections ------------------------------------------------------------------------

    def _connect(self) -> Database:
        """A fresh ASE database object; one per operation, so threads never share a connection."""
        return _connect_url(self.url)

    @contextmanager
    def _transaction(self) -> Iterator[Database]:
        """One connection and one transaction, holding the store's write lock; commit on success."""
        db = self._connect()
        if self.is_postgres:
            with self._open(db):
                cur = db.connection.cursor()
                # Session-level lock: survives ASE's own commit during first-time table creation;
                # released when the connection closes, after the commit.
                cur.execute(f"SELECT pg_advisory_lock({_PG_LOCK_KEY})")
                yield db
        else:
            from filelock import FileLock

            with FileLock(self.url + ".alml.lock", timeout=_LOCK_TIMEOUT_S), self._open(db):
                yield db

    @staticmethod
    @contextmanager
    def _open(db: Database) -> Iterator[None]:
        # Like ASE's ``with db:`` but also rolls back a PostgreSQL connection (whose ASE wrapper
        # lacks ``rollback``) and always closes the connection.
        con = db._connect()
        db.connection, db.change_count = con, 0
        try:
            yield
            con.commit()
        except BaseException:
            raw = getattr(con, "con", con)
            raw.rollback()
            raise
        finally:
            db.connection = None
            con.close()

    # -- writing ----------------------------------------------------------------------------

    def add(
        self,
        atoms: Atoms,
        *,
        source: str,
        generation: int = 0,
        settings_hash: str = "",
        **extra: Any,
    ) -> tuple[int, bool]:
        """Store ``atoms`` (with its SinglePointCalculator labels, if any); return (row id, newly added).

        When a row with the same structure hash and ``settings_hash`` exists, nothing is written
        and its id is returned with False. ``extra`` become key-value pairs (ASE's rules: names are
        identifiers, values are numbers, bools or non-numeric strings).
        """
        return self.add_many([atoms], source=source, generation=generation,
                             settings_hash=settings_hash, **extra)[0]

    def add_many(
        self,
        images: Iterable[Atoms],
        *,
        source: str | None = None,
        generation: int | None = None,
        settings_hash: str | None = None,
        **extra: Any,
    ) -> list[tuple[int, bool]]:
        """Add several structures in one transaction; return (row id, newly added) for each.

        ``source``, ``generation`` and ``settings_hash`` left as None are taken from each
        ``atoms.info`` (defaults: generation 0, settings_hash ""); a structure with no source at
        all is an error.
        """
        out: list[tuple[int, bool]] = []
        with self._transaction() as db:
            for atoms in images:
                src = source if source is not None else atoms.info.get("source")
                if not src:
                    raise ValueError("structure has no source: pass source= or set atoms.info['source']")
                gen = generation if generation is not None else int(atoms.info.get("generation", 0))
                sh = settings_hash if settings_hash is not None else str(atoms.info.get("settings_hash", ""))
                out.append(self._add_in(db, atoms, str(src), gen, sh, extra))
        return out

    @staticmethod
    def _add_in(
        db: Database, atoms: Atoms, source: str, generation: int, settings_hash: str, extra: dict[str, Any]
    ) -> tuple[int, bool]:
        if settings_hash and _looks_numeric(settings_hash):
            raise ValueError(
                f"settings_hash {settings_hash!r} reads as a number, which ASE's database cannot keep "
                "as a string: use a hex digest or prefix it with a letter"
            )
        clash = set(extra) & set(MANAGED_KEYS)
        if clash:
            raise ValueError(f"extra keys {sorted(clash)} are set by the store itself; rename them")
        sh = structure_hash(atoms)
        for row in db.select(structure_hash=sh, settings_hash=settings_hash, limit=1):
            return int(row.id), False
        kvp = {
            "source": source,
            "generation": int(generation),
            "settings_hash": settings_hash,
            "structure_hash": sh,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            **extra,
        }
        return int(db.write(atoms, key_value_pairs=kvp)), True

    # -- reading ----------------------------------------------------------------------------

    def get(self, structure_hash: str, settings_hash: str = "") -> Atoms | None:
        """The stored structure with these hashes (labels attached, key-value pairs in info), or None."""
        for atoms in self.select(structure_hash=structure_hash, settings_hash=settings_hash, limit=1):
            return atoms
        return None

    def select(self, selection: str | None = None, **filters: Any) -> Iterator[Atoms]:
        """Structures matching an ASE query (``selection`` string and/or ``key=value`` filters;
        ``limit``, ``offset``, ``sort`` pass through). ``atoms.info`` holds the row's key-value
        pairs and its ``id``."""
        db = self._connect()
        for row in db.select(selection, **filters):
            yield _row_to_atoms(row)

    def count(self, selection: str | None = None, **filters: Any) -> int:
        """Number of rows matching the query (all rows by default)."""
        return int(self._connect().count(selection, **filters))

    def __len__(self) -> int:
        return self.count()


# --------------------------------------------------------------------------------------------
# files


def _import_extra(info: dict[str, Any]) -> dict[str, Any]:
    """The scalar entries of an imported ``atoms.info`` that can be ASE key-value pairs."""
    from ase.db.core import convert_str_to_int_float_bool_or_str

    out: dict[str, Any] = {}
    for k, v in info.items():
        if k in MANAGED_KEYS or k in reserved_keys or k == "id" or not _KEY_RE.match(k):
            continue
        if isinstance(v, str):
            v = convert_str_to_int_float_bool_or_str(v)
        if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
            v = v.item()
        if isinstance(v, bool | int | float | str):
            out[k] = v
    return out


def import_extxyz(
    path: str | Path,
    store: Store,
    *,
    source: str | None = None,
    generation: int | None = None,
    settings_hash: str | None = None,
) -> list[tuple[int, bool]]:
    """Add every frame of an extended-XYZ (or any ASE-readable) file to ``store``.

    ``source``/``generation``/``settings_hash`` default to each frame's info entries, and ``source``
    finally to ``import:<file name>``. Other scalar info entries are kept as key-value pairs.
    Returns (row id, newly added) per frame.
    """
    path = Path(path)
    frames = ase.io.read(path, index=":")
    out: list[tuple[int, bool]] = []
    with store._transaction() as db:
        for atoms in frames:
            info = atoms.info
            src = source or info.get("source") or f"import:{path.name}"
            gen = generation if generation is not None else int(info.get("generation", 0))
            sh = settings_hash if settings_hash is not None else str(info.get("settings_hash", ""))
            out.append(Store._add_in(db, atoms, str(src), gen, sh, _import_extra(info)))
    return out


def export_extxyz(store: Store, path: str | Path, selection: str | None = None, **filters: Any) -> int:
    """Write the matching structures (labels and key-value pairs included) to an extended-XYZ
    file, atomically; return how many were written."""
    images = list(store.select(selection, **filters))
    atomic_write(Path(path), lambda p: ase.io.write(p, images, format="extxyz"))
    return len(images)


def read_structures(path_or_url: str | Path) -> list[Atoms]:
    """All structures from an ASE database (``*.db`` file or postgresql:// URL; key-value pairs land
    in ``atoms.info``) or from any file ASE can read (extxyz, POSCAR, cif, ...; every frame)."""
    s = str(path_or_url)
    if is_db_url(s):
        if not s.startswith(PG_PREFIXES) and not Path(s).is_file():
            raise FileNotFoundError(f"database {s} does not exist")
        return [_row_to_atoms(row) for row in _connect_url(s).select()]
    if not Path(s).is_file():
        raise FileNotFoundError(f"structure file {s} does not exist")
    frames = ase.io.read(s, index=":")
    return list(frames) if isinstance(frames, list) else [frames]
