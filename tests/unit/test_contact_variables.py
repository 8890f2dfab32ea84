"""A contact with more variables than a call carries is refused at import (issue 15, item 6b).

What passes the import always fits one originate, on either PBX: the test builds the worst
case the limits allow (dialer.domain.variables) and encodes it as the runner and the adapters
do, for the AMI and for ESL.
"""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import cast

import pytest
import redis.asyncio as aioredis

from dialer.config import EngineSettings
from dialer.domain.campaign import CampaignSettings
from dialer.domain.variables import (
    MAX_CONTACT_VARIABLE_BYTES,
    MAX_CONTACT_VARIABLES,
)
from dialer.engine.calls import LiveCall
from dialer.engine.control import CampaignControl
from dialer.engine.engine import Engine
from dialer.engine.runner import CampaignRunner
from dialer.errors import ValidationError
from dialer.importer import ImportRefused, import_csv
from dialer.pbx.ami.codec import MAX_ACTION_HEADERS, encode_action
from dialer.pbx.asterisk import AsteriskAdapter, AsteriskSettings
from dialer.pbx.esl.client import EslSettings
from dialer.pbx.esl.codec import encode_command
from dialer.pbx.freeswitch.adapter import FreeSwitchSettings, originate_args
from dialer.pbx.sanitize import MAX_NAME_LENGTH, channel_variables
from dialer.store import ContactInput, RedisStore
from dialer.store.models import Claim

SETTINGS = {"name": "vars", "trunk": "carrier1", "max_channels": 2, "cps": 1.0}


def csv_file(headers: list[str], *rows: list[str]) -> io.BytesIO:
    lines = [",".join(headers), *(",".join(r) for r in rows)]
    return io.BytesIO(("\n".join(lines) + "\n").encode())


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


async def draft(store: RedisStore) -> int:
    return await store.create_campaign("vars", "carrier1", "{}")


@pytest.mark.redis
async def test_too_many_variable_columns_refuse_the_file_at_its_header(store: RedisStore) -> None:
    headers = ["phone", *(f"v{i}" for i in range(MAX_CONTACT_VARIABLES + 1))]
    row = ["+12125550100", *("x" for _ in range(MAX_CONTACT_VARIABLES + 1))]
    with pytest.raises(ImportRefused) as info:
        await import_csv(store, await draft(store), csv_file(headers, row))
    (error,) = info.value.report.errors
    assert error.line == 1
    assert "65 variable columns" in error.reason
    assert f"at most {MAX_CONTACT_VARIABLES} contact variables" in error.reason
    ok = await import_csv(store, await draft(store), csv_file(headers[:-1], row[:-1]))
    assert ok.imported == 1


@pytest.mark.redis
async def test_too_large_variables_refuse_the_file_at_their_line(store: RedisStore) -> None:
    big = "é" * (MAX_CONTACT_VARIABLE_BYTES // 4)  # 2 bytes each: half the budget per column
    rows = [["+12125550100", "a", "b"], ["+12125550101", big, big], ["+12125550102", "c", big]]
    with pytest.raises(ImportRefused) as info:
        await import_csv(store, await draft(store), csv_file(["phone", "x", "y"], *rows))
    assert [e.line for e in info.value.report.errors] == [3]
    reason = info.value.report.errors[0].reason
    assert f"a call carries at most {MAX_CONTACT_VARIABLE_BYTES} bytes" in reason
    assert info.value.report.imported == 0  # all or nothing


@pytest.mark.redis
async def test_contacts_added_without_a_file_are_checked_the_same(store: RedisStore) -> None:
    cid = await draft(store)
    many = {f"v{i}": "x" for i in range(MAX_CONTACT_VARIABLES + 1)}
    contacts = [ContactInput("+12125550100"), ContactInput("+12125550101", many)]
    with pytest.raises(ValidationError, match="contact 2: 65 variables"):
        await CampaignControl(store).add_list(cid, contacts)
    assert await store.list_status(cid) == {}  # refused before the list was created


def worst_case_request() -> tuple[CampaignRunner, LiveCall, Claim]:
    """The largest contact and campaign the limits let through, everything to escape."""
    value = '",()[]\\' * 64  # every character escaped on the AMI, percent-encoded on ESL
    campaign_vars = {  # every knob a campaign may set, each at its longest
        "DIALER_MAX_TALK": "86400",
        "DIALER_IVR_TIMEOUT": "60",
        "DIALER_VM_MESSAGE": "custom/" + "v" * 121,
    }
    settings = CampaignSettings.from_dict({**SETTINGS, "variables": campaign_vars})
    per_contact = MAX_CONTACT_VARIABLE_BYTES // MAX_CONTACT_VARIABLES
    contact_vars = {f"{i:02d}" + "n" * 62: value[: per_contact - 64] for i in range(64)}
    contact_vars["00" + "n" * 62] = value  # one value over the cut (MAX_VALUE_BYTES)
    engine = cast(Engine, SimpleNamespace(settings=EngineSettings()))  # read at construction
    runner = CampaignRunner(engine, 7, settings)
    claim = Claim("dlr-0123456789abcdef-1", 1, "+12125550100", contact_vars, 0, 0)
    call = LiveCall(
        call_id=claim.call_id,
        campaign_id=7,
        trunk="carrier1",
        contact_id=1,
        phone=claim.phone,
        attempts=0,
        tech_failures=0,
        claimed_at=0.0,
        engine_id="e1",
    )
    return runner, call, claim


def test_the_largest_contact_allowed_fits_one_ami_originate() -> None:
    runner, call, claim = worst_case_request()
    request = runner._request(call, claim)
    adapter = AsteriskAdapter(AsteriskSettings.from_url("ami://u:p@127.0.0.1:5038"))
    name, fields, variables = adapter._originate_action(request)
    data = encode_action(name, "action-1", {**fields, "CallerID": "+12125550199"}, variables)
    assert data.count(b"\r\n") - 1 <= MAX_ACTION_HEADERS


def test_the_largest_contact_allowed_fits_one_esl_originate() -> None:
    runner, call, claim = worst_case_request()
    request = runner._request(call, claim)
    args = originate_args(request, FreeSwitchSettings(esl=EslSettings()))
    data = encode_command("bgapi", " ".join(("originate", *args)), headers=[("Job-UUID", "j")])
    assert len(data) < 64 * 1024


def test_channel_variable_names_fit_freeswitch() -> None:
    (name,) = channel_variables({"n" * 100: "v"})
    assert name == ("DIALER_VAR_" + "n" * 100)[:MAX_NAME_LENGTH]
