"""The demo: a campaign across every carrier-simulator behaviour, on the local real stack.

    scripts/demo [--contacts N] [--keep] [--pbx asterisk|freeswitch]

Brings the stack up (Redis, SIPp and the switch: Asterisk 22 by default, FreeSWITCH 1.10.12 with
``--pbx freeswitch`` or ``DIALER_DEMO_PBX=freeswitch``), creates a campaign whose numbers choose the
callee's behaviour (ops/localstack/numberplan.py), runs one engine in this process with a live
progress line, then prints the per-status table and where the call records are.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence

from dialer.api import serve_metrics
from dialer.app import engine_parts
from dialer.config import EngineSettings
from dialer.domain.campaign import CampaignSettings
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.engine.control import CampaignControl
from dialer.store.keys import Keys
from dialer.store.models import ContactInput
from dialer.store.redis_store import RedisStore
from ops.localstack import stack as localstack
from ops.localstack.numberplan import Behaviour, number

S = CallStatus
# share of the demo list per behaviour
MIX: tuple[tuple[Behaviour, int], ...] = (
    (Behaviour.HOLD, 30),
    (Behaviour.HUMAN, 10),
    (Behaviour.VOICEMAIL, 10),
    (Behaviour.HUMAN_OPT_OUT, 5),
    (Behaviour.HUMAN_CALLBACK, 5),
    (Behaviour.BUSY, 10),
    (Behaviour.RING_NO_ANSWER, 8),
    (Behaviour.UNAVAILABLE_480, 5),
    (Behaviour.NOT_FOUND_404, 5),
    (Behaviour.DECLINE_603, 5),
    (Behaviour.UNAVAILABLE_503, 5),
)
FINAL = {
    S.ANSWERED, S.VOICEMAIL, S.INVALID_NUMBER, S.REJECTED, S.TECHNICAL_ERROR,
    S.COMPLETED_NO_ANSWER, S.DO_NOT_CALL, S.NOT_DIALED, S.PLAN_LIMIT_EXCEEDED,
}  # fmt: skip


def demo_contacts(total: int) -> list[ContactInput]:
    weights = sum(w for _, w in MIX)
    out: list[ContactInput] = []
    serial = itertools.count()
    for behaviour, weight in MIX:
        for _ in range(max(1, round(total * weight / weights))):
            n = next(serial)
            hold = 2 + n % 4 if behaviour is Behaviour.HOLD else None
            out.append(ContactInput(number(behaviour, n, hold_s=hold), {"behaviour": behaviour}))
    out.append(ContactInput("+1 (201) not-a-number", {"behaviour": "bad input"}))
    return out


def progress_line(counts: dict[CallStatus, int], total: int, inflight: int, elapsed: float) -> str:
    done = sum(v for k, v in counts.items() if k in FINAL)
    shown = " ".join(f"{k.label.lower()}={v}" for k, v in counts.items() if v and k in FINAL)
    return f"[{elapsed:5.1f}s] {done}/{total} final, {inflight} in flight | {shown}"


async def run_demo(total: int, keep: bool, pbx: str = "asterisk") -> int:
    info = localstack.up(name="demo", pbx=pbx)
    ns = f"dialer:demo{int(time.time())}"  # below dialer: (the stack's Redis ACL)
    on_fs = pbx == "freeswitch"
    settings = EngineSettings(
        redis_url=info.redis_url,
        namespace=ns,
        ami_url=None if on_fs else info.ami_url,
        esl_url=info.esl_url if on_fs else None,
    )
    campaign = CampaignSettings(
        name="demo",
        trunk=info.trunk,
        max_channels=40,
        cps=25.0,
        ring_timeout=8.0,
        amd=True,
        retry=RetryPolicy(
            max_attempts=2,
            delays={S.BUSY: 3.0, S.NO_ANSWER: 3.0, S.VOICEMAIL: 3.0, S.TECHNICAL_ERROR: 2.0},
            technical_retry_limit=2,
        ),
        variables={"DIALER_MAX_TALK": "15"},
    )
    contacts = demo_contacts(total)
    store = RedisStore.from_url(info.redis_url, namespace=ns)
    control = CampaignControl(store)
    cid = await control.create(campaign)
    await control.add_list(cid, contacts)
    print(f"campaign {cid} on {pbx}: {len(contacts)} contacts, 40 channels, 25 calls/s, AMD on")
    started = time.monotonic()
    tty = sys.stdout.isatty()
    async with engine_parts(settings) as engine, serve_metrics(engine.metrics, port=0) as metrics:
        print(f"metrics: {metrics.url}  (Prometheus exposition, while the demo runs)")
        task = asyncio.create_task(engine.run())
        await control.start(cid)
        last_print = 0.0
        while True:
            await asyncio.sleep(0.5)
            counts = await store.counts(cid)
            stats = await store.queue_stats(cid)
            elapsed = time.monotonic() - started
            line = progress_line(counts, len(contacts), stats.inflight, elapsed)
            if tty:
                print("\r" + line[:160].ljust(160), end="", flush=True)
            elif elapsed - last_print >= 5:
                print(line, flush=True)
                last_print = elapsed
            status = (await store.get_campaign(cid)).status
            due_soon = stats.next_due_ms is not None and stats.next_due_ms / 1000 < time.time() + 30
            if status is CampaignStatus.COMPLETED or (
                not stats.inflight and not stats.claimed and not due_soon
            ):
                break
        if tty:
            print()
        status = (await store.get_campaign(cid)).status
        if status is CampaignStatus.RUNNING:  # only callbacks, due in an hour, are left
            await control.pause(cid)
        task.cancel()
    counts = await store.counts(cid)
    records = await store.records(cid, count=100_000)
    print(f"\ncampaign {cid} ({(await store.get_campaign(cid)).status.label}) "
          f"after {time.monotonic() - started:.0f} s, {len(records)} call attempts")  # fmt: skip
    attempts = Counter(CallStatus(r["status"]) for _, r in records)
    contact_rows = [(s.label, n) for s, n in counts.items() if n]
    attempt_rows = [(s.label, n) for s, n in attempts.most_common()]
    print(f"{'contact status':<26}{'contacts':>9}    {'attempt outcome':<18}{'attempts':>9}")
    for i in range(max(len(contact_rows), len(attempt_rows))):
        left = "{:<26}{:>9}".format(*contact_rows[i]) if i < len(contact_rows) else " " * 35
        right = "{:<18}{:>9}".format(*attempt_rows[i]) if i < len(attempt_rows) else ""
        print(f"{left}    {right}".rstrip())
    keys = Keys(ns)
    switch_cli = (
        f"FreeSWITCH (fs_cli):\n  {info.fs_cli_command('show channels')}"
        if on_fs
        else f"Asterisk CLI:\n  {info.cli_command('core show channels')}"
    )
    print(
        "\ncall records (one per attempt) are in Redis:\n"
        f"  redis-cli -u {info.redis_url} XRANGE {keys.records(cid)} - + COUNT 3\n"
        f"{switch_cli}"
    )
    await store.aclose()
    if not keep:
        localstack.down(name="demo")
        print("stack stopped (run with --keep to leave it up)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=200, help="about how many contacts")
    parser.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    parser.add_argument(
        "--pbx",
        choices=("asterisk", "freeswitch"),
        default=os.environ.get("DIALER_DEMO_PBX") or "asterisk",
        help="the switch the campaign runs on (default: $DIALER_DEMO_PBX or asterisk)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(run_demo(args.contacts, args.keep, args.pbx))


if __name__ == "__main__":
    sys.exit(main())
