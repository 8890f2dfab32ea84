"""A bounded memory of call ends an adapter saw but did not follow (sans-IO).

Every engine's AMI/ESL connection receives every dialer call's events; an engine follows only
its own calls, but the end of any other dialer call is what settles it should its owner die
before it could: the engine that later adopts the orphan asks this memory first (see
``Engine._orphan_end``). It keeps the last ``capacity`` ends (least recently stored first out)
and forgets any older than ``ttl`` seconds: an orphan is settled within a few lease periods
while an engine runs, so minutes are plenty, and ends older than that are better asked of the
switch's own record than trusted from here.

Cost: one dict insert per ended call not followed; about 300 bytes an entry (a 100,000-entry
memory is about 30 MB).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from dialer.pbx.base import CallEnded

DEFAULT_CAPACITY = 100_000
DEFAULT_TTL = 3600.0  # s


@dataclass(frozen=True, slots=True)
class EndMemoryStatistics:
    size: int
    capacity: int
    stored: int  # ends stored so far
    evicted: int  # dropped for room or age before anyone asked for them


class EndMemory:
    """call id -> :class:`CallEnded`, the newest ``capacity`` ends not older than ``ttl``.

    ``now`` is passed in (epoch seconds, the ends' own clock): no clock of its own.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, ttl: float = DEFAULT_TTL) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity!r}")
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0, not {ttl!r}")
        self.capacity = capacity
        self.ttl = ttl
        self._ends: OrderedDict[str, CallEnded] = OrderedDict()
        self._stored = 0
        self._evicted = 0

    def remember(self, ended: CallEnded) -> None:
        """Store an end (a later end of the same call replaces it: the PBX's final word)."""
        ends = self._ends
        ends.pop(ended.call_id, None)
        ends[ended.call_id] = ended
        self._stored += 1
        if len(ends) > self.capacity:
            ends.popitem(last=False)
            self._evicted += 1

    def get(self, call_id: str, now: float) -> CallEnded | None:
        """The call's end, if remembered and not older than ``ttl``."""
        self._expire(now)
        return self._ends.get(call_id)

    def pop(self, call_id: str) -> CallEnded | None:
        return self._ends.pop(call_id, None)

    def __len__(self) -> int:
        return len(self._ends)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._ends

    def _expire(self, now: float) -> None:
        ends = self._ends
        horizon = now - self.ttl
        while ends:
            oldest = next(iter(ends.values()))
            if oldest.ended_at >= horizon:
                return
            ends.popitem(last=False)
            self._evicted += 1

    def statistics(self) -> EndMemoryStatistics:
        return EndMemoryStatistics(
            size=len(self._ends),
            capacity=self.capacity,
            stored=self._stored,
            evicted=self._evicted,
        )
