"""The raw AMI originate loop: what Asterisk + SIPp sustain with no engine in the way.

One AMI session (manager.conf's watching user: the dialer's privileges, and Newchannel events
for Asterisk's own creation times) sends ``Originate`` actions spread evenly at a
target rate, exactly as the Asterisk adapter builds them (same context, variables, ChannelId),
and follows each call by its events. A call is clean when the action was accepted, its
OriginateResponse says Success and its Hangup has Cause 16 (normal clearing by the callee).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from dialer.errors import DialerError
from dialer.pbx.ami.client import AmiClient
from loadtest.bench.common import (
    CpuMeter,
    ami_settings,
    hold_numbers,
    max_in_window,
    percentile,
    poll,
    rate,
    send_paced,
)
from loadtest.bench.watch import Observed, consume
from ops.localstack.stack import StackInfo

log = logging.getLogger(__name__)

NORMAL_CAUSES = frozenset({0, 16})


@dataclass(frozen=True, slots=True)
class StepResult:
    target_cps: float
    calls: int
    sent_cps: float  # on our clock, from the send times
    created_cps: float  # on Asterisk's clock, from the Newchannel times
    clean: int
    lag_p99: float | None  # seconds from sending an Originate to Asterisk creating the channel
    failures: dict[str, int] = field(default_factory=dict)  # kind -> calls
    cpu_s: dict[str, float] = field(default_factory=dict)  # asterisk, sipp, loop
    max_lag: float | None = None  # a clean step's lag_p99 is at most this (None: any)
    max_per_second: int | None = None  # most channels created in any 1 s of the switch's clock

    @property
    def failed(self) -> int:
        return self.calls - self.clean

    @property
    def prompt(self) -> bool:
        """The switch created the channels within ``max_lag`` of the originates (p99)."""
        return self.max_lag is None or (self.lag_p99 is not None and self.lag_p99 <= self.max_lag)

    @property
    def kept_up(self) -> bool:
        """Asterisk created the channels at (nearly) the rate they were asked for."""
        return self.created_cps >= 0.95 * self.target_cps

    @property
    def ok(self) -> bool:
        """A clean step: no failure, and the switch did not fall behind (queue them up)."""
        return self.failed == 0 and self.kept_up and self.prompt


def _fields(info: StackInfo, phone: str, call_id: str) -> dict[str, str]:
    return {
        "Channel": f"PJSIP/{phone}@{info.trunk}",
        "Context": info.originate_context,
        "Exten": info.originate_exten,
        "Priority": "1",
        "Async": "true",
        "Timeout": "30000",
        "ChannelId": call_id,
    }


def _verdict(
    call_id: str, observed: Observed, refused: dict[str, str], hold_s: float
) -> str | None:
    """None: clean; else the failure kind; "" while the call has not ended yet."""
    if call_id in refused:
        return f"action:{refused[call_id]}"
    response = observed.originate.get(call_id)
    if call_id in observed.ended:
        if response != "Success":
            return f"originate:{response}"
        cause = observed.causes.get(call_id)
        if cause not in NORMAL_CAUSES:
            return f"cause:{cause}"
        held = observed.ended[call_id] - observed.created.get(call_id, 0.0)
        return None if held >= 0.9 * hold_s else "ended:early"
    if response is not None and response != "Success" and call_id not in observed.created:
        return f"originate:{response}"  # no channel was made: no Hangup will come
    return ""


async def raw_step(
    info: StackInfo, target_cps: float, duration: float, *, hold_s: int = 1, settle: float = 10.0
) -> StepResult:
    """Originate ``target_cps * duration`` HOLD calls evenly at ``target_cps`` and follow them.

    Bounded: sending lasts ``duration`` seconds; calls not ended ``hold_s + settle`` seconds
    after the last send count as failures (``end:missing``).
    """
    count = max(1, round(target_cps * duration))
    run = uuid.uuid4().hex[:8]
    prefix = f"raw-{run}-"
    ids = [f"{prefix}{i}" for i in range(count)]
    phones = hold_numbers(count, hold_s)
    observed = Observed(prefix)
    refused: dict[str, str] = {}
    sent: dict[str, float] = {}
    pids = {"asterisk": info.asterisk_pid, "sipp": info.sipp_pid, "loop": os.getpid()}
    async with AmiClient(ami_settings(info)) as client, asyncio.TaskGroup() as tg:
        consumer = tg.create_task(consume(client, observed))

        async def originate(i: int) -> None:
            call_id = ids[i]
            variables = {
                "DIALER_CALL_ID": call_id,
                "serial": str(i),
                "DIALER_AMD": "0",
                "DIALER_CAMPAIGN": "0",
            }
            sent[call_id] = time.time()
            try:
                await client.send_action(
                    "Originate", _fields(info, phones[i], call_id), variables=variables
                )
            except DialerError as exc:
                refused[call_id] = type(exc).__name__

        before = CpuMeter.read(pids)
        await send_paced(count, target_cps, originate)

        async def all_ended() -> bool:
            return all(_verdict(c, observed, refused, hold_s) != "" for c in ids)

        await poll(all_ended, within=hold_s + settle, every=0.1)
        cpu = CpuMeter.read(pids).since(before)
        consumer.cancel()
    failures: Counter[str] = Counter()
    for call_id in ids:
        kind = _verdict(call_id, observed, refused, hold_s)
        if kind is not None:
            failures[kind or "end:missing"] += 1
    result = StepResult(
        target_cps=target_cps,
        calls=count,
        sent_cps=rate(list(sent.values())),
        created_cps=rate(list(observed.created.values())),
        clean=count - sum(failures.values()),
        lag_p99=percentile([t - sent[c] for c, t in observed.created.items() if c in sent], 99),
        failures=dict(failures),
        cpu_s=cpu,
        max_per_second=max_in_window(list(observed.created.values())),
    )
    log.info("raw step %s CPS: %s", target_cps, result)
    return result
