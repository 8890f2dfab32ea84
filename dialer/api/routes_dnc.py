"""Do-not-call lists over the API: the global list (``/dnc``) and a campaign's
(``/campaigns/{id}/dnc``): add, remove, check, import.

Checking needs the viewer role; adding and importing the operator role (a listed number can
only stop calls); removing the administrator role (a compliance decision). The commands are
:mod:`dialer.commands.dnc`'s; this module parses and renders, and holds its rows for the
endpoint table (:func:`routes`, app.py).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import phonenumbers
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dialer.commands.dnc import MAX_NUMBERS, NumbersRefused

from .auth import Role
from .bodies import spool_upload
from .context import ApiContext, Handler
from .errors import ApiError
from .spec import Spec, body_of, query_of, require_media

__all__ = ["MAX_NUMBERS", "routes"]

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
TEXT_TYPES = frozenset({"text/plain", "application/octet-stream"})


def _campaign(request: Request) -> int | None:
    value = request.path_params.get("campaign_id")
    assert value is None or isinstance(value, int)  # the route's {campaign_id:int}
    return value


async def add_numbers(ctx: ApiContext, request: Request) -> Response:
    body = body_of(request, DncBody)
    listed = await ctx.dnc.add(body.numbers, _campaign(request), region=body.default_region)
    return JSONResponse({"added": listed.added, "already_listed": listed.already_listed})


async def remove_numbers(ctx: ApiContext, request: Request) -> Response:
    body = body_of(request, DncBody)
    removed = await ctx.dnc.remove(body.numbers, _campaign(request), region=body.default_region)
    return JSONResponse({"removed": removed})


async def check_numbers(ctx: ApiContext, request: Request) -> Response:
    body = body_of(request, DncBody)
    checked = await ctx.dnc.check(body.numbers, _campaign(request), region=body.default_region)
    return JSONResponse({"numbers": [c.to_dict() for c in checked]})


async def import_numbers(ctx: ApiContext, request: Request) -> Response:
    """The body is the text itself: one number per line, blank lines and ``#`` comments
    skipped. All or nothing: 422 naming the bad lines (details.lines) writes nothing."""
    require_media(request, TEXT_TYPES, "send the numbers as the body with Content-Type text/plain")
    region = query_of(request, DncImportQuery).default_region
    spool = await spool_upload(request, ctx.max_upload_bytes)
    try:
        listed = await ctx.dnc.import_numbers(spool, _campaign(request), region=region)
    except NumbersRefused as exc:
        lines = [{"line": b.line, "text": b.text, "reason": b.reason} for b in exc.lines]
        raise ApiError(
            422, "invalid_input", str(exc), {"invalid": exc.invalid, "lines": lines}
        ) from None
    finally:
        await asyncio.to_thread(spool.close)
    return JSONResponse(
        {"read": listed.given, "added": listed.added, "already_listed": listed.already_listed}
    )


def _of_campaign(handler: Handler) -> Handler:
    """``handler`` under a campaign's path, named apart (each operation has its own id)."""

    async def run(ctx: ApiContext, request: Request) -> Response:
        return await handler(ctx, request)

    run.__name__ = run.__qualname__ = f"{handler.__name__}_of_campaign"
    return run


# -- request and reply models (the schema and the validation: dialer.api.spec) -----------------


def _region(value: str) -> str:
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError("a known ISO 3166 region code in capitals, such as US or FR")
    return value


Region = Annotated[str, AfterValidator(_region), Field(json_schema_extra={"enum": REGIONS})]
_REGION = "region of numbers written without a country code (default US)"


class DncBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    numbers: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        min_length=1, max_length=MAX_NUMBERS, description="phone numbers, as written"
    )
    default_region: Region = Field("US", description=_REGION)


class DncImportQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    default_region: Region = Field("US", description=_REGION)


class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow")


class DncAdded(_Reply):
    added: int = Field(description="numbers that were not listed yet")
    already_listed: int


class DncRemoved(_Reply):
    removed: int = Field(description="numbers that were listed")


class DncNumber(_Reply):
    input: str
    number: str | None = Field(description="E.164; null: not a valid number")
    listed: bool
    lists: list[str] = Field(description='the lists that hold it: "global", "campaign N"')
    invalid_reason: str | None


class DncChecked(_Reply):
    numbers: list[DncNumber]


class DncImported(DncAdded):
    read: int = Field(description="numbers read (lines that are not blank or comments)")


DNC = "/campaigns/{campaign_id:int}/dnc"
VIEW, OPER, ADMIN = Role.VIEWER, Role.OPERATOR, Role.ADMINISTRATOR


def routes() -> list[tuple[str, str, Role, Handler, str, Spec]]:
    """The rows of app.py's endpoint table: method, path, least role, handler, action, spec."""
    rows: list[tuple[str, str, Role, Handler, str, Spec]] = []
    for path, handler_of, whose in (
        ("/dnc", lambda h: h, "the global"),
        (DNC, _of_campaign, "a campaign's"),
    ):
        rows += [
            ("POST", path, OPER, handler_of(add_numbers),
             f"add numbers to {whose} do-not-call list",
             Spec(f"List numbers on {whose} do-not-call list; one invalid number refuses them "
                  "all (422 naming it)", DncAdded, body=DncBody)),
            ("POST", f"{path}/remove", ADMIN, handler_of(remove_numbers),
             f"remove numbers from {whose} do-not-call list",
             Spec(f"Unlist numbers from {whose} do-not-call list (contacts already Do not "
                  "call stay so)", DncRemoved, body=DncBody)),
            ("POST", f"{path}/check", VIEW, handler_of(check_numbers),
             "check numbers against the do-not-call lists",
             Spec("Each number with the lists that hold it (the global list, and the "
                  "campaign's under a campaign); an invalid number says why", DncChecked,
                  body=DncBody)),
            ("POST", f"{path}/import", OPER, handler_of(import_numbers),
             f"import numbers to {whose} do-not-call list",
             Spec(f"List every number of a text (the raw body: one a line, # comments) on "
                  f"{whose} do-not-call list, all or nothing: 422 naming the bad lines",
                  DncImported, query=DncImportQuery, upload="text/plain",
                  body_optional=True)),
        ]  # fmt: skip
    return rows
