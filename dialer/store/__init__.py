"""Redis store: key schema (:mod:`.keys`), Lua scripts (:mod:`.scripts`), :class:`RedisStore`."""

from .keys import Keys
from .models import (
    CallRef,
    CampaignRecord,
    ClaimKind,
    ClaimResult,
    ContactInput,
    ContactRecord,
    QueueStats,
    RateWindow,
    Usage,
)
from .redis_store import RedisStore

__all__ = [
    "CallRef",
    "CampaignRecord",
    "ClaimKind",
    "ClaimResult",
    "ContactInput",
    "ContactRecord",
    "Keys",
    "QueueStats",
    "RateWindow",
    "RedisStore",
    "Usage",
]
