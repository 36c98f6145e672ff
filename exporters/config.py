"""Collector settings, layered lowest first: defaults, ``nexus.yaml``, ``NEXUS_COLLECTOR_*`` env, flags.

``nexus.yaml`` is the ``--config`` file, else ``$NEXUS_CONFIG``, else
``./nexus.yaml`` when it exists; the collector reads its ``collector:`` section.
Every value is validated and a bad one names its source, e.g.
``nexus.yaml: collector.port: must be an integer between 0 and 65535, got 'abc'``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ENV_PREFIX", "CollectorConfig", "ConfigError", "load_config"]

ENV_PREFIX = "NEXUS_COLLECTOR_"


class ConfigError(ValueError):
    """An invalid setting; the message names where it came from."""


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    host: str = "127.0.0.1"
    port: int = 4318  # the OTLP/HTTP default
    rollup: str | None = None
    budgets: str | None = None
    spool: str | None = None  # directory: acknowledge after an fsync'd append, commit in the background
    retention_days: float = 90.0  # raw events older than this are pruned; 0 keeps them
    max_body_bytes: int = 16 * 1024 * 1024
    series_ttl_s: float = 900.0
    max_label_values: int = 200
    auth_token_env: str | None = None
    threads: int = 4
    shutdown_timeout_s: float = 10.0

    def auth_token(self, environ: Mapping[str, str] = os.environ) -> str | None:
        """The ingest bearer token, read from the variable named by ``auth_token_env``."""
        if not self.auth_token_env:
            return None
        token = environ.get(self.auth_token_env, "")
        if not token:
            raise ConfigError(f"auth_token_env: environment variable {self.auth_token_env} is unset or empty")
        return token


def _int(low: int, high: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError
        number = int(value)
        if isinstance(value, float) and value != number:
            raise ValueError
        if number < low or (high is not None and number > high):
            raise ValueError
        return number

    parse.expect = f"an integer >= {low}" if high is None else f"an integer between {low} and {high}"  # type: ignore[attr-defined]
    return parse


def _non_negative(unit: str) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if number < 0 or math.isnan(number):
            raise ValueError
        return number

    parse.expect = f"a number of {unit} >= 0"  # type: ignore[attr-defined]
    return parse


_seconds = _non_negative("seconds")


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError
    return value


_text.expect = "a non-empty string"  # type: ignore[attr-defined]

_PARSERS: dict[str, Callable[[Any], Any]] = {
    "host": _text,
    "port": _int(0, 65535),
    "rollup": _text,
    "budgets": _text,
    "spool": _text,
    "retention_days": _non_negative("days"),
    "max_body_bytes": _int(1),
    "series_ttl_s": _seconds,
    "max_label_values": _int(1),
    "auth_token_env": _text,
    "threads": _int(1, 256),
    "shutdown_timeout_s": _seconds,
}
_FIELDS = {f.name for f in dataclasses.fields(CollectorConfig)}


def _check(name: str, value: Any, source: str) -> Any:
    parser = _PARSERS[name]
    try:
        return parser(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {name}: must be {parser.expect}, got {value!r}") from None  # type: ignore[attr-defined]


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    section = doc.get("collector", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: collector: expected a mapping")
    unknown = sorted(set(section) - _FIELDS)
    if unknown:
        raise ConfigError(
            f"{path}: collector: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}"
        )
    return {k: _check(k, v, f"{path}: collector") for k, v in section.items() if v is not None}


def load_config(
    *,
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> CollectorConfig:
    """Resolve the collector's settings; ``overrides`` (CLI flags) with value None are ignored."""
    values: dict[str, Any] = {}
    path = config_file or environ.get("NEXUS_CONFIG")
    if path is None and Path("nexus.yaml").exists():
        path = "nexus.yaml"
    if path is not None:
        values.update(_read_yaml(Path(path)))
    for name in _FIELDS:
        raw = environ.get(f"{ENV_PREFIX}{name.upper()}")
        if raw is not None and raw != "":
            values[name] = _check(name, raw, f"${ENV_PREFIX}{name.upper()}")
    for name, value in (overrides or {}).items():
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = _check(name, value, f"--{name.replace('_', '-')}")
    config = CollectorConfig(**values)
    config.auth_token(environ)  # fail at start, not at the first request
    return config
