"""Every Prometheus metric of the dialer, in one module, on a registry of its own.

Build one :class:`DialerMetrics` in the composition root and hand it to the engine; several
instances (tests, two engines in one process) never collide because each owns its registry.

Names: ``dialer_`` prefix, counters end in ``_total``, durations in ``_seconds``. Labels are few
and bounded: ``campaign`` (the campaign id), ``trunk``, ``status`` / ``reason`` from fixed
vocabularies (:class:`~dialer.domain.statuses.CallStatus`, :class:`CampaignStatus`,
:class:`OriginateFailure`), ``pbx``, ``operation`` / ``script``. No helper takes a phone number
or a call id. Free-text label values (trunk, pbx, operation, script) pass a guard: a value that
looks like a number or an id becomes ``invalid``, and past 64 distinct values a label folds
the rest into ``other``.

Aggregating over several engines: the store-wide gauges (queues, contacts, campaign limits and
status) are reported alike by every engine: use ``max``. Per-engine series (originates, results,
active channels, CPS used, histograms) add up: use ``sum``.

Abandon rate (``dialer_abandon_rate``): calls answered by a person that the dialer hung up before
connecting them to anything (an agent, or the campaign's message), divided by calls answered by
a person (attempt status ``answered``; machines excluded), in this process since it first saw the
campaign. With no agents yet this is 0 unless a stop with hang-up ended answered calls. The
counters behind it (``dialer_abandoned_calls_total``, ``dialer_call_results_total{status=
"answered"}``) give the fleet-wide rate over any window in PromQL.

The hot-path helpers (:meth:`originated`, :meth:`call_finished`, ...) look their labelled
children up in a dict keyed by the raw arguments: one lookup and one increment per call. Call
them and :meth:`render` from the engine's event loop thread. The engine's own ``/metrics`` port
is served by :func:`dialer.api.metrics_server.serve_metrics`.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dialer import __version__
from dialer.domain.statuses import CallStatus, CampaignStatus

log = logging.getLogger(__name__)

RING_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90)
TALK_BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)
REDIS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
MAX_LABEL_VALUES = 64
_CPS_WINDOW = 1.0  # seconds: dialer_cps_used counts originates in the last second
_CPS_MAXLEN = 100_000

_LABEL_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.:@/+-]{0,63}")
_NUMBER_OR_ID_RE = re.compile(r"\d{6,}|[0-9a-fA-F]{16,}")


class OriginateFailure(StrEnum):
    """Why an Originate made no call (the ``reason`` label)."""

    REFUSED = "refused"  # the PBX answered the action with an error
    NOT_DIALABLE = "not_dialable"  # the number failed validation; nothing was sent
    PBX_UNAVAILABLE = "pbx_unavailable"  # connection lost while sending: outcome unknown
    OTHER = "other"


class _LabelGuard:
    """Keeps one free-text label bounded and free of numbers and ids."""

    __slots__ = ("_known", "_name", "_warned")

    def __init__(self, name: str) -> None:
        self._name = name
        self._known: set[str] = set()
        self._warned = False

    def __call__(self, value: str) -> str:
        if value in self._known:
            return value
        if not _LABEL_RE.fullmatch(value) or _NUMBER_OR_ID_RE.search(value):
            return self._refuse("invalid", "a value that looks like a number or an id")
        if len(self._known) >= MAX_LABEL_VALUES:
            return self._refuse("other", f"more than {MAX_LABEL_VALUES} values")
        self._known.add(value)
        return value

    def _refuse(self, replacement: str, why: str) -> str:
        if not self._warned:  # once: this runs on the hot path while the bug lasts
            self._warned = True
            log.warning("metric label %s: %s, reported as %r", self._name, why, replacement)
        return replacement


class _Lane:
    """The hot-path children of one (campaign, trunk)."""

    __slots__ = ("active", "campaign", "originates", "sent", "trunk")

    def __init__(self, campaign: str, trunk: str, originates: Counter, active: Gauge) -> None:
        self.campaign = campaign
        self.trunk = trunk
        self.originates = originates
        self.active = active
        self.sent: deque[float] = deque(maxlen=_CPS_MAXLEN)  # originate times, last second

    def cps_used(self, now: float) -> int:
        sent, cutoff = self.sent, now - _CPS_WINDOW
        while sent and sent[0] <= cutoff:
            sent.popleft()
        return len(sent)


class _Answers:
    """One campaign's answered / abandoned tally (the abandon-rate gauge)."""

    __slots__ = ("abandoned", "abandoned_total", "answered", "rate")

    def __init__(self, abandoned_total: Counter, rate: Gauge) -> None:
        self.answered = 0
        self.abandoned = 0
        self.abandoned_total = abandoned_total
        self.rate = rate


class _CpsUsed(Collector):
    """``dialer_cps_used``: computed at scrape time from each lane's last second."""

    NAME = "dialer_cps_used"
    DOC = "Originates sent by this engine in the last second."

    def __init__(self, lanes: Mapping[tuple[int, str], _Lane], clock: Callable[[], float]) -> None:
        self._lanes = lanes
        self._clock = clock

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(self.NAME, self.DOC, labels=["campaign", "trunk"])]

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(self.NAME, self.DOC, labels=["campaign", "trunk"])
        now = self._clock()
        for lane in list(self._lanes.values()):
            family.add_metric([lane.campaign, lane.trunk], lane.cps_used(now))
        return [family]


class DialerMetrics:
    """The dialer's metrics and the helpers the engine, PBX adapters and store report through."""

    def __init__(
        self,
        engine_id: str,
        *,
        version: str = __version__,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self._clock = clock
        counter, gauge = partial(Counter, registry=r), partial(Gauge, registry=r)
        histogram = partial(Histogram, registry=r)
        cp, ct, tr = ("campaign",), ("campaign", "trunk"), ("trunk",)
        info = Info("dialer_engine", "This engine.", registry=r)
        info.info({"version": version, "engine_id": engine_id})
        # calls, per engine
        self._originates = counter("dialer_originates_total", "Originates the PBX accepted.", ct)
        self._failures = counter(
            "dialer_originate_failures_total", "Originates that made no call.", (*ct, "reason")
        )
        self._results = counter(
            "dialer_call_results_total", "Finished attempts by status.", (*ct, "status")
        )
        self._active = gauge("dialer_active_channels", "Calls up or ringing here.", ct)
        self._abandoned = counter(
            "dialer_abandoned_calls_total", "Answered, then hung up unconnected by us.", cp
        )
        self._abandon_rate = gauge("dialer_abandon_rate", "Abandoned / answered by a person.", cp)
        self._ring = histogram(
            "dialer_originate_to_answer_seconds", "Originate to answer.", tr, buckets=RING_BUCKETS
        )
        self._talk = histogram(
            "dialer_call_duration_seconds", "Answer to hang-up.", tr, buckets=TALK_BUCKETS
        )
        # configuration
        self._channel_limit = gauge("dialer_channel_limit", "Configured channels.", cp)
        self._cps_limit = gauge("dialer_cps_limit", "Configured calls per second.", cp)
        self._trunk_channel_limit = gauge(
            "dialer_trunk_channel_limit", "Trunk channels (no series: unlimited).", tr
        )
        self._trunk_cps_limit = gauge(
            "dialer_trunk_cps_limit", "Trunk calls per second (no series: unlimited).", tr
        )
        # trunk health (dialer.domain.breaker), store-wide state, per-engine trips
        self._breaker_state = gauge(
            "dialer_trunk_breaker_state",
            "The trunk's circuit breaker: 0 closed, 1 half-open, 2 open.",
            tr,
        )
        self._breaker_trips = counter(
            "dialer_trunk_breaker_trips_total",
            "Times a run of failed or unanswered calls opened the trunk's breaker (counted by "
            "the engine whose result tripped it).",
            tr,
        )
        # campaigns, store-wide
        self._pending = gauge("dialer_pending_contacts", "Contacts due now.", cp)
        self._retry_queue = gauge("dialer_retry_queue_contacts", "Contacts due later.", cp)
        self._inflight = gauge("dialer_inflight_calls", "Calls in flight.", cp)
        self._draining = gauge("dialer_draining_channels", "Calls up while pausing/stopping.", cp)
        self._contacts = gauge("dialer_contacts", "Contacts by status.", (*cp, "status"))
        self._campaign_status = gauge(
            "dialer_campaign_status", "1 for the current status.", (*cp, "status")
        )
        # infrastructure
        self._pbx_connected = gauge("dialer_pbx_connected", "1 while the PBX is up.", ("pbx",))
        self._pbx_reconnects = counter(
            "dialer_pbx_reconnects_total", "PBX connections re-established.", ("pbx",)
        )
        self._redis_latency = histogram(
            "dialer_redis_latency_seconds", "Store round trips.", ("operation",),
            buckets=REDIS_BUCKETS,
        )  # fmt: skip
        self._lua_errors = counter("dialer_lua_errors_total", "Lua script errors.", ("script",))
        self._lease_lost = counter(
            "dialer_lease_lost_total",
            "Calls this engine stopped following: another engine adopted them.",
            cp,
        )
        self._adopted = counter(
            "dialer_calls_adopted_total", "Calls of expired leases this engine took over.", cp
        )
        self._unowned_ends = counter(
            "dialer_unfollowed_ends_total",
            "Calls this engine settled without having followed them to their end, by where "
            "their end came from (reason: seen, switch, lost, unknown).",
            ("reason",),
        )
        self._unwritten = gauge("dialer_unwritten_results", "Results waiting for the store.")
        self._lanes: dict[tuple[int, str], _Lane] = {}
        self._failure_children: dict[tuple[int, str, OriginateFailure], Counter] = {}
        self._result_children: dict[tuple[int, str, CallStatus], Counter] = {}
        self._durations: dict[str, tuple[Histogram, Histogram]] = {}
        self._answers: dict[int, _Answers] = {}
        self._redis_children: dict[str, Histogram] = {}
        self._pbx_seen: dict[str, bool] = {}  # pbx -> connected now (present: was ever up)
        self._trunk = _LabelGuard("trunk")
        self._pbx = _LabelGuard("pbx")
        self._operation = _LabelGuard("operation")
        self._script = _LabelGuard("script")
        r.register(_CpsUsed(self._lanes, clock))
        self._by_campaign = (
            self._originates, self._failures, self._results, self._active, self._channel_limit,
            self._cps_limit, self._pending, self._retry_queue, self._inflight, self._draining,
            self._contacts, self._campaign_status, self._abandoned, self._abandon_rate,
            self._lease_lost, self._adopted,
        )  # fmt: skip

    # -- calls (hot path) ----------------------------------------------------------------------

    def originated(self, campaign: int, trunk: str, count: int = 1) -> None:
        """The PBX accepted ``count`` Originates (counts them and the CPS used)."""
        if count <= 0:
            return
        lane = self._lanes.get((campaign, trunk)) or self._lane(campaign, trunk)
        lane.originates.inc(count)
        now = self._clock()
        lane.sent.extend([now] * count)
        lane.cps_used(now)  # prunes: the deque holds one second of originates

    def originate_failed(self, campaign: int, trunk: str, reason: OriginateFailure) -> None:
        key = (campaign, trunk, reason)
        child = self._failure_children.get(key)
        if child is None:
            labels = (str(campaign), self._trunk(trunk), OriginateFailure(reason).value)
            child = self._failures.labels(*labels)
            if labels[1] == trunk:
                self._failure_children[key] = child
        child.inc()

    def call_finished(
        self,
        campaign: int,
        trunk: str,
        status: CallStatus,
        *,
        ring_seconds: float | None = None,
        talk_seconds: float | None = None,
        abandoned: bool = False,
    ) -> None:
        """One attempt ended with ``status``. ``ring_seconds`` (Originate to answer) and
        ``talk_seconds`` (answer to hang-up) only for answered calls; ``abandoned``: a person
        answered and the dialer hung up before connecting them (see the module docstring)."""
        key = (campaign, trunk, status)
        child = self._result_children.get(key)
        if child is None:
            labels = (str(campaign), self._trunk(trunk), CallStatus(status).value)
            child = self._results.labels(*labels)
            if labels[1] == trunk:
                self._result_children[key] = child
        child.inc()
        if ring_seconds is not None or talk_seconds is not None:
            ring, talk = self._durations.get(trunk) or self._duration_children(trunk)
            if ring_seconds is not None:
                ring.observe(ring_seconds)
            if talk_seconds is not None:
                talk.observe(talk_seconds)
        if status == CallStatus.ANSWERED:
            answers = self._answers.get(campaign) or self._answers_of(campaign)
            answers.answered += 1
            if abandoned:
                answers.abandoned += 1
                answers.abandoned_total.inc()
            answers.rate.set(answers.abandoned / answers.answered)

    def set_active(self, campaign: int, trunk: str, channels: int) -> None:
        """Calls this engine has up or ringing for the campaign."""
        lane = self._lanes.get((campaign, trunk)) or self._lane(campaign, trunk)
        lane.active.set(channels)

    # -- campaigns (once per supervision tick) -------------------------------------------------

    def set_limits(self, campaign: int, trunk: str, *, max_channels: int, cps: float) -> None:
        """The campaign's configured limits; also creates its per-trunk series at 0."""
        label = str(campaign)
        self._channel_limit.labels(label).set(max_channels)
        self._cps_limit.labels(label).set(cps)
        if (campaign, trunk) not in self._lanes:
            self._lane(campaign, trunk)

    def set_breaker_state(self, trunk: str, gauge: int) -> None:
        """The trunk's breaker (``BreakerState.gauge``): 0 closed, 1 half-open, 2 open."""
        self._breaker_state.labels(self._trunk(trunk)).set(gauge)

    def breaker_tripped(self, trunk: str, trips: int = 1) -> None:
        self._breaker_trips.labels(self._trunk(trunk)).inc(trips)

    def set_trunk_limits(self, trunk: str, *, max_channels: int | None, cps: float | None) -> None:
        """The trunk's limits; an unlimited one (None) has no series."""
        label = self._trunk(trunk)
        if max_channels is not None:
            self._trunk_channel_limit.labels(label).set(max_channels)
        if cps is not None:
            self._trunk_cps_limit.labels(label).set(cps)

    def set_queue(
        self, campaign: int, *, due_now: int, later: int, inflight: int, draining: int
    ) -> None:
        """Store-wide queue sizes: due now, scheduled later, in flight, draining."""
        label = str(campaign)
        self._pending.labels(label).set(due_now)
        self._retry_queue.labels(label).set(later)
        self._inflight.labels(label).set(inflight)
        self._draining.labels(label).set(draining)

    def set_contacts(self, campaign: int, counts: Mapping[CallStatus, int]) -> None:
        """Contacts per status (``RedisStore.counts``)."""
        label = str(campaign)
        for status, count in counts.items():
            self._contacts.labels(label, CallStatus(status).value).set(count)

    def set_campaign_status(self, campaign: int, status: CampaignStatus) -> None:
        label, current = str(campaign), CampaignStatus(status)
        for s in CampaignStatus:
            self._campaign_status.labels(label, s.value).set(1 if s is current else 0)

    def forget_campaign(self, campaign: int) -> None:
        """Drop every series of a deleted campaign."""
        label = {"campaign": str(campaign)}
        for metric in self._by_campaign:
            metric.remove_by_labels(label)
        _drop(self._lanes, campaign)
        _drop(self._failure_children, campaign)
        _drop(self._result_children, campaign)
        self._answers.pop(campaign, None)

    # -- infrastructure ------------------------------------------------------------------------

    def pbx_state(self, pbx: str, connected: bool) -> None:
        """The PBX connection went up or down; an up after a down counts as a reconnect."""
        was = self._pbx_seen.get(pbx)
        label = self._pbx(pbx)
        self._pbx_connected.labels(label).set(1 if connected else 0)
        if connected and was is False:
            self._pbx_reconnects.labels(label).inc()
        elif was is None:
            self._pbx_reconnects.labels(label)  # exported at 0
        if connected or was is not None:
            self._pbx_seen[pbx] = connected

    def observe_redis(self, operation: str, seconds: float) -> None:
        child = self._redis_children.get(operation)
        if child is None:
            label = self._operation(operation)
            child = self._redis_latency.labels(label)
            if label == operation:
                self._redis_children[operation] = child
        child.observe(seconds)

    def lua_error(self, script: str) -> None:
        self._lua_errors.labels(self._script(script)).inc()

    def lease_lost(self, campaign: int, count: int = 1) -> None:
        """``count`` calls of the campaign are owned by another engine now (it adopted them)."""
        self._lease_lost.labels(str(campaign)).inc(count)

    def adopted(self, campaign: int, count: int = 1) -> None:
        """This engine took over ``count`` calls whose leases had expired."""
        self._adopted.labels(str(campaign)).inc(count)

    def unfollowed_end(self, source: str) -> None:
        """This engine settled a call whose end it had not followed; ``source`` is an
        ``EndSource`` value (four of them)."""
        self._unowned_ends.labels(source).inc()

    def set_unwritten(self, results: int) -> None:
        self._unwritten.set(results)

    # -- exposition ----------------------------------------------------------------------------

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition (body, content type); OpenMetrics if ``accept`` asks for it."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    # -- children ------------------------------------------------------------------------------

    def _lane(self, campaign: int, trunk: str) -> _Lane:
        labels = (str(campaign), self._trunk(trunk))
        lane = _Lane(*labels, self._originates.labels(*labels), self._active.labels(*labels))
        if labels[1] == trunk:
            self._lanes[(campaign, trunk)] = lane
        return lane

    def _duration_children(self, trunk: str) -> tuple[Histogram, Histogram]:
        label = self._trunk(trunk)
        children = (self._ring.labels(label), self._talk.labels(label))
        if label == trunk:
            self._durations[trunk] = children
        return children

    def _answers_of(self, campaign: int) -> _Answers:
        label = str(campaign)
        answers = _Answers(self._abandoned.labels(label), self._abandon_rate.labels(label))
        self._answers[campaign] = answers
        return answers


_K = TypeVar("_K", bound=tuple[Any, ...])
_V = TypeVar("_V")


def _drop(cache: dict[_K, _V], campaign: int) -> None:
    for key in [k for k in cache if k[0] == campaign]:
        del cache[key]
