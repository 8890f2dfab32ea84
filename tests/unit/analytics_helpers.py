"""Synthetic call records shaped exactly as the engine writes them (engine.calls.call_record).

:func:`scenario` builds a campaign and dials it through the real store (claim, then finish
with the record the engine would write), so contact counts and records agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from dialer.domain.calls import AmdStatus, RawOutcome
from dialer.domain.campaign import CampaignSettings
from dialer.domain.outcome import classify
from dialer.domain.retry import RetryPolicy, decide
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.engine.calls import LiveCall, call_record
from dialer.pbx.base import CallEnded
from dialer.store import ContactInput, RedisStore
from tests.unit.store_helpers import claim

TRUNK = "trunk1"
DAY_A = datetime(2024, 3, 1, 10, 0, tzinfo=UTC).timestamp()
DAY_B = datetime(2024, 3, 2, 9, 0, tzinfo=UTC).timestamp()

HUMAN = RawOutcome(answered=True, q850_cause=16, amd_status=AmdStatus.HUMAN)
BUSY = RawOutcome(answered=False, q850_cause=17, sip_code=486)
MACHINE = RawOutcome(answered=True, q850_cause=16, amd_status=AmdStatus.MACHINE)
PLAIN = RawOutcome(answered=True, q850_cause=16)  # answered, AMD off
NOTSURE = RawOutcome(answered=True, q850_cause=16, amd_status=AmdStatus.NOTSURE)
REJECTED = RawOutcome(answered=False, q850_cause=21, sip_code=603)

#: (raw outcome, ended at, talk seconds or None)
ATTEMPTS = [
    (HUMAN, DAY_A, 12.5),
    (BUSY, DAY_A + 60, None),
    (MACHINE, DAY_A + 120, 20.0),
    (PLAIN, DAY_B, 30.0),
    (NOTSURE, DAY_B + 60, 40.0),
    (REJECTED, DAY_B + 120, None),
]


@dataclass(frozen=True, slots=True)
class Written:
    call_id: str
    record: dict[str, str]


async def record_attempt(
    store: RedisStore, cid: int, call_id: str, raw: RawOutcome, ended_at: float, talk: float | None
) -> Written:
    """Claim the next due contact and finish it as the engine would after ``raw``."""
    granted = await claim(store, cid, call_id, trunk=TRUNK)
    assert granted.kind == "ok", granted
    call = LiveCall(
        call_id=call_id,
        campaign_id=cid,
        trunk=TRUNK,
        contact_id=granted.contact_id,
        phone=granted.phone,
        attempts=granted.attempts,
        tech_failures=granted.tech_failures,
        claimed_at=ended_at - 60,
        engine_id="e1",
        dial=granted.dial,
    )
    answered_at = ended_at - talk if talk is not None else None
    ended = CallEnded(call_id, raw, ended_at=ended_at, answered_at=answered_at)
    outcome = classify(raw)
    decision = decide(
        outcome,
        attempts_used=call.attempts,
        technical_failures=call.tech_failures,
        policy=RetryPolicy(),
        now=ended_at,
    )
    record = call_record(call, ended, outcome, decision)
    assert await store.finish(
        cid,
        TRUNK,
        call_id,
        call.contact_id,
        contact_status=decision.contact_status,
        attempts_used=decision.attempts_used - call.attempts,
        tech_failures=decision.technical_failures,
        retry_at_ms=int(decision.retry_at * 1000) if decision.retry_at is not None else None,
        record=record,
    )
    return Written(call_id, record)


async def scenario(store: RedisStore) -> tuple[int, list[Written]]:
    """A running campaign: 5 dialable contacts + 1 invalid + 1 do-not-call; 6 attempts made.

    Outcome: contacts answered 3, rejected 1, pending 1 (never dialed), invalid 1, dnc 1.
    """
    settings = CampaignSettings(name="analytics", trunk=TRUNK, max_channels=5, cps=5)
    cid = await store.create_campaign("analytics", TRUNK, json.dumps(settings.to_dict()))
    list_id = await store.add_list(cid)
    contacts = [ContactInput(f"+1212555{i:04d}") for i in range(5)]
    contacts += [
        ContactInput("123", status=CallStatus.INVALID_NUMBER),
        ContactInput("+12125559999", status=CallStatus.DO_NOT_CALL),
    ]
    await store.add_contacts(cid, list_id, contacts)
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    written = [
        await record_attempt(store, cid, f"call-{n}", raw, ended, talk)
        for n, (raw, ended, talk) in enumerate(ATTEMPTS)
    ]
    return cid, written
