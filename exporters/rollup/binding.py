"""Raw rows into their table with as few slow parameters as possible.

CPython's ``sqlite3`` binds an exact ``int``, ``float`` or ``str`` directly and sends every
other parameter through its adaptation protocol, which formats and discards an
``AttributeError`` for each ``None`` and each ``bool``. A model-call row has about five of
the one and three of the other: ~1.7 µs of the ~6 µs a plain ``executemany`` spends on it.

:func:`insert_rows` groups a batch by which of its columns are ``None`` (a handful of
patterns: no error type, no time to first token, …) and inserts each group through an
``INSERT OR IGNORE`` that names only its other columns, whose ``NULL`` is the column default,
with ``True`` and ``False`` as ``1`` and ``0``, which is what ``sqlite3`` stores for them. The
grouping runs in C (``_bind_c.c``; :func:`compact_rows_python` is its reference). Without the
C module the rows go through one plain ``executemany``: grouping them in Python would cost
more than it saves.

The rows are inserted group by group, so their row ids follow the order :func:`insert_rows`
returns, not the order they came in.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import cache
from typing import Any, Final

from .c_twins import load_twin
from .rows import columns_of, insert_sql

__all__ = ["MAX_GROUPS", "accelerated", "compact_rows_python", "insert_rows", "insert_sql_without"]

#: Most None patterns one batch is grouped into; a batch with more goes through plain executemany.
MAX_GROUPS: Final = 256

Groups = list[tuple[int, list[tuple[Any, ...]], list[tuple[Any, ...]]]]


def compact_rows_python(rows: Sequence[tuple[Any, ...]], *, width: int) -> Groups | None:
    """``[(mask, originals, values)]``: the rows grouped by their None columns (bit i of ``mask``),
    each as given and without those columns, bools as ints; groups in first-seen order.

    None: rows to insert as they are (not a tuple of ``width`` values, more than
    :data:`MAX_GROUPS` patterns). The reference for the C grouping (``_bind_c.c``).
    """
    groups: dict[int, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]] = {}
    for row in rows:
        if type(row) is not tuple or len(row) != width:
            return None
        mask = 0
        for i, value in enumerate(row):
            if value is None:
                mask |= 1 << i
        group = groups.get(mask)
        if group is None:
            if len(groups) == MAX_GROUPS:
                return None
            group = groups[mask] = ([], [])
        group[0].append(row)
        group[1].append(tuple(int(v) if type(v) is bool else v for v in row if v is not None))
    return [(mask, originals, values) for mask, (originals, values) in groups.items()]


@cache
def insert_sql_without(table: str, mask: int) -> str:
    """``INSERT OR IGNORE`` into ``table`` naming only the columns whose bit is clear in ``mask``."""
    columns = [c for i, c in enumerate(columns_of(table)) if not mask >> i & 1]
    return f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


_accelerated = load_twin("_bind_c")


def accelerated() -> bool:
    """True when the C grouping is built and in use."""
    return _accelerated is not None


def insert_rows(conn: sqlite3.Connection, table: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``INSERT OR IGNORE`` ``rows`` into ``table``; the rows in the order they were inserted."""
    groups = _accelerated.compact(rows, width=len(columns_of(table))) if _accelerated is not None else None
    if groups is None:
        conn.executemany(insert_sql(table), rows)
        return rows
    if len(groups) == 1:
        conn.executemany(insert_sql_without(table, groups[0][0]), groups[0][2])
        return rows
    ordered: list[tuple[Any, ...]] = []
    for mask, originals, values in groups:
        conn.executemany(insert_sql_without(table, mask), values)
        ordered.extend(originals)
    return ordered
