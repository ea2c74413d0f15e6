"""The acceptance configs under examples/ are valid configs of the components they name (a typo fails here)."""

from __future__ import annotations

from pathlib import Path

import yaml

from alml.config import load_config, parse_config
from alml.potential.config import PotentialConfig
from alml.surrogate.model import LdosModelConfig

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_ldos_example_is_an_ldos_model_config() -> None:
    cfg = load_config(LdosModelConfig, EXAMPLES / "ldos_al.yaml")
    # the acceptance protocol it documents: last epoch of a cosine schedule, output refit, no early stopping
    assert (cfg.training.schedule, cfg.training.keep, cfg.training.patience, cfg.refit_output) == (
        "cosine", "last", None, True)
    assert cfg.members >= 2  # a committee, so every prediction carries a spread


def test_potential_example_is_a_potential_config() -> None:
    raw = yaml.safe_load((EXAMPLES / "potential_al.yaml").read_text())
    cfg = parse_config(PotentialConfig, raw["potential"], source="potential_al.yaml")
    assert cfg.committee.members == 8  # the default committee size
