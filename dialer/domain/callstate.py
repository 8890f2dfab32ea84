"""One call's own states as a transition table (the campaign's are in :mod:`lifecycle`).

A call is one attempt to reach one contact, under one call id. Its state lives in its Redis
hash (``{ns}:call:{call_id}``, field ``state``) and is changed only by the Lua scripts named
in :data:`CALL_TRANSITIONS`; each of those scripts cites its rows in its header ("call state:
a -> b (dialer/domain/callstate.py)") and tests/unit/test_callstate.py keeps both in step.
The engine's registry of live calls (:mod:`dialer.engine.livecalls`) moves its calls by the
same table and refuses anything else.

::

    new ──claim.lua──> claimed ──originated.lua──> originated ──finish.lua──> done
                       claimed ──finish.lua──> done         (never reached the switch:
                                                             not dialable, originate refused)
                       claimed ──release.lua──> released    (never dialed: contact given back)
    claimed/originated ──reap.lua──> orphaned               (the lease expired: owner died)
    orphaned ──adopt.lua / renew.lua──> claimed/originated  (taken over, or taken back)
    orphaned ──finish.lua──> done     orphaned ──release.lua──> released

What the hash really holds: ``claimed``, ``originated`` and ``done`` are the ``state`` field's
literals. ``released`` is stored as ``done`` with ``released=1`` (release.lua): a call that
ended without being dialed, whose contact went back to what it was. ``orphaned`` is not written
in the hash at all: it is the call's membership of the campaign's orphans zset (reap.lua), over
a hash that still says claimed or originated; adopt.lua and renew.lua end it (the hash's state
is kept), finish.lua and release.lua end it with the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dialer.errors import TransitionRefused


class CallState(StrEnum):
    NEW = "new"  # a call id the engine made; nothing in Redis yet
    CLAIMED = "claimed"  # the contact is taken, the lease held; not yet accepted by the switch
    ORIGINATED = "originated"  # the switch accepted the originate
    ORPHANED = "orphaned"  # its lease expired before it ended (orphans zset, not the hash)
    DONE = "done"  # its result is written
    RELEASED = "released"  # never dialed: the contact went back (stored: done, released=1)

    @property
    def stored(self) -> str | None:
        """The call hash's ``state`` literal for this state (None: not kept in the hash)."""
        return _STORED.get(self)

    @property
    def final(self) -> bool:
        return self in (CallState.DONE, CallState.RELEASED)


_STORED = {
    CallState.CLAIMED: "claimed",
    CallState.ORIGINATED: "originated",
    CallState.DONE: "done",
    CallState.RELEASED: "done",
}


@dataclass(frozen=True, slots=True)
class CallTransition:
    source: CallState
    target: CallState
    scripts: tuple[str, ...]  # the Lua scripts (dialer/store/lua) that make this change
    why: str


def _t(source: CallState, target: CallState, scripts: str, why: str) -> CallTransition:
    return CallTransition(source, target, tuple(scripts.split()), why)


S = CallState
CALL_TRANSITIONS: tuple[CallTransition, ...] = (
    _t(S.NEW, S.CLAIMED, "claim.lua", "a due contact is taken under a lease"),
    _t(S.CLAIMED, S.ORIGINATED, "originated.lua", "the switch accepted the originate"),
    _t(S.ORIGINATED, S.DONE, "finish.lua", "the result is written"),
    _t(S.CLAIMED, S.DONE, "finish.lua", "not dialable, refused, or its mark not written yet"),
    _t(S.CLAIMED, S.RELEASED, "release.lua", "never dialed: the contact goes back"),
    _t(S.CLAIMED, S.ORPHANED, "reap.lua", "the lease expired before the call ended"),
    _t(S.ORIGINATED, S.ORPHANED, "reap.lua", "the lease expired before the call ended"),
    _t(S.ORPHANED, S.CLAIMED, "adopt.lua renew.lua", "adopted or taken back, not yet marked"),
    _t(S.ORPHANED, S.ORIGINATED, "adopt.lua renew.lua", "adopted or taken back"),
    _t(S.ORPHANED, S.DONE, "finish.lua", "settled with how it ended"),
    _t(S.ORPHANED, S.RELEASED, "release.lua", "nothing shows it was ever dialed"),
)
del S

_BY_PAIR = {(t.source, t.target): t for t in CALL_TRANSITIONS}


def transition(source: CallState, target: CallState) -> CallTransition:
    """The table's row from ``source`` to ``target``; TransitionRefused when there is none."""
    row = _BY_PAIR.get((source, target))
    if row is None:
        raise TransitionRefused(f"a call cannot go from {source.value} to {target.value}")
    return row


def allowed(source: CallState, target: CallState) -> bool:
    return (source, target) in _BY_PAIR


def of_stored(state: str) -> CallState:
    """The state of a call hash's ``state`` literal (``done`` reads as DONE)."""
    for s in (CallState.CLAIMED, CallState.ORIGINATED, CallState.DONE):
        if s.value == state:
            return s
    raise ValueError(f"not a stored call state: {state!r}")


def render_markdown() -> str:
    """The table as Markdown, for the docs."""
    lines = ["| from | to | script | why |", "|---|---|---|---|"]
    for t in CALL_TRANSITIONS:
        lines.append(f"| {t.source} | {t.target} | {', '.join(t.scripts)} | {t.why} |")
    return "\n".join(lines)
