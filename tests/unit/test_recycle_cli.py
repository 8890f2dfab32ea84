"""``dialer list recycle`` and ``dialer contact remove`` against the session's Redis."""

from __future__ import annotations

import pytest

from dialer.domain.statuses import CallStatus, CampaignStatus
from dialer.store import RedisStore
from ops.localstack.redis_server import RedisServer
from tests.unit.cli_helpers import Cli, make_cli
from tests.unit.store_helpers import claim, finish, running_campaign

pytestmark = pytest.mark.redis

C = CallStatus
S = CampaignStatus


@pytest.fixture
def cli(
    redis_server: RedisServer,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    return make_cli(redis_server, namespace, capsys, monkeypatch)


def test_recycle_and_remove(cli: Cli) -> None:
    async def setup(store: RedisStore) -> tuple[int, int]:
        cid, list_id = await running_campaign(store, 3)
        for i, outcome in enumerate([C.BUSY, C.ANSWERED, C.NO_ANSWER]):
            await claim(store, cid, f"k{i}")
            await finish(store, cid, f"k{i}", i + 1, outcome)
        await store.transition(cid, {S.RUNNING}, S.COMPLETED)
        return cid, list_id

    cid, list_id = cli.store_call(setup)
    bad = cli("list", "recycle", str(cid), str(list_id), "--status", "pending")
    assert bad.code == 2
    assert "cannot be recycled" in bad.err
    done = cli.ok(
        "list", "recycle", str(cid), str(list_id), "--status", "busy,no_answer", "--into", "new"
    )
    new = cid + 1
    assert done.lines == [
        f"list {list_id} of campaign {cid} (busy, no_answer): 2 contacts recycled into list 1 "
        f"of campaign {new} (new Draft campaign)"
    ]
    assert cli.ok("contact", "remove", str(new), "1").lines == [
        f"campaign {new}: 1 contact removed"
    ]
    refused = cli("contact", "remove", str(cid), "1")
    assert refused.code == 2
    assert "only in Draft or Paused" in refused.err
    missing = cli("contact", "remove", str(new), "7")
    assert missing.code == 2
    assert "no such contact: 7" in missing.err
    counts = cli.store_call(lambda store: store.counts(new))
    assert (counts[C.REMOVED], counts[C.PENDING]) == (1, 1)
