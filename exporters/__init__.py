"""The nexus-otel collector: OTLP/HTTP in, Prometheus exposition and the SQLite rollup out.

Run it with ``nexus-otel collector``. Subpackages: ``otlp`` (request decoding),
``prometheus`` (series store and exposition), ``rollup`` (SQLite rollup);
``budgets`` exports budget gauges; ``app`` is the WSGI application.
"""
