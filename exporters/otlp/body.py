"""OTLP/HTTP request bodies: content type, size limits, gzip, protobuf and JSON decoding.

Every failure is an :class:`OtlpHttpError` carrying the HTTP status the OTLP
specification asks for, raised before anything is stored.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from typing import IO, Any, Literal, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2

__all__ = [
    "JSON",
    "PROTOBUF",
    "BodyFormat",
    "OtlpHttpError",
    "encode_message",
    "parse_message",
    "read_body",
    "request_format",
    "status_body",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
BodyFormat = Literal["protobuf", "json"]
M = TypeVar("M", bound=Message)

_READ_CHUNK = 1 << 16
_HEX_ID = re.compile(r"^[0-9a-fA-F]*$")
_ID_KEYS = {"traceId", "spanId", "trace_id", "span_id"}


class OtlpHttpError(Exception):
    """A request the receiver refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def request_format(content_type: str | None) -> BodyFormat:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == PROTOBUF:
        return "protobuf"
    if media == JSON:
        return "json"
    raise OtlpHttpError(415, f"unsupported content type {content_type!r}; use {PROTOBUF} or {JSON}")


def read_body(
    stream: IO[bytes], *, content_length: str | None, content_encoding: str | None, max_bytes: int
) -> bytes:
    """Read the body, refusing one over ``max_bytes`` on the wire or once decompressed.

    The declared length is checked before reading, the stream is never read past
    the limit, and gzip output is produced at most ``max_bytes + 1`` at a time, so
    a small compressed bomb cannot grow in memory.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise OtlpHttpError(415, f"unsupported content encoding {content_encoding!r}; use gzip or none")
    if content_length:
        try:
            declared = int(content_length)
        except ValueError:
            raise OtlpHttpError(400, f"invalid Content-Length {content_length!r}") from None
        if declared > max_bytes:
            raise OtlpHttpError(413, f"body of {declared} bytes exceeds the limit of {max_bytes} bytes")
        raw = stream.read(declared) if declared else b""
    else:
        raw = _read_limited(stream, max_bytes)
    if encoding == "gzip":
        return _gunzip(raw, max_bytes)
    return raw


def _read_limited(stream: IO[bytes], max_bytes: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(_READ_CHUNK, max_bytes + 1 - size))
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise OtlpHttpError(413, f"body exceeds the limit of {max_bytes} bytes")


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    out: list[bytes] = []
    size = 0
    while True:  # a gzip stream may hold several members
        inflater = zlib.decompressobj(wbits=31)
        try:
            chunk = inflater.decompress(data, max_bytes + 1 - size)
        except zlib.error as exc:
            raise OtlpHttpError(400, f"invalid gzip body: {exc}") from None
        size += len(chunk)
        if size > max_bytes:
            raise OtlpHttpError(413, f"decompressed body exceeds the limit of {max_bytes} bytes")
        out.append(chunk)
        if not inflater.eof:
            raise OtlpHttpError(400, "invalid gzip body: truncated stream")
        data = inflater.unused_data
        if not data:
            return b"".join(out)


def parse_message(body: bytes, fmt: BodyFormat, message_type: type[M]) -> M:
    message = message_type()
    if fmt == "protobuf":
        try:
            message.ParseFromString(body)
        except (DecodeError, ValueError) as exc:
            raise OtlpHttpError(400, f"malformed protobuf {message_type.__name__}: {exc}") from None
        return message
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise OtlpHttpError(400, f"malformed JSON: {exc}") from None
    if not isinstance(document, dict):
        raise OtlpHttpError(400, f"malformed JSON: expected an object, got {type(document).__name__}")
    try:
        json_format.ParseDict(_hex_ids_to_base64(document), message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise OtlpHttpError(400, f"invalid OTLP/JSON {message_type.__name__}: {exc}") from None
    return message


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON spells trace and span ids in hex, protobuf's JSON mapping expects base64."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str) and _HEX_ID.match(value) and len(value) % 2 == 0:
                node[key] = base64.b64encode(bytes.fromhex(value)).decode()
            elif isinstance(value, (dict, list)):
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)
    return node


def encode_message(message: Message, fmt: BodyFormat) -> bytes:
    if fmt == "protobuf":
        return message.SerializeToString()
    return json_format.MessageToJson(message, indent=None).encode()


def status_body(code: int, message: str, fmt: BodyFormat) -> bytes:
    """A ``google.rpc.Status`` body, as OTLP/HTTP error responses carry."""
    return encode_message(status_pb2.Status(code=code, message=message), fmt)
