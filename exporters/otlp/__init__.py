"""The OTLP/HTTP receiver's decoding: bodies, metrics into the series store, log records into events."""

from .body import OtlpHttpError, encode_message, parse_message, read_body, request_format, status_body
from .logs import DecodedLogs, decode_logs
from .metrics import MetricsIngest, MetricsResult

__all__ = [
    "DecodedLogs",
    "MetricsIngest",
    "MetricsResult",
    "OtlpHttpError",
    "decode_logs",
    "encode_message",
    "parse_message",
    "read_body",
    "request_format",
    "status_body",
]
