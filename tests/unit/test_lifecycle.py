"""The ticket lifecycle state machine (models.lifecycle.apply) and the parsing of tickets.events.

Events are the real faust Records of models.events, so these tests also show the Records satisfy
the state machine's event protocol.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from models.events import EVENT_CLASSES, LifecycleEvent, TicketReturned, parse_event, read_event
from models.lifecycle import (
    SEEN_EVENTS_KEPT,
    Designate,
    Dispatch,
    Outcome,
    Refusal,
    Reroute,
    Status,
    TicketState,
    apply,
)
from models.tickets import Rejection

T0 = datetime(2025, 9, 26, 9, 0, tzinfo=timezone(timedelta(hours=8)))
A, B, C, D = "BH-SCJG", "BH-CGW", "BH-STHJ", "BH-ZJW"
KNOWN = (A, B, C, D)


class Clock:
    """Event ids and times that move forward, one minute per event."""

    def __init__(self) -> None:
        self._n: Iterator[int] = itertools.count(1)
        self.now = T0

    def tick(self) -> tuple[str, datetime]:
        n = next(self._n)
        self.now = T0 + timedelta(minutes=n)
        return f"e{n}", self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(clock: Clock, type_: str, *, role: str, actor: str = "someone", agency: str | None = None,
         event_id: str | None = None, **fields: Any) -> LifecycleEvent:
    eid, at = clock.tick()
    return EVENT_CLASSES[type_](event_id=event_id or eid, ticket_id="T1", type=type_, actor=actor, role=role,
                                occurred_at=at, agency=agency, **fields)


def routed(clock: Clock, agency: str | None = A, *, attempt: int = 1, decision: str = "auto", **kw: Any
           ) -> LifecycleEvent:
    return make(clock, "routed", role="system", actor="router", agency=agency, attempt=attempt,
                decision=decision, **kw)


def by_agency(clock: Clock, type_: str, agency: str = A, **kw: Any) -> LifecycleEvent:
    return make(clock, type_, role="agency", actor=f"{agency}-system", agency=agency, **kw)


def returned(clock: Clock, agency: str = A, **kw: Any) -> LifecycleEvent:
    fields = {"reason_code": "NOT_OUR_DUTY", "basis": "《某法》第十条", **kw}
    return by_agency(clock, "returned", agency, **fields)


def by(clock: Clock, type_: str, role: str, **kw: Any) -> LifecycleEvent:
    return make(clock, type_, role=role, actor=f"{role}-1", **kw)


def ok(state: TicketState | None, event: Any, **kw: Any) -> Outcome:
    outcome = apply(state, event, known_agencies=KNOWN, **kw)
    assert isinstance(outcome, Outcome), f"refused: {getattr(outcome, 'reason', outcome)}"
    return outcome


def run(clock: Clock, *events: Any) -> TicketState:
    state = None
    for e in events:
        state = ok(state, e).state
    assert state is not None
    return state


def signed_state(clock: Clock, agency: str = A) -> TicketState:
    return run(clock, routed(clock, agency), by_agency(clock, "signed", agency))


def resolved_state(clock: Clock) -> TicketState:
    return ok(signed_state(clock), by_agency(clock, "resolved", reply="已处理")).state


# --- the normal path ------------------------------------------------------------------------------
def test_routed_signed_resolved_rated_closed(clock: Clock) -> None:
    # Given a ticket routed to an agency
    r = routed(clock)
    state = ok(None, r).state
    assert (state.status, state.agency, state.attempt) == (Status.DISPATCHED, A, 1)
    assert state.dispatched_at == r.occurred_at
    # When the agency signs for it, then resolves it
    s = by_agency(clock, "signed")
    state = ok(state, s).state
    assert state.status == Status.SIGNED and state.signed_at == state.handling_started_at == s.occurred_at
    res = by_agency(clock, "resolved", reply="已责令餐馆安装油烟净化设备")
    state = ok(state, res).state
    assert state.status == Status.RESOLVED and state.resolved_at == res.occurred_at
    # And the call-back centre rates and closes it
    state = ok(state, by(clock, "rated", "callcenter", rating="satisfied")).state
    assert state.rating == "satisfied"
    c = by(clock, "closed", "callcenter")
    outcome = ok(state, c)
    # Then it is closed, nothing follows, and every event was remembered
    assert outcome.state.status == Status.CLOSED and outcome.state.closed_at == c.occurred_at
    assert outcome.effects == () and not outcome.duplicate
    assert outcome.state.seen_events == tuple(f"e{n}" for n in range(1, 6))
    assert outcome.state.updated_at == c.occurred_at


def test_low_confidence_goes_to_the_dispatchers_who_may_close_it(clock: Clock) -> None:
    state = ok(None, routed(clock, None, decision="manual", reason="置信度0.31低于阈值")).state
    assert (state.status, state.agency, state.manual_reason) == (Status.MANUAL, None, "置信度0.31低于阈值")
    state = ok(state, by(clock, "closed", "dispatcher", explanation="重复来电")).state
    assert state.status == Status.CLOSED


def test_auto_decision_without_agency_is_manual(clock: Clock) -> None:
    state = ok(None, routed(clock, None, decision="auto")).state
    assert state.status == Status.MANUAL and state.manual_reason == "auto"


# --- refusals ---------------------------------------------------------------------------------------
def _unknown_type(clock: Clock) -> tuple[TicketState | None, Any]:
    eid, at = clock.tick()
    event = SimpleNamespace(event_id=eid, ticket_id="T1", type="escalated", actor="x", role="supervisor",
                            agency=None, occurred_at=at)
    return signed_state(clock), event


ILLEGAL: dict[str, tuple[Any, str]] = {
    "sign by another agency": (lambda c: (run(c, routed(c)), by_agency(c, "signed", B)),
                               f"agency {B} is not the current handler"),
    "sign by a dispatcher": (lambda c: (run(c, routed(c)), by(c, "signed", "dispatcher", agency=A)),
                             "done by the handling agency"),
    "sign twice": (lambda c: (signed_state(c), by_agency(c, "signed")),
                   "not allowed while the ticket is signed"),
    "resolve before sign": (lambda c: (run(c, routed(c)), by_agency(c, "resolved", reply="好")),
                            "'resolved' is not allowed while the ticket is dispatched"),
    "resolve without reply": (lambda c: (signed_state(c), by_agency(c, "resolved", reply="  ")),
                              "reply text"),
    "return without reason code": (lambda c: (signed_state(c), returned(c, reason_code="")),
                                   "reason_code from the fixed list"),
    "return with an invented reason": (lambda c: (signed_state(c), returned(c, reason_code="TOO_BUSY")),
                                       "got TOO_BUSY"),
    "return without basis or explanation": (
        lambda c: (signed_state(c), returned(c, basis=None, explanation=" ")),
        "legal basis or an explanation"),
    "return by another agency": (lambda c: (signed_state(c), returned(c, B)), "not the current handler"),
    "return after resolution": (lambda c: (resolved_state(c), returned(c)), "while the ticket is resolved"),
    "extension twice": (lambda c: (ok(signed_state(c), by_agency(c, "extension_requested", days=3,
                                                                  explanation="需检测")).state,
                                   by_agency(c, "extension_requested", days=2, explanation="再延")),
                        "already waiting"),
    "extension of 0 days": (lambda c: (signed_state(c), by_agency(c, "extension_requested", days=0,
                                                                  explanation="x")), "between 1 and 30"),
    "extension of 31 days": (lambda c: (signed_state(c), by_agency(c, "extension_requested", days=31,
                                                                   explanation="x")), "between 1 and 30"),
    "extension without explanation": (
        lambda c: (signed_state(c), by_agency(c, "extension_requested", days=3)), "needs an explanation"),
    "extension before sign": (
        lambda c: (run(c, routed(c)), by_agency(c, "extension_requested", days=3, explanation="x")),
        "while the ticket is"),
    "approve without request": (lambda c: (signed_state(c), by(c, "extension_approved", "supervisor")),
                                "no pending extension"),
    "deny without request": (lambda c: (signed_state(c), by(c, "extension_denied", "dispatcher")),
                             "no pending extension"),
    "approve by the agency": (lambda c: (ok(signed_state(c), by_agency(c, "extension_requested", days=3,
                                                                       explanation="x")).state,
                                         by_agency(c, "extension_approved")), "supervisor or dispatcher"),
    "reopen while open": (lambda c: (signed_state(c), by(c, "reopened", "callcenter")),
                          "'reopened' is not allowed while the ticket is signed"),
    "reopen by the agency": (lambda c: (resolved_state(c), by_agency(c, "reopened")), "only the call-back"),
    "rate before resolution": (lambda c: (signed_state(c), by(c, "rated", "callcenter", rating="satisfied")),
                               "not allowed while the ticket is signed"),
    "rate with an unknown rating": (lambda c: (resolved_state(c), by(c, "rated", "callcenter", rating="meh")),
                                    "rating must be one of"),
    "rate by the agency": (lambda c: (resolved_state(c), by_agency(c, "rated", rating="satisfied")),
                           "call-back centre"),
    "close by the agency": (lambda c: (resolved_state(c), by_agency(c, "closed")), "closed by the call-back"),
    "close an open ticket": (lambda c: (signed_state(c), by(c, "closed", "callcenter")),
                             "not allowed while the ticket is signed"),
    "callcenter closes a manual ticket": (
        lambda c: (run(c, routed(c, None, decision="manual")), by(c, "closed", "callcenter")),
        "while the ticket is manual"),
    "unknown event type": (_unknown_type, "unknown event type 'escalated'"),
    "signed before routed": (lambda c: (None, by_agency(c, "signed")), "unknown to the router"),
    "resolved before routed": (lambda c: (None, by_agency(c, "resolved", reply="x")),
                               "'resolved' needs a routed"),
    "routed by an agency": (lambda c: (None, make(c, "routed", role="agency", agency=A, attempt=1)),
                            "written by the router only"),
}


@pytest.mark.parametrize("case", list(ILLEGAL))
def test_illegal_events_are_refused_with_a_reason(clock: Clock, case: str) -> None:
    build, reason = ILLEGAL[case]
    state, event = build(clock)
    outcome = apply(state, event, known_agencies=KNOWN)
    assert isinstance(outcome, Refusal), f"{case}: accepted -> {outcome}"
    assert reason in outcome.reason


# --- returns, re-routing and designation -----------------------------------------------------------
def test_a_return_reroutes_excluding_the_agency_as_the_next_attempt(clock: Clock) -> None:
    # Given a ticket signed by A
    state = signed_state(clock)
    # When A returns it with a reason and basis
    outcome = ok(state, returned(clock))
    # Then it waits to be re-routed as attempt 2, without A
    assert outcome.state.status == Status.RETURNED and outcome.state.agency is None
    assert outcome.state.returned_by == (A,)
    assert outcome.effects == (Reroute(attempt=2, exclude=(A,)),)
    # And the re-routing lands on B as attempt 2
    state = ok(outcome.state, routed(clock, B, attempt=2)).state
    assert (state.status, state.agency, state.attempt, state.signed_at) == (Status.DISPATCHED, B, 2, None)


def test_a_return_with_an_explanation_only_is_accepted(clock: Clock) -> None:
    outcome = ok(run(clock, routed(clock)), returned(clock, basis=None, reason_code="OTHER_JURISDICTION",
                                                     explanation="该地址属东丽区"))
    assert outcome.state.status == Status.RETURNED


def test_the_third_return_asks_for_designation(clock: Clock) -> None:
    state = run(clock, routed(clock, A))
    state = ok(state, returned(clock, A)).state
    state = ok(state, routed(clock, B, attempt=2)).state
    state = ok(state, returned(clock, B)).state
    state = ok(state, routed(clock, C, attempt=3)).state
    outcome = ok(state, returned(clock, C, reason_code="CIVIL_DISPUTE"))
    assert outcome.effects == (Designate(attempts=3, returned_by=(A, B, C), attempt=4),)
    # the designation lands on the dispatchers' queue, marked
    state = ok(outcome.state, routed(clock, None, attempt=4, decision="designated", designation=True,
                                     reason="已派3次均被退回")).state
    assert state.status == Status.MANUAL and state.designation and state.attempt == 4


def test_max_attempts_is_a_parameter(clock: Clock) -> None:
    outcome = ok(run(clock, routed(clock)), returned(clock), max_attempts=1)
    assert outcome.effects == (Designate(attempts=1, returned_by=(A,), attempt=2),)


def test_an_agency_returning_twice_is_listed_once(clock: Clock) -> None:
    state = run(clock, routed(clock, A), returned(clock, A), routed(clock, B, attempt=2))
    state = ok(state, make(clock, "reassigned", role="dispatcher", target_agency=A)).state
    state = ok(state, routed(clock, A, attempt=3)).state
    outcome = ok(state, returned(clock, A), max_attempts=5)
    assert outcome.state.returned_by == (A,) and outcome.effects == (Reroute(4, (A,)),)


# --- reassignment ---------------------------------------------------------------------------------
def test_a_dispatcher_reassigns_and_the_dispatch_follows(clock: Clock) -> None:
    # Given a ticket signed by A
    state = signed_state(clock)
    # When a dispatcher reassigns it to B
    outcome = ok(state, by(clock, "reassigned", "dispatcher", target_agency=B, explanation="属城管职责"))
    # Then it waits with the dispatchers until the dispatch to B (attempt 2) lands
    assert outcome.effects == (Dispatch(agency=B, attempt=2),)
    assert (outcome.state.status, outcome.state.agency, outcome.state.manual_reason) == (
        Status.MANUAL, None, "reassigned")
    state = ok(outcome.state, routed(clock, B, attempt=2, decided_by="dispatcher-1")).state
    assert (state.status, state.agency, state.attempt) == (Status.DISPATCHED, B, 2)


@pytest.mark.parametrize("role,target,reason", [
    ("agency", B, "only a dispatcher"),
    ("callcenter", B, "only a dispatcher"),
    ("dispatcher", "TJ-NOWHERE", "not a known agency code"),
    ("dispatcher", "", "not a known agency code"),
    ("supervisor", A, "already with BH-SCJG"),
])
def test_bad_reassignments_are_refused(clock: Clock, role: str, target: str, reason: str) -> None:
    state = signed_state(clock)
    event = make(clock, "reassigned", role=role, agency=A if role == "agency" else None, target_agency=target)
    outcome = apply(state, event, known_agencies=KNOWN)
    assert isinstance(outcome, Refusal) and reason in outcome.reason


def test_reassign_after_closing_is_refused(clock: Clock) -> None:
    state = ok(resolved_state(clock), by(clock, "closed", "callcenter")).state
    outcome = apply(state, by(clock, "reassigned", "dispatcher", target_agency=B), known_agencies=KNOWN)
    assert isinstance(outcome, Refusal) and "while the ticket is closed" in outcome.reason


def test_reassignment_drops_the_previous_handler_s_pending_extension(clock: Clock) -> None:
    # Given A asked for an extension nobody decided yet
    state = ok(signed_state(clock), by_agency(clock, "extension_requested", days=5, explanation="需检测")).state
    # When the ticket is reassigned to B, which signs for it
    state = ok(state, by(clock, "reassigned", "dispatcher", target_agency=B)).state
    state = ok(state, routed(clock, B, attempt=2)).state
    state = ok(state, by_agency(clock, "signed", B)).state
    # Then A's request cannot be approved for B, and B can ask for its own
    assert state.extension_pending_days == 0
    assert isinstance(apply(state, by(clock, "extension_approved", "supervisor")), Refusal)
    assert ok(state, by_agency(clock, "extension_requested", B, days=2, explanation="x")).state \
        .extension_pending_days == 2


def test_a_new_dispatch_starts_a_fresh_handling_clock_and_no_extension(clock: Clock) -> None:
    state = ok(signed_state(clock), by_agency(clock, "extension_requested", days=5, explanation="需检测")).state
    state = ok(state, by(clock, "extension_approved", "supervisor")).state
    assert state.extension_days_granted == 5
    state = ok(state, returned(clock)).state
    state = ok(state, routed(clock, B, attempt=2)).state
    # A's granted days and handling start belong to A's handling, not to B's
    assert state.extension_days_granted == 0 and state.handling_started_at is None and state.signed_at is None


# --- idempotency ----------------------------------------------------------------------------------
def test_a_redelivered_event_is_a_duplicate_and_changes_nothing(clock: Clock) -> None:
    state = run(clock, routed(clock))
    sign = by_agency(clock, "signed")
    after = ok(state, sign).state
    again = ok(after, sign)
    assert again.duplicate and again.state == after and again.effects == ()
    # even an event that would now be illegal is just a duplicate when its id was seen
    ret = returned(clock)
    after_return = ok(after, ret)
    state = ok(after_return.state, routed(clock, B, attempt=2)).state
    assert ok(state, ret) == Outcome(state, duplicate=True)


def test_a_late_older_routing_is_ignored(clock: Clock) -> None:
    first = routed(clock, A)
    state = run(clock, first, returned(clock, A), routed(clock, B, attempt=2))
    # the announcement of attempt 1 arrives again under another id (e.g. republished)
    late = routed(clock, A, attempt=1, event_id="routed:T1#1-again")
    outcome = ok(state, late)
    assert outcome.duplicate and outcome.state == state and outcome.effects == ()


def test_seen_event_ids_are_bounded(clock: Clock) -> None:
    state = signed_state(clock)
    for _ in range(SEEN_EVENTS_KEPT + 10):
        state = ok(state, by_agency(clock, "extension_requested", days=1, explanation="x")).state
        state = ok(state, by(clock, "extension_denied", "dispatcher")).state
    assert len(state.seen_events) == SEEN_EVENTS_KEPT
    assert state.seen_events[-1] == f"e{2 + 2 * (SEEN_EVENTS_KEPT + 10)}"


# --- extensions and reopening -----------------------------------------------------------------------
def test_an_approved_extension_adds_its_days_a_denied_one_does_not(clock: Clock) -> None:
    state = signed_state(clock)
    state = ok(state, by_agency(clock, "extension_requested", days=5, explanation="需现场检测")).state
    assert state.extension_pending_days == 5 and state.extension_days_granted == 0
    state = ok(state, by(clock, "extension_approved", "supervisor")).state
    assert (state.extension_pending_days, state.extension_days_granted) == (0, 5)
    state = ok(state, by_agency(clock, "extension_requested", days=3, explanation="再次检测")).state
    state = ok(state, by(clock, "extension_denied", "dispatcher", explanation="理由不足")).state
    assert (state.extension_pending_days, state.extension_days_granted) == (0, 5)
    state = ok(state, by_agency(clock, "extension_requested", days=2, explanation="等待回复")).state
    state = ok(state, by(clock, "extension_approved", "dispatcher")).state
    assert state.extension_days_granted == 7


def test_resolving_drops_a_pending_extension(clock: Clock) -> None:
    state = ok(signed_state(clock), by_agency(clock, "extension_requested", days=5, explanation="x")).state
    state = ok(state, by_agency(clock, "resolved", reply="已办结")).state
    assert state.extension_pending_days == 0


@pytest.mark.parametrize("closed_first", [False, True])
def test_reopening_restarts_the_handling_clock(clock: Clock, closed_first: bool) -> None:
    # Given a resolved ticket rated unsatisfied (and perhaps already closed)
    state = ok(signed_state(clock), by_agency(clock, "extension_requested", days=5, explanation="x")).state
    state = ok(state, by(clock, "extension_approved", "supervisor")).state
    state = ok(state, by_agency(clock, "resolved", reply="已办结")).state
    state = ok(state, by(clock, "rated", "callcenter", rating="unsatisfied", comment="没人来")).state
    if closed_first:
        state = ok(state, by(clock, "closed", "callcenter")).state
    # When the call-back centre reopens it
    reopen = by(clock, "reopened", "callcenter", explanation="群众不满意")
    state = ok(state, reopen).state
    # Then the same agency handles it again on a new clock
    assert (state.status, state.agency) == (Status.SIGNED, A)
    assert state.handling_started_at == reopen.occurred_at
    assert state.signed_at < reopen.occurred_at  # the first signature stays on record
    assert (state.resolved_at, state.closed_at, state.rating) == (None, None, None)
    assert (state.reopen_count, state.extension_days_granted) == (1, 0)
    # and can resolve it again
    assert ok(state, by_agency(clock, "resolved", reply="已再次处理")).state.status == Status.RESOLVED


# --- state persistence ------------------------------------------------------------------------------
def test_state_survives_a_json_round_trip(clock: Clock) -> None:
    state = run(clock, routed(clock, A), returned(clock, A), routed(clock, B, attempt=2),
                by_agency(clock, "signed", B),
                by_agency(clock, "extension_requested", B, days=4, explanation="x"))
    assert state.returned_by == (A,) and state.signed_at is not None
    stored = json.loads(json.dumps(state.to_dict()))  # what the faust table's changelog holds
    assert isinstance(stored["signed_at"], str) and isinstance(stored["seen_events"], list)
    back = TicketState.from_dict(stored)
    assert back == state
    assert back.signed_at is not None and back.signed_at.utcoffset() == timedelta(hours=8)
    assert ok(back, by(clock, "extension_approved", "supervisor")).state.extension_days_granted == 4


def test_from_dict_ignores_unknown_keys_and_fills_defaults() -> None:
    state = TicketState.from_dict({"ticket_id": "T9", "status": "manual", "future_field": 1})
    assert state == TicketState(ticket_id="T9", status="manual")


# --- parsing tickets.events -------------------------------------------------------------------------
def event_json(**overrides: Any) -> dict[str, Any]:
    return {"event_id": "e1", "ticket_id": "T1", "type": "extension_requested", "actor": "scjg",
            "role": "agency", "agency": A, "occurred_at": "2025-09-26T10:00:00+08:00", "days": 3,
            "explanation": "需检测", **overrides}


def test_a_valid_event_parses_into_its_record() -> None:
    ev = parse_event(json.dumps(event_json(), ensure_ascii=False).encode())
    assert isinstance(ev, EVENT_CLASSES["extension_requested"])
    assert ev.days == 3 and ev.occurred_at == datetime(2025, 9, 26, 2, 0, tzinfo=UTC)


def test_naive_times_are_shanghai_and_unknown_fields_are_ignored() -> None:
    ev = parse_event(event_json(occurred_at="2025-09-26T10:00:00", colour="blue"))
    assert isinstance(ev, LifecycleEvent)
    assert ev.occurred_at.utcoffset() == timedelta(hours=8) and not hasattr(ev, "colour")


def test_an_event_without_its_time_happened_on_arrival_and_keeps_that_time() -> None:
    # Given an event sent without occurred_at, read by the lifecycle at a (simulated) "now"
    now = datetime(2025, 9, 26, 3, 0, tzinfo=UTC)
    ev, payload = read_event(json.dumps({k: v for k, v in event_json().items() if k != "occurred_at"}), now=now)
    # Then it happened then, and its stored payload says so: a replay of the ledger reads the same time later
    assert isinstance(ev, LifecycleEvent) and ev.occurred_at == now
    assert payload is not None and parse_event(payload).occurred_at == now
    assert parse_event(event_json(occurred_at=None), now=now).occurred_at == now


def test_a_return_parses_with_its_reason() -> None:
    ev = parse_event(event_json(type="returned", reason_code="OTHER_JURISDICTION", basis="《条例》第三条"))
    assert isinstance(ev, TicketReturned) and ev.reason_code == "OTHER_JURISDICTION"


@pytest.mark.parametrize("raw,reason", [
    (b"{not json", "not JSON"),
    (b"\xff\xfe\x00", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (event_json(event_id=""), "missing or empty: event_id"),
    ({k: v for k, v in event_json().items() if k not in ("actor", "role")}, "missing or empty: actor, role"),
    (event_json(ticket_id=12), "missing or empty: ticket_id"),
    (event_json(type="escalated"), "unknown event type 'escalated'"),
    (event_json(role="mayor"), "unknown role 'mayor'"),
    (event_json(days="3"), "days must be an integer"),
    (event_json(days=2.5), "days must be an integer"),
    (event_json(days=True), "days must be an integer"),
    (event_json(type="routed", attempt="2"), "attempt must be an integer"),
    (event_json(type="routed", attempt=10**30), "attempt must be between 0 and 10000"),
    (event_json(days=-3), "days must be between 0 and 10000"),
    (event_json(explanation="长" * 10_001), "explanation is longer than 10000 characters"),
    (event_json(actor="x" * 10_001), "actor is longer than 10000 characters"),
    (event_json(agency=7), "agency must be a string"),
    (event_json(explanation=["a"]), "explanation must be a string"),
    (event_json(occurred_at="yesterday"), "is not an ISO 8601 time"),
    (event_json(occurred_at=1758852000), "is not an ISO 8601 time"),  # not stamped "now" instead
])
def test_bad_events_become_rejections_with_a_reason(raw: Any, reason: str) -> None:
    result = parse_event(raw)
    assert isinstance(result, Rejection), result
    assert reason in result.reason
    assert result.key and len(result.key) <= 80


def test_rejection_key_is_the_event_id_when_known() -> None:
    assert parse_event(event_json(role="mayor")).key == "e1"
    assert parse_event(b"garbage").key.startswith("sha1:")


# --- reopening a ticket nobody handled ----------------------------------------------------------------
def test_reopening_a_ticket_closed_from_the_manual_queue_returns_it_to_the_dispatchers(clock: Clock) -> None:
    # Given a low-confidence ticket a dispatcher closed from the manual queue, rated unsatisfied
    state = run(clock, routed(clock, None, decision="manual", reason="置信度低"), by(clock, "closed", "dispatcher"))
    state = ok(state, by(clock, "rated", "callcenter", rating="unsatisfied")).state
    # When the call-back centre reopens it
    outcome = ok(state, by(clock, "reopened", "callcenter", explanation="无人处理"))
    # Then it waits with the dispatchers (no clock runs for nobody), not signed by no agency
    state = outcome.state
    assert (state.status, state.agency, state.manual_reason) == (Status.MANUAL, None, "reopened")
    assert state.handling_started_at is None and outcome.effects == ()
    assert (state.closed_at, state.rating, state.reopen_count) == (None, None, 1)
    # and a dispatcher assigns it to an agency as the next attempt
    assert ok(state, by(clock, "reassigned", "dispatcher", target_agency=B)).effects == (Dispatch(B, 2),)


# --- designation counts returned dispatches ------------------------------------------------------------
def test_manual_routings_do_not_count_towards_designation(clock: Clock) -> None:
    # Given a ticket first on the manual queue (attempt 1), dispatched to A (attempt 2)
    state = run(clock, routed(clock, None, decision="manual"), by(clock, "reassigned", "dispatcher", target_agency=A),
                routed(clock, A, attempt=2))
    # When A and then B return it
    state = run_on(state, returned(clock, A), routed(clock, B, attempt=3))
    outcome = ok(state, returned(clock, B))
    # Then two dispatches without a taker are not yet three: it is re-routed (attempt 4)
    assert outcome.effects == (Reroute(attempt=4, exclude=(A, B)),)
    # And the third returned dispatch asks for designation, as attempt 5
    state = ok(outcome.state, routed(clock, C, attempt=4)).state
    outcome = ok(state, returned(clock, C))
    assert outcome.effects == (Designate(attempts=3, returned_by=(A, B, C), attempt=5),)
    assert outcome.state.returns == 3


def test_an_agency_returning_twice_counts_twice_towards_designation(clock: Clock) -> None:
    # A, B, then A again (a dispatcher sent it back): three dispatches without a taker
    state = run(clock, routed(clock, A), returned(clock, A), routed(clock, B, attempt=2), returned(clock, B))
    state = ok(state, routed(clock, None, attempt=3, decision="manual")).state
    state = run_on(state, by(clock, "reassigned", "dispatcher", target_agency=A), routed(clock, A, attempt=4))
    outcome = ok(state, returned(clock, A))
    assert outcome.effects == (Designate(attempts=3, returned_by=(A, B), attempt=5),)


def test_a_state_stored_before_returns_were_counted_counts_its_returning_agencies() -> None:
    stored = TicketState("T1", status="signed", agency=C, attempt=3, returned_by=(A, B)).to_dict()
    del stored["returns"]
    assert TicketState.from_dict(stored).returns == 2


# --- one dispatch per attempt ----------------------------------------------------------------------------
def test_a_second_reassignment_before_the_first_dispatch_lands_is_refused(clock: Clock) -> None:
    # Given a manual ticket a dispatcher reassigned to A, whose dispatch (attempt 2) has not landed
    state = run(clock, routed(clock, None, decision="manual"), by(clock, "reassigned", "dispatcher", target_agency=A))
    # When another dispatcher reassigns it to B
    outcome = apply(state, by(clock, "reassigned", "dispatcher", target_agency=B), known_agencies=KNOWN)
    # Then that is refused with the reason: attempt 2 goes to A only
    assert isinstance(outcome, Refusal)
    assert "dispatch attempt 2 of T1 (to BH-SCJG) has not landed yet" in outcome.reason
    # And the same choice again sends the same dispatch again (the routing id makes it idempotent)
    again = ok(state, by(clock, "reassigned", "dispatcher", target_agency=A))
    assert again.effects == (Dispatch(A, 2),) and again.state.status == Status.MANUAL
    # Once the dispatch to A has landed, B can be chosen, as attempt 3
    state = ok(again.state, routed(clock, A, attempt=2)).state
    assert state.pending is None
    assert ok(state, by(clock, "reassigned", "dispatcher", target_agency=B)).effects == (Dispatch(B, 3),)


def test_a_reassignment_while_a_return_is_re_routed_is_refused(clock: Clock) -> None:
    state = run(clock, routed(clock, A), returned(clock, A))
    outcome = apply(state, by(clock, "reassigned", "dispatcher", target_agency=B), known_agencies=KNOWN)
    assert isinstance(outcome, Refusal) and "re-routing after a return" in outcome.reason


# --- a follow-up that did not happen is due again ---------------------------------------------------------
def test_a_redelivered_return_whose_re_routing_has_not_landed_re_routes_again(clock: Clock) -> None:
    # Given A returned the ticket, and the re-routing (attempt 2) never came back as 'routed'
    ret = returned(clock, A)
    first = ok(run(clock, routed(clock, A)), ret)
    # When the return is delivered again (a crash after the state was stored, or a failed follow-up)
    again = ok(first.state, ret)
    # Then nothing changes, but the re-routing is due again, with the same attempt number
    assert again.duplicate and again.state == first.state
    assert again.effects == first.effects == (Reroute(attempt=2, exclude=(A,)),)
    # And another event's redelivery does not repeat it
    sign = by_agency(clock, "signed", B)
    state = run_on(first.state, routed(clock, B, attempt=2), sign)
    assert ok(state, sign).effects == ()


def test_a_redelivered_designation_and_reassignment_are_due_again(clock: Clock) -> None:
    ret = returned(clock, A)
    first = ok(run(clock, routed(clock, A)), ret, max_attempts=1)
    assert ok(first.state, ret, max_attempts=1).effects == (Designate(1, (A,), 2),)
    reassign = by(clock, "reassigned", "dispatcher", target_agency=B)
    state = ok(ok(first.state, routed(clock, None, attempt=2, decision="designated", designation=True)).state,
               reassign).state
    assert ok(state, reassign).effects == (Dispatch(B, 3),)


def test_a_pending_dispatch_survives_a_json_round_trip(clock: Clock) -> None:
    state = run(clock, routed(clock, None, decision="manual"), by(clock, "reassigned", "dispatcher", target_agency=C))
    back = TicketState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert back == state and back.pending_effect() == Dispatch(C, 2)


def run_on(state: TicketState, *events: Any) -> TicketState:
    for e in events:
        state = ok(state, e).state
    return state


# --- the 退单 window ---------------------------------------------------------------------------------------
def test_a_return_after_its_window_is_refused_and_the_agency_keeps_the_ticket(clock: Clock) -> None:
    # Given a ticket signed by A, whose return window closes one minute after the next event
    state = signed_state(clock)
    closes = clock.now + timedelta(minutes=1)
    # When A returns it in time, it is re-routed; when A returns it after the window, it is refused
    assert ok(state, returned(clock), return_closes=closes).state.status == Status.RETURNED
    late = apply(state, returned(clock, event_id="late"), known_agencies=KNOWN, return_closes=closes)
    assert isinstance(late, Refusal) and "退单时限已过" in late.reason and "reassign" in late.reason
    # And without a window (late returns only flagged), the same late return is accepted
    assert ok(state, returned(clock, event_id="flagged")).state.status == Status.RETURNED


def test_a_late_return_by_another_agency_is_refused_for_that_first(clock: Clock) -> None:
    state = signed_state(clock)
    refusal = apply(state, returned(clock, B), known_agencies=KNOWN, return_closes=T0)
    assert isinstance(refusal, Refusal) and "not the current handler" in refusal.reason
