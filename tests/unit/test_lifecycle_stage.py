"""The lifecycle stage (streams.lifecycle) with fakes for the table, the ledger and the broker: follow-ups of
returns and reassignments survive failures (a redelivery or the stuck-dispatch sweep does them again), and a
routing id is only ever dispatched with one decision."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

import streams.lifecycle as stage
from classifier.decision import AUTO, Decision
from models.clock import ManualClock
from models.lifecycle import Dispatch, Status, TicketState
from streams import intake, supervision, ticket_table
from streams.db import SchemaMoved

AT = "2025-09-26T10:00:00+08:00"
AGENCIES = {"BH-SCJG": "市场监管局", "BH-CGW": "城管委", "BH-STHJ": "生态环境局"}


class Ledger:
    """The ledger's calls the stage makes, in memory; decisions are idempotent by routing id."""

    def __init__(self) -> None:
        self.decided: dict[str, dict[str, Any]] = {}
        self.published: set[str] = set()
        self.events: list[dict[str, Any]] = []
        self.training: list[str] = []
        self.predicted: list[str | None] = []

    def tickets(self, ids: list[str]) -> dict[str, Any]:
        return {i: SimpleNamespace(id=i, text="饭店油烟扰民", title=None, address="滨海新区某路1号",
                                   received_at=datetime(2025, 9, 26, 1, tzinfo=UTC), request_type="投诉",
                                   urgency="一般", channel="phone", caller_phone="13800000000",
                                   current_agency=None) for i in ids}

    def decisions(self, keys: list[str]) -> dict[str, Any]:
        return {k: SimpleNamespace(message=self.decided[k], published_at=AT if k in self.published else None,
                                   attempt=self.decided[k].get("attempt"), agency=self.decided[k].get("agency"))
                for k in keys if k in self.decided}

    def record_decisions(self, rows: list[dict[str, Any]]) -> set[str]:
        new = {r["decision_key"]: r["message"] for r in rows if r["decision_key"] not in self.decided}
        self.decided.update(new)
        return set(new)

    def record_events(self, rows: list[dict[str, Any]], *, restage: Any = None) -> None:
        self.events.extend(rows)

    def unrecorded_routing(self, ticket_id: str, after: int) -> dict[str, Any] | None:
        recorded = {r["event_id"] for r in self.events}
        return next((m for k, m in sorted(self.decided.items(), key=lambda kv: kv[1]["attempt"])
                     if m["ticket_id"] == ticket_id and m["attempt"] > after and k in self.published
                     and f"routed:{k}" not in recorded), None)

    def record_training_example(self, *, label: str, predicted: str | None = None, **_: Any) -> None:
        self.training.append(label)
        self.predicted.append(predicted)


class Services:
    def __init__(self, route: Callable[[Any], Decision]) -> None:
        self.ledger = Ledger()
        self.restage = None  # the figure stages are the real ledger's concern (tests/integration)
        self.route = route
        self.routed = 0
        self.clock = ManualClock(datetime(2025, 9, 26, 2, tzinfo=UTC))
        self.settings = SimpleNamespace(stuck_dispatch_seconds=30.0, max_clock_skew=300.0)
        self.catalogue = SimpleNamespace(
            sla=SimpleNamespace(max_dispatch_attempts=3), agencies=set(AGENCIES),
            agency=lambda code: SimpleNamespace(code=code, name=AGENCIES[code], kind="market_regulation",
                                                jurisdiction="滨海新区"))

    async def db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    async def route_many(self, requests: list[Any]) -> list[Decision]:
        self.routed += 1
        return [self.route(r) for r in requests]


def to(agency: str) -> Callable[[Any], Decision]:
    return lambda _r: Decision(AUTO, "油烟", 0.9, agency=agency, agency_name=AGENCIES[agency])


def failing_then_to(agency: str, *, times: int) -> Callable[[Any], Decision]:
    """A classifier whose first ``times`` calls fail (its child process died), then routes to ``agency``."""
    failures = [RuntimeError("classifier child died")] * times

    def route(r: Any) -> Decision:
        if failures:
            raise failures.pop()
        return to(agency)(r)

    return route


class World:
    """The stage wired to fakes: the stored states, what was published, what was dead-lettered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, route: Callable[[Any], Decision]) -> None:
        self.svc = Services(route)
        self.states: dict[str, dict[str, Any]] = {}
        self.published: list[dict[str, Any]] = []
        self.announced: list[str] = []
        self.refused: list[str] = []
        self.last_resort: list[str] = []

        def write(ticket_id: str, partition: int, *, state: Any = ticket_table.KEEP, facts: Any = None) -> Any:
            if state is not ticket_table.KEEP:
                self.states[ticket_id] = state
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        async def observe_many(_items: Any) -> dict[str, Any]:
            return {}

        async def publish(messages: list[dict[str, Any]]) -> None:
            self.published.extend(messages)
            self.svc.ledger.published.update(m["routing_id"] for m in messages)

        async def announce(messages: list[dict[str, Any]], *, again: bool = False) -> None:
            self.announced.extend(m["routing_id"] for m in messages)

        async def dead_letter(rejection: Any, **_: Any) -> None:
            self.refused.append(rejection.reason)

        async def last_resort(rejection: Any, **_: Any) -> None:
            self.last_resort.append(rejection.reason)

        monkeypatch.setattr(ticket_table, "write", write)
        monkeypatch.setattr(ticket_table, "state", self.states.get)
        self.facts: dict[str, dict[str, Any]] = {}
        monkeypatch.setattr(ticket_table, "facts", self.facts.get)
        monkeypatch.setattr(ticket_table, "pending_states",
                            lambda: [s for s in self.states.values() if s.get("pending")])
        monkeypatch.setattr(stage, "_pending_since", {})
        monkeypatch.setattr(ticket_table, "lock", asyncio.Lock())
        monkeypatch.setattr(supervision, "observe_many", observe_many)
        monkeypatch.setattr(stage, "services", lambda: self.svc)
        monkeypatch.setattr(stage, "publish", publish)
        monkeypatch.setattr(stage, "announce", announce)
        monkeypatch.setattr(stage, "dead_letter", dead_letter)
        monkeypatch.setattr(intake, "last_resort", last_resort)
        monkeypatch.setattr(stage, "dispatched_matter", lambda *_: {})

    def state(self, ticket_id: str = "T1") -> TicketState:
        return TicketState.from_dict(self.states[ticket_id])

    def deliver(self, *events: dict[str, Any]) -> None:
        """One batch, retried one event at a time when it fails, as the lifecycle agent does."""
        batch = [SimpleNamespace(key=e["ticket_id"].encode(), value=json.dumps(e).encode(),
                                 message=SimpleNamespace(topic="tickets.events", partition=0, offset=n))
                 for n, e in enumerate(events)]

        asyncio.run(intake.batch_or_each(batch, stage.handle_batch, stage="the lifecycle stage", source="events"))

    def sweep(self, at: float) -> int:
        """One run of the stuck-dispatch sweep at monotonic time ``at``."""
        return asyncio.run(stage.sweep_stuck_dispatches(now=at))


def event(event_id: str, type_: str, role: str, agency: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "ticket_id": "T1", "type": type_, "actor": f"{role}-1", "role": role,
            "agency": agency, "occurred_at": AT, **fields}


RETURN = event("ret1", "returned", "agency", "BH-SCJG", reason_code="NOT_OUR_DUTY", basis="《某法》第十条")


def test_a_return_whose_re_routing_failed_is_re_routed_on_the_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a ticket signed by BH-SCJG, and a classifier that fails once
    world = World(monkeypatch, failing_then_to("BH-CGW", times=1))
    world.states["T1"] = TicketState("T1", status=Status.SIGNED, agency="BH-SCJG", attempt=1).to_dict()
    # When BH-SCJG returns it: the batch's re-routing fails after the state was stored, and the batch is retried
    world.deliver(RETURN)
    # Then the retry re-routes it (not skipped as a duplicate): attempt 2 goes out, to BH-CGW
    assert world.svc.routed == 2 and world.last_resort == []
    assert [(m["routing_id"], m["agency"]) for m in world.published] == [("T1#2", "BH-CGW")]
    assert world.state().status == Status.RETURNED and world.state().pending == "reroute"


def test_a_return_redelivered_after_a_crash_publishes_the_decision_already_stored(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a return whose re-routing was decided (BH-CGW) and stored, then the worker died before publishing
    world = World(monkeypatch, to("BH-STHJ"))
    world.states["T1"] = TicketState("T1", status=Status.SIGNED, agency="BH-SCJG", attempt=1).to_dict()
    real_follow_up = stage.follow_up

    async def crash(*_: Any) -> None:
        raise SystemExit("kill -9")

    monkeypatch.setattr(stage, "follow_up", crash)
    with pytest.raises(SystemExit):
        world.deliver(RETURN)
    world.svc.ledger.decided["T1#2"] = {"routing_id": "T1#2", "ticket_id": "T1", "attempt": 2, "agency": "BH-CGW"}
    monkeypatch.setattr(stage, "follow_up", real_follow_up)
    # When the return is delivered again (its offset was not committed)
    world.deliver(RETURN)
    # Then the stored decision goes out, not a second one for the same routing id
    assert world.svc.routed == 0
    assert [(m["routing_id"], m["agency"]) for m in world.published] == [("T1#2", "BH-CGW")]


def test_a_decision_stored_meanwhile_is_the_one_published(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a reassignment whose dispatch (T1#2) a concurrent run stores just before this one does
    world = World(monkeypatch, to("BH-CGW"))
    ledger = world.svc.ledger
    first = {"routing_id": "T1#2", "ticket_id": "T1", "attempt": 2, "agency": "BH-SCJG"}
    record = ledger.record_decisions

    def record_after_the_other(rows: list[dict[str, Any]]) -> set[str]:
        ledger.decided.setdefault("T1#2", first)
        return record(rows)

    monkeypatch.setattr(ledger, "record_decisions", record_after_the_other)
    state = TicketState("T1", status=Status.MANUAL, attempt=1)
    # When the follow-up runs
    asyncio.run(stage.follow_up(Dispatch("BH-CGW", 2), state, "dispatcher-2"))
    # Then the stored message is published, and the losing choice is no training example
    assert world.published == [first] and ledger.training == []


def test_two_reassignments_before_the_dispatch_lands_dispatch_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a ticket on the manual queue
    world = World(monkeypatch, to("BH-CGW"))
    world.states["T1"] = TicketState("T1", status=Status.MANUAL, attempt=1).to_dict()
    # When two dispatchers reassign it, to two agencies, before the first dispatch lands
    world.deliver(event("d1", "reassigned", "dispatcher", target_agency="BH-SCJG"),
                  event("d2", "reassigned", "dispatcher", target_agency="BH-CGW"))
    # Then only the first goes out, and the second is refused with its reason
    assert [(m["routing_id"], m["agency"]) for m in world.published] == [("T1#2", "BH-SCJG")]
    assert len(world.refused) == 1 and "has not landed yet" in world.refused[0]
    assert [r["accepted"] for r in world.svc.ledger.events] == [True, False]


def test_a_return_whose_re_routing_failed_twice_is_re_routed_by_the_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a ticket signed by BH-SCJG, and a classifier that fails in the batch and again in the retry
    world = World(monkeypatch, failing_then_to("BH-CGW", times=2))
    world.states["T1"] = TicketState("T1", status=Status.SIGNED, agency="BH-SCJG", attempt=1).to_dict()
    world.deliver(RETURN)
    assert len(world.last_resort) == 1 and world.published == []  # the return is dead-lettered
    # When the sweep looks twice, 30 s apart
    assert world.sweep(at=100.0) == 0  # first seen pending: it may still be on its way
    assert world.sweep(at=130.0) == 1
    # Then attempt 2 goes out, once, and a later sweep (the dispatch has not landed yet) repeats that message
    assert [(m["routing_id"], m["agency"]) for m in world.published] == [("T1#2", "BH-CGW")]
    assert world.sweep(at=160.0) == 1 and world.announced == ["T1#2"] and world.svc.routed == 3


def test_the_sweep_leaves_alone_a_dispatch_that_landed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a reassignment whose dispatch was published, seen pending by one sweep
    world = World(monkeypatch, to("BH-CGW"))
    world.states["T1"] = TicketState("T1", status=Status.MANUAL, attempt=1).to_dict()
    world.deliver(event("d1", "reassigned", "dispatcher", target_agency="BH-SCJG"))
    assert world.sweep(at=0.0) == 0
    # When its routed event lands before the next sweep
    world.deliver(event("routed:T1#2", "routed", "system", "BH-SCJG", attempt=2, decision="auto"))
    # Then the sweep has nothing to do
    assert world.state().pending is None and world.sweep(at=30.0) == 0
    assert [m["routing_id"] for m in world.published] == ["T1#2"] and world.announced == []


def test_a_stuck_reassignment_is_dispatched_in_the_dispatchers_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a reassignment whose follow-up failed twice (the ledger was unreachable for the decision)
    world = World(monkeypatch, to("BH-CGW"))
    world.states["T1"] = TicketState("T1", status=Status.MANUAL, attempt=1).to_dict()
    record = world.svc.ledger.record_decisions
    outages = [ConnectionError("database down"), ConnectionError("database down")]

    def record_unless_down(rows: list[dict[str, Any]]) -> set[str]:
        if outages:
            raise outages.pop()
        return record(rows)

    monkeypatch.setattr(world.svc.ledger, "record_decisions", record_unless_down)
    world.deliver(event("d1", "reassigned", "dispatcher", target_agency="BH-SCJG"))
    assert world.published == [] and world.state().pending_actor == "dispatcher-1"
    # When the sweep finds it stuck
    world.sweep(at=0.0)
    world.sweep(at=45.0)
    # Then it goes to the agency the dispatcher chose, decided by that dispatcher, and becomes a labelled example
    (sent,) = world.published
    assert (sent["routing_id"], sent["agency"], sent["decided_by"]) == ("T1#2", "BH-SCJG", "dispatcher-1")
    assert world.svc.ledger.training == ["BH-SCJG"]


def test_the_sweep_ends_its_round_once_the_ledger_s_schema_moved(monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    # Given two reassignments whose follow-ups did not land (the ledger was unreachable for their decisions)
    world = World(monkeypatch, to("BH-CGW"))
    refused: list[str] = []

    def down(rows: list[dict[str, Any]]) -> set[str]:
        raise ConnectionError("database down")

    def moved(rows: list[dict[str, Any]]) -> set[str]:  # Services.db outside a batch: said, the worker stopping
        refused.extend(r["decision_key"] for r in rows)
        raise SchemaMoved("9999_newer", "0011")

    monkeypatch.setattr(world.svc.ledger, "record_decisions", down)
    for tid in ("T1", "T2"):
        world.states[tid] = TicketState(tid, status=Status.MANUAL, attempt=1).to_dict()
        reassigned = event(f"d-{tid}", "reassigned", "dispatcher", target_agency="BH-SCJG")
        world.deliver({**reassigned, "ticket_id": tid})
    assert world.published == [] and world.state("T2").pending == "dispatch"
    assert world.sweep(at=0.0) == 0
    # When a newer version migrated the ledger before the sweep does them again
    monkeypatch.setattr(world.svc.ledger, "record_decisions", moved)
    # Then the round ends at the first refused write (as the reconciler's): no traceback per stuck ticket
    with pytest.raises(SchemaMoved):
        world.sweep(at=45.0)
    assert len(refused) == 1 and world.published == [] and "failed again" not in caplog.text


def test_a_reassignment_records_where_the_router_had_sent_the_ticket(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a ticket the router dispatched to BH-CGW
    world = World(monkeypatch, to("BH-CGW"))
    world.states["T1"] = TicketState("T1", status=Status.DISPATCHED, attempt=1, agency="BH-CGW").to_dict()
    world.svc.ledger.decided["T1#1"] = {"routing_id": "T1#1", "attempt": 1, "agency": "BH-CGW"}
    # When a dispatcher reassigns it to BH-SCJG
    world.deliver(event("d1", "reassigned", "dispatcher", target_agency="BH-SCJG"))
    # Then the labelled example says what the router predicted (the ledger's current agency is cleared by then)
    assert world.svc.ledger.training == ["BH-SCJG"] and world.svc.ledger.predicted == ["BH-CGW"]


def test_a_return_after_its_window_is_refused_and_nothing_is_re_routed(monkeypatch: pytest.MonkeyPatch) -> None:
    from config.catalogue import load_catalogue
    from models.supervision import TicketFacts

    # Given a 投诉 dispatched to BH-SCJG on Monday 2025-09-22 09:00 and signed, its facts stored (the shipped
    # time limits: a return within 1 working day, so by Tuesday 09:00)
    world = World(monkeypatch, to("BH-CGW"))
    real = load_catalogue()
    world.svc.catalogue.sla, world.svc.catalogue.time_limit = real.sla, real.time_limit
    world.svc.catalogue.calendar = real.calendar
    dispatched_at = datetime(2025, 9, 22, 1, tzinfo=UTC)
    world.states["T1"] = TicketState("T1", status=Status.SIGNED, agency="BH-SCJG", attempt=1,
                                     dispatched_at=dispatched_at).to_dict()
    world.facts["T1"] = TicketFacts("T1", dispatched_at, request_type="投诉", agency="BH-SCJG").to_dict()
    # When the agency returns it on Friday 09-26 (AT)
    world.deliver(RETURN)
    # Then the return is refused with the reason, the agency keeps the ticket, and nothing is re-routed
    assert len(world.refused) == 1 and "退单时限已过" in world.refused[0]
    assert world.state().status == Status.SIGNED and world.state().agency == "BH-SCJG"
    assert world.published == [] and world.svc.routed == 0


def published(world: World, attempt: int, agency: str | None) -> None:
    """Decision ``T1#<attempt>`` stored and published (its queue has it; the ticket's row shows it), not announced."""
    key = f"T1#{attempt}"
    world.svc.ledger.decided[key] = {
        "routing_id": key, "ticket_id": "T1", "attempt": attempt, "decision": "auto" if agency else "manual",
        "agency": agency, "routed_at": "2025-09-26T09:59:59+08:00", "reason": "油烟", "decided_by": "router"}
    world.svc.ledger.published.add(key)


def announcement(attempt: int, agency: str | None) -> dict[str, Any]:
    return event(f"routed:T1#{attempt}", "routed", "system", agency, attempt=attempt,
                 decision="auto" if agency else "manual")


SIGN_SCJG = event("sign1", "signed", "agency", "BH-SCJG")


def test_a_sign_for_that_overtakes_the_routing_s_announcement_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a ticket whose first routing, to BH-SCJG, is published (the console shows it "待签收") and whose
    # announcement is still behind on the partition: the lifecycle knows nothing of the ticket yet
    world = World(monkeypatch, to("BH-CGW"))
    published(world, 1, "BH-SCJG")
    # When the clerk's 签收 arrives, then the announcement
    world.deliver(SIGN_SCJG)
    world.deliver(announcement(1, "BH-SCJG"))
    # Then the routing is applied first, at its routing time, and the 签收 is accepted; the announcement changes
    # nothing (the ledger keeps the first row of its id)
    assert world.refused == []
    assert [(r["event_id"], r["accepted"]) for r in world.svc.ledger.events] == [
        ("routed:T1#1", True), ("sign1", True), ("routed:T1#1", True)]
    state = world.state()
    assert (state.status, state.agency, state.attempt) == (Status.SIGNED, "BH-SCJG", 1)
    assert state.dispatched_at == datetime.fromisoformat("2025-09-26T09:59:59+08:00")


def test_a_sign_for_that_overtakes_a_re_routing_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a ticket returned by BH-CGW, whose re-routing to BH-SCJG (attempt 2) is published, not yet announced
    world = World(monkeypatch, to("BH-SCJG"))
    world.states["T1"] = TicketState("T1", status=Status.RETURNED, attempt=1, returned_by=("BH-CGW",), returns=1,
                                     pending="reroute", pending_event="ret0").to_dict()
    published(world, 2, "BH-SCJG")
    # When BH-SCJG signs for it
    world.deliver(SIGN_SCJG)
    # Then it holds the ticket, and the re-routing is no longer pending (nothing for the sweep to do again)
    state = world.state()
    assert (state.status, state.agency, state.attempt, state.pending) == (Status.SIGNED, "BH-SCJG", 2, None)
    assert world.refused == [] and world.published == []


def test_an_action_still_refused_after_the_routing_is_applied_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a ticket published to BH-CGW, not announced yet
    world = World(monkeypatch, to("BH-CGW"))
    published(world, 1, "BH-CGW")
    # When BH-SCJG signs for it
    world.deliver(SIGN_SCJG)
    # Then the routing is applied and the 签收 refused for what it is: another agency's ticket
    assert len(world.refused) == 1 and "not the current handler" in world.refused[0]
    assert world.state().agency == "BH-CGW" and world.state().status == Status.DISPATCHED


def test_a_routing_neither_published_nor_new_is_not_applied_early(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a decision stored but not published (its queue may never have had it), and a closed ticket the
    # workers forgot, whose routing the lifecycle had recorded
    world = World(monkeypatch, to("BH-CGW"))
    published(world, 1, "BH-SCJG")
    world.svc.ledger.published.clear()
    world.deliver(SIGN_SCJG)
    assert len(world.refused) == 1 and "unknown to the router" in world.refused[0] and world.states == {}
    world.svc.ledger.published.add("T1#1")
    world.svc.ledger.events.append({"event_id": "routed:T1#1", "accepted": True})
    # When a 签收 comes for either
    world.deliver(event("sign2", "signed", "agency", "BH-SCJG"))
    # Then it is refused as unknown, and no state is made up
    assert len(world.refused) == 2 and "unknown to the router" in world.refused[1] and world.states == {}


def test_an_action_stamped_in_the_future_is_refused_recorded_and_dead_lettered(monkeypatch: pytest.MonkeyPatch
                                                                                ) -> None:
    # Given a ticket dispatched to BH-SCJG at 09:59:59 (the stage's clock reads 10:00, 5 minutes' skew allowed)
    world = World(monkeypatch, to("BH-CGW"))
    published(world, 1, "BH-SCJG")
    world.deliver(announcement(1, "BH-SCJG"))
    # When BH-SCJG's system signs with a clock a day ahead, and then in time
    world.deliver(event("sign-ahead", "signed", "agency", "BH-SCJG", occurred_at="2025-09-27T10:00:00+08:00"))
    world.deliver(event("sign-now", "signed", "agency", "BH-SCJG", occurred_at="2025-09-26T10:04:00+08:00"))
    # Then the first is refused (the ledger row says why, the sender learns it from the dead letter), the second
    # accepted at its own time
    rows = {r["event_id"]: r for r in world.svc.ledger.events}
    assert not rows["sign-ahead"]["accepted"] and "晚于当前时间" in rows["sign-ahead"]["reason"]
    assert len(world.refused) == 1 and "is later than now" in world.refused[0]
    assert rows["sign-now"]["accepted"]
    assert world.state().signed_at == datetime.fromisoformat("2025-09-26T10:04:00+08:00")


def test_a_sign_for_that_overtook_its_announcement_is_judged_against_the_routing_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a routing to BH-SCJG decided at 09:59:59, published and not announced yet
    world = World(monkeypatch, to("BH-CGW"))
    published(world, 1, "BH-SCJG")
    # When a 签收 stamped an hour before it arrives ahead of the announcement
    world.deliver(event("sign-early", "signed", "agency", "BH-SCJG", occurred_at="2025-09-26T09:00:00+08:00"))
    # Then the routing is applied (the catch-up), and the 签收 refused: before the dispatch it answers
    assert [(r["event_id"], r["accepted"]) for r in world.svc.ledger.events] == [
        ("routed:T1#1", True), ("sign-early", False)]
    assert "早于上一环节" in world.svc.ledger.events[1]["reason"]
    assert world.state().status == Status.DISPATCHED
