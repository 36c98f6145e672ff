"""``nexus-otel prices``: list, look up, check and import model prices."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import click

__all__ = ["prices"]


def _fmt(value: object) -> str:
    return "-" if value is None else f"{value}"


def _row(p: object) -> dict[str, str]:
    r = p.rates  # type: ignore[attr-defined]
    return {
        "provider": p.provider,  # type: ignore[attr-defined]
        "model": p.model,  # type: ignore[attr-defined]
        "input": _fmt(r.input),
        "output": _fmt(r.output),
        "cache_read": _fmt(r.cache_read),
        "cache_write_5m": _fmt(r.cache_write_5m),
        "cache_write_1h": _fmt(r.cache_write_1h),
        "effective_from": p.effective_from.isoformat(),  # type: ignore[attr-defined]
    }


def _load(files: tuple[Path, ...]) -> object:
    from nexus_otel.pricing import PriceFileError, PriceTable

    try:
        return PriceTable.load(*files)
    except PriceFileError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(invoke_without_command=True)
@click.argument("model", required=False)
@click.option(
    "--provider", help="Only this provider (gen_ai.provider.name, e.g. openai, anthropic, gcp.gemini)."
)
@click.option(
    "--prices-file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Extra price file layered over the built-in table (repeatable).",
)
@click.option(
    "--check", "check_file", type=click.Path(path_type=Path), help="Validate a price file and exit."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def prices(
    ctx: click.Context,
    *,
    model: str | None,
    provider: str | None,
    files: tuple[Path, ...],
    check_file: Path | None,
    as_json: bool,
) -> None:
    """List model prices (USD per 1M tokens) or look one model up.

    Without MODEL, prints the table in force today. With MODEL (a name, an alias
    such as gpt-4o-2024-08-06, or a dated snapshot name), prints the entry it
    resolves to, its history and its long-context tiers. --check FILE validates
    a price file and prints every problem as FILE:LINE: message.
    """
    if ctx.invoked_subcommand is not None:
        return
    if check_file is not None:
        _check(check_file)
        return
    table = _load(files)
    if model is not None:
        _show(table, model, provider, as_json)
        return
    rows = [
        _row(p)
        for p in table.entries()  # type: ignore[attr-defined]
        if provider is None or p.provider == provider
    ]
    latest: dict[tuple[str, str], dict[str, str]] = {}
    today = date.today().isoformat()
    for row in rows:
        if row["effective_from"] <= today:
            latest[(row["provider"], row["model"])] = row
    out = list(latest.values())
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    if not out:
        raise click.ClickException(f"no prices for provider {provider!r}")
    _table(out)


def _table(rows: list[dict[str, str]]) -> None:
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    click.echo("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        click.echo("  ".join(r[c].ljust(widths[c]) for c in cols))


def _show(table: object, model: str, provider: str | None, as_json: bool) -> None:
    key = table.resolve_model_name(provider=provider, model=model)  # type: ignore[attr-defined]
    if key is None:
        raise click.ClickException(
            f"no price for model {model!r}" + (f" of provider {provider!r}" if provider else "")
        )
    history = [p for p in table.entries() if (p.provider, p.model) == key]  # type: ignore[attr-defined]
    current = table.lookup(provider=key[0], model=key[1], at=date.today())  # type: ignore[attr-defined]
    info = {
        "query": model,
        "provider": key[0],
        "model": key[1],
        "aliases": list(history[-1].aliases),
        "current": _row(current) if current else None,
        "history": [_row(p) for p in history],
        "tiers": [
            {
                "above_input_tokens": t.above_input_tokens,
                "input": str(t.rates.input),
                "output": str(t.rates.output),
            }
            for t in (current.tiers if current else ())
        ],
    }
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(
        f"{model} → {key[0]}/{key[1]}"
        + (f" (aliases: {', '.join(info['aliases'])})" if info["aliases"] else "")
    )
    _table(info["history"])
    for t in info["tiers"]:
        click.echo(
            f"above {t['above_input_tokens']:,} input tokens: input {t['input']}, output {t['output']}"
        )


def _check(path: Path) -> None:
    from nexus_otel.pricing import PriceFileError, load_price_file

    try:
        entries = load_price_file(path)
    except PriceFileError as exc:
        for line in exc.errors:
            click.echo(line, err=True)
        sys.exit(1)
    click.echo(f"{path}: OK, {len(entries)} price entries")


@prices.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the YAML here (default: stdout).",
)
@click.option(
    "--effective-from",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Date the imported prices take effect (default: today).",
)
def import_(*, file: Path, output: Path | None, effective_from: object) -> None:
    """Convert LiteLLM's model_prices_and_context_window.json to a nexus-otel price file.

    Per-token prices become per-1M prices (exact decimals), LiteLLM provider
    names become OpenTelemetry gen_ai.provider.name values, and only chat,
    completion and responses models are kept. Load the result with
    --prices-file, configure(price_files=...) or $NEXUS_PRICES_FILE.
    """
    from nexus_otel.pricing.litellm import convert_litellm

    try:
        result = convert_litellm(file, effective_from=effective_from.date() if effective_from else None)  # type: ignore[attr-defined]
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    text = result.to_yaml()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(result.skipped.items())) or "none"
    click.echo(f"imported {len(result.models)} models; skipped: {skipped}", err=True)
