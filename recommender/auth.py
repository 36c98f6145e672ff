"""API keys: stored hashed, each scoped to one user, one team, or everything.

Keys are long random tokens (``nexus-otel api-key`` makes one), so a plain
SHA-256 digest is enough to keep them useless if the config leaks, and it lets
every request be checked in constant time by dictionary lookup. Scopes:

``admin``          every row
``team:<team>``    rows whose team is ``<team>``
``user:<user_id>`` rows whose user id is ``<user_id>``
``alerts``         only ``POST /alerts`` (Alertmanager's webhook)

A scoped key's filter is forced onto every query, so no filter the caller
sends can widen it; a filter that contradicts it is a 403.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import ApiError
from .params import Query

__all__ = ["ApiKey", "KeyRing", "Principal", "generate_api_key", "hash_api_key", "parse_scope"]

_PREFIX = "sha256:"
MIN_KEY_LENGTH = 12


def hash_api_key(key: str) -> str:
    """The at-rest form of ``key`` for the config file: ``sha256:<hex digest>``."""
    if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"an API key must be a string of at least {MIN_KEY_LENGTH} characters")
    return _PREFIX + hashlib.sha256(key.encode()).hexdigest()


def generate_api_key() -> str:
    return "nxk_" + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's name and scope (``kind`` admin | team | user | alerts)."""

    name: str
    kind: str
    value: str | None = None

    @property
    def scope(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value}"

    def restrict(self, query: Query) -> Query:
        """``query`` with this key's scope forced on; 403 when its filters ask for more."""
        if self.kind == "admin":
            return query
        if self.kind == "alerts":
            raise ApiError(403, f"key {self.name!r} may only post to /alerts")
        column = "team" if self.kind == "team" else "user_id"
        asked = query.get(column)
        if asked is not None and asked != self.value:
            raise ApiError(
                403, f"key {self.name!r} is scoped to {column}={self.value}; it cannot read {column}={asked}"
            )
        return query.with_filters(**{column: self.value})

    def require_admin(self, what: str) -> None:
        if self.kind != "admin":
            raise ApiError(403, f"{what} needs an admin key; key {self.name!r} has scope {self.scope}")


def parse_scope(scope: str) -> tuple[str, str | None]:
    if scope in ("admin", "alerts"):
        return scope, None
    kind, sep, value = scope.partition(":")
    if sep and kind in ("team", "user") and value:
        return kind, value
    raise ValueError(f"scope {scope!r} must be admin, alerts, team:<team> or user:<user_id>")


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    hash: str
    scope: str

    @classmethod
    def from_mapping(cls, entry: Mapping[str, object], index: int) -> ApiKey:
        if not isinstance(entry, Mapping):
            raise ValueError(f"api_keys[{index}] must be a mapping with name, hash and scope")
        unknown = set(entry) - {"name", "hash", "scope"}
        if unknown:
            raise ValueError(f"api_keys[{index}]: unknown field(s) {sorted(unknown)}")
        name, digest, scope = entry.get("name"), entry.get("hash"), entry.get("scope")
        if not isinstance(name, str) or not name:
            raise ValueError(f"api_keys[{index}]: name must be a non-empty string")
        if not isinstance(digest, str) or not digest.startswith(_PREFIX) or len(digest) != len(_PREFIX) + 64:
            raise ValueError(
                f"api_keys[{index}] ({name}): hash must be 'sha256:<64 hex digits>' "
                "(make one with `nexus-otel api-key`); plain keys are not accepted"
            )
        if not isinstance(scope, str):
            raise ValueError(f"api_keys[{index}] ({name}): scope must be a string")
        try:
            parse_scope(scope)
        except ValueError as exc:
            raise ValueError(f"api_keys[{index}] ({name}): {exc}") from None
        return cls(name, digest.lower(), scope)


class KeyRing:
    """Looks up the bearer token of a request among the configured keys."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_hash: dict[str, ApiKey] = {}
        for key in keys:
            if key.hash in self._by_hash:
                raise ValueError(
                    f"api keys {self._by_hash[key.hash].name!r} and {key.name!r} have the same hash"
                )
            self._by_hash[key.hash] = key

    def __len__(self) -> int:
        return len(self._by_hash)

    def principals(self, kinds: tuple[str, ...] = ("admin", "team")) -> list[Principal]:
        """One caller per distinct scope of these kinds (keys of one scope see the same answers)."""
        out: dict[str, Principal] = {}
        for key in self._by_hash.values():
            kind, value = parse_scope(key.scope)
            if kind in kinds and key.scope not in out:
                out[key.scope] = Principal(key.name, kind, value)
        return [out[scope] for scope in sorted(out)]

    def authenticate(self, authorization: str | None, x_api_key: str | None = None) -> Principal:
        token = x_api_key
        if authorization:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() != "bearer" or not credentials.strip():
                raise ApiError(401, "Authorization must be 'Bearer <api key>'")
            token = credentials.strip()
        if not token:
            hint = "" if self._by_hash else " (none are configured: add api_keys to the recommender config)"
            raise ApiError(401, f"an API key is required: send 'Authorization: Bearer <key>'{hint}")
        digest = hashlib.sha256(token.encode()).hexdigest()
        for stored, key in self._by_hash.items():
            if hmac.compare_digest(stored, _PREFIX + digest):
                kind, value = parse_scope(key.scope)
                return Principal(key.name, kind, value)
        raise ApiError(401, "the API key is not valid")
