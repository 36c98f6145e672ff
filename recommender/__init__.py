"""nexus-otel recommender: insights, forecasts, recommendations, anomalies and exports over the rollup.

``create_app(settings)`` builds the Flask app (see :mod:`recommender.config`
for the settings); ``nexus-otel recommender`` serves it with waitress,
``nexus-otel report`` and ``nexus-otel export`` give the same answers on the
command line. Requires the ``recommender`` extra.
"""

from __future__ import annotations

from .app import create_app
from .auth import generate_api_key, hash_api_key

__all__ = ["create_app", "generate_api_key", "hash_api_key"]
