"""Event exporters that write outside the OpenTelemetry pipeline (the embedded SQLite rollup)."""
