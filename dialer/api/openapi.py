"""The API's OpenAPI 3.1 document, written by hand (served at ``GET /openapi.json``).

Each operation states the least role allowed in ``x-required-role`` (``null``: no token); a
test checks that every route of the app appears here with the role the app enforces, and
nothing else does.
"""

from __future__ import annotations

import copy
from typing import Any

from dialer import __version__
from dialer.domain.dialorder import NEW_EVERY_MAX, NEW_EVERY_MIN, DialOrder
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.domain.why import BlockerCode

Doc = dict[str, Any]


def _ref(name: str) -> Doc:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Doc, description: str) -> Doc:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, description: str, schema: Doc | None = None) -> Doc:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


_ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthenticated"},
    "403": {"$ref": "#/components/responses/Forbidden"},
    "404": {"$ref": "#/components/responses/NotFound"},
    "409": {"$ref": "#/components/responses/Refused"},
    "413": {"$ref": "#/components/responses/TooLarge"},
    "415": {"$ref": "#/components/responses/UnsupportedMedia"},
    "422": {"$ref": "#/components/responses/Invalid"},
    "503": {"$ref": "#/components/responses/StoreUnavailable"},
}
_CID = {"name": "campaign_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_LID = {"name": "list_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_KID = {"name": "contact_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_INT = {"type": "integer", "minimum": 0}
_PAGE = {"type": "integer", "minimum": 1, "maximum": 1000}
_POOL_NUMBER = {"type": "string", "pattern": "^\\+?[0-9]{3,15}$"}
_HANGUP = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"hangup": {"type": "boolean", "default": False}},
                "additionalProperties": False,
            }
        }
    },
}


def _op(
    role: str | None,
    summary: str,
    ok: Doc,
    *,
    status: str = "200",
    params: list[Doc] | None = None,
    body: Doc | None = None,
    errors: tuple[str, ...] = ("401", "403", "404", "503"),
) -> Doc:
    op: Doc = {
        "summary": summary,
        "x-required-role": role,
        "security": [] if role is None else [{"bearer": []}],
        "parameters": params or [],
        "responses": {status: ok, **{code: _ERRORS[code] for code in errors}},
    }
    if body is not None:
        op["requestBody"] = body
    return op


def _command(role: str, summary: str, body: Doc | None = None) -> Doc:
    ok = _json(_ref("CommandResult"), "the command was applied")
    errors = ("400", "401", "403", "404", "409", "413", "503")
    return _op(role, summary, ok, params=[_CID], body=body, errors=errors)


def _paths() -> Doc:
    campaign_status = {"type": "string", "enum": [s.value for s in CampaignStatus]}
    call_status = {"type": "string", "enum": [s.value for s in CallStatus]}
    settings_body = {
        "required": True,
        "content": {"application/json": {"schema": _ref("CampaignSettings")}},
    }
    write_errors = ("400", "401", "403", "404", "409", "413", "422", "503")
    return {
        "/health": {
            "get": _op(None, "Liveness: 200 when Redis answers", _json({}, "ok"), errors=("503",))
        },
        "/openapi.json": {"get": _op(None, "This document", _json({}, "OpenAPI"), errors=())},
        "/metrics": {
            "get": _op(
                "viewer",
                "Prometheus exposition (text or OpenMetrics by Accept). Public when the API "
                "runs with metrics_public (DIALER_API_METRICS_PUBLIC=true).",
                {"description": "metrics", "content": {"text/plain": {}}},
                errors=("401", "403"),
            )
        },
        "/campaigns": {
            "get": _op(
                "viewer",
                "Campaigns, newest first",
                _json(_ref("CampaignPage"), "a page"),
                params=[
                    _query("status", "only campaigns in this status", campaign_status),
                    _query("offset", "matching campaigns to skip", _INT),
                    _query("limit", "page size (default 50)", _PAGE),
                ],
                errors=("401", "403", "422", "503"),
            ),
            "post": _op(
                "operator",
                "Create a Draft campaign",
                _json(_ref("Campaign"), "created"),
                status="201",
                body=settings_body,
                errors=("400", "401", "403", "413", "422", "503"),
            ),
        },
        "/campaigns/stop-all": {
            "post": _op(
                "administrator",
                "Stop every live campaign (Scheduled, Running, Pausing, Paused)",
                _json(
                    {"type": "object", "properties": {"stopped": {"items": _ref("CommandResult")}}},
                    "the campaigns stopped",
                ),
                body=_HANGUP,
                errors=("400", "401", "403", "413", "422", "503"),
            )
        },
        "/campaigns/{campaign_id}": {
            "get": _op(
                "viewer",
                "A campaign with its contact counts",
                _json(_ref("Campaign"), "the campaign"),
                params=[_CID],
            ),
            "patch": _op(
                "operator",
                "Edit settings (Draft or Paused only); fields given replace the stored ones",
                _json(_ref("Campaign"), "the edited campaign"),
                params=[_CID],
                body={
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                errors=write_errors,
            ),
            "delete": _op(
                "administrator",
                "Delete; a live campaign is stopped first and its calls drain. Records stay.",
                {"description": "deleted"},
                status="204",
                params=[_CID],
                errors=("401", "403", "404", "409", "503"),
            ),
        },
        "/campaigns/{campaign_id}/why": {
            "get": _op(
                "viewer",
                "What holds the campaign back right now (each blocker with a code, a sentence "
                "and when it is expected to clear), or that it is dialing",
                _json(_ref("Why"), "the blockers"),
                params=[_CID],
            )
        },
        "/campaigns/{campaign_id}/start": {"post": _command("operator", "Start (Draft)")},
        "/campaigns/{campaign_id}/pause": {"post": _command("operator", "Pause")},
        "/campaigns/{campaign_id}/resume": {"post": _command("operator", "Resume")},
        "/campaigns/{campaign_id}/stop": {
            "post": _command(
                "administrator", "Stop for good; hangup=true hangs up calls in flight", _HANGUP
            )
        },
        "/campaigns/{campaign_id}/lists": {
            "get": _op(
                "viewer",
                "The campaign's lists and their status",
                _json({"type": "object", "properties": {"lists": {"type": "array"}}}, "lists"),
                params=[_CID],
            ),
            "post": _op(
                "operator",
                "Upload a CSV file (the raw body) as a new list, all or nothing",
                _json(_ref("ImportReport"), "imported"),
                status="201",
                params=[
                    _CID,
                    _query("default_region", "ISO country for numbers without + (default US)"),
                    _query("phone_column", "header of the phone column (default: guessed)"),
                    _query("name_column", "header of the name column"),
                    _query("timezone_column", "header of the time zone column"),
                    _query("caller_id", "the list's fixed caller id (overrides the campaign's)"),
                    _query("caller_id_pool", "the list's caller-ID pool: comma-separated numbers"),
                    _query(
                        "caller_id_mode",
                        "the pool's mode (default rotate)",
                        {"enum": ["rotate", "local"]},
                    ),
                    _query("caller_id_fallback", "local mode: the number when none is local"),
                ],
                body={"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}},
                errors=(*write_errors, "415"),
            ),
        },
        "/campaigns/{campaign_id}/lists/{list_id}/stop": {
            "post": _op(
                "administrator",
                "Stop a list for good: its undialed contacts become Not dialed",
                _json({"type": "object"}, "stopped"),
                params=[_CID, _LID],
                errors=("401", "403", "404", "409", "503"),
            )
        },
        "/campaigns/{campaign_id}/lists/{list_id}/caller-id": {
            "get": _op(
                "viewer",
                "The list's own caller id settings (both null: the campaign's apply)",
                _json(_ref("ListCallerId"), "the list's settings"),
                params=[_CID, _LID],
            ),
            "put": _op(
                "operator",
                "Set the list's caller id or caller-ID pool (it overrides the campaign's)",
                _json(_ref("ListCallerId"), "the list's settings"),
                params=[_CID, _LID],
                body={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("CallerIdSettings")}},
                },
                errors=("400", "401", "403", "404", "413", "422", "503"),
            ),
        },
        "/campaigns/{campaign_id}/contacts": {
            "get": _op(
                "viewer",
                "Contacts in upload order; follow next_after until it is null",
                _json(_ref("ContactPage"), "a page"),
                params=[
                    _CID,
                    _query("status", "only contacts in this status", call_status),
                    _query("after", "contact id to continue after", _INT),
                    _query("offset", "matching contacts to skip", _INT),
                    _query("limit", "page size (default 50)", _PAGE),
                ],
                errors=("401", "403", "404", "422", "503"),
            )
        },
        "/campaigns/{campaign_id}/lists/{list_id}/recycle": {
            "post": _op(
                "operator",
                "Copy the contacts of a finished or stopped list in the given statuses into a "
                "new list (of this campaign, another one, or a new Draft campaign)",
                _json({"type": "object"}, "the new list (201), or nothing matched (200)"),
                status="201",
                params=[_CID, _LID],
                body={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["statuses"],
                                "properties": {
                                    "statuses": {"type": "array", "items": call_status},
                                    "into": {
                                        "oneOf": [
                                            {"type": "null"},
                                            {"type": "integer", "minimum": 1},
                                            {"const": "new"},
                                        ]
                                    },
                                },
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                errors=("400", "401", "403", "404", "409", "413", "422", "503"),
            )
        },
        "/campaigns/{campaign_id}/contacts/{contact_id}": {
            "delete": _op(
                "operator",
                "Remove a contact (campaign Draft or Paused): never dialed again, records kept",
                _json({"type": "object"}, "removed"),
                params=[
                    _CID,
                    {"name": "contact_id", "in": "path", "required": True, "schema": _INT},
                ],
                errors=("401", "403", "404", "409", "503"),
            )
        },
        "/campaigns/{campaign_id}/contacts/remove": {
            "post": _op(
                "operator",
                "Remove contacts by id and/or phone (campaign Draft or Paused)",
                _json({"type": "object"}, "what was removed, and what was not"),
                params=[_CID],
                body={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "ids": {"type": "array", "items": _INT, "maxItems": 10000},
                                    "phones": {
                                        "type": "array",
                                        "items": {"type": "string"},
                                        "maxItems": 10000,
                                    },
                                    "default_region": {"type": "string"},
                                },
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                errors=("400", "401", "403", "404", "409", "413", "422", "503"),
            )
        },
        "/campaigns/{campaign_id}/contacts/{contact_id}/callback": {
            "post": _op(
                "operator",
                "Set or move the contact's callback (Rescheduled until then). A time outside "
                "the calling hours is moved to the next opening (moved_by_hours); 409 "
                "contact_in_call while the contact is being dialed",
                _json(_ref("CallbackSet"), "the callback as set"),
                params=[_CID, _KID],
                body={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["at"],
                                "properties": {"at": {"type": "string", "format": "date-time"}},
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                errors=write_errors,
            ),
            "delete": _op(
                "operator",
                "Cancel the contact's callback: it returns to its state before the callback "
                "(a callback the dialplan set ends as answered)",
                _json({"type": "object"}, "the contact after the cancel"),
                params=[_CID, _KID],
                errors=("401", "403", "404", "409", "503"),
            ),
        },
        "/campaigns/{campaign_id}/callbacks": {
            "get": _op(
                "viewer",
                "Upcoming callbacks in due order (operators' and the dialplan's); follow "
                "next_after until it is null",
                _json({"type": "object"}, "a page"),
                params=[
                    _CID,
                    _query("after", "due_ms of the last callback seen", _INT),
                    _query("limit", "page size (default 100)", _PAGE),
                ],
                errors=("401", "403", "404", "422", "503"),
            )
        },
        "/campaigns/{campaign_id}/records": {
            "get": _op(
                "viewer",
                "Call records, oldest first (kept after the campaign is deleted)",
                _json(_ref("RecordPage"), "a page"),
                params=[
                    _CID,
                    _query("after", "record_id to continue after"),
                    _query("limit", "page size (default 100)", _PAGE),
                ],
                errors=("401", "403", "404", "422", "503"),
            )
        },
        "/campaigns/{campaign_id}/records.csv": {
            "get": _op(
                "viewer",
                "Every call record as CSV, streamed (kept after the campaign is deleted)",
                {"description": "CSV", "content": {"text/csv": {}}},
                params=[_CID],
            )
        },
        "/campaigns/{campaign_id}/analytics": {
            "get": _op(
                "viewer",
                "Contact counts, success rate, attempts per status and day, durations",
                _json(_ref("Analytics"), "analytics (see dialer.analytics for definitions)"),
                params=[_CID],
            )
        },
    }


def _error_response(description: str) -> Doc:
    return _json(_ref("Error"), description)


_COMPONENTS: Doc = {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    "responses": {
        "BadRequest": _error_response("bad_json or bad_request"),
        "Unauthenticated": _error_response("unauthenticated: no or unknown bearer token"),
        "Forbidden": _error_response("forbidden: the message names the role needed"),
        "NotFound": _error_response("not_found"),
        "Refused": _error_response("campaign_not_<verb>, list_not_stoppable, campaign_draining"),
        "TooLarge": _error_response("body_too_large (JSON 64 KiB, CSV 200 MiB by default)"),
        "Invalid": _error_response("invalid_input or import_refused"),
        "StoreUnavailable": _error_response("store_unavailable"),
        "UnsupportedMedia": _error_response("unsupported_media_type"),
    },
    "schemas": {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "details"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "details": {"type": "object"},
                    },
                }
            },
        },
        "CampaignSettings": {
            "type": "object",
            "required": ["name", "trunk", "max_channels", "cps"],
            "properties": {
                "name": {"type": "string"},
                "trunk": {"type": "string"},
                "max_channels": {"type": "integer", "minimum": 1},
                "cps": {"type": "number", "exclusiveMinimum": 0},
                "ring_timeout": {"type": "number"},
                "caller_id": {"type": ["string", "null"]},
                "caller_id_pool": {"oneOf": [_ref("CallerIdPool"), {"type": "null"}]},
                "context": {"type": "string"},
                "extension": {"type": "string"},
                "amd": {"type": "boolean"},
                "retry": {"type": "object"},
                "window": {"type": ["object", "null"]},
                "starts_at": {
                    "type": ["string", "null"],
                    "description": "ISO 8601 with offset: Scheduled until then",
                },
                "ends_at": {
                    "type": ["string", "null"],
                    "description": "ISO 8601 with offset: no call from then on; the campaign "
                    "then ends Cancelled (reason: end date passed), undialed contacts Not dialed",
                },
                "limits": {"type": ["object", "null"]},
                "variables": {"type": "object"},
                "dial_order": {
                    "type": "string",
                    "enum": [o.value for o in DialOrder],
                    "description": "which due contact goes first: retries_first (default: a "
                    "due retry before fresh contacts), due_time (oldest due first), "
                    "interleave (one fresh contact in every new_every claims)",
                },
                "new_every": {
                    "type": "integer",
                    "minimum": NEW_EVERY_MIN,
                    "maximum": NEW_EVERY_MAX,
                },
                "backup_trunk": {
                    "type": ["string", "null"],
                    "description": "dialed instead of trunk while trunk's circuit breaker is "
                    "open (the same PBX)",
                },
                "local_hours": {
                    "type": "boolean",
                    "description": "the window applies in each contact's own time zone "
                    "(README: Local calling hours)",
                },
                "holidays": {
                    "type": "array",
                    "maxItems": 1000,
                    "description": "local dates with no call (need local_hours): "
                    '"YYYY-MM-DD", or {"date": ..., "regions": ["US", ...]}',
                    "items": {
                        "oneOf": [
                            {"type": "string", "format": "date"},
                            {
                                "type": "object",
                                "required": ["date"],
                                "properties": {
                                    "date": {"type": "string", "format": "date"},
                                    "regions": {
                                        "type": "array",
                                        "items": {"type": "string", "pattern": "^[A-Z]{2}$"},
                                    },
                                },
                                "additionalProperties": False,
                            },
                        ]
                    },
                },
            },
            "additionalProperties": False,
        },
        "CallerIdPool": {
            "type": "object",
            "required": ["numbers"],
            "properties": {
                "numbers": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1000,
                    "uniqueItems": True,
                    "items": _POOL_NUMBER,
                },
                "mode": {"enum": ["rotate", "local"], "default": "rotate"},
                "fallback": {"oneOf": [_POOL_NUMBER, {"type": "null"}]},
            },
            "additionalProperties": False,
        },
        "CallerIdSettings": {
            "type": "object",
            "properties": {
                "caller_id": {"type": ["string", "null"]},
                "caller_id_pool": {"oneOf": [_ref("CallerIdPool"), {"type": "null"}]},
            },
            "additionalProperties": False,
        },
        "ListCallerId": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "caller_id": {"type": ["string", "null"]},
                "caller_id_pool": {"oneOf": [_ref("CallerIdPool"), {"type": "null"}]},
            },
        },
        "Campaign": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "trunk": {"type": "string"},
                "status": {"type": "string"},
                "status_label": {"type": "string"},
                "status_reason": {"type": "string"},
                "opens_at_ms": {
                    "type": ["integer", "null"],
                    "description": "Scheduled: when its calling hours next open (epoch ms)",
                },
                "open_until_ms": {
                    "type": ["integer", "null"],
                    "description": "Running: from when no call starts (the hours' close "
                    "less a 1-s guard, or the end date; epoch ms, the Redis server's clock)",
                },
                "created_ms": {"type": "integer"},
                "updated_ms": {"type": "integer"},
                "settings": _ref("CampaignSettings"),
                "settings_error": {
                    "type": ["string", "null"],
                    "description": "what makes the stored settings invalid (the engine pauses "
                    "the campaign with it as the status_reason; edit the settings to fix), "
                    "null when they are valid",
                },
                "contacts": {"type": "object", "description": "GET one campaign only"},
            },
        },
        "CampaignPage": {"type": "object", "properties": {"campaigns": {"type": "array"}}},
        "Why": {
            "type": "object",
            "properties": {
                "campaign_id": {"type": "integer"},
                "status": {"type": "string"},
                "dialing": {"type": "boolean", "description": "true: nothing holds it back"},
                "summary": {"type": "string"},
                "blockers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "code": {"type": "string", "enum": [c.value for c in BlockerCode]},
                            "message": {"type": "string"},
                            "clears_at_ms": {
                                "type": ["integer", "null"],
                                "description": "when it is expected to clear (epoch ms), "
                                "null when unknown",
                            },
                            "clears_at": {"type": ["string", "null"]},
                        },
                    },
                },
                "inflight": {"type": "integer"},
                "max_channels": {"type": ["integer", "null"]},
                "started_last_second": {"type": "integer"},
                "cps": {"type": ["number", "null"]},
                "engines_alive": {"type": "integer"},
                "now_ms": {"type": "integer", "description": "the Redis server's clock"},
            },
        },
        "CommandResult": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "status": {"type": "string"},
                "status_label": {"type": "string"},
                "draining": {"type": "integer"},
            },
        },
        "ImportReport": {
            "type": "object",
            "properties": {
                k: {"type": "integer"}
                for k in ("list_id", "rows", "imported", "pending", "invalid_numbers", "dnc")
            }
            | {"duplicates": {"type": "integer"}, "error_count": {"type": "integer"}},
        },
        "ContactPage": {"type": "object", "properties": {"contacts": {"type": "array"}}},
        "CallbackSet": {
            "type": "object",
            "properties": {
                "contact_id": {"type": "integer"},
                "status": {"type": "string"},
                "requested_at": {"type": "string", "format": "date-time"},
                "due_at": {"type": "string", "format": "date-time"},
                "due_ms": {"type": "integer"},
                "moved_by_hours": {"type": "boolean"},
                "reason": {"type": "string"},
                "previous_status": {"type": "string"},
                "replaced": {"type": ["string", "null"], "enum": ["operator", "dialplan", None]},
            },
        },
        "RecordPage": {"type": "object", "properties": {"records": {"type": "array"}}},
        "Analytics": {"type": "object"},
    },
}


def openapi_document(*, metrics: bool, metrics_public: bool = False) -> Doc:
    """The document for an app built with (or without) /metrics, public or not."""
    paths = _paths()
    if not metrics:
        del paths["/metrics"]
    elif metrics_public:
        op = paths["/metrics"]["get"]
        op["x-required-role"], op["security"] = None, []
        op["responses"] = {"200": op["responses"]["200"]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dialer control API",
            "version": __version__,
            "description": (
                "Roles: viewer (read), operator (create, edit, upload, start, pause, resume), "
                "administrator (also stop, cancel, delete). Send Authorization: Bearer <token>. "
                "Errors: {error: {code, message, details}}."
            ),
        },
        "paths": paths,
        "components": copy.deepcopy(_COMPONENTS),
    }
