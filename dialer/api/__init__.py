"""The HTTP control API (Starlette): campaigns, lists, records, analytics, metrics.

:func:`create_app` builds the app on a store; :func:`serve_api` runs it with uvicorn inside the
caller's event loop; :class:`ApiSettings` reads DIALER_API_* from the environment;
:func:`serve_metrics` serves the engine's own ``/metrics`` port the same way.
"""

from .app import Endpoint, create_app, endpoints
from .auth import Role, TokenAuth, parse_tokens
from .errors import ApiError
from .metrics_server import MetricsEndpoint, metrics_app, serve_metrics
from .server import ApiEndpoint, serve_api
from .settings import ApiSettings

__all__ = [
    "ApiEndpoint",
    "ApiError",
    "ApiSettings",
    "Endpoint",
    "MetricsEndpoint",
    "Role",
    "TokenAuth",
    "create_app",
    "endpoints",
    "metrics_app",
    "parse_tokens",
    "serve_api",
    "serve_metrics",
]
