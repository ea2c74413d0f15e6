"""The training-data manifest accumulates over calls instead of listing only the last call's snapshots."""

from __future__ import annotations

import json
from pathlib import Path

from alml.surrogate.data import MANIFEST_FILE, SnapshotOutcome, TrainingDataConfig, _update_manifest


def test_manifest_keeps_earlier_calls(tmp_path: Path) -> None:
    cfg = TrainingDataConfig(root=str(tmp_path))
    path = tmp_path / MANIFEST_FILE
    _update_manifest(path, cfg, [SnapshotOutcome(0, "done", 298.0, "a/ldos.h5", "a/descriptors.h5", 10.0)])
    _update_manifest(path, cfg, [SnapshotOutcome(0, "done", 933.0, "b/ldos.h5", "b/descriptors.h5", 12.0),
                                 SnapshotOutcome(1, "failed", 933.0, error="pw.x crashed")])
    _update_manifest(path, cfg, [SnapshotOutcome(0, "reused", 298.0, "a/ldos.h5", "a/descriptors.h5")])
    m = json.loads(path.read_text())
    by_file = {e["ldos"]: e for e in m["snapshots"]}
    assert sorted(by_file) == ["a/ldos.h5", "b/ldos.h5"]
    assert by_file["a/ldos.h5"]["status"] == "reused" and by_file["b/ldos.h5"]["temperature"] == 933.0
    assert m["failed_last_call"] == []
