"""The users' bitmap ordinals a rollup reader keeps in memory: read once, topped up when users arrive."""

from __future__ import annotations

from recommender_traffic import custom_query

from exporters.rollup import RollupWriter
from recommender.store.reader import Rollup
from recommender.store.users import ActivitySource, user_metrics
from tests.rollup_data import model_call, utc

START = utc("2026-03-02T00:00:00")
DAY = 86400


def _calls(users: list[str], day: int, prefix: str) -> list:
    return [
        model_call(START + day * DAY + 3600 * (2 + i % 20), f"{prefix}-{i}", user_id=user, team="search")
        for i, user in enumerate(users)
    ]


def test_users_numbered_after_the_first_read_are_counted_on_partial_days(tmp_path):
    path = tmp_path / "rollup.db"
    writer = RollupWriter(path, retention_days=None)
    writer.write(_calls([f"u{i}" for i in range(30)], 0, "a") + _calls([f"u{i}" for i in range(10)], 2, "b"))
    rollup = Rollup(path)
    # partial days at both edges: their users come from day rows turned into ordinals
    query = custom_query(START + 0.5 * 3600, START + 2 * DAY + 12 * 3600)

    def both() -> tuple[dict, dict]:
        return user_metrics(rollup, query), user_metrics(
            rollup, query, source=ActivitySource(rollup, query, raw=True)
        )

    first, raw = both()
    assert first["active_users"] == raw["active_users"] == 30
    # new users on both edge days, numbered after the reader read the ordinals
    writer.write(
        _calls([f"new{i}" for i in range(7)], 0, "c") + _calls([f"late{i}" for i in range(5)], 2, "d")
    )
    writer.close()
    again, raw = both()
    assert again == raw
    assert again["active_users"] == 42
    assert len(rollup.user_ordinals.of(rollup, ["new0", "late4"])) == 2
