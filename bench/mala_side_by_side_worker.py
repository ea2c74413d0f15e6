"""The MALA 1.4 half of ``bench/bench_mala_side_by_side.py``: runs in MALA's own venv, never imports alml.

    <mala-venv>/bin/python bench/mala_side_by_side_worker.py train|test|predict SPEC.json

``SPEC.json`` is written by the side-by-side script (paths, MALA parameters, snapshots); the result is printed as the
last line of stdout, one JSON object (on rank 0 under MPI). Modes:

- ``train``: ``Parameters`` / ``DataHandler`` / ``Network`` / ``Trainer`` on the exported training and validation
  snapshots; the run is saved with ``Trainer.save_run`` (with a training snapshot's pw.x output as its calculation
  data, so the electron count per atom travels with the model). Epoch times are taken from the moments MALA prints
  its ``Epoch k: validation data loss`` lines (stdout is teed). MALA checkpoints every epoch, and an interrupted
  training resumes from its last checkpoint when rerun with the same spec.
- ``test``: ``Tester.load_run`` + the test snapshots, ``Tester.predict_targets`` per snapshot, then MALA's
  self-consistent Fermi level and band energy (``LDOS.get_self_consistent_fermi_energy``, ``get_band_energy``) of the
  predicted and of the true LDOS at the snapshot's exact temperature and electron count (eV, absolute: the caller
  compares them with the DFT reference, and predicted − true is MALA's ``Tester`` band-energy error). MALA reads the
  temperature from pw.x's printed width (4 decimals: ±8 K), hence the override. The predicted LDOS is saved as
  ``<name>.pred.npy`` (the caller also runs it through alml's observables).
- ``predict``: ``Predictor.load_run`` then ``predict_for_atoms`` on a structure (descriptors with LAMMPS, network)
  and the LDOS → Fermi level → band energy step (``LDOS.fermi_energy``, ``LDOS.band_energy``); stage times are
  MALA's own printouts (descriptors, network pass) and this script's clock (observables, end to end). Under
  ``mpiexec -n N`` (``use_mpi``) each rank computes its slab of descriptors and its LDOS (``gather_ldos=False``),
  and MALA reduces the DOS on rank 0.

Compatibility shim: MALA 1.4's Trainer passes ``verbose=True`` to ``torch.optim.lr_scheduler.ReduceLROnPlateau``,
which torch 2.13 no longer accepts; the shim drops that argument and changes nothing else.
"""

from __future__ import annotations

import json
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def _patch_plateau() -> None:
    import torch

    base = torch.optim.lr_scheduler.ReduceLROnPlateau

    class ReduceLROnPlateau(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args, verbose=None, **kwargs):  # noqa: ARG002 - dropped: torch 2.13 removed it
            super().__init__(*args, **kwargs)

    torch.optim.lr_scheduler.ReduceLROnPlateau = ReduceLROnPlateau


class _Tee:
    """stdout that also hands every complete line to ``on_line``."""

    def __init__(self, stream, on_line) -> None:
        self.stream, self.on_line, self._buf = stream, on_line, ""

    def write(self, text: str) -> int:
        self.stream.write(text)
        self._buf += text
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            self.on_line(line)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


@contextmanager
def _teed(on_line):
    real = sys.stdout
    sys.stdout = _Tee(real, on_line)
    try:
        yield
    finally:
        sys.stdout = real


def _params(spec: dict):
    import mala

    p = mala.Parameters()
    p.verbosity = 1
    p.manual_seed = spec["seed"]
    for section, values in spec["mala"].items():
        for key, value in values.items():
            setattr(getattr(p, section), key, value)
    return p


def _add(dh, snap: dict, role: str) -> None:
    d = snap["dir"]
    dh.add_snapshot(f"{snap['name']}.in.npy", d, f"{snap['name']}.out.npy", d, role,
                    calculation_output_file=str(Path(d) / f"{snap['name']}.out"))


def _fresh_trainer(spec: dict, checkpoint: str):
    import mala

    p = _params(spec)
    p.running.checkpoints_each_epoch = 1
    p.running.checkpoint_name, p.running.checkpoint_path = checkpoint, spec["run_dir"]
    dh = mala.DataHandler(p)
    for s in spec["train"]:
        _add(dh, s, "tr")
    for s in spec["validation"]:
        _add(dh, s, "va")
    dh.prepare_data()
    return mala.Trainer(p, mala.Network(p), dh)


def train(spec: dict) -> dict:
    """Train, resuming after MALA's last per-epoch checkpoint when one was left by the same spec. Every finished
    epoch is appended to ``epochs.jsonl`` in the run folder, so its time survives an interruption; an epoch that
    finished after the last checkpoint runs again on resume, and its later run is kept."""
    import mala
    import torch

    torch.set_num_threads(spec["threads"])
    run_dir = Path(spec["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint, record, spec_file = f"{spec['run_name']}_checkpoint", run_dir / "epochs.jsonl", run_dir / "spec.json"
    resume = (mala.Trainer.run_exists(checkpoint, path=str(run_dir)) and spec_file.is_file()
              and json.loads(spec_file.read_text()) == spec)
    if not resume:
        for old in [record, *run_dir.glob(f"{checkpoint}.*")]:
            old.unlink(missing_ok=True)
        spec_file.write_text(json.dumps(spec))
    segment = sum(1 for line in record.read_text().splitlines() if '"prepare_s"' in line) if resume else 0

    def append(entry: dict) -> None:
        with record.open("a") as f:
            f.write(json.dumps({"segment": segment, **entry}) + "\n")

    t0 = time.perf_counter()
    trainer = (mala.Trainer.load_run(checkpoint, path=str(run_dir))[3] if resume
               else _fresh_trainer(spec, checkpoint))
    append({"prepare_s": time.perf_counter() - t0})
    last = [time.perf_counter()]

    def on_line(line: str) -> None:
        m = re.match(r"Epoch (\d+): validation data loss", line)
        if m:
            now = time.perf_counter()
            append({"epoch": int(m[1]), "s": now - last[0], "val_loss": float(line.rsplit(":", 1)[1])})
            last[0] = now

    with _teed(on_line):
        trainer.train_network()
    trainer.save_run(spec["run_name"], path=spec["run_dir"],
                     additional_calculation_data=str(Path(spec["train"][0]["dir"]) / f"{spec['train'][0]['name']}.out"))
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    epochs = {e["epoch"]: e for e in entries if "epoch" in e}  # (a repeated epoch: the later run wins)
    for old in run_dir.glob(f"{checkpoint}.*"):
        old.unlink()
    return {
        "prepare_s": sum(e["prepare_s"] for e in entries if "prepare_s" in e),
        "train_s": sum(e["s"] for e in entries if "epoch" in e), "epochs": len(epochs),
        "epoch_s": [epochs[k]["s"] for k in sorted(epochs)],
        "val_loss": [epochs[k]["val_loss"] for k in sorted(epochs)],
        "resumed": segment, "final_validation_loss": float(trainer.final_validation_loss),
        "mala": mala.__version__, "torch": torch.__version__, "threads": torch.get_num_threads(),
    }


def _observables(tc, ldos: np.ndarray) -> tuple[float, float]:
    """MALA's self-consistent Fermi level and band energy (eV) of an LDOS (points, n_e) in the target calculator's
    current setting (atoms, voxel, temperature, electron count)."""
    fermi = float(tc.get_self_consistent_fermi_energy(ldos))
    return fermi, float(tc.get_band_energy(ldos, fermi_energy=fermi))


def test(spec: dict) -> dict:
    import mala
    import torch

    torch.set_num_threads(spec["threads"])
    params, _net, dh, tester = mala.Tester.load_run(spec["run_name"], path=spec["run_dir"])
    # at most the smallest snapshot's points: MALA rounds it up to a divisor of each snapshot's and loops forever
    # when it is larger (runner._correct_batch_size)
    params.running.mini_batch_size = min(spec["batch_size"], *(int(np.prod(s["grid"])) for s in spec["test"]))
    for s in spec["test"]:
        _add(dh, s, "te")
    dh.prepare_data(reparametrize_scaler=False)
    rows = []
    for i, s in enumerate(spec["test"]):
        t0 = time.perf_counter()
        # once per snapshot: MALA 1.4 inverse-scales the test set's outputs in place, so a second call (e.g.
        # Tester.test_snapshot and then predict_targets) returns the true LDOS scaled twice
        actual, predicted = (np.array(a, dtype=np.float64) for a in tester.predict_targets(i))
        t_net = time.perf_counter() - t0
        np.save(Path(spec["out_dir"]) / f"{s['name']}.pred.npy",
                predicted.reshape(*s["grid"], -1).astype(np.float32))
        tc = tester.target_calculator
        tc.read_additional_calculation_data(str(Path(s["dir"]) / f"{s['name']}.out"), "espresso-out")
        mala_temperature, mala_electrons = float(tc.temperature), float(tc.number_of_electrons_exact)
        tc.temperature, tc.number_of_electrons_exact = s["temperature"], s["n_electrons"]
        t0 = time.perf_counter()
        fermi_pred, band_pred = _observables(tc, predicted)
        t_obs = time.perf_counter() - t0
        fermi_true, band_true = _observables(tc, actual)
        rows.append({
            "name": s["name"], "fermi_pred": fermi_pred, "band_pred": band_pred, "fermi_true": fermi_true,
            "band_true": band_true, "mala_temperature_from_qe": mala_temperature,
            "mala_electrons_from_qe": mala_electrons, "network_s": t_net, "observables_s": t_obs,
        })
        print(f"test {s['name']}: band {band_pred:.6f} eV (true LDOS {band_true:.6f}), "
              f"Fermi {fermi_pred:.6f} eV (true LDOS {fermi_true:.6f})", flush=True)
    return {"rows": rows}


def predict(spec: dict) -> dict:
    import mala
    import torch
    from ase.io import read
    from mala.common.parallelizer import get_rank, get_size

    torch.set_num_threads(spec["threads"])
    use_mpi = spec["nprocs"] > 1
    t_start = time.perf_counter()
    params, _net, _dh, predictor = mala.Predictor.load_run(spec["run_name"], path=spec["run_dir"],
                                                           load_with_mpi=use_mpi)
    params.verbosity = 2  # MALA prints its descriptor and network-pass times at verbosity 2
    params.descriptors.custom_lammps_compute_file = spec["lammps_input"]
    params.descriptors.use_z_splitting = True
    params.running.inference_data_grid = list(spec["grid"])
    # MALA rounds the batch up to a divisor of the rank's point count and loops forever when the batch exceeds
    # that count (runner._correct_batch_size): keep it below the smallest z-slab a rank can get
    points = int(np.prod(spec["grid"]))
    params.running.mini_batch_size = min(spec["batch_size"], points if not use_mpi else points // (2 * spec["nprocs"]))
    atoms = read(spec["structure"])
    t_load = time.perf_counter() - t_start
    lines: list[str] = []
    with _teed(lines.append):
        t0 = time.perf_counter()
        ldos = predictor.predict_for_atoms(atoms, gather_ldos=False, temperature=spec["temperature"])
        t1 = time.perf_counter()
        tc = predictor.target_calculator
        tc.read_from_array(ldos)
        fermi, band = float(tc.fermi_energy), float(tc.band_energy)
        t2 = time.perf_counter()

    def printed(what: str) -> float:
        pattern = re.compile(rf"Time for {what}: ([0-9.eE+-]+)s")
        hits = [float(m.group(1)) for line in lines if (m := pattern.search(line))]
        return hits[-1] if hits else float("nan")

    if get_rank() != 0:
        return {}
    return {
        "descriptors_s": printed("descriptor calculation"), "network_s": printed("network pass"),
        "predict_for_atoms_s": t1 - t0, "observables_s": t2 - t1, "end_to_end_s": t2 - t0, "load_s": t_load,
        "fermi_level": fermi, "band_energy": band, "ranks": get_size() if use_mpi else 1,
        "batch_size": params.running.mini_batch_size, "threads": torch.get_num_threads(), "grid": list(spec["grid"]),
        "n_atoms": len(atoms), "local_points": int(np.shape(ldos)[0]),
    }


def main() -> None:
    mode, spec_path = sys.argv[1:3]
    spec = json.loads(Path(spec_path).read_text())
    _patch_plateau()
    result = {"train": train, "test": test, "predict": predict}[mode](spec)
    if result:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
