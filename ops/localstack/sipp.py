"""The carrier simulator: one SIPp UAS with one scenario that branches on the dialed number.

The scenario template ``loadtest/sipp/carrier.xml.in`` is rendered into the stack's work dir
with the absolute paths of its pcaps (SIPp reads neither a pcap path nor a response code from
``-key``). Speech pcaps are synthesised once per work dir (:mod:`.audio`); the RFC 4733 DTMF
pcaps come with the Debian ``sip-tester`` package.
"""

from __future__ import annotations

import shutil
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from .audio import HELLO, VOICEMAIL, VOICEMAIL_BEEP, prompt_pcap
from .procs import bound_ports, is_alive, spawn, terminate
from .templates import render
from .wait import Exited, wait_until

SCENARIO_TEMPLATE = Path(__file__).resolve().parents[2] / "loadtest" / "sipp" / "carrier.xml.in"
SIPP_SHARE = Path("/usr/share/sip-tester")


class SippError(RuntimeError):
    """SIPp would not start or answer."""


@dataclass(frozen=True, slots=True)
class SippLayout:
    workdir: Path  # <stack workdir>/sipp
    sip_port: int
    media_port: int
    control_port: int

    @property
    def scenario(self) -> Path:
        return self.workdir / "carrier.xml"

    @property
    def from_log(self) -> Path:
        """One line per INVITE: ``INVITE to=<dialed user> from=<From user> ...``."""
        return self.workdir / "from.log"


def render_scenario(layout: SippLayout, template: Path = SCENARIO_TEMPLATE) -> Path:
    dtmf = {d: SIPP_SHARE / f"dtmf_2833_{d}.pcap" for d in ("9", "2", "1", "3")}
    for path in dtmf.values():
        if not path.is_file():
            raise SippError(f"{path} missing: apt-get install sip-tester")
    audio = layout.workdir / "audio"
    values = {
        "STACK_HELLO_PCAP": str(prompt_pcap(HELLO, audio)),
        "STACK_VOICEMAIL_PCAP": str(prompt_pcap(VOICEMAIL, audio)),
        "STACK_VOICEMAIL_BEEP_PCAP": str(prompt_pcap(VOICEMAIL_BEEP, audio)),
        "STACK_DTMF9_PCAP": str(dtmf["9"]),
        "STACK_DTMF2_PCAP": str(dtmf["2"]),
        "STACK_DTMF1_PCAP": str(dtmf["1"]),
        "STACK_DTMF3_PCAP": str(dtmf["3"]),
    }
    layout.workdir.mkdir(parents=True, exist_ok=True)
    layout.scenario.write_text(render(template.read_text(), values, source=template.name))
    return layout.scenario


def start(layout: SippLayout) -> int:
    """Start the UAS (a detached process); returns its pid."""
    if shutil.which("sipp") is None:
        raise SippError("sipp not found: apt-get install sip-tester")
    argv = [
        "sipp",
        "-sf", str(layout.scenario),
        "-i", "127.0.0.1",
        "-p", str(layout.sip_port),
        "-mi", "127.0.0.1",
        "-mp", str(layout.media_port),
        "-cp", str(layout.control_port),
        "-aa",  # 200 OK to OPTIONS/INFO/NOTIFY/UPDATE: the readiness probe is an OPTIONS
        "-nostdin",
        "-trace_err",
        "-error_file", str(layout.workdir / "errors.log"),
        "-max_log_size", "10000000",
        "-trace_logs",  # the scenario's <log> actions: the From user of each INVITE
        "-log_file", str(layout.from_log),
    ]  # fmt: skip
    return spawn(argv, log_file=layout.workdir / "sipp.log", cwd=layout.workdir)


def options_ok(port: int, timeout: float = 0.5) -> bool:
    """Send a SIP OPTIONS to 127.0.0.1:``port``; True if a ``SIP/2.0 200`` comes back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        me = s.getsockname()[1]
        tag = uuid.uuid4().hex[:12]
        msg = (
            f"OPTIONS sip:probe@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{tag}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@127.0.0.1:{me}>;tag={tag}\r\n"
            f"To: <sip:probe@127.0.0.1:{port}>\r\n"
            f"Call-ID: probe-{tag}@127.0.0.1\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        s.sendto(msg.encode(), ("127.0.0.1", port))
        try:
            data = s.recv(4096)
        except TimeoutError:
            return False
        return data.startswith(b"SIP/2.0 200")


def wait_ready(layout: SippLayout, pid: int, *, timeout: float = 15.0) -> None:
    """Poll until SIPp holds its SIP and media ports and answers an OPTIONS."""

    def ready() -> bool:
        if not is_alive(pid):
            log = (layout.workdir / "sipp.log").read_text(errors="replace")[-1500:]
            raise Exited(f"SIPp exited during start-up: {log}")
        udp = bound_ports(pid)["udp"]
        if not {layout.sip_port, layout.media_port} <= udp:
            return False
        return options_ok(layout.sip_port)

    wait_until(ready, timeout=timeout, what=f"SIPp carrier simulator on {layout.sip_port}")


def stop(pid: int | None) -> None:
    terminate(pid, timeout=5.0)
