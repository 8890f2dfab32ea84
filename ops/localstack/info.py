"""What a running stack is (``<workdir>/stack.json``): :class:`StackInfo`, read and written here.

:mod:`.stack` brings stacks up and down; this module only describes one: where everything is,
which switches it runs (Asterisk, FreeSWITCH or both) and how to reach them.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from . import asterisk, freeswitch, fsbuild
from .redis_server import RedisUsers, url

TRUNK = "carrier"
DEAD_TRUNK = "carrier-dead"
# the dead port again, qualified (Asterisk) / pinged (FreeSWITCH): the switch says it is down
QUALIFIED_TRUNK = "carrier-dead-qualified"
ORIGINATE_CONTEXT = "dialer-outbound"
ORIGINATE_EXTEN = "s"
AMI_USERNAME = "dialer"
COMPONENTS = ("redis", "sipp")  # started first, then the switches (StackInfo.components)


class StackError(RuntimeError):
    """The stack could not be brought up."""


@dataclass(frozen=True, slots=True)
class StackInfo:
    """A running stack: where everything is and how to reach it (``<workdir>/stack.json``)."""

    name: str
    workdir: Path
    root: Path  # the Asterisk root (chroot); Path("") when the stack runs no Asterisk
    conf_dir: str  # Asterisk's config dir inside the root, e.g. /etc/dialer-default
    asterisk_version: str
    redis_url: str
    redis_port: int
    ami_host: str
    ami_port: int
    ami_username: str
    ami_secret: str
    sip_port: int  # Asterisk's PJSIP UDP transport
    sipp_port: int  # the carrier simulator (SIPp UAS)
    sipp_media_port: int
    sipp_control_port: int
    dead_port: int  # where the dead trunk points: nothing listens there
    http_port: int  # Asterisk HTTP: /metrics (res_prometheus)
    rtp_start: int
    rtp_end: int
    redis_pid: int
    asterisk_pid: int
    sipp_pid: int
    # The Redis users' passwords ("": a stack.json written before Redis had an ACL).
    redis_secret: str = ""
    redis_admin_secret: str = ""
    trunk: str = TRUNK
    dead_trunk: str = DEAD_TRUNK
    originate_context: str = ORIGINATE_CONTEXT
    originate_exten: str = ORIGINATE_EXTEN
    # FreeSWITCH (``up --pbx freeswitch|both``; 0 / "": the stack runs none).
    freeswitch_pid: int = 0
    freeswitch_prefix: str = ""
    freeswitch_sip_port: int = 0
    esl_port: int = 0
    esl_password: str = ""
    freeswitch_rtp_start: int = 0
    freeswitch_rtp_end: int = 0

    @property
    def with_freeswitch(self) -> bool:
        return self.esl_port != 0

    @property
    def with_asterisk(self) -> bool:
        return self.ami_port != 0

    @property
    def pbx(self) -> str:
        """What the stack runs: ``asterisk``, ``freeswitch`` or ``both``."""
        if self.with_asterisk and self.with_freeswitch:
            return "both"
        return "asterisk" if self.with_asterisk else "freeswitch"

    @property
    def esl_url(self) -> str:
        return f"esl://:{self.esl_password}@127.0.0.1:{self.esl_port}"

    @property
    def components(self) -> tuple[str, ...]:
        """What runs, in start order (the switches last: their trunks point at SIPp)."""
        return (
            COMPONENTS
            + (("asterisk",) if self.with_asterisk else ())
            + (("freeswitch",) if self.with_freeswitch else ())
        )

    @property
    def ami_url(self) -> str:
        if not self.with_asterisk:
            raise StackError(f"stack {self.name} runs no Asterisk (--pbx {self.pbx})")
        return f"ami://{self.ami_username}:{self.ami_secret}@{self.ami_host}:{self.ami_port}"

    @property
    def ami_watch_username(self) -> str:
        """The watching AMI user of manager.conf: the dialer's privileges, and it also receives
        Newchannel and Newstate (Up), which the dialer's own user is spared."""
        return f"{self.ami_username}-watch"

    @property
    def redis_users(self) -> RedisUsers | None:
        if not self.redis_secret:
            return None
        return RedisUsers(dialer_secret=self.redis_secret, admin_secret=self.redis_admin_secret)

    @property
    def redis_admin_url(self) -> str:
        """Every command (FLUSHDB, BGREWRITEAOF, INFO, CONFIG): for people and the benchmarks."""
        users = self.redis_users
        if users is None:
            return self.redis_url
        return url(self.redis_port, "admin", users.admin_secret)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/metrics"

    @property
    def host_conf_dir(self) -> Path:
        return self.root / self.conf_dir.lstrip("/")

    @property
    def pids(self) -> dict[str, int]:
        pids = {"redis": self.redis_pid, "sipp": self.sipp_pid}
        if self.with_asterisk:
            pids["asterisk"] = self.asterisk_pid
        if self.with_freeswitch:
            pids["freeswitch"] = self.freeswitch_pid
        return pids

    def asterisk_cli(self, cmd: str, *, timeout: float = 10.0) -> str:
        """``chroot ROOT asterisk -C CONF -rx CMD``: the output of one CLI command."""
        if not self.with_asterisk:
            raise StackError(f"stack {self.name} runs no Asterisk (--pbx {self.pbx})")
        return asterisk.cli(self._layout(), cmd, timeout=timeout)

    def cli_command(self, cmd: str) -> str:
        """The shell command that runs ``cmd`` in this stack's Asterisk CLI (for people)."""
        if not self.with_asterisk:
            raise StackError(f"stack {self.name} runs no Asterisk (--pbx {self.pbx})")
        conf = f"{self.conf_dir}/asterisk.conf"
        return shlex.join(["chroot", str(self.root), "asterisk", "-C", conf, "-rx", cmd])

    def fs_cli_command(self, cmd: str) -> str:
        """The shell command that runs ``cmd`` in this stack's FreeSWITCH (fs_cli, for people)."""
        if not self.with_freeswitch:
            raise StackError(f"stack {self.name} runs no FreeSWITCH (--pbx {self.pbx})")
        fs_cli = str(Path(self.freeswitch_prefix) / "bin" / "fs_cli")
        where = ["-H", "127.0.0.1", "-P", str(self.esl_port), "-p", self.esl_password]
        return shlex.join([fs_cli, *where, "-x", cmd])

    def env(self, pbx: str | None = None) -> dict[str, str]:
        """Environment variables for the dialer and the tools (``python -m ops.localstack env``).

        ``pbx`` (default: Asterisk if the stack runs one, else FreeSWITCH) picks the switch the
        dialer is pointed at: DIALER_AMI_URL or DIALER_ESL_URL (an engine takes one)."""
        pbx = pbx or ("asterisk" if self.with_asterisk else "freeswitch")
        if pbx == "freeswitch" and not self.with_freeswitch:
            raise StackError(f"stack {self.name} runs no FreeSWITCH: up --pbx freeswitch|both")
        if pbx == "asterisk" and not self.with_asterisk:
            raise StackError(f"stack {self.name} runs no Asterisk: up --pbx asterisk|both")
        if pbx not in ("asterisk", "freeswitch"):
            raise StackError(f"pbx must be asterisk or freeswitch, not {pbx!r}")
        switch = (
            {"DIALER_ESL_URL": self.esl_url}
            if pbx == "freeswitch"
            else {"DIALER_AMI_URL": self.ami_url}
        )
        env = {
            "DIALER_REDIS_URL": self.redis_url,
            **switch,
            "DIALER_TRUNK": self.trunk,
            "DIALER_DEAD_TRUNK": self.dead_trunk,
            "DIALER_STACK_NAME": self.name,
            "DIALER_STACK_WORKDIR": str(self.workdir),
            "DIALER_STACK_PBX": self.pbx,
            "DIALER_SIPP_PORT": str(self.sipp_port),
        }
        if self.with_asterisk:
            env |= {
                "DIALER_ASTERISK_ROOT": str(self.root),
                "DIALER_ASTERISK_CONF": f"{self.conf_dir}/asterisk.conf",
                "DIALER_SIP_PORT": str(self.sip_port),
                "DIALER_ASTERISK_METRICS_URL": self.metrics_url,
            }
        if self.with_freeswitch:
            env["DIALER_FREESWITCH_SIP_PORT"] = str(self.freeswitch_sip_port)
        return env

    def to_json(self) -> str:
        data = asdict(self)
        data["workdir"] = str(self.workdir)
        data["root"] = str(self.root) if self.with_asterisk else ""
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> StackInfo:
        data = json.loads(text)
        data["workdir"] = Path(data["workdir"])
        data["root"] = Path(data["root"])
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def freeswitch_layout(self) -> freeswitch.FreeSwitchLayout:
        prefix = Path(self.freeswitch_prefix)
        return freeswitch.FreeSwitchLayout(
            build=fsbuild.FreeSwitchBuild(prefix=prefix, version=""),
            dir=self.workdir / "freeswitch",
            sip_port=self.freeswitch_sip_port,
            esl_port=self.esl_port,
            esl_password=self.esl_password,
            rtp_start=self.freeswitch_rtp_start,
            rtp_end=self.freeswitch_rtp_end,
            gateways=(
                (self.trunk, self.sipp_port),
                (self.dead_trunk, self.dead_port),
                (QUALIFIED_TRUNK, self.dead_port),
            ),
            pinged=(QUALIFIED_TRUNK,),
        )

    def _layout(self) -> asterisk.AsteriskLayout:
        return asterisk.AsteriskLayout(
            root=self.root,
            name=self.name,
            module_dir="",
            ami_port=self.ami_port,
            ami_username=self.ami_username,
            ami_secret=self.ami_secret,
            sip_port=self.sip_port,
            sipp_port=self.sipp_port,
            dead_port=self.dead_port,
            http_port=self.http_port,
            rtp_start=self.rtp_start,
            rtp_end=self.rtp_end,
        )


def load(workdir: Path) -> StackInfo | None:
    path = workdir / "stack.json"
    if not path.is_file():
        return None
    return StackInfo.from_json(path.read_text())


def save(info: StackInfo) -> None:
    """Write ``stack.json`` (mode 0600: it holds the secrets), atomically."""
    path = info.workdir / "stack.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(info.to_json())
    tmp.chmod(0o600)
    tmp.rename(path)
