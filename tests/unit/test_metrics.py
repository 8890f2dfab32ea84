"""dialer.metrics: every helper moves the series it should, labels stay bounded, it renders."""

from __future__ import annotations

import inspect
import time

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dialer import __version__
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.metrics import MAX_LABEL_VALUES, DialerMetrics, OriginateFailure

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def scrape(metrics: DialerMetrics) -> Series:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    out: Series = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(series: Series, name: str, **labels: str) -> float | None:
    return series.get((name, frozenset(labels.items())))


def names_with(series: Series, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (n, labels) in series if n == name]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics(clock: FakeClock) -> DialerMetrics:
    return DialerMetrics("engine-a", clock=clock)


def test_engine_info(metrics: DialerMetrics) -> None:
    s = scrape(metrics)
    assert value(s, "dialer_engine_info", version=__version__, engine_id="engine-a") == 1


def test_originated_counts_and_cps_used_is_the_last_second(
    metrics: DialerMetrics, clock: FakeClock
) -> None:
    for t in (1000.0, 1000.2, 1000.5):
        clock.now = t
        metrics.originated(7, "carrier")
    s = scrape(metrics)
    assert value(s, "dialer_originates_total", campaign="7", trunk="carrier") == 3
    assert value(s, "dialer_cps_used", campaign="7", trunk="carrier") == 3
    clock.now = 1001.3  # 1000.0 and 1000.2 are more than a second old
    assert value(scrape(metrics), "dialer_cps_used", campaign="7", trunk="carrier") == 1
    clock.now = 1002.0
    s = scrape(metrics)
    assert value(s, "dialer_cps_used", campaign="7", trunk="carrier") == 0
    assert value(s, "dialer_originates_total", campaign="7", trunk="carrier") == 3


def test_originate_failures_by_reason(metrics: DialerMetrics) -> None:
    metrics.originate_failed(1, "carrier", OriginateFailure.REFUSED)
    metrics.originate_failed(1, "carrier", OriginateFailure.REFUSED)
    metrics.originate_failed(1, "carrier", OriginateFailure.NOT_DIALABLE)
    s = scrape(metrics)
    name = "dialer_originate_failures_total"
    assert value(s, name, campaign="1", trunk="carrier", reason="refused") == 2
    assert value(s, name, campaign="1", trunk="carrier", reason="not_dialable") == 1
    assert value(s, name, campaign="1", trunk="carrier", reason="pbx_unavailable") is None


def test_call_finished_counts_results_and_observes_durations(metrics: DialerMetrics) -> None:
    metrics.call_finished(1, "carrier", CallStatus.ANSWERED, ring_seconds=2.5, talk_seconds=40)
    metrics.call_finished(1, "carrier", CallStatus.ANSWERED, ring_seconds=0.2, talk_seconds=3)
    metrics.call_finished(1, "carrier", CallStatus.BUSY)
    s = scrape(metrics)
    results = "dialer_call_results_total"
    assert value(s, results, campaign="1", trunk="carrier", status="answered") == 2
    assert value(s, results, campaign="1", trunk="carrier", status="busy") == 1
    ring = "dialer_originate_to_answer_seconds"
    assert value(s, f"{ring}_count", trunk="carrier") == 2  # the busy call observed nothing
    assert value(s, f"{ring}_sum", trunk="carrier") == pytest.approx(2.7)
    assert value(s, f"{ring}_bucket", trunk="carrier", le="0.25") == 1
    assert value(s, f"{ring}_bucket", trunk="carrier", le="3.0") == 2
    talk = "dialer_call_duration_seconds"
    assert value(s, f"{talk}_count", trunk="carrier") == 2
    assert value(s, f"{talk}_sum", trunk="carrier") == 43
    assert value(s, f"{talk}_bucket", trunk="carrier", le="5.0") == 1


def test_abandon_rate_counts_only_calls_answered_by_a_person(metrics: DialerMetrics) -> None:
    metrics.call_finished(3, "carrier", CallStatus.ANSWERED)
    metrics.call_finished(3, "carrier", CallStatus.ANSWERED, abandoned=True)
    metrics.call_finished(3, "carrier", CallStatus.ANSWERED)
    metrics.call_finished(3, "carrier", CallStatus.ANSWERED)
    metrics.call_finished(3, "carrier", CallStatus.VOICEMAIL, abandoned=True)  # a machine
    s = scrape(metrics)
    assert value(s, "dialer_abandoned_calls_total", campaign="3") == 1
    assert value(s, "dialer_abandon_rate", campaign="3") == pytest.approx(0.25)
    assert names_with(s, "dialer_abandon_rate") == [{"campaign": "3"}]


def test_limits_create_the_campaign_series_at_zero(metrics: DialerMetrics) -> None:
    metrics.set_limits(4, "carrier", max_channels=30, cps=5.5)
    metrics.set_trunk_limits("carrier", max_channels=100, cps=20)
    s = scrape(metrics)
    assert value(s, "dialer_channel_limit", campaign="4") == 30
    assert value(s, "dialer_cps_limit", campaign="4") == 5.5
    assert value(s, "dialer_trunk_channel_limit", trunk="carrier") == 100
    assert value(s, "dialer_trunk_cps_limit", trunk="carrier") == 20
    # an alert's "no originates" must see a 0 series before the first originate
    assert value(s, "dialer_originates_total", campaign="4", trunk="carrier") == 0
    assert value(s, "dialer_active_channels", campaign="4", trunk="carrier") == 0


def test_an_unlimited_trunk_axis_has_no_limit_series(metrics: DialerMetrics) -> None:
    metrics.set_trunk_limits("open", max_channels=None, cps=None)
    metrics.set_trunk_limits("half", max_channels=None, cps=3)
    s = scrape(metrics)
    assert names_with(s, "dialer_trunk_channel_limit") == []
    assert names_with(s, "dialer_trunk_cps_limit") == [{"trunk": "half"}]


def test_active_queue_and_contacts(metrics: DialerMetrics) -> None:
    metrics.set_active(2, "carrier", 17)
    metrics.set_queue(2, due_now=120, later=30, inflight=18, draining=0)
    metrics.set_contacts(2, {CallStatus.PENDING: 150, CallStatus.ANSWERED: 40})
    metrics.set_active(2, "carrier", 12)
    metrics.set_queue(2, due_now=100, later=31, inflight=12, draining=5)
    s = scrape(metrics)
    assert value(s, "dialer_active_channels", campaign="2", trunk="carrier") == 12
    assert value(s, "dialer_pending_contacts", campaign="2") == 100
    assert value(s, "dialer_retry_queue_contacts", campaign="2") == 31
    assert value(s, "dialer_inflight_calls", campaign="2") == 12
    assert value(s, "dialer_draining_channels", campaign="2") == 5
    assert value(s, "dialer_contacts", campaign="2", status="pending") == 150
    assert value(s, "dialer_contacts", campaign="2", status="answered") == 40


def test_campaign_status_is_one_for_the_current_status_only(metrics: DialerMetrics) -> None:
    metrics.set_campaign_status(5, CampaignStatus.RUNNING)
    metrics.set_campaign_status(5, CampaignStatus.PAUSING)
    s = scrape(metrics)
    got = {
        labels["status"]: value(s, "dialer_campaign_status", **labels)
        for labels in names_with(s, "dialer_campaign_status")
    }
    assert got == {
        status.value: (1 if status is CampaignStatus.PAUSING else 0) for status in CampaignStatus
    }


def test_pbx_state_and_reconnects(metrics: DialerMetrics) -> None:
    metrics.pbx_state("asterisk", False)  # down before the first login: not a reconnect
    s = scrape(metrics)
    assert value(s, "dialer_pbx_connected", pbx="asterisk") == 0
    assert value(s, "dialer_pbx_reconnects_total", pbx="asterisk") == 0
    metrics.pbx_state("asterisk", True)
    s = scrape(metrics)
    assert value(s, "dialer_pbx_connected", pbx="asterisk") == 1
    assert value(s, "dialer_pbx_reconnects_total", pbx="asterisk") == 0
    metrics.pbx_state("asterisk", False)
    metrics.pbx_state("asterisk", False)  # repeated: still one outage
    metrics.pbx_state("asterisk", True)
    metrics.pbx_state("asterisk", True)
    s = scrape(metrics)
    assert value(s, "dialer_pbx_connected", pbx="asterisk") == 1
    assert value(s, "dialer_pbx_reconnects_total", pbx="asterisk") == 1


def test_redis_latency_lua_errors_and_unwritten(metrics: DialerMetrics) -> None:
    metrics.observe_redis("claim", 0.0007)
    metrics.observe_redis("claim", 0.02)
    metrics.observe_redis("finish", 0.001)
    metrics.lua_error("claim")
    metrics.set_unwritten(4)
    s = scrape(metrics)
    name = "dialer_redis_latency_seconds"
    assert value(s, f"{name}_count", operation="claim") == 2
    assert value(s, f"{name}_bucket", operation="claim", le="0.001") == 1
    assert value(s, f"{name}_sum", operation="finish") == pytest.approx(0.001)
    assert value(s, "dialer_lua_errors_total", script="claim") == 1
    assert value(s, "dialer_unwritten_results") == 4


def test_lease_lost_and_adopted(metrics: DialerMetrics) -> None:
    metrics.lease_lost(3, 2)
    metrics.adopted(3)
    s = scrape(metrics)
    assert value(s, "dialer_lease_lost_total", campaign="3") == 2
    assert value(s, "dialer_calls_adopted_total", campaign="3") == 1


def test_forget_campaign_drops_its_series_and_keeps_counting_after(metrics: DialerMetrics) -> None:
    for cid in (1, 2):
        metrics.set_limits(cid, "carrier", max_channels=10, cps=1)
        metrics.originated(cid, "carrier")
        metrics.originate_failed(cid, "carrier", OriginateFailure.REFUSED)
        metrics.call_finished(cid, "carrier", CallStatus.ANSWERED, abandoned=True)
        metrics.set_queue(cid, due_now=1, later=1, inflight=1, draining=1)
        metrics.set_contacts(cid, {CallStatus.PENDING: 1})
        metrics.set_campaign_status(cid, CampaignStatus.RUNNING)
    metrics.forget_campaign(1)
    s = scrape(metrics)
    assert not [k for k in s if ("campaign", "1") in k[1]]
    assert value(s, "dialer_originates_total", campaign="2", trunk="carrier") == 1
    assert value(s, "dialer_abandon_rate", campaign="2") == 1
    # a recreated campaign 1 starts from zero and is exported (no stale cached child)
    metrics.originated(1, "carrier")
    metrics.call_finished(1, "carrier", CallStatus.ANSWERED)
    s = scrape(metrics)
    assert value(s, "dialer_originates_total", campaign="1", trunk="carrier") == 1
    assert value(s, "dialer_cps_used", campaign="1", trunk="carrier") == 1
    assert value(s, "dialer_abandon_rate", campaign="1") == 0


ALLOWED_LABELS = {"campaign", "trunk", "status", "reason", "pbx", "operation", "script"}


def exercise(metrics: DialerMetrics) -> None:
    metrics.set_limits(1, "carrier", max_channels=10, cps=2)
    metrics.set_trunk_limits("carrier", max_channels=10, cps=2)
    metrics.set_breaker_state("carrier", 2)
    metrics.breaker_tripped("carrier")
    metrics.originated(1, "carrier")
    metrics.originate_failed(1, "carrier", OriginateFailure.PBX_UNAVAILABLE)
    metrics.call_finished(1, "carrier", CallStatus.ANSWERED, ring_seconds=1, talk_seconds=9)
    metrics.set_active(1, "carrier", 1)
    metrics.set_queue(1, due_now=1, later=0, inflight=1, draining=0)
    metrics.set_contacts(1, dict.fromkeys(CallStatus, 1))
    metrics.set_campaign_status(1, CampaignStatus.RUNNING)
    metrics.pbx_state("asterisk", True)
    metrics.observe_redis("claim", 0.001)
    metrics.lua_error("claim")
    metrics.set_unwritten(0)
    metrics.lease_lost(1)
    metrics.adopted(1)
    metrics.unfollowed_end("switch")


def test_label_names_are_low_cardinality_only(metrics: DialerMetrics) -> None:
    exercise(metrics)
    seen: set[str] = set()
    for family in metrics.registry.collect():
        for sample in family.samples:
            seen |= set(sample.labels)
    seen -= {"le"}  # histogram buckets
    seen -= {"version", "engine_id"}  # dialer_engine_info only: one series per process
    assert seen == ALLOWED_LABELS


def test_no_helper_takes_a_phone_number_or_call_id() -> None:
    forbidden = {"phone", "number", "call_id", "contact", "contact_id", "uniqueid", "channel"}
    for name, method in inspect.getmembers(DialerMetrics, inspect.isfunction):
        if not name.startswith("_"):
            assert not forbidden & set(inspect.signature(method).parameters), name
    m = DialerMetrics("e")
    with pytest.raises(TypeError):
        m.originated(1, "carrier", phone="+15551234567")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="is not a valid CallStatus"):
        m.call_finished(1, "carrier", "15551234567")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        "+15551234567",
        "0612345678",
        "dlr-3f2a9c1e5b7d4a60b1c2d3e4f5a6b7c8",
        "carrier 1",
        "",
        "x" * 80,
    ],
)
def test_number_or_id_as_a_label_value_is_reported_as_invalid(bad: str) -> None:
    m = DialerMetrics("e")
    m.originated(1, bad)
    m.call_finished(1, bad, CallStatus.BUSY, ring_seconds=1)
    m.observe_redis(bad, 0.1)
    m.lua_error(bad)
    m.pbx_state(bad, True)
    body = m.render()[0].decode()
    if bad:
        assert bad not in body
    s = scrape(m)
    assert all(v for _, labels in s for _, v in labels)  # no empty label value either
    assert value(s, "dialer_originates_total", campaign="1", trunk="invalid") == 1
    assert value(s, "dialer_lua_errors_total", script="invalid") == 1
    assert value(s, "dialer_pbx_connected", pbx="invalid") == 1


def test_distinct_label_values_are_capped(metrics: DialerMetrics) -> None:
    for i in range(MAX_LABEL_VALUES + 10):
        metrics.observe_redis(f"op_{chr(97 + i // 26)}{chr(97 + i % 26)}", 0.001)
    ops = {
        labels["operation"]
        for labels in names_with(scrape(metrics), "dialer_redis_latency_seconds_count")
    }
    assert len(ops) == MAX_LABEL_VALUES + 1
    assert "other" in ops


def test_two_instances_do_not_collide() -> None:
    a, b = DialerMetrics("a"), DialerMetrics("b")
    a.originated(1, "carrier")
    a.originated(1, "carrier")
    b.originated(1, "carrier")
    assert value(scrape(a), "dialer_originates_total", campaign="1", trunk="carrier") == 2
    assert value(scrape(b), "dialer_originates_total", campaign="1", trunk="carrier") == 1
    assert value(scrape(b), "dialer_engine_info", engine_id="b", version=__version__) == 1
    global_names = {f.name for f in prometheus_client.REGISTRY.collect()}
    assert not {n for n in global_names if n.startswith("dialer")}


def test_render_speaks_openmetrics_when_asked(metrics: DialerMetrics) -> None:
    metrics.originated(1, "carrier")
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert b'dialer_originates_total{campaign="1",trunk="carrier"} 1.0' in body


def test_hot_path_helpers_are_cheap(metrics: DialerMetrics) -> None:
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        metrics.originated(1, "carrier")
        metrics.call_finished(1, "carrier", CallStatus.ANSWERED, ring_seconds=1.0, talk_seconds=5)
        metrics.observe_redis("claim", 0.001)
    per_call = (time.perf_counter() - start) / n
    assert value(scrape(metrics), "dialer_originates_total", campaign="1", trunk="carrier") == n
    assert per_call < 200e-6, f"{per_call * 1e6:.1f} us per originate+finish+redis"
