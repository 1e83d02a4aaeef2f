"""Deadlines of one ticket per stage, and their checkpoints (warnings, overdue, 催办, 通报).

Pure arithmetic on top of the catalogue's time-limit rules (``Catalogue.time_limit``) and its working-day
calendar (``Catalogue.calendar``): nothing here knows about holidays or 调休 itself.

Stages and when their clocks run (status from ``models.lifecycle``):

* ``sign`` (签收) — from dispatch, while the ticket waits on an agency's queue (``dispatched``);
* ``return`` (退单 window) — from dispatch, while the agency may still return it (``dispatched``/``signed``).
  It has no checkpoints: passing it is not a failure, it only makes a later return *late*;
* ``handle`` (办理) — from the signature or the last reopen, while ``signed``; an approved extension moves
  the deadline by the granted working days.

Resolved, closed, returned and manual tickets have no running clock. Each deadline carries a ``cycle``
(dispatch attempt, and for handling the reopen count) so that a new dispatch or a reopen is a new
deadline with its own alerts, while an extension keeps the same deadline (already announced warnings are
not repeated, see ``rank``).

Checkpoints are ordered by ``rank`` (= time order within a deadline): warnings 0.., ``overdue`` 100,
``reminder_n`` 100 + 2n, ``censure`` right after the reminder it coincides with. Reminders are unbounded
(every further working day until the ticket is handled), so they are generated on demand.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Protocol

from models.directory import Catalogue
from models.lifecycle import Status
from models.sla import TimeLimit
from models.workcalendar import TZ, WorkCalendar, as_local

STAGE_NAMES_ZH = {"sign": "签收", "return": "退单", "handle": "办理"}
RANK_OVERDUE = 100
OVERDUE = "overdue"
CENSURE = "censure"
REMINDER = "reminder"


class DeadlineFacts(Protocol):
    """What deadlines depend on (``TicketFacts`` has it; any object with these attributes will do)."""

    ticket_id: str
    status: str
    received_at: datetime
    request_type: str | None
    urgency: str | None
    complex_case: bool
    attempt: int
    dispatched_at: datetime | None
    signed_at: datetime | None
    handling_started_at: datetime | None
    extension_days_granted: int
    reopen_count: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    stage: str
    level: str  # warn_50 | warn_75 | warn_90 | overdue | reminder_<n> | censure
    at: datetime
    rank: int


@dataclass(frozen=True, slots=True)
class Deadline:
    stage: str  # sign | return | handle
    cycle: str  # "<attempt>" for sign/return, "<attempt>.<reopen>" for handle
    start: datetime
    due: datetime
    limit: TimeLimit
    checkpoints: tuple[Checkpoint, ...]  # the finite part: warnings, overdue, censure (reminders on demand)
    extension_days: int = 0

    @property
    def id(self) -> str:
        return f"{self.stage}@{self.cycle}"


def warning_level(fraction: float) -> str:
    return f"warn_{round(fraction * 100)}"


_DAY = timedelta(days=1)


@lru_cache(maxsize=8192)
def _working_days(calendar: WorkCalendar, day: date, n: int) -> tuple[bool, tuple[date, ...]]:
    """Whether ``day`` is a working day, and the working days from it to the n-th one after it.

    Cached per start *date*: a million tickets started on a few hundred dates share a few hundred
    entries, which keeps rebuilding the deadline index after a restart cheap.
    """
    first = calendar.is_working_day(day)
    days = [day] if first else []
    d = day
    for _ in range(n):
        d = calendar.next_working_day(d)
        days.append(d)
    return first, tuple(days)


@lru_cache(maxsize=16384)
def _nth_working_day(calendar: WorkCalendar, day: date, n: int) -> date:
    return calendar.add_working_days(day, n)


def _after_working_days(calendar: WorkCalendar, start: datetime, n: int) -> datetime:
    """``WorkCalendar.deadline_working_days``, memoised per start date (same clock time on the Nth day)."""
    local = as_local(start)
    return datetime.combine(_nth_working_day(calendar, local.date(), n), local.timetz()).replace(tzinfo=TZ)


def _at_fraction(limit: TimeLimit, start: datetime, due: datetime, fraction: float,
                 calendar: WorkCalendar, days: int) -> datetime:
    """The moment ``fraction`` of the limit is used; same result as ``SlaRules.schedule`` (and tested so):
    24x7 limits split clock time, working-day limits split working time (whole working days count 24 h)."""
    if limit.clock == "hours":
        return start + (due - start) * fraction
    first_working, span = _working_days(calendar, start.date(), days)
    into_day = start - datetime.combine(start.date(), time.min, tzinfo=TZ)
    # Working time from the start to the due moment (same clock time on the last day of the span).
    total = days * _DAY if first_working else (days - 1) * _DAY + into_day
    offset = (into_day if first_working else timedelta(0)) + total * fraction
    if offset > len(span) * _DAY:  # past the due day (overdue_fraction > 1): beyond the memoised days
        return calendar.add_working_time(start, total * fraction)
    i, rest = divmod(offset, _DAY)
    if rest == timedelta(0) and i > 0:  # exactly at a day's end, as WorkCalendar.add_working_time returns it
        return datetime.combine(span[i - 1], time.min, tzinfo=TZ) + _DAY
    return datetime.combine(span[i], time.min, tzinfo=TZ) + rest


def _deadline(stage: str, cycle: str, start: datetime, limit: TimeLimit, catalogue: Catalogue,
              extension_days: int = 0, with_checkpoints: bool = True) -> Deadline:
    calendar, sla = catalogue.calendar, catalogue.sla
    start = as_local(start)
    if limit.clock == "hours":
        due = limit.due(start, calendar)
        if extension_days:
            due = _after_working_days(calendar, due, extension_days)
    else:
        due = _after_working_days(calendar, start, int(limit.amount) + extension_days)
    if not with_checkpoints:
        return Deadline(stage, cycle, start, due, limit, (), extension_days)
    days = int(limit.amount) + extension_days if limit.clock != "hours" else 0
    points = [Checkpoint(stage, warning_level(f), _at_fraction(limit, start, due, f, calendar, days), rank)
              for rank, f in enumerate(sorted(sla.warning_fractions))]
    overdue_at = due if sla.overdue_fraction == 1.0 else _at_fraction(limit, start, due, sla.overdue_fraction,
                                                                        calendar, days)
    points.append(Checkpoint(stage, OVERDUE, overdue_at, RANK_OVERDUE))
    censure_at = _after_working_days(calendar, due, sla.censure_after_working_days)
    points.append(Checkpoint(stage, CENSURE, censure_at, _censure_rank(catalogue)))
    return Deadline(stage, cycle, start, due, limit, tuple(points), extension_days)


def _censure_rank(catalogue: Catalogue) -> int:
    sla = catalogue.sla
    # 通报 falls on the day of the reminder number censure_after // every; rank it right after that reminder.
    return RANK_OVERDUE + 2 * (sla.censure_after_working_days // max(sla.reminder_every_working_days, 1)) + 1


def deadlines(facts: DeadlineFacts, catalogue: Catalogue, *, checkpoints: bool = True) -> list[Deadline]:
    """The running deadlines of a ticket (empty when no clock runs: resolved, closed, returned, manual).
    ``checkpoints=False``: due moments only (the figures), without the warnings, overdue and censure points."""
    status = facts.status
    if status not in (Status.DISPATCHED, Status.SIGNED):
        return []
    rt, urgency, complex_case = facts.request_type, facts.urgency or "一般", bool(facts.complex_case)
    out: list[Deadline] = []
    attempt = str(facts.attempt)
    if facts.dispatched_at is not None:
        if status == Status.DISPATCHED:
            out.append(_deadline("sign", attempt, facts.dispatched_at,
                                 catalogue.time_limit("sign", rt, urgency, complex_case), catalogue,
                                 with_checkpoints=checkpoints))
        out.append(_deadline("return", attempt, facts.dispatched_at,
                             catalogue.time_limit("return", rt, urgency, complex_case), catalogue,
                             with_checkpoints=False))
    started = facts.handling_started_at or facts.signed_at
    if status == Status.SIGNED and started is not None:
        out.append(_deadline("handle", f"{facts.attempt}.{facts.reopen_count}", started,
                             catalogue.time_limit("handle", rt, urgency, complex_case), catalogue,
                             extension_days=int(facts.extension_days_granted or 0), with_checkpoints=checkpoints))
    return out


def return_window(facts: DeadlineFacts, catalogue: Catalogue) -> Deadline | None:
    """The 退单 window of the current dispatch (None when the ticket was never dispatched)."""
    if facts.dispatched_at is None:
        return None
    limit = catalogue.time_limit("return", facts.request_type, facts.urgency or "一般", bool(facts.complex_case))
    return _deadline("return", str(facts.attempt), facts.dispatched_at, limit, catalogue, with_checkpoints=False)


def reminder(deadline: Deadline, n: int, catalogue: Catalogue) -> Checkpoint:
    """The n-th 催办 (n >= 1): every ``reminder_every_working_days`` working days after the deadline."""
    # == SlaRules.reminder_due(due, n - 1, calendar), memoised
    at = _after_working_days(catalogue.calendar, deadline.due, catalogue.sla.reminder_every_working_days * n)
    return Checkpoint(deadline.stage, f"{REMINDER}_{n}", at, RANK_OVERDUE + 2 * n)


def _reminder_number(rank: int) -> int:
    """How many reminders a progress rank covers (0 before the first)."""
    return max((rank - RANK_OVERDUE) // 2, 0)


def checkpoints_after(deadline: Deadline, after_rank: int, catalogue: Catalogue) -> Iterator[Checkpoint]:
    """All checkpoints with rank > ``after_rank``, in time order; infinite once reminders start."""
    if not deadline.checkpoints:
        return
    fixed = [c for c in deadline.checkpoints if c.rank > after_rank]
    n = _reminder_number(after_rank) + 1
    while True:
        rem = reminder(deadline, n, catalogue)
        while fixed and fixed[0].rank < rem.rank:
            yield fixed.pop(0)
        yield rem
        n += 1


def next_checkpoint(deadline: Deadline, after_rank: int, catalogue: Catalogue) -> Checkpoint | None:
    """The first checkpoint still to come after ``after_rank`` (None for the return window)."""
    return next(checkpoints_after(deadline, after_rank, catalogue), None)


def next_reminder(deadline: Deadline, after: datetime, catalogue: Catalogue) -> Checkpoint:
    """The first 催办 strictly after the moment ``after`` (bounded: one working-day step at a time)."""
    after = as_local(after)
    n = max(catalogue.calendar.working_days_between(deadline.due, after), 1)
    while (rem := reminder(deadline, n, catalogue)).at <= after:
        n += 1
    while n > 1 and (prev := reminder(deadline, n - 1, catalogue)).at > after:
        n, rem = n - 1, prev
    return rem


def checkpoints_due(deadline: Deadline, after_rank: int, until: datetime, catalogue: Catalogue) -> list[Checkpoint]:
    """Checkpoints with rank > ``after_rank`` that are due at ``until`` (what a timer tick must announce)."""
    until = as_local(until)
    out = []
    for cp in checkpoints_after(deadline, after_rank, catalogue):
        if cp.at > until:
            break
        out.append(cp)
    return out
