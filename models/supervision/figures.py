"""Per-agency figures supervisors are judged by, computed from a ticket's history (pure, no I/O).

Each ticket's accepted lifecycle events are replayed through the state machine (``models.lifecycle.apply``)
and measured against the same deadlines the supervision stream uses (:func:`deadlines`), so a report and
the alerts never disagree about what was late. Definitions (each dispatch and handling is attributed to
the agency it went to, and to the period its dispatch falls in):

* **dispatched** — dispatches (router or dispatcher, any attempt) to the agency;
* **sign-for on time** — signed by the sign-for deadline / dispatches whose sign-for is decided (signed, or
  the deadline passed unsigned — also when it was then returned or reassigned late). A dispatch returned or
  reassigned within the sign-for limit is not counted either way;
* **resolution on time** — resolved by the handling deadline (approved extensions included, unless asked for
  after the deadline had passed: the handling was overdue then, as supervision announced) / handlings that
  are decided (resolved, or still open past the deadline); each reopen is a new handling;
* **return rate** — returns (退单) by the agency / dispatches to it;
* **first-time right** — tickets whose *first* dispatch went to the agency and that it resolved without a
  return or reassignment / such tickets that are settled (resolved, or taken away from it);
* **overdue** — tickets with at least one late stage at the agency (late sign-for or late resolution,
  including stages still open past their deadline); ``open_overdue`` lists the ones still open now;
* **handling time** — working days (``WorkCalendar.working_time_between``) from signature (or reopen) to
  resolution, averaged;
* **alerts** — alerts raised about the agency, by rule; **repeated complaints** (重复件) — the tickets among
  them that raised a repeated_complaint alert (one ticket may raise two: same caller, same place+matter).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from models.directory import Catalogue
from models.lifecycle import Outcome, Status, TicketState, apply
from models.supervision.alerts import REPEATED_COMPLAINT
from models.supervision.deadlines import deadlines
from models.supervision.facts import TicketFacts
from models.workcalendar import as_local


@dataclass(frozen=True, slots=True)
class OverdueTicket:
    ticket_id: str
    agency: str
    stage: str  # sign | handle
    due: datetime
    overdue_working_days: int


@dataclass(slots=True)
class AgencyFigures:
    agency: str
    dispatched: int = 0
    signed_on_time: int = 0
    signed_late: int = 0
    resolved_on_time: int = 0
    resolved_late: int = 0
    returns: int = 0
    first_dispatched: int = 0  # settled tickets whose first dispatch came here
    first_time_right: int = 0
    overdue_tickets: set[str] = field(default_factory=set)
    open_overdue: list[OverdueTicket] = field(default_factory=list)
    handling_days: list[float] = field(default_factory=list)
    alerts: Counter[str] = field(default_factory=Counter)
    # 重复件 are tickets: one that repeats both its caller and its place+matter raises two alerts
    repeated_tickets: set[str] = field(default_factory=set)

    @staticmethod
    def _rate(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    @property
    def sign_on_time_rate(self) -> float | None:
        return self._rate(self.signed_on_time, self.signed_on_time + self.signed_late)

    @property
    def resolution_on_time_rate(self) -> float | None:
        return self._rate(self.resolved_on_time, self.resolved_on_time + self.resolved_late)

    @property
    def return_rate(self) -> float | None:
        return self._rate(self.returns, self.dispatched)

    @property
    def first_time_right_rate(self) -> float | None:
        return self._rate(self.first_time_right, self.first_dispatched)

    @property
    def overdue(self) -> int:
        return len(self.overdue_tickets)

    @property
    def repeated_complaints(self) -> int:
        return len(self.repeated_tickets)

    @property
    def average_handling_days(self) -> float | None:
        return round(sum(self.handling_days) / len(self.handling_days), 2) if self.handling_days else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "agency": self.agency, "dispatched": self.dispatched, "sign_on_time_rate": self.sign_on_time_rate,
            "signed_on_time": self.signed_on_time, "signed_late": self.signed_late,
            "resolution_on_time_rate": self.resolution_on_time_rate, "resolved_on_time": self.resolved_on_time,
            "resolved_late": self.resolved_late, "returns": self.returns, "return_rate": self.return_rate,
            "first_time_right_rate": self.first_time_right_rate, "first_time_right": self.first_time_right,
            "first_dispatched": self.first_dispatched, "overdue": self.overdue,
            "average_handling_working_days": self.average_handling_days,
            "repeated_complaints": self.repeated_complaints, "alerts": dict(sorted(self.alerts.items())),
            "open_overdue": [{"ticket_id": o.ticket_id, "stage": o.stage, "due": o.due.isoformat(),
                              "overdue_working_days": o.overdue_working_days} for o in self.open_overdue],
        }


@dataclass(slots=True)
class _Dispatch:
    agency: str
    at: datetime
    sign_due: datetime | None
    counted: bool  # inside the period
    signed: bool = False


@dataclass(slots=True)
class _Handling:
    agency: str
    start: datetime
    counted: bool
    # the deadline had passed when the extension was asked for: supervision announced it overdue, and moving
    # the deadline afterwards does not make the handling on time (asked in time, a slow approval does)
    late: bool = False
    asked_in_time: bool | None = None  # of the latest extension request; None: none seen


def _due(facts: TicketFacts, stage: str, catalogue: Catalogue) -> datetime | None:
    return next((d.due for d in deadlines(facts, catalogue, checkpoints=False) if d.stage == stage), None)


def _in(moment: datetime, since: datetime | None, until: datetime | None) -> bool:
    m = as_local(moment)
    return (since is None or m >= as_local(since)) and (until is None or m < as_local(until))


def agency_figures(history: Iterable[tuple[TicketFacts, Sequence[Any]]], catalogue: Catalogue, *, now: datetime,
                   since: datetime | None = None, until: datetime | None = None,
                   alerts: Iterable[tuple[str | None, str, datetime, str | None]] = ()) -> dict[str, AgencyFigures]:
    """Figures per agency code. ``history``: (intake facts, the ticket's accepted events in order);
    ``alerts``: (agency, rule, raised_at, ticket_id). Only dispatches and alerts in [since, until) count; the list of
    tickets open past a deadline (``open_overdue``) is as of ``now``, whatever the period."""
    out: dict[str, AgencyFigures] = {}

    def fig(code: str) -> AgencyFigures:
        f = out.get(code)
        if f is None:
            f = out[code] = AgencyFigures(code)
        return f

    for intake, events in history:
        _replay(intake, events, catalogue, now, since, until, fig)
    for agency, rule, raised_at, ticket_id in alerts:
        if agency and _in(raised_at, since, until):
            f = fig(agency)
            f.alerts[rule] += 1
            if rule == REPEATED_COMPLAINT and ticket_id:  # a 重复件 is about its ticket, always named
                f.repeated_tickets.add(ticket_id)
    for f in out.values():
        f.open_overdue.sort(key=lambda o: o.due)
    return out


def _replay(intake: TicketFacts, events: Sequence[Any], catalogue: Catalogue, now: datetime,
            since: datetime | None, until: datetime | None, fig: Any) -> None:
    calendar, day = catalogue.calendar, timedelta(days=1)
    state: TicketState | None = None
    facts = intake
    dispatch: _Dispatch | None = None
    handling: _Handling | None = None
    first: _Dispatch | None = None
    first_broken = False  # the first agency returned it or it was taken away from it
    resolved_by: str | None = None

    def late(agency: str, counted: bool) -> None:
        if counted:
            fig(agency).overdue_tickets.add(intake.ticket_id)

    def judge_unsigned(d: _Dispatch, at: datetime) -> None:
        """A dispatch that ends unsigned at ``at``: late if its sign-for deadline had passed."""
        if d.sign_due is not None and at > d.sign_due and d.counted:
            fig(d.agency).signed_late += 1
            late(d.agency, True)

    for ev in events:
        before = facts
        outcome = apply(state, ev, max_attempts=catalogue.sla.max_dispatch_attempts,
                        known_agencies=catalogue.agencies)
        if not isinstance(outcome, Outcome) or outcome.duplicate:
            continue
        state = outcome.state
        facts = facts.with_state(state)
        at, kind = as_local(ev.occurred_at), ev.type
        if kind == "routed" and state.status == Status.DISPATCHED and state.agency:
            dispatch = _Dispatch(state.agency, at, _due(facts, "sign", catalogue), _in(at, since, until))
            if dispatch.counted:
                fig(state.agency).dispatched += 1
            if first is None:
                first = dispatch
        elif kind == "signed" and dispatch is not None:
            dispatch.signed = True
            if dispatch.counted:
                on_time = dispatch.sign_due is None or at <= dispatch.sign_due
                fig(dispatch.agency).signed_on_time += on_time
                fig(dispatch.agency).signed_late += not on_time
                if not on_time:
                    late(dispatch.agency, True)
            handling = _Handling(dispatch.agency, at, dispatch.counted)
        elif kind in ("returned", "reassigned"):
            if dispatch is not None:
                if kind == "returned" and dispatch.counted:
                    fig(dispatch.agency).returns += 1
                if not dispatch.signed:
                    judge_unsigned(dispatch, at)
                if first is not None and dispatch.agency == first.agency:
                    first_broken = True
            if handling is not None:  # an open handling taken away: late if its deadline had passed
                due = _due(before, "handle", catalogue)
                if (handling.late or (due is not None and at > due)) and handling.counted:
                    fig(handling.agency).resolved_late += 1
                    late(handling.agency, True)
            dispatch, handling = None, None
        elif kind == "extension_requested" and handling is not None:
            due = _due(before, "handle", catalogue)
            handling.asked_in_time = due is None or at <= due
        elif kind == "extension_approved" and handling is not None:
            due = _due(before, "handle", catalogue)
            in_time = handling.asked_in_time if handling.asked_in_time is not None else due is None or at <= due
            handling.late = handling.late or not in_time  # too late to extend: the stage was already overdue
        elif kind == "resolved" and handling is not None:
            due = _due(before, "handle", catalogue)
            resolved_by = handling.agency
            if handling.counted:
                on_time = not handling.late and (due is None or at <= due)
                fig(handling.agency).resolved_on_time += on_time
                fig(handling.agency).resolved_late += not on_time
                if not on_time:
                    late(handling.agency, True)
                fig(handling.agency).handling_days.append(
                    round(calendar.working_time_between(handling.start, at) / day, 2))
            handling = None
        elif kind == "reopened" and state.agency:
            handling = _Handling(state.agency, at, dispatch.counted if dispatch else _in(at, since, until))
    # Stages still open now
    if state is not None and state.status == Status.DISPATCHED and dispatch is not None and not dispatch.signed:
        due = dispatch.sign_due
        if due is not None and now > due:
            judge_unsigned(dispatch, now)
            fig(dispatch.agency).open_overdue.append(OverdueTicket(
                intake.ticket_id, dispatch.agency, "sign", due, calendar.whole_working_days(due, now)))
    if state is not None and state.status == Status.SIGNED and handling is not None:
        due = _due(facts, "handle", catalogue)
        if handling.late and handling.counted and not (due is not None and now > due):
            fig(handling.agency).resolved_late += 1  # decided late already, though the extended deadline runs
            late(handling.agency, True)
        if due is not None and now > due:
            if handling.counted:
                fig(handling.agency).resolved_late += 1
                late(handling.agency, True)
            fig(handling.agency).open_overdue.append(OverdueTicket(
                intake.ticket_id, handling.agency, "handle", due, calendar.whole_working_days(due, now)))
    # First-time right: judged once the ticket is settled (resolved, or the first agency lost it)
    if first is not None and first.counted:
        settled = first_broken or resolved_by is not None
        if settled:
            fig(first.agency).first_dispatched += 1
            fig(first.agency).first_time_right += (not first_broken and resolved_by == first.agency)


def history_of(intake: TicketFacts, events: Iterable[Any]) -> tuple[TicketFacts, list[Any]]:
    """(intake, events in the order the lifecycle accepted them). Not sorted by ``occurred_at``: an agency
    supplies that time, and a clock running behind put its sign-for before the dispatch it answered, which
    the replay then refused (0% on time for a ticket signed in time)."""
    return intake, list(events)


__all__ = ["AgencyFigures", "OverdueTicket", "agency_figures", "history_of"]
