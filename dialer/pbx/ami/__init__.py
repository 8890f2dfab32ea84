"""Asterisk Manager Interface: a sans-IO codec and a thin asyncio client around it."""

from dialer.pbx.ami.client import AmiClient, AmiSettings, AmiStatistics, ConnectionState
from dialer.pbx.ami.codec import (
    MAX_ACTION_HEADERS,
    MAX_LINE_BYTES,
    AmiCodec,
    Banner,
    Message,
    encode_action,
)

__all__ = [
    "MAX_ACTION_HEADERS",
    "MAX_LINE_BYTES",
    "AmiClient",
    "AmiCodec",
    "AmiSettings",
    "AmiStatistics",
    "Banner",
    "ConnectionState",
    "Message",
    "encode_action",
]
