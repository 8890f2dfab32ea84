"""Campaign and list lifecycles: every (status, command) pair, then each rule of the spec."""

from __future__ import annotations

import itertools
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.domain.lifecycle import (
    CAMPAIGN_TRANSITIONS,
    LIST_TRANSITIONS,
    CampaignCommand,
    ListCommand,
    TransitionContext,
    allowed_commands,
    apply,
    next_list_status,
    next_status,
)
from dialer.domain.statuses import CampaignStatus, ListStatus
from dialer.errors import DomainError, TransitionRefused

S = CampaignStatus
C = CampaignCommand
READY = TransitionContext(window_open=True, dialable_contacts=5)
CLOSED = TransitionContext(window_open=False, dialable_contacts=5)
ALL_PAIRS = list(itertools.product(CampaignStatus, CampaignCommand))
contexts = st.builds(
    TransitionContext,
    window_open=st.booleans(),
    dialable_contacts=st.integers(min_value=0, max_value=3),
)


@pytest.mark.parametrize(("status", "command"), ALL_PAIRS)
@settings(max_examples=15, deadline=None)
@given(ctx=contexts)
def test_every_pair_is_in_the_table_or_refused(
    status: CampaignStatus, command: CampaignCommand, ctx: TransitionContext
) -> None:
    row = CAMPAIGN_TRANSITIONS.get((status, command))
    if row is None or (row.requires_dialable and ctx.dialable_contacts < 1):
        with pytest.raises(TransitionRefused) as info:
            next_status(status, command, ctx)
        assert f"campaign is {status.label}" in str(info.value)
        assert info.value.status == status
        assert info.value.command == command
    else:
        assert next_status(status, command, ctx) == row.target_for(ctx)
        assert command in allowed_commands(status)


@given(status=st.sampled_from(CampaignStatus), command=st.sampled_from(CampaignCommand))
def test_allowed_commands_is_exactly_the_table(
    status: CampaignStatus, command: CampaignCommand
) -> None:
    assert (command in allowed_commands(status)) == ((status, command) in CAMPAIGN_TRANSITIONS)


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        CAMPAIGN_TRANSITIONS[(S.DRAFT, C.COMPLETE)] = CAMPAIGN_TRANSITIONS[(S.DRAFT, C.EDIT)]  # type: ignore[index]


def test_start_goes_running_when_the_window_is_open() -> None:
    assert next_status(S.DRAFT, C.START, READY) is S.RUNNING


def test_start_goes_scheduled_when_the_window_is_closed() -> None:
    assert next_status(S.DRAFT, C.START, CLOSED) is S.SCHEDULED


def test_start_needs_a_dialable_contact() -> None:
    with pytest.raises(TransitionRefused, match="campaign is Draft but has no dialable contact"):
        next_status(S.DRAFT, C.START, TransitionContext(window_open=True, dialable_contacts=0))
    with pytest.raises(TransitionRefused):
        next_status(S.DRAFT, C.START)  # the default context has no contact: refuse


@pytest.mark.parametrize("status", [s for s in CampaignStatus if s is not S.DRAFT])
def test_start_only_from_draft(status: CampaignStatus) -> None:
    with pytest.raises(TransitionRefused, match=f"cannot start: campaign is {status.label}"):
        next_status(status, C.START, READY)


def test_window_moves_between_scheduled_and_running() -> None:
    assert next_status(S.SCHEDULED, C.WINDOW_OPENED) is S.RUNNING
    assert next_status(S.RUNNING, C.WINDOW_CLOSED) is S.SCHEDULED


def test_pause_drains_then_pauses() -> None:
    assert next_status(S.RUNNING, C.PAUSE) is S.PAUSING
    assert next_status(S.PAUSING, C.DRAINED) is S.PAUSED
    assert next_status(S.SCHEDULED, C.PAUSE) is S.PAUSING


@pytest.mark.parametrize("status", [S.PAUSING, S.PAUSED])
def test_resume_returns_to_running_or_scheduled(status: CampaignStatus) -> None:
    assert next_status(status, C.RESUME, READY) is S.RUNNING
    assert next_status(status, C.RESUME, CLOSED) is S.SCHEDULED


def test_repeated_pause_is_refused() -> None:
    with pytest.raises(TransitionRefused, match="cannot pause: campaign is Paused"):
        next_status(S.PAUSED, C.PAUSE)


@pytest.mark.parametrize("status", [S.RUNNING, S.PAUSED, S.PAUSING, S.SCHEDULED])
def test_stop_cancels_after_draining(status: CampaignStatus) -> None:
    assert next_status(status, C.STOP) is S.CANCELLING
    assert next_status(S.CANCELLING, C.DRAINED) is S.CANCELLED


def test_a_draft_cannot_be_stopped_only_deleted() -> None:
    with pytest.raises(TransitionRefused, match="campaign is Draft and never started; delete"):
        next_status(S.DRAFT, C.STOP)


def test_drained_only_while_draining() -> None:
    with pytest.raises(TransitionRefused, match="cannot finish draining: campaign is Running"):
        next_status(S.RUNNING, C.DRAINED)


def test_complete() -> None:
    assert next_status(S.RUNNING, C.COMPLETE) is S.COMPLETED
    assert next_status(S.SCHEDULED, C.COMPLETE) is S.COMPLETED
    with pytest.raises(TransitionRefused, match="campaign is Cancelling"):
        next_status(S.CANCELLING, C.COMPLETE)


@pytest.mark.parametrize("status", [S.DRAFT, S.COMPLETED, S.CANCELLED])
def test_delete_directly(status: CampaignStatus) -> None:
    result = apply(status, C.DELETE)
    assert result.deletes
    assert not result.requires_cancel_first
    assert result.status is status


@pytest.mark.parametrize("status", [S.SCHEDULED, S.RUNNING, S.PAUSING, S.PAUSED, S.CANCELLING])
def test_delete_while_calls_may_be_in_flight_requires_cancel_first(status: CampaignStatus) -> None:
    result = apply(status, C.DELETE)
    assert result.requires_cancel_first
    assert not result.deletes
    assert result.status is status  # DELETE itself changes nothing


@pytest.mark.parametrize("status", [S.DRAFT, S.PAUSED])
def test_edit_in_draft_or_paused(status: CampaignStatus) -> None:
    assert next_status(status, C.EDIT) is status


@pytest.mark.parametrize("status", [s for s in CampaignStatus if s not in (S.DRAFT, S.PAUSED)])
def test_edit_refused_elsewhere(status: CampaignStatus) -> None:
    with pytest.raises(TransitionRefused) as info:
        next_status(status, C.EDIT)
    assert str(info.value) == (
        f"campaign is {status.label}; settings can be edited only in Draft or Paused"
    )


@pytest.mark.parametrize(
    ("status", "command"),
    [(s, c) for s in (S.COMPLETED, S.CANCELLED) for c in CampaignCommand if c is not C.DELETE],
)
def test_final_statuses_refuse_everything_but_delete(
    status: CampaignStatus, command: CampaignCommand
) -> None:
    with pytest.raises(TransitionRefused, match=f"campaign is {status.label}"):
        next_status(status, command, READY)


def test_final_statuses_allow_only_delete() -> None:
    assert allowed_commands(S.COMPLETED) == {C.DELETE}
    assert allowed_commands(S.CANCELLED) == {C.DELETE}


def test_refusal_sentences() -> None:
    with pytest.raises(TransitionRefused) as info:
        next_status(S.COMPLETED, C.RESUME)
    assert str(info.value).startswith("cannot resume: campaign is Completed")
    with pytest.raises(TransitionRefused) as info:
        next_status(S.RUNNING, C.RESUME)
    assert (
        str(info.value) == "cannot resume: campaign is Running; allowed only in Pausing or Paused"
    )


def test_refusal_is_a_domain_error_and_pickles() -> None:
    with pytest.raises(DomainError) as info:
        next_status(S.CANCELLED, C.START, READY)
    assert isinstance(info.value, TransitionRefused)
    copy = pickle.loads(pickle.dumps(info.value))
    assert (str(copy), copy.status, copy.command) == (
        str(info.value),
        S.CANCELLED,
        C.START,
    )


def test_a_whole_campaign_walk() -> None:
    status = S.DRAFT
    for command, ctx in [
        (C.EDIT, READY),
        (C.START, CLOSED),
        (C.WINDOW_OPENED, READY),
        (C.PAUSE, READY),
        (C.RESUME, READY),
        (C.WINDOW_CLOSED, READY),
        (C.WINDOW_OPENED, READY),
        (C.COMPLETE, READY),
    ]:
        status = next_status(status, command, ctx)
    assert status is S.COMPLETED
    assert apply(status, C.DELETE).deletes


# -- recipient lists -------------------------------------------------------------------------


def test_list_stops() -> None:
    assert next_list_status(3, ListStatus.ACTIVE, ListCommand.STOP) is ListStatus.STOPPED
    assert next_list_status(3, ListStatus.ACTIVE, ListCommand.ADD_CONTACTS) is ListStatus.ACTIVE


@pytest.mark.parametrize("command", list(ListCommand))
def test_a_stopped_list_is_final(command: ListCommand) -> None:
    with pytest.raises(TransitionRefused) as info:
        next_list_status(3, ListStatus.STOPPED, command)
    assert str(info.value) == "list 3 is stopped; re-add the contacts as a new list"
    assert (info.value.status, info.value.command) == (ListStatus.STOPPED, command)


@pytest.mark.parametrize(("status", "command"), list(itertools.product(ListStatus, ListCommand)))
def test_every_list_pair_is_in_the_table_or_refused(
    status: ListStatus, command: ListCommand
) -> None:
    target = LIST_TRANSITIONS.get((status, command))
    if target is None:
        with pytest.raises(TransitionRefused, match=f"list 7 is {status.value}"):
            next_list_status(7, status, command)
    else:
        assert next_list_status(7, status, command) is target
