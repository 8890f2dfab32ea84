"""Asterisk Manager Interface: a sans-IO codec and a thin asyncio client around it."""

from dialer.pbx.ami.client import (
    TICK,
    AmiClient,
    AmiSettings,
    AmiStatistics,
    ConnectionState,
    Tick,
)
from dialer.pbx.ami.codec import (
    MAX_ACTION_HEADERS,
    MAX_LINE_BYTES,
    AmiCodec,
    Banner,
    Message,
    encode_action,
)

__all__ = [
    "TICK",
    "MAX_ACTION_HEADERS",
    "MAX_LINE_BYTES",
    "AmiClient",
    "AmiCodec",
    "AmiSettings",
    "AmiStatistics",
    "Banner",
    "ConnectionState",
    "Message",
    "Tick",
    "encode_action",
]
