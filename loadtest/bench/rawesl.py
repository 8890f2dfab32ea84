"""The raw ESL originate loop: what FreeSWITCH + SIPp sustain with no engine in the way.

The FreeSWITCH twin of :mod:`loadtest.bench.rawami`. One ESL session (the project's
:class:`~dialer.pbx.esl.client.EslClient`, subscribed to CHANNEL_CREATE, CHANNEL_HANGUP_COMPLETE
and BACKGROUND_JOB) sends ``bgapi originate`` at full speed, spread evenly at a target rate,
built exactly as the FreeSWITCH adapter builds them (:func:`originate_args`: the same gateway,
dialplan context, variables and origination_uuid; ``Job-UUID`` = call id), and follows each call
by FreeSWITCH's own events. A call is clean when its job answered ``+OK``, it was answered, and
its CHANNEL_HANGUP_COMPLETE has q850 cause 16 (the callee's BYE) at least 0.9 x the hold time
after its CHANNEL_CREATE.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import Counter

from dialer.errors import DialerError
from dialer.pbx.base import OriginateRequest
from dialer.pbx.esl.client import EslClient
from dialer.pbx.freeswitch.adapter import FreeSwitchSettings, originate_args
from dialer.pbx.sanitize import channel_variables
from loadtest.bench.common import CpuMeter, hold_numbers, percentile, poll, rate, send_paced
from loadtest.bench.fswatch import FsObserved, consume, esl_settings
from loadtest.bench.rawami import NORMAL_CAUSES, StepResult
from ops.localstack.stack import StackInfo

log = logging.getLogger(__name__)


def request(info: StackInfo, phone: str, call_id: str, serial: int) -> OriginateRequest:
    """The request the engine's runner would make for this contact (no AMD, campaign 0)."""
    variables = channel_variables({"serial": str(serial)})
    variables.update(DIALER_AMD="0", DIALER_CAMPAIGN="0")
    return OriginateRequest(
        call_id=call_id,
        trunk=info.trunk,
        number=phone,
        context=info.originate_context,
        exten=info.originate_exten,
        ring_timeout=30.0,
        variables=variables,
    )


def verdict(
    call_id: str, observed: FsObserved, refused: dict[str, str], hold_s: float
) -> str | None:
    """None: clean; else the failure kind; "" while the call has not ended yet."""
    if call_id in refused:
        return f"command:{refused[call_id]}"
    job = observed.jobs.get(call_id)
    if call_id in observed.ended:
        if job is None:
            return ""  # "+OK" may come after the hang-up
        if job != "Success":
            return f"job:{job}"
        if call_id not in observed.answered:
            return "unanswered"
        cause = observed.causes.get(call_id)
        if cause not in NORMAL_CAUSES:
            return f"cause:{cause}"
        # from the channel's creation, as the AMI loop counts it (Newchannel -> Hangup): under
        # load FreeSWITCH can take the callee's 200 OK late, and answer -> hang-up shrinks
        held = observed.ended[call_id] - observed.created.get(call_id, 0.0)
        return None if held >= 0.9 * hold_s else "ended:early"
    if job is not None and job != "Success" and call_id not in observed.created:
        return f"job:{job}"  # no channel was made: no hang-up will come
    return ""


async def raw_step(
    info: StackInfo,
    target_cps: float,
    duration: float,
    *,
    hold_s: int = 1,
    settle: float = 10.0,
    max_lag: float | None = None,
) -> StepResult:
    """Originate ``target_cps * duration`` HOLD calls evenly at ``target_cps`` and follow them.

    ``max_lag``: the step is clean only if FreeSWITCH created 99 % of the channels within this
    many seconds of their originate. Bounded: sending lasts ``duration`` seconds; calls not
    ended ``hold_s + settle`` seconds after the last send count as failures (``end:missing``).
    """
    count = max(1, round(target_cps * duration))
    prefix = f"raw-{uuid.uuid4().hex[:8]}-"
    ids = [f"{prefix}{i}" for i in range(count)]
    phones = hold_numbers(count, hold_s)
    fs_settings = FreeSwitchSettings(esl=esl_settings(info))
    lines = [originate_args(request(info, phones[i], ids[i], i), fs_settings) for i in range(count)]
    observed = FsObserved(prefix)
    refused: dict[str, str] = {}
    sent: dict[str, float] = {}
    pids = {"freeswitch": info.freeswitch_pid, "sipp": info.sipp_pid, "loop": os.getpid()}
    async with EslClient(fs_settings.esl) as client, asyncio.TaskGroup() as tg:
        consumer = tg.create_task(consume(client, observed))

        async def originate(i: int) -> None:
            call_id = ids[i]
            sent[call_id] = time.time()
            try:
                await client.bgapi("originate", *lines[i], job_uuid=call_id)
            except DialerError as exc:
                refused[call_id] = type(exc).__name__

        before = CpuMeter.read(pids)
        await send_paced(count, target_cps, originate)

        async def all_ended() -> bool:
            return all(verdict(c, observed, refused, hold_s) != "" for c in ids)

        await poll(all_ended, within=hold_s + settle, every=0.1)
        cpu = CpuMeter.read(pids).since(before)
        consumer.cancel()
    failures: Counter[str] = Counter()
    for call_id in ids:
        kind = verdict(call_id, observed, refused, hold_s)
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
        max_lag=max_lag,
        max_per_second=observed.max_in_window(),
    )
    log.info("raw ESL step %s CPS: %s", target_cps, result)
    return result
