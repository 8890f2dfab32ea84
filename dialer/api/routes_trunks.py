"""Trunks' circuit breakers over the API: see one (viewer), reset it (administrator: it
overrides a safety mechanism of shared infrastructure, like nodes and trunk groups).

The commands are :mod:`dialer.commands.trunks`'s; this module parses and renders, and holds
its rows for the endpoint table (:func:`routes`, app.py).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.convertors import register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dialer.domain.breaker import BreakerState

from .auth import Role
from .context import ApiContext, Handler
from .routes_nodes import GroupNameConvertor
from .spec import Spec

__all__ = ["routes"]

# a trunk's name follows the same rule as a trunk group's (dialer.domain.campaign's _TRUNK): a
# path whose name cannot exist is no route, 404
register_url_convertor("trunk", GroupNameConvertor())


def _trunk(request: Request) -> str:
    value = request.path_params["trunk"]
    assert isinstance(value, str)
    return value


async def get_breaker(ctx: ApiContext, request: Request) -> Response:
    return JSONResponse((await ctx.breakers.breaker(_trunk(request))).to_dict())


async def reset_breaker(ctx: ApiContext, request: Request) -> Response:
    """Close the breaker at once (runs and trips cleared); the breaker after."""
    return JSONResponse((await ctx.breakers.reset(_trunk(request))).to_dict())


class Breaker(BaseModel):
    model_config = ConfigDict(extra="allow")

    trunk: str
    state: BreakerState
    reason: str = Field(description="why it opened ('' when closed)")
    opened_ms: int = Field(description="when it opened, ms since the epoch (0: closed)")
    retry_ms: int = Field(description="open: when a probe call may go, ms since the epoch")
    probe: str = Field(description="half-open: the probe call's id")
    held: list[str] = Field(description="the nodes whose switch says the trunk is unreachable")
    trips: int = Field(description="times it opened")
    silent_run: int = Field(description="unanswered calls in a row")
    fail_run: int = Field(description="failed calls in a row")


BREAKER = "/trunks/{trunk:trunk}/breaker"


def routes() -> list[tuple[str, str, Role, Handler, str, Spec]]:
    """The rows of app.py's endpoint table: method, path, least role, handler, action, spec."""
    return [
        ("GET", BREAKER, Role.VIEWER, get_breaker, "read a trunk's circuit breaker",
         Spec("The trunk's circuit breaker (a trunk never reported on is closed)", Breaker)),
        ("POST", f"{BREAKER}/reset", Role.ADMINISTRATOR, reset_breaker,
         "reset a trunk's circuit breaker",
         Spec("Close the trunk's circuit breaker at once, runs and trips cleared (an "
              "override: the next calls go whatever the carrier's state)", Breaker)),
    ]  # fmt: skip
