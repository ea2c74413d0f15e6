"""The pure logic of bench/bench_mala_side_by_side.py, in bench/mala_side_by_side_logic.py (MALA itself is not
needed): how alml's model config maps to MALA's parameters, which LDOS scaling MALA gets, and when two accuracies
count as equal."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from alml.nn import LoopConfig, MLPConfig
from alml.surrogate.model import LdosModelConfig

_PATH = Path(__file__).resolve().parents[1] / "bench" / "mala_side_by_side_logic.py"
_spec = importlib.util.spec_from_file_location("mala_side_by_side_logic", _PATH)
sbs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sbs)

META = {"targets.target_type": "LDOS", "targets.ldos_gridsize": 166, "targets.ldos_gridspacing_ev": 0.1,
        "targets.ldos_gridoffset_ev": -6.0, "descriptors.descriptor_type": "Bispectrum",
        "descriptors.bispectrum_twojmax": 2, "descriptors.bispectrum_cutoff": 4.67637,
        "descriptors.descriptors_contain_xyz": True}


def test_output_scaling_follows_alml_and_avoids_unfloored_stds():
    std = np.linspace(1.0, 2.0, 10)
    assert sbs.mala_output_scaling("per-energy", std)[0] == "feature-wise-standard"
    empty = std.copy()
    empty[:3] = [0.0, 1e-9, 5e-3]  # energies below the band bottom
    choice, why = sbs.mala_output_scaling("per-energy", empty)
    assert choice == "minmax" and "3 of 10" in why
    assert sbs.mala_output_scaling("single", empty)[0] == "standard"
    assert sbs.mala_output_scaling("per-energy", empty, "feature-wise-standard")[0] == "feature-wise-standard"


def test_mala_parameters_mirror_the_alml_config():
    cfg = LdosModelConfig(
        network=MLPConfig(hidden=(8, 8), activation="tanh"), batch_size=64, members=1,
        training=LoopConfig(epochs=7, lr=2e-3, schedule="plateau", plateau_factor=0.3, plateau_patience=4, patience=9),
    )
    p, notes = sbs.mala_parameters(cfg, 5, 166, META, "minmax")
    assert p["network"]["layer_sizes"] == [5, 8, 8, 166]
    assert p["network"]["layer_activations"] == "Tanh"
    assert p["network"]["layer_activations_include_output_layer"] is False  # alml's output layer is linear
    r = p["running"]
    assert (r["max_number_epochs"], r["mini_batch_size"], r["learning_rate"]) == (7, 64, 2e-3)
    assert (r["learning_rate_scheduler"], r["learning_rate_decay"], r["learning_rate_patience"]) == (
        "ReduceLROnPlateau", 0.3, 4)
    assert r["early_stopping_epochs"] == 9 and r["validation_metric"] == "ldos"
    assert p["data"] == {"input_rescaling_type": "feature-wise-standard", "output_rescaling_type": "minmax"}
    assert p["targets"]["ldos_gridsize"] == 166 and p["descriptors"]["bispectrum_twojmax"] == 2
    assert any("lr_min" in n for n in notes)

    cosine = cfg.model_copy(update={"training": LoopConfig(epochs=7, schedule="cosine", patience=None)})
    p, notes = sbs.mala_parameters(cosine, 5, 166, META, "minmax")
    assert p["running"]["learning_rate_scheduler"] is None and p["running"]["early_stopping_epochs"] == 0
    assert any("cosine" in n for n in notes)
    assert any("alml the best validation epoch's" in n for n in notes) and not any("refits" in n for n in notes)
    last = cfg.model_copy(update={"training": LoopConfig(epochs=7, keep="last"), "refit_output": True})
    _, notes = sbs.mala_parameters(last, 5, 166, META, "minmax")
    assert any("alml the last epoch's too" in n for n in notes) and any("refits" in n for n in notes)


@pytest.mark.parametrize(("mala", "alml", "equal"), [
    (1.0, 1.2, True),     # within 1.5x
    (0.1, 0.5, True),     # within 0.5 meV/atom
    (3.0, 12.0, False),
    (float("nan"), 1.0, False),
])
def test_accuracy_note(mala, alml, equal):
    assert sbs.accuracy_note(mala, alml).startswith("comparable") is equal
