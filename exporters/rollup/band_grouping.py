"""Which band a call falls in, and new calls grouped into band stage rows in memory.

See :mod:`exporters.rollup.bands` for the tables these rows are folded into. The SQL
fold computes the same bands (``bands._band_sql``) with :data:`CONFIDENCE_THRESHOLDS`
bound as parameters, so both paths put every call in the same band.

:func:`group_bands` groups in C (``_bands_c.c``, built by setup.py) when it can and
falls back to :func:`group_band_rows`, the Python reference, for any batch the C
grouping hands back; both give the same rows.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any, Final

from .c_twins import load_twin
from .schema import LAST_DATE_TS as _LAST_TS

__all__ = [
    "CONFIDENCE_BAND",
    "CONFIDENCE_THRESHOLDS",
    "OUT_OF_RANGE_BAND",
    "SHORT_PROMPT_TOKENS",
    "STAGE_WIDTH",
    "THRESHOLD_PARAMS",
    "confidence_band",
    "group_band_rows",
    "group_bands",
    "stage_band",
]

#: A prompt of at most this many input tokens is short (the cheaper-model check's threshold).
SHORT_PROMPT_TOKENS: Final = 2000
#: Width of the router-confidence bands (the router-threshold check's bands).
CONFIDENCE_BAND: Final = 0.1
#: ``band`` of a routed call whose confidence is outside [0, 1].
OUT_OF_RANGE_BAND: Final = 99
#: The band stage keys calls by hour; each band table regroups the stage to its width.
STAGE_WIDTH: Final = 3600


def confidence_band(confidence: float) -> int:
    """The band index of a confidence: the recommender's ``int(round(confidence / 0.1, 9))``."""
    return int(round(confidence / CONFIDENCE_BAND, 9))


def _threshold(k: int) -> float:
    """The smallest float in [0, 1] whose band is ``k`` (bisection over the floats themselves)."""
    lo, hi = 0.0, 1.0  # confidence_band(lo) < k <= confidence_band(hi)
    while math.nextafter(lo, 2.0) < hi:
        mid = (lo + hi) / 2
        if mid <= lo or mid >= hi:
            mid = math.nextafter(lo, 2.0)
        if confidence_band(mid) >= k:
            hi = mid
        else:
            lo = mid
    return hi


#: ``CONFIDENCE_THRESHOLDS[k - 1]``: the lowest confidence of band k (1..10). Bound as SQL
#: parameters, so SQL and Python compare the same doubles and agree with :func:`confidence_band`.
CONFIDENCE_THRESHOLDS: Final = tuple(_threshold(k) for k in range(1, confidence_band(1.0) + 1))
#: The thresholds as the SQL fold's named parameters ``:c1`` .. ``:c10``.
THRESHOLD_PARAMS: Final = {f"c{k}": t for k, t in enumerate(CONFIDENCE_THRESHOLDS, start=1)}


def stage_band(routed: int, input_tokens: int, confidence: float) -> int:
    """``band`` of an in-scope call (as the SQL below computes it), for the in-memory fold."""
    if routed == 0:
        return 1 if input_tokens <= SHORT_PROMPT_TOKENS else 0
    if not 0.0 <= confidence <= 1.0:
        return OUT_OF_RANGE_BAND
    return bisect_right(CONFIDENCE_THRESHOLDS, confidence)


def group_band_rows(calls: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]] | None:
    """The band stage rows of new ``model_calls`` rows (``rows.py`` layout), grouped in memory as
    ``bands._STAGE_CALLS_SQL`` groups them in SQL; None: let the SQL decide (a NULL token count, a
    NaN confidence, a time SQLite's integer division would bucket differently).

    Runs after ``prefold``'s minute and activity grouping (in C or Python), as its own loop: one
    key tuple and eight additions per in-scope call.
    """
    groups: dict[tuple[Any, ...], list[Any]] = {}
    hour, short, thresholds, isnan, last_ts = (
        STAGE_WIDTH,
        SHORT_PROMPT_TOKENS,
        CONFIDENCE_THRESHOLDS,
        math.isnan,
        _LAST_TS,
    )
    get = groups.get
    try:
        for (
            ts, _, _, team, _, feature, _, model, _, provider, _, _, input_tokens, output_tokens, cache_read,
            _, _, cost, base, priced, _, _, _, _, _, routed, routed_from, confidence,
        ) in calls:  # fmt: skip
            if feature is None:
                continue  # out of scope: no check reads it
            if routed == 0:
                key = (
                    int(ts) // hour * hour,
                    team or "",
                    feature,
                    model,
                    provider,
                    0,
                    "",
                    int(input_tokens <= short),
                )
            elif routed == 1 and confidence is not None:
                if isnan(confidence):  # SQLite stores NaN as NULL, which is out of scope
                    return None
                band = bisect_right(thresholds, confidence) if 0.0 <= confidence <= 1.0 else OUT_OF_RANGE_BAND
                bucket = int(ts) // hour * hour
                key = (bucket, team or "", feature, model, provider, 1, routed_from or "", band)
            else:
                continue
            if not 0.0 <= ts <= last_ts:
                return None
            acc = get(key)
            if acc is None:
                # calls, input, output, cache read, cost, priced, baseline, min confidence, feedback x3
                groups[key] = [1, input_tokens, output_tokens, cache_read, cost or 0.0, priced, base or 0.0,
                               confidence if routed else None, 0, 0, 0.0]  # fmt: skip
                continue
            acc[0] += 1
            acc[1] += input_tokens
            acc[2] += output_tokens
            acc[3] += cache_read
            if cost is not None:
                acc[4] += cost
            acc[5] += priced
            if base is not None:
                acc[6] += base
            if routed and confidence < acc[7]:
                acc[7] = confidence
    except TypeError:  # a NULL where the SQL would compute NULL
        return None
    out = [(*key, *sums) for key, sums in groups.items()]
    if any(isinstance(v, float) and isnan(v) for row in out for v in row):
        return None
    return out


_accelerated = load_twin("_bands_c")


def group_bands(calls: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]] | None:
    """:func:`group_band_rows` of ``calls``, in C when the C grouping is built and takes the batch."""
    if _accelerated is not None:
        rows = _accelerated.group_bands(
            calls,
            hour=STAGE_WIDTH,
            short=SHORT_PROMPT_TOKENS,
            thresholds=CONFIDENCE_THRESHOLDS,
            out_of_range=OUT_OF_RANGE_BAND,
            last_ts=_LAST_TS,
        )
        if rows is not None:
            return rows
    return group_band_rows(calls)


def accelerated() -> bool:
    """True when the C band grouping is built and in use."""
    return _accelerated is not None
