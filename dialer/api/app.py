"""The HTTP control API: one table of endpoints with the role each needs, and the app factory.

Every endpoint is a row of :func:`endpoints`: method, path, the least role allowed (None: no
token needed) and the handler. The OpenAPI document (:mod:`.openapi`) states the same roles;
a test keeps the two in step.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dialer.engine.control import CampaignControl
from dialer.errors import DialerError
from dialer.metrics import DialerMetrics
from dialer.store.redis_store import RedisStore

from . import routes_callbacks as callbacks
from . import routes_callerid as callerid
from . import routes_campaigns as campaigns
from . import routes_lists as lists
from . import routes_meta as meta
from . import routes_nodes as nodes
from . import routes_records as records
from . import routes_recycle as recycle
from . import routes_why as why
from .auth import Role, TokenAuth
from .context import ApiContext, Handler
from .errors import ApiError, error_response, http_exception, translate
from .openapi import openapi_document
from .settings import JSON_BODY_LIMIT, UPLOAD_LIMIT

log = logging.getLogger(__name__)

VIEW, OPER, ADMIN = Role.VIEWER, Role.OPERATOR, Role.ADMINISTRATOR
CAMPAIGN = "/campaigns/{campaign_id:int}"
LIST = f"{CAMPAIGN}/lists/{{list_id:int}}"
CALLBACK = f"{CAMPAIGN}/contacts/{{contact_id:int}}/callback"


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # Starlette path, with convertors
    role: Role | None  # the least role allowed; None: public
    handler: Handler
    action: str  # for the 403 sentence: "to <action> you need ..."


def endpoints(*, metrics: bool, metrics_public: bool = False) -> tuple[Endpoint, ...]:
    """The API surface. ``metrics``: serve /metrics (viewer, or public if ``metrics_public``)."""
    rows = [
        Endpoint("GET", "/health", None, meta.health, "check health"),
        Endpoint("GET", "/openapi.json", None, meta.openapi, "read the API description"),
        Endpoint("GET", "/campaigns", VIEW, campaigns.list_campaigns, "list campaigns"),
        Endpoint("POST", "/campaigns", OPER, campaigns.create_campaign, "create a campaign"),
        Endpoint("POST", "/campaigns/stop-all", ADMIN, campaigns.stop_all, "stop every campaign"),
        Endpoint("GET", CAMPAIGN, VIEW, campaigns.get_campaign, "read a campaign"),
        Endpoint("PATCH", CAMPAIGN, OPER, campaigns.edit_campaign, "edit a campaign"),
        Endpoint("DELETE", CAMPAIGN, ADMIN, campaigns.delete_campaign, "delete a campaign"),
        Endpoint("POST", f"{CAMPAIGN}/start", OPER, campaigns.start_campaign, "start a campaign"),
        Endpoint("POST", f"{CAMPAIGN}/pause", OPER, campaigns.pause_campaign, "pause a campaign"),
        Endpoint(
            "POST", f"{CAMPAIGN}/resume", OPER, campaigns.resume_campaign, "resume a campaign"
        ),
        Endpoint("POST", f"{CAMPAIGN}/stop", ADMIN, campaigns.stop_campaign, "stop a campaign"),
        Endpoint("GET", f"{CAMPAIGN}/why", VIEW, why.get_why, "read why a campaign waits"),
        Endpoint("GET", f"{CAMPAIGN}/lists", VIEW, lists.get_lists, "read lists"),
        Endpoint("POST", f"{CAMPAIGN}/lists", OPER, lists.upload_list, "upload a list"),
        Endpoint(
            "POST", f"{CAMPAIGN}/lists/{{list_id:int}}/stop", ADMIN, lists.stop_list, "stop a list"
        ),
        Endpoint(
            "GET", f"{LIST}/caller-id", VIEW, callerid.get_list_caller_id, "read a list's caller id"
        ),
        Endpoint(
            "PUT", f"{LIST}/caller-id", OPER, callerid.put_list_caller_id, "set a list's caller id"
        ),
        Endpoint("GET", f"{CAMPAIGN}/contacts", VIEW, lists.get_contacts, "read contacts"),
        Endpoint("POST", f"{LIST}/recycle", OPER, recycle.recycle, "recycle a list"),
        Endpoint(
            "DELETE",
            f"{CAMPAIGN}/contacts/{{contact_id:int}}",
            OPER,
            recycle.remove_one,
            "remove a contact",
        ),
        Endpoint(
            "POST", f"{CAMPAIGN}/contacts/remove", OPER, recycle.remove_many, "remove contacts"
        ),
        Endpoint("POST", CALLBACK, OPER, callbacks.set_callback, "set a callback"),
        Endpoint("DELETE", CALLBACK, OPER, callbacks.cancel_callback, "cancel a callback"),
        Endpoint("GET", f"{CAMPAIGN}/callbacks", VIEW, callbacks.list_callbacks, "read callbacks"),
        Endpoint("GET", f"{CAMPAIGN}/records", VIEW, records.get_records, "read call records"),
        Endpoint(
            "GET", f"{CAMPAIGN}/records.csv", VIEW, records.get_records_csv, "export call records"
        ),
        Endpoint("GET", f"{CAMPAIGN}/analytics", VIEW, records.get_analytics, "read analytics"),
        *(Endpoint(*row) for row in nodes.ROUTES),
    ]
    if metrics:
        role = None if metrics_public else VIEW
        rows.append(Endpoint("GET", "/metrics", role, meta.metrics, "read metrics"))
    return tuple(rows)


def _needed(role: Role) -> str:
    return "the administrator role" if role is ADMIN else f"the {role} role or higher"


def _guarded(
    endpoint: Endpoint, ctx: ApiContext, auth: TokenAuth
) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate, authorize, run the handler, and answer every error as JSON."""

    async def run(request: Request) -> Response:
        try:
            if endpoint.role is not None:
                role = auth.role_of(request.headers.get("authorization"))
                if role is None:
                    raise ApiError(
                        401,
                        "unauthenticated",
                        "missing or unknown token: send Authorization: Bearer <token>",
                        headers={"WWW-Authenticate": 'Bearer realm="dialer"'},
                    )
                if not role.allows(endpoint.role):
                    raise ApiError(
                        403,
                        "forbidden",
                        f"to {endpoint.action} you need {_needed(endpoint.role)}; "
                        f"this token has the {role} role",
                        {"required_role": endpoint.role.value, "role": role.value},
                    )
            return await endpoint.handler(ctx, request)
        except ApiError as exc:
            return error_response(exc)
        except DialerError as exc:
            return error_response(translate(exc))
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            return error_response(ApiError(500, "internal_error", "internal error"))

    return run


def create_app(
    store: RedisStore,
    *,
    tokens: Mapping[str, Role],
    metrics: DialerMetrics | None = None,
    metrics_public: bool = False,
    control: CampaignControl | None = None,
    max_body_bytes: int = JSON_BODY_LIMIT,
    max_upload_bytes: int = UPLOAD_LIMIT,
    delete_drain_timeout: float = 60.0,
) -> Starlette:
    """The API app on ``store``. ``tokens``: bearer token -> role (see :mod:`.auth`).

    ``metrics_public`` serves /metrics without a token (for a Prometheus scraper); the JSON
    bodies are limited to ``max_body_bytes``, CSV uploads to ``max_upload_bytes``;
    DELETE of a live campaign waits up to ``delete_drain_timeout`` s for its calls to drain.
    """
    if max_body_bytes < 1 or max_upload_bytes < 1:
        raise ValueError("body limits must be positive")
    auth = TokenAuth(tokens)
    ctx = ApiContext(
        store=store,
        control=control or CampaignControl(store),
        metrics=metrics,
        max_body_bytes=max_body_bytes,
        max_upload_bytes=max_upload_bytes,
        delete_drain_timeout=delete_drain_timeout,
    )
    table = endpoints(metrics=metrics is not None, metrics_public=metrics_public)
    document = openapi_document(metrics=metrics is not None, metrics_public=metrics_public)
    routes = [Route(e.path, _guarded(e, ctx, auth), methods=[e.method]) for e in table]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_exception})
    app.state.openapi = document
    return app
