"""Supervisors' figures from the ledger: load ticket histories and alerts, compute with the pure core.

The arithmetic is :func:`models.supervision.figures.agency_figures` (tested on its own); this module only
reads the ledger (tickets, accepted lifecycle events, alerts) and shapes the daily digest. Blocking SQL:
meant for the CLI, not for agents.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy import select

from models import ledger as t
from models.directory import Catalogue
from models.events import parse_event
from models.lifecycle import Outcome, Status, TicketState, apply
from models.supervision import RULE_NAMES, TicketFacts
from models.supervision.figures import AgencyFigures, agency_figures, history_of
from models.tickets import EARLIEST, LATEST, Rejection
from models.workcalendar import TZ, as_local
from streams.db import Ledger

CHUNK = 500  # ids per IN (...) list: far below SQLite's variable limit


def _chunks(items: list[str], n: int = CHUNK) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def intake_facts(row: t.Ticket) -> TicketFacts:
    return TicketFacts(ticket_id=row.id, received_at=row.received_at, request_type=row.request_type,
                       urgency=row.urgency or "一般", matter=row.matter, address=row.address,
                       caller_phone=row.caller_phone, complex_case=bool(row.complex_case))


# the ticket columns intake_facts reads: plain rows, not ORM objects (a report replays thousands of tickets)
_INTAKE_COLUMNS = (t.Ticket.id, t.Ticket.received_at, t.Ticket.request_type, t.Ticket.urgency, t.Ticket.matter,
                   t.Ticket.address, t.Ticket.caller_phone, t.Ticket.complex_case)


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
        out = []
        for chunk in _chunks(sorted(ids)):
            rows = {r.id: r for r in s.execute(select(*_INTAKE_COLUMNS).where(t.Ticket.id.in_(chunk)))}
            events: dict[str, list[tuple[datetime, int | None, Any]]] = {tid: [] for tid in rows}
            for tid, recorded_at, position, payload in s.execute(
                    select(e_.ticket_id, e_.recorded_at, e_.batch_position, e_.payload)
                    .where(e_.ticket_id.in_(chunk), e_.accepted).order_by(*t.ACCEPTED_ORDER)):
                parsed = parse_event(payload)
                if tid in events and not isinstance(parsed, Rejection):
                    events[tid].append((recorded_at, position, parsed))
            out.extend(history_of(intake_facts(rows[tid]), accepted_order(evs)) for tid, evs in events.items())
        return out


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


def load_alert_rules(ledger: Ledger, since: datetime | None = None
                     ) -> list[tuple[str | None, str, datetime, str | None]]:
    """(agency, rule, raised_at, ticket_id) of the alerts raised since ``since``."""
    with ledger.session() as s:
        q = select(t.Alert.agency, t.Alert.rule, t.Alert.raised_at, t.Alert.ticket_id)
        if since is not None:
            q = q.where(t.Alert.raised_at >= since)
        return [(a, r, at, tid) for a, r, at, tid in s.execute(q)]


def figures(ledger: Ledger, catalogue: Catalogue, *, now: datetime, since: datetime | None = None,
            until: datetime | None = None, agency: str | None = None) -> dict[str, AgencyFigures]:
    out = agency_figures(load_histories(ledger, since), catalogue, now=now, since=since, until=until,
                         alerts=load_alert_rules(ledger, since))
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
