"""Claim differential: this checkout's claim.lua against git revision ``--base``'s, on the same
data and the same calls; the replies and the whole final state must be the same.

``python -m loadtest.bench.claimdiff [--base main] [--scenarios 60]`` (its own redis-server, no
stack; ~10 s for 60). For a change of claim.lua's body that must keep what it decides (the
gathered writes, a faster read): each scenario is a campaign of two lists of 30 contacts in
two namespaces, one per version (the other scripts are this checkout's in both), and a random
sequence, the same in both, of claims of 1-12 ids (no limit, or 5 or 20 channels), finishes
(retries due at once or in a minute), do-not-call numbers added (global and campaign) and a list
stopped, under a random dial order. Compared after each claim: the stop, the claims (call id,
contact, phone, attempts, dial) and the do-not-call count; at the end every key of the two
namespaces (times from Redis's clock read as "T"). Not covered: local hours and the node block
(their store tests are the check there).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.store.models import ContactInput, FinishItem
from dialer.store.redis_store import RedisStore
from dialer.store.scripts import SCRIPT_NAMES, Scripts, load_source
from loadtest.bench.luacost import base_source
from ops.localstack.redis_server import RedisServer

TIME = re.compile(r"^1[6-9]\d{11}(\.\d+)?$")  # ms since the epoch (2020-2033)
ORDERS = ("retries_first", "due_time", "interleave")
Reply = tuple[object, ...]


def _norm(value: object) -> object:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        return "T" if TIME.match(value) else value
    if isinstance(value, int | float):
        return "T" if value > 1.6e12 else value
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    return value


async def _state(r: aioredis.Redis, ns: str) -> dict[str, object]:
    """Every key of namespace ``ns`` (name without it) -> its value, times as "T"."""
    out: dict[str, object] = {}
    keys: list[bytes] = [key async for key in r.scan_iter(match=f"{ns}:*", count=1000)]
    for key in keys:
        kind = str(_norm(await r.type(key)))
        value: object
        if kind == "hash":
            fields: Any = await r.hgetall(key)  # redis-py types bytes | str
            value = sorted((k, _norm(v)) for k, v in fields.items())
        elif kind == "zset":
            pairs: Any = await r.zrange(key, 0, -1, withscores=True)
            value = sorted((m, _norm(int(s))) for m, s in pairs)
        elif kind == "set":
            value = sorted(await r.smembers(key))
        elif kind == "stream":
            entries: Any = await r.xrange(key)
            value = [_norm([x for kv in e[1].items() for x in kv]) for e in entries]
        elif kind == "string":
            value = _norm(await r.get(key))
        else:
            value = kind
        out[key.decode()[len(ns) :]] = value
    return out


def _contacts(n: int, start: int = 0) -> list[ContactInput]:
    return [ContactInput(phone=f"+3361{start + i:07d}", vars={"n": str(i)}) for i in range(n)]


def _store(r: aioredis.Redis, ns: str, claim_source: str) -> RedisStore:
    store = RedisStore(r, ns)
    sources = {n: load_source(n) for n in SCRIPT_NAMES} | {"claim": claim_source}
    store._lua = Scripts(**{n: r.register_script(s) for n, s in sources.items()})
    return store


async def scenario(r: aioredis.Redis, seed: int, base: str, seen: Counter[str]) -> list[str]:
    """One scenario; the differences found (none: the versions agree)."""
    rnd = random.Random(seed)
    settings = {"dial_order": rnd.choice(ORDERS), "new_every": rnd.choice([2, 3])}
    old = base_source(base, "claim") or load_source("claim")
    new = load_source("claim")
    stores = [_store(r, f"dialer:diff{seed}{v}", src) for v, src in (("a", old), ("b", new))]
    phones = [c.phone for c in _contacts(60)]
    dnc = (set(rnd.sample(phones, rnd.randint(0, 4))), set(rnd.sample(phones, rnd.randint(0, 3))))
    lists: list[tuple[int, int, int]] = []
    for store in stores:
        cid = await store.create_campaign("diff", "trunk1", json.dumps(settings))
        l1, l2 = await store.add_list(cid), await store.add_list(cid)
        await store.add_contacts(cid, l1, _contacts(30))
        await store.add_contacts(cid, l2, _contacts(30, start=30))
        await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
        lists.append((cid, l1, l2))
    await asyncio.sleep(0.01)  # the upload's millisecond is not a claim's
    live: list[list[tuple[str, int]]] = [[], []]
    replies: list[list[Reply]] = [[], []]
    for step in range(rnd.randint(8, 20)):
        op = rnd.choice(["claim", "claim", "claim", "finish", "dnc", "stop"]) if step else "claim"
        n, channels = rnd.randint(1, 12), rnd.choice([None, None, 5, 20])
        later, pick = rnd.random() < 0.3, rnd.random()
        for j, store in enumerate(stores):
            cid, l1, l2 = lists[j]
            k = store.keys
            if op == "claim":
                ids = [f"s{seed}-{step}-{i}" for i in range(n)]
                try:
                    b = await store.claim_batch(
                        cid, "trunk1", ids, "e1", lease_ms=60_000, max_channels=channels,
                        trunk_max_channels=None, cps=None, trunk_cps=None,
                    )  # fmt: skip
                except Exception as exc:
                    replies[j].append(("error", str(exc)))
                    continue
                got = [(c.call_id, c.contact_id, c.phone, c.attempts, c.dial) for c in b.claims]
                replies[j].append((b.stop, got, b.blocked))
                live[j] += [(c.call_id, c.contact_id) for c in b.claims]
                if j:  # what the scenarios went through (this checkout's side)
                    seen.update({b.stop: 1, "claims": len(got), "blocked": b.blocked})
            elif op == "finish" and live[j]:
                ended = live[j][: int(pick * len(live[j])) + 1]
                del live[j][: len(ended)]
                secs, micros = await r.time()
                due = secs * 1000 + micros // 1000 + (60_000 if later else -5)
                items = [
                    FinishItem(
                        cid=cid, trunk="trunk1", call_id=call_id, contact_id=contact,
                        contact_status=CallStatus.RETRY_SCHEDULED, attempts_used=1,
                        tech_failures=0, retry_at_ms=due, record={"step": str(step)},
                        usage_attempts=1, talk_seconds=1.0, owner="e1",
                    )
                    for call_id, contact in ended
                ]  # fmt: skip
                await store.settle_and_claim({}, items)
            elif op == "dnc":
                for key, numbers in zip(
                    (k.global_dnc_of(cid), k.campaign_dnc(cid)), dnc, strict=True
                ):
                    if numbers:
                        await r.sadd(key, *numbers)
            elif op == "stop":
                await r.hset(k.list_stop(cid), str(l2 if pick < 0.5 else l1), "cancelled")
        await asyncio.sleep(0.003)
    diffs = [f"reply {x} | {y}" for x, y in zip(*replies, strict=True) if x != y][:1]
    one, two = await _state(r, f"dialer:diff{seed}a"), await _state(r, f"dialer:diff{seed}b")
    diffs += [
        f"key {key}: {one.get(key)} | {two.get(key)}"
        for key in sorted(one.keys() | two.keys())
        if one.get(key) != two.get(key)
    ][:1]
    return [f"scenario {seed} ({settings['dial_order']}): {d}"[:600] for d in diffs]


async def run(base: str, scenarios: int) -> int:
    seen: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="claimdiff-") as tmp:
        server = RedisServer(Path(tmp), appendonly=False)
        server.start()
        r = aioredis.Redis.from_url(server.url)
        try:
            found = [d for seed in range(scenarios) for d in await scenario(r, seed, base, seen)]
        finally:
            await r.aclose()
            server.stop()
    for line in found:
        print(line)
    print(f"claimdiff: {scenarios} scenarios against {base}, {len(found)} differing; "
          f"seen {dict(seen)}")  # fmt: skip
    return 1 if found else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="main", help="the git revision compared (main)")
    parser.add_argument("--scenarios", type=int, default=60)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(run(args.base, args.scenarios)))


if __name__ == "__main__":
    main()
