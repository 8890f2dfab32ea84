"""Issue 15: what a campaign, a contact, the API or a stored setting supplies stays data.

On the real stack (Asterisk 22, the shipped extensions.conf, the SIPp voicemail callee), values
that the old ``ExecIf($["${DIALER_VM_MESSAGE}" != ""]?Playback(${DIALER_VM_MESSAGE}))`` ran as
dialplan (a file written, a second call dialed, a forged DialerAMD result) are sent three ways:
straight to Asterisk as Originate variables (an old engine, another originator), through the
engine as contact variables and as settings written into Redis behind the API's back, and
through the API, which refuses them. Each time: no file, no channel but the call itself, the
AMD result Asterisk found, and Asterisk still answering.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dialer.domain.campaign import CampaignSettings
from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.engine.control import CampaignControl
from dialer.errors import ValidationError
from dialer.pbx.ami.client import AmiClient
from dialer.pbx.ami.codec import Message
from dialer.pbx.base import OriginateRequest
from dialer.pbx.freeswitch.adapter import FreeSwitchAdapter, FreeSwitchSettings, encode_value
from dialer.store.models import ContactInput
from dialer.store.redis_store import RedisStore
from ops.localstack.freeswitch import esl_api
from ops.localstack.numberplan import Behaviour, number
from ops.localstack.stack import StackInfo
from tests.integration.conftest import freeswitch_missing
from tests.integration.engine_helpers import (
    engine_settings,
    running_engine,
    wait_records,
    wait_status,
)
from tests.integration.faults_helpers import watching_freeswitch
from tests.unit.api_helpers import OPERATOR, api_client, error_of

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

B = Behaviour


def payloads(marker: str, victim: str) -> list[str]:
    """Hostile values for a dialplan knob: the issue's and more (``marker``: a file name that
    must never appear; ``victim``: a number that must never be dialed)."""
    return [
        f'" & 0 & "x):Set(FILE(/tmp/{marker})=pwned)',
        f"x):Set(FILE(/tmp/{marker})=pwned)",
        f'" & 0 & "x):Dial(PJSIP/{victim}@carrier)',
        '" & 0 & "x):UserEvent(DialerAMD,Status: HUMAN,Cause: forged)',
        f'" & 0 & "x):System(touch /tmp/{marker})',
        f"a/b):0:1&/tmp/{marker}",
        f"../../../../tmp/{marker}",
        "beep,noanswer",
        f"${{FILE(/tmp/{marker})}}",
        "1 + 1]?dialer-inbound,s,1:x",
    ]


@dataclass
class Seen:
    """Every event the watching AMI user received, in order."""

    events: list[Message] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def all(self, event: str, **match: str) -> list[Message]:
        return [
            m
            for m in self.events
            if m.event == event and all(m.get(k) == v for k, v in match.items())
        ]

    async def wait(self, done: int, within: float) -> None:
        """Until ``done`` Hangups were seen."""
        async with asyncio.timeout(within), self.changed:
            await self.changed.wait_for(lambda: len(self.all("Hangup")) >= done)


@asynccontextmanager
async def seeing(ami: AmiClient) -> AsyncIterator[Seen]:
    seen = Seen()

    async def collect() -> None:
        async for item in ami.events():
            if isinstance(item, Message):
                seen.events.append(item)
                async with seen.changed:
                    seen.changed.notify_all()

    task = asyncio.create_task(collect())
    try:
        yield seen
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


@contextmanager
def no_file_appears(stack: StackInfo, marker: str) -> Iterator[None]:
    paths = [Path("/tmp") / marker, stack.root / "tmp" / marker]
    yield
    written = [str(p) for p in paths if p.exists()]
    for p in paths:
        p.unlink(missing_ok=True)
    assert not written, f"the dialplan wrote {written}"


async def alive(ami: AmiClient) -> None:
    response = await ami.send_action("Ping", timeout=5)
    assert response.get("Response") == "Success"


def amd_statuses(seen: Seen) -> list[str | None]:
    return [m.get("Status") for m in seen.all("UserEvent", UserEvent="DialerAMD")]


async def test_hostile_knobs_sent_straight_to_asterisk_are_data(
    ami: AmiClient, stack: StackInfo
) -> None:
    """Every knob of the dialplan set to each payload at once, on a voicemail callee with AMD on:
    AMD still says MACHINE, the dialplan hangs up, nothing else runs."""
    marker = f"dialer-inject-{secrets.token_hex(6)}"
    victim = number(B.WAIT_FOR_BYE, secrets.randbelow(10_000))
    values = payloads(marker, victim)
    with no_file_appears(stack, marker):
        async with seeing(ami) as seen:
            ids = []
            for value in values:
                call_id = f"inj-{secrets.token_hex(6)}"
                ids.append(call_id)
                response = await ami.send_action(
                    "Originate",
                    {
                        "Channel": f"PJSIP/{number(B.VOICEMAIL, secrets.randbelow(10_000))}"
                        f"@{stack.trunk}",
                        "ChannelId": call_id,
                        "Context": stack.originate_context,
                        "Exten": stack.originate_exten,
                        "Priority": "1",
                        "Async": "true",
                        "Timeout": "10000",
                    },
                    variables={
                        "DIALER_AMD": "1",
                        "DIALER_MAX_TALK": value,
                        "DIALER_IVR_TIMEOUT": value,
                        "DIALER_VM_MESSAGE": value,
                    },
                )
                assert response.get("Response") == "Success", response
            await seen.wait(len(values), within=40)
            await asyncio.sleep(1.0)  # time for anything the dialplan would have started
        await alive(ami)
    channels = {m.get("Uniqueid") for m in seen.all("Newchannel")}
    assert channels == set(ids), f"channels beyond the calls: {channels - set(ids)}"
    assert amd_statuses(seen) == ["MACHINE"] * len(values)
    for call_id in ids:  # the dialplan's own hang-up after the machine branch, within ~2 s
        (hangup,) = seen.all("Hangup", Uniqueid=call_id)
        assert hangup.get("Cause") == "16", hangup


async def test_a_plain_sound_name_is_still_played(ami: AmiClient, stack: StackInfo) -> None:
    """The grammar's values work: an unknown name reaches Playback() whole (Asterisk logs it
    as missing), a name with a ',' never reaches it."""
    log = stack.root / f"var/lib/dialer-{stack.name}/log/messages.log"
    name = f"custom/dialer-missing-{secrets.token_hex(4)}"
    before = log.read_text(errors="replace") if log.exists() else ""
    async with seeing(ami) as seen:
        for value in (name, f"{name}x,noanswer"):
            await ami.send_action(
                "Originate",
                {
                    "Channel": f"PJSIP/{number(B.VOICEMAIL, secrets.randbelow(10_000))}"
                    f"@{stack.trunk}",
                    "ChannelId": f"inj-{secrets.token_hex(6)}",
                    "Context": stack.originate_context,
                    "Exten": stack.originate_exten,
                    "Priority": "1",
                    "Async": "true",
                    "Timeout": "10000",
                },
                variables={"DIALER_AMD": "1", "DIALER_VM_MESSAGE": value},
            )
        await seen.wait(2, within=30)
    logged = log.read_text(errors="replace")[len(before) :]
    assert f"{name}'" in logged or f"{name} " in logged, logged[-2000:]
    assert f"{name}x" not in logged


async def _campaign(
    store: RedisStore, name: str, phones: list[str], vars_: dict[str, str] | None = None
) -> int:
    control = CampaignControl(store)
    settings = CampaignSettings(
        name=name, trunk="carrier", max_channels=5, cps=5.0, ring_timeout=10.0, amd=True
    )
    cid = await control.create(settings)
    await control.add_list(cid, [ContactInput(phone=p, vars=vars_ or {}) for p in phones])
    return cid


async def _tamper(store: RedisStore, cid: int, **changes: object) -> None:
    """Write settings the domain refuses straight into Redis (an old store, a hand edit)."""
    data = json.loads((await store.get_campaign(cid)).settings_json)
    await store.update_settings(cid, json.dumps({**data, **changes}), allowed=tuple(CampaignStatus))


async def test_the_engine_dials_hostile_contact_variables_as_data(
    ami: AmiClient, stack: StackInfo
) -> None:
    """Contact fields named like the knobs, and values that would split the AMI Variable
    header into more variables, reach the channel only as DIALER_VAR_* data; and a campaign
    whose stored context is not configured is not dialed at all."""
    marker = f"dialer-inject-{secrets.token_hex(6)}"
    victim = number(B.WAIT_FOR_BYE, secrets.randbelow(10_000))
    hostile = payloads(marker, victim)
    contact_vars = {
        "DIALER_VM_MESSAGE": hostile[0],
        "DIALER_AMD": "0",
        "DIALER_MAX_TALK": "1",
        "note": f"x,DIALER_VM_MESSAGE={hostile[2]},DIALER_AMD=0",
        "x,DIALER_AMD=0": hostile[3],
    }
    namespace = f"dialer:inj-{secrets.token_hex(4)}"
    settings = engine_settings(stack, namespace)
    store = RedisStore.from_url(stack.redis_url, namespace=namespace)
    try:
        phones = [number(B.VOICEMAIL, secrets.randbelow(10_000)) for _ in range(3)]
        cid = await _campaign(store, "contacts", phones, contact_vars)
        other = await _campaign(store, "context", [victim])
        await _tamper(store, other, context="default")  # a context DIALER_CONTEXTS lacks
        with no_file_appears(stack, marker):
            async with seeing(ami) as seen, running_engine(settings):
                control = CampaignControl(store)
                await control.start(other)
                await control.start(cid)
                assert await wait_records(store, cid, len(phones), within=40) == len(phones)
                await asyncio.sleep(1.0)
            await alive(ami)
        assert CampaignStatus((await store.get_campaign(other)).status) == CampaignStatus.RUNNING
        assert len(seen.all("Newchannel")) == len(phones), seen.all("Newchannel")
        assert amd_statuses(seen) == ["MACHINE"] * len(phones)
        counts = await store.counts(cid)
        assert counts[CallStatus.RETRY_SCHEDULED] == len(phones), counts  # voicemail: retried
    finally:
        await store.aclose()


async def test_hostile_settings_in_redis_never_reach_asterisk(
    ami: AmiClient, stack: StackInfo
) -> None:
    """Settings written behind the API's back: the engine reads them with
    CampaignSettings.from_dict, which raises ValidationError before any originate.

    The engine pauses such a campaign with the reason (issue 15 item 5) and goes on: one
    campaign per payload, each started with valid settings and then tampered with."""
    marker = f"dialer-inject-{secrets.token_hex(6)}"
    victim = number(B.WAIT_FOR_BYE, secrets.randbelow(10_000))
    namespace = f"dialer:inj-{secrets.token_hex(4)}"
    settings = engine_settings(stack, namespace)
    store = RedisStore.from_url(stack.redis_url, namespace=namespace)
    try:
        for hostile in payloads(marker, victim)[:4]:
            cid = await _campaign(store, "tampered", [number(B.VOICEMAIL, 1)])
            await CampaignControl(store).start(cid)
            await _tamper(store, cid, variables={"DIALER_VM_MESSAGE": hostile})
            with no_file_appears(stack, marker):
                async with seeing(ami) as seen, running_engine(settings):
                    await wait_status(store, cid, {CampaignStatus.PAUSED}, within=10)
                await asyncio.sleep(0.5)
            assert not seen.all("Newchannel"), seen.all("Newchannel")
            reason = (await store.get_campaign(cid)).status_reason
            assert reason.startswith("invalid settings: variables.DIALER_VM_MESSAGE"), reason
            with pytest.raises(ValidationError, match="variables.DIALER_VM_MESSAGE"):
                CampaignSettings.from_dict(
                    json.loads((await store.get_campaign(cid)).settings_json)
                )
        await alive(ami)
    finally:
        await store.aclose()


async def test_the_api_refuses_hostile_values_on_create_and_edit(stack: StackInfo) -> None:
    namespace = f"dialer:inj-{secrets.token_hex(4)}"
    store = RedisStore.from_url(stack.redis_url, namespace=namespace)
    body = {"name": "api", "trunk": "carrier", "max_channels": 1, "cps": 1}
    try:
        async with api_client(store) as client:
            ok = await client.post("/campaigns", json=body, headers=OPERATOR)
            assert ok.status_code == 201, ok.text
            cid = ok.json()["id"]
            stored = (await store.get_campaign(cid)).settings_json
            for hostile in payloads("x", "+12015000000"):
                for name in ("DIALER_VM_MESSAGE", "DIALER_MAX_TALK", "DIALER_IVR_TIMEOUT"):
                    bad = {"variables": {name: hostile}}
                    created = await client.post(
                        "/campaigns", json={**body, **bad}, headers=OPERATOR
                    )
                    edited = await client.patch(f"/campaigns/{cid}", json=bad, headers=OPERATOR)
                    for response in (created, edited):
                        assert response.status_code == 422, response.text
                        assert f"variables.{name}" in error_of(response)["message"]
            refused: list[dict[str, object]] = [
                {"variables": {"DIALER_AMD": "0"}},
                {"context": "default"},
            ]
            for change in refused:
                response = await client.patch(f"/campaigns/{cid}", json=change, headers=OPERATOR)
                assert response.status_code == 422, response.text
            assert (await store.get_campaign(cid)).settings_json == stored
            assert len(await store.list_campaigns(offset=0, limit=100)) == 1
    finally:
        await store.aclose()


# the applications dialer.xml runs (its actions and anti-actions)
# every application pbx-config/freeswitch/dialplan/dialer.xml names: nothing else may run
DIALPLAN_APPS = frozenset(
    re.findall(
        r'application="([a-z_]+)"',
        (Path(__file__).parents[2] / "pbx-config/freeswitch/dialplan/dialer.xml").read_text(),
    )
)


def freeswitch_payloads(marker: str, victim: str) -> list[str]:
    """Hostile values for the FreeSWITCH dialplan's knobs: its own expansion and syntax."""
    return [
        f"${{system(touch /tmp/{marker})}}",
        f"1${{bgapi(originate sofia/gateway/carrier/{victim} &park())}}",
        f"x,DIALER_AMD=0,api_hangup_hook=system::touch /tmp/{marker}",
        f"1 ALLOTTED_TIMEOUT}}{{x=y}}:_:sofia/gateway/carrier/{victim}",
        f"beep' & system touch /tmp/{marker} & '",
        f"../../../../tmp/{marker}",
        "7 NORMAL_CLEARING\n\nbgapi status",
        f"^^:{marker}:x=y",
        f"file_string://{marker}!tone_stream://%(100,0,440)",
        *payloads(marker, victim)[:4],
    ]


async def test_hostile_knobs_sent_straight_to_freeswitch_are_data(stack: StackInfo) -> None:
    """FreeSWITCH's dialplan (pbx-config/freeswitch/dialplan/dialer.xml) with every knob set
    to each payload, through the adapter (which sends them percent-encoded; FreeSWITCH keeps
    them so in the channel variables): no payload reaches an application's data,
    no file, no channel but the calls, the talk limit falls back to its default, and a valid
    knob still works."""
    reason = freeswitch_missing()
    if reason:
        pytest.skip(reason)
    marker = f"dialer-inject-{secrets.token_hex(6)}"
    victim = number(B.WAIT_FOR_BYE, secrets.randbelow(10_000))
    values = freeswitch_payloads(marker, victim)
    adapter = FreeSwitchAdapter(FreeSwitchSettings.from_url(stack.esl_url))
    ids: dict[str, str] = {}
    with no_file_appears(stack, marker):
        async with watching_freeswitch(stack) as seen, adapter:
            for value in [*values, "7"]:
                call_id = f"dlr-inj-{secrets.token_hex(6)}"
                ids[call_id] = value
                control = value == "7"  # a valid talk limit, no AMD: the knob still works
                knobs = {
                    "DIALER_AMD": "0" if control else "1",
                    "DIALER_MAX_TALK": value,
                    "DIALER_IVR_TIMEOUT": value,
                    "DIALER_VM_MESSAGE": value,
                }
                await adapter.originate(
                    OriginateRequest(
                        call_id=call_id,
                        trunk=stack.trunk,
                        # 3 s: the talk limit and the start of the AMD step
                        number=number(
                            B.HOLD, secrets.randbelow(10_000), hold_s=1 if control else 3
                        ),
                        context=stack.originate_context,
                        ring_timeout=10.0,
                        variables=knobs,
                    )
                )
            async with asyncio.timeout(40):
                while not set(ids) <= set(seen.ended):
                    await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # time for anything the dialplan would have started
        body = esl_api(stack.esl_port, stack.esl_password, "status")
        assert body is not None
        assert "is ready" in body
    extra = set(seen.created) - set(ids)
    assert not extra, f"channels beyond the calls: {extra}"
    amd = Counter(seen.ended[c].get("variable_dialer_amd_status") for c in ids)
    apps = Counter(app for c in ids for app, _ in seen.executed_data[c])
    log.warning("FreeSWITCH knobs: %d calls, AMD %s, applications run %s", len(ids), amd, apps)
    for call_id, value in ids.items():
        event = seen.ended[call_id]
        # the exact bytes, as data: percent-encoded as the adapter sent them
        assert event.get("variable_DIALER_MAX_TALK") == encode_value(value)
        steps = seen.executed_data[call_id]
        for app, data in steps:
            assert marker not in data, (app, data)
            assert victim not in data, (app, data)
        # the limit + 1 s (sched_hangup fires up to 1 s early: dialer.xml), else the default
        limit = "+8 NORMAL_CLEARING" if value == "7" else "+121 NORMAL_CLEARING"
        assert steps[0] == ("sched_hangup", limit), steps
        assert {app for app, _ in steps} <= DIALPLAN_APPS, steps
