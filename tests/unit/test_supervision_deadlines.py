"""Deadlines per stage: working days across Spring Festival, National Day and 调休, 24x7 urgent classes,
extensions, reopens, stopped clocks, and the checkpoint sequence (warnings, overdue, 催办, 通报)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from config.catalogue import load_catalogue
from models.directory import Catalogue
from models.supervision import (
    TicketFacts,
    checkpoints_after,
    checkpoints_due,
    deadlines,
    next_checkpoint,
    next_reminder,
    reminder,
    return_window,
)
from models.workcalendar import TZ


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def dispatched(when: str, request_type: str | None = "投诉", urgency: str = "一般", complex_case: bool = False,
               attempt: int = 1) -> TicketFacts:
    return TicketFacts("T1", at(when), request_type=request_type, urgency=urgency, complex_case=complex_case,
                       status="dispatched", agency="BH-ZJW", attempt=attempt, dispatched_at=at(when))


def signed(dispatched_at: str, signed_at: str, request_type: str | None = "投诉", urgency: str = "一般",
           **kw: object) -> TicketFacts:
    return TicketFacts("T1", at(dispatched_at), request_type=request_type, urgency=urgency, status="signed",
                       agency="BH-ZJW", attempt=1, dispatched_at=at(dispatched_at), signed_at=at(signed_at),
                       handling_started_at=at(signed_at), **kw)  # type: ignore[arg-type]


def by_stage(facts: TicketFacts, cat: Catalogue) -> dict[str, datetime]:
    return {d.stage: d.due for d in deadlines(facts, cat)}


# --- working days --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("when", "sign_due", "why"),
    [
        ("2024-02-09T16:00", "2024-02-18T16:00", "除夕 2024 was a working day; the next is the 调休 Sunday"),
        ("2025-01-27T09:30", "2025-02-05T09:30", "the day before 除夕 2025: eight days of holiday"),
        ("2025-01-25T10:00", "2025-01-26T10:00", "a Saturday: the next day is a 调休 Sunday"),
        ("2024-09-30T10:00", "2024-10-08T10:00", "the day before National Day 2024"),
        ("2025-09-30T15:00", "2025-10-09T15:00", "the day before National Day 2025 (eight days)"),
        ("2025-09-27T14:00", "2025-09-28T14:00", "Saturday before the 调休 Sunday 2025-09-28"),
    ],
)
def test_sign_for_deadline_is_one_working_day_after_dispatch(cat: Catalogue, when: str, sign_due: str,
                                                             why: str) -> None:
    assert by_stage(dispatched(when), cat)["sign"] == at(sign_due), why


def test_return_window_is_one_working_day_two_when_complex(cat: Catalogue) -> None:
    # Given a ticket dispatched the day before 除夕 2025
    # Then its return window closes after the holiday, one more working day when the case is complex
    assert by_stage(dispatched("2025-01-27T09:30"), cat)["return"] == at("2025-02-05T09:30")
    assert by_stage(dispatched("2025-01-27T09:30", complex_case=True), cat)["return"] == at("2025-02-06T09:30")
    window = return_window(dispatched("2025-01-27T09:30"), cat)
    assert window is not None and window.checkpoints == ()  # passing it is no failure: nothing to announce


@pytest.mark.parametrize(
    ("signed_at", "request_type", "handle_due"),
    [
        ("2024-02-09T17:00", "投诉", "2024-03-07T17:00"),  # 15 working days across Spring Festival 2024
        ("2024-02-09T17:00", "咨询", "2024-02-20T17:00"),  # 3: the 调休 Sunday 02-18 counts
        ("2024-09-29T09:00", "咨询", "2024-10-09T09:00"),  # signed on the 调休 Sunday before National Day
        ("2025-09-26T11:00", "咨询", "2025-09-30T11:00"),  # the 调休 Sunday 2025-09-28 counts
        ("2025-09-26T11:00", "投诉", "2025-10-23T11:00"),  # 15 across National Day 2025 and 10-11 调休
        ("2025-09-30T16:00", "求助", "2025-10-11T16:00"),  # ends on the 调休 Saturday 10-11
        ("2025-09-26T11:00", None, "2025-10-13T11:00"),  # untyped general ticket: 7 working days
    ],
)
def test_handling_deadline_in_working_days(cat: Catalogue, signed_at: str, request_type: str | None,
                                           handle_due: str) -> None:
    facts = signed(signed_at, signed_at, request_type)
    assert by_stage(facts, cat)["handle"] == at(handle_due)


def test_urgent_classes_run_on_the_24x7_clock_even_on_holidays(cat: Catalogue) -> None:
    # Given an urgent ticket dispatched late on 除夕 2025 (a holiday)
    urgent = dispatched("2025-01-28T23:50", urgency="紧急")
    sign = next(d for d in deadlines(urgent, cat) if d.stage == "sign")
    # Then it must be signed within 15 minutes, warnings at clock-time fractions
    assert sign.due == at("2025-01-29T00:05")
    assert [c.at for c in sign.checkpoints[:3]] == [at("2025-01-28T23:57:30"), at("2025-01-29T00:01:15"),
                                                     at("2025-01-29T00:03:30")]
    # And handled within 2 hours of the signature; utilities within 30 minutes / 24 hours
    assert by_stage(signed("2025-01-28T23:50", "2025-01-29T00:00", urgency="紧急"), cat)["handle"] == \
        at("2025-01-29T02:00")
    assert by_stage(dispatched("2025-10-01T10:00", urgency="水电气热"), cat)["sign"] == at("2025-10-01T10:30")
    assert by_stage(signed("2025-10-01T10:00", "2025-10-01T10:10", urgency="水电气热"), cat)["handle"] == \
        at("2025-10-02T10:10")


def test_checkpoints_of_a_working_day_limit(cat: Catalogue) -> None:
    # Given a 咨询 signed on Friday 2025-09-26 11:00 (3 working days, the 调休 Sunday counts 24 h)
    (handle,) = [d for d in deadlines(signed("2025-09-26T10:00", "2025-09-26T11:00", "咨询"), cat)
                 if d.stage == "handle"]
    # Then warnings split working time (Saturday 09-27 does not count), overdue at the deadline,
    # and 通报 five working days after it — over the National Day holiday
    assert [(c.level, c.at) for c in handle.checkpoints] == [
        ("warn_50", at("2025-09-28T23:00")),
        ("warn_75", at("2025-09-29T17:00")),
        ("warn_90", at("2025-09-30T03:48")),
        ("overdue", at("2025-09-30T11:00")),
        ("censure", at("2025-10-14T11:00")),
    ]
    # And 催办 every further working day, 10-11 being a 调休 Saturday
    assert [reminder(handle, n, cat).at for n in (1, 2, 3, 4)] == [
        at("2025-10-09T11:00"), at("2025-10-10T11:00"), at("2025-10-11T11:00"), at("2025-10-13T11:00")]
    assert next_reminder(handle, at("2025-10-10T12:00"), cat).level == "reminder_3"
    assert next_reminder(handle, at("2025-09-30T11:00"), cat).level == "reminder_1"


def test_checkpoint_sequence_interleaves_censure_after_the_fifth_reminder(cat: Catalogue) -> None:
    (handle,) = [d for d in deadlines(signed("2025-09-26T10:00", "2025-09-26T11:00", "咨询"), cat)
                 if d.stage == "handle"]
    levels = []
    for cp in checkpoints_after(handle, -1, cat):
        levels.append(cp.level)
        if len(levels) == 12:
            break
    assert levels == ["warn_50", "warn_75", "warn_90", "overdue", "reminder_1", "reminder_2", "reminder_3",
                      "reminder_4", "reminder_5", "censure", "reminder_6", "reminder_7"]
    ranks = [cp.rank for cp, _ in zip(checkpoints_after(handle, -1, cat), range(12), strict=False)]
    assert ranks == sorted(ranks)
    # after the overdue was announced, the next one is the first reminder
    overdue_rank = handle.checkpoints[3].rank
    assert next_checkpoint(handle, overdue_rank, cat).level == "reminder_1"  # type: ignore[union-attr]
    due = checkpoints_due(handle, -1, at("2025-10-09T11:00"), cat)
    assert [c.level for c in due] == ["warn_50", "warn_75", "warn_90", "overdue", "reminder_1"]


def test_extension_moves_the_handling_deadline_by_granted_working_days(cat: Catalogue) -> None:
    # Given a 咨询 due 2025-09-30 11:00; When 2 working days are granted (over National Day)
    base = signed("2025-09-26T10:00", "2025-09-26T11:00", "咨询")
    extended = signed("2025-09-26T10:00", "2025-09-26T11:00", "咨询", extension_days_granted=2)
    (before,) = [d for d in deadlines(base, cat) if d.stage == "handle"]
    (after,) = [d for d in deadlines(extended, cat) if d.stage == "handle"]
    # Then the deadline moves to 10-10 and the warnings spread over the longer limit; same deadline id
    assert after.due == at("2025-10-10T11:00") and after.extension_days == 2
    assert after.id == before.id == "handle@1.0"
    assert after.checkpoints[0].at > before.checkpoints[0].at


def test_reopen_starts_a_new_handling_deadline(cat: Catalogue) -> None:
    # Given a ticket signed in early September, resolved, rated unsatisfied and reopened on 09-26
    facts = replace(signed("2025-09-01T09:00", "2025-09-01T10:00", "咨询"), reopen_count=1,
                    handling_started_at=at("2025-09-26T11:00"))
    (handle,) = [d for d in deadlines(facts, cat) if d.stage == "handle"]
    assert handle.start == at("2025-09-26T11:00") and handle.due == at("2025-09-30T11:00")
    assert handle.id == "handle@1.1"  # a new cycle: its alerts are new ones


@pytest.mark.parametrize("status", ["resolved", "closed", "returned", "manual", "received"])
def test_no_clock_runs_when_the_ticket_is_not_with_an_agency(cat: Catalogue, status: str) -> None:
    facts = replace(signed("2025-09-26T10:00", "2025-09-26T11:00"), status=status)
    assert deadlines(facts, cat) == []


def test_signed_ticket_has_no_sign_deadline_and_new_attempt_is_a_new_cycle(cat: Catalogue) -> None:
    assert set(by_stage(signed("2025-09-26T10:00", "2025-09-26T11:00"), cat)) == {"return", "handle"}
    ids = [d.id for d in deadlines(dispatched("2025-09-26T10:00", attempt=2), cat)]
    assert ids == ["sign@2", "return@2"]


def test_fast_path_agrees_with_the_sla_schedule_everywhere(cat: Catalogue) -> None:
    # The memoised arithmetic must give exactly what SlaRules.schedule gives, for random starts in 2024-2025.
    rnd = random.Random(12345)
    for _ in range(600):
        start = datetime(2024, 1, 1, tzinfo=TZ) + timedelta(seconds=rnd.randrange(0, 730 * 86400))
        rt, urgency = rnd.choice(["咨询", "投诉", None]), rnd.choice(["一般", "一般", "紧急", "水电气热"])
        for stage, facts in (("sign", dispatched(start.isoformat()[:19], rt, urgency)),
                             ("handle", signed(start.isoformat()[:19], start.isoformat()[:19], rt, urgency))):
            (d,) = [d for d in deadlines(facts, cat) if d.stage == stage]
            s = cat.schedule(stage, start, rt, urgency)
            assert d.due == s.due
            assert [c.at for c in d.checkpoints[:3]] == [w for _, w in s.warnings]
            assert d.checkpoints[-1].at == s.censure_at
            assert reminder(d, 2, cat).at == cat.sla.reminder_due(s.due, 1, cat.calendar)


def test_an_overdue_fraction_past_the_limit_is_a_grace_period_not_a_crash(cat: Catalogue,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Given overdue_fraction 1.2 (the loader accepts any positive share) and a dispatch late on a Friday
    monkeypatch.setattr(cat, "sla", replace(cat.sla, overdue_fraction=1.2))
    (sign, _window) = deadlines(dispatched("2025-03-07T22:00"), cat)
    # Then overdue comes after 120% of the working time: 24 h to Monday 22:00, plus 4.8 h of Tuesday
    assert sign.due == at("2025-03-10T22:00")
    assert [c.at for c in sign.checkpoints if c.level == "overdue"] == [at("2025-03-11T02:48")]
