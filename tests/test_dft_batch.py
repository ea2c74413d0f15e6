"""Batch labelling through the executor (local and Dask) into a store, and the ``alml dft run`` CLI."""

from __future__ import annotations

import ase.io
import pytest
from ase.build import bulk
from typer.testing import CliRunner

from alml.cli import app
from alml.compute import ExecutorConfig
from alml.data import Store
from alml.dft.batch import label_structures


def _frames():
    crowded = bulk("Al", "fcc", a=4.04, cubic=True)
    crowded.positions[1] = crowded.positions[0] + [0.2, 0.0, 0.0]
    return [bulk("Al", "fcc", a=4.0), bulk("Al", "bcc", a=3.2), bulk("Al", "sc", a=2.7), crowded]


def test_dask_local_cluster_labels_a_batch(fast_dft, tmp_path):
    store = Store(tmp_path / "al.db")
    seen = []  # (index, status, rows in the store) at each on_label call
    out = label_structures(
        _frames(), fast_dft, root=tmp_path / "runs", store=store,
        executor=ExecutorConfig(kind="dask", retries=0), progress=False,
        on_label=lambda o: seen.append((o.index, o.status, len(store))),
    )
    assert [o.status for o in out] == ["done", "done", "done", "failed"]
    # The structure that fails validation is reported first; each result is stored before it is reported.
    assert seen[0] == (3, "failed", 0)
    assert sorted(i for i, _, _ in seen[1:]) == [0, 1, 2]
    assert [n for _, _, n in seen[1:]] == [1, 2, 3]
    assert "apart" in out[3].error
    assert len(store) == 3
    energies = sorted(a.get_potential_energy(force_consistent=True) for a in store.select())
    assert energies == pytest.approx(sorted(o.free_energy for o in out[:3]))
    # A second batch reuses every finished run and stores no duplicate.
    again = label_structures(_frames()[:3], fast_dft, root=tmp_path / "runs", store=store, progress=False)
    assert [o.status for o in again] == ["reused"] * 3
    assert len(store) == 3


def test_cli_dft_run(fast_dft, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ase.io.write("in.extxyz", _frames())
    (tmp_path / "cfg.yaml").write_text(
        "dft:\n  ecutwfc: 15\n  kspacing: 0.6\nexecutor:\n  retries: 0\n"
    )
    runner = CliRunner()
    res = runner.invoke(app, ["dft", "run", "in.extxyz", "--db", "out.db", "--config", "cfg.yaml"])
    assert res.exit_code == 1, res.output  # one structure fails: the exit code says so
    assert "3 done, 0 reused, 1 failed" in res.output
    assert len(Store(tmp_path / "out.db")) == 3

    (tmp_path / "bad.yaml").write_text("dft:\n  ecutwfcc: 15\n")
    res = runner.invoke(app, ["dft", "run", "in.extxyz", "--db", "out.db", "--config", "bad.yaml"])
    assert res.exit_code == 2
    assert "ecutwfcc: unknown key" in res.output


def test_cli_help_lists_commands():
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("dft", "pseudo", "demo"):
        assert cmd in res.output
