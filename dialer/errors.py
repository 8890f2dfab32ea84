"""The dialer's exception tree, in one place.

::

    DialerError
    ├── ConfigError                 invalid settings (file, environment, campaign settings)
    ├── DomainError                 a rule of the domain was broken
    │   ├── TransitionRefused       a lifecycle command not allowed in the current status
    │   └── ValidationError         bad input (a field, a number, a variable name)
    │       └── InvalidSettings     a campaign's stored settings fail validation when read
    ├── StoreError                  Redis unavailable or a Lua script failed
    │   ├── NotFound                a campaign, list, contact or call that does not exist
    │   └── ScriptError             a Lua script failed inside Redis
    ├── LeaseLost                   another engine owns the call now (it adopted it)
    └── PbxError                    anything between us and the PBX
        ├── PbxProtocolError        the PBX sent bytes that break the protocol (codec error)
        ├── PbxUnavailable          not connected / connection lost (in-flight actions fail)
        ├── ActionFailed            the PBX answered an action with an error
        ├── ActionTimeout           no answer in time (the action may have run; never re-sent)
        └── UnsafeValue             a value would break AMI/ESL framing (CR, LF, NUL, ...)
"""

from __future__ import annotations


class DialerError(Exception):
    """Root of every error the dialer raises on purpose."""


class ConfigError(DialerError):
    """Settings that cannot be used."""


class DomainError(DialerError):
    """A rule of the domain was broken."""


class TransitionRefused(DomainError):
    """A lifecycle command that the current status does not allow.

    ``status`` and ``command`` are the refused pair's stable string values (a ``CampaignStatus``
    or ``ListStatus``, a ``CampaignCommand`` or ``ListCommand``); the message is for people.
    """

    def __init__(
        self, message: str, *, status: str | None = None, command: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.command = command

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_refused, (self.message, self.status, self.command))


def _rebuild_refused(message: str, status: str | None, command: str | None) -> TransitionRefused:
    return TransitionRefused(message, status=status, command=command)


class ValidationError(DomainError):
    """Bad input: a field, a phone number, a variable name."""


class InvalidSettings(ValidationError):
    """A campaign's stored settings fail validation when read (not JSON, a bad field): written
    to Redis by hand, or by an older version. The message starts with "invalid settings: " and
    names the problem; the engine pauses such a campaign with it as the reason."""


class StoreError(DialerError):
    """Redis is unavailable or a script failed."""


class NotFound(StoreError):
    """The campaign, list, contact or call does not exist."""


class ScriptError(StoreError):
    """Redis answered with an error: a Lua script failed, or a key has the wrong type."""


class LeaseLost(DialerError):
    """The call's lease is held by another owner: an engine adopted the call after this
    caller's lease expired (redis-py's ``LockNotOwnedError``). The caller stops acting on the
    call: no hang-up, no result (the adopter writes it)."""


class PbxError(DialerError):
    """Anything between the dialer and the PBX."""


class PbxProtocolError(PbxError):
    """The PBX sent bytes that break the protocol; the only error a codec raises."""


class PbxUnavailable(PbxError):
    """Not connected, or the connection was lost while an action awaited its response."""


class ActionFailed(PbxError):
    """The PBX answered an action with an error response."""


class ActionTimeout(PbxError):
    """The PBX did not answer an action in time: it may or may not have run; never re-sent."""


class UnsafeValue(PbxError, ValidationError):
    """A value that would break AMI or ESL framing (CR, LF, NUL, over-long, not text)."""
