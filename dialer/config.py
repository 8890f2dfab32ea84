"""Typed engine settings, built from the environment (12-factor) or passed in directly."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from dialer.domain.breaker import BreakerLimits
from dialer.domain.campaign import UNLIMITED, TrunkLimits
from dialer.domain.dialplan import CONTEXT_NAME, DEFAULT_CONTEXTS
from dialer.errors import ConfigError, ValidationError
from dialer.store.connection import is_sentinel_url, parse_sentinel_url


@dataclass(frozen=True, slots=True)
class EngineSettings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    namespace: str = "dialer"
    ami_url: str | None = None  # ami://user:secret@host:port (Asterisk)
    esl_url: str | None = None  # esl://:password@host:8021 (FreeSWITCH)
    engine_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    lease_ms: int = 15_000  # a crashed engine's calls are adopted or settled after this
    renew_interval: float | None = None  # default: a third of the lease
    supervise_interval: float = 0.25  # how often campaigns are looked for
    full_poll: float = 0.05  # at the concurrency cap: re-check at least this often
    # CPS windows are held this much longer than their nominal length so that the jitter
    # between a grant and the PBX creating the channel never shows limit+1 calls in a second.
    # None (the default): the margin follows the measured grant-to-channel delays
    # (dialer.engine.pacing.GrantDelay: their spread by the switch's stamps, else the
    # grant-to-originate delay plus rate_switch_ms; 40 until measured).
    # DIALER_RATE_MARGIN_MS fixes it instead, at margin/1000 of the rate (40: 0.96 of it).
    rate_margin_ms: int | None = None
    # With the adaptive margin: the switch's part of the delay, which the engine does not see
    # (DIALER_RATE_SWITCH_MS; 10 ms covers a quiet Asterisk here: raise it for a switch that
    # creates its channels later, at switch_ms/1000 of the rate).
    rate_switch_ms: int = 10
    # With the adaptive margin: follow the switch's own channel stamps (Newchannel Timestamp,
    # CHANNEL_CREATE Event-Date-Timestamp) when they come, the engine's part + rate_switch_ms
    # when they do not. DIALER_RATE_STAMPS on / off; unset (None): Asterisk's stamps only
    # (dialer.engine.pacing.stamps_followed: FreeSWITCH's event clock jitters).
    rate_stamps: bool | None = None
    # Pacing: at most this many milliseconds' worth of the CPS starts at once (340 cps, 50 ms:
    # 17 per 50 ms), instead of a burst of a whole second's calls at the top of each window.
    # It also sets the claims: one Redis round trip per step and campaign, 1000 / pace_ms a
    # second. 100 ms halves the engine's wake-ups and round trips (about 20 % less CPU per
    # call) but reaches ~0.6 % less of the CPS, as the CPS window binds more often
    # (loadtest/README.md).
    pace_ms: int = 50
    # At most this many contacts per claim round trip: above a step's calls plus what a late
    # claim catches up (2 steps' worth: 64 covers 640 cps at 50 ms in one round trip).
    claim_batch: int = 64
    # Results and "originated" marks wait up to this long to share one Redis round trip,
    # usually a claim's (never while a campaign waits at its channel cap for a result to free
    # a channel).
    write_linger_ms: int = 50
    pbx_auto_resume: bool = True  # resume campaigns paused by a PBX outage when it is back
    metrics_port: int | None = None  # serve /metrics here (the API serves it too)
    # The address the metrics port listens on: loopback unless a scraper on another host (or
    # in another network namespace) must reach it, then 0.0.0.0 / :: or one interface's address.
    metrics_host: str = "127.0.0.1"
    # Each trunk's limits (DIALER_TRUNKS), shared by its campaigns and engines. A trunk not
    # listed has none: only its campaigns' own limits apply (TrunkLimits.unlimited).
    trunks: Mapping[str, TrunkLimits] = field(default_factory=dict)
    # The dialplan contexts a campaign may send its answered calls to (DIALER_CONTEXTS):
    # checked when a campaign is created or edited, and again before the engine dials it.
    contexts: frozenset[str] = DEFAULT_CONTEXTS
    # Each trunk's circuit breaker (dialer.domain.breaker), fed by this engine's results:
    # None (the default) feeds none. DIALER_BREAKER=on (the defaults), or any of the
    # DIALER_BREAKER_* values (_BREAKER_ENV). Every engine obeys an open breaker whatever this
    # says (claim.lua).
    breaker: BreakerLimits | None = None
    # The PBX node this engine's adapter drives (DIALER_NODE): kept in every call it claims,
    # so that reconciliation, adoption and hang-up act only on the calls of its own nodes.
    # "" (the default): derived from the PBX URL, e.g. "asterisk-127.0.0.1-5038".
    node: str = ""

    def __post_init__(self) -> None:
        if not self.node:
            object.__setattr__(self, "node", default_node(self.ami_url, self.esl_url))
        if not NODE_NAME.fullmatch(self.node):
            raise ConfigError(f"node must match {NODE_NAME.pattern}, got {self.node[:70]!r}")
        if is_sentinel_url(self.redis_url):
            try:
                parse_sentinel_url(self.redis_url)
            except ValueError as exc:
                raise ConfigError(f"DIALER_REDIS_URL: {exc}") from None
        for name, limits in self.trunks.items():
            if not isinstance(limits, TrunkLimits) or limits.name != name:
                raise ConfigError(f"trunks[{name!r}] must be the TrunkLimits of {name!r}")
        if not self.contexts or not all(CONTEXT_NAME.fullmatch(c) for c in self.contexts):
            raise ConfigError(f"contexts must be dialplan context names, got {self.contexts!r}")

    @property
    def renew_every(self) -> float:
        return self.renew_interval if self.renew_interval else self.lease_ms / 3000

    def trunk_limit(self, trunk: str) -> TrunkLimits:
        """``trunk``'s limits; unlimited on both axes when DIALER_TRUNKS does not list it."""
        return self.trunks.get(trunk) or TrunkLimits.unlimited(trunk)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EngineSettings:
        """DIALER_REDIS_URL, DIALER_NAMESPACE, DIALER_AMI_URL, DIALER_ENGINE_ID, DIALER_LEASE_MS,
        DIALER_PACE_MS, DIALER_RATE_MARGIN_MS, DIALER_RATE_SWITCH_MS, DIALER_RATE_STAMPS (on / off),
        DIALER_CLAIM_BATCH,
        DIALER_WRITE_LINGER_MS,
        DIALER_METRICS_PORT (serve /metrics there), DIALER_METRICS_HOST (its address, default
        127.0.0.1), DIALER_TRUNKS (:func:`parse_trunks`), DIALER_BREAKER (on / off),
        DIALER_BREAKER_FAILURE_RUN, DIALER_BREAKER_SILENT_RUN, DIALER_BREAKER_COOLDOWN_S,
        DIALER_BREAKER_PROBE_TIMEOUT_S, DIALER_BREAKER_SWITCH_HOLD_S (:class:`BreakerLimits`),
        DIALER_CONTEXTS (:func:`parse_contexts`), DIALER_NODE (the
        PBX node's name, :func:`default_node` when unset)."""
        env = os.environ if env is None else env
        kwargs: dict[str, object] = {}
        if "DIALER_REDIS_URL" in env:
            kwargs["redis_url"] = env["DIALER_REDIS_URL"]
        if "DIALER_NAMESPACE" in env:
            kwargs["namespace"] = env["DIALER_NAMESPACE"]
        if "DIALER_AMI_URL" in env:
            kwargs["ami_url"] = env["DIALER_AMI_URL"]
        if "DIALER_ESL_URL" in env:
            kwargs["esl_url"] = env["DIALER_ESL_URL"]
        if "DIALER_ENGINE_ID" in env:
            kwargs["engine_id"] = env["DIALER_ENGINE_ID"]
        if env.get("DIALER_NODE", "").strip():
            kwargs["node"] = env["DIALER_NODE"].strip()
        if "DIALER_LEASE_MS" in env:
            kwargs["lease_ms"] = _int(env, "DIALER_LEASE_MS", minimum=1000)
        if "DIALER_PACE_MS" in env:
            kwargs["pace_ms"] = _int(env, "DIALER_PACE_MS", minimum=0)
        if "DIALER_RATE_MARGIN_MS" in env:
            kwargs["rate_margin_ms"] = _int(env, "DIALER_RATE_MARGIN_MS", minimum=0)
        if "DIALER_RATE_SWITCH_MS" in env:
            kwargs["rate_switch_ms"] = _int(env, "DIALER_RATE_SWITCH_MS", minimum=0)
        stamps = env.get("DIALER_RATE_STAMPS", "").strip().lower()
        if stamps not in ("", "on", "off"):
            raise ConfigError(f"DIALER_RATE_STAMPS must be on or off, got {stamps[:20]!r}")
        if stamps:
            kwargs["rate_stamps"] = stamps == "on"
        if "DIALER_CLAIM_BATCH" in env:
            kwargs["claim_batch"] = _int(env, "DIALER_CLAIM_BATCH", minimum=1)
        if "DIALER_WRITE_LINGER_MS" in env:
            kwargs["write_linger_ms"] = _int(env, "DIALER_WRITE_LINGER_MS", minimum=0)
        if env.get("DIALER_METRICS_PORT"):
            kwargs["metrics_port"] = _int(env, "DIALER_METRICS_PORT", minimum=0, maximum=65535)
        if env.get("DIALER_METRICS_HOST"):
            kwargs["metrics_host"] = _host(env, "DIALER_METRICS_HOST")
        if env.get("DIALER_TRUNKS"):
            kwargs["trunks"] = parse_trunks(env["DIALER_TRUNKS"])
        if env.get("DIALER_CONTEXTS", "").strip():
            kwargs["contexts"] = parse_contexts(env["DIALER_CONTEXTS"])
        breaker: dict[str, int | float] = {}
        switch = env.get("DIALER_BREAKER", "").strip().lower()
        if switch not in ("", "on", "off"):
            raise ConfigError(f"DIALER_BREAKER must be on or off, got {switch[:20]!r}")
        for name, limit in _BREAKER_ENV:
            if env.get(name):
                breaker[limit] = _int(env, name, minimum=1)
        if switch == "on" or (breaker and switch != "off"):
            kwargs["breaker"] = BreakerLimits(**breaker)  # type: ignore[arg-type]
        return cls(**kwargs)  # type: ignore[arg-type]


# the breaker's settings: environment variable -> BreakerLimits field (whole numbers)
_BREAKER_ENV = (
    ("DIALER_BREAKER_FAILURE_RUN", "failure_run"),
    ("DIALER_BREAKER_SILENT_RUN", "silent_run"),
    ("DIALER_BREAKER_COOLDOWN_S", "cooldown"),
    ("DIALER_BREAKER_PROBE_TIMEOUT_S", "probe_timeout"),
    ("DIALER_BREAKER_SWITCH_HOLD_S", "switch_hold"),
)

NODE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


def default_node(ami_url: str | None, esl_url: str | None) -> str:
    """A node name from the PBX URL: "asterisk-<host>-<port>" or "freeswitch-<host>-<port>"
    ("local" without a URL: tests and tools that drive no switch)."""
    for kind, url, port in (("asterisk", ami_url, 5038), ("freeswitch", esl_url, 8021)):
        if url:
            parts = urlsplit(url)
            host = (parts.hostname or "localhost").lower()
            try:
                port = parts.port or port
            except ValueError:
                pass  # the adapter reports a bad port
            name = re.sub(r"[^a-z0-9._-]", "-", f"{kind}-{host}-{port}")[:63]
            return name
    return "local"


def _int(env: Mapping[str, str], name: str, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(env[name])
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {env[name][:40]!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}")
    return value


_HOSTNAME_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


def _host(env: Mapping[str, str], name: str) -> str:
    """An address to listen on: an IPv4 or IPv6 address (no brackets, no port) or a host name."""
    text = env[name].strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if len(text) <= 253 and _HOSTNAME_RE.fullmatch(text) and not text.replace(".", "").isdigit():
        return text
    raise ConfigError(
        f"{name} must be an IP address or a host name to listen on (127.0.0.1, 0.0.0.0, ::1, "
        f"localhost), without a scheme, brackets or port; not {env[name][:40]!r}"
    )


def parse_trunks(text: str) -> dict[str, TrunkLimits]:
    """DIALER_TRUNKS: ``"carrier=100/20, backup=10/2.5"`` -> each trunk's limits.

    ``name=max_channels/cps``: a whole number of channels (1 to 100000) and calls per second
    (above 0, up to 10000). No limit is spelled out: ``carrier=unlimited/20`` (no channel
    limit), ``carrier=100/unlimited`` (no CPS limit), ``carrier=unlimited`` (neither). 0,
    negative, NaN, infinite, empty and non-numeric limits are refused, as are an entry without
    ``=`` or ``/`` and a trunk listed twice: ConfigError naming the trunk and the field.
    """
    out: dict[str, TrunkLimits] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, equals, limits = (s.strip() for s in part.partition("="))
        channels, slash, cps = limits.partition("/")
        if not slash and limits.lower() == UNLIMITED:
            channels = cps = UNLIMITED
        elif not (equals and slash):
            raise ConfigError(
                f"DIALER_TRUNKS: bad entry {part[:60]!r}: expected name=max_channels/cps "
                f"(e.g. carrier=100/20) or name={UNLIMITED}"
            )
        if name in out:
            raise ConfigError(f"DIALER_TRUNKS: trunk {name!r} is listed twice")
        try:
            out[name] = TrunkLimits.from_text(name, channels, cps)
        except ValidationError as exc:
            raise ConfigError(f"DIALER_TRUNKS: trunk {name[:60]!r}: {exc}") from None
    return out


def parse_contexts(text: str) -> frozenset[str]:
    """DIALER_CONTEXTS: ``"dialer-outbound, dialer-survey"`` -> the dialplan contexts campaigns
    may use (default ``dialer-outbound`` alone). ConfigError naming a name that is not one."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    for name in names:
        if not CONTEXT_NAME.fullmatch(name):
            raise ConfigError(
                f"DIALER_CONTEXTS: {name[:60]!r} is not a dialplan context name "
                "(letters, digits, '_', '-')"
            )
    if not names:
        raise ConfigError("DIALER_CONTEXTS: no context named")
    return frozenset(names)
