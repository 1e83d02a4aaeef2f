"""Scenarios on simulated time through the Supervisor facade, driven like the faust stage will drive it:
lifecycle events through the real state machine, a table of facts, a manual clock that ticks.

Covers a ticket dispatched the day before National Day, an extension, a reopen, a closed ticket, and a
restart (with downtime) in the middle of a scenario: no missing and no duplicate alerts."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from config.catalogue import build_catalogue
from models.clock import ManualClock
from models.directory import Catalogue
from models.lifecycle import Outcome, TicketState, apply
from models.supervision import Alert, LinkIndex, LinkRules, Supervisor, TicketFacts, link_facts
from models.workcalendar import TZ
from tests.unit import domain_fixtures as fx


@pytest.fixture(scope="module")
def cat(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    built, _ = build_catalogue(fx.build(tmp_path_factory.mktemp("supervisor")))
    assert built is not None
    return built


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


class World:
    """The stage in miniature: a facts table, lifecycle states, a clock, a supervisor, the linkers' states
    (the stage's link table: here one dict, as if every linking key lived on one partition), an alert log."""

    def __init__(self, cat: Catalogue, start: str) -> None:
        self.cat, self.clock = cat, ManualClock(at(start))
        self.sup = Supervisor(cat, review_threshold=0.8)
        self.links = LinkIndex(LinkRules(), max_keys=10_000)
        self.table: dict[str, TicketFacts] = {}
        self.states: dict[str, TicketState] = {}
        self.alerts: list[Alert] = []
        self._n = 0

    def receive(self, tid: str, **intake: Any) -> None:
        self.table[tid] = TicketFacts(tid, self.clock.now(), **intake)

    def event(self, tid: str, kind: str, role: str, agency: str | None = None, **extra: Any) -> list[Alert]:
        self._n += 1
        ev = SimpleNamespace(event_id=f"e{self._n}", ticket_id=tid, type=kind, actor="tester", role=role,
                             agency=agency, occurred_at=self.clock.now(), **extra)
        outcome = apply(self.states.get(tid), ev, max_attempts=self.cat.sla.max_dispatch_attempts)
        assert isinstance(outcome, Outcome), outcome
        self.states[tid] = outcome.state
        before = self.table[tid]
        facts, alerts = self.sup.on_event(before, ev, outcome.state)
        alerts += [a for f in link_facts(before, facts, ev) for a in self.links.observe(f)]
        self.table[tid] = facts
        self.alerts += alerts
        return alerts

    def route(self, tid: str, agency: str, attempt: int = 1, **extra: Any) -> list[Alert]:
        extra.setdefault("decided_by", "router")
        return self.event(tid, "routed", "system", agency, attempt=attempt, decision="auto", **extra)

    def run_until(self, moment: str | datetime, step: timedelta = timedelta(minutes=10)) -> list[Alert]:
        end = at(moment) if isinstance(moment, str) else moment
        new: list[Alert] = []
        while self.clock.now() < end:
            self.clock.set(min(self.clock.now() + step, end))
            tick = self.sup.tick(self.clock.now(), self.table.get)
            self.table.update(tick.updated)
            new += tick.alerts
        self.alerts += new
        return new

    def restart(self) -> None:
        """A new worker: empty memory, the facts table recovered from its changelog (here: JSON)."""
        self.table = {k: TicketFacts.from_dict(json.loads(json.dumps(v.to_dict()))) for k, v in self.table.items()}
        self.sup = Supervisor(self.cat, review_threshold=0.8)
        self.sup.rebuild(self.table.values())

    def keys(self, rule_prefix: str = "") -> list[str]:
        return [a.alert_key for a in self.alerts if a.rule.startswith(rule_prefix)]


def levels(alerts: list[Alert]) -> list[tuple[str, str, datetime]]:
    return [(a.rule, a.level, a.at) for a in alerts]


def test_dispatched_the_day_before_national_day_signed_late(cat: Catalogue) -> None:
    # Given a complaint dispatched on 2025-09-30 15:00 (sign-for due 10-09 15:00, after eight days off)
    w = World(cat, "2025-09-30T15:00")
    w.receive("T1", request_type="投诉", matter="TST-001", address="塘沽新港街道某号")
    w.route("T1", "BH-CGW", matter="TST-001", confidence=0.9)
    # When nobody signs during the holiday
    assert w.run_until("2025-10-08T23:50") == []
    alerts = w.run_until("2025-10-10T09:00")
    # Then warnings split the one working day (10-09), overdue at 15:00; no 催办 yet
    assert levels(alerts) == [
        ("sign_deadline", "warn_50", at("2025-10-09T03:00")),
        ("sign_deadline", "warn_75", at("2025-10-09T09:00")),
        ("sign_deadline", "warn_90", at("2025-10-09T12:36")),
        ("sign_deadline", "overdue", at("2025-10-09T15:00")),
    ]
    # When the agency signs at 09:00 on 10-10 the sign-for clock stops and the handling clock starts
    w.event("T1", "signed", "agency", "BH-CGW")
    assert [d.id for d in w.sup.deadlines(w.table["T1"])] == ["return@1", "handle@1.0"]
    assert w.run_until("2025-10-11T12:00") == []


def test_restart_in_the_middle_with_downtime_misses_nothing_and_repeats_nothing(cat: Catalogue) -> None:
    def scenario(restart: bool) -> list[str]:
        w = World(cat, "2025-09-26T10:00")
        w.receive("T1", request_type="咨询")
        w.route("T1", "BH-ZJW")
        w.clock.advance(timedelta(hours=1))
        w.event("T1", "signed", "agency", "BH-ZJW")
        w.run_until("2025-09-29T12:00")
        if restart:
            w.restart()
            w.clock.set(at("2025-10-10T12:00"))  # the worker was down for eleven days
        w.run_until("2025-10-15T12:00")
        return w.keys()

    uninterrupted, restarted = scenario(False), scenario(True)
    assert Counter(restarted) == Counter(uninterrupted)  # same alerts ...
    assert len(set(restarted)) == len(restarted)  # ... each exactly once
    assert [k.split(":")[2] for k in uninterrupted if k.startswith("T1:handle")] == [
        "warn_50@1.0", "warn_75@1.0", "warn_90@1.0", "overdue@1.0", "reminder_1@1.0", "reminder_2@1.0",
        "reminder_3@1.0", "reminder_4@1.0", "reminder_5@1.0", "censure@1.0", "reminder_6@1.0"]


def test_an_extension_moves_the_deadline_without_repeating_warnings(cat: Catalogue) -> None:
    # Given a 咨询 signed Friday 09-26 11:00, due 09-30 11:00; its 50% warning came on the 调休 Sunday
    w = World(cat, "2025-09-26T10:00")
    w.receive("T1", request_type="咨询")
    w.route("T1", "BH-ZJW")
    w.clock.advance(timedelta(hours=1))
    w.event("T1", "signed", "agency", "BH-ZJW")
    assert levels(w.run_until("2025-09-29T10:00"))[-1] == ("handle_deadline", "warn_50", at("2025-09-28T23:00"))
    # When two working days are requested and approved
    w.event("T1", "extension_requested", "agency", "BH-ZJW", days=2, explanation="需现场核查")
    w.clock.advance(timedelta(hours=2))
    w.event("T1", "extension_approved", "supervisor", None)
    # Then the deadline moves to 10-10 11:00, 50% is not announced again, 75% comes at its new moment
    assert levels(w.run_until("2025-10-10T12:00")) == [
        ("handle_deadline", "warn_75", at("2025-10-09T05:00")),
        ("handle_deadline", "warn_90", at("2025-10-09T23:00")),
        ("handle_deadline", "overdue", at("2025-10-10T11:00")),
    ]
    assert w.alerts[-1].details["extension_days"] == 2


def test_resolve_stops_the_clock_and_a_reopen_starts_a_new_one(cat: Catalogue) -> None:
    w = World(cat, "2025-09-26T10:00")
    w.receive("T1", request_type="咨询")
    w.route("T1", "BH-ZJW")
    w.event("T1", "signed", "agency", "BH-ZJW")
    w.clock.advance(timedelta(hours=3))
    w.event("T1", "resolved", "agency", "BH-ZJW", reply="已答复")
    # Closed or resolved: nothing left in the index, nothing announced
    assert "T1" not in w.sup.index
    assert w.run_until("2025-10-20T10:00", step=timedelta(hours=6)) == []
    # When the caller is unsatisfied and the ticket is reopened, a new 3-working-day clock starts
    w.event("T1", "rated", "callcenter", None, rating="unsatisfied")
    w.event("T1", "reopened", "callcenter", None, explanation="市民不满意")
    alerts = w.run_until("2025-10-23T12:00")
    assert [a.alert_key for a in alerts] == ["T1:handle_deadline:warn_50@1.1", "T1:handle_deadline:warn_75@1.1",
                                             "T1:handle_deadline:warn_90@1.1", "T1:handle_deadline:overdue@1.1"]
    assert alerts[-1].deadline == at("2025-10-23T10:00")
    w.event("T1", "resolved", "agency", "BH-ZJW", reply="已再次答复")
    w.event("T1", "closed", "callcenter", None)
    assert "T1" not in w.sup.index and w.run_until("2025-11-30T10:00", step=timedelta(hours=6)) == []


def test_returns_ping_pong_designation_and_review_hint_through_events(cat: Catalogue) -> None:
    w = World(cat, "2025-09-01T09:00")
    w.receive("T1", request_type="投诉", matter="TST-001", address="塘沽新港街道某号")
    assert w.route("T1", "BH-CGW", matter="TST-001", confidence=0.95) == []
    assert [a.rule for a in w.event("T1", "returned", "agency", "BH-CGW", reason_code="NOT_OUR_DUTY",
                                    basis="《某条例》")] == ["returned"]
    # the re-route goes to the street office: contradicts the list in force since 2025-08-25
    assert [a.rule for a in w.route("T1", "BH-JD-XG", attempt=2, matter="TST-001", confidence=0.6)] == \
        ["misdispatch"]
    assert [a.rule for a in w.event("T1", "returned", "agency", "BH-JD-XG", reason_code="OTHER_JURISDICTION",
                                    basis="《某条例》")] == ["returned", "ping_pong"]
    # a dispatcher sends it back to the first agency, which signs: ping-pong, and no review hint
    # (the classifier's own choice was that agency)
    assert [a.alert_key for a in w.route("T1", "BH-CGW", attempt=3, matter="TST-001", confidence=1.0,
                                         decided_by="disp1")] == ["T1:ping_pong:back_to_BH-CGW@3"]
    assert w.table["T1"].predicted_agency == "BH-JD-XG"  # the router's last own choice, not the dispatcher's
    hint = w.event("T1", "signed", "agency", "BH-CGW")
    assert hint == []  # 0.6 < 0.8: the classifier was not confident about BH-JD-XG
    assert [a.rule for a in w.event("T1", "returned", "agency", "BH-CGW", reason_code="NOT_OUR_DUTY",
                                    basis="《某条例》")] == ["returned", "ping_pong", "designation"]
    assert len(set(w.keys())) == len(w.keys())


def test_repeated_complaints_and_joint_enforcement_through_events(cat: Catalogue) -> None:
    w = World(cat, "2025-09-01T09:00")
    place = {"address": "塘沽新港街道某号某某烧烤店"}
    for n, (agency, matter) in enumerate([("BH-CGW", "TST-001"), ("BH-STHJ", "TST-002"),
                                          ("BH-CGW", "TST-001")]):
        w.receive(f"T{n}", caller_phone="13800001234", matter=matter, **place)
        w.route(f"T{n}", agency, matter=matter, confidence=0.9)
        w.clock.advance(timedelta(days=2))
    assert Counter(a.rule for a in w.alerts) == {"joint_enforcement": 1, "repeated_complaint": 1}
    (rep,) = [a for a in w.alerts if a.rule == "repeated_complaint"]
    assert rep.ticket_id == "T2" and rep.details["linked"] == ["T0", "T1"]


def test_a_ticket_gone_from_the_table_is_dropped_from_the_index(cat: Catalogue) -> None:
    w = World(cat, "2025-09-01T09:00")
    w.receive("T1", request_type="咨询")
    w.route("T1", "BH-ZJW")
    del w.table["T1"]  # e.g. the partition moved to another worker
    assert w.run_until("2025-09-03T09:00") == [] and "T1" not in w.sup.index


def test_facts_survive_a_json_round_trip() -> None:
    facts = TicketFacts("T1", at("2025-09-01T09:00"), request_type="投诉", status="signed", agency="BH-ZJW",
                        attempt=2, returned_by=("BH-CGW",), dispatched_at=at("2025-09-01T10:00"),
                        signed_at=at("2025-09-01T11:00"), handling_started_at=at("2025-09-01T11:00"),
                        predicted_confidence=0.91, progress=(("handle@2.0", 100),))
    assert TicketFacts.from_dict(json.loads(json.dumps(facts.to_dict()))) == facts
    state = TicketState("T1", status="resolved", agency="BH-ZJW", attempt=2, returned_by=("BH-CGW",))
    assert facts.with_state(state).status == "resolved" and facts.with_state(state).request_type == "投诉"


def test_dispatched_the_day_before_spring_festival_and_handled_across_the_tiaoxiu_saturday(cat: Catalogue) -> None:
    # Given a 咨询 dispatched on Monday 2025-01-27 15:00, the last working day before 春节 (01-28..02-04)
    w = World(cat, "2025-01-27T15:00")
    w.receive("T9", request_type="咨询", matter="TST-001", address="塘沽新港街道某号")
    w.route("T9", "BH-CGW", matter="TST-001", confidence=0.9)
    # When nobody signs during the holiday, nothing fires until the next working day, 02-05
    assert w.run_until("2025-02-04T23:50") == []
    alerts = w.run_until("2025-02-06T09:00")
    assert levels(alerts) == [
        ("sign_deadline", "warn_50", at("2025-02-05T03:00")),
        ("sign_deadline", "warn_75", at("2025-02-05T09:00")),
        ("sign_deadline", "warn_90", at("2025-02-05T12:36")),
        ("sign_deadline", "overdue", at("2025-02-05T15:00")),
    ]
    # When it is signed on Thursday 02-06 09:00, 3 working days count 02-07, the 调休 Saturday 02-08, 02-10
    w.event("T9", "signed", "agency", "BH-CGW")
    handle = next(d for d in w.sup.deadlines(w.table["T9"]) if d.stage == "handle")
    assert handle.due == at("2025-02-10T09:00")
    w.event("T9", "resolved", "agency", "BH-CGW", reply="已答复政策")
    assert w.run_until("2025-02-12T09:00") == []  # resolved: the clocks stopped
    assert len(w.keys()) == len(set(w.keys()))
