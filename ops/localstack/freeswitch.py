"""One FreeSWITCH instance of a stack, run from the cached build with dirs of its own.

The instance lives in ``<workdir>/freeswitch/`` (conf, log, db, run, temp...). Its
``freeswitch.xml`` is generated here: switch.conf (RTP range), the module list, the loggers,
one sofia profile ``dialer`` on the stack's SIP port with a gateway per trunk (``carrier``
toward the SIPp carrier simulator, ``carrier-dead`` toward a port nothing listens on, and
``carrier-dead-qualified`` toward the same port, pinged: FreeSWITCH marks it DOWN), and
the two files of ``pbx-config/freeswitch/`` included as they are: ``event_socket.conf.xml``
(only its port is changed) and ``dialplan/dialer.xml``. The ESL password is a per-stack secret
given to that file through the preprocessor variable it reads (``dialer_esl_password``).
"""

from __future__ import annotations

import logging
import re
import shutil
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from .fsbuild import FreeSwitchBuild
from .procs import bound_ports, is_alive, spawn, terminate, wait_dead
from .wait import Exited, wait_until

log = logging.getLogger(__name__)

CONFIG_SOURCE = Path(__file__).resolve().parents[2] / "pbx-config" / "freeswitch"
PROFILE = "dialer"
DIRS = ("conf", "log", "db", "run", "temp", "cache", "storage", "recordings", "sounds")
# Loaded in this order (mod_console first so start-up problems are logged); fsbuild.MODULES
# says why each is there.
LOAD = (
    "mod_console",
    "mod_logfile",
    "mod_event_socket",
    "mod_sofia",
    "mod_commands",
    "mod_dptools",
    "mod_dialplan_xml",
    "mod_expr",
    "mod_sndfile",
    "mod_tone_stream",
)
# Built but not loaded: dialer.xml tells a voicemail greeting from a "hello" by its length
# (mod_dptools' detect_audio/detect_silence), so mod_avmd's beep detection has no user. It stays
# in the build because a changed module list changes the build's cache key (a ~6 min rebuild).
NOT_LOADED = ("mod_avmd",)


class FreeSwitchError(RuntimeError):
    """FreeSWITCH would not start, answer or stop."""


PING_S = 5  # s between the OPTIONS pings of a pinged gateway (PJSIP qualify_frequency's twin)


@dataclass(frozen=True, slots=True)
class FreeSwitchLayout:
    build: FreeSwitchBuild
    dir: Path  # <stack workdir>/freeswitch
    sip_port: int
    esl_port: int
    esl_password: str
    rtp_start: int
    rtp_end: int
    gateways: tuple[tuple[str, int], ...]  # (trunk name, port on 127.0.0.1)
    # gateways FreeSWITCH pings (SIP OPTIONS every PING_S): a failed ping marks one DOWN,
    # and FreeSWITCH then refuses to dial it; its state changes are sofia::gateway_state events
    pinged: tuple[str, ...] = ()

    def path(self, name: str) -> Path:
        return self.dir / name

    def argv(self) -> list[str]:
        argv = [str(self.build.binary), "-nf", "-nc", "-nonat", "-np"]
        for name in DIRS:
            argv += [f"-{name}", str(self.path(name))]
        return argv


def render_config(layout: FreeSwitchLayout, source: Path = CONFIG_SOURCE) -> Path:
    """Write a fresh ``conf/`` (mode 0700: it holds the ESL password)."""
    conf = layout.path("conf")
    if conf.exists():
        shutil.rmtree(conf)
    for name in DIRS:
        layout.path(name).mkdir(parents=True, exist_ok=True)
    conf.chmod(0o700)
    (conf / "event_socket.conf.xml").write_text(
        event_socket_conf(
            (source / "autoload_configs" / "event_socket.conf.xml").read_text(), layout.esl_port
        )  # fmt: skip
    )
    dialplan = (source / "dialplan" / "dialer.xml").read_text()
    (conf / "dialer.xml").write_text(re.sub(r"^<\?xml[^>]*\?>\s*", "", dialplan))
    (conf / "freeswitch.xml").write_text(freeswitch_xml(layout))
    return conf


def event_socket_conf(text: str, port: int) -> str:
    """pbx-config's event_socket.conf.xml on ``port`` instead of 8021 (nothing else changed)."""
    out, n = re.subn(r'(<param name="listen-port" value=")\d+(")', rf"\g<1>{port}\g<2>", text)
    if n != 1:
        raise FreeSwitchError("event_socket.conf.xml: no single listen-port param to set")
    return out


def freeswitch_xml(layout: FreeSwitchLayout) -> str:
    ping = f"""
          <param name="ping" value="{PING_S}"/>
          <param name="ping-min" value="1"/>
          <param name="ping-max" value="1"/>"""
    gateways = "\n".join(
        f"""        <gateway name={quoteattr(name)}>
          <param name="proxy" value="127.0.0.1:{port}"/>
          <param name="register" value="false"/>
          <param name="username" value="dialer"/>
          <param name="password" value="unused"/>
          <param name="caller-id-in-from" value="true"/>{ping if name in layout.pinged else ""}
        </gateway>"""
        for name, port in layout.gateways
    )
    modules = "\n".join(f'      <load module="{m}"/>' for m in LOAD)
    log_dir = layout.path("log")
    return f"""<?xml version="1.0"?>
<document type="freeswitch/xml">
  <X-PRE-PROCESS cmd="set" data="dialer_esl_password={layout.esl_password}"/>
  <section name="configuration" description="generated by ops/localstack/freeswitch.py">
  <configuration name="switch.conf">
    <settings>
      <param name="max-sessions" value="1000"/>
      <param name="sessions-per-second" value="200"/>
      <param name="loglevel" value="info"/>
      <param name="rtp-start-port" value="{layout.rtp_start}"/>
      <param name="rtp-end-port" value="{layout.rtp_end}"/>
      <param name="dump-cores" value="no"/>
    </settings>
  </configuration>
  <configuration name="modules.conf">
    <modules>
{modules}
    </modules>
  </configuration>
  <configuration name="console.conf">
    <mappings><map name="all" value="console,info,notice,warning,err,crit,alert"/></mappings>
    <settings>
      <param name="colorize" value="false"/>
      <param name="loglevel" value="info"/>
    </settings>
  </configuration>
  <configuration name="logfile.conf">
    <profiles>
      <profile name="default">
        <settings>
          <param name="logfile" value="{log_dir}/freeswitch.log"/>
          <param name="rollover" value="10485760"/>
          <param name="maximum-rotate" value="2"/>
        </settings>
        <mappings><map name="all" value="info,notice,warning,err,crit,alert"/></mappings>
      </profile>
    </profiles>
  </configuration>
  <X-PRE-PROCESS cmd="include" data="event_socket.conf.xml"/>
  <configuration name="sofia.conf">
    <global_settings>
      <param name="log-level" value="0"/>
    </global_settings>
    <profiles>
      <profile name="{PROFILE}">
        <gateways>
{gateways}
        </gateways>
        <settings>
          <param name="sip-ip" value="127.0.0.1"/>
          <param name="sip-port" value="{layout.sip_port}"/>
          <param name="rtp-ip" value="127.0.0.1"/>
          <param name="ext-rtp-ip" value="127.0.0.1"/>
          <param name="ext-sip-ip" value="127.0.0.1"/>
          <param name="context" value="dialer-inbound"/>
          <param name="dialplan" value="XML"/>
          <param name="auth-calls" value="false"/>
          <param name="disable-register" value="true"/>
          <param name="codec-prefs" value="PCMU,PCMA"/>
          <param name="inbound-codec-prefs" value="PCMU,PCMA"/>
          <param name="outbound-codec-prefs" value="PCMU,PCMA"/>
          <param name="rtp-timeout-sec" value="300"/>
          <param name="manage-presence" value="false"/>
        </settings>
      </profile>
    </profiles>
  </configuration>
  </section>
  <section name="dialplan" description="pbx-config/freeswitch/dialplan/dialer.xml">
    <X-PRE-PROCESS cmd="include" data="dialer.xml"/>
  </section>
</document>
"""


def start(layout: FreeSwitchLayout) -> int:
    """Start FreeSWITCH in the foreground (as a detached child); returns its pid."""
    return spawn(layout.argv(), log_file=layout.path("log") / "console.log", cwd=layout.dir)


def owns(layout: FreeSwitchLayout, args: str) -> bool:
    """``args`` (a joined command line) is this instance's FreeSWITCH."""
    return str(layout.build.binary) in args and f"-conf {layout.path('conf')}" in args


# -- ESL probes (a raw socket, so readiness does not depend on the code under test) -------------


def esl_api(port: int, password: str, command: str, *, timeout: float = 3.0) -> str | None:
    """``auth`` then ``api <command>``: the body, or None if the password is refused."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        reader = _Reader(s)
        if reader.message()[0].get("Content-Type") != "auth/request":
            raise FreeSwitchError("ESL greeting is not auth/request")
        s.sendall(f"auth {password}\n\n".encode())
        headers, _ = reader.message()
        if not headers.get("Reply-Text", "").startswith("+OK"):
            return None
        s.sendall(f"api {command}\n\n".encode())
        headers, body = reader.message()
        s.sendall(b"exit\n\n")
        return body


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("ESL connection closed")
        self._buf += chunk

    def message(self) -> tuple[dict[str, str], str]:
        while b"\n\n" not in self._buf:
            self._fill()
        head, self._buf = self._buf.split(b"\n\n", 1)
        headers = dict(line.split(": ", 1) for line in head.decode().splitlines() if ": " in line)
        length = int(headers.get("Content-Length", "0"))
        while len(self._buf) < length:
            self._fill()
        body, self._buf = self._buf[:length], self._buf[length:]
        return headers, body.decode(errors="replace")


def profile_running(body: str, profile: str = PROFILE) -> bool:
    """``sofia status`` lists the profile as RUNNING (``sofia status profile <name>`` prints
    no state, so the overall listing is what is read)."""
    return any(
        line.split()[:2] == [profile, "profile"] and "RUNNING" in line for line in body.splitlines()
    )


def gateways_listed(body: str, names: Iterable[str], profile: str = PROFILE) -> bool:
    """``sofia status`` lists every gateway of ``names`` on the profile (``dialer::carrier``):
    the trunks the dialer's ``sofia/gateway/<trunk>/...`` dial strings name exist."""
    listed = {
        words[0]
        for words in (line.split() for line in body.splitlines())
        if words[1:2] == ["gateway"]
    }
    return all(f"{profile}::{name}" in listed for name in names)


def ready_now(layout: FreeSwitchLayout) -> bool:
    """ESL accepts the password, the sofia profile is RUNNING and its gateways are there."""
    try:
        body = esl_api(layout.esl_port, layout.esl_password, "sofia status")
    except OSError:
        return False
    gateways = [name for name, _ in layout.gateways]
    return body is not None and profile_running(body) and gateways_listed(body, gateways)


def wait_ready(layout: FreeSwitchLayout, pid: int, *, timeout: float = 60.0) -> None:
    """Poll until FreeSWITCH has its ports, ESL auth works and the profile is RUNNING."""

    def check_alive() -> None:
        if not is_alive(pid):
            raise Exited(
                f"FreeSWITCH exited during start-up (see {layout.path('log')}/console.log)"
            )

    def esl_bound() -> bool:
        check_alive()
        return layout.esl_port in bound_ports(pid)["tcp"]

    def esl_auth() -> bool:
        check_alive()
        body = esl_api(layout.esl_port, layout.esl_password, "status")
        if body is None:
            raise FreeSwitchError("FreeSWITCH refused the stack's ESL password")
        return "is ready" in body

    def sofia_running() -> bool:
        check_alive()
        return ready_now(layout)

    wait_until(esl_bound, timeout=timeout, what="FreeSWITCH ESL port", interval=0.1)
    wait_until(esl_auth, timeout=timeout, what="FreeSWITCH ESL auth", interval=0.1)
    what = f"sofia profile {PROFILE} RUNNING with its gateways"
    wait_until(sofia_running, timeout=timeout, what=what, interval=0.1)


def shutdown_now(layout: FreeSwitchLayout, pid: int | None) -> None:
    """Stop FreeSWITCH at once, for a stack's teardown: ``fsctl shutdown now`` exits without
    unloading the modules (about 15 ms here, where SIGTERM takes 4-6 s); live calls are cut
    without a BYE. Falls back to :func:`stop` if ESL does not take the command."""
    if pid is None or not is_alive(pid):
        return
    try:
        esl_api(layout.esl_port, layout.esl_password, "fsctl shutdown now", timeout=2.0)
    except (OSError, FreeSwitchError):
        pass  # the connection closes as FreeSWITCH exits, before any reply
    if not wait_dead(pid, 2.0):
        stop(pid)


def stop(pid: int | None, *, timeout: float = 15.0) -> None:
    """SIGTERM (a clean shutdown takes 4-6 s), SIGKILL after ``timeout``."""
    if is_alive(pid):
        log.info("stopping FreeSWITCH pid %s", pid)
    terminate(pid, timeout=timeout)
