"""Times no hotline or agency could have stamped: a ticket received in the future, a lifecycle event that happened
in the future or before the ticket's previous step (models.tickets.parse_ticket, models.lifecycle.apply), with
the clocks' allowed difference (HOTLINE_MAX_CLOCK_SKEW, streams.wiring.clock_skew)."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from config.settings import get_settings
from models.clock import ManualClock, SimulatedClock
from models.events import EVENT_CLASSES, LifecycleEvent
from models.lifecycle import Outcome, Refusal, Status, TicketState, apply
from models.tickets import Rejection, TicketIn, parse_ticket
from models.workcalendar import TZ
from streams.cli.ingest import ColumnMap, Record, check_row
from streams.wiring import clock_skew

NOW = datetime(2026, 12, 4, 9, 30, tzinfo=TZ)
SKEW = timedelta(minutes=5)
A, B = "BH-SCJG", "BH-CGW"
_ids = itertools.count(1)


# --- the allowed difference ----------------------------------------------------------------------------------
def test_the_allowed_difference_is_real_seconds_stretched_by_the_clock_speed() -> None:
    settings = get_settings(max_clock_skew=300)
    assert clock_skew(settings, ManualClock(NOW)) == timedelta(minutes=5)
    # at the demo's 3600x, 0.1 s of a message in flight is 6 simulated minutes: the allowance stretches with it
    assert clock_skew(settings, SimulatedClock(3600, NOW)) == timedelta(hours=300)
    assert get_settings().max_clock_skew == 300


def test_the_allowed_difference_is_a_setting_with_the_hotline_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_MAX_CLOCK_SKEW", "60")
    assert get_settings().max_clock_skew == 60


# --- tickets ------------------------------------------------------------------------------------------------
def ticket(received_at: str | None, **kw: Any) -> dict[str, Any]:
    return {"id": "12345-20261204-0001", "text": "路灯不亮", **({"received_at": received_at} if received_at else {}),
            **kw}


def test_a_ticket_received_in_the_future_is_rejected_saying_so_in_both_languages() -> None:
    # Given a platform export where "2027" was typed for "2026"
    raw = json.dumps(ticket("2027-12-04T09:00:00+08:00"))
    # When it is checked with our clock at hand
    result = parse_ticket(raw, now=NOW, max_skew=SKEW)
    # Then it is rejected, under its id, with a reason the hotline staff can act on (the year shown)
    assert isinstance(result, Rejection) and result.key == "12345-20261204-0001"
    zh, _, en = result.reason.partition(" / ")
    assert zh.startswith("received_at：受理时间晚于当前时间") and "2027-12-04 09:00" in zh and "5分钟" in zh
    assert en.startswith("received_at: 2027-12-04T09:00:00+08:00 is later than now (2026-12-04T09:30:00+08:00)")
    assert result.payload == raw


def test_a_ticket_stamped_a_little_ahead_of_our_clock_is_accepted_as_it_is() -> None:
    # a platform clock 4 minutes ahead: within the allowed difference, the time is kept as sent
    result = parse_ticket(ticket("2026-12-04T09:34:00+08:00"), now=NOW, max_skew=SKEW)
    assert isinstance(result, TicketIn) and result.received_at == NOW + timedelta(minutes=4)
    edge = parse_ticket(ticket((NOW + SKEW).isoformat()), now=NOW, max_skew=SKEW)
    assert isinstance(edge, TicketIn)
    beyond = parse_ticket(ticket((NOW + SKEW + timedelta(seconds=1)).isoformat()), now=NOW, max_skew=SKEW)
    assert isinstance(beyond, Rejection)


def test_a_naive_time_in_the_future_is_judged_as_shanghai_time() -> None:
    # 10:00 without offset is Shanghai's 10:00, half an hour ahead; 02:00Z is 10:00 in Shanghai too
    assert isinstance(parse_ticket(ticket("2026-12-04T10:00:00"), now=NOW, max_skew=SKEW), Rejection)
    assert isinstance(parse_ticket(ticket("2026-12-04T02:00:00Z"), now=NOW, max_skew=SKEW), Rejection)
    assert isinstance(parse_ticket(ticket("2026-12-04T01:30:00Z"), now=NOW, max_skew=SKEW), TicketIn)


def test_without_a_now_at_hand_a_future_ticket_is_not_judged() -> None:
    # tools reading old files, tests: no clock given, only the year range applies (the router judges it later)
    assert isinstance(parse_ticket(ticket("2027-12-04T09:00:00+08:00")), TicketIn)
    # and a ticket without received_at is stamped now, never rejected
    stamped = parse_ticket(ticket(None), now=NOW, max_skew=SKEW)
    assert isinstance(stamped, TicketIn) and stamped.received_at == NOW


def test_hotline_ingest_rejects_a_row_received_in_the_future_and_stamps_others_on_our_clock() -> None:
    cols = ColumnMap()
    future = check_row(Record(2, ticket("2027/12/4 9:00"), "raw row 2"), cols, now=NOW, max_skew=SKEW)
    assert isinstance(future, Rejection) and "受理时间晚于当前时间" in future.reason and future.payload == "raw row 2"
    unstamped = check_row(Record(3, ticket(None), "raw row 3"), cols, now=NOW, max_skew=SKEW)
    assert isinstance(unstamped, TicketIn) and unstamped.received_at == NOW


# --- lifecycle events ---------------------------------------------------------------------------------------
def ev(type_: str, at: datetime, *, role: str = "agency", agency: str | None = A, event_id: str | None = None,
       **fields: Any) -> LifecycleEvent:
    return EVENT_CLASSES[type_](event_id=event_id or f"e{next(_ids)}", ticket_id="T1", type=type_, actor="x",
                                role=role, occurred_at=at, agency=agency, **fields)


def routed(at: datetime, agency: str | None = A, attempt: int = 1) -> LifecycleEvent:
    return ev("routed", at, role="system", agency=agency, attempt=attempt, decision="auto" if agency else "manual",
              event_id=f"routed:T1#{attempt}")


def judged(state: TicketState | None, event: LifecycleEvent, now: datetime = NOW) -> Outcome | Refusal:
    return apply(state, event, known_agencies=(A, B), now=now, max_skew=SKEW)


def accepted(state: TicketState | None, event: LifecycleEvent, now: datetime = NOW) -> TicketState:
    outcome = judged(state, event, now)
    assert isinstance(outcome, Outcome), getattr(outcome, "reason", outcome)
    return outcome.state


DISPATCHED_AT = NOW - timedelta(hours=2)


@pytest.fixture
def dispatched() -> TicketState:
    return accepted(None, routed(DISPATCHED_AT))


def test_an_event_stamped_in_the_future_is_refused(dispatched: TicketState) -> None:
    # Given a dispatched ticket; When its agency signs with a clock an hour ahead
    outcome = judged(dispatched, ev("signed", NOW + timedelta(hours=1)))
    # Then the sign-for is refused, saying why in the console's words, then in English
    assert isinstance(outcome, Refusal)
    zh, _, en = outcome.reason.partition(" / ")
    assert zh.startswith("「签收」的办理时间（12月4日10:30）晚于当前时间（12月4日09:30）") and "5分钟" in zh
    assert "is later than now" in en
    # and a year typed wrong shows the year
    typo = judged(dispatched, ev("signed", NOW.replace(year=2027)))
    assert isinstance(typo, Refusal) and "2027年12月4日09:30" in typo.reason


def test_an_event_a_little_ahead_or_behind_is_accepted(dispatched: TicketState) -> None:
    # a clock 4 minutes ahead: accepted, at its own time
    state = accepted(dispatched, ev("signed", NOW + timedelta(minutes=4)))
    assert state.signed_at == NOW + timedelta(minutes=4)
    # and the dispatcher's clock, 3 minutes behind that sign-for, may still act after it
    accepted(state, ev("reassigned", NOW + timedelta(minutes=1), role="dispatcher", agency=None, target_agency=B))


def test_a_sign_for_stamped_before_the_dispatch_is_refused(dispatched: TicketState) -> None:
    # When the agency stamps its 签收 an hour before the ticket was dispatched to it (to look signed in time)
    outcome = judged(dispatched, ev("signed", DISPATCHED_AT - timedelta(hours=1)))
    # Then it is refused: the state stays dispatched, and the reason names the previous step's time
    assert isinstance(outcome, Refusal)
    assert outcome.reason.startswith("「签收」的办理时间（12月4日06:30）早于上一环节（12月4日07:30）")
    assert "is earlier than the ticket's previous step (2026-12-04T07:30:00+08:00)" in outcome.reason
    # a few minutes before it (a clock behind, or the sign-for that overtook the announcement): accepted
    accepted(dispatched, ev("signed", DISPATCHED_AT - timedelta(minutes=4)))
    # up to twice the tolerance before it (two clocks off ours the opposite ways), and not a second more
    accepted(dispatched, ev("signed", DISPATCHED_AT - 2 * SKEW))
    assert isinstance(judged(dispatched, ev("signed", DISPATCHED_AT - 2 * SKEW - timedelta(seconds=1))), Refusal)


def test_senders_whose_clocks_are_off_ours_the_opposite_ways_are_not_refused(dispatched: TicketState) -> None:
    # Given an agency whose clock is 4 minutes ahead of ours: its 签收 and 办结 are accepted at their stamps
    signed = accepted(dispatched, ev("signed", NOW - timedelta(minutes=30) + timedelta(minutes=4)))
    resolved = accepted(signed, ev("resolved", NOW + timedelta(minutes=4), reply="已处理"), now=NOW)
    # When the call-back centre, its clock 4 minutes behind ours, rates the ticket 2 real minutes later
    later = NOW + timedelta(minutes=2)
    rating = ev("rated", later - timedelta(minutes=4), role="callcenter", agency=None, rating="satisfied")
    # Then the rating is accepted: 6 minutes "before" the 办结 is within the two clocks' tolerances
    assert accepted(resolved, rating, now=later).rating == "satisfied"


def test_a_resolution_stamped_before_the_agency_s_own_sign_for_is_refused(dispatched: TicketState) -> None:
    signed = accepted(dispatched, ev("signed", NOW - timedelta(hours=1)))
    outcome = judged(signed, ev("resolved", NOW - timedelta(hours=1, minutes=30), reply="已处理"))
    assert isinstance(outcome, Refusal) and "「办结」的办理时间" in outcome.reason and "早于上一环节" in outcome.reason
    assert accepted(signed, ev("resolved", NOW, reply="已处理")).status == Status.RESOLVED


def test_a_resolution_sent_late_after_its_extension_was_approved_is_accepted_at_its_time(
        dispatched: TicketState) -> None:
    # Given a ticket signed at 08:00 whose agency asked for an extension at 08:30, approved by a supervisor at 09:20
    signed = accepted(dispatched, ev("signed", NOW - timedelta(minutes=90)))
    asked = accepted(signed, ev("extension_requested", NOW - timedelta(minutes=60), days=5, explanation="需现场勘查"))
    approved = accepted(asked, ev("extension_approved", NOW - timedelta(minutes=10), role="supervisor", agency=None))
    # When the agency's 办结 of 08:50, held in its own system, arrives only now (after the approval)
    late = ev("resolved", NOW - timedelta(minutes=40), reply="已处理")
    # Then it is accepted at its own time: it follows the agency's own request, not the supervisor's approval
    assert accepted(approved, late).resolved_at == NOW - timedelta(minutes=40)
    # but a 办结 stamped before the agency's own extension request is refused, naming that request's time
    early = judged(approved, ev("resolved", NOW - timedelta(minutes=75), reply="已处理"))
    assert isinstance(early, Refusal) and "早于上一环节（12月4日08:30）" in early.reason


def test_an_agency_s_step_after_a_reopen_follows_the_reopen(dispatched: TicketState) -> None:
    # Given a ticket resolved at 08:00 and reopened by the call-back centre at 09:00
    signed = accepted(dispatched, ev("signed", NOW - timedelta(minutes=100)))
    resolved = accepted(signed, ev("resolved", NOW - timedelta(minutes=90), reply="已处理"))
    reopened = accepted(resolved, ev("reopened", NOW - timedelta(minutes=30), role="callcenter", agency=None))
    # When the agency resolves it again "at 08:30", before it was reopened; Then that is refused
    assert isinstance(judged(reopened, ev("resolved", NOW - timedelta(minutes=60), reply="再次处理")), Refusal)
    assert accepted(reopened, ev("resolved", NOW, reply="再次处理")).resolved_at == NOW


def test_others_steps_still_follow_the_ticket_s_last_step_by_anyone(dispatched: TicketState) -> None:
    # a supervisor's decision on an extension cannot come before the request it answers
    signed = accepted(dispatched, ev("signed", NOW - timedelta(minutes=90)))
    asked = accepted(signed, ev("extension_requested", NOW - timedelta(minutes=30), days=5, explanation="需现场勘查"))
    decision = ev("extension_approved", NOW - timedelta(minutes=60), role="supervisor", agency=None)
    assert isinstance(judged(asked, decision), Refusal)


def test_a_state_stored_before_the_agency_s_own_step_was_kept_judges_against_its_handling(
        dispatched: TicketState) -> None:
    # a state from a table written by the previous version has no agency_acted_at: its sign-for still bounds a 办结
    signed = accepted(dispatched, ev("signed", NOW - timedelta(minutes=90)))
    old = TicketState.from_dict({k: v for k, v in signed.to_dict().items() if k != "agency_acted_at"})
    assert old.agency_acted_at is None and old.handling_started_at == signed.signed_at
    assert isinstance(judged(old, ev("resolved", NOW - timedelta(minutes=120), reply="已处理")), Refusal)
    assert accepted(old, ev("resolved", NOW, reply="已处理")).agency_acted_at == NOW


def test_a_redelivered_event_is_a_duplicate_however_far_the_ticket_has_moved_on(dispatched: TicketState) -> None:
    # Given a sign-for accepted at 08:00 and a resolution at 09:00
    sign = ev("signed", NOW - timedelta(minutes=90))
    state = accepted(accepted(dispatched, sign), ev("resolved", NOW - timedelta(minutes=30), reply="已处理"))
    # When the sign-for is delivered again: nothing to judge, it was applied
    again = judged(state, sign)
    assert isinstance(again, Outcome) and again.duplicate and again.state == state
    # and so is an old routing announced again (the sweep, a redelivered ticket): attempt 1 is not newer
    late = judged(state, routed(DISPATCHED_AT))
    assert isinstance(late, Outcome) and late.duplicate


def test_the_router_s_own_routing_is_not_judged_for_time(dispatched: TicketState) -> None:
    # the router stamps a routing with our clock when it announces it; a refused one would strand the ticket (the
    # ledger's row of its id stops the catch-up and the re-announcement), so its time is taken as it is
    returned = accepted(dispatched, ev("returned", NOW - timedelta(hours=1), reason_code="NOT_OUR_DUTY", basis="《某法》"))
    assert accepted(returned, routed(NOW, B, attempt=2)).agency == B
    assert accepted(returned, routed(NOW - timedelta(hours=3), B, attempt=2)).agency == B
    # and the dispatcher's reassignment after it is judged against it as usual
    state = accepted(returned, routed(NOW, B, attempt=2))
    late = ev("reassigned", NOW - timedelta(hours=1), role="dispatcher", agency=None, target_agency=A)
    assert isinstance(judged(state, late), Refusal)


def test_the_time_is_judged_only_of_an_event_otherwise_accepted(dispatched: TicketState) -> None:
    # an event refused for what it is says that (a resolution before any sign-for), not its time
    outcome = judged(dispatched, ev("resolved", NOW + timedelta(days=1), reply="已处理"))
    assert isinstance(outcome, Refusal) and "不能「办结」" in outcome.reason


def test_a_replay_of_events_accepted_before_does_not_judge_times(dispatched: TicketState) -> None:
    # reports replay the accepted history without a "now": what was accepted then (before this rule) stays so
    outcome = apply(dispatched, ev("signed", DISPATCHED_AT - timedelta(days=1)), known_agencies=(A, B))
    assert isinstance(outcome, Outcome) and not outcome.duplicate
