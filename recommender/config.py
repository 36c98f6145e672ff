"""The recommender's settings, in layers: defaults, a YAML file, environment, explicit overrides.

The file holds one ``recommender:`` mapping (other top-level keys are left
for other components)::

    recommender:
      rollup_path: /var/lib/nexus/rollup.db
      budgets_path: /etc/nexus/budgets.yaml      # optional: month-to-date vs budget
      price_files: [/etc/nexus/prices.yaml]      # optional: for caching savings estimates
      anomaly_interval_s: 900                    # how often detectors re-run
      metrics_cache_s: 60                        # how long /metrics reuses its answer
      response_cache_s: 60                       # how long an insight answer is reused (0: never)
      precompute_interval_s: 60                  # standard periods kept computed (0: off), see precompute
      api_keys:
        - {name: grafana, hash: "sha256:…", scope: admin}

Environment variables ``NEXUS_RECOMMENDER_<KEY>`` (e.g.
``NEXUS_RECOMMENDER_ROLLUP_PATH``) override the file; arguments to
:func:`recommender.create_app` and CLI flags override both. Unknown keys and
bad values fail at startup with the key named.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .auth import ApiKey

__all__ = ["DEFAULTS", "ConfigError", "load_settings"]

DEFAULTS: dict[str, Any] = {
    "rollup_path": "nexus-rollup.db",
    "budgets_path": None,
    "price_files": [],
    "anomaly_interval_s": 900.0,
    "metrics_cache_s": 60.0,
    "response_cache_s": 60.0,
    "precompute_interval_s": 60.0,
    "recommendations_top_n": 10,
    "api_keys": [],
}
_ENV_PREFIX = "NEXUS_RECOMMENDER_"


class ConfigError(ValueError):
    pass


def _from_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping with a 'recommender:' key")
    section = data.get("recommender", {})
    if not isinstance(section, dict):
        raise ConfigError(f"config {path}: 'recommender' must be a mapping")
    return section


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if name.startswith(_ENV_PREFIX) and name != _ENV_PREFIX + "CONFIG":
            key = name[len(_ENV_PREFIX) :].lower()
            out[key] = yaml.safe_load(value) if key not in ("rollup_path", "budgets_path") else value
    return out


def _number(settings: dict[str, Any], key: str, *, integer: bool = False, minimum: float = 0) -> None:
    value = settings[key]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= minimum
    if integer:
        ok = ok and float(value).is_integer()
    if not ok:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{key} must be {kind} >= {minimum}, got {value!r}")
    settings[key] = int(value) if integer else float(value)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Merge the layers and validate; ``api_keys`` comes back as :class:`ApiKey` objects."""
    environ = os.environ if environ is None else environ
    config_file = config_file or environ.get(_ENV_PREFIX + "CONFIG")
    settings: dict[str, Any] = dict(DEFAULTS)
    layers = [
        ("config file", _from_file(config_file) if config_file else {}),
        ("environment", _from_env(environ)),
    ]
    layers.append(("arguments", {k: v for k, v in (overrides or {}).items() if v is not None}))
    for where, layer in layers:
        unknown = sorted(set(layer) - set(DEFAULTS))
        if unknown:
            raise ConfigError(
                f"unknown recommender setting(s) in {where}: {', '.join(unknown)}; "
                f"known: {', '.join(DEFAULTS)}"
            )
        settings.update(layer)
    if not isinstance(settings["rollup_path"], (str, os.PathLike)) or not str(settings["rollup_path"]):
        raise ConfigError("rollup_path must be a file path")
    settings["rollup_path"] = os.fspath(settings["rollup_path"])
    if settings["budgets_path"] is not None:
        settings["budgets_path"] = os.fspath(settings["budgets_path"])
    files = settings["price_files"]
    if isinstance(files, str) or not isinstance(files, (list, tuple)):
        raise ConfigError("price_files must be a list of file paths")
    settings["price_files"] = [os.fspath(f) for f in files]
    _number(settings, "anomaly_interval_s", minimum=0)
    _number(settings, "metrics_cache_s", minimum=0)
    _number(settings, "response_cache_s", minimum=0)
    _number(settings, "precompute_interval_s", minimum=0)
    _number(settings, "recommendations_top_n", integer=True, minimum=1)
    keys = settings["api_keys"]
    if not isinstance(keys, (list, tuple)):
        raise ConfigError("api_keys must be a list of {name, hash, scope}")
    try:
        settings["api_keys"] = [
            k if isinstance(k, ApiKey) else ApiKey.from_mapping(k, i) for i, k in enumerate(keys)
        ]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return settings
