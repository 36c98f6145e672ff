"""Packaging promises: a light import, a public API in __all__, a CLI whose help is documentation."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

import nexus_otel
from nexus_otel.cli import COMMANDS, main

HEAVY = ("flask", "numpy", "pyod", "sqlite_utils", "opentelemetry.sdk", "prometheus_client", "click")


def test_import_pulls_in_nothing_heavy():
    code = (
        "import sys, nexus_otel\n"
        "from nexus_otel import track_model_call, attribution, track_feedback\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_public_name_resolves():
    for name in nexus_otel.__all__:
        assert getattr(nexus_otel, name) is not None, name


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'track_modle_call'"):
        nexus_otel.track_modle_call  # noqa: B018


def _walk(command, path=()):
    yield path, command
    if hasattr(command, "list_commands"):
        ctx = __import__("click").Context(command)
        for name in command.list_commands(ctx):
            yield from _walk(command.get_command(ctx, name), (*path, name))


def test_every_command_has_help_text():
    runner = CliRunner()
    seen = []
    for path, command in _walk(main):
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        name = " ".join(path) or "nexus-otel"
        assert command.help, f"{name} has no help"
        assert len(command.help.split()) >= 5, f"{name} needs real help"
        for param in command.params:
            if (
                param.param_type_name == "option"
                and not param.hidden
                and param.name not in ("help", "version")
            ):
                assert param.help, f"option {param.opts} of {' '.join(path)} has no help"
        seen.append(path)
    assert {p[0] for p in seen if p} == set(COMMANDS)


def test_console_script_runs():
    result = subprocess.run(
        [sys.executable, "-m", "nexus_otel", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "Usage:" in result.stdout
