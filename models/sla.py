"""Time limits (时限) per lifecycle stage, request type and urgency, and the schedule derived from them.

Rules are data (``config/data/sla.yaml``); this module gives them types and the lookup:
within a stage the *first* rule whose conditions all match wins, so a file lists its rules from
the most specific to the catch-all, like a firewall table a reviewer can read top-down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from models.domain import REQUEST_TYPES, URGENCIES
from models.workcalendar import WorkCalendar, as_local

STAGES: tuple[str, ...] = ("sign", "return", "handle")
CLOCKS: tuple[str, ...] = ("hours", "working_days")


@dataclass(frozen=True, slots=True)
class TimeLimit:
    """One rule: conditions (None = any) and the limit on a clock."""

    stage: str
    clock: str  # "hours" (24x7) or "working_days" (official calendar)
    amount: float  # hours (may be fractional: 0.25 = 15 minutes) or whole working days
    urgency: str | None = None
    request_type: str | None = None
    complex: bool | None = None
    source: str = ""

    def matches(self, request_type: str | None, urgency: str | None, complex_case: bool) -> bool:
        return (
            (self.urgency is None or self.urgency == urgency)
            and (self.request_type is None or self.request_type == request_type)
            and (self.complex is None or self.complex == complex_case)
        )

    def due(self, start: datetime, calendar: WorkCalendar) -> datetime:
        if self.clock == "hours":
            return calendar.deadline_hours(start, self.amount)
        return calendar.deadline_working_days(start, int(self.amount))

    def describe(self) -> str:
        if self.clock == "hours":
            minutes = round(self.amount * 60)
            return f"{minutes}分钟" if minutes < 60 else f"{self.amount:g}小时"
        return f"{int(self.amount)}个工作日"


@dataclass(frozen=True, slots=True)
class Schedule:
    """Milestones of one time limit for one ticket: warnings, due, reminders, censure."""

    limit: TimeLimit
    start: datetime
    due: datetime
    warnings: tuple[tuple[float, datetime], ...]
    censure_at: datetime  # 通报: this far past due, the agency goes on the public list

    def fraction_elapsed(self, now: datetime, calendar: WorkCalendar) -> float:
        """Share of the limit used at ``now`` (1.0 = due); working-day limits use working time."""
        if self.limit.clock == "hours":
            total = (self.due - self.start).total_seconds()
            used = (as_local(now) - self.start).total_seconds()
        else:
            total = calendar.working_time_between(self.start, self.due).total_seconds()
            used = calendar.working_time_between(self.start, now).total_seconds()
        if total <= 0:
            return 1.0 if as_local(now) >= self.due else 0.0
        return max(used, 0.0) / total


@dataclass(frozen=True, slots=True)
class SlaRules:
    """All time-limit rules plus the escalation policy."""

    limits: tuple[TimeLimit, ...]
    warning_fractions: tuple[float, ...] = (0.5, 0.75, 0.9)
    overdue_fraction: float = 1.0
    reminder_every_working_days: int = 1
    censure_after_working_days: int = 5
    max_dispatch_attempts: int = 3
    # 退单 after its window: refused (the agency must handle the ticket), or accepted and flagged late
    refuse_late_returns: bool = True

    def limit(
        self,
        stage: str,
        request_type: str | None = None,
        urgency: str | None = "一般",
        complex_case: bool = False,
    ) -> TimeLimit:
        """The rule that applies; raises LookupError when the table has no catch-all."""
        for rule in self.limits:
            if rule.stage == stage and rule.matches(request_type, urgency, complex_case):
                return rule
        raise LookupError(f"no time limit for stage={stage} request_type={request_type} urgency={urgency}")

    def schedule(
        self,
        stage: str,
        start: datetime,
        calendar: WorkCalendar,
        request_type: str | None = None,
        urgency: str | None = "一般",
        complex_case: bool = False,
    ) -> Schedule:
        rule = self.limit(stage, request_type, urgency, complex_case)
        begin = as_local(start)
        due = rule.due(begin, calendar)
        warnings = []
        for fraction in self.warning_fractions:
            if rule.clock == "hours":
                at = begin + (due - begin) * fraction
            else:
                total = calendar.working_time_between(begin, due)
                at = calendar.add_working_time(begin, total * fraction)
            warnings.append((fraction, at))
        censure = calendar.deadline_working_days(due, self.censure_after_working_days)
        return Schedule(rule, begin, due, tuple(warnings), censure)

    def reminder_due(self, due: datetime, reminders_sent: int, calendar: WorkCalendar) -> datetime:
        """When the next 催办 is due after the deadline passed and ``reminders_sent`` were sent."""
        return calendar.deadline_working_days(due, self.reminder_every_working_days * (reminders_sent + 1))

    def gaps(self) -> list[str]:
        """Combinations of stage x request type x urgency x complexity that no rule covers."""
        missing = []
        for stage in STAGES:
            for request_type in REQUEST_TYPES:
                for urgency in URGENCIES:
                    for complex_case in (False, True):
                        try:
                            self.limit(stage, request_type, urgency, complex_case)
                        except LookupError:
                            missing.append(
                                f"{stage}/{request_type}/{urgency}/{'复杂' if complex_case else '普通'}"
                            )
        return missing
