"""The HTTP control API (Starlette): campaigns, lists, records, analytics, metrics.

:func:`create_app` builds the app on a store; :func:`serve_api` runs it with uvicorn inside the
caller's event loop; :class:`ApiSettings` reads DIALER_API_* from the environment.
"""

from .app import Endpoint, create_app, endpoints
from .auth import Role, TokenAuth, parse_tokens
from .errors import ApiError
from .server import ApiEndpoint, serve_api
from .settings import ApiSettings

__all__ = [
    "ApiEndpoint",
    "ApiError",
    "ApiSettings",
    "Endpoint",
    "Role",
    "TokenAuth",
    "create_app",
    "endpoints",
    "parse_tokens",
    "serve_api",
]
