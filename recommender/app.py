"""The app factory: settings in layers, one blueprint per feature, JSON errors."""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, jsonify
from prometheus_client import CollectorRegistry
from werkzeug.exceptions import HTTPException

from .auth import KeyRing
from .cache import ResultCache
from .config import load_settings
from .errors import ApiError
from .metrics import InsightsCollector
from .precompute import Precomputer
from .store.reader import Rollup

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(
    settings: Mapping[str, Any] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Flask:
    """A recommender app over the rollup named by the merged settings (see :mod:`recommender.config`).

    The rollup is created and migrated if it does not exist yet, so the app can
    start before the collector has written anything.
    """
    merged = load_settings(config_file, settings, environ)
    app = Flask("recommender")
    app.config["NEXUS"] = merged
    app.json.sort_keys = False
    rollup = Rollup(merged["rollup_path"])
    rollup.ensure_schema()
    app.extensions["nexus_rollup"] = rollup
    keys = KeyRing(merged["api_keys"])
    app.extensions["nexus_keys"] = keys
    app.extensions["nexus_cache"] = ResultCache(merged["response_cache_s"])
    precomputer = Precomputer(rollup, merged, keys.principals(), interval_s=merged["precompute_interval_s"])
    app.extensions["nexus_precompute"] = precomputer
    precomputer.start()
    # the thread is a daemon, but stopping it interrupts its statement instead of dying mid-write to stdout
    atexit.register(precomputer.stop)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InsightsCollector(rollup, merged, precomputed=precomputer))
    app.extensions["nexus_metrics_registry"] = registry

    from .views import alerts, analytics, export, health, insights, metrics

    for module in (health, analytics, insights, export, metrics, alerts):
        app.register_blueprint(module.bp)

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Any:
        response = jsonify(exc.to_dict())
        response.status_code = exc.status
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="nexus-otel"'
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        response = jsonify({"success": False, "error": {"status": exc.code, "message": exc.description}})
        response.status_code = exc.code or 500
        return response

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> Any:
        log.exception("recommender request failed")
        response = jsonify(
            {"success": False, "error": {"status": 500, "message": "internal error; see the server log"}}
        )
        response.status_code = 500
        return response

    return app
