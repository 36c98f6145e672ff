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


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("words", nargs=-1, metavar="[MODEL | import FILE]")
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
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With import: write the YAML here.",
)
@click.option(
    "--effective-from",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="With import: date the imported prices take effect (default: today).",
)
def prices(
    *,
    words: tuple[str, ...],
    provider: str | None,
    files: tuple[Path, ...],
    check_file: Path | None,
    as_json: bool,
    output: Path | None,
    effective_from: object,
) -> None:
    """List model prices (USD per 1M tokens), look one up, check or import a price file.

    \b
    nexus-otel prices                     the table in force today
    nexus-otel prices MODEL               one model: alias resolution, history, tiers
    nexus-otel prices --check FILE        validate a price file (FILE:LINE: message)
    nexus-otel prices import FILE -o OUT  convert LiteLLM's model_prices_and_context_window.json

    MODEL may be a name, an alias (gpt-4o-2024-08-06) or a dated snapshot name.
    Use your own files with --prices-file, configure(price_files=...) or
    $NEXUS_PRICES_FILE.
    """
    if check_file is not None:
        _check(check_file)
        return
    if words and words[0] == "import":
        if len(words) != 2:
            raise click.UsageError("usage: nexus-otel prices import FILE [-o OUT.yaml]")
        _import(Path(words[1]), output, effective_from)
        return
    if len(words) > 1:
        raise click.UsageError(f"expected one MODEL, got {' '.join(words)!r}")
    table = _load(files)
    if words:
        _show(table, words[0], provider, as_json)
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
    if not out:
        raise click.ClickException(f"no prices for provider {provider!r}")
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
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


def _import(file: Path, output: Path | None, effective_from: object) -> None:
    from nexus_otel.pricing.litellm import convert_litellm

    if not file.is_file():
        raise click.ClickException(f"{file}: no such file")
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
