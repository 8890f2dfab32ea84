"""The one registry of the calls this engine follows: call id -> LiveCall and its runner.

Calls enter and leave only here, and move only by :mod:`dialer.domain.callstate`'s table
(anything else is refused with TransitionRefused): a runner's claim (new -> claimed), the
switch's acceptance (claimed -> originated), an adoption (orphaned -> claimed | originated),
the result (-> done) or a release (claimed -> released). A call whose lease another engine
took is dropped (:meth:`LiveCalls.drop`): it is that engine's now, its state goes on there.

Each call carries its node (the PBX it was dialed on); :meth:`LiveCalls.of_node` lists them for
the per-node work (a node's reconnection, its channel list).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Generic, Protocol, TypeVar

from dialer.domain.callstate import CallState, transition
from dialer.engine.calls import LiveCall


class Follower(Protocol):
    """A call's runner: its campaign's calls here (kept by the registry alone: the runner
    only reads them), and a channel slot of its campaign is free."""

    @property
    def campaign_id(self) -> int: ...

    @property
    def calls(self) -> MutableMapping[str, LiveCall]: ...

    def slot_freed(self) -> None: ...


R = TypeVar("R", bound=Follower)


class LiveCalls(Generic[R]):
    def __init__(self) -> None:
        self._calls: dict[str, tuple[LiveCall, R]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def __iter__(self) -> Iterator[LiveCall]:
        return iter([call for call, _ in self._calls.values()])

    def get(self, call_id: str) -> LiveCall | None:
        entry = self._calls.get(call_id)
        return entry[0] if entry else None

    def runner_of(self, call_id: str) -> R | None:
        entry = self._calls.get(call_id)
        return entry[1] if entry else None

    def of_node(self, node: str) -> list[LiveCall]:
        return [call for call, _ in self._calls.values() if call.node == node]

    def add(self, call: LiveCall, runner: R, state: CallState = CallState.CLAIMED) -> None:
        """Follow ``call``: a new claim (claimed), or an orphan adopted (claimed or
        originated, as its hash says)."""
        if call.call_id in self._calls:
            raise ValueError(f"call {call.call_id} is followed already")
        transition(call.state, state)
        call.state = state
        self._calls[call.call_id] = (call, runner)
        runner.calls[call.call_id] = call

    def advance(self, call_id: str, state: CallState) -> LiveCall | None:
        """Move a followed call on (the switch took it: originated); None when not followed
        (it ended or was dropped meanwhile)."""
        entry = self._calls.get(call_id)
        if entry is None:
            return None
        call = entry[0]
        if call.state is not state:
            transition(call.state, state)
            call.state = state
        return call

    def end(self, call_id: str, state: CallState = CallState.DONE) -> tuple[LiveCall, R] | None:
        """Stop following a call that ended (done) or was never dialed (released); its
        runner's slot is free. None when it was not followed."""
        entry = self._calls.get(call_id)
        if entry is None:
            return None
        transition(entry[0].state, state)
        entry[0].state = state
        return self._remove(call_id)

    def drop(self, call_id: str) -> tuple[LiveCall, R] | None:
        """Stop following a call another engine owns now (it adopted it): no state change
        here, no result, no hang-up."""
        return self._remove(call_id)

    def _remove(self, call_id: str) -> tuple[LiveCall, R] | None:
        entry = self._calls.pop(call_id, None)
        if entry is None:
            return None
        runner = entry[1]
        runner.calls.pop(call_id, None)
        runner.slot_freed()
        return entry
