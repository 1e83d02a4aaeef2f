"""The supervision stage (streams.supervision) with fakes for the ticket table, the broker and the clock: a
failed round neither delays an alert to the next checkpoint nor leaves clocks running that the lifecycle
stopped."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from config.catalogue import load_catalogue
from models.clock import ManualClock
from models.directory import Catalogue
from models.lifecycle import TicketState, apply
from models.supervision import Alert, Supervisor, TicketFacts
from models.workcalendar import TZ
from streams import supervision, ticket_table

T0 = datetime(2025, 3, 3, 10, 0, tzinfo=TZ)  # a Monday


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue()


class Stage:
    """The stage's surroundings: the ticket table in a dict, a broker that can be away, a manual clock."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cat: Catalogue, now: datetime) -> None:
        self.cat, self.clock = cat, ManualClock(now)
        self.table: dict[str, dict[str, Any]] = {}
        self.sent: list[Alert] = []
        self.broker_away = False

        async def cpu(fn: Any, *args: Any) -> Any:
            return fn(*args)

        async def nothing(*_a: Any, **_k: Any) -> None:
            return None

        async def emit(alerts: list[Alert]) -> int:
            if alerts and (self.broker_away or self.away_for):
                self.away_for = max(0, self.away_for - 1)
                raise ConnectionError("broker not reachable")
            self.sent.extend(alerts)
            return len(alerts)

        async def publish_links(facts: list[Any]) -> None:
            if facts and self.broker_away:
                raise ConnectionError("broker not reachable")

        def write(tid: str, partition: int, *, state: Any = ticket_table.KEEP, facts: Any = ticket_table.KEEP) -> None:
            value = self.table.setdefault(tid, {"state": None, "facts": None})
            if state is not ticket_table.KEEP:
                value["state"] = state
            if facts is not ticket_table.KEEP:
                value["facts"] = facts

        settings = SimpleNamespace(review_confidence=0.8, default_jurisdiction="BH")
        monkeypatch.setattr(supervision, "services",
                            lambda: SimpleNamespace(clock=self.clock, cpu=cpu, catalogue=cat, settings=settings))
        monkeypatch.setattr(supervision, "emit", emit)
        monkeypatch.setattr(supervision, "publish_links", publish_links)
        monkeypatch.setattr(supervision, "changelog_written", nothing)
        monkeypatch.setattr(supervision, "_maybe_prune", nothing)
        monkeypatch.setattr(supervision, "owned_partitions", lambda _topic: {0})
        monkeypatch.setattr(supervision, "_sup", Supervisor(cat))
        monkeypatch.setattr(ticket_table, "facts", lambda tid: (self.table.get(tid) or {}).get("facts"))
        monkeypatch.setattr(ticket_table, "state", lambda tid: (self.table.get(tid) or {}).get("state"))
        monkeypatch.setattr(ticket_table, "partition", lambda _tid: 0)
        monkeypatch.setattr(ticket_table, "write", write)
        monkeypatch.setattr(ticket_table, "forget_except", lambda _partitions: 0)
        monkeypatch.setattr(ticket_table, "all_facts",
                            lambda: (v["facts"] for v in self.table.values() if v["facts"]))
        monkeypatch.setattr(ticket_table, "lock", asyncio.Lock())
        monkeypatch.setattr(supervision, "SEND_RETRY_DELAYS", (0.0,))
        self.away_for = 0  # sends that fail before the broker is back (besides broker_away)

    def receive(self, facts: TicketFacts) -> None:
        self.table[facts.ticket_id] = {"state": None, "facts": {**facts.to_dict(), "_events": []}}

    async def events(self, *events: SimpleNamespace) -> None:
        """What the lifecycle stage does with a batch: apply, observe, store states and facts (KEEP if none)."""
        observed = []
        for ev in events:
            raw = ticket_table.state(ev.ticket_id)
            before = TicketState.from_dict(raw) if raw else None
            observed.append((before, ev, apply(before, ev).state))  # type: ignore[union-attr]
        facts = await supervision.observe_many(observed)
        for _before, ev, after in observed:
            ticket_table.write(ev.ticket_id, 0, state=after.to_dict(), facts=facts.get(ev.ticket_id, ticket_table.KEEP))

    async def run_until(self, end: datetime, step: timedelta = timedelta(minutes=10)) -> list[str]:
        """Tick until ``end``; the times of the ticks that failed."""
        failed = []
        while self.clock.now() < end:
            self.clock.set(min(self.clock.now() + step, end))
            try:
                await supervision.tick_once()
            except ConnectionError:
                failed.append(self.clock.now().strftime("%H:%M"))
        return failed


def event(n: int, tid: str, kind: str, role: str, agency: str | None, at: datetime, **extra: Any) -> SimpleNamespace:
    return SimpleNamespace(event_id=f"e{n}", ticket_id=tid, type=kind, actor="t", role=role, agency=agency,
                           occurred_at=at, **extra)


def test_alerts_of_a_tick_that_failed_to_send_go_out_on_the_next_tick(monkeypatch, cat) -> None:
    # Given a ticket dispatched Monday 10:00 (sign-for by Tuesday 10:00: 50% at 22:00, 75% at 04:00)
    stage = Stage(monkeypatch, cat, T0 + timedelta(hours=11, minutes=50))
    facts = TicketFacts("T1", T0, request_type="投诉", status="dispatched", agency="BH-SCJG", attempt=1,
                        dispatched_at=T0)
    stage.receive(facts)
    supervision.supervisor().track(facts)
    # When the broker is away for the 22:00 tick only
    stage.broker_away = True
    failed = asyncio.run(stage.run_until(T0 + timedelta(hours=12)))
    stage.broker_away = False
    asyncio.run(stage.run_until(T0 + timedelta(hours=12, minutes=10)))
    # Then the 50% warning goes out on the next tick, not with the 75% one six hours later
    assert failed == ["22:00"]
    assert [a.alert_key for a in stage.sent] == ["T1:sign_deadline:warn_50@1"]


def test_a_failed_supervision_batch_leaves_no_clock_running_that_the_lifecycle_stopped(monkeypatch, cat) -> None:
    stage = Stage(monkeypatch, cat, T0)
    stage.receive(TicketFacts("T1", T0, request_type="咨询"))
    stage.receive(TicketFacts("T2", T0, request_type="咨询", caller_phone="13800000000", address="滨海新区某某路100号"))
    asyncio.run(stage.events(event(1, "T1", "routed", "system", "BH-SCJG", T0, attempt=1, decision="auto")))
    asyncio.run(stage.events(event(2, "T1", "signed", "agency", "BH-SCJG", T0 + timedelta(hours=1))))
    # Given T1 resolved in a batch whose supervision failed (T2's link facts met a broker away for a moment)
    stage.broker_away = True
    asyncio.run(stage.events(event(3, "T1", "resolved", "agency", "BH-SCJG", T0 + timedelta(days=1), reply="已办"),
                             event(4, "T2", "routed", "system", "BH-SCJG", T0 + timedelta(days=1), attempt=1,
                                   decision="auto")))
    stage.broker_away = False
    assert (stage.table["T1"]["state"]["status"], stage.table["T1"]["facts"]["status"]) == ("resolved", "signed")
    # When the worker restarts (the index is rebuilt from the table) and time runs on for ten days
    asyncio.run(supervision._recovered())
    asyncio.run(stage.run_until(T0 + timedelta(days=10), step=timedelta(hours=1)))
    # Then the resolved ticket raises no handling alerts
    assert [a.alert_key for a in stage.sent if a.ticket_id == "T1"] == []
    # while T2, dispatched in that same failed batch and never signed, is supervised by its stored state (its
    # stored facts still say "received"): its sign-for clock runs, so the silence about T1 is no empty index's
    keys = [a.alert_key for a in stage.sent if a.ticket_id == "T2"]
    assert keys[:4] == [f"T2:sign_deadline:{level}@1" for level in ("warn_50", "warn_75", "warn_90", "overdue")]


def test_a_complex_case_from_intake_is_supervised_with_the_complex_limits(cat) -> None:
    from models.supervision.deadlines import deadlines

    # Given a ticket the hotline marked a complex case (复杂件) at intake, as its ledger row holds it
    row = SimpleNamespace(request_type="投诉", urgency=None, matter=None, address=None, caller_phone=None,
                          received_at=T0, complex_case=True)
    routed = event(1, "T1", "routed", "system", "BH-SCJG", T0, attempt=1, decision="auto")
    # When supervision first sees it, dispatched on Monday 10:00
    facts = supervision._first_facts(None, routed, row).with_state(apply(None, routed).state)  # type: ignore[union-attr]
    # Then it keeps the mark, and the agency has 2 working days to return it
    assert facts.complex_case
    assert {d.stage: d.due for d in deadlines(facts, cat)}["return"] == datetime(2025, 3, 5, 10, 0, tzinfo=TZ)
    # and, once signed for, 15 working days to handle it (a plain 投诉 has 15 too, a 求助 3: see sla.yaml)
    signed = event(2, "T1", "signed", "agency", "BH-SCJG", T0 + timedelta(hours=1))
    help_wanted = facts.with_state(apply(apply(None, routed).state, signed).state, request_type="求助")  # type: ignore[union-attr, arg-type]
    assert {d.stage: d.due for d in deadlines(help_wanted, cat)}["handle"] == datetime(2025, 3, 24, 11, 0, tzinfo=TZ)


def test_a_return_whose_alert_met_the_broker_away_for_a_moment_is_alerted_and_remembered(monkeypatch, cat) -> None:
    stage = Stage(monkeypatch, cat, T0)
    stage.receive(TicketFacts("T1", T0, request_type="投诉"))
    asyncio.run(stage.events(event(1, "T1", "routed", "system", "BH-SCJG", T0, attempt=1, decision="auto")))
    # Given a broker that refuses the next send only
    stage.away_for = 1
    # When the agency returns the ticket
    asyncio.run(stage.events(event(2, "T1", "returned", "agency", "BH-SCJG", T0 + timedelta(hours=1),
                                   reason_code="NOT_OUR_DUTY", basis="《某法》第十条")))
    # Then the return's alert goes out on the retry, and the facts know the return (ping-pong counts on them)
    assert [a.rule for a in stage.sent if a.ticket_id == "T1"] == ["returned"]
    assert stage.table["T1"]["facts"]["returned_by"] == ["BH-SCJG"]


def _sign_warning_due(monkeypatch: Any, cat: Any) -> Stage:
    """A ticket dispatched at T0 whose 50% sign-for warning falls due within the next tick; the first tick
    (always logged) is over."""
    stage = Stage(monkeypatch, cat, T0 + timedelta(hours=11, minutes=50))
    facts = TicketFacts("T1", T0, request_type="投诉", status="dispatched", agency="BH-SCJG", attempt=1,
                        dispatched_at=T0)
    stage.receive(facts)
    supervision.supervisor().track(facts)
    monkeypatch.setattr(supervision, "_ticked", True)
    return stage


def test_a_tick_that_only_raises_new_alerts_adds_no_info_line(monkeypatch, cat, caplog) -> None:
    # Given a ticket whose 50% sign-for warning is due at 22:00, after the worker's first tick was logged
    stage = _sign_warning_due(monkeypatch, cat)
    # When the tick sends it (emit logs "raised 1 alert(s): ..." itself)
    with caplog.at_level(logging.INFO, logger="streams.supervision"):
        asyncio.run(stage.run_until(T0 + timedelta(hours=12)))
    # Then the tick repeats nothing at INFO: in a steady state that was every other line of the worker's log
    assert [a.alert_key for a in stage.sent] == ["T1:sign_deadline:warn_50@1"]
    assert "supervision tick" not in caplog.text


def test_a_tick_whose_due_alerts_were_sent_before_says_so(monkeypatch, cat, caplog) -> None:
    # Given the 50% warning due, already sent before a restart (emit finds nothing new)
    stage = _sign_warning_due(monkeypatch, cat)

    async def known(alerts: list[Alert]) -> int:
        return 0

    monkeypatch.setattr(supervision, "emit", known)
    with caplog.at_level(logging.INFO, logger="streams.supervision"):
        asyncio.run(stage.run_until(T0 + timedelta(hours=12)))
    assert "1 due alert(s), 0 new" in caplog.text
