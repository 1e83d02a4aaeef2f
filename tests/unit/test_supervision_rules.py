"""Alert rules, each firing exactly when it should: time checkpoints, returns (late or not), ping-pong,
designation, 错派 against the responsibility list in force, and the review hint at signature."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest

from config.catalogue import build_catalogue
from models.directory import Catalogue
from models.supervision import (
    CRITICAL,
    INFO,
    WARNING,
    TicketFacts,
    deadline_alert,
    deadlines,
    dispatch_alerts,
    reminder,
    return_alerts,
    sign_alerts,
)
from models.workcalendar import TZ
from tests.unit import domain_fixtures as fx

# TST-001 (占道经营) in 滨海新区: delegated to the 街镇 until 2025-08-24, taken back by BH-CGW from 08-25.
# TST-002 (餐饮油烟): BH-STHJ leads, BH-CGW co-owns.
XG_ADDRESS = "塘沽新港街道某号"


@pytest.fixture(scope="module")
def cat(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    built, problems = build_catalogue(fx.build(tmp_path_factory.mktemp("supervision")))
    assert built is not None and not [p for p in problems if p.severity == "error"]
    return built


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def ticket(received: str = "2025-09-01T09:00", **kw: Any) -> TicketFacts:
    base = TicketFacts("T1", at(received), request_type="投诉", matter="TST-001", address=XG_ADDRESS,
                       status="dispatched", agency="BH-CGW", attempt=1, dispatched_at=at(received))
    return replace(base, **kw)


def event(kind: str, when: str, agency: str | None = None, **extra: Any) -> SimpleNamespace:
    return SimpleNamespace(event_id=f"{kind}-{when}", ticket_id="T1", type=kind, actor="x", role="agency",
                           agency=agency, occurred_at=at(when), **extra)


def returned(when: str, agency: str = "BH-CGW", code: str = "NOT_OUR_DUTY") -> SimpleNamespace:
    return event("returned", when, agency, reason_code=code, basis="《某条例》第三条")


def routed(when: str, agency: str | None, attempt: int = 2, matter: str | None = "TST-001",
           decision: str = "auto", **extra: Any) -> SimpleNamespace:
    return event("routed", when, agency, attempt=attempt, matter=matter, decision=decision,
                 decided_by=extra.pop("decided_by", "router"), **extra)


# --- time -----------------------------------------------------------------------------------------
def test_deadline_alerts_name_level_severity_and_cycle(cat: Catalogue) -> None:
    facts = ticket("2025-09-26T10:00", status="signed", request_type="咨询", signed_at=at("2025-09-26T11:00"),
                   handling_started_at=at("2025-09-26T11:00"), agency="BH-ZJW")
    (handle,) = [d for d in deadlines(facts, cat) if d.stage == "handle"]
    warn50, warn75, _w90, overdue, censure = handle.checkpoints
    a = deadline_alert(facts, handle, warn50, cat)
    assert (a.alert_key, a.rule, a.level, a.severity) == ("T1:handle_deadline:warn_50@1.0", "handle_deadline",
                                                          "warn_50", INFO)
    assert a.deadline == at("2025-09-30T11:00") and a.at == warn50.at and a.agency == "BH-ZJW"
    assert a.message_zh == ("工单T1的办理时限（3个工作日）已用去50%，天津市滨海新区住房和建设委员会须于9月30日11:00前办结。")
    assert deadline_alert(facts, handle, warn75, cat).severity == WARNING
    o = deadline_alert(facts, handle, overdue, cat)
    assert o.severity == CRITICAL and "已超过办理时限" in o.message_zh
    r = deadline_alert(facts, handle, reminder(handle, 2, cat), cat)
    assert r.level == "reminder_2" and "第2次催办" in r.message_zh and "逾期2个工作日" in r.message_zh
    c = deadline_alert(facts, handle, censure, cat)
    assert c.level == "censure" and "通报" in c.message_zh
    assert a.record_fields()["message"] == a.message_zh and a.record_fields()["raised_at"] == a.at


# --- returns --------------------------------------------------------------------------------------
def test_a_return_within_the_window_is_reported_with_its_reason(cat: Catalogue) -> None:
    alerts = return_alerts(ticket(), returned("2025-09-01T15:00"), cat)
    assert [(a.rule, a.level, a.severity) for a in alerts] == [("returned", "in_time", INFO)]
    (a,) = alerts
    assert a.alert_key == "T1:returned:a1" and a.details["late"] is False
    assert a.details["reason"] == "不属于本单位法定职责" and "理由：不属于本单位法定职责" in a.message_zh


def test_a_return_after_the_window_is_flagged_late(cat: Catalogue) -> None:
    # Given a ticket dispatched Monday 09:00 (window: Tuesday 09:00); When returned Tuesday 09:01
    (a,) = return_alerts(ticket(), returned("2025-09-02T09:01"), cat)
    assert (a.level, a.severity, a.details["late"]) == ("late", WARNING, True)
    assert "已超过退单时限" in a.message_zh and a.deadline == at("2025-09-02T09:00")
    # complex cases have two working days
    (b,) = return_alerts(ticket(complex_case=True), returned("2025-09-02T09:01"), cat)
    assert b.level == "in_time"


def test_a_second_return_is_ping_pong(cat: Catalogue) -> None:
    before = ticket(attempt=2, agency="BH-JD-XG", returns=1, returned_by=("BH-CGW",))
    alerts = return_alerts(before, returned("2025-09-01T15:00", agency="BH-JD-XG"), cat)
    assert [a.rule for a in alerts] == ["returned", "ping_pong"]
    pp = alerts[1]
    assert pp.alert_key == "T1:ping_pong:returns@2" and pp.details["returned_by"] == ["BH-CGW", "BH-JD-XG"]
    assert "来回推诿" in pp.message_zh


def test_a_return_on_the_last_attempt_escalates_for_designation(cat: Catalogue) -> None:
    # two dispatches returned already: the third return is the last one
    before = ticket(attempt=3, agency="BH-SCJG", returns=2, returned_by=("BH-CGW", "BH-JD-XG"))
    alerts = return_alerts(before, returned("2025-09-01T15:00", agency="BH-SCJG"), cat)
    assert [a.rule for a in alerts] == ["returned", "ping_pong", "designation"]
    d = alerts[-1]
    assert (d.alert_key, d.severity) == ("T1:designation:required@3", CRITICAL)
    assert "需热线指定承办单位" in d.message_zh and "经3次派发均被退回" in d.message_zh and d.details["attempts"] == 3


def test_routings_to_the_manual_queue_do_not_count_towards_designation(cat: Catalogue) -> None:
    # attempt 3 = manual queue, a dispatcher's assignment, a re-routing: only one dispatch was returned before
    before = ticket(attempt=3, agency="BH-SCJG", returns=1, returned_by=("BH-CGW",))
    alerts = return_alerts(before, returned("2025-09-01T15:00", agency="BH-SCJG"), cat)
    assert [a.rule for a in alerts] == ["returned", "ping_pong"]


# --- dispatch ---------------------------------------------------------------------------------------
def test_dispatch_to_the_owner_in_force_is_fine_and_the_former_owner_is_misdispatch(cat: Catalogue) -> None:
    # Before the 2025-08-25 take-back, 占道经营 at 新港街道 belongs to the street office
    early = ticket("2025-08-20T09:00", attempt=1)
    assert dispatch_alerts(early, routed("2025-08-20T09:05", "BH-JD-XG"), cat) == []
    (wrong,) = dispatch_alerts(early, routed("2025-08-20T09:05", "BH-CGW"), cat)
    assert wrong.details["owner"] == "BH-JD-XG"
    # After it, the same dispatch to the street contradicts the list in force
    late = ticket("2025-09-01T09:00", attempt=1)
    assert dispatch_alerts(late, routed("2025-09-01T09:05", "BH-CGW"), cat) == []
    (a,) = dispatch_alerts(late, routed("2025-09-01T09:05", "BH-JD-XG"), cat)
    assert (a.rule, a.alert_key, a.severity) == ("misdispatch", "T1:misdispatch:a2", WARNING)
    assert a.details["owner"] == "BH-CGW" and "权责清单" in a.message_zh and "城市管理委员会" in a.message_zh


def test_co_owners_may_receive_the_ticket(cat: Catalogue) -> None:
    facts = ticket(matter="TST-002")
    assert dispatch_alerts(facts, routed("2025-09-01T09:05", "BH-STHJ", matter="TST-002"), cat) == []
    assert dispatch_alerts(facts, routed("2025-09-01T09:05", "BH-CGW", matter="TST-002"), cat) == []
    (a,) = dispatch_alerts(facts, routed("2025-09-01T09:05", "BH-SCJG", matter="TST-002"), cat)
    assert a.details["co_owners"] == ["BH-CGW"]


def test_no_misdispatch_judgement_without_matter_for_designations_or_manual_queue(cat: Catalogue) -> None:
    facts = ticket(matter=None)
    assert dispatch_alerts(facts, routed("2025-09-01T09:05", "BH-SCJG", matter=None), cat) == []
    assert dispatch_alerts(ticket(designation=True), routed("2025-09-01T09:05", "BH-SCJG"), cat) == []
    assert dispatch_alerts(ticket(), routed("2025-09-01T09:05", None, decision="manual"), cat) == []
    assert dispatch_alerts(ticket(), routed("2025-09-01T09:05", "BH-SCJG", matter="NO-SUCH"), cat) == []


def test_sending_a_ticket_back_to_an_agency_that_returned_it_is_ping_pong(cat: Catalogue) -> None:
    before = ticket(status="manual", agency=None, attempt=2, returned_by=("BH-CGW",))
    alerts = dispatch_alerts(before, routed("2025-09-01T10:00", "BH-CGW", attempt=3, decided_by="disp1"), cat)
    assert [(a.rule, a.alert_key) for a in alerts] == [("ping_pong", "T1:ping_pong:back_to_BH-CGW@3")]


# --- review hint ------------------------------------------------------------------------------------
def test_signing_what_the_classifier_confidently_gave_to_another_agency_asks_for_review(cat: Catalogue) -> None:
    facts = ticket(agency="BH-JD-XG", predicted_agency="BH-CGW", predicted_confidence=0.93)
    (hint,) = sign_alerts(facts, event("signed", "2025-09-01T10:00", "BH-JD-XG"), cat, threshold=0.8)
    assert (hint.rule, hint.severity, hint.alert_key) == ("review_hint", INFO, "T1:review_hint:a1")
    assert "93%" in hint.message_zh and "建议复核" in hint.message_zh


@pytest.mark.parametrize(("signer", "confidence"), [("BH-CGW", 0.93), ("BH-JD-XG", 0.79), ("BH-JD-XG", None)])
def test_no_review_hint_for_the_predicted_agency_or_an_unsure_classifier(cat: Catalogue, signer: str,
                                                                          confidence: float | None) -> None:
    facts = ticket(agency=signer, predicted_agency="BH-CGW", predicted_confidence=confidence)
    assert sign_alerts(facts, event("signed", "2025-09-01T10:00", signer), cat, threshold=0.8) == []


def test_ping_pong_counts_returns_not_returning_agencies(cat: Catalogue) -> None:
    # returned by BH-CGW, BH-JD-XG, BH-CGW again: this is the fourth return
    before = ticket(attempt=4, agency="BH-JD-XG", returns=3, returned_by=("BH-CGW", "BH-JD-XG"))
    alerts = return_alerts(before, returned("2025-09-01T15:00", agency="BH-JD-XG"), cat)
    (pp,) = [a for a in alerts if a.rule == "ping_pong"]
    assert "已被退单4次" in pp.message_zh


def test_a_designated_handler_returning_the_ticket_is_a_new_designation_alert(cat: Catalogue) -> None:
    # the lifecycle designates again on every return from the third on: each one is a finding of its own
    first = return_alerts(ticket(attempt=3, agency="BH-SCJG", returns=2, returned_by=("BH-CGW", "BH-JD-XG")),
                          returned("2025-09-01T15:00", agency="BH-SCJG"), cat)
    again = return_alerts(ticket(attempt=5, agency="BH-STHJ", returns=3, designation=True,
                                 returned_by=("BH-CGW", "BH-JD-XG", "BH-SCJG")),
                          returned("2025-09-02T15:00", agency="BH-STHJ"), cat)
    (d1,) = [a for a in first if a.rule == "designation"]
    (d2,) = [a for a in again if a.rule == "designation"]
    assert d1.alert_key != d2.alert_key and d2.level == "required" and "经4次派发均被退回" in d2.message_zh


@pytest.mark.parametrize("kw", [{"returned_by": ("BH-CGW",), "returns": 1}, {"designation": True}])
def test_no_review_hint_against_an_agency_that_returned_it_or_a_designation(cat: Catalogue,
                                                                            kw: dict[str, Any]) -> None:
    facts = ticket(agency="BH-JD-XG", attempt=3, predicted_agency="BH-CGW", predicted_confidence=0.93, **kw)
    assert sign_alerts(facts, event("signed", "2025-09-01T10:00", "BH-JD-XG"), cat, threshold=0.8) == []
