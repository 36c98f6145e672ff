"""The ``nexus-otel`` command line.

Subcommands live in their own modules and are imported only when invoked, so
``nexus-otel --help`` stays fast and a command's heavy dependencies (the
collector's, the recommender's) load only for that command.
"""

from __future__ import annotations

import importlib

import click

__all__ = ["main"]

#: command name -> "module:attribute" of a click command.
COMMANDS: dict[str, str] = {
    "api-key": "nexus_otel.cli.recommender:api_key",
    "collector": "nexus_otel.cli.collector:collector",
    "demo": "nexus_otel.cli.demo:demo",
    "export": "nexus_otel.cli.recommender:export",
    "prices": "nexus_otel.cli.prices:prices",
    "recommender": "nexus_otel.cli.recommender:recommender",
    "report": "nexus_otel.cli.recommender:report",
    "rollup": "nexus_otel.cli.rollup:rollup",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nexus-otel")
def main() -> None:
    """nexus-otel: cost, token, latency and usage observability for AI/LLM apps.

    Record model calls with the ``nexus_otel`` decorators or client
    integrations; try it without an API key with ``nexus-otel demo``; manage
    model prices with ``nexus-otel prices``. Run ``nexus-otel COMMAND --help``
    for each command.
    """
