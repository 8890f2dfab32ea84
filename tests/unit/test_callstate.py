"""The call's own states (dialer.domain.callstate): the table, the Lua scripts that cite it,
and the engine's registry of live calls, which moves its calls by it and refuses the rest."""

from __future__ import annotations

import itertools
import re
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.domain.callstate import (
    CALL_TRANSITIONS,
    CallState,
    allowed,
    of_stored,
    render_markdown,
    transition,
)
from dialer.engine.calls import LiveCall
from dialer.engine.livecalls import LiveCalls
from dialer.errors import TransitionRefused

LUA = resources.files("dialer.store") / "lua"
CITE = re.compile(r"^call state: (.+) \(dialer/domain/callstate\.py\)$", re.MULTILINE)
# a call hash's state written: HSET <key>, 'state', '<literal>' (KEYS[20] of claim.lua is the
# trunk breaker's hash, with a state of its own)
STATE_LITERAL = re.compile(r"redis\.call\('HSET', ([^,]+),[^)]*?'state', '([a-z_]+)'")


def _scripts() -> dict[str, str]:
    return {f.name: f.read_text() for f in LUA.iterdir() if f.name.endswith(".lua")}


def _cited(text: str) -> set[tuple[CallState, CallState]]:
    found = CITE.findall(text.split("]]", 1)[0])  # the header comment only
    assert len(found) <= 1, "one citation line per script"
    pairs = set()
    for item in found[0].split(", ") if found else []:
        source, target = item.split(" -> ")
        pairs.add((CallState(source), CallState(target)))
    return pairs


def test_every_transition_is_cited_by_the_script_that_performs_it() -> None:
    scripts = _scripts()
    performed: dict[str, set[tuple[CallState, CallState]]] = {}
    for t in CALL_TRANSITIONS:
        for script in t.scripts:
            assert script in scripts, f"{script} performs {t.source} -> {t.target}: no such file"
            performed.setdefault(script, set()).add((t.source, t.target))
    for name, text in scripts.items():
        assert _cited(text) == performed.get(name, set()), name
    assert set(performed) >= {
        "claim.lua", "originated.lua", "finish.lua", "release.lua", "reap.lua", "adopt.lua",
        "renew.lua",
    }  # fmt: skip


def test_the_lua_state_literals_are_the_tables_stored_states() -> None:
    stored = {s.stored for s in CallState if s.stored is not None}
    written = set()
    for name, text in _scripts().items():
        if name.startswith("breaker"):
            continue  # a breaker's state, not a call's
        body = text.split("]]", 1)[1]
        written |= {lit for key, lit in STATE_LITERAL.findall(body) if key != "KEYS[20]"}
    assert written == stored == {"claimed", "originated", "done"}
    for literal in stored:
        assert of_stored(literal).stored == literal
    with pytest.raises(ValueError, match="not a stored call state"):
        of_stored("orphaned")  # a zset's membership, never the hash's state


@pytest.mark.parametrize(("source", "target"), list(itertools.product(CallState, CallState)))
def test_every_pair_is_in_the_table_or_refused(source: CallState, target: CallState) -> None:
    rows = [t for t in CALL_TRANSITIONS if (t.source, t.target) == (source, target)]
    assert len(rows) <= 1
    if rows:
        assert transition(source, target) is rows[0]
        assert allowed(source, target)
        assert not source.final  # nothing leaves done or released
    else:
        with pytest.raises(TransitionRefused, match=f"from {source.value} to {target.value}"):
            transition(source, target)


def test_the_table_renders_for_the_docs() -> None:
    text = render_markdown()
    assert text.count("\n") == len(CALL_TRANSITIONS) + 1
    assert "| claimed | originated | originated.lua |" in text


class _Runner:
    def __init__(self, cid: int = 1) -> None:
        self.campaign_id = cid
        self.calls: dict[str, LiveCall] = {}
        self.freed = 0

    def slot_freed(self) -> None:
        self.freed += 1


def _call(call_id: str = "c1", node: str = "n1") -> LiveCall:
    return LiveCall(call_id, 1, "t", 1, "+33610000000", 0, 0, 0.0, node=node)


def test_the_registry_moves_a_call_by_the_table() -> None:
    live: LiveCalls[_Runner] = LiveCalls()
    runner = _Runner()
    call = _call()
    live.add(call, runner)
    assert call.state is CallState.CLAIMED
    assert runner.calls == {"c1": call}
    assert live.of_node("n1") == [call]
    assert live.of_node("n2") == []
    with pytest.raises(ValueError, match="followed already"):
        live.add(call, runner)
    live.advance("c1", CallState.ORIGINATED)
    with pytest.raises(TransitionRefused, match="from originated to released"):
        live.end("c1", CallState.RELEASED)  # dialed: never given back as undialed
    with pytest.raises(TransitionRefused, match="from originated to claimed"):
        live.advance("c1", CallState.CLAIMED)
    assert live.end("c1") == (call, runner)
    assert live.get("c1") is None
    assert CallState(call.state) is CallState.DONE
    assert runner.calls == {}
    assert runner.freed == 1
    assert live.end("c1") is None
    assert live.advance("c1", CallState.ORIGINATED) is None
    with pytest.raises(TransitionRefused, match="from new to originated"):
        live.add(_call("c2"), runner, CallState.ORIGINATED)  # only an orphan is adopted so
    orphan = _call("c3")
    orphan.state = CallState.ORPHANED
    live.add(orphan, runner, CallState.ORIGINATED)
    assert live.drop("c3") == (orphan, runner)  # another engine's now: no state change
    assert orphan.state is CallState.ORIGINATED
    assert len(live) == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(list(CallState)), max_size=6))
def test_any_sequence_follows_the_table(targets: list[CallState]) -> None:
    live: LiveCalls[_Runner] = LiveCalls()
    runner = _Runner()
    call = _call()
    live.add(call, runner)
    state = CallState.CLAIMED
    for target in targets:
        followed = "c1" in live
        ok = followed and (target is state or allowed(state, target))
        try:
            if target.final:
                live.end("c1", target)
            else:
                live.advance("c1", target)
        except TransitionRefused:
            assert not ok
            continue
        if followed:
            assert ok
            state = target
        assert call.state is state
    assert ("c1" in live) == (not state.final)
    assert ("c1" in runner.calls) == ("c1" in live)
