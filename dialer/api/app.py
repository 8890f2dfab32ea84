"""The HTTP control API: one table of endpoints with the role each needs, and the app factory.

Every endpoint is a row of :func:`endpoints`: method, path, the least role allowed (None: no
token needed), the handler, and its :class:`~.spec.Spec` (query and body models, responses).
The requests are validated against the spec and the OpenAPI document is generated from the
same rows (:mod:`.openapi`), so a route cannot be served undocumented or documented wrongly.
To add a route: write the handler (reading ``query_of``/``body_of``), add its models to
:mod:`.params`/:mod:`.replies` and its row here; nothing else.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
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
from . import routes_dnc as dnc
from . import routes_lists as lists
from . import routes_meta as meta
from . import routes_nodes as nodes
from . import routes_records as records
from . import routes_recycle as recycle
from . import routes_trunks as breakers
from . import routes_why as why
from .auth import Role, TokenAuth
from .context import ApiContext, Handler
from .errors import ApiError, error_response, http_exception, translate
from .openapi import openapi_document, with_trunks
from .params import (
    CallbackBody,
    CallbacksQuery,
    CallerIdBody,
    CampaignEditBody,
    CampaignSettingsBody,
    CampaignsQuery,
    ContactsQuery,
    HangupBody,
    RecordsQuery,
    RecycleBody,
    RemoveBody,
    UploadQuery,
)
from .replies import (
    Analytics,
    CallbackCancelled,
    CallbackPage,
    CallbackSet,
    Campaign,
    CampaignPage,
    CommandResult,
    ContactPage,
    ContactRemoved,
    Document,
    Health,
    ImportReport,
    ListCallerId,
    Lists,
    ListStopped,
    RecordPage,
    RecycleReport,
    RemoveReport,
    Stopped,
    Why,
)
from .settings import JSON_BODY_LIMIT, UPLOAD_LIMIT
from .spec import Media, Spec, validate

log = logging.getLogger(__name__)

VIEW, OPER, ADMIN = Role.VIEWER, Role.OPERATOR, Role.ADMINISTRATOR
_CONVERTOR = re.compile(r"{(\w+):\w+}")
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
    spec: Spec  # parameters, body and responses: the validation and the document

    @property
    def template(self) -> str:
        """The path as OpenAPI writes it: ``{campaign_id:int}`` -> ``{campaign_id}``."""
        return _CONVERTOR.sub(r"{\1}", self.path)


def _command(summary: str, body: type[HangupBody] | None = None) -> Spec:
    return Spec(summary, CommandResult, body=body, body_optional=True, refusals=True)


_METRICS = Media(
    ("text/plain", "application/openmetrics-text"),
    "Prometheus exposition (text, or OpenMetrics by Accept)",
)
_CSV = Media(("text/csv",), "CSV (RFC 4180, UTF-8)")


def endpoints(*, metrics: bool, metrics_public: bool = False) -> tuple[Endpoint, ...]:
    """The API surface. ``metrics``: serve /metrics (viewer, or public if ``metrics_public``)."""
    E = Endpoint
    rows = [
        E("GET", "/health", None, meta.health, "check health",
          Spec("Liveness: 200 when Redis answers", Health, store=False, other={503: Health})),
        E("GET", "/openapi.json", None, meta.openapi, "read the API description",
          Spec("This document", Document, store=False)),
        E("GET", "/campaigns", VIEW, campaigns.list_campaigns, "list campaigns",
          Spec("Campaigns, newest first", CampaignPage, query=CampaignsQuery)),
        E("POST", "/campaigns", OPER, campaigns.create_campaign, "create a campaign",
          Spec("Create a Draft campaign", Campaign, 201, body=CampaignSettingsBody)),
        E("POST", "/campaigns/stop-all", ADMIN, campaigns.stop_all, "stop every campaign",
          Spec("Stop every live campaign (Scheduled, Running, Pausing, Paused)", Stopped,
               body=HangupBody, body_optional=True)),
        E("GET", CAMPAIGN, VIEW, campaigns.get_campaign, "read a campaign",
          Spec("A campaign with its contact counts", Campaign)),
        E("PATCH", CAMPAIGN, OPER, campaigns.edit_campaign, "edit a campaign",
          Spec("Edit settings (Draft or Paused only); fields given replace the stored ones",
               Campaign, body=CampaignEditBody, refusals=True)),
        E("DELETE", CAMPAIGN, ADMIN, campaigns.delete_campaign, "delete a campaign",
          Spec("Delete; a live campaign is stopped first and its calls drain. Records stay.",
               None, 204, refusals=True)),
        E("POST", f"{CAMPAIGN}/start", OPER, campaigns.start_campaign, "start a campaign",
          _command("Start (Draft)")),
        E("POST", f"{CAMPAIGN}/pause", OPER, campaigns.pause_campaign, "pause a campaign",
          _command("Pause")),
        E("POST", f"{CAMPAIGN}/resume", OPER, campaigns.resume_campaign, "resume a campaign",
          _command("Resume")),
        E("POST", f"{CAMPAIGN}/stop", ADMIN, campaigns.stop_campaign, "stop a campaign",
          _command("Stop for good; hangup=true hangs up calls in flight", HangupBody)),
        E("GET", f"{CAMPAIGN}/why", VIEW, why.get_why, "read why a campaign waits",
          Spec("What holds the campaign back right now, or that it is dialing", Why)),
        E("GET", f"{CAMPAIGN}/lists", VIEW, lists.get_lists, "read lists",
          Spec("The campaign's lists and their status", Lists)),
        E("POST", f"{CAMPAIGN}/lists", OPER, lists.upload_list, "upload a list",
          Spec("Upload a CSV file (the raw body) as a new list, all or nothing", ImportReport,
               201, query=UploadQuery, upload="text/csv", refusals=True)),
        E("POST", f"{LIST}/stop", ADMIN, lists.stop_list, "stop a list",
          Spec("Stop a list for good: its undialed contacts become Not dialed", ListStopped,
               refusals=True)),
        E("GET", f"{LIST}/caller-id", VIEW, callerid.get_list_caller_id,
          "read a list's caller id",
          Spec("The list's own caller id settings (both null: the campaign's apply)",
               ListCallerId)),
        E("PUT", f"{LIST}/caller-id", OPER, callerid.put_list_caller_id,
          "set a list's caller id",
          Spec("Set the list's caller id or caller-ID pool (it overrides the campaign's)",
               ListCallerId, body=CallerIdBody)),
        E("GET", f"{CAMPAIGN}/contacts", VIEW, lists.get_contacts, "read contacts",
          Spec("Contacts in upload order; follow next_after until it is null", ContactPage,
               query=ContactsQuery)),
        E("POST", f"{LIST}/recycle", OPER, recycle.recycle, "recycle a list",
          Spec("Copy the contacts of a finished or stopped list in the given statuses into a "
               "new list (of this campaign, another one, or a new Draft campaign); 200: "
               "nothing matched", RecycleReport, 201, body=RecycleBody, refusals=True,
               other={200: RecycleReport})),
        E("DELETE", f"{CAMPAIGN}/contacts/{{contact_id:int}}", OPER, recycle.remove_one,
          "remove a contact",
          Spec("Remove a contact (campaign Draft or Paused): never dialed again, records kept",
               ContactRemoved, refusals=True)),
        E("POST", f"{CAMPAIGN}/contacts/remove", OPER, recycle.remove_many, "remove contacts",
          Spec("Remove contacts by id and/or phone (campaign Draft or Paused)", RemoveReport,
               body=RemoveBody, refusals=True)),
        E("POST", CALLBACK, OPER, callbacks.set_callback, "set a callback",
          Spec("Set or move the contact's callback (Rescheduled until then). A time outside "
               "the calling hours is moved to the next opening (moved_by_hours); 409 "
               "contact_in_call while the contact is being dialed", CallbackSet,
               body=CallbackBody, refusals=True)),
        E("DELETE", CALLBACK, OPER, callbacks.cancel_callback, "cancel a callback",
          Spec("Cancel the contact's callback: it returns to its state before the callback "
               "(a callback the dialplan set ends as answered)", CallbackCancelled,
               refusals=True)),
        E("GET", f"{CAMPAIGN}/callbacks", VIEW, callbacks.list_callbacks, "read callbacks",
          Spec("Upcoming callbacks in due order (operators' and the dialplan's); follow "
               "next_after until it is null", CallbackPage, query=CallbacksQuery)),
        E("GET", f"{CAMPAIGN}/records", VIEW, records.get_records, "read call records",
          Spec("Call records, oldest first (kept after the campaign is deleted)", RecordPage,
               query=RecordsQuery)),
        E("GET", f"{CAMPAIGN}/records.csv", VIEW, records.get_records_csv,
          "export call records",
          Spec("Every call record as CSV, streamed (kept after the campaign is deleted)",
               _CSV)),
        E("GET", f"{CAMPAIGN}/analytics", VIEW, records.get_analytics, "read analytics",
          Spec("Contact counts, success rate, attempts per status and day, durations",
               Analytics)),
        *(E(*row) for row in nodes.routes()),
        *(E(*row) for row in dnc.routes()),
        *(E(*row) for row in breakers.routes()),
    ]  # fmt: skip
    if metrics:
        role = None if metrics_public else VIEW
        rows.append(
            Endpoint("GET", "/metrics", role, meta.metrics, "read metrics",
                     Spec("Prometheus exposition. Public when the API runs with "
                          "metrics_public (DIALER_API_METRICS_PUBLIC=true).", _METRICS,
                          store=False))
        )  # fmt: skip
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
            await validate(endpoint.spec, request, ctx.max_body_bytes)
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
    trunks: Collection[str] | None = None,
) -> Starlette:
    """The API app on ``store``. ``tokens``: bearer token -> role (see :mod:`.auth`).

    ``metrics_public`` serves /metrics without a token (for a Prometheus scraper); the JSON
    bodies are limited to ``max_body_bytes``, CSV uploads to ``max_upload_bytes``;
    DELETE of a live campaign waits up to ``delete_drain_timeout`` s for its calls to drain.
    ``trunks``: the trunks campaigns may use (DIALER_TRUNKS); None: any trunk name.
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
        trunks=None if trunks is None else frozenset(trunks),
    )
    table = endpoints(metrics=metrics is not None, metrics_public=metrics_public)
    by_path: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {}
    for e in table:
        by_path.setdefault(e.path, {})[e.method] = _guarded(e, ctx, auth)
    # one route per path, so that a 405 lists every method of the path in Allow
    routes = [
        Route(path, _dispatch(methods), methods=list(methods)) for path, methods in by_path.items()
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_exception})
    app.state.openapi = with_trunks(openapi_document(table), ctx.trunks)
    return app


def _dispatch(
    methods: Mapping[str, Callable[[Request], Awaitable[Response]]],
) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await methods[method](request)

    return run
