"""China's working-day calendar and deadline arithmetic (timezone Asia/Shanghai).

A day is a working day when it is a Monday-Friday that is not a statutory holiday, or a
Saturday/Sunday declared a make-up working day (调休). Years are supplied as data (one
:class:`YearCalendar` per year); a year without data falls back to plain Monday-Friday and logs a
warning once, so a missing file degrades deadlines instead of stopping the router.

Deadline rules (design): for N working days, counting starts the day after the start and the
deadline is the same clock time on the Nth working day; for hours, the 24x7 clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

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


def as_local(moment: datetime) -> datetime:
    """The moment in Asia/Shanghai; a naive datetime is taken to be Shanghai wall-clock time."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=TZ)
    return moment.astimezone(TZ)


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

    @property
    def years(self) -> tuple[int, ...]:
        return tuple(sorted(self._years))

    def has_year(self, year: int) -> bool:
        return year in self._years

    def _note_missing(self, year: int) -> None:
        if year not in self._years and year not in self._warned:
            self._warned.add(year)
            log.warning(
                "no holiday calendar for %d: counting Monday-Friday as working days "
                "(add config/data/calendar/%d.yaml)",
                year,
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
        count = 0
        d = a + _DAY
        while d <= b:
            count += self.is_working_day(d)
            d += _DAY
        return count

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
