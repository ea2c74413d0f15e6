"""Configuration plumbing shared by every component's pydantic model.

Each component owns one small model deriving from :class:`Config`. Unknown keys are errors, and a
bad value fails at load time with the key's path and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

T = TypeVar("T", bound="Config")


class ConfigError(ValueError):
    """A configuration file or value is wrong; the message names the key and the fix."""


class Config(BaseModel):
    """Base for every alml config model: strict keys, validated on assignment, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {path}: unknown key (check the spelling; allowed keys are the model's fields)")
        else:
            lines.append(f"  {path}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def parse_config(model: type[T], data: dict | None, source: str = "config") -> T:
    """Validate a mapping into ``model``; raise :class:`ConfigError` with key paths on failure."""
    try:
        return model.model_validate(data or {})
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def load_config(model: type[T], path: str | Path) -> T:
    """Read a YAML file into ``model``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{p} is not valid YAML: {err}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{p} must contain a mapping of keys to values, not {type(data).__name__}")
    return parse_config(model, data, str(p))


def dump_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config (every default filled in) as YAML, atomically."""
    from alml.io import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
