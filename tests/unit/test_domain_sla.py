"""Time-limit rules: lookup by stage/request type/urgency and the warning schedule."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from config.catalogue import load_calendar, load_sla
from models.sla import SlaRules, TimeLimit
from models.workcalendar import TZ


@pytest.fixture(scope="module")
def rules() -> SlaRules:
    return load_sla()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


@pytest.mark.parametrize(
    ("stage", "request_type", "urgency", "complex_case", "clock", "amount"),
    [
        ("sign", "求助", "紧急", False, "hours", 0.25),
        ("sign", "投诉", "水电气热", False, "hours", 0.5),
        ("sign", "投诉", "一般", False, "working_days", 1),
        ("return", "投诉", "一般", False, "working_days", 1),
        ("return", "投诉", "一般", True, "working_days", 2),
        ("handle", "求助", "紧急", True, "hours", 2),
        ("handle", "投诉", "水电气热", False, "hours", 24),
        ("handle", "咨询", "一般", False, "working_days", 3),
        ("handle", "求助", "一般", False, "working_days", 3),
        ("handle", "投诉", "一般", False, "working_days", 15),
        ("handle", "建议", "一般", False, "working_days", 15),
        ("handle", "咨询", "一般", True, "working_days", 15),
        ("handle", None, "一般", False, "working_days", 7),
    ],
)
def test_lookup(rules, stage, request_type, urgency, complex_case, clock, amount) -> None:
    limit = rules.limit(stage, request_type, urgency, complex_case)
    assert (limit.clock, limit.amount) == (clock, amount)


def test_policy_values(rules: SlaRules) -> None:
    assert rules.warning_fractions == (0.5, 0.75, 0.9)
    assert rules.max_dispatch_attempts == 3
    assert rules.censure_after_working_days == 5
    assert rules.gaps() == []


def test_first_matching_rule_wins() -> None:
    rules = SlaRules(
        limits=(
            TimeLimit("handle", "hours", 2, urgency="紧急"),
            TimeLimit("handle", "working_days", 15),
        )
    )
    assert rules.limit("handle", "投诉", "紧急").amount == 2
    assert rules.limit("handle", "投诉", "一般").amount == 15
    with pytest.raises(LookupError):
        rules.limit("sign", "投诉", "一般")
    assert "sign/咨询/紧急/普通" in rules.gaps()


def test_schedule_on_hours_clock(rules: SlaRules) -> None:
    cal = load_calendar()
    s = rules.schedule("sign", at("2025-10-01T08:00"), cal, "求助", "紧急")
    assert s.due == at("2025-10-01T08:15")
    assert [w for _, w in s.warnings] == [
        at("2025-10-01T08:07:30"),
        at("2025-10-01T08:11:15"),
        at("2025-10-01T08:13:30"),
    ]
    assert s.fraction_elapsed(at("2025-10-01T08:15"), cal) == pytest.approx(1.0)


def test_schedule_on_working_days_skips_holidays(rules: SlaRules) -> None:
    cal = load_calendar()
    # 咨询 3 working days from Fri 2025-09-26 10:00: 9/28 (调休), 9/29, 9/30 -> due 9/30 10:00
    s = rules.schedule("handle", at("2025-09-26T10:00"), cal, "咨询", "一般")
    assert s.due == at("2025-09-30T10:00")
    total = cal.working_time_between(s.start, s.due)
    assert total == timedelta(hours=14 + 24 + 24 + 10)  # 9/26 rest, 9/28, 9/29, 9/30 morning
    half = dict(s.warnings)[0.5]
    assert cal.working_time_between(s.start, half) == total / 2
    assert s.fraction_elapsed(half, cal) == pytest.approx(0.5)
    # 通报 5 working days after the deadline: 10/9, 10/10, 10/11 (调休), 10/13, 10/14
    assert s.censure_at == at("2025-10-14T10:00")
    assert rules.reminder_due(s.due, 0, cal) == at("2025-10-09T10:00")
    assert rules.reminder_due(s.due, 2, cal) == at("2025-10-11T10:00")
