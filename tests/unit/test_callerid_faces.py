"""Caller ids through the API, the CLI and the campaign file (settings where the others are)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from dialer.domain.callerid import CallerIdPool, CallerIdSource, PoolMode
from dialer.domain.campaign import CampaignSettings
from dialer.store import RedisStore
from dialer.store.callerid import list_caller_ids
from ops.localstack.redis_server import RedisServer
from tests.unit.api_helpers import (
    OPERATOR,
    VIEWER,
    api_client,
    csv_body,
    error_of,
    new_campaign,
    upload,
)
from tests.unit.cli_helpers import Cli, campaign_file, make_cli, numbers, write

pytestmark = pytest.mark.redis

NJ, CHICAGO, SF = "+12015550100", "+13125550100", "+14155550100"
ROWS = ["+12015600001,Ann,r1", "+13125550199,Bob,r2"]


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> RedisStore:
    return RedisStore(redis_client, namespace)


@pytest.fixture
async def client(store: RedisStore) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(store) as c:
        yield c


@pytest.fixture
def cli(
    redis_server: RedisServer,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    return make_cli(redis_server, namespace, capsys, monkeypatch)


async def test_api_campaign_pool_and_list_caller_id(
    client: httpx.AsyncClient, store: RedisStore
) -> None:
    pool = {"numbers": [NJ, CHICAGO], "mode": "local", "fallback": SF}
    cid = await new_campaign(client, caller_id_pool=pool)
    shown = (await client.get(f"/campaigns/{cid}", headers=VIEWER)).json()
    assert shown["settings"]["caller_id_pool"] == pool
    assert (await upload(client, cid, csv_body(ROWS))).status_code == 201
    url = f"/campaigns/{cid}/lists/1/caller-id"
    got = await client.get(url, headers=VIEWER)
    assert got.json() == {"id": 1, "caller_id": None, "caller_id_pool": None}
    body = {"caller_id_pool": {"numbers": [SF, NJ]}}
    put = await client.put(url, json=body, headers=OPERATOR)
    assert put.status_code == 200, put.text
    expected = {"numbers": [SF, NJ], "mode": "rotate", "fallback": None}
    assert put.json() == {"id": 1, "caller_id": None, "caller_id_pool": expected}
    assert (await client.get(url, headers=VIEWER)).json()["caller_id_pool"] == expected
    assert await list_caller_ids(store, cid) == {1: CallerIdSource(None, CallerIdPool((SF, NJ)))}
    # a viewer may read, not write
    assert (await client.put(url, json=body, headers=VIEWER)).status_code == 403
    # hostile or malformed values never reach the store
    for bad in (
        {"caller_id": '"x" <+1>\r\nVia: evil'},
        {"caller_id_pool": {"numbers": ["+1201555\nX"]}},
        {"caller_id_pool": {"numbers": [NJ], "mode": "random"}},
        {"pool": [NJ]},
    ):
        refused = await client.put(url, json=bad, headers=OPERATOR)
        assert refused.status_code == 422, (bad, refused.text)
        assert error_of(refused)["code"]
    assert (await client.put(url, content=b"[", headers=OPERATOR)).status_code == 400
    missing = await client.put(f"/campaigns/{cid}/lists/9/caller-id", json={}, headers=OPERATOR)
    assert missing.status_code == 404
    refused_pool = await client.patch(
        f"/campaigns/{cid}", json={"caller_id_pool": {"numbers": ["x"]}}, headers=OPERATOR
    )
    assert refused_pool.status_code == 422
    cleared = await client.put(url, json={}, headers=OPERATOR)
    assert cleared.json() == {"id": 1, "caller_id": None, "caller_id_pool": None}
    assert await list_caller_ids(store, cid) == {}


async def test_api_upload_sets_the_lists_caller_id(
    client: httpx.AsyncClient, store: RedisStore
) -> None:
    cid = await new_campaign(client)
    done = await upload(
        client,
        cid,
        csv_body(ROWS),
        caller_id_pool=f"{NJ},{CHICAGO}",
        caller_id_mode="local",
        caller_id_fallback=SF,
    )
    assert done.status_code == 201, done.text
    pool = CallerIdPool((NJ, CHICAGO), PoolMode.LOCAL, fallback=SF)
    assert await list_caller_ids(store, cid) == {1: CallerIdSource(None, pool)}
    refused = await upload(client, cid, csv_body(ROWS), caller_id_fallback=SF)  # no pool
    assert refused.status_code == 422
    refused = await upload(client, cid, csv_body(ROWS), caller_id="+1 (201)")
    assert refused.status_code == 422
    assert list(await store.list_status(cid)) == [1]  # nothing imported when refused


def test_cli_list_caller_id(cli: Cli, tmp_path: Path) -> None:
    path = campaign_file(
        tmp_path,
        f"caller_id_pool:\n  numbers: ['{NJ}', '{CHICAGO}']\n  mode: rotate\n",
    )
    cid = int(cli.ok("campaign", "create", str(path)).out)
    record = cli.store_call(lambda s: s.get_campaign(cid))
    settings = CampaignSettings.from_json(record.settings_json)
    assert settings.caller_id_pool == CallerIdPool((NJ, CHICAGO))

    people = write(tmp_path / "people.csv", "phone\n" + "\n".join(numbers(2)) + "\n")
    out = cli.ok(
        "list", "upload", str(cid), str(people), "--pool", f"{NJ}, {SF}", "--mode", "local"
    ).out
    assert f"list 1: caller-ID pool (local): {NJ}, {SF}" in out
    shown = cli.ok("list", "caller-id", str(cid), "1").out
    assert shown == f"list 1 of campaign {cid}: caller-ID pool (local): {NJ}, {SF}\n"
    out = cli.ok("list", "caller-id", str(cid), "1", "--caller-id", '"Sales" <+15005550001>').out
    assert out == f'list 1 of campaign {cid}: caller id "Sales" <+15005550001>\n'
    bad = cli("list", "caller-id", str(cid), "1", "--pool", "+1201\r\nX")
    assert bad.code != 0
    assert "numbers[0]" in bad.err
    assert cli("list", "caller-id", str(cid), "7").code != 0  # no such list
    cleared = cli.ok("list", "caller-id", str(cid), "1", "--clear").out
    assert cleared == f"list 1 of campaign {cid}: the campaign's caller id\n"
    assert cli.store_call(lambda s: list_caller_ids(s, cid)) == {}
    # a refused pool refuses the upload before anything is imported
    refused = cli("list", "upload", str(cid), str(people), "--fallback", SF)
    assert refused.code != 0
    assert list(cli.store_call(lambda s: s.list_status(cid))) == [1]


def test_campaign_file_refuses_a_bad_pool(cli: Cli, tmp_path: Path) -> None:
    path = campaign_file(tmp_path, "caller_id_pool:\n  numbers: ['+1201;x']\n")
    result = cli("campaign", "create", str(path))
    assert result.code != 0
    assert "caller_id_pool.numbers[0]" in result.err
