"""The Redis ACL of ops/redis/users.acl on a private redis-server: the dialer user can do what
the store, the importer and the DNC lists need, and nothing dangerous; the default user is off.

The engine, API and CLI run against the ACL'd local stack in the integration tests.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.errors import StoreError
from dialer.importer import import_csv
from dialer.store import RedisStore
from dialer.store.dnc import DncStore
from dialer.store.queries import campaign_known, contacts_page, set_identity
from ops.localstack.redis_server import ACL_TEMPLATE, RedisServer, RedisUsers, ping, url
from tests.unit.store_helpers import add_usage, claim, finish, mark_originated, publish


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(
        workdir=Path(tmp_path_factory.mktemp("redis-acl")), users=RedisUsers.generate()
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def dialer_client(acl_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(acl_server.url, driver_info=None)
    yield client
    await client.aclose()


@pytest.fixture
async def acl_store(acl_server: RedisServer, namespace: str) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(acl_server.url, namespace=namespace)
    yield store
    await store.aclose()


def test_the_rendered_acl_has_no_comment_and_no_password_in_clear() -> None:
    users = RedisUsers.generate()
    text = users.acl()
    assert [line.split()[1] for line in text.splitlines()] == ["default", "admin", "dialer"]
    assert users.dialer_secret not in text
    assert users.admin_secret not in text
    assert "#" not in "".join(line.split(" #", 1)[0] for line in text.splitlines())
    assert "${" not in text
    assert "user default off" in ACL_TEMPLATE.read_text()


async def test_the_dialer_user_runs_a_campaign_through_the_store(
    acl_store: RedisStore, namespace: str
) -> None:
    store = acl_store
    await store.ping()
    cid = await store.create_campaign("acl", "trunk1", "{}")
    report = await import_csv(store, cid, io.BytesIO(b"phone\n+33612345678\n+33612345679\n"))
    assert report.imported == 2
    dnc = DncStore(store, default_region="FR")
    assert await dnc.add(["+33612345679"], campaign=cid) == 1
    assert await dnc.contains("+33612345679", cid)
    await store.transition(cid, {CampaignStatus.DRAFT}, CampaignStatus.RUNNING)
    assert await store.list_campaigns()
    granted = await claim(store, cid, "call-1")
    assert granted.kind == "ok"
    assert await mark_originated(store, "call-1", cid)
    assert await finish(store, cid, "call-1", granted.contact_id, CallStatus.ANSWERED)
    assert [fields["outcome"] for _, fields in await store.records(cid)] == ["answered"]
    assert await add_usage(store, cid, attempts=1, talk_seconds=1.5)
    await publish(store, f"{cid}:pause")
    await store.transition(cid, {CampaignStatus.RUNNING}, CampaignStatus.PAUSED)
    await store.stop_list(cid, 1, CallStatus.NOT_DIALED)
    assert await store.counts(cid)
    assert await store.campaign_stats(cid)
    assert await set_identity(store, cid, name="acl-2", trunk="trunk1")  # WATCH / MULTI
    assert await contacts_page(store, cid)
    await store.delete_campaign(cid)
    assert await campaign_known(store, cid)  # its records outlive it


async def test_scripts_are_loaded_again_after_a_flush(
    acl_server: RedisServer, acl_store: RedisStore
) -> None:
    admin = aioredis.Redis.from_url(acl_server.admin_url)
    try:
        await admin.script_flush()  # the admin's: a restarted Redis has no scripts either
    finally:
        await admin.aclose()
    cid = await acl_store.create_campaign("acl", "trunk1", "{}")  # EVALSHA, NOSCRIPT, SCRIPT LOAD
    assert (await acl_store.get_campaign(cid)).name == "acl"


async def test_a_restart_replays_the_dialer_users_writes_from_the_aof(
    tmp_path: Path, namespace: str
) -> None:
    """Redis replays the AOF as the default user and re-checks the ACL at every EXEC: with a
    default user stripped of its permissions, the scripts' writes (MULTI/EXEC blocks in the
    AOF) were dropped at the restart. SIGKILL: the AOF was written before the replies."""
    server = RedisServer(workdir=tmp_path / "redis", users=RedisUsers.generate())
    server.start()
    try:
        store = RedisStore.from_url(server.url, namespace=namespace)
        try:
            cid = await store.create_campaign("kept", "trunk1", "{}")  # a Lua script
            await add_usage(store, cid, attempts=2, talk_seconds=3.0)  # MULTI/EXEC
            server.kill()
            server.start()
            assert (await store.get_campaign(cid)).name == "kept"
            assert (await store.usage(cid)).attempts == 2
        finally:
            await store.aclose()
    finally:
        server.stop()
    assert "CRITICAL" not in (tmp_path / "redis" / "redis.log").read_text()


async def test_the_default_user_is_refused(acl_server: RedisServer) -> None:
    assert not ping(acl_server.port)
    anonymous = aioredis.Redis.from_url(url(acl_server.port))
    default = aioredis.Redis.from_url(url(acl_server.port, "default", "anything"))
    wrong = aioredis.Redis.from_url(url(acl_server.port, "dialer", "not-the-secret"))
    try:
        # redis-py opens with HELLO, which an unauthenticated client is refused
        with pytest.raises(AuthenticationError, match="NOAUTH|authenticated"):
            await anonymous.ping()
        for client in (default, wrong):
            with pytest.raises(AuthenticationError, match="WRONGPASS|invalid"):
                await client.ping()
    finally:
        for client in (anonymous, default, wrong):
            await client.aclose()


@pytest.mark.parametrize(
    "command",
    [
        ("FLUSHALL",),
        ("FLUSHDB",),
        ("CONFIG", "GET", "dir"),
        ("CONFIG", "SET", "appendonly", "no"),
        ("KEYS", "*"),
        ("KEYS", "dialer:*"),
        ("SCAN", "0"),
        ("DEBUG", "SLEEP", "0"),
        ("SHUTDOWN", "NOSAVE"),
        ("INFO",),
        ("ACL", "LIST"),
        ("EVAL", "return 1", "0"),
        ("SCRIPT", "FLUSH"),
        ("BGREWRITEAOF",),
        ("MONITOR",),
        ("SELECT", "1"),
        ("GET", "other:key"),
        ("SET", "key-outside", "1"),
        ("PUBLISH", "other:control", "x"),
        ("EVALSHA", "0" * 40, "1", "other:key"),
    ],
)
async def test_the_dialer_user_is_refused_dangerous_commands_and_other_keys(
    acl_server: RedisServer, dialer_client: aioredis.Redis, command: tuple[str, ...]
) -> None:
    admin = aioredis.Redis.from_url(acl_server.admin_url, decode_responses=True)
    try:  # ACL DRYRUN: the ACL refuses it (DEBUG is refused before the ACL is asked, too)
        verdict = await admin.execute_command(  # type: ignore[no-untyped-call]
            "ACL", "DRYRUN", "dialer", *command
        )
    finally:
        await admin.aclose()
    assert verdict != "OK"
    assert "permissions" in verdict
    if command[0] != "DEBUG":
        with pytest.raises(NoPermissionError):
            await dialer_client.execute_command(*command)  # type: ignore[no-untyped-call]


async def test_a_script_touching_a_key_outside_the_namespace_is_refused(
    acl_server: RedisServer, dialer_client: aioredis.Redis
) -> None:
    sha = await dialer_client.script_load("return redis.call('GET', 'other:key')")
    with pytest.raises(ResponseError, match="NOPERM|can't access"):
        await dialer_client.evalsha(sha, 0)
    admin = aioredis.Redis.from_url(acl_server.admin_url, decode_responses=True)
    try:
        assert await admin.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        await admin.aclose()


async def test_a_namespace_outside_the_acl_is_a_clear_store_error(
    acl_server: RedisServer,
) -> None:
    store = RedisStore.from_url(acl_server.url, namespace="elsewhere")
    try:
        with pytest.raises(StoreError, match="ACL.*DIALER_NAMESPACE"):
            await store.create_campaign("x", "trunk1", "{}")
    finally:
        await store.aclose()
