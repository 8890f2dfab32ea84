"""Make contact data safe to hand to a PBX as channel variables.

Contact fields come from CSV files and API calls: anything may be in them. Before they reach the
AMI or ESL wire, values are *escaped* (control characters become spaces, over-long values are cut
on a character boundary) and names are *reduced* to ``[A-Za-z0-9_]``. The protocol codecs check
again and refuse what still would break framing (defence in depth), so a contact whose name tries
to inject ``\\r\\nAction: Command`` is dialed with a harmless name, never with an injected action.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from dialer.domain.dialplan import CONTACT_PREFIX

#: A value's longest UTF-8 form: an AMI line (``Variable: <name of 64 at most>=<value>``, 75
#: bytes before the value) holds 1022 bytes, and the AMI codec backslash-escapes a backslash,
#: quote, comma, parenthesis or bracket, so 448 such characters take 896: 971 bytes in all.
#: (It was 512: a value of 512 commas made an originate Asterisk would not take, and the
#: contact Invalid number.)
MAX_VALUE_BYTES = 448
MAX_NAME_LENGTH = 64
_NAME_BAD = re.compile(r"[^A-Za-z0-9_]")


def safe_value(value: str, max_bytes: int = MAX_VALUE_BYTES) -> str:
    """``value`` without control characters or lone surrogates, at most ``max_bytes`` in UTF-8."""
    if value.isprintable():  # no Cc, Cs, Zl or Zp character (nor any other Other/Separator)
        cleaned = value
    else:
        cleaned = "".join(
            " " if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") else ch for ch in value
        )
    encoded = cleaned.encode("utf-8")
    if len(encoded) <= max_bytes:
        return cleaned
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def safe_name(name: str) -> str | None:
    """A channel-variable name made of ``[A-Za-z0-9_]``; None if nothing usable is left."""
    reduced = _NAME_BAD.sub("_", name.strip())[:MAX_NAME_LENGTH].strip("_")
    if not reduced:
        return None
    return reduced if not reduced[0].isdigit() else f"_{reduced}"


def channel_variables(
    contact_vars: Mapping[str, str], prefix: str = CONTACT_PREFIX
) -> dict[str, str]:
    """Contact variables as channel variables ``<prefix><NAME>``, cut to
    :data:`MAX_NAME_LENGTH` in all (FreeSWITCH takes no longer name: a contact with one was
    never dialed, and labelled Invalid number); unusable names are dropped.

    Only under the prefix: no contact field can set a dialplan knob (``DIALER_MAX_TALK``,
    ``DIALER_VM_MESSAGE``, ...) or a variable the dialer sets. The shipped dialplans never read
    ``DIALER_VAR_*``; a dialplan of one's own must treat them as data (pbx-config READMEs)."""
    out: dict[str, str] = {}
    for key, value in contact_vars.items():
        name = safe_name(key)
        if name is not None:
            out[f"{prefix}{name}"[:MAX_NAME_LENGTH]] = safe_value(value)
    return out
