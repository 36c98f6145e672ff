"""``nexus-otel rollup migrate | stats | prune`` through the real command line."""

from __future__ import annotations

import json
import time

from click.testing import CliRunner

from exporters.rollup import RollupWriter, open_database
from exporters.rollup.migrations import MIGRATIONS
from nexus_otel.cli import main
from tests.rollup_data import model_call


def run(*args: str):
    return CliRunner().invoke(main, ["rollup", *args], catch_exceptions=False)


def test_migrate_creates_then_reports_up_to_date(tmp_path):
    db = str(tmp_path / "r.db")
    first = run("migrate", "--db", db)
    assert first.exit_code == 0
    assert "applied 0001 initial schema" in first.output
    again = run("migrate", "--db", db)
    assert again.exit_code == 0
    assert "applied" not in again.output
    assert f"schema version {MIGRATIONS[-1].version} (up to date)" in again.output


def test_stats_and_prune(tmp_path):
    db = tmp_path / "r.db"
    now = time.time()
    writer = RollupWriter(db, retention_days=None)
    writer.write(
        [model_call(now - 40 * 86400, "old", cost_usd=1.0), model_call(now - 60, "new", cost_usd=2.0)]
    )
    writer.close()

    text = run("stats", "--db", str(db))
    assert text.exit_code == 0
    assert f"schema version:  {MIGRATIONS[-1].version}" in text.output
    assert any(line.split()[:2] == ["model_calls", "2"] for line in text.output.splitlines())

    stats = json.loads(run("stats", "--db", str(db), "--json").output)
    assert stats["rows"]["model_calls"] == 2
    assert stats["rows"]["agg_day"] == 2
    assert stats["rows"]["team_hour"] == 2
    assert stats["rows"]["active_users_day"] == 0  # the calls carry no user
    assert stats["rows"]["user_ordinals"] == 0
    assert stats["time_range"]["team_hour"]["first"] == (now - 40 * 86400) // 3600 * 3600
    assert stats["schema_version"] == MIGRATIONS[-1].version
    assert stats["size_bytes"] > 0
    assert stats["time_range"]["model_calls"]["first"] == now - 40 * 86400

    pruned = run("prune", "--db", str(db), "--older-than", "30d")
    assert pruned.exit_code == 0
    assert "model_calls: 1 deleted" in pruned.output
    conn = open_database(db, readonly=True)
    assert conn.execute("SELECT COUNT(*) FROM model_calls").fetchone()[0] == 1
    assert conn.execute("SELECT SUM(requests), TOTAL(cost_usd) FROM agg_day").fetchone() == (2, 3.0)
    assert conn.execute("SELECT SUM(requests), TOTAL(cost_usd) FROM team_hour").fetchone() == (2, 3.0)
    conn.close()


def test_bad_input_is_a_one_line_error_and_changes_nothing(tmp_path):
    db = tmp_path / "r.db"
    run("migrate", "--db", str(db))
    before = db.stat().st_size
    bad = run("prune", "--db", str(db), "--older-than", "soon")
    assert bad.exit_code == 2
    assert "invalid duration 'soon'" in bad.output
    missing = run("stats", "--db", str(tmp_path / "nope.db"))
    assert missing.exit_code == 1
    assert "no rollup at" in missing.output
    assert not (tmp_path / "nope.db").exists()
    assert db.stat().st_size == before


def test_help_texts():
    for command in ("migrate", "stats", "prune"):
        result = run(command, "--help")
        assert result.exit_code == 0
        assert "--db" in result.output
    assert "older-than" in run("prune", "--help").output
    assert "migrate" in run("--help").output
