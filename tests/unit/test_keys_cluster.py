"""keys.py's slot groups: single-node names unchanged, Cluster names tagged per group."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from dialer.store.connection import cluster_nodes, is_cluster_url
from dialer.store.keys import CLUSTER_SLOT_GROUPS, Keys, trunk_group


def test_single_node_names_are_unchanged() -> None:
    k = Keys("dialer")
    assert not k.cluster
    assert (k.campaign(7), k.pending(7), k.contact(7, 3)) == (
        "dialer:c:7",
        "dialer:c:7:pending",
        "dialer:c:7:k:3",
    )
    assert (k.trunk_inflight("t1"), k.call("x1"), k.records(7)) == (
        "dialer:t:t1:inflight",
        "dialer:call:x1",
        "dialer:records:7",
    )
    assert (k.call_prefix, k.campaign_prefix, k.call_prefix_of(7)) == (
        "dialer:call:",
        "dialer:c:",
        "dialer:call:",
    )
    assert (k.active_of(7), k.records_index_of(7), k.global_dnc_of(7)) == (
        k.active_campaigns,
        k.records_index,
        k.global_dnc,
    )
    assert k.global_dnc_copies == ("dialer:dnc",)
    assert k.campaign_id(7, "t1") == 7
    assert list(k.groups()) == [0]
    k.check_trunk_group(0, "any-trunk")  # no groups: every trunk goes


def test_cluster_ids_and_keys_share_their_trunks_slot() -> None:
    k = Keys("dialer", CLUSTER_SLOT_GROUPS)
    for seq in (1, 2, 99):
        for trunk in ("carrier-a", "carrier-b", "t1"):
            cid = k.campaign_id(seq, trunk)
            assert k.group_of(cid) == k.group_of_trunk(trunk) == trunk_group(trunk, 16)
            names = [
                *k.campaign_fixed(cid),
                k.contact(cid, 12),
                k.call("call-1", cid),
                k.records(cid),
                k.active_of(cid),
                k.global_dnc_of(cid),
                k.trunk_inflight(trunk),
                k.trunk_breaker(trunk),
                f"{k.call_prefix_of(cid)}x",
                f"{k.campaign_prefix_in(k.group_of(cid))}{cid}",
            ]
            assert all(n.startswith(f"dialer:{{g{k.group_of(cid)}}}:") for n in names)
            assert len({key_slot(n.encode()) for n in names}) == 1
    assert len(k.global_dnc_copies) == 1 + CLUSTER_SLOT_GROUPS
    # the ids stay distinct: seq * groups + group
    ids = {k.campaign_id(seq, t) for seq in range(1, 50) for t in ("a", "b", "c")}
    assert len(ids) == 49 * 3


def test_cluster_refuses_untagged_names() -> None:
    k = Keys("dialer", 4)
    with pytest.raises(ValueError, match="slot group"):
        _ = k.call_prefix
    with pytest.raises(ValueError, match="slot group"):
        _ = k.campaign_prefix
    with pytest.raises(ValueError, match="slot group"):
        k.call("x")
    other = next(
        t for t in ("b", "c", "d", "e", "f") if k.group_of_trunk(t) != k.group_of_trunk("a")
    )
    with pytest.raises(ValueError, match="cannot serve"):
        k.check_trunk_group(k.group_of_trunk("a"), other)
    with pytest.raises(ValueError, match="brace"):
        Keys("dia{ler}")


def test_cluster_urls() -> None:
    assert is_cluster_url("redis+cluster://127.0.0.1:7000/")
    assert not is_cluster_url("redis://127.0.0.1:7000/0")
    assert cluster_nodes("redis+cluster://127.0.0.1:7000,10.0.0.2:7001/") == (
        [("127.0.0.1", 7000), ("10.0.0.2", 7001)],
        None,
        None,
    )
    assert cluster_nodes("redis+cluster://dialer:p%40ss@[::1]:7000") == (
        [("::1", 7000)],
        "dialer",
        "p@ss",
    )
    for bad in (
        "redis://127.0.0.1:7000",
        "redis+cluster://127.0.0.1/",
        "redis+cluster://127.0.0.1:0/",
        "redis+cluster://:7000/",
        "redis+cluster://127.0.0.1:7000?x=1",
    ):
        with pytest.raises(ValueError, match="Cluster|cluster"):
            cluster_nodes(bad)
