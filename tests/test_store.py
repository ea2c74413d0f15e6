"""The structure store: dedup, labels, filters, extxyz round trip, concurrent writers (SQLite, PostgreSQL)."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from alml.data import Store, export_extxyz, import_extxyz, read_structures
from alml.structures import bulk, rattle, structure_hash


def labelled(k: int, n_cells: int = 1) -> Atoms:
    """A distinct, reproducible, labelled 4-atom Al cell numbered ``k``."""
    atoms = rattle(bulk("Al", "fcc", a=4.05, cubic=True), 0.05, seed=k)
    rng = np.random.default_rng(1000 + k)
    atoms.calc = SinglePointCalculator(
        atoms,
        energy=-3.0 * len(atoms) - 0.01 * k,
        free_energy=-3.0 * len(atoms) - 0.01 * k - 0.001,
        forces=rng.normal(0, 0.1, (len(atoms), 3)),
        stress=rng.normal(0, 0.01, 6),
    )
    return atoms


# ---------------------------------------------------------------- backends

def _pg_server() -> Iterator[str]:
    """Start a throwaway PostgreSQL server; yield a URL to its maintenance database."""
    try:
        import ase_db_backends.postgresql  # noqa: F401
        import psycopg2  # noqa: F401
    except ImportError as err:
        pytest.skip(f"PostgreSQL driver missing ({err}): pip install 'alml[postgres]'")
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("initdb/pg_ctl not on PATH: no PostgreSQL server to test against")
    user = None
    root = tempfile.mkdtemp(prefix="alml-pg-")
    if os.geteuid() == 0:  # postgres refuses to run as root
        user = "nobody"
        try:
            shutil.chown(root, user=user)
        except (LookupError, PermissionError) as err:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip(f"running as root and cannot hand a folder to user nobody: {err}")
    data, log = os.path.join(root, "data"), os.path.join(root, "log")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, user=user, capture_output=True, text=True, timeout=60, cwd=root)

    r = run(initdb, "-D", data, "-U", "alml", "--auth=trust", "-E", "UTF8", "--no-sync")
    if r.returncode == 0:
        r = run(pg_ctl, "-D", data, "-l", log, "-w", "-t", "30", "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    if r.returncode != 0:
        tail = (r.stderr or r.stdout)[-500:]
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL server: {tail}")
    try:
        yield f"postgresql://alml@127.0.0.1:{port}"
    finally:
        run(pg_ctl, "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    yield from _pg_server()


def _new_pg_database(server: str) -> str:
    import psycopg2

    name = "t_" + uuid.uuid4().hex[:12]
    con = psycopg2.connect(f"{server}/postgres")
    con.autocommit = True
    con.cursor().execute(f"CREATE DATABASE {name}")
    con.close()
    return f"{server}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "sub" / "store.db")
    return _new_pg_database(request.getfixturevalue("pg_server"))


# ---------------------------------------------------------------- behaviour


def test_add_dedups_on_structure_and_settings(store_url: str) -> None:
    store = Store(store_url)
    a = labelled(0)
    i1, new1 = store.add(a, source="test", settings_hash="s1", generation=2, temperature=300.0)
    i2, new2 = store.add(a.copy(), source="other", settings_hash="s1")
    i3, new3 = store.add(a, source="test", settings_hash="s2")
    shifted = a.copy()
    shifted.positions[0] += a.cell[1]  # another periodic image: the same structure
    i4, new4 = store.add(shifted, source="test", settings_hash="s1")
    assert (new1, new2, new3, new4) == (True, False, True, False)
    assert i1 == i2 == i4 != i3
    assert len(store) == store.count() == 2
    assert store.count(settings_hash="s1") == 1

    got = store.get(structure_hash(a), "s1")
    assert got is not None
    assert got.info["source"] == "test"
    assert got.info["generation"] == 2
    assert got.info["temperature"] == 300.0
    assert got.info["structure_hash"] == structure_hash(a)
    assert got.info["created"].endswith("+00:00")
    assert got.info["id"] == i1
    assert got.get_potential_energy() == pytest.approx(a.get_potential_energy())
    assert got.get_potential_energy(force_consistent=True) == pytest.approx(
        a.get_potential_energy(force_consistent=True))
    assert np.allclose(got.get_forces(), a.get_forces())
    assert np.allclose(got.get_stress(), a.get_stress())
    assert store.get(structure_hash(a), "nope") is None


def test_select_filters_and_info(store_url: str) -> None:
    store = Store(store_url)
    for k in range(4):
        store.add(labelled(k), source="md" if k % 2 else "builder", generation=k)
    md = list(store.select(source="md"))
    assert sorted(a.info["generation"] for a in md) == [1, 3]
    assert [a.info["generation"] for a in store.select("generation>=2")] == [2, 3]
    assert len(list(store.select())) == 4


def test_add_rejects_bad_metadata(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    with pytest.raises(ValueError, match="reads as a number"):
        store.add(labelled(0), source="x", settings_hash="1234")
    with pytest.raises(ValueError, match="set by the store itself"):
        store.add(labelled(0), source="x", structure_hash="abc")
    with pytest.raises(ValueError, match="no source"):
        store.add_many([Atoms("Al", cell=[3, 3, 3], pbc=True)])
    with pytest.raises(ValueError, match="neither an SQLite file ending in .db"):
        Store(tmp_path / "s.sqlite")
    assert len(store) == 0  # the failed transactions left nothing behind


def test_extxyz_round_trip_keeps_labels_and_keys(tmp_path: Path) -> None:
    src = Store(tmp_path / "a.db")
    images = [labelled(k) for k in range(3)]
    src.add_many(images, source="builder", settings_hash="abc", generation=1)
    src.add(labelled(9), source="other")
    n = export_extxyz(src, tmp_path / "out" / "set.xyz", settings_hash="abc")
    assert n == 3

    dst = Store(tmp_path / "b.db")
    result = import_extxyz(tmp_path / "out" / "set.xyz", dst)
    assert [new for _, new in result] == [True] * 3
    assert [new for _, new in import_extxyz(tmp_path / "out" / "set.xyz", dst)] == [False] * 3
    for a in images:
        b = dst.get(structure_hash(a), "abc")
        assert b is not None
        assert b.info["source"] == "builder"
        assert b.info["generation"] == 1
        assert b.get_potential_energy() == pytest.approx(a.get_potential_energy(), abs=1e-10)
        assert b.get_potential_energy(force_consistent=True) == pytest.approx(
            a.get_potential_energy(force_consistent=True), abs=1e-10)
        assert np.allclose(b.get_forces(), a.get_forces(), atol=1e-8)
        assert np.allclose(b.get_stress(), a.get_stress(), atol=1e-8)

    from_db = read_structures(tmp_path / "b.db")
    from_xyz = read_structures(tmp_path / "out" / "set.xyz")
    assert [structure_hash(a) for a in from_db] == [structure_hash(a) for a in from_xyz]
    with pytest.raises(FileNotFoundError):
        read_structures(tmp_path / "missing.db")


def test_import_source_defaults_to_file_name(tmp_path: Path) -> None:
    import ase.io

    atoms = labelled(1)
    atoms.info.clear()
    ase.io.write(tmp_path / "plain.xyz", [atoms], format="extxyz")
    store = Store(tmp_path / "s.db")
    import_extxyz(tmp_path / "plain.xyz", store, generation=4)
    (atoms,) = store.select()
    assert atoms.info["source"] == "import:plain.xyz"
    assert atoms.info["generation"] == 4


# ---------------------------------------------------------------- concurrent writers


def _writer(url: str, ks: list[int], barrier, queue) -> None:  # runs in a spawned process
    store = Store(url)
    barrier.wait(timeout=60)
    flags = [store.add(labelled(k), source=f"proc{os.getpid()}", settings_hash="conc")[1] for k in ks]
    queue.put(flags)


def test_two_processes_write_union_without_duplicates(store_url: str) -> None:
    Store(store_url)  # create the tables before the race, as an application would
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    # The shared structures come in the same order from both, at the same time: the hardest race.
    sets = [list(range(24)), list(range(24)) + list(range(24, 31))]
    procs = [ctx.Process(target=_writer, args=(store_url, ks, barrier, queue)) for ks in sets]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0], "a writer process failed (see its stderr above)"
    flags = [queue.get(timeout=10) for _ in procs]

    union = set(sets[0]) | set(sets[1])
    store = Store(store_url)
    hashes = [a.info["structure_hash"] for a in store.select()]
    assert len(hashes) == len(union) == 31
    assert len(set(hashes)) == len(hashes)
    assert set(hashes) == {structure_hash(labelled(k)) for k in union}
    assert sum(sum(f) for f in flags) == len(union)  # each structure reported new exactly once


def test_threads_share_a_store(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = Store(tmp_path / "t.db")
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda k: store.add(labelled(k % 6), source="thread"), range(18)))
    assert sum(new for _, new in results) == 6
    assert len(store) == 6
