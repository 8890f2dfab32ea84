"""Stored campaign settings that fail validation when read (issue 15, item 5).

Every reader (the engine's supervisor and results writer, the control commands, the API and
the CLI) gets one error, InvalidSettings "invalid settings: ...", or copes without the
settings; the real-stack test is tests/integration/test_bad_settings.py.
"""

from __future__ import annotations

import json
from typing import cast

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.config import EngineSettings
from dialer.domain.campaign import CampaignSettings
from dialer.domain.retry import RetryPolicy
from dialer.domain.statuses import CampaignStatus
from dialer.engine.calls import LiveCall
from dialer.engine.control import CampaignControl
from dialer.engine.engine import Engine
from dialer.errors import InvalidSettings, ValidationError
from dialer.pbx.base import PbxAdapter
from dialer.store import ContactInput, RedisStore
from ops.localstack.redis_server import RedisServer
from tests.unit.api_helpers import OPERATOR, VIEWER, api_client
from tests.unit.cli_helpers import make_cli

GOOD = {"name": "ok", "trunk": "carrier1", "max_channels": 2, "cps": 1.0}
BAD = {
    "control character": json.dumps({**GOOD, "variables": {"DIALER_VM_MESSAGE": "a\r\nAction: x"}}),
    "not JSON": "{nope",
    "negative": json.dumps({**GOOD, "max_channels": -1}),
    "a list": "[1, 2]",
    "deep": "[" * 100_000 + "]" * 100_000,
}


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def stored(store: RedisStore, text: str, status: CampaignStatus | None = None) -> int:
    cid = await store.create_campaign("bad", "carrier1", json.dumps(GOOD))
    list_id = await store.add_list(cid)
    await store.add_contacts(cid, list_id, [ContactInput("+12125550100")])
    await store.client.hset(store.keys.campaign(cid), "settings", text)
    if status is not None:
        await store.transition(cid, (CampaignStatus.DRAFT,), status)
    return cid


# -- the domain: one error, naming the problem ---------------------------------------------------


@pytest.mark.parametrize("text", BAD.values(), ids=BAD.keys())
def test_stored_settings_fail_with_one_error_naming_the_problem(text: str) -> None:
    with pytest.raises(InvalidSettings) as info:
        CampaignSettings.from_json(text)
    reason = str(info.value)
    assert reason.startswith("invalid settings: ")
    assert len(reason) <= 300
    assert isinstance(info.value, ValidationError)  # the API answers 422


def test_the_reason_names_the_field() -> None:
    with pytest.raises(
        InvalidSettings, match=r"variables\.DIALER_VM_MESSAGE must be a sound file name"
    ):
        CampaignSettings.from_json(BAD["control character"])
    with pytest.raises(InvalidSettings, match="max_channels must be an integer"):
        CampaignSettings.from_json(BAD["negative"])
    with pytest.raises(InvalidSettings, match="not JSON"):
        CampaignSettings.from_json(BAD["not JSON"])
    assert CampaignSettings.from_json(json.dumps(GOOD)).max_channels == 2


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_FIELDS = st.dictionaries(
    st.sampled_from(
        [
            "name",
            "trunk",
            "max_channels",
            "cps",
            "retry",
            "window",
            "limits",
            "variables",
            "starts_at",
            "ends_at",
            "caller_id",
            "amd",
            "ring_timeout",
        ]
    ),
    _JSON,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_JSON, _FIELDS, st.builds(lambda f: {**GOOD, **f}, _FIELDS)))
def test_whatever_is_stored_only_invalid_settings_is_raised(data: object) -> None:
    try:
        CampaignSettings.from_json(json.dumps(data))
    except InvalidSettings:
        pass


# -- the engine and the control commands -------------------------------------------------------


async def test_a_scheduled_campaign_with_bad_settings_is_paused_not_raised(
    store: RedisStore,
) -> None:
    cid = await stored(store, BAD["negative"], CampaignStatus.SCHEDULED)
    control = CampaignControl(store)
    assert await control.open_window(await store.get_campaign(cid)) is CampaignStatus.PAUSING
    campaign = await store.get_campaign(cid)
    assert campaign.status_reason.startswith("invalid settings: max_channels")
    with pytest.raises(InvalidSettings, match="max_channels"):  # until edited
        await control.resume(cid)


async def test_results_are_classified_by_the_default_policy_when_settings_are_bad(
    store: RedisStore,
) -> None:
    cid = await stored(store, BAD["not JSON"])
    engine = Engine(EngineSettings(engine_id="e1"), store, cast(PbxAdapter, None))
    call = LiveCall(
        call_id="c1",
        campaign_id=cid,
        trunk="carrier1",
        contact_id=1,
        phone="+12125550100",
        attempts=0,
        tech_failures=0,
        claimed_at=0.0,
        engine_id="e1",
    )
    fallback = await engine._settings_of(call)
    assert fallback.retry == RetryPolicy()


# -- the faces ---------------------------------------------------------------------------------


async def test_the_api_lists_and_shows_a_campaign_with_bad_settings(store: RedisStore) -> None:
    ids = {name: await stored(store, text) for name, text in BAD.items()}
    async with api_client(store) as client:
        listed = await client.get("/campaigns", headers=VIEWER)
        assert listed.status_code == 200
        views = {c["id"]: c for c in listed.json()["campaigns"]}
        for name, cid in ids.items():
            assert views[cid]["settings_error"].startswith("invalid settings: "), name
            one = await client.get(f"/campaigns/{cid}", headers=VIEWER)
            assert one.status_code == 200
        assert views[ids["not JSON"]]["settings"] is None
        started = await client.post(f"/campaigns/{ids['negative']}/start", headers=OPERATOR)
        assert started.status_code == 422
        assert "invalid settings: max_channels" in started.json()["error"]["message"]


async def test_an_edit_repairs_settings_that_are_not_json(store: RedisStore) -> None:
    cid = await stored(store, BAD["not JSON"])
    async with api_client(store) as client:
        partial = await client.patch(f"/campaigns/{cid}", json={"cps": 2}, headers=OPERATOR)
        assert partial.status_code == 422  # nothing to merge into: the whole settings
        whole = await client.patch(f"/campaigns/{cid}", json=GOOD, headers=OPERATOR)
        assert whole.status_code == 200, whole.text
        assert whole.json()["settings_error"] is None


def test_the_cli_shows_a_campaign_with_bad_settings(
    redis_server: RedisServer,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli = make_cli(redis_server, namespace, capsys, monkeypatch)
    cid = cli.store_call(lambda s: stored(s, BAD["not JSON"]))
    shown = cli.ok("campaign", "show", str(cid))
    assert "settings: invalid settings: not JSON" in shown.out
    doc = json.loads(cli.ok("campaign", "show", str(cid), "--json").out)
    assert doc["settings"] is None
    assert doc["settings_error"].startswith("invalid settings: not JSON")
    assert str(cid) in cli.ok("campaign", "list").out
    other = cli.store_call(lambda s: stored(s, BAD["control character"]))
    assert "variables.DIALER_VM_MESSAGE" in cli.ok("campaign", "show", str(other)).out
