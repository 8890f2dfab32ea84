"""FreeSWITCH Event Socket (ESL): a sans-IO codec and a thin asyncio client around it.

Written from FreeSWITCH's source and recorded transcripts; tested against a real FreeSWITCH 1.10.12.
"""

from dialer.pbx.esl.client import (
    TICK,
    ConnectionState,
    EslClient,
    EslSettings,
    EslStatistics,
    Tick,
)
from dialer.pbx.esl.codec import (
    MAX_COMMAND_BYTES,
    EslCodec,
    EslEvent,
    EslMessage,
    encode_command,
)

__all__ = [
    "TICK",
    "MAX_COMMAND_BYTES",
    "ConnectionState",
    "EslClient",
    "EslCodec",
    "EslEvent",
    "EslMessage",
    "EslSettings",
    "EslStatistics",
    "Tick",
    "encode_command",
]
