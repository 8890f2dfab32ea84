"""ops/ assets: every PromQL expression of the dashboard and the alerts names metrics that
dialer.metrics exports; promtool accepts the config and rules, and the alerts fire (and stay
quiet) on the series they are meant for."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from dialer.api import serve_metrics
from dialer.metrics import DialerMetrics
from ops.localstack.ports import free_port
from tests.unit.test_metrics import exercise

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "ops" / "prometheus"
GRAFANA = ROOT / "ops" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "dialer.json"
ALERTS = PROMETHEUS / "alerts.yml"

#: Series Prometheus makes itself for every scrape target.
SCRAPE_SERIES = {"up"}

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian package `prometheus`); syntax and alert behaviour "
    "are then checked only by the metric-name tests",
)

# -- a small PromQL tokenizer: the metric names an expression selects --------------------------

_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
    "group_right", "inf", "nan", "atan2",
}  # fmt: skip
_FUNCTIONS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "rate", "irate", "increase", "delta", "idelta", "deriv",
    "histogram_quantile", "abs", "absent", "absent_over_time", "ceil", "floor", "round", "clamp",
    "clamp_min", "clamp_max", "label_replace", "label_join", "vector", "scalar", "time",
    "timestamp", "sort", "sort_desc", "changes", "resets", "avg_over_time", "max_over_time",
    "min_over_time", "sum_over_time", "count_over_time", "last_over_time", "quantile_over_time",
}  # fmt: skip
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """Identifiers that are neither functions (followed by '('), label names (inside {...} or a
    grouping clause), keywords, numbers, durations nor Grafana variables."""
    s = _STRINGS.sub('""', expr)
    s = re.sub(r"\[[^\]]*\]", " ", s)  # ranges, subqueries: durations and $__rate_interval
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = _GROUPING.sub(" ", s)
    s = re.sub(r"\boffset\s+-?[\w$]+", " ", s)
    names = {m[1] for m in _IDENT.finditer(s)}
    return {n for n in names if n.lower() not in _KEYWORDS and n not in _FUNCTIONS}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up == 0", {"up"}),
        (
            'sum by (campaign) (rate(dialer_originates_total{campaign=~"$c"}[$__rate_interval]))'
            " / on (campaign) group_left max by (campaign) (dialer_channel_limit) > 0.95",
            {"dialer_originates_total", "dialer_channel_limit"},
        ),
        (
            "histogram_quantile(0.99, sum by (le, operation) (rate(x_bucket[5m]))) > 5e-2",
            {"x_bucket"},
        ),
        ("sum(a) without (instance) unless on(job) b offset 5m and bool c", {"a", "b", "c"}),
        ('count(d{status="by (x) rate"}) or vector(0) + Inf', {"d"}),
        ("max_over_time(e[5m:1m]) * -1 - nan", {"e"}),
    ],
)
def test_tokenizer(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


# -- what the dialer exports --------------------------------------------------------------------

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created", ""),
    "info": ("_info",),
}


@pytest.fixture(scope="module")
def exported() -> set[str]:
    names: set[str] = set()
    for family in DialerMetrics("e").registry.collect():
        names |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
    return names


def test_exported_names_match_the_real_exposition(exported: set[str]) -> None:
    metrics = DialerMetrics("e")
    exercise(metrics)
    sampled = {s.name for f in metrics.registry.collect() for s in f.samples}
    assert sampled == exported


# -- alerts.yml (no YAML library: rules are read line by line, promtool checks the YAML) ---------


def alert_exprs(text: str) -> dict[str, str]:
    """``alert name -> expr``; ``expr`` either on its line or a block scalar (| or >) below it."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    name = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := re.match(r"\s*- alert:\s*(\S+)\s*$", line):
            name = m[1]
        elif m := re.match(r"(\s*)expr:\s*(.*?)\s*$", line):
            indent, rest = len(m[1]), m[2]
            if rest in ("|", "|-", ">", ">-"):
                body = []
                while i + 1 < len(lines) and (
                    not lines[i + 1].strip()
                    or len(lines[i + 1]) - len(lines[i + 1].lstrip()) > indent
                ):
                    i += 1
                    body.append(lines[i].strip())
                rest = " ".join(body).strip()
            assert name, f"expr outside an alert at line {i + 1}"
            assert name not in out, f"{name}: a second expr at line {i + 1}"
            out[name] = rest
        i += 1
    return out


@pytest.fixture(scope="module")
def alerts() -> dict[str, str]:
    return alert_exprs(ALERTS.read_text())


def test_alerts_cover_the_brief(alerts: dict[str, str]) -> None:
    assert {
        "DialerPbxDown",
        "DialerQueueStuck",
        "DialerConcurrencySaturated",
        "DialerAbandonRateHigh",
        "DialerRunningWithoutOriginates",
        "DialerLuaErrors",
        "DialerRedisLatencyHigh",
    } <= set(alerts)
    assert all(alerts.values())


def test_alerts_use_only_exported_metrics(alerts: dict[str, str], exported: set[str]) -> None:
    for name, expr in alerts.items():
        used = metric_names(expr)
        assert used, name
        assert used <= exported | SCRAPE_SERIES, f"{name}: {sorted(used - exported)}"


# -- the Grafana dashboard --------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels_of(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return out


def dashboard_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in panels_of(dashboard)
        for target in panel.get("targets", [])
    ]


def datasource_uid() -> str:
    text = (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    m = re.search(r"^\s+uid:\s*(\S+)\s*$", text, re.M)
    assert m, "the provisioned datasource has a fixed uid"
    assert re.search(r"^\s+url:\s*http://prometheus:9090\s*$", text, re.M)
    assert re.search(r"^\s+type:\s*prometheus\s*$", text, re.M)
    return m[1]


def test_dashboard_shape(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "dialer-overview"
    assert dashboard["title"]
    assert dashboard["schemaVersion"] >= 36  # Grafana 10+
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Campaign progress", "Pacing", "Outcomes", "PBX and store health"]
    panels = panels_of(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    uid = datasource_uid()
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}
        for target in panel["targets"]:
            assert target["expr"].strip()
            assert target["datasource"]["uid"] == uid
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))


def test_dashboard_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in panels_of(dashboard):
        g = panel["gridPos"]
        assert g["x"] >= 0, panel["title"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        cells = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_dashboard_uses_only_exported_metrics(
    dashboard: dict[str, Any], exported: set[str]
) -> None:
    for title, expr in dashboard_exprs(dashboard):
        used = metric_names(expr)
        assert used, title
        assert used <= exported, f"{title}: {sorted(used - exported)}"
    for variable in dashboard["templating"]["list"]:
        m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["query"]["query"])
        assert m, variable["name"]
        assert m[1] in exported


def test_every_exported_metric_is_on_the_dashboard(
    dashboard: dict[str, Any], exported: set[str]
) -> None:
    used = set().union(*(metric_names(e) for _, e in dashboard_exprs(dashboard)))
    families = {re.sub(r"_(total|bucket|sum|count|created|info)$", "", n) for n in exported}
    shown = {re.sub(r"_(total|bucket|sum|count|info)$", "", n) for n in used}
    assert families - shown == set()


def test_provisioning_points_at_the_dashboards() -> None:
    provider = (GRAFANA / "provisioning" / "dashboards" / "dialer.yml").read_text()
    assert re.search(r"^apiVersion:\s*1\s*$", provider, re.M)
    assert re.search(r"^\s+type:\s*file\s*$", provider, re.M)
    assert re.search(r"^\s+path:\s*/\S+\s*$", provider, re.M)


def test_prometheus_scrapes_the_dialer_and_asterisk() -> None:
    text = (PROMETHEUS / "prometheus.yml").read_text()
    assert re.search(r"^\s+- job_name:\s*dialer\s*$", text, re.M)
    assert re.search(r'targets:\s*\["dialer:9108"\]', text)
    assert re.search(r"^\s+- job_name:\s*asterisk\s*$", text, re.M)
    assert re.search(r"^\s+- alerts\.yml\s*$", text, re.M)


# -- promtool -----------------------------------------------------------------------------------


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


@needs_promtool
def test_promtool_checks_config_and_rules(alerts: dict[str, str]) -> None:
    done = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    done = promtool("check", "rules", "--lint=all", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    m = re.search(r"SUCCESS: (\d+) rules found", done.stdout)
    assert m, done.stdout
    assert int(m[1]) == len(alerts)  # the line reader saw every rule


@needs_promtool
def test_dashboard_promql_parses(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """Each panel query, with Grafana's variables filled in, as a recording rule."""
    variables = {"$__rate_interval": "1m", "$__range": "1h", "$campaign": ".*", "$trunk": ".*"}
    rules = []
    for i, (_, expr) in enumerate(dashboard_exprs(dashboard)):
        for var, sub in variables.items():
            expr = expr.replace(var, sub)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # JSON is YAML
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


# Each case: input series (promtool notation, one sample per 15 s), when to look, and the label
# sets of the alerts expected firing then (severity included). Quiet neighbours ride along.
CASES: list[tuple[str, dict[str, str], str, list[dict[str, str]]]] = [
    ("DialerEngineDown", {'up{job="dialer",instance="e1"}': "1 1 0x20"}, "3m",
     [{"job": "dialer", "instance": "e1", "severity": "critical"}]),
    ("DialerPbxDown", {'dialer_pbx_connected{pbx="asterisk"}': "1 1 0x20",
                       'dialer_pbx_connected{pbx="b"}': "1x22"},
     "2m", [{"pbx": "asterisk", "severity": "critical"}]),
    ("DialerPbxDown", {'dialer_pbx_connected{pbx="asterisk"}': "1 1 0x20"}, "45s", []),
    ("DialerPbxFlapping", {'dialer_pbx_reconnects_total{pbx="asterisk"}': "0 1 2 3 4 5x20",
                           'dialer_pbx_reconnects_total{pbx="b"}': "0 1 2 2x20"},
     "2m", [{"pbx": "asterisk", "severity": "warning"}]),
    ("DialerQueueStuck", {
        # 1: stuck. 2: originating. 3: every channel busy with long calls. 4: paused.
        **{f'dialer_pending_contacts{{campaign="{c}"}}': "5x40" for c in "1234"},
        **{f'dialer_campaign_status{{campaign="{c}",status="running"}}': "1x40" for c in "123"},
        'dialer_campaign_status{campaign="4",status="running"}': "0x40",
        'dialer_originates_total{campaign="1",trunk="t"}': "3x40",
        'dialer_originates_total{campaign="2",trunk="t"}': "0+2x40",
        'dialer_originates_total{campaign="3",trunk="t"}': "7x40",
        **{f'dialer_channel_limit{{campaign="{c}"}}': "10x40" for c in "1234"},
        'dialer_inflight_calls{campaign="1"}': "0x40",
        'dialer_inflight_calls{campaign="2"}': "2x40",
        'dialer_inflight_calls{campaign="3"}': "10x40",
     }, "5m", [{"campaign": "1", "severity": "critical"}]),
    ("DialerRunningWithoutOriginates", {
        # 1: nothing to do, not completing. 2: waits for a retry. 3: a long call. 4: dialing.
        **{f'dialer_campaign_status{{campaign="{c}",status="running"}}': "1x50" for c in "1234"},
        **{f'dialer_originates_total{{campaign="{c}",trunk="t"}}': "4x50" for c in "123"},
        'dialer_originates_total{campaign="4",trunk="t"}': "0+1x50",
        **{f'dialer_retry_queue_contacts{{campaign="{c}"}}': "0x50" for c in "134"},
        'dialer_retry_queue_contacts{campaign="2"}': "3x50",
        **{f'dialer_inflight_calls{{campaign="{c}"}}': "0x50" for c in "124"},
        'dialer_inflight_calls{campaign="3"}': "1x50",
     }, "8m", [{"campaign": "1", "severity": "warning"}]),
    ("DialerConcurrencySaturated", {
        # campaign 1: 50 + 47 of 100 over two engines; campaign 2: 40 + 40 of 100
        'dialer_active_channels{campaign="1",trunk="t",instance="e1"}': "50x40",
        'dialer_active_channels{campaign="1",trunk="t",instance="e2"}': "47x40",
        'dialer_active_channels{campaign="2",trunk="t",instance="e1"}': "40x40",
        'dialer_active_channels{campaign="2",trunk="t",instance="e2"}': "40x40",
        **{f'dialer_channel_limit{{campaign="{c}",instance="{e}"}}': "100x40"
           for c in "12" for e in ("e1", "e2")},
     }, "7m", [{"campaign": "1", "severity": "warning"}]),
    ("DialerTrunkSaturated", {
        'dialer_active_channels{campaign="1",trunk="t"}': "60x40",
        'dialer_active_channels{campaign="2",trunk="t"}': "39x40",
        'dialer_active_channels{campaign="3",trunk="u"}': "10x40",
        'dialer_trunk_channel_limit{trunk="t"}': "100x40",
        'dialer_trunk_channel_limit{trunk="u"}': "100x40",
     }, "7m", [{"trunk": "t", "severity": "warning"}]),
    ("DialerAbandonRateHigh", {
        # 1: 10% of answered calls abandoned; 2: 2%
        'dialer_call_results_total{campaign="1",trunk="t",status="answered"}': "0+10x40",
        'dialer_abandoned_calls_total{campaign="1"}': "0+1x40",
        'dialer_call_results_total{campaign="2",trunk="t",status="answered"}': "0+50x40",
        'dialer_abandoned_calls_total{campaign="2"}': "0+1x40",
     }, "5m", [{"campaign": "1", "severity": "critical"}]),
    ("DialerLuaErrors", {'dialer_lua_errors_total{script="claim"}': "0 0 1x20",
                         'dialer_lua_errors_total{script="finish"}': "0x22"},
     "1m", [{"script": "claim", "severity": "critical"}]),
    ("DialerRedisLatencyHigh", {
        # claim: every round trip between 10 and 100 ms; finish: all under 10 ms
        'dialer_redis_latency_seconds_bucket{operation="claim",le="0.01"}': "0x40",
        'dialer_redis_latency_seconds_bucket{operation="claim",le="0.1"}': "0+10x40",
        'dialer_redis_latency_seconds_bucket{operation="claim",le="+Inf"}': "0+10x40",
        'dialer_redis_latency_seconds_bucket{operation="finish",le="0.01"}': "0+10x40",
        'dialer_redis_latency_seconds_bucket{operation="finish",le="0.1"}': "0+10x40",
        'dialer_redis_latency_seconds_bucket{operation="finish",le="+Inf"}': "0+10x40",
     }, "7m", [{"operation": "claim", "severity": "warning"}]),
    ("DialerResultsUnwritten", {'dialer_unwritten_results{instance="e1"}': "0 3x20",
                                'dialer_unwritten_results{instance="e2"}': "0x21"},
     "3m", [{"instance": "e1", "severity": "critical"}]),
]  # fmt: skip


def without_annotations(text: str) -> str:
    """The rules minus their annotations: the cases check which alerts fire with which labels
    (promtool would otherwise compare the rendered summaries too)."""
    out, skip_deeper_than = [], -1
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if skip_deeper_than >= 0 and (not line.strip() or indent > skip_deeper_than):
            continue
        skip_deeper_than = indent if line.strip() == "annotations:" else -1
        if skip_deeper_than < 0:
            out.append(line)
    return "\n".join(out) + "\n"


@needs_promtool
def test_alerts_fire_on_what_they_are_for(alerts: dict[str, str], tmp_path: Path) -> None:
    assert {case[0] for case in CASES} == set(alerts)  # every rule has a case
    (tmp_path / "alerts.yml").write_text(without_annotations(ALERTS.read_text()))
    tests = [
        {
            "interval": "15s",
            "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "alert_rule_test": [
                {
                    "eval_time": at,
                    "alertname": name,
                    "exp_alerts": [{"exp_labels": labels} for labels in firing],
                }
            ],
        }
        for name, series, at, firing in CASES
    ]
    spec = {"rule_files": ["alerts.yml"], "evaluation_interval": "15s", "tests": tests}
    (tmp_path / "alerts_test.yml").write_text(json.dumps(spec, indent=1))
    done = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


# -- a real Prometheus scraping serve_metrics ----------------------------------------------------

PROMETHEUS_BIN = shutil.which("prometheus")


async def prom_query(port: int, expr: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})

    def get() -> dict[str, Any]:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                data: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as exc:  # a bad query: 400 with a JSON error body
            data = json.load(exc)
        return data

    return await asyncio.to_thread(get)


@pytest.mark.skipif(
    PROMETHEUS_BIN is None, reason="prometheus not installed (Debian package `prometheus`)"
)
async def test_prometheus_scrapes_serve_metrics_and_every_query_has_data(
    dashboard: dict[str, Any], alerts: dict[str, str], tmp_path: Path
) -> None:
    """Prometheus 2 scrapes the engine's /metrics (it negotiates OpenMetrics); then every
    dashboard query returns series and every alert expression evaluates."""
    assert PROMETHEUS_BIN is not None
    metrics = DialerMetrics("e1")
    exercise(metrics)
    async with serve_metrics(metrics, "127.0.0.1", 0) as endpoint:
        config = {
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "dialer",
                    "static_configs": [{"targets": [f"127.0.0.1:{endpoint.port}"]}],
                }
            ],
        }
        (tmp_path / "prometheus.yml").write_text(json.dumps(config))
        port = free_port()
        log = (tmp_path / "prometheus.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            PROMETHEUS_BIN,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=log,
            stderr=log,
        )
        try:
            async with asyncio.timeout(20):  # the first scrape comes ~5 s after start
                while True:
                    metrics.originated(1, "carrier")
                    try:
                        scrapes = await prom_query(port, 'count_over_time(up{job="dialer"}[1m])')
                    except OSError:
                        scrapes = {}
                    result = scrapes.get("data", {}).get("result", [])
                    if result and float(result[0]["value"][1]) >= 2:  # rate() needs two
                        break
                    await asyncio.sleep(0.2)
            up = await prom_query(port, 'up{job="dialer"}')
            assert up["data"]["result"][0]["value"][1] == "1"
            variables = {
                "$__rate_interval": "1m",
                "$__range": "1m",
                "$campaign": ".*",
                "$trunk": ".*",
            }
            for title, expr in dashboard_exprs(dashboard):
                for var, sub in variables.items():
                    expr = expr.replace(var, sub)
                answer = await prom_query(port, expr)
                assert answer["status"] == "success", (title, expr, answer)
                assert answer["data"]["result"], f"{title}: no data for {expr}"
            for name, expr in alerts.items():
                answer = await prom_query(port, expr)
                assert answer["status"] == "success", (name, answer)
        finally:
            proc.terminate()
            await proc.wait()
            log.close()
