"""Supervisors' figures from the ledger: stored stages, replays of the live tickets, alerts.

The arithmetic is :mod:`models.supervision.figures` (tested on its own): a ticket's history replays into its
stages (its contributions to agencies' figures, each counted in the period of its dispatch) and its stage still
open at an agency, if any, which is judged late or not when the figures are read. Replaying every ticket of a
period on each request cost ~0.35 ms a ticket (8 s for a 30-day overview at 300,000 tickets a year), so
:func:`restage` stores both (``figure_stages``, ``figure_open``) in the transaction that records a ticket's
lifecycle events (:meth:`streams.db.Ledger.record_events`). A period's figures are then the stored stages anchored
in it, the open stages judged as of now, and the replay of the *live* tickets only (``tickets.figures_live``:
not stored, or changed since; a ticket just routed stays live until its agency's next step).
This module also shapes the daily digest and the CSV export. Blocking SQL: meant for the CLI, the console and
the ledger's thread, not for agents.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, case, func, insert, literal, null, select, text, update
from sqlalchemy.orm import Session

from models import ledger as t
from models.directory import Catalogue
from models.events import parse_event
from models.lifecycle import Outcome, Status, TicketState, apply
from models.supervision import RULE_NAMES, TicketFacts
from models.supervision.figures import (
    COUNTS,
    AgencyFigures,
    OpenStage,
    OverdueTicket,
    Stage,
    history_of,
    replay,
    replay_all,
    settle_all,
    tally,
)
from models.tickets import EARLIEST, LATEST, Rejection
from models.workcalendar import TZ, as_local
from streams.db import Ledger, chunks, drop_figures, lock_tickets

log = logging.getLogger(__name__)


def intake_facts(row: t.Ticket) -> TicketFacts:
    return TicketFacts(ticket_id=row.id, received_at=row.received_at, request_type=row.request_type,
                       urgency=row.urgency or "一般", matter=row.matter, address=row.address,
                       caller_phone=row.caller_phone, complex_case=bool(row.complex_case))


# the ticket columns intake_facts reads: plain rows, not ORM objects (a report replays thousands of tickets)
_INTAKE_COLUMNS = (t.Ticket.id, t.Ticket.received_at, t.Ticket.request_type, t.Ticket.urgency, t.Ticket.matter,
                   t.Ticket.address, t.Ticket.caller_phone, t.Ticket.complex_case)
_fs = t.FigureStage

# spelt as the partial index ix_tickets_figures_live says it: SQLite uses that index only for the same term
# (``figures_live = 1`` or ``IS 1``, as SQLAlchemy writes a boolean, scan the whole table)
LIVE = text("tickets.figures_live")


def histories_of(db: Session | Connection, ticket_ids: Iterable[str]) -> list[tuple[TicketFacts, list[Any]]]:
    """The tickets' intake facts with all their accepted events, in the order the lifecycle accepted them."""
    e_ = t.TicketEvent
    out = []
    for chunk in chunks(sorted(ticket_ids)):
        rows = {r.id: r for r in db.execute(select(*_INTAKE_COLUMNS).where(t.Ticket.id.in_(chunk)))}
        events: dict[str, list[tuple[datetime, int | None, Any]]] = {tid: [] for tid in rows}
        for tid, recorded_at, position, payload, occurred_at in db.execute(
                select(e_.ticket_id, e_.recorded_at, e_.batch_position, e_.payload, e_.occurred_at)
                .where(e_.ticket_id.in_(chunk), e_.accepted).order_by(*t.ACCEPTED_ORDER)):
            # a payload stored without occurred_at (before the lifecycle wrote its stamp in) happened when the
            # row says, as the lifecycle judged it: not at the time of this replay
            parsed = parse_event(payload, now=occurred_at)
            if tid in events and not isinstance(parsed, Rejection):
                events[tid].append((recorded_at, position, parsed))
        out.extend(history_of(intake_facts(rows[tid]), accepted_order(evs)) for tid, evs in events.items())
    return out


def load_histories(ledger: Ledger, since: datetime | None = None) -> list[tuple[TicketFacts, list[Any]]]:
    """Tickets with an accepted event since ``since`` (all when None) plus every one not resolved or closed,
    with all their accepted events (a ticket is replayed from its first event, whatever the period)."""
    done = (Status.RESOLVED, Status.CLOSED)
    e_ = t.TicketEvent
    with ledger.session() as s:
        q = select(e_.ticket_id).where(e_.accepted).distinct()
        if since is not None:
            q = q.where(e_.occurred_at >= since)
        ids = set(s.scalars(q)) | set(s.scalars(select(t.Ticket.id).where(t.Ticket.status.not_in(done))))
        return histories_of(s, ids)


def accepted_order(events: list[tuple[datetime, int | None, Any]]) -> list[Any]:
    """A ticket's events in the order the lifecycle accepted them, from (recorded_at, batch_position, event) in
    recorded order.

    One lifecycle batch stores its events with one ``recorded_at``. Rows stored since migration 0008 keep
    their place in the batch, so they arrive here in order and are taken as they come. Older rows have
    no place, and ordered by ``occurred_at`` a sign-for stamped by an agency whose clock runs behind comes
    before the routing it answers, and the replay refuses it (a ticket signed in time reported unsigned and
    overdue): within such a batch, the next event is the earliest (by ``occurred_at``) the state machine
    accepts."""
    out: list[Any] = []
    state: TicketState | None = None
    behind = False  # ``state`` lags ``out``: batches with places were taken without replaying them
    for _at, group in groupby(events, key=lambda item: item[0]):
        todo = list(group)
        if all(position is not None for _, position, _ in todo):
            out.extend(ev for _, _, ev in todo)
            behind = True
            continue
        if behind:  # an unplaced batch after placed ones (not seen in practice): catch the state up first
            state, behind = _state_after(out), False
        evs = [ev for _, _, ev in todo]
        while evs:
            fits = next(((i, o) for i, ev in enumerate(evs) if isinstance(o := apply(state, ev), Outcome)), None)
            if fits is None:  # none fits any more: left in their order, for the replay to refuse as before
                out.extend(evs)
                break
            out.append(evs.pop(fits[0]))
            state = fits[1].state
    return out


def _state_after(events: list[Any]) -> TicketState | None:
    state: TicketState | None = None
    for ev in events:
        if isinstance(o := apply(state, ev), Outcome):
            state = o.state
    return state


@contextmanager
def read_snapshot(ledger: Ledger) -> Iterator[Connection]:
    """One consistent view of the ledger across several reads. A ticket moves between the stored stages and the
    live set in one transaction; read by two statements at two moments, it could count twice or not at all."""
    with ledger.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        elif conn.dialect.name == "sqlite":
            # pysqlite opens a transaction only before a write: without it each SELECT sees its own moment
            conn.exec_driver_sql("BEGIN")
        try:
            yield conn
        finally:
            conn.rollback()


def load_stages(ledger: Ledger, catalogue: Catalogue, *, now: datetime, since: datetime | None = None,
                until: datetime | None = None, split: Sequence[datetime] = ()
                ) -> tuple[list[Stage], list[OverdueTicket]]:
    """The stages that count in [since, until) or near it (the stored ones added up by the database, the open stages
    judged as of ``now``, and every stage of the live tickets, replayed), and the stages open past their deadline
    as of ``now``. The stored ones come as sums per agency and period between ``since``, ``until`` and the bounds
    in ``split`` (the days of a daily series): what :func:`tally` adds up, without a row per stage."""
    fo = t.FigureOpen
    with read_snapshot(ledger) as conn:
        live = list(conn.scalars(select(t.Ticket.id).where(LIVE)))
        stages = stored_stages(conn, since, until, split)
        # every open stage, whatever the period: the list of tickets open past a deadline is as of now (its
        # deadlines shown in Shanghai time, as the replay gives them)
        pending = [OpenStage(tid, stage, agency, anchor, None if due is None else as_local(due), late)
                   for tid, stage, agency, anchor, due, late in conn.execute(
                       select(fo.ticket_id, fo.stage, fo.agency, fo.anchor_at, fo.due_at, fo.late))]
        histories = histories_of(conn, live)
    live_stages, live_pending = replay_all(histories, catalogue)
    late, overdue = settle_all(pending + live_pending, now, catalogue.calendar)
    return stages + live_stages + late, overdue


def stored_stages(conn: Connection, since: datetime | None, until: datetime | None,
                  split: Sequence[datetime] = ()) -> list[Stage]:
    """The stored stages anchored in [since, until), added up by the database: one :class:`Stage` per agency and
    period (between consecutive bounds of ``since`` and ``split``) with the sums of its stages that were on time,
    and one per agency, period and late ticket with that ticket's, which names it among the agency's overdue ones.
    Each is anchored at its earliest dispatch. :func:`tally` and the daily series add these up as they would the
    stages themselves (a period never straddles ``since``, ``until`` or a bound of ``split``). Reading every stage of
    a 30-day overview was half its time at 300,000 tickets a year (session 22)."""
    bounds = sorted({b for b in (since, *split) if b is not None and (since is None or b >= since)
                     and (until is None or b < until)})
    # grouped outside the CASE, as in received_counts: PostgreSQL sees its parameters as another expression
    period = case(*((_fs.anchor_at >= b, i) for i, b in reversed(list(enumerate(bounds)))), else_=-1) \
        if bounds else literal(0)
    late_ticket = case((_fs.late, _fs.ticket_id), else_=null())
    q = select(period.label("period"), late_ticket.label("late_ticket"), _fs.agency, _fs.anchor_at,
               *(getattr(_fs, c) for c in COUNTS))
    if since is not None:
        q = q.where(_fs.anchor_at >= since)
    if until is not None:
        q = q.where(_fs.anchor_at < until)
    rows = q.subquery()
    sums = conn.execute(select(rows.c.late_ticket, rows.c.agency, func.min(rows.c.anchor_at),
                               *(func.sum(rows.c[c]) for c in COUNTS))
                        .group_by(rows.c.agency, rows.c.period, rows.c.late_ticket))
    return [Stage(tid or "", agency, anchor, late=tid is not None,
                  **dict(zip(COUNTS, (int(n) for n in counts), strict=True)))
            for tid, agency, anchor, *counts in sums]


def restage(db: Session | Connection, catalogue: Catalogue, ticket_ids: list[str]) -> int:
    """Replay ``ticket_ids`` and store their stages and open stage, taking them out of the live set. Runs in the
    caller's transaction, which holds the tickets' rows (a lifecycle batch in :meth:`Ledger.record_events`, or
    :func:`restage_all`): the history read here is the one stored. Returns how many were stored.

    A ticket that fails to replay stays live (its figures are then computed on each request, as before)."""
    tickets, fo = t.Ticket.__table__, t.FigureOpen
    stored: set[str] = set()
    rows: list[dict[str, Any]] = []
    open_rows: list[dict[str, Any]] = []
    ids = sorted(set(ticket_ids))
    for chunk in chunks(ids):
        # a write first: on SQLite it takes the write lock, so the history read next is the one stored
        drop_figures(db, chunk)
        for intake, events in histories_of(db, chunk):
            try:
                replayed = replay(intake, events, catalogue)
            except Exception:  # a defect must not fail the lifecycle's batch: the ticket stays live
                log.exception("figures: could not replay ticket %s; it stays live", intake.ticket_id)
                continue
            stored.add(intake.ticket_id)
            rows.extend(_stage_row(position, st) for position, st in enumerate(replayed.stages))
            if (p := replayed.pending) is not None:
                open_rows.append({"ticket_id": p.ticket_id, "stage": p.stage, "agency": p.agency,
                                  "anchor_at": p.anchor, "due_at": p.due, "late": p.late})
    if rows:
        db.execute(insert(_fs), rows)
    if open_rows:
        db.execute(insert(fo), open_rows)
    for chunk in chunks(ids):
        for value in (True, False):
            flagged = [tid for tid in chunk if (tid in stored) is not value]
            if flagged:  # the ticket's version (updated_at) stays: nothing a person sees changed
                db.execute(update(tickets).where(tickets.c.id.in_(flagged))
                           .values(figures_live=value, updated_at=tickets.c.updated_at))
    return len(stored)


def _stage_row(position: int, st: Stage) -> dict[str, Any]:
    return {"ticket_id": st.ticket_id, "position": position, "agency": st.agency, "anchor_at": st.anchor,
            "late": st.late, **{c: getattr(st, c) for c in COUNTS}}


def restager(catalogue: Catalogue) -> Callable[[Session, list[str]], int]:
    """:func:`restage` with the catalogue, for :meth:`Ledger.record_events`."""
    return lambda session, ticket_ids: restage(session, catalogue, ticket_ids)


def restage_all(ledger: Ledger, catalogue: Catalogue, *, every: bool = False,
                progress: Callable[[int], Any] | None = None) -> tuple[int, int]:
    """Store the stages of every live ticket (``every``: of every ticket with events, e.g. after the time limits
    or the calendar changed, since stored stages keep the deadlines they were judged by). In batches of
    :data:`streams.db.CHUNK` tickets, one transaction each. Returns (stored, tickets looked at)."""
    with ledger.session() as s:
        q = select(t.Ticket.id)
        q = q.where(t.Ticket.id.in_(select(t.TicketEvent.ticket_id).distinct())) if every else q.where(LIVE)
        ids = sorted(s.scalars(q))
    stored = 0
    for chunk in chunks(ids):
        with ledger.session() as s:
            lock_tickets(s, chunk)  # as record_events: hold the rows, in key order
            stored += restage(s, catalogue, chunk)
        if progress is not None:
            progress(len(chunk))
    return stored, len(ids)


def load_alert_rules(ledger: Ledger, since: datetime | None = None, until: datetime | None = None
                     ) -> list[tuple[str | None, str, datetime, str | None]]:
    """(agency, rule, raised_at, ticket_id) of the alerts raised in [since, until)."""
    with ledger.session() as s:
        q = select(t.Alert.agency, t.Alert.rule, t.Alert.raised_at, t.Alert.ticket_id)
        if since is not None:
            q = q.where(t.Alert.raised_at >= since)
        if until is not None:
            q = q.where(t.Alert.raised_at < until)
        return [(a, r, at, tid) for a, r, at, tid in s.execute(q)]


def figures(ledger: Ledger, catalogue: Catalogue, *, now: datetime, since: datetime | None = None,
            until: datetime | None = None, agency: str | None = None) -> dict[str, AgencyFigures]:
    stages, overdue = load_stages(ledger, catalogue, now=now, since=since, until=until)
    out = tally(stages, overdue, since=since, until=until, alerts=load_alert_rules(ledger, since, until))
    return {code: f for code, f in sorted(out.items()) if agency is None or code == agency}


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=TZ)
    return start, start + timedelta(days=1)


def period_start(now: datetime, days: int | None) -> datetime | None:
    """Where "the last ``days`` days" (近7天) start at ``now``: Shanghai midnight ``days - 1`` days before today,
    today counting as one. So the figures cover the calendar days the daily chart and ``report --since`` show,
    and do not slide during the day. None (everything) without a period."""
    if not days:
        return None
    return day_bounds(as_local(now).date() - timedelta(days=days - 1))[0]


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """A calendar month (月度考核) in Shanghai time: from its first day's midnight to the next month's, which is not
    included. ValueError for a month that is not one, or one outside 2000-2099 (no hotline stamped a time there)."""
    if not EARLIEST.year <= year < LATEST.year or not 1 <= month <= 12:
        raise ValueError(f"{year:04d}-{month:02d} is not a month between {EARLIEST.year} and {LATEST.year - 1}")
    following = date(year + month // 12, month % 12 + 1, 1)
    return day_bounds(date(year, month, 1))[0], day_bounds(following)[0]


def parse_month(value: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` (or ``YYYY-M``, as ``report --month`` always took it) as :func:`month_bounds`; ValueError when
    it is not one."""
    found = re.fullmatch(r"([0-9]{4})-([0-9]{1,2})", value.strip())
    if found is None:
        raise ValueError(f"{value!r} is not a month (YYYY-MM)")
    return month_bounds(int(found[1]), int(found[2]))


def parse_day(value: str) -> date:
    """``YYYY-MM-DD`` in 2000-2099, else ValueError (also for the other forms ``date.fromisoformat`` takes)."""
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value.strip()) is None:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)")
    day = date.fromisoformat(value.strip())
    if not EARLIEST.year <= day.year < LATEST.year:
        raise ValueError(f"{value!r} is not between {EARLIEST.year} and {LATEST.year - 1}")
    return day


def this_month(now: datetime) -> tuple[datetime, None]:
    """本月: from the first of ``now``'s month (Shanghai) to now."""
    today = as_local(now).date()
    return month_bounds(today.year, today.month)[0], None


def last_month(now: datetime) -> tuple[datetime, datetime]:
    """上月: the last whole calendar month before ``now``'s (Shanghai)."""
    first = as_local(now).date().replace(day=1) - timedelta(days=1)
    return month_bounds(first.year, first.month)


def period_dates(since: datetime | None, until: datetime | None, now: datetime) -> str:
    """The calendar days a period covers, as a supervisor reads them: "2026-11-01 至 2026-11-30" (``until`` is not
    included; an open end is today). Empty for all time."""
    if since is None:
        return ""
    last = as_local(until - timedelta(microseconds=1)).date() if until is not None else as_local(now).date()
    return f"{as_local(since):%Y-%m-%d} 至 {last:%Y-%m-%d}"


def percent(rate: float | None) -> str:
    """A rate in whole percents, except that a rate strictly between 0 and 1 never reads 0% or 100%: 299 of
    300 signed on time is 99.67%, not a perfect score next to the late one (rates keep 4 decimals, so two
    decimals of a percent show them exactly)."""
    if rate is None:
        return "—"
    text = f"{rate:.0%}"
    return f"{rate:.2%}" if 0 < rate < 1 and text in ("0%", "100%") else text


# the figures' spreadsheet columns: (AgencyFigures.to_dict key, header a supervisor reads)
CSV_COLUMNS = (
    ("agency", "单位代码"), ("name", "单位名称"), ("dispatched", "派单量"), ("signed_on_time", "按时签收"),
    ("signed_late", "超时签收"), ("sign_on_time_rate", "按时签收率"), ("resolved_on_time", "按时办结"),
    ("resolved_late", "超时办结"), ("resolution_on_time_rate", "按时办结率"), ("returns", "退单次数"),
    ("return_rate", "退单率"), ("first_time_right", "一次派准"), ("first_dispatched", "首次派单"),
    ("first_time_right_rate", "一次派准率"), ("overdue", "逾期件数"),
    ("average_handling_working_days", "平均办理工作日"), ("repeated_complaints", "重复件"), ("alerts", "预警数"),
)


def figures_csv(figs: dict[str, AgencyFigures], catalogue: Catalogue) -> str:
    """The per-agency figures as CSV with Chinese headers, one row per agency (for 月度考核 in a spreadsheet):
    rates as the pages show them (a spreadsheet reads "99.67%" as a number), an empty cell where a rate has
    nothing to count yet, alerts as their total."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180, as spreadsheets write it
    writer.writerow([header for _, header in CSV_COLUMNS])
    for code, f in figs.items():
        row = f.to_dict()
        agency = catalogue.agencies.get(code)
        row["name"], row["alerts"] = agency.name if agency else "", sum(f.alerts.values())
        writer.writerow([
            ("" if row[key] is None else percent(row[key])) if key.endswith("_rate")
            else "" if row[key] is None else row[key]
            for key, _ in CSV_COLUMNS])
    return out.getvalue()


def digest_text(figs: dict[str, AgencyFigures], catalogue: Catalogue, day: date) -> str:
    """The daily digest: per agency, yesterday's figures and the tickets open past a deadline now."""
    lines = [f"12345 督办日报 {day.isoformat()}（{len(figs)} 个单位）", ""]
    if not figs:
        lines.append("昨日无派单、无逾期在办工单。")
    for code, f in figs.items():
        agency = catalogue.agencies.get(code)
        lines.append(f"【{agency.name if agency else code}】{code}")
        lines.append(f"  派单 {f.dispatched}，按时签收率 {percent(f.sign_on_time_rate)}，按时办结率 "
                     f"{percent(f.resolution_on_time_rate)}，退单率 {percent(f.return_rate)}，一次派准率 "
                     f"{percent(f.first_time_right_rate)}，逾期 {f.overdue} 件，重复件 "
                     f"{f.repeated_complaints} 件")
        if f.alerts:
            lines.append("  预警：" + "，".join(f"{RULE_NAMES.get(rule, rule)} {n}" for rule, n in sorted(f.alerts.items())))
        if f.open_overdue:
            lines.append(f"  逾期在办 {len(f.open_overdue)} 件：")
            stage = {"sign": "签收", "handle": "办理"}
            for o in f.open_overdue[:20]:
                lines.append(f"    {o.ticket_id} {stage.get(o.stage, o.stage)}截止 {o.due:%m-%d %H:%M}，"
                             f"已逾期{f' {o.overdue_working_days} 个工作日' if o.overdue_working_days else '不足1个工作日'}")
            if len(f.open_overdue) > 20:
                lines.append(f"    ……另有 {len(f.open_overdue) - 20} 件")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
