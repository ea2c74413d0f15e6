"""``alml surrogate``: every sub-command through the real CLI on tiny synthetic snapshots (train, test, hpo,
import-mala) and a tiny committee on a real 4-atom cell (predict, with real LAMMPS descriptors and the real
pseudopotential). ``data`` runs real pw.x + pp.x and is covered in tests/test_ldos.py through the same library
call; here only its config errors are checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from surrogate_data import write_snapshot
from typer.testing import CliRunner

from alml.cli import app

runner = CliRunner()


def invoke(*args: str) -> object:
    r = runner.invoke(app, ["surrogate", *args])
    return r


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("snaps")
    for s in range(4):
        write_snapshot(root / f"s{s}", seed=s)
    return root


def test_train_then_test(snapshots: Path, tmp_path: Path) -> None:
    job = {
        "train": ["s[01]"], "validation": "s2", "output": str(tmp_path / "model"),
        "model": {"network": {"hidden": [16], "activation": "tanh"}, "members": 2,
                  "training": {"epochs": 4, "patience": None, "lr": 5e-3}},
    }
    (snapshots / "train.yaml").write_text(yaml.safe_dump(job))
    r = invoke("train", str(snapshots / "train.yaml"), "--no-total-energy")
    assert r.exit_code == 0, r.output
    from alml.surrogate.model import load_ldos_model

    assert load_ldos_model(tmp_path / "model").n_members == 2

    r = invoke("test", str(tmp_path / "model"), str(snapshots / "s3"), "--out", str(tmp_path / "test"),
               "--no-total-energy", "--no-plots")
    assert r.exit_code == 0, r.output
    ev = json.loads((tmp_path / "test" / "evaluation.json").read_text())
    (row,) = ev["rows"]
    assert row["name"] and abs(row["band_energy_error_mev_per_atom"]) < 1e4
    assert row["band_energy_std_mev_per_atom"] > 0  # two members disagree somewhere
    assert "MAE" in r.output


def test_train_refuses_bad_config(snapshots: Path, tmp_path: Path) -> None:
    bad = snapshots / "bad.yaml"
    bad.write_text(yaml.safe_dump({"train": ["nothing*"], "validation": "s2", "modle": {}}))
    r = invoke("train", str(bad))
    assert r.exit_code == 2 and "modle" in r.output
    bad.write_text(yaml.safe_dump({"train": ["nothing*"], "validation": "s2"}))
    r = invoke("train", str(bad))
    assert r.exit_code == 2 and "matches nothing" in r.output
    assert not Path("models/ldos").exists()  # refused before anything was created in the default output


def test_hpo_study_persists_and_continues(snapshots: Path, tmp_path: Path) -> None:
    job = {"train": ["s0", "s1"], "validation": "s2", "output": str(tmp_path / "hpo"),
           "hpo": {"trials": 2, "epochs": 2, "pruner": "none", "space": {"width": [8, 16], "layers": [1, 1]},
                   "base": {"batch_size": 256}}}
    (snapshots / "hpo.yaml").write_text(yaml.safe_dump(job))
    r = invoke("hpo", str(snapshots / "hpo.yaml"))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "hpo" / "hpo.db").is_file() and (tmp_path / "hpo" / "best_config.yaml").is_file()
    r = invoke("hpo", str(snapshots / "hpo.yaml"), "--trials", "3")
    assert r.exit_code == 0, r.output
    assert "3 trials" in r.output


def test_import_mala(snapshots: Path, tmp_path: Path) -> None:
    import numpy as np

    from alml.data.grids import LdosFile
    from alml.surrogate.mala import export_mala_snapshot

    export_mala_snapshot(snapshots / "s0", tmp_path / "mala", "Al_snapshot0")
    r = invoke("import-mala", str(tmp_path / "mala"), "--out", str(tmp_path / "imported"))
    assert r.exit_code == 0, r.output
    (d,) = [p for p in (tmp_path / "imported").iterdir() if p.is_dir()]
    with LdosFile(d / "ldos.h5") as f, LdosFile(snapshots / "s0" / "ldos.h5") as g:
        np.testing.assert_array_equal(f.read(), g.read())
    r = invoke("import-mala", str(tmp_path / "empty"), "--out", str(tmp_path / "x"))
    assert r.exit_code != 0


def test_predict_writes_files_and_plot(tmp_path: Path) -> None:
    from ase.io import write
    from test_surrogate_predict import cell, make_model

    from alml.surrogate.model import save_ldos_model

    save_ldos_model(tmp_path / "model", make_model(members=2), {"note": "test committee"})
    write(tmp_path / "al.extxyz", cell())
    r = invoke("predict", str(tmp_path / "al.extxyz"), "--model", str(tmp_path / "model"),
               "--out", str(tmp_path / "pred"))
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "pred" / "prediction.json").read_text())
    assert res["n_atoms"] == 4 and res["n_members"] == 2
    assert abs(res["density_electrons"] - 12.0) < 0.05  # 4 Al x 3 valence electrons
    for f in ("dos.csv", "density.cube", "prediction.png"):
        assert (tmp_path / "pred" / f).stat().st_size > 0
    assert "Fermi level" in r.output
