"""What this engine knows of its trunks' circuit breakers, and the signals it feeds them.

The writer asks it how to classify an attempt (one that reached nobody on a trunk whose breaker
is open is a technical error that uses no attempt) and hands it the signals of the results it
wrote; the signals go to Redis in the writer's next round trip (breaker_report.lua).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from dialer.domain.breaker import BreakerState, Signal, signal_of
from dialer.domain.outcome import Classification, classify
from dialer.domain.statuses import CallStatus
from dialer.engine.calls import LiveCall
from dialer.errors import DialerError
from dialer.metrics import DialerMetrics
from dialer.pbx.base import CallEnded
from dialer.store.breaker import BreakerReport, report_of

log = logging.getLogger(__name__)

BreakerSignals = dict[str, list[tuple[str, Signal, bool]]]  # trunk -> (call, signal, charged)

_CUT_BY_TRUNK = (Signal.SILENT, Signal.FAILURE)


class TrunkHealth:
    def __init__(self, metrics: DialerMetrics, feed: Callable[[BreakerSignals], None]) -> None:
        self._metrics = metrics
        self._feed = feed  # sends signals in the writer's next round trip
        # trunks whose breaker this engine last knew open or half-open: what their calls in
        # flight end with (unanswered) is not charged to the contacts
        self.unhealthy: set[str] = set()

    def outcome(self, call: LiveCall, ended: CallEnded) -> Classification:
        """The attempt's classification; one that reached nobody on a trunk whose breaker is
        open is a technical error that uses no attempt (the dead trunk cut it, not the
        callee): the switch-crash rule's treatment."""
        outcome = classify(ended.raw)
        if call.trunk in self.unhealthy and signal_of(ended.raw, outcome) in _CUT_BY_TRUNK:
            return Classification(
                CallStatus.TECHNICAL_ERROR,
                retryable=True,
                consumes_attempt=False,
                final=False,
                reason="trunk:open",
            )
        return outcome

    def feed(self, signals: BreakerSignals) -> None:
        if signals:
            self._feed(signals)

    def answered(self, call: LiveCall) -> None:
        """A call of an unhealthy trunk was answered (the probe, or a call in flight)."""
        if call.trunk in self.unhealthy:
            self.feed({call.trunk: [(call.call_id, Signal.OK, False)]})

    def reported(self, trunk: str, raw: object) -> None:
        try:
            report = report_of(raw)
        except DialerError as exc:
            log.warning("trunk %s: breaker not fed: %s", trunk, exc)
            return
        self.report(trunk, report)

    def report(self, trunk: str, report: BreakerReport, *, by_switch: bool = False) -> None:
        """What a breaker report did (``by_switch``: the switch's word, breaker_switch.lua,
        whose trips give no attempts back and are logged by dialer.engine.switchview)."""
        self.seen(trunk, report.state)
        if report.trips:
            self._metrics.breaker_tripped(trunk, report.trips)
        if report.trips and not by_switch:
            log.warning(
                "trunk %s: breaker open; %d attempts given back to the contacts of the run "
                "that tripped it",
                trunk,
                report.refunded,
            )
        if report.closes:
            log.warning("trunk %s: breaker closed", trunk)

    def seen(self, trunk: str, state: BreakerState) -> None:
        self._metrics.set_breaker_state(trunk, state.gauge)
        if state is BreakerState.CLOSED:
            self.unhealthy.discard(trunk)
        else:
            self.unhealthy.add(trunk)
