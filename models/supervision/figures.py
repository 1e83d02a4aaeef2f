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
from dataclasses import dataclass, field, fields
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


@dataclass(slots=True, kw_only=True)
class Counts:
    """What the figures count: for one ticket's stage (:class:`Stage`), or summed for an agency."""
    dispatched: int = 0
    signed_on_time: int = 0
    signed_late: int = 0
    resolved_on_time: int = 0
    resolved_late: int = 0
    returns: int = 0
    first_dispatched: int = 0  # settled tickets whose first dispatch came here
    first_time_right: int = 0
    handled: int = 0  # resolved handlings, and their working time in hundredths of a working day
    handling_centidays: int = 0


COUNTS = tuple(f.name for f in fields(Counts))


@dataclass(slots=True)
class AgencyFigures(Counts):
    agency: str
    overdue_tickets: set[str] = field(default_factory=set)
    open_overdue: list[OverdueTicket] = field(default_factory=list)
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
        if not self.handled:
            return None
        # rounded half up (四舍五入) in whole hundredths: in floats, 5.895 is 5.8949999... and came out 5.89
        return (2 * self.handling_centidays + self.handled) // (2 * self.handled) / 100

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
class Stage(Counts):
    """One ticket's contribution to one agency's figures, counted in the period its ``anchor`` falls in: the
    dispatch it belongs to (a handling counts where its dispatch does), or a reopening with no dispatch known.
    Nothing in it depends on the moment the figures are read (a stage still open is an :class:`OpenStage`), so the
    ledger keeps it (table ``figure_stages``) and a period's figures add stages up instead of replaying tickets."""
    ticket_id: str
    agency: str
    anchor: datetime
    late: bool = False  # a stage here was late: the ticket counts among the agency's overdue ones


@dataclass(frozen=True, slots=True)
class OpenStage:
    """A ticket's stage still open at an agency: its sign-for (dispatched, not signed) or its handling (signed,
    not resolved). What it adds to the figures depends on the moment they are read (:func:`settle`): late once
    ``due`` has passed, and a handling already judged late (an extension asked for after its deadline) is late
    at any moment. Everything else about the ticket is in its stages, which no longer change with time."""
    ticket_id: str
    stage: str  # sign | handle
    agency: str
    anchor: datetime  # the dispatch it belongs to, as its stage's
    due: datetime | None
    late: bool = False


@dataclass(slots=True)
class Replayed:
    """What one ticket's history contributes: its stages, and the stage still open at an agency, if any."""
    stages: list[Stage]
    pending: OpenStage | None


def settle(pending: OpenStage, now: datetime, calendar: Any) -> tuple[Stage | None, OverdueTicket | None]:
    """What an open stage adds as of ``now``: a late sign-for or handling (on its dispatch's stage, so it counts
    in that period), and the entry in the list of tickets open past a deadline."""
    past = pending.due is not None and now > pending.due
    if not past and not (pending.late and pending.stage == "handle"):
        return None, None
    late = Stage(pending.ticket_id, pending.agency, pending.anchor, late=True)
    if pending.stage == "sign":
        late.signed_late = 1
    else:
        late.resolved_late = 1
    overdue = (OverdueTicket(pending.ticket_id, pending.agency, pending.stage, pending.due,
                             calendar.whole_working_days(pending.due, now))
               if past and pending.due is not None else None)
    return late, overdue


def settle_all(pending: Iterable[OpenStage], now: datetime, calendar: Any
               ) -> tuple[list[Stage], list[OverdueTicket]]:
    """:func:`settle` for each open stage: the late stages they add as of ``now``, and the overdue entries."""
    late_stages: list[Stage] = []
    overdue: list[OverdueTicket] = []
    for open_stage in pending:
        late, past = settle(open_stage, now, calendar)
        if late is not None:
            late_stages.append(late)
        if past is not None:
            overdue.append(past)
    return late_stages, overdue


@dataclass(slots=True)
class _Dispatch:
    agency: str
    at: datetime
    sign_due: datetime | None
    signed: bool = False


@dataclass(slots=True)
class _Handling:
    agency: str
    anchor: datetime  # its dispatch's time: the handling counts in the period its dispatch does
    start: datetime  # signed or reopened: the handling time runs from here
    # the deadline had passed when the extension was asked for: supervision announced it overdue, and moving
    # the deadline afterwards does not make the handling on time (asked in time, a slow approval does)
    late: bool = False
    asked_in_time: bool | None = None  # of the latest extension request; None: none seen


def _due(facts: TicketFacts, stage: str, catalogue: Catalogue) -> datetime | None:
    return next((d.due for d in deadlines(facts, catalogue, checkpoints=False) if d.stage == stage), None)


def _in(moment: datetime, since: datetime | None, until: datetime | None) -> bool:
    """``moment`` in [since, until), the bounds aware (:func:`_bounds`). Aware moments compare whatever their zone:
    converting each one to Shanghai time took a tenth of a 30-day overview at 300,000 tickets a year."""
    m = moment if moment.tzinfo is not None else as_local(moment)
    return (since is None or m >= since) and (until is None or m < until)


def _bounds(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    return None if since is None else as_local(since), None if until is None else as_local(until)


def agency_figures(history: Iterable[tuple[TicketFacts, Sequence[Any]]], catalogue: Catalogue, *, now: datetime,
                   since: datetime | None = None, until: datetime | None = None,
                   alerts: Iterable[tuple[str | None, str, datetime, str | None]] = ()) -> dict[str, AgencyFigures]:
    """Figures per agency code. ``history``: (intake facts, the ticket's accepted events in order);
    ``alerts``: (agency, rule, raised_at, ticket_id). Only dispatches and alerts in [since, until) count; the list of
    tickets open past a deadline (``open_overdue``) is as of ``now``, whatever the period."""
    stages, pending = replay_all(history, catalogue)
    late, overdue = settle_all(pending, now, catalogue.calendar)
    return tally(stages + late, overdue, since=since, until=until, alerts=alerts)


def replay_all(history: Iterable[tuple[TicketFacts, Sequence[Any]]], catalogue: Catalogue
               ) -> tuple[list[Stage], list[OpenStage]]:
    """:func:`replay` for each ticket: all their stages, and their stages still open."""
    stages: list[Stage] = []
    pending: list[OpenStage] = []
    for intake, events in history:
        replayed = replay(intake, events, catalogue)
        stages.extend(replayed.stages)
        if replayed.pending is not None:
            pending.append(replayed.pending)
    return stages, pending


def tally(stages: Iterable[Stage], open_overdue: Iterable[OverdueTicket] = (), *, since: datetime | None = None,
          until: datetime | None = None,
          alerts: Iterable[tuple[str | None, str, datetime, str | None]] = ()) -> dict[str, AgencyFigures]:
    """Add up the stages anchored in [since, until), the alerts raised in it, and every open overdue stage."""
    out: dict[str, AgencyFigures] = {}
    since, until = _bounds(since, until)

    def fig(code: str) -> AgencyFigures:
        f = out.get(code)
        if f is None:
            f = out[code] = AgencyFigures(code)
        return f

    for s in stages:
        if not _in(s.anchor, since, until):
            continue
        f = fig(s.agency)
        f.dispatched += s.dispatched
        f.signed_on_time += s.signed_on_time
        f.signed_late += s.signed_late
        f.resolved_on_time += s.resolved_on_time
        f.resolved_late += s.resolved_late
        f.returns += s.returns
        f.first_dispatched += s.first_dispatched
        f.first_time_right += s.first_time_right
        f.handled += s.handled
        f.handling_centidays += s.handling_centidays
        if s.late:
            f.overdue_tickets.add(s.ticket_id)
    for o in open_overdue:
        fig(o.agency).open_overdue.append(o)
    for agency, rule, raised_at, ticket_id in alerts:
        if agency and _in(raised_at, since, until):
            f = fig(agency)
            f.alerts[rule] += 1
            if rule == REPEATED_COMPLAINT and ticket_id:  # a 重复件 is about its ticket, always named
                f.repeated_tickets.add(ticket_id)
    for f in out.values():  # due first; ties by ticket, so the list reads the same whichever way it was loaded
        f.open_overdue.sort(key=lambda o: (o.due, o.ticket_id, o.stage))
    return out


def replay(intake: TicketFacts, events: Sequence[Any], catalogue: Catalogue) -> Replayed:
    """Replay one ticket's accepted events (in the order the lifecycle accepted them) into its stages and its
    stage still open; nothing here depends on the moment (:func:`settle` does)."""
    calendar, day = catalogue.calendar, timedelta(days=1)
    state: TicketState | None = None
    facts = intake
    dispatch: _Dispatch | None = None
    handling: _Handling | None = None
    first: _Dispatch | None = None
    first_broken = False  # the first agency returned it or it was taken away from it
    resolved_by: str | None = None
    stages: dict[tuple[str, datetime], Stage] = {}
    pending: OpenStage | None = None

    def stage(agency: str, anchor: datetime) -> Stage:
        s = stages.get((agency, anchor))
        if s is None:
            s = stages[agency, anchor] = Stage(intake.ticket_id, agency, anchor)
        return s

    def judge_unsigned(d: _Dispatch, at: datetime) -> None:
        """A dispatch taken away unsigned at ``at``: late if its sign-for deadline had passed."""
        if d.sign_due is not None and at > d.sign_due:
            s = stage(d.agency, d.at)
            s.signed_late += 1
            s.late = True

    def resolved_late(h: _Handling) -> None:
        s = stage(h.agency, h.anchor)
        s.resolved_late += 1
        s.late = True

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
            dispatch = _Dispatch(state.agency, at, _due(facts, "sign", catalogue))
            stage(dispatch.agency, at).dispatched += 1
            if first is None:
                first = dispatch
        elif kind == "signed" and dispatch is not None:
            dispatch.signed = True
            on_time = dispatch.sign_due is None or at <= dispatch.sign_due
            s = stage(dispatch.agency, dispatch.at)
            s.signed_on_time += on_time
            s.signed_late += not on_time
            s.late = s.late or not on_time
            handling = _Handling(dispatch.agency, dispatch.at, at)
        elif kind in ("returned", "reassigned"):
            if dispatch is not None:
                if kind == "returned":
                    stage(dispatch.agency, dispatch.at).returns += 1
                if not dispatch.signed:
                    judge_unsigned(dispatch, at)
                if first is not None and dispatch.agency == first.agency:
                    first_broken = True
            if handling is not None:  # an open handling taken away: late if its deadline had passed
                due = _due(before, "handle", catalogue)
                if handling.late or (due is not None and at > due):
                    resolved_late(handling)
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
            on_time = not handling.late and (due is None or at <= due)
            s = stage(handling.agency, handling.anchor)
            s.resolved_on_time += on_time
            s.resolved_late += not on_time
            s.late = s.late or not on_time
            s.handled += 1
            s.handling_centidays += round(calendar.working_time_between(handling.start, at) / day * 100)
            handling = None
        elif kind == "reopened" and state.agency:
            handling = _Handling(state.agency, dispatch.at if dispatch else at, at)
    # The stage still open at an agency, judged when the figures are read
    if state is not None and state.status == Status.DISPATCHED and dispatch is not None and not dispatch.signed:
        pending = OpenStage(intake.ticket_id, "sign", dispatch.agency, dispatch.at, dispatch.sign_due)
    if state is not None and state.status == Status.SIGNED and handling is not None:
        pending = OpenStage(intake.ticket_id, "handle", handling.agency, handling.anchor,
                            _due(facts, "handle", catalogue), handling.late)
    # First-time right: judged once the ticket is settled (resolved, or the first agency lost it)
    if first is not None and (first_broken or resolved_by is not None):
        s = stage(first.agency, first.at)
        s.first_dispatched += 1
        s.first_time_right += (not first_broken and resolved_by == first.agency)
    return Replayed(list(stages.values()), pending)


def history_of(intake: TicketFacts, events: Iterable[Any]) -> tuple[TicketFacts, list[Any]]:
    """(intake, events in the order the lifecycle accepted them). Not sorted by ``occurred_at``: an agency
    supplies that time, and a clock running behind put its sign-for before the dispatch it answered, which
    the replay then refused (0% on time for a ticket signed in time)."""
    return intake, list(events)


__all__ = ["AgencyFigures", "OpenStage", "OverdueTicket", "Replayed", "Stage", "agency_figures",
           "history_of", "replay", "replay_all", "settle", "settle_all", "tally"]
