"""The dialplan's knobs: which channel variables a campaign may set, and what each accepts.

The shipped dialplans (pbx-config/asterisk/extensions.conf, pbx-config/freeswitch/dialplan/)
read a few ``DIALER_*`` channel variables. A campaign may set only those (:data:`KNOBS`), each
to a value of its own small grammar, so that no operator, API client or stored setting can
hand the PBX a value that it would parse as dialplan, an expression or application
arguments (``,`` ``|`` ``(`` ``)`` ``:`` ``"`` ``$`` ``{`` ``}`` ``&`` ``;`` are never
part of any grammar). The dialplan checks the values again: this is the first wall, not the
only one.

Variables the dialer sets itself (``DIALER_AMD`` from ``amd``, ``DIALER_CAMPAIGN``, the call
id) and the contact variables' prefix (``DIALER_VAR_``) are refused as campaign variables.

The dialplan context of a campaign must be one of the configured contexts
(DIALER_CONTEXTS, :data:`DEFAULT_CONTEXTS`): :func:`check_context`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from dialer.errors import ValidationError

__all__ = [
    "CONTACT_PREFIX",
    "CONTEXT_NAME",
    "DEFAULT_CONTEXTS",
    "KNOBS",
    "RESERVED",
    "Knob",
    "check_context",
    "check_variables",
]

CONTACT_PREFIX = "DIALER_VAR_"  # contact fields reach the channel as DIALER_VAR_<NAME> only
CONTEXT_NAME = re.compile(r"[A-Za-z0-9_\-]{1,79}")  # what a context name may be at all
DEFAULT_CONTEXTS = frozenset({"dialer-outbound"})

# A sound file name, relative to the PBX's sounds directory, without its format extension:
# path segments of letters, digits, '_' and '-' (not starting with '-'), joined by single '/'.
# No '.', so no '..' and no extension; no leading '/', so no absolute path.
_SOUND = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*(?:/[A-Za-z0-9_][A-Za-z0-9_-]*)*")
_SOUND_MAX = 128
_WHOLE = re.compile(r"[1-9][0-9]*")


@dataclass(frozen=True, slots=True)
class Knob:
    """One channel variable of the dialplan: its name, what it accepts (for people), a check."""

    name: str
    accepts: str
    valid: Callable[[str], bool]


def _seconds(low: int, high: int) -> Callable[[str], bool]:
    def valid(value: str) -> bool:
        return _WHOLE.fullmatch(value) is not None and low <= int(value) <= high

    return valid


def _sound(value: str) -> bool:
    return len(value) <= _SOUND_MAX and _SOUND.fullmatch(value) is not None


KNOBS: Mapping[str, Knob] = {
    k.name: k
    for k in (
        Knob(
            "DIALER_MAX_TALK",
            "a whole number of seconds from 1 to 86400 (the answered call's limit)",
            _seconds(1, 86_400),
        ),
        Knob(
            "DIALER_IVR_TIMEOUT",
            "a whole number of seconds from 1 to 60 (the wait for one DTMF digit)",
            _seconds(1, 60),
        ),
        Knob(
            "DIALER_VM_MESSAGE",
            f"a sound file name of at most {_SOUND_MAX} characters, relative to the sounds "
            "directory and without extension: letters, digits, '_' and '-', segments joined "
            "by '/' (e.g. custom/voicemail-offer)",
            _sound,
        ),
    )
}

# Set by the dialer itself on every call: a campaign cannot override them.
RESERVED: Mapping[str, str] = {
    "DIALER_AMD": "set by the engine from the campaign's 'amd' setting",
    "DIALER_CAMPAIGN": "set by the engine (the campaign's id)",
    "DIALER_CALL_ID": "set by the PBX adapter (the call's id)",
}


def check_variables(variables: Mapping[str, object]) -> dict[str, str]:
    """``variables`` checked against :data:`KNOBS`; ValidationError naming the variable."""
    if not isinstance(variables, Mapping):
        raise ValidationError("variables must be a mapping of NAME to text")
    out: dict[str, str] = {}
    for name, value in variables.items():
        label = f"variables.{str(name)[:64]}"
        if not isinstance(name, str):
            raise ValidationError(f"variables: a name must be text, got {name!r}")
        if name in RESERVED:
            raise ValidationError(f"{label} cannot be set by a campaign: it is {RESERVED[name]}")
        knob = KNOBS.get(name)
        if knob is None:
            what = "contact variables" if name.startswith(CONTACT_PREFIX) else "the dialplan"
            raise ValidationError(
                f"{label} is not a variable of {what} a campaign may set; allowed: "
                + ", ".join(sorted(KNOBS))
            )
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # DIALER_MAX_TALK: 120 in a YAML file
        if not isinstance(value, str) or not knob.valid(value):
            raise ValidationError(f"{label} must be {knob.accepts}, got {str(value)[:80]!r}")
        out[name] = value
    return out


def check_context(context: str, contexts: Collection[str]) -> None:
    """ValidationError unless ``context`` is one of the configured ``contexts``."""
    if context not in contexts:
        raise ValidationError(
            f"context {context[:80]!r} is not a configured dialplan context (DIALER_CONTEXTS): "
            + ", ".join(sorted(contexts))
        )
