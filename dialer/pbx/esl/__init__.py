"""FreeSWITCH Event Socket (ESL): a sans-IO codec and a thin asyncio client around it.

Written from FreeSWITCH's source and recorded transcripts; no real FreeSWITCH was used.
"""

from dialer.pbx.esl.client import ConnectionState, EslClient, EslSettings, EslStatistics
from dialer.pbx.esl.codec import (
    MAX_COMMAND_BYTES,
    EslCodec,
    EslEvent,
    EslMessage,
    encode_command,
)

__all__ = [
    "MAX_COMMAND_BYTES",
    "ConnectionState",
    "EslClient",
    "EslCodec",
    "EslEvent",
    "EslMessage",
    "EslSettings",
    "EslStatistics",
    "encode_command",
]
