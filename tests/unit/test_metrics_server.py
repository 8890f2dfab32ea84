"""The engine's own /metrics port: uvicorn + Starlette on a real socket, loopback by default."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dialer.api import MetricsEndpoint, serve_metrics
from dialer.app import open_metrics_port
from dialer.config import EngineSettings
from dialer.errors import ConfigError
from dialer.metrics import DialerMetrics
from ops.localstack.procs import bound_ports


@pytest.fixture
def metrics() -> DialerMetrics:
    return DialerMetrics("e1")


async def http(
    port: int, request: bytes, host: str = "127.0.0.1"
) -> tuple[int, dict[str, str], bytes]:
    """One raw request on a fresh connection; the whole response, read until the close."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body


def ipv4_listening_here(port: int) -> bool:
    """This process listens on IPv4 TCP ``port``, by the kernel's table (``/proc/net/tcp``,
    against this process's socket inodes). A connection test cannot tell: another worker's
    server may hold the same port on 127.0.0.1 (the kernel gives a free ``::1`` port that may
    be taken on IPv4), and a suite run once failed so."""
    return port in bound_ports(os.getpid())["tcp"]


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: x", "Connection: close", *headers, "", ""]
    return "\r\n".join(lines).encode()


async def connects(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def other_local_address() -> str | None:
    """This host's address on its default route, when it has one besides loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("203.0.113.1", 9))  # UDP: no packet is sent
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


async def test_get_metrics_answers_with_the_prometheus_exposition(metrics: DialerMetrics) -> None:
    metrics.originated(9, "carrier")
    async with serve_metrics(metrics, port=0) as endpoint:
        assert endpoint == MetricsEndpoint("127.0.0.1", endpoint.port)
        assert endpoint.port > 0
        assert endpoint.url == f"http://127.0.0.1:{endpoint.port}/metrics"
        status, headers, body = await http(endpoint.port, get("/metrics"))
        assert status == 200
        assert headers["content-type"] == metrics.render()[1]  # the text format, as it is
        assert headers["content-type"].startswith("text/plain; version=")
        assert int(headers["content-length"]) == len(body)
        assert "server" not in headers
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        [sample] = [s for s in families["dialer_originates"].samples if s.name.endswith("_total")]
        assert sample.labels == {"campaign": "9", "trunk": "carrier"}
        assert sample.value == 1

        status, headers, body = await http(
            endpoint.port, get("/metrics", "Accept: application/openmetrics-text; version=1.0.0")
        )
        assert status == 200
        assert headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
        assert body.endswith(b"# EOF\n")

        status, _, body = await http(endpoint.port, get("/metrics?x=1"))
        assert status == 200
        assert b"dialer_engine_info" in body


async def test_head_404_405_and_a_bad_request(metrics: DialerMetrics) -> None:
    async with serve_metrics(metrics, port=0) as endpoint:
        status, headers, body = await http(
            endpoint.port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert (status, body) == (200, b"")
        assert int(headers["content-length"]) > 0
        assert (await http(endpoint.port, get("/")))[0] == 404
        assert (await http(endpoint.port, get("/metricsx")))[0] == 404
        status, headers, _ = await http(
            endpoint.port, b"POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert status == 405
        assert sorted(headers["allow"].split(", ")) == ["GET", "HEAD"]
        assert (await http(endpoint.port, b"nonsense\r\n\r\n"))[0] == 400
        assert (await http(endpoint.port, get("/metrics")))[0] == 200  # still serving
    assert not await connects("127.0.0.1", endpoint.port)  # gone once the block is left
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "dialer-metrics"]


async def test_bound_to_loopback_by_default(metrics: DialerMetrics) -> None:
    other = other_local_address()
    async with serve_metrics(metrics, port=0) as endpoint:
        assert endpoint.host == "127.0.0.1"  # read from the listening socket
        assert await connects("127.0.0.1", endpoint.port)
        # Linux routes all of 127/8 to lo: a socket bound to 0.0.0.0 would accept on 127.0.0.2
        assert not await connects("127.0.0.2", endpoint.port)
        if other is not None:
            assert not await connects(other, endpoint.port)
    # the same checks see a server bound to every interface
    async with serve_metrics(metrics, "0.0.0.0", 0) as endpoint:
        assert endpoint.host == "0.0.0.0"
        assert await connects("127.0.0.2", endpoint.port)
        if other is not None:
            assert (await http(endpoint.port, get("/metrics"), host=other))[0] == 200


async def test_the_engine_serves_its_port_on_the_configured_host(metrics: DialerMetrics) -> None:
    async with contextlib.AsyncExitStack() as stack:
        assert await open_metrics_port(stack, EngineSettings(), metrics) is None  # no port: off
        endpoint = await open_metrics_port(stack, EngineSettings(metrics_port=0), metrics)
        assert endpoint is not None
        assert endpoint.host == "127.0.0.1"
        assert (await http(endpoint.port, get("/metrics")))[0] == 200
        assert ipv4_listening_here(endpoint.port)
        settings = EngineSettings.from_env(
            {"DIALER_METRICS_PORT": "0", "DIALER_METRICS_HOST": "::1"}
        )
        try:
            v6 = await open_metrics_port(stack, settings, metrics)
        except ConfigError:
            v6 = None  # no IPv6 loopback here
        if v6 is not None:
            assert (v6.host, v6.url) == ("::1", f"http://[::1]:{v6.port}/metrics")
            assert (await http(v6.port, get("/metrics"), host="::1"))[0] == 200
            assert not ipv4_listening_here(v6.port)  # IPv6 only
    assert not ipv4_listening_here(endpoint.port)  # closed with the stack


async def test_a_port_it_cannot_listen_on_is_a_config_error(metrics: DialerMetrics) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        async with contextlib.AsyncExitStack() as stack:
            with pytest.raises(
                ConfigError, match=rf"127\.0\.0\.1:{port} \(DIALER_METRICS_HOST/PORT\)"
            ):
                await open_metrics_port(stack, EngineSettings(metrics_port=port), metrics)
            settings = EngineSettings(metrics_port=0, metrics_host="no-such-host.invalid")
            with pytest.raises(ConfigError, match="no-such-host.invalid:0"):
                await open_metrics_port(stack, settings, metrics)


async def test_uvicorn_logs_no_lines_of_its_own(
    metrics: DialerMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with serve_metrics(metrics, port=0) as endpoint:
        assert (await http(endpoint.port, get("/metrics")))[0] == 200
        assert (await http(endpoint.port, get("/nothing")))[0] == 404
    assert [r.getMessage() for r in caplog.records] == [f"metrics on {endpoint.url}"]
