"""Collector settings: nexus.yaml < NEXUS_COLLECTOR_* < flags, validated with errors that say where."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exporters.config import CollectorConfig, ConfigError, load_config
from tests.servers import REPO


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "nexus.yaml"
    path.write_text(text)
    return path


def test_layers_apply_lowest_first(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "telemetry:\n  service_name: x\ncollector:\n  port: 5000\n  series_ttl_s: 30\n  threads: 2\n",
    )
    env = {"NEXUS_COLLECTOR_PORT": "6000", "NEXUS_COLLECTOR_MAX_BODY_BYTES": "1024"}
    config = load_config(config_file=path, environ=env, overrides={"port": 7000, "host": None})
    assert config == CollectorConfig(port=7000, series_ttl_s=30.0, threads=2, max_body_bytes=1024)
    assert load_config(config_file=path, environ=env).port == 6000
    assert load_config(config_file=path, environ={}).port == 5000


def test_nexus_config_env_and_cwd_file_are_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "collector:\n  rollup: events.db\n")
    assert load_config(environ={}).rollup == "events.db"
    other = tmp_path / "other.yaml"
    other.write_text("collector:\n  rollup: other.db\n")
    assert load_config(environ={"NEXUS_CONFIG": str(other)}).rollup == "other.db"


@pytest.mark.parametrize(
    ("yaml_text", "env", "message"),
    [
        (
            "collector:\n  port: high\n",
            {},
            "collector: port: must be an integer between 0 and 65535, got 'high'",
        ),
        ("collector:\n  porrt: 1\n", {}, "unknown setting(s) porrt"),
        ("collector: [1, 2]\n", {}, "collector: expected a mapping"),
        ("collector:\n  port: [\n", {}, "invalid YAML"),
        (
            "",
            {"NEXUS_COLLECTOR_SERIES_TTL_S": "-5"},
            "$NEXUS_COLLECTOR_SERIES_TTL_S: series_ttl_s: must be a number of seconds >= 0",
        ),
        ("", {"NEXUS_COLLECTOR_MAX_BODY_BYTES": "0"}, "max_body_bytes: must be an integer >= 1"),
        (
            "collector:\n  auth_token_env: INGEST_TOKEN\n",
            {},
            "environment variable INGEST_TOKEN is unset or empty",
        ),
    ],
)
def test_invalid_settings_name_their_source(
    tmp_path: Path, yaml_text: str, env: dict[str, str], message: str
) -> None:
    path = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config(config_file=path, environ=env)
    assert message in str(err.value)


def test_auth_token_is_read_from_the_named_variable() -> None:
    config = load_config(overrides={"auth_token_env": "MY_TOKEN"}, environ={"MY_TOKEN": "abc"})
    assert config.auth_token({"MY_TOKEN": "abc"}) == "abc"


def test_cli_rejects_a_bad_flag_with_one_line_and_nonzero_exit(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nexus_otel", "collector", "--port", "70000"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert "--port: port: must be an integer between 0 and 65535, got 70000" in done.stderr


def test_cli_help_lists_every_setting() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nexus_otel", "collector", "--help"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0
    for flag in (
        "--config",
        "--host",
        "--port",
        "--rollup",
        "--budgets",
        "--max-body-bytes",
        "--series-ttl",
        "--max-label-values",
        "--auth-token-env",
        "/v1/metrics",
        "/readyz",
        "NEXUS_COLLECTOR_",
    ):
        assert flag in done.stdout
