"""``nexus-otel prices``: list, look up, check and import model prices."""

from __future__ import annotations

import difflib
import json
import os
import sys
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from nexus_otel.pricing import ModelPrice, PriceTable, Rates

__all__ = ["prices"]

_DATE = click.DateTime(formats=["%Y-%m-%d"])


@click.command()
@click.argument("words", nargs=-1, metavar="[MODEL | import FILE]")
@click.option(
    "--provider",
    metavar="NAME",
    help="Only this provider, as a gen_ai.provider.name value: openai, anthropic, gcp.gemini, "
    "mistral_ai, deepseek, ... With MODEL: prefer this provider's model of that name.",
)
@click.option(
    "--prices-file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Extra price file layered over the built-in table and $NEXUS_PRICES_FILE (repeatable; "
    "later files win).",
)
@click.option(
    "--at",
    "at",
    type=_DATE,
    metavar="YYYY-MM-DD",
    help="Show the prices in force on this day instead of today (UTC).",
)
@click.option(
    "--check",
    "check_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Validate a price file and exit: prints FILE:LINE: message per problem and exits 1, "
    "or exits 0 when the file is valid (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With import: write the converted YAML to this file instead of standard output.",
)
@click.option(
    "--effective-from",
    type=_DATE,
    metavar="YYYY-MM-DD",
    help="With import: the day the imported prices take effect (default: today).",
)
def prices(
    *,
    words: tuple[str, ...],
    provider: str | None,
    files: tuple[Path, ...],
    at: datetime | None,
    check_files: tuple[Path, ...],
    as_json: bool,
    output: Path | None,
    effective_from: datetime | None,
) -> None:
    """List model prices (USD per 1M tokens), look one up, check or import a price file.

    \b
    nexus-otel prices                       every model's prices in force today
    nexus-otel prices --provider anthropic  one provider's models
    nexus-otel prices MODEL                 one model: name resolution, history, tiers
    nexus-otel prices --check FILE          validate your price file (FILE:LINE: message)
    nexus-otel prices import FILE -o OUT    convert LiteLLM's model_prices_and_context_window.json

    MODEL may be a model name, an alias (chatgpt-4o-latest), a dated snapshot name
    (gpt-4o-2024-08-06, claude-sonnet-4-5-20250929) or a provider/model name.

    The table is the built-in one, overlaid with the files listed in
    $NEXUS_PRICES_FILE (os.pathsep-separated) and then --prices-file: the same
    files your application uses with configure(price_files=...). Price files use
    the schema of nexus_otel/data/prices.yaml: a `models` list whose entries have
    provider, model, effective_from (YYYY-MM-DD), input and output (USD per 1M
    tokens), and optionally aliases, cache_read, cache_write_5m, cache_write_1h,
    reasoning and tiers (above_input_tokens plus rates for the whole request).
    Missing cache rates bill like input, missing reasoning rates like output.
    """
    if check_files:
        _check(check_files)
        return
    if words and words[0] == "import":
        if len(words) != 2:
            raise click.UsageError("usage: nexus-otel prices import FILE [-o OUT.yaml]")
        _import(Path(words[1]), output, effective_from.date() if effective_from else None)
        return
    if len(words) > 1:
        raise click.UsageError(f"expected one MODEL, got {' '.join(words)!r}")
    table = _load(files)
    day = at.date() if at else datetime.now(timezone.utc).date()
    if words:
        _show(table, words[0], provider=provider, day=day, as_json=as_json)
    else:
        _list(table, provider=provider, day=day, as_json=as_json)


def _load(files: tuple[Path, ...]) -> PriceTable:
    from nexus_otel.pricing import ENV_PRICES_FILE, PriceFileError, PriceTable

    env_files = [Path(p) for p in os.environ.get(ENV_PRICES_FILE, "").split(os.pathsep) if p]
    try:
        return PriceTable.load(*env_files, *files)
    except PriceFileError as exc:
        raise click.ClickException(str(exc)) from None


def _money(value: object) -> str:
    return "-" if value is None else str(value)


def _rates(rates: Rates) -> dict[str, str]:
    return {
        "input": _money(rates.input),
        "output": _money(rates.output),
        "cache_read": _money(rates.cache_read),
        "cache_write_5m": _money(rates.cache_write_5m),
        "cache_write_1h": _money(rates.cache_write_1h),
        "reasoning": _money(rates.reasoning),
    }


def _row(price: ModelPrice) -> dict[str, Any]:
    return {
        "provider": price.provider,
        "model": price.model,
        **_rates(price.rates),
        "effective_from": price.effective_from.isoformat(),
        "tiers": [{"above_input_tokens": t.above_input_tokens, **_rates(t.rates)} for t in price.tiers],
    }


_COLUMNS = ("provider", "model", "input", "output", "cache_read", "cache_write_5m", "cache_write_1h")


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    click.echo("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        click.echo("  ".join(str(row[c]).ljust(widths[c]) for c in columns).rstrip())


def _list(table: PriceTable, *, provider: str | None, day: date, as_json: bool) -> None:
    rows = []
    for key in sorted({(p.provider, p.model) for p in table.entries()}):
        if provider is not None and key[0] != provider:
            continue
        price = table.lookup(provider=key[0], model=key[1], at=day)
        if price is not None:
            rows.append(_row(price))
    if not rows:
        known = ", ".join(table.providers())
        raise click.ClickException(f"no prices for provider {provider!r} on {day}; known providers: {known}")
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        row["tiered"] = "yes" if row["tiers"] else ""
    _table(rows, (*_COLUMNS, "effective_from", "tiered"))


def _show(table: PriceTable, model: str, *, provider: str | None, day: date, as_json: bool) -> None:
    key = table.resolve_model_name(provider=provider, model=model)
    if key is None:
        names = sorted({n for p in table.entries() for n in (p.model, *p.aliases)})
        close = difflib.get_close_matches(model, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `nexus-otel prices` for the list"
        where = f" of provider {provider!r}" if provider else ""
        raise click.ClickException(f"no price for model {model!r}{where}{hint}")
    current = table.lookup(provider=key[0], model=key[1], at=day)
    info = {
        "query": model,
        "provider": key[0],
        "model": key[1],
        "matched_by": table.explain_model_name(provider=provider, model=model),
        "aliases": list(table.aliases(provider=key[0], model=key[1])),
        "at": day.isoformat(),
        "current": _row(current) if current else None,
        "history": [_row(p) for p in table.history(provider=key[0], model=key[1])],
    }
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{model} -> {key[0]}/{key[1]} (matched by {info['matched_by']})")
    if info["aliases"]:
        click.echo(f"aliases: {', '.join(info['aliases'])}")
    click.echo("USD per 1M tokens; missing cache rates bill like input, missing reasoning like output.")
    _table(info["history"], ("effective_from", *_COLUMNS[2:], "reasoning"))
    if current is None:
        click.echo(f"no price in force on {day}")
        return
    click.echo(f"in force on {day}: the entry from {current.effective_from}")
    for tier in info["current"]["tiers"]:
        click.echo(
            f"  requests above {tier['above_input_tokens']:,} input tokens bill every token at: "
            + ", ".join(f"{k} {v}" for k, v in tier.items() if k != "above_input_tokens" and v != "-")
        )


def _check(paths: tuple[Path, ...]) -> None:
    from nexus_otel.pricing import PriceFileError, load_price_file

    failed = False
    for path in paths:
        try:
            entries = load_price_file(path)
        except PriceFileError as exc:
            failed = True
            for line in exc.errors:
                click.echo(line, err=True)
            continue
        click.echo(f"{path}: OK, {len(entries)} price entries")
    if failed:
        sys.exit(1)


def _import(file: Path, output: Path | None, effective_from: date | None) -> None:
    from nexus_otel.pricing.litellm import convert_litellm

    try:
        result = convert_litellm(file, effective_from=effective_from)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    text = result.to_yaml(source=file.name)
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"{output}: cannot write: {exc.strerror}") from None
    click.echo(result.summary(), err=True)
