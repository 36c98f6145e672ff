"""Cap the distinct values each attribution label may take on metrics.

A model name from user input or a feature name built from a request path can
explode the number of series. Past the cap, new values are folded into
``other`` and each fold is counted, so the dashboards show that folding
happened instead of silently losing series.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from .semconv import FOLDED_VALUE

__all__ = ["DEFAULT_MAX_VALUES", "LabelGuard"]

DEFAULT_MAX_VALUES = 200


class LabelGuard:
    """Keeps the first ``max_values`` distinct values per label; folds the rest.

    ``on_fold(label)`` is called once per folded measurement so the caller can
    count it. Lookups of known values take no lock.
    """

    def __init__(
        self,
        *,
        max_values: int = DEFAULT_MAX_VALUES,
        per_label: Mapping[str, int] | None = None,
        on_fold: Callable[[str], None] | None = None,
    ) -> None:
        if max_values < 1:
            raise ValueError(f"max_values must be >= 1, got {max_values}")
        for label, cap in (per_label or {}).items():
            if cap < 1:
                raise ValueError(f"cap for label {label!r} must be >= 1, got {cap}")
        self._default = max_values
        self._caps = dict(per_label or {})
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._on_fold = on_fold

    def fold(self, label: str, value: str | None, *, notify: bool = True) -> str | None:
        """The value to put on the metric for ``label``; ``notify=False`` skips ``on_fold``."""
        if value is None:
            return None
        seen = self._seen.get(label)
        if seen is not None and value in seen:
            return value
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if value in seen:
                return value
            if len(seen) < self._caps.get(label, self._default):
                seen.add(value)
                return value
        if notify and self._on_fold is not None:
            self._on_fold(label)
        return FOLDED_VALUE

    def distinct(self, label: str) -> int:
        return len(self._seen.get(label, ()))
