"""Token usage normalised to one model, whatever the provider reported.

``input_tokens`` includes cache-read and cache-write tokens and ``output_tokens``
includes reasoning tokens, as the GenAI semantic conventions define them. The
detailed counts are subsets, never added on top. Extraction from provider
response shapes lives in :mod:`nexus_otel.extract`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Usage"]

_new = object.__new__


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Usage.{name} must be a non-negative int, got {value!r}")
        if self.cache_read_tokens + self.cache_write_tokens > self.input_tokens:
            raise ValueError(
                "cache_read_tokens + cache write tokens exceed input_tokens; input_tokens must "
                "include cached tokens (use Usage.from_parts for provider shapes that report them apart)"
            )
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError("reasoning_tokens exceed output_tokens; output_tokens must include reasoning")

    @classmethod
    def _checked_by_caller(
        cls, input_tokens: int, output_tokens: int, cache_read: int, cache_write_5m: int, reasoning: int
    ) -> Usage:
        """For :mod:`nexus_otel.extract`, whose values are already clamped non-negative ints:
        skips ``__post_init__``, the larger part of building one on the per-call path."""
        u = _new(cls)
        # The slots' own setters: a third cheaper than object.__setattr__ by name.
        set_input, set_output, set_read, set_write_5m, set_write_1h, set_reasoning = _SETTERS
        set_input(u, input_tokens)
        set_output(u, output_tokens)
        set_read(u, cache_read)
        set_write_5m(u, cache_write_5m)
        set_write_1h(u, 0)
        set_reasoning(u, reasoning)
        return u

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens billed at the plain input price."""
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

    @property
    def visible_output_tokens(self) -> int:
        """Output tokens that are not reasoning tokens."""
        return self.output_tokens - self.reasoning_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def from_parts(
        cls,
        *,
        uncached_input_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_5m_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
        output_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> Usage:
        """Build from a shape that reports cached input apart (Anthropic's)."""
        return cls(
            input_tokens=uncached_input_tokens
            + cache_read_tokens
            + cache_write_5m_tokens
            + cache_write_1h_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_5m_tokens=cache_write_5m_tokens,
            cache_write_1h_tokens=cache_write_1h_tokens,
            reasoning_tokens=reasoning_tokens,
        )


_SETTERS = tuple(
    getattr(Usage, name).__set__
    for name in (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_5m_tokens",
        "cache_write_1h_tokens",
        "reasoning_tokens",
    )
)
