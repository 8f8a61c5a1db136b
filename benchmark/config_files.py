"""Config files: the YAML a run reads with ``--config FILE.yaml`` (or from a resumed run's
folder), as one layer of raw values (:class:`Overrides`) under the command line.

A config file uses the command line's names (dashes or underscores)::

    method:               # or just `method: lots`
      name: lots
      iterations: 500
    model: efficientnet_lite0
    per_class: 1
    metrics:
      score: max_class
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmark.core.errors import BenchmarkError
from benchmark.run_options import option_parameters

#: The keys of the ``wandb:`` section of a config file (``--wandb.<key>`` on the command line).
WANDB_KEYS = ("project", "entity", "group", "tags")
#: The keys of the ``model:`` section of a config file (``--model``, ``--model.<key>``).
MODEL_KEYS = ("name", "weights", "mean", "std")


@dataclass
class Overrides:
    """Raw values from one source (a config file or the command line)."""

    source: str
    options: dict[str, Any] = field(default_factory=dict)
    method: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def extra_names(self) -> list[str]:
        """The metrics named in ``extra`` (a comma-separated string or a list), as given."""
        extra = self.metrics.get("extra") or []
        names = extra.split(",") if isinstance(extra, str) else extra
        return [name.strip() for name in names if isinstance(name, str) and name.strip()]


def _normalize_key(key: Any, source: str) -> str:
    if not isinstance(key, str):
        raise BenchmarkError(f"{source}: config keys must be strings, got {key!r}")
    return key.replace("-", "_")


def read_config_file(path: str) -> Overrides:
    """Parse one YAML config file into overrides (safe_load: plain data only)."""
    file = Path(path)
    if not file.is_file():
        raise BenchmarkError(f"--config {path}: file does not exist")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise BenchmarkError(f"--config {path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise BenchmarkError(f"--config {path}: expected a mapping of option: value")
    overrides = Overrides(source=f"--config {path}")
    known = {p.name for p in option_parameters()}
    for raw_key, value in data.items():
        key = _normalize_key(raw_key, path)
        if key in ("method", "model") and isinstance(value, dict):
            section = {_normalize_key(k, path): v for k, v in value.items()}
            if "name" in section:
                overrides.options[key] = section.pop("name")
            if key == "model":
                for model_key in MODEL_KEYS[1:]:
                    if model_key in section:
                        overrides.options[f"model_{model_key}"] = section.pop(model_key)
                if section:
                    raise BenchmarkError(
                        f"--config {path}: unknown model key(s) {sorted(section)}; use {', '.join(MODEL_KEYS)}"
                    )
            else:
                overrides.method.update(section)
        elif key == "wandb" and isinstance(value, dict):
            section = {_normalize_key(k, path): v for k, v in value.items()}
            unknown = sorted(set(section) - set(WANDB_KEYS))
            if unknown:
                raise BenchmarkError(f"--config {path}: unknown wandb key(s) {unknown}; use {', '.join(WANDB_KEYS)}")
            overrides.options.update({f"wandb_{k}": v for k, v in section.items()})
        elif key == "metrics":
            if not isinstance(value, dict):
                raise BenchmarkError(f"--config {path}: 'metrics' must be a mapping")
            overrides.metrics.update({_normalize_key(k, path): v for k, v in value.items()})
        elif key in known:
            overrides.options[key] = value
        else:
            raise BenchmarkError(
                f"--config {path}: unknown key {raw_key!r}; valid keys: method, model, metrics, wandb, "
                + ", ".join(
                    sorted(
                        known
                        - {
                            "method",
                            "model",
                            *(f"model_{k}" for k in MODEL_KEYS[1:]),
                            *(f"wandb_{k}" for k in WANDB_KEYS),
                        }
                    )
                )
            )
    return overrides
