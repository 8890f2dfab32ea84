"""One engine process on both switches (the nodes benchmark's engine phase).

The stack's Asterisk and FreeSWITCH are two PBX nodes of one trunk group over the stack's
trunk, each with the rate it is given (``Node.cps``: a hard limit per node, claim.lua's node
block) and channels in the same proportion; one campaign at the sum of the two rates is dialed
by ONE engine process attached to both (:mod:`loadtest.bench.bothnodes`): claim.lua puts each
claim on the least loaded node with room, and the engine originates it there. Watched on each
switch by its own events (Newchannel / CHANNEL_CREATE timestamps): per node the calls it got,
their rate on the engine's clock (claims) and on the switch's, the most channels in any second
of the switch's clock against ``ceil`` of the node's rate, the claim -> channel lag, failures;
and the engine's CPU per call over the run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass

from dialer.config import default_node
from dialer.domain.campaign import CampaignSettings
from dialer.domain.nodes import Node, NodeKind, TrunkGroup
from dialer.domain.statuses import CampaignStatus
from dialer.store.nodes import NodeStore
from dialer.store.redis_store import RedisStore
from loadtest.bench import fswatch
from loadtest.bench.common import (
    CpuMeter,
    ami_settings,
    hold_numbers,
    max_in_window,
    namespace,
    percentile,
    rate,
    wait_quiet,
)
from loadtest.bench.enginerun import SETTLE_S, switch_failures
from loadtest.bench.engines import BOTH, engine_processes, new_campaign, outcomes, wait_status
from loadtest.bench.watch import wait_no_channels
from loadtest.bench.watch import watch as watch_ami
from ops.localstack.stack import StackInfo

GROUP = "bench"


@dataclass(frozen=True, slots=True)
class NodeRun:
    """One node's share of the one engine's run."""

    calls: int  # channels the switch created for the campaign
    cps: float  # their claims per second (engine's clock)
    switch_cps: float  # their channels per second (switch's clock)
    switch_max_per_second: int
    switch_lag_p99: float | None  # claim -> channel, seconds
    switch_failed: int  # FreeSWITCH's own verdicts on its calls (Asterisk: not kept, 0)
    limit: int  # ceil(the node's rate)

    @property
    def overshoot(self) -> int:
        return max(0, self.switch_max_per_second - self.limit)


@dataclass(frozen=True, slots=True)
class OneEngine:
    nodes: dict[str, NodeRun]  # "asterisk", "freeswitch"
    calls: int
    records: int
    failed: int  # records' failures (both nodes) and calls that no switch created
    completed: bool
    cps: float  # the campaign's claims per second
    engine_us_per_call: float
    load: float  # the 1-min load average at the end


def node_ids(info: StackInfo) -> dict[str, str]:
    """The node names the engine derives from its URLs (dialer.config.default_node)."""
    return {
        "asterisk": default_node(info.ami_url, None),
        "freeswitch": default_node(None, info.esl_url),
    }


async def configure(store: RedisStore, info: StackInfo, rates: Mapping[str, float]) -> None:
    """Both switches as nodes of one trunk group over the stack's trunk, each capped at its
    rate, channels in proportion (never binding: 3 s of calls)."""
    nodes = NodeStore(store.client, store.keys)
    ids = node_ids(info)
    for pbx, node_id in ids.items():
        kind = NodeKind.FREESWITCH if pbx == "freeswitch" else NodeKind.ASTERISK
        channels = max(10, math.ceil(rates[pbx] * 3))
        await nodes.put_node(Node(node_id, kind, max_channels=channels, cps=rates[pbx]))
    await nodes.put_group(TrunkGroup(GROUP, {info.trunk: tuple(ids.values())}))


async def one_engine(
    info: StackInfo, rates: Mapping[str, float], duration: float, *, hold_s: int = 1
) -> OneEngine:
    """One campaign at the sum of ``rates`` for ``duration`` s, one engine on both nodes."""
    ns = namespace("both")
    total = sum(rates.values())
    calls = max(2, round(total * duration))
    store = RedisStore.from_url(info.redis_url, namespace=ns)
    try:
        await configure(store, info, rates)
        settings = CampaignSettings(
            name="both", trunk=info.trunk, max_channels=max(100, round(total * (hold_s + 2) * 3)),
            cps=total, ring_timeout=30.0, amd=False,
        )  # fmt: skip
        control, cid = await new_campaign(store, settings, hold_numbers(calls, hold_s))
        for pbx in rates:
            await wait_quiet(info, within=SETTLE_S, pbx=pbx)
        async with AsyncExitStack() as watching:
            on_a = await watching.enter_async_context(watch_ami(ami_settings(info), "dlr-"))
            on_f = await watching.enter_async_context(fswatch.watch(info, "dlr-"))
            procs = await watching.enter_async_context(engine_processes(info, ns, pbx=BOTH))
            pids = {"engine": procs[0].pid}
            before = CpuMeter.read(pids)
            await control.start(cid)
            status = await wait_status(
                store, cid, {CampaignStatus.COMPLETED}, within=1.5 * duration + hold_s + 15
            )
            cpu = CpuMeter.read(pids).since(before)
            if status is not CampaignStatus.COMPLETED:
                await control.stop(cid, hangup=True)
                await wait_status(store, cid, {CampaignStatus.CANCELLED}, within=SETTLE_S)
            await wait_no_channels(ami_settings(info), "dlr-", within=SETTLE_S)
            await fswatch.wait_no_channels(info, "dlr-", within=SETTLE_S)
            done = await outcomes(store, cid, hold_s=hold_s)
    finally:
        await store.aclose()
    failed_calls = {c for c in done.claimed if c not in on_a.created and c not in on_f.created}
    per_node: dict[str, NodeRun] = {}
    fs_failed = switch_failures(on_f, {c: t for c, t in done.claimed.items() if c in on_f.created},
                                hold_s)  # fmt: skip
    for pbx, created in (("asterisk", on_a.created), ("freeswitch", on_f.created)):
        mine = {c: t for c, t in created.items() if c in done.claimed}
        lags = [t - done.claimed[c] for c, t in mine.items()]
        per_node[pbx] = NodeRun(
            calls=len(mine),
            cps=rate([done.claimed[c] for c in mine]),
            switch_cps=rate(list(mine.values())),
            switch_max_per_second=max_in_window(list(created.values())),
            switch_lag_p99=percentile(lags, 99),
            switch_failed=sum(fs_failed.values()) if pbx == "freeswitch" else 0,
            limit=math.ceil(rates[pbx]),
        )
    return OneEngine(
        nodes=per_node,
        calls=calls,
        records=done.records,
        failed=done.records - done.clean + len(failed_calls),
        completed=status is CampaignStatus.COMPLETED,
        cps=rate(done.claimed_at),
        engine_us_per_call=cpu["engine"] / max(1, done.records) * 1e6,
        load=_load(),
    )


def _load() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])
