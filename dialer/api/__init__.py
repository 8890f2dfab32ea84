"""The HTTP control API (Starlette): campaigns, lists, records, analytics, PBX nodes,
do-not-call lists, trunk breakers, metrics.

:func:`create_app` builds the app on a store; :func:`serve_api` runs it with uvicorn inside the
caller's event loop; :class:`ApiSettings` reads DIALER_API_* from the environment;
:func:`serve_metrics` serves the engine's own ``/metrics`` port the same way.

One source for the schema and the validation (issue 18, item 10): every row of
:func:`endpoints` carries a :class:`~.spec.Spec` naming pydantic models for its query and body
(:mod:`.params`) and its responses (:mod:`.replies`); :func:`.spec.validate` checks each request
against them (after the role check) and :mod:`.openapi` generates the document from them. A new
route is one row there; its handler reads ``query_of(request, Model)`` / ``body_of(...)``.

Why pydantic v2 with our own ~100 lines on Starlette, measured with ``python -m
loadtest.api_startup`` (fresh interpreter, median of 7, a loaded 2-core machine; RSS after
imports and app creation; start-up times there vary by 2x from run to run):

======================================== ======== ========
import + app creation                     ms       RSS MiB
======================================== ======== ========
starlette, uvicorn, redis alone           507      35.9
the API before (hand-written document)    1025     42.6
the API now (pydantic models)             1021     52.1
starlette + pydantic, one model           404      34.2
fastapi, one route, one model             564      42.2
starlette + msgspec, one struct           190      26.1
starlette + spectree, one route           337      35.4
litestar, one route, one model            811      43.7
======================================== ======== ========

So +9.5 MiB of RSS for the API process and no start-up difference above the noise (another run
under heavier load: 2.0 s before, 2.9 s now). pydantic is the most used and best kept of the
candidates and emits JSON Schema 2020-12, which OpenAPI 3.1 takes as it is. FastAPI is
pydantic plus its own routing and error handling: it would replace our role table, error shape
and 405/415 answers for the same validation at more memory. msgspec is lighter (about 8 MiB
less) but has one maintainer and no per-field error list to name the field the way our 422s do;
spectree and litestar cost more and fit less. Starlette stays.
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
