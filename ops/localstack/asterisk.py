"""One Asterisk instance of a stack, run from the shared root with a config dir of its own.

The configuration in ``pbx-config/asterisk/`` is copied (never edited in place) into
``<root>/etc/dialer-<name>/`` and its ``${STACK_...}`` placeholders are filled in with
:class:`string.Template`; dialplan variables such as ``${AMDSTATUS}`` are left alone. Each
instance has its own run/spool/lib/log directories inside the root, its own AMI, SIP, HTTP
ports and RTP range, so several run side by side.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .procs import bound_ports, is_alive, spawn, terminate, wait_dead
from .templates import render
from .wait import Exited, wait_until

log = logging.getLogger(__name__)

CONFIG_SOURCE = Path(__file__).resolve().parents[2] / "pbx-config" / "asterisk"

# Modules the stack cannot work without; start-up fails loudly if one of them did not load.
REQUIRED_MODULES = (
    "chan_pjsip",
    "res_pjsip",
    "res_pjsip_session",
    "res_rtp_asterisk",
    "pbx_config",
    "codec_ulaw",
    "app_amd",
    "app_echo",
    "app_read",
    "app_userevent",
    "func_timeout",
)


class AsteriskError(RuntimeError):
    """Asterisk would not start, answer or stop."""


@dataclass(frozen=True, slots=True)
class AsteriskLayout:
    """Where one instance lives inside the root, and its ports."""

    root: Path
    name: str
    module_dir: str
    ami_port: int
    ami_username: str
    ami_secret: str
    sip_port: int
    sipp_port: int
    dead_port: int
    http_port: int
    rtp_start: int
    rtp_end: int

    @property
    def conf_dir(self) -> str:
        """The config dir as seen inside the root (``/etc/dialer-<name>``)."""
        return f"/etc/dialer-{self.name}"

    @property
    def data_dir(self) -> str:
        """The instance's run/spool/lib/log parent inside the root."""
        return f"/var/lib/dialer-{self.name}"

    @property
    def conf_file(self) -> str:
        return f"{self.conf_dir}/asterisk.conf"

    def host_path(self, inner: str) -> Path:
        return self.root / inner.lstrip("/")

    def values(self) -> dict[str, str]:
        data = self.data_dir
        return {
            "STACK_NAME": self.name,
            "STACK_CONF_DIR": self.conf_dir,
            "STACK_MOD_DIR": self.module_dir,
            "STACK_VARLIB_DIR": f"{data}/lib",
            "STACK_SPOOL_DIR": f"{data}/spool",
            "STACK_RUN_DIR": f"{data}/run",
            "STACK_LOG_DIR": f"{data}/log",
            "STACK_AMI_PORT": str(self.ami_port),
            "STACK_AMI_USER": self.ami_username,
            "STACK_AMI_SECRET": self.ami_secret,
            "STACK_SIP_PORT": str(self.sip_port),
            "STACK_SIPP_PORT": str(self.sipp_port),
            "STACK_DEAD_PORT": str(self.dead_port),
            "STACK_HTTP_PORT": str(self.http_port),
            "STACK_RTP_START": str(self.rtp_start),
            "STACK_RTP_END": str(self.rtp_end),
        }


def render_config(layout: AsteriskLayout, source: Path = CONFIG_SOURCE) -> Path:
    """Write a fresh rendered copy of ``source/*.conf`` into the instance's config dir."""
    conf = layout.host_path(layout.conf_dir)
    if conf.exists():
        shutil.rmtree(conf)
    conf.mkdir(parents=True)
    values = layout.values()
    for src in sorted(source.glob("*.conf")):
        (conf / src.name).write_text(render(src.read_text(), values, source=src.name))
    (conf / "manager.conf").chmod(0o600)
    for key in ("STACK_VARLIB_DIR", "STACK_SPOOL_DIR", "STACK_RUN_DIR", "STACK_LOG_DIR"):
        layout.host_path(values[key]).mkdir(parents=True, exist_ok=True)
    layout.host_path(values["STACK_VARLIB_DIR"] + "/cache").mkdir(exist_ok=True)
    return conf


def start(layout: AsteriskLayout, *, log_file: Path) -> int:
    """Start Asterisk in the foreground (as a detached child); returns its pid."""
    argv = ["chroot", str(layout.root), "asterisk", "-f", "-C", layout.conf_file]
    return spawn(argv, log_file=log_file)


def cli(layout: AsteriskLayout, command: str, *, timeout: float = 10.0) -> str:
    """Run one CLI command in the running instance (``asterisk -rx``) and return its output."""
    argv = ["chroot", str(layout.root), "asterisk", "-C", layout.conf_file, "-rx", command]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AsteriskError(f"asterisk -rx {command!r} failed: {done.stderr.strip()}")
    return done.stdout


def ami_login_ok(host: str, port: int, username: str, secret: str, timeout: float = 2.0) -> bool:
    """Log in to AMI with a raw socket; True on ``Response: Success``."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(1024)
            if not chunk:
                return False
            buf += chunk
        s.sendall(
            f"Action: Login\r\nActionID: probe\r\nUsername: {username}\r\n"
            f"Secret: {secret}\r\nEvents: off\r\n\r\n".encode()
        )
        buf = buf.split(b"\r\n", 1)[1]
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                return False
            buf += chunk
        ok = b"Response: Success" in buf.split(b"\r\n\r\n", 1)[0]
        s.sendall(b"Action: Logoff\r\n\r\n")
        return ok


def wait_ready(layout: AsteriskLayout, pid: int, *, timeout: float = 60.0) -> None:
    """Poll until the CLI answers, PJSIP has the carrier endpoint and AMI logins work."""

    def check_alive() -> None:
        if not is_alive(pid):
            raise Exited(f"Asterisk of stack {layout.name!r} exited during start-up")

    def owns_ports() -> bool:
        check_alive()
        ports = bound_ports(pid)
        return {layout.ami_port, layout.http_port} <= ports["tcp"] and layout.sip_port in ports[
            "udp"
        ]

    def cli_ready() -> bool:
        check_alive()
        return "fully booted" in cli(layout, "core waitfullybooted", timeout=timeout).lower()

    def modules_loaded() -> bool:
        check_alive()
        running = {
            line.split()[0].removesuffix(".so")
            for line in cli(layout, "module show").splitlines()
            if " Running " in line
        }
        missing = [m for m in REQUIRED_MODULES if m not in running]
        if missing:
            raise AsteriskError(f"Asterisk modules not loaded: {missing} (see messages.log)")
        return True

    def endpoint_ready() -> bool:
        check_alive()
        return "Endpoint:  carrier " in cli(layout, "pjsip show endpoint carrier")

    def ami_ready() -> bool:
        check_alive()
        return ami_login_ok("127.0.0.1", layout.ami_port, layout.ami_username, layout.ami_secret)

    wait_until(cli_ready, timeout=timeout, what="Asterisk CLI", interval=0.1)
    modules_loaded()
    wait_until(owns_ports, timeout=timeout, what="Asterisk's AMI, HTTP and SIP ports")
    wait_until(endpoint_ready, timeout=timeout, what="PJSIP endpoint carrier")
    wait_until(ami_ready, timeout=timeout, what=f"AMI login on {layout.ami_port}")


def stop(layout: AsteriskLayout, pid: int | None, *, timeout: float = 10.0) -> None:
    """``core stop now`` through the CLI, then SIGTERM/SIGKILL if it is still there."""
    if not is_alive(pid):
        return
    assert pid is not None
    try:
        cli(layout, "core stop now", timeout=timeout)
    except (AsteriskError, subprocess.TimeoutExpired) as exc:
        log.warning("core stop now failed for stack %s: %s", layout.name, exc)
    if not wait_dead(pid, timeout):
        log.warning("Asterisk of stack %s ignored core stop now; terminating", layout.name)
        terminate(pid)


def remove_instance_dirs(layout: AsteriskLayout, keep_log: Path | None = None) -> None:
    """Delete the instance's config and data dirs from the root (after copying its log)."""
    data = layout.host_path(layout.data_dir)
    messages = data / "log" / "messages.log"
    if keep_log is not None and messages.is_file():
        keep_log.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(messages, keep_log)
    shutil.rmtree(layout.host_path(layout.conf_dir), ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
