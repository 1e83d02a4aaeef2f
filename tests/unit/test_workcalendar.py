"""Working-day calendar and deadlines across Spring Festival, National Day and 调休 days."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pytest

from config.catalogue import load_calendar
from models.workcalendar import TZ, WorkCalendar, YearCalendar, statutory_year


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return load_calendar()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


@pytest.mark.parametrize(
    ("day", "working"),
    [
        ("2024-02-04", True),  # Sunday, 调休 for Spring Festival
        ("2024-02-09", True),  # 除夕 2024 was not a holiday
        ("2024-02-12", False),
        ("2024-02-18", True),  # Sunday, 调休
        ("2024-09-29", True),  # Sunday, 调休 for National Day
        ("2024-10-07", False),
        ("2024-10-12", True),  # Saturday, 调休
        ("2024-10-13", False),
        ("2025-01-26", True),  # Sunday, 调休
        ("2025-01-28", False),  # 除夕 is a holiday from 2025
        ("2025-02-04", False),
        ("2025-02-08", True),  # Saturday, 调休
        ("2025-04-27", True),
        ("2025-05-05", False),
        ("2025-09-28", True),
        ("2025-10-08", False),
        ("2025-10-11", True),
        ("2025-10-12", False),
        ("2025-10-13", True),  # ordinary Monday
    ],
)
def test_official_days(cal: WorkCalendar, day: str, working: bool) -> None:
    assert cal.is_working_day(date.fromisoformat(day)) is working


@pytest.mark.parametrize(
    ("start", "n", "due"),
    [
        # 2024 Spring Festival (2/10-2/17 off, 2/4 and 2/18 worked)
        ("2024-02-03T09:30", 1, "2024-02-04T09:30"),
        ("2024-02-08T09:30", 1, "2024-02-09T09:30"),
        ("2024-02-08T09:30", 2, "2024-02-18T09:30"),
        ("2024-02-08T09:30", 3, "2024-02-19T09:30"),
        # 2024 National Day (10/1-10/7 off, 9/29 and 10/12 worked)
        ("2024-09-27T14:00", 1, "2024-09-29T14:00"),
        ("2024-09-27T14:00", 3, "2024-10-08T14:00"),
        ("2024-10-08T14:00", 4, "2024-10-12T14:00"),
        # 2025 Spring Festival (1/28-2/4 off, 1/26 and 2/8 worked)
        ("2025-01-24T16:45", 1, "2025-01-26T16:45"),
        ("2025-01-24T16:45", 3, "2025-02-05T16:45"),
        ("2025-02-05T08:00", 3, "2025-02-08T08:00"),
        # 2025 National Day + Mid-Autumn (10/1-10/8 off, 9/28 and 10/11 worked)
        ("2025-09-26T10:00", 1, "2025-09-28T10:00"),
        ("2025-09-26T10:00", 3, "2025-09-30T10:00"),
        ("2025-09-30T10:00", 1, "2025-10-09T10:00"),
        ("2025-10-09T10:00", 2, "2025-10-11T10:00"),
        # received on a holiday: counting still starts the next day
        ("2025-10-03T11:00", 1, "2025-10-09T11:00"),
        # a whole 15-working-day handling limit over National Day 2025
        # 9/26, 9/28, 9/29, 9/30, 10/9, 10/10, 10/11, 10/13-10/17, 10/20, 10/21, 10/22
        ("2025-09-25T09:00", 15, "2025-10-22T09:00"),
    ],
)
def test_deadline_working_days(cal: WorkCalendar, start: str, n: int, due: str) -> None:
    got = cal.deadline_working_days(at(start), n)
    assert got == at(due)
    assert got.isoformat().endswith("+08:00")


def test_aware_start_is_converted_to_shanghai(cal: WorkCalendar) -> None:
    # 2025-09-30 20:00 UTC is 2025-10-01 04:00 in Shanghai: a holiday, so the 1st working day is 10/9
    start = datetime(2025, 9, 30, 20, 0, tzinfo=UTC)
    assert cal.deadline_working_days(start, 1).isoformat() == "2025-10-09T04:00:00+08:00"


def test_naive_start_is_shanghai_time(cal: WorkCalendar) -> None:
    assert cal.deadline_working_days(datetime(2025, 9, 26, 10), 1) == at("2025-09-28T10:00")


def test_hours_run_on_the_24x7_clock(cal: WorkCalendar) -> None:
    assert cal.deadline_hours(at("2025-09-30T22:00"), 24) == at("2025-10-01T22:00")
    assert cal.deadline_hours(at("2024-02-09T23:50"), 0.25) == at("2024-02-10T00:05")


def test_zero_working_days_is_the_start(cal: WorkCalendar) -> None:
    assert cal.deadline_working_days(at("2025-10-03T11:00"), 0) == at("2025-10-03T11:00")


def test_working_days_between(cal: WorkCalendar) -> None:
    assert cal.working_days_between(date(2025, 9, 30), date(2025, 10, 11)) == 3  # 10/9, 10/10, 10/11
    assert cal.working_days_between(date(2025, 10, 11), date(2025, 9, 30)) == 0


def test_whole_working_days_count_as_deadlines_do(cal: WorkCalendar) -> None:
    # due Mon 2025-09-29 17:00 (Tue 9/30 is a working day, then the National Day week, then 10/9)
    due = at("2025-09-29T17:00")
    assert cal.whole_working_days(due, at("2025-09-30T09:00")) == 0  # 16 hours late: less than a working day
    assert cal.whole_working_days(due, at("2025-09-30T17:00")) == 1
    assert cal.whole_working_days(due, at("2025-10-08T23:00")) == 1  # the holidays add nothing
    assert cal.whole_working_days(due, at("2025-10-09T17:00")) == 2
    assert cal.whole_working_days(due, at("2025-09-29T16:00")) == 0  # not due yet


def test_working_time_skips_holidays(cal: WorkCalendar) -> None:
    # Tue 9/30 10:00 -> Thu 10/9 10:00: 14 h on 9/30 + 10 h on 10/9; the holiday week counts nothing
    assert cal.working_time_between(at("2025-09-30T10:00"), at("2025-10-09T10:00")) == timedelta(hours=24)
    assert cal.add_working_time(at("2025-09-30T10:00"), timedelta(hours=18)) == at("2025-10-09T04:00")
    assert cal.add_working_time(at("2025-09-30T10:00"), timedelta(hours=14)) == at("2025-10-01T00:00")


def test_a_year_without_its_notice_counts_the_statutory_holidays_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given only 2025's notice, when 2030 (no notice yet) is asked about
    cal = WorkCalendar([YearCalendar(2025, {date(2025, 10, 1): "国庆节"})])
    with caplog.at_level(logging.WARNING, logger="models.workcalendar"):
        assert cal.is_working_day(date(2030, 10, 1)) is False  # 国庆, fixed by law (a Tuesday)
        assert cal.is_working_day(date(2030, 10, 4)) is True  # a bridging day only a notice could add
        assert cal.is_working_day(date(2030, 10, 5)) is False  # Saturday
        assert cal.holiday_name(date(2030, 2, 2)) == "春节"  # 除夕 2030
        assert cal.is_working_day(date(2025, 10, 1)) is False
    # Then the law's days count, and the warning says so once per year, not per call
    warnings = [r.getMessage() for r in caplog.records if "2030" in r.getMessage()]
    assert len(warnings) == 1 and "statutory" in warnings[0]
    assert not cal.has_year(2030)  # a fallback is not a notice: `catalogue check` still asks for the file


def test_before_2025_a_missing_year_is_plain_weekdays() -> None:
    cal = WorkCalendar()
    assert cal.is_working_day(date(2022, 10, 3)) is True  # no statutory fallback under the old 办法


@pytest.mark.parametrize(("year", "made_up"), [(2025, 1), (2026, 3)])
def test_statutory_days_are_inside_each_published_notice(cal: WorkCalendar, year: int, made_up: int) -> None:
    # The notices only ever add bridging days to the law's: every statutory day is a holiday there, and so is
    # each day that makes up for one falling on a weekend (article 6), where the fallback puts it
    statutory = statutory_year(year).holidays
    assert len(statutory) == 13 + made_up  # 1 + 4 + 1 + 2 + 1 + 1 + 3 days; 2025: 端午; 2026: 清明, 劳动节, 国庆
    for day in statutory:
        assert not cal.is_working_day(day), (year, day, statutory[day])


def test_statutory_2027() -> None:
    days = statutory_year(2027).holidays
    assert {d for d, n in days.items() if n == "春节"} == {date(2027, 2, d) for d in (5, 6, 7, 8, 9, 10)}
    assert days[date(2027, 1, 1)] == "元旦" and days[date(2027, 4, 5)] == "清明节"
    assert days[date(2027, 6, 9)] == "端午节" and days[date(2027, 9, 15)] == "中秋节"
    assert date(2027, 5, 2) in days and date(2027, 10, 3) in days
    # 补假 (article 6) for the law's days on a weekend: 春节's Saturday and Sunday, 劳动节's, and 国庆's
    assert {date(2027, 2, 9), date(2027, 2, 10), date(2027, 5, 3), date(2027, 5, 4), date(2027, 10, 4),
            date(2027, 10, 5)} <= days.keys()
    assert len(days) == 13 + 6 and days[date(2027, 10, 5)] == "国庆节"


def test_shipped_years(cal: WorkCalendar) -> None:
    assert cal.years == (2023, 2024, 2025, 2026)
    assert cal.holiday_name(date(2026, 2, 16)) == "春节"
    assert cal.is_working_day(date(2026, 1, 4)) and cal.is_working_day(date(2026, 9, 20))
