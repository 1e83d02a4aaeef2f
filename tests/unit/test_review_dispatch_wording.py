"""User-facing counts say what a hotline clerk or supervisor means (review of the wording, 2026-12-05): 第N次派发 is
the ticket's Nth dispatch to an agency, not its routing attempt, which also counts routings to the dispatchers'
manual queue (a ticket the router was unsure of, then dispatched by a dispatcher, is at attempt 2 on its first
dispatch); 第N次分拨 numbers all routings. Machine fields (the attempt in alert keys and details, in events and
routing ids) stay attempts. The lifecycle state and the supervision facts count dispatches; values stored before
they did are read with the dispatches they imply."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from config.catalogue import build_catalogue, load_catalogue
from models.directory import Catalogue
from models.lifecycle import Outcome, Refusal, Status, TicketState, apply
from models.supervision import Alert, Supervisor, TicketFacts
from models.supervision.facts import same_lifecycle
from models.workcalendar import TZ
from streams.cli.agency import queue_table
from tests.unit import domain_fixtures as fx
from tests.unit.test_supervision_stage import Stage, event

T0 = datetime(2025, 9, 1, 9, 0, tzinfo=TZ)  # a Monday
A, B = "BH-CGW", "BH-SCJG"


@pytest.fixture(scope="module")
def cat(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    built, _ = build_catalogue(fx.build(tmp_path_factory.mktemp("wording")))
    assert built is not None
    return built


class Ticket:
    """One ticket through the real state machine and the supervisor, as the stages drive them."""

    def __init__(self, cat: Catalogue) -> None:
        self.sup = Supervisor(cat)
        self.state: TicketState | None = None
        self.facts = TicketFacts("T1", T0, request_type="投诉", matter="TST-001", address="塘沽新港街道某号")
        self.n = 0

    def __call__(self, kind: str, role: str, agency: str | None = None, **extra: Any) -> list[Alert]:
        self.n += 1
        ev = SimpleNamespace(event_id=f"e{self.n}", ticket_id="T1", type=kind, actor="x", role=role, agency=agency,
                             occurred_at=T0 + timedelta(minutes=self.n), **extra)
        outcome = apply(self.state, ev, max_attempts=3)
        assert isinstance(outcome, Outcome), outcome
        self.state = outcome.state
        self.facts, alerts = self.sup.on_event(self.facts, ev, outcome.state)
        return alerts

    def manual(self, attempt: int) -> list[Alert]:
        return self("routed", "system", None, attempt=attempt, decision="manual", reason="置信度低")

    def dispatch(self, agency: str, attempt: int, by: str = "router") -> list[Alert]:
        return self("routed", "system", agency, attempt=attempt, decision="auto", decided_by=by)

    def returned(self, agency: str) -> list[Alert]:
        return self("returned", "agency", agency, reason_code="NOT_OUR_DUTY", basis="《某条例》第三条")


def one(alerts: list[Alert], rule: str) -> Alert:
    (found,) = [a for a in alerts if a.rule == rule]
    return found


def test_a_return_of_the_first_dispatch_after_the_manual_queue_says_first_dispatch(cat: Catalogue) -> None:
    # Given a ticket the router was unsure of (manual queue, attempt 1), dispatched by a dispatcher (attempt 2)
    tk = Ticket(cat)
    tk.manual(1)
    tk.dispatch(A, 2, by="disp-1")
    assert (tk.state.attempt, tk.state.dispatches, tk.facts.dispatches) == (2, 1, 1)  # type: ignore[union-attr]
    # When the agency returns it
    alert = one(tk.returned(A), "returned")
    # Then the supervisor reads its first dispatch; the key and details keep the attempt
    assert "退单（第1次派发）" in alert.message_zh, alert.message_zh
    assert alert.alert_key == "T1:returned:a2" and alert.details["attempt"] == 2


def test_a_dispatch_back_to_a_returner_counts_dispatches(cat: Catalogue) -> None:
    # Given a ticket dispatched to A (attempt 1), returned, re-routed to the manual queue (attempt 2)
    tk = Ticket(cat)
    tk.dispatch(A, 1)
    assert "退单（第1次派发）" in one(tk.returned(A), "returned").message_zh
    tk.manual(2)
    # When a dispatcher sends it back to A (attempt 3): its second dispatch
    alert = one(tk.dispatch(A, 3, by="disp-1"), "ping_pong")
    assert "此前已退单的" in alert.message_zh and "（第2次派发）" in alert.message_zh, alert.message_zh
    assert alert.alert_key == f"T1:ping_pong:back_to_{A}@3" and alert.details["attempt"] == 3
    # And A's second return is of the second dispatch, its designation counting returned dispatches as before
    alerts = tk.returned(A)
    assert "退单（第2次派发）" in one(alerts, "returned").message_zh
    assert "已被退单2次" in one(alerts, "ping_pong").message_zh


def test_without_the_manual_queue_dispatches_and_attempts_agree(cat: Catalogue) -> None:
    tk = Ticket(cat)
    tk.dispatch(A, 1)
    tk.returned(A)
    tk.dispatch(B, 2)
    assert "退单（第2次派发）" in one(tk.returned(B), "returned").message_zh
    assert tk.state.dispatches == 2 and tk.state.attempt == 2  # type: ignore[union-attr]


def test_a_late_or_duplicate_routing_counts_no_dispatch() -> None:
    # an older decision arriving late, and a redelivered one, change nothing (the state machine's duplicates)
    routed = SimpleNamespace(event_id="r2", ticket_id="T1", type="routed", actor="router", role="system", agency=A,
                             occurred_at=T0, attempt=2, decision="auto")
    state = apply(None, routed)
    assert isinstance(state, Outcome) and state.state.dispatches == 1
    for again in (routed, SimpleNamespace(**{**vars(routed), "event_id": "r1", "attempt": 1})):
        outcome = apply(state.state, again)
        assert isinstance(outcome, Outcome) and outcome.duplicate and outcome.state.dispatches == 1


def test_the_refusal_of_a_reassignment_names_the_pending_dispatch_or_routing() -> None:
    reassign = SimpleNamespace(event_id="x", ticket_id="T1", type="reassigned", actor="d", role="dispatcher",
                               agency=None, occurred_at=T0, target_agency=B)
    # on the manual queue since its first routing, a dispatcher's dispatch to A pending: its first dispatch
    pending = TicketState("T1", status=Status.MANUAL, attempt=1, pending="dispatch", pending_agency=A)
    refusal = apply(pending, reassign)
    assert isinstance(refusal, Refusal) and refusal.reason.startswith(f"工单的第 1 次派发（派往 {A}）尚未完成")
    assert "dispatch attempt 2 of T1" in refusal.reason  # the English for logs keeps the attempt (routing id T1#2)
    # returned three times: its designation is the fifth routing (one of them was to the manual queue)
    designating = TicketState("T1", status=Status.RETURNED, attempt=4, returns=3, dispatches=3, returned_by=(A, B),
                              pending="designate")
    refusal = apply(designating, reassign)
    assert isinstance(refusal, Refusal) and refusal.reason.startswith("工单的第 5 次分拨（转人工派单、待指定承办）尚未完成")


# --- values stored before dispatches were counted -------------------------------------------------------------
def _stored_before(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "dispatches"}


@pytest.mark.parametrize(("returns", "agency", "expected"), [(0, None, 0), (0, A, 1), (2, None, 2), (2, B, 3)])
def test_an_old_state_and_old_facts_read_with_the_dispatches_they_imply(returns: int, agency: str | None,
                                                                         expected: int) -> None:
    state = TicketState("T1", status=Status.SIGNED if agency else Status.RETURNED, agency=agency, attempt=returns + 1,
                        returns=returns, returned_by=(A, B)[:returns])
    old_state = _stored_before(state.to_dict())
    assert TicketState.from_dict(old_state).dispatches == expected
    old_facts = _stored_before(TicketFacts.from_state(state, received_at=T0).to_dict())
    assert TicketFacts.from_dict(old_facts).dispatches == expected
    # both stored by an earlier version: still the same lifecycle (no needless rewrite of the facts)
    assert same_lifecycle(old_facts, old_state)
    # and the new values round-trip
    assert TicketFacts.from_dict({**old_facts, "dispatches": 7}).dispatches == 7
    assert TicketState.from_dict({**old_state, "dispatches": 7}).to_dict()["dispatches"] == 7


def test_facts_stored_before_returns_were_counted_imply_their_dispatches() -> None:
    old = _stored_before(TicketFacts("T1", T0, status="dispatched", agency=B, attempt=3, returned_by=(A,)).to_dict())
    del old["returns"]
    facts = TicketFacts.from_dict(old)
    assert (facts.returns, facts.dispatches) == (1, 2)


def test_the_stage_words_a_return_on_a_ticket_stored_by_an_earlier_version(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a ticket of the ticket table written before dispatches were counted: routed to the manual queue, then
    # dispatched by a dispatcher to BH-SCJG (attempt 2), signed
    cat = load_catalogue()
    stage = Stage(monkeypatch, cat, T0 + timedelta(hours=1))
    state = TicketState("T1", status=Status.SIGNED, agency=B, attempt=2, dispatched_at=T0, signed_at=T0,
                        handling_started_at=T0)
    facts = TicketFacts.from_state(state, received_at=T0 - timedelta(hours=1), request_type="投诉")
    stage.table["T1"] = {"state": _stored_before(state.to_dict()),
                         "facts": {**_stored_before(facts.to_dict()), "_events": []}}
    # When BH-SCJG returns it
    asyncio.run(stage.events(event(1, "T1", "returned", "agency", B, T0 + timedelta(minutes=30),
                                   reason_code="NOT_OUR_DUTY", basis="《某条例》第三条")))
    # Then the alert speaks of its first dispatch, and the facts now store the count
    (alert,) = [a for a in stage.sent if a.rule == "returned"]
    assert "退单（第1次派发）" in alert.message_zh and alert.details["attempt"] == 2
    assert stage.table["T1"]["facts"]["dispatches"] == 1 == stage.table["T1"]["state"]["dispatches"]


def test_the_queue_view_numbers_routings_as_the_console_does() -> None:
    from rich.console import Console

    msg = {"ticket_id": "T-1", "attempt": 2, "received_at": "2025-03-01T01:00:00+00:00", "matter_name": "露天烧烤",
           "confidence": 0.8, "text": "烧烤油烟", "basis": "《大气污染防治法》"}
    console = Console(width=200, record=True)
    console.print(queue_table([msg], manual=False, title="BH-SCJG"))
    text = console.export_text()
    assert "T-1 第2次分拨" in text and "#2" not in text


def test_sla_limits_says_what_designation_counts() -> None:
    # designation follows max_dispatch_attempts returned dispatches (models.lifecycle), not that many routings
    from typer.testing import CliRunner

    from streams.cli import app

    r = CliRunner().invoke(app, ["sla", "limits"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "designates the handler after 3 returned dispatches" in r.stdout and "dispatch attempts" not in r.stdout
