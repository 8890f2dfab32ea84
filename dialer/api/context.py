"""What every handler gets: the store, the commands (dialer.commands), metrics and limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from dialer.commands import CampaignCommands, DncCommands, NodeCommands, TrunkCommands
from dialer.engine.control import CampaignControl
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

    @property
    def commands(self) -> CampaignCommands:
        """The campaign commands (dialer.commands): handlers parse, call them and render."""
        return CampaignCommands(
            self.store,
            self.control,
            trunks=self.trunks,
            delete_drain_timeout=self.delete_drain_timeout,
        )

    @property
    def nodes(self) -> NodeCommands:
        return NodeCommands(self.store)

    @property
    def dnc(self) -> DncCommands:
        return DncCommands(self.store)

    @property
    def breakers(self) -> TrunkCommands:
        return TrunkCommands(self.store)


Handler = Callable[[ApiContext, Request], Awaitable[Response]]


def path_int(request: Request, name: str) -> int:
    value = request.path_params[name]
    assert isinstance(value, int)  # the route's {name:int} convertor
    return value
