"""What every handler gets: the store, the campaign commands, the metrics and the limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from dialer.engine.control import CampaignControl
from dialer.errors import ValidationError
from dialer.metrics import DialerMetrics
from dialer.store.redis_store import RedisStore

from .settings import JSON_BODY_LIMIT, UPLOAD_LIMIT


@dataclass(frozen=True, slots=True)
class ApiContext:
    store: RedisStore
    control: CampaignControl
    metrics: DialerMetrics | None = None
    max_body_bytes: int = JSON_BODY_LIMIT
    max_upload_bytes: int = UPLOAD_LIMIT
    delete_drain_timeout: float = 60.0
    trunks: frozenset[str] | None = None  # the trunks campaigns may use; None: any


def check_trunks(ctx: ApiContext, *names: str | None) -> None:
    """422 when a trunk is not one of the configured ones (DIALER_TRUNKS)."""
    if ctx.trunks is None:
        return
    for name in names:
        if name is not None and name not in ctx.trunks:
            known = ", ".join(sorted(ctx.trunks)) or "none"
            raise ValidationError(
                f"trunk {name[:64]!r} is not configured (DIALER_TRUNKS): use one of {known}"
            )


Handler = Callable[[ApiContext, Request], Awaitable[Response]]


def path_int(request: Request, name: str) -> int:
    value = request.path_params[name]
    assert isinstance(value, int)  # the route's {name:int} convertor
    return value
