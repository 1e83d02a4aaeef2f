"""China's working-day calendar and deadline arithmetic (timezone Asia/Shanghai).

A day is a working day when it is a Monday-Friday that is not a statutory holiday, or a
Saturday/Sunday declared a make-up working day (调休). Years are supplied as data (one
:class:`YearCalendar` per year, from the State Council's yearly notice). A year without its notice
falls back to the holidays the law itself fixes (:func:`statutory_year`) and logs a warning once, so a
late file degrades deadlines a little instead of stopping the router or counting 元旦 as a working day.

Deadline rules (design): for N working days, counting starts the day after the start and the
deadline is the same clock time on the Nth working day; for hours, the 24x7 clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from lunardate import LunarDate

TZ = ZoneInfo("Asia/Shanghai")
log = logging.getLogger(__name__)

_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class YearCalendar:
    """Official holidays and make-up working days of one year."""

    year: int
    holidays: Mapping[date, str] = field(default_factory=dict)  # day -> festival name
    workdays: Mapping[date, str] = field(default_factory=dict)  # 调休 weekend day -> festival name
    source: str = ""


STATUTORY_SOURCE = "《全国年节及纪念日放假办法》第二条、第六条（2024年修订）：法定假日及逢周末的补假，无调休"
_STATUTORY_FROM = 2025  # the revised 办法 (除夕 and 5月2日 added) applies from 2025 on


def statutory_year(year: int) -> YearCalendar:
    """The holidays the law fixes for a year whose State Council notice is not in the data (yet).

    《全国年节及纪念日放假办法》 (revised 2024, in force 2025-01-01), article 2: 元旦 1 day, 春节 4 (除夕 to
    正月初三), 清明 1, 劳动节 2 (May 1-2), 端午 1, 中秋 1, 国庆 3 (October 1-3). Article 6: a holiday that falls
    on a Saturday or Sunday is made up on a working day (补假); here on the first working days after the
    festival, where every notice has put them (2025's 端午, 2026's 清明, 劳动节 and 国庆). The yearly notice also
    adds bridging days and the 调休 weekend days that pay for them, which cannot be known beforehand; a year
    built here has the law's days only. Before 2025, or outside the lunar table (1900-2099), it is empty
    (plain Monday-Friday).
    """
    if not _STATUTORY_FROM <= year <= 2099:
        return YearCalendar(year, source="")
    new_year = LunarDate(year, 1, 1).to_solar_date()
    yy = year % 100
    qingming = date(year, 4, int(yy * 0.2422 + 4.81) - yy // 4)  # the solar-term formula, exact 2001-2099
    days: dict[date, str] = {date(year, 1, 1): "元旦"}
    days.update((new_year + timedelta(days=i), "春节") for i in range(-1, 3))
    days[qingming] = "清明节"
    days.update({date(year, 5, 1): "劳动节", date(year, 5, 2): "劳动节"})
    days[LunarDate(year, 5, 5).to_solar_date()] = "端午节"
    days[LunarDate(year, 8, 15).to_solar_date()] = "中秋节"
    days.update((date(year, 10, d), "国庆节") for d in (1, 2, 3))  # 中秋 may fall on one: the name says 国庆
    for name in dict.fromkeys(days[d] for d in sorted(days)):  # festivals in calendar order
        festival = sorted(d for d, n in days.items() if n == name)
        owed, day = sum(d.weekday() >= 5 for d in festival), festival[-1]
        while owed:
            day += _DAY
            if day.weekday() < 5 and day not in days:
                days[day], owed = name, owed - 1
    return YearCalendar(year, holidays=days, source=STATUTORY_SOURCE)


def as_local(moment: datetime) -> datetime:
    """The moment in Asia/Shanghai; a naive datetime is taken to be Shanghai wall-clock time."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=TZ)
    return moment.astimezone(TZ)


def span_zh(span: timedelta) -> str:
    """A length of time as a person says it: 5分钟, 300小时, 30秒."""
    seconds = int(span.total_seconds())
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}小时"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}分钟"
    return f"{span.total_seconds():g}秒"


def local_date(moment: date | datetime) -> date:
    """The Shanghai calendar date of a moment (a plain date is returned as is)."""
    if isinstance(moment, datetime):
        return as_local(moment).date()
    return moment


class WorkCalendar:
    """Working-day queries and deadline arithmetic over a set of :class:`YearCalendar`."""

    def __init__(self, years: Iterable[YearCalendar] = ()) -> None:
        self._years: dict[int, YearCalendar] = {y.year: y for y in years}
        self._holidays: dict[date, str] = {}
        self._workdays: dict[date, str] = {}
        for y in self._years.values():
            self._holidays.update(y.holidays)
            self._workdays.update(y.workdays)
        self._warned: set[int] = set()
        # working days in (a, b] by date pair: the figures and the supervision tick ask for thousands of stages
        # overdue since a few hundred dates, counted day by day (a year's list: ~70 ms). A pair's answer never
        # changes: the years it spans were taken in (_note_missing) while it was counted. Cleared when large.
        self._between: dict[tuple[date, date], int] = {}

    @property
    def years(self) -> tuple[int, ...]:
        return tuple(sorted(self._years))

    def has_year(self, year: int) -> bool:
        return year in self._years

    def _note_missing(self, year: int) -> None:
        """First query of a year without its notice: take the statutory holidays in, and say so once."""
        if year in self._years or year in self._warned:
            return
        fallback = statutory_year(year)
        for day, name in fallback.holidays.items():
            self._holidays.setdefault(day, name)
        self._warned.add(year)  # after the merge: another thread never sees the year marked but not merged
        log.warning(
            "no holiday notice for %d: counting %s (add config/data/calendar/%d.yaml once the State "
            "Council publishes the year's arrangement)",
            year,
            "its statutory holidays and their make-up days only, without bridging days or 调休" if fallback.holidays
            else "Monday-Friday as working days",
            year,
        )

    # --- days ------------------------------------------------------------------------------
    def is_working_day(self, day: date | datetime) -> bool:
        d = local_date(day)
        self._note_missing(d.year)
        if d in self._workdays:
            return True
        if d in self._holidays:
            return False
        return d.weekday() < 5

    def holiday_name(self, day: date) -> str | None:
        self._note_missing(day.year)
        return self._holidays.get(day)

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after ``day``."""
        d = day + _DAY
        while not self.is_working_day(d):
            d += _DAY
        return d

    def add_working_days(self, day: date, n: int) -> date:
        """The Nth working day after ``day`` (``day`` itself never counts); n <= 0 returns ``day``."""
        d = day
        for _ in range(max(n, 0)):
            d = self.next_working_day(d)
        return d

    def working_days_between(self, start: date | datetime, end: date | datetime) -> int:
        """Working days in (start, end]: days after the start date up to and including the end date."""
        a, b = local_date(start), local_date(end)
        if b <= a:
            return 0
        count = self._between.get((a, b))
        if count is not None:
            return count
        count = 0
        d = a + _DAY
        while d <= b:
            count += self.is_working_day(d)
            d += _DAY
        if len(self._between) >= 100_000:
            self._between.clear()
        self._between[(a, b)] = count
        return count

    def whole_working_days(self, start: datetime, end: datetime) -> int:
        """Whole working days from ``start`` to ``end``, counted as deadlines are: the largest n whose
        :meth:`deadline_working_days` (same clock time, nth working day after) is not after ``end``. A ticket
        due Monday 17:00 is 0 working days overdue on Tuesday 09:00, and 1 from Tuesday 17:00."""
        n = self.working_days_between(start, end)
        return n - 1 if n and self.deadline_working_days(start, n) > end else n

    # --- deadlines -------------------------------------------------------------------------
    def deadline_working_days(self, start: datetime, n: int) -> datetime:
        """Same Shanghai clock time on the Nth working day after the start's date."""
        local = as_local(start)
        due_day = self.add_working_days(local.date(), n)
        return datetime.combine(due_day, local.timetz()).replace(tzinfo=TZ)

    def deadline_hours(self, start: datetime, hours: float) -> datetime:
        """24x7 clock: start plus the given hours, in Shanghai time."""
        return as_local(start) + timedelta(hours=hours)

    # --- working time (for warnings at fractions of a working-day limit) -------------------
    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Clock time between two moments that falls on working days (whole days count 24 h).

        The start day counts only if it is a working day, so a ticket received on a holiday
        accumulates nothing until the next working day begins.
        """
        a, b = as_local(start), as_local(end)
        if b <= a:
            return timedelta(0)
        total = timedelta(0)
        day = a.date()
        while day <= b.date():
            if self.is_working_day(day):
                day_start = datetime.combine(day, time.min, tzinfo=TZ)
                lo = max(a, day_start)
                hi = min(b, day_start + _DAY)
                if hi > lo:
                    total += hi - lo
            day += _DAY
        return total

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """The moment when ``amount`` of working time has elapsed since ``start``."""
        moment = as_local(start)
        remaining = amount
        if remaining <= timedelta(0):
            return moment
        while True:
            day = moment.date()
            day_end = datetime.combine(day + _DAY, time.min, tzinfo=TZ)
            if self.is_working_day(day):
                available = day_end - moment
                if remaining <= available:
                    return moment + remaining
                remaining -= available
            moment = day_end
