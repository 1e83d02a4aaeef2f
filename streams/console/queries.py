"""The console's reads of the ledger: a ticket with its history, queues, inboxes, alerts, trend rows.

Synchronous SQLAlchemy (the console runs these in FastAPI's thread pool). Every list is bounded; rows
come back detached (``expire_on_commit=False``) so templates can read them after the session closed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, null, or_, select, tuple_, union

from models import ledger as t
from models import word_index
from models.lifecycle import Status
from models.tickets import shown_text, shown_ticket
from streams.console.access import extension_pending
from streams.console.search import Search, folded
from streams.db import Ledger

OPEN = (Status.DISPATCHED, Status.SIGNED)
DONE = (Status.RESOLVED, Status.CLOSED)
# Event payload fields worth showing with an event (free text is phone-masked unless shown to the handler).
EVENT_DETAILS = ("reason_code", "basis", "explanation", "reply", "days", "target_agency", "rating", "comment",
                 "decision", "matter", "confidence", "attempt", "designation")


@dataclass(frozen=True, slots=True)
class Return:
    agency: str | None
    reason_code: str
    basis: str | None
    explanation: str | None
    at: datetime


@dataclass(slots=True)
class Card:
    """One ticket as a queue or inbox shows it."""

    ticket: t.Ticket
    decision: t.RoutingDecision | None = None  # of the current attempt
    returns: list[Return] = field(default_factory=list)
    extension_pending: bool = False
    # the latest decision that named candidate matters: a designation or a dispatcher's dispatch names none,
    # and the dispatchers' suggestions come from the router's ranking of an earlier attempt then
    candidates: t.RoutingDecision | None = None
    dispatches: int = 0  # how many times it was put on an agency's queue (:func:`dispatch_count`)


def dispatch_count(decisions: Iterable[t.RoutingDecision], attempt: int) -> int:
    """How many of a ticket's routings up to its current ``attempt`` put it on an agency's queue: what a clerk
    calls 第N次派发. Not the attempt number, which also counts routings to the dispatchers' manual queue (a
    ticket the router was unsure of, then dispatched by a dispatcher, is at attempt 2 on its first dispatch)."""
    return sum(1 for d in decisions if d.agency and d.attempt <= attempt)


@dataclass(slots=True)
class TicketDetail:
    ticket: t.Ticket
    decisions: list[t.RoutingDecision]
    events: list[t.TicketEvent]
    alerts: list[t.Alert]
    training: t.TrainingExample | None

    @property
    def dispatched_to(self) -> set[str]:
        return {d.agency for d in self.decisions if d.agency}

    @property
    def accepted_types(self) -> list[str]:
        return [e.type for e in self.events if e.accepted]

    @property
    def extension_pending(self) -> bool:
        return extension_pending(self.accepted_types)

    @property
    def current_decision(self) -> t.RoutingDecision | None:
        return next((d for d in reversed(self.decisions) if d.attempt == self.ticket.attempt),
                    self.decisions[-1] if self.decisions else None)

    @property
    def dispatches(self) -> int:
        return dispatch_count(self.decisions, self.ticket.attempt)

    @property
    def returned_by(self) -> list[str]:
        return list(dict.fromkeys(e.agency for e in self.events if e.accepted and e.type == "returned" and e.agency))


def ticket_detail(ledger: Ledger, ticket_id: str) -> TicketDetail | None:
    with ledger.session() as s:
        tk = s.get(t.Ticket, ticket_id)
        if tk is None:
            return None
        return TicketDetail(
            tk,
            list(s.scalars(select(t.RoutingDecision).where(t.RoutingDecision.ticket_id == ticket_id)
                           .order_by(t.RoutingDecision.attempt))),
            list(s.scalars(select(t.TicketEvent).where(t.TicketEvent.ticket_id == ticket_id)
                           .order_by(*t.ACCEPTED_ORDER))),
            list(s.scalars(select(t.Alert).where(t.Alert.ticket_id == ticket_id).order_by(t.Alert.raised_at))),
            s.scalar(select(t.TrainingExample).where(t.TrainingExample.ticket_id == ticket_id)),
        )


def latest_routings(ledger: Ledger, ids: list[str]) -> dict[str, datetime]:
    """Each ticket's latest accepted routing time, in the order the lifecycle accepted its events."""
    with ledger.session() as s:
        return {tid: at for tid, at in s.execute(
            select(t.TicketEvent.ticket_id, t.TicketEvent.occurred_at)
            .where(t.TicketEvent.ticket_id.in_(ids), t.TicketEvent.accepted, t.TicketEvent.type == "routed")
            .order_by(*t.ACCEPTED_ORDER))}


def event_outcomes(ledger: Ledger, event_ids: list[str]) -> dict[str, tuple[bool, str | None]]:
    """Of these event ids, those the lifecycle has recorded: accepted or not, and why not."""
    if not event_ids:
        return {}
    with ledger.session() as s:
        return {eid: (accepted, reason) for eid, accepted, reason in s.execute(
            select(t.TicketEvent.event_id, t.TicketEvent.accepted, t.TicketEvent.reason)
            .where(t.TicketEvent.event_id.in_(event_ids)))}


def dispatched_to(ledger: Ledger, ticket_id: str) -> tuple[t.Ticket | None, set[str]]:
    """The ticket and every agency it was ever dispatched to (for access checks without the full history)."""
    with ledger.session() as s:
        tk = s.get(t.Ticket, ticket_id)
        if tk is None:
            return None, set()
        return tk, set(s.scalars(select(t.RoutingDecision.agency).where(
            t.RoutingDecision.ticket_id == ticket_id, t.RoutingDecision.agency.is_not(None))))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _shown(value: Any, reveal: bool) -> Any:
    if isinstance(value, str):
        return shown_text(value, reveal=reveal)
    return json.loads(json.dumps(value, default=str))


def ticket_json(d: TicketDetail, *, reveal_phone: bool) -> dict[str, Any]:
    """The API's view of one ticket: status, routing decisions, events and alerts.

    The caller's number (also inside free text) is masked unless ``reveal_phone`` (the handling agency)."""
    tk = d.ticket
    shown = shown_ticket({"text": tk.text, "title": tk.title, "caller_phone": tk.caller_phone}, reveal=reveal_phone)
    return {
        "id": tk.id, "status": tk.status, "current_agency": tk.current_agency, "attempt": tk.attempt,
        "received_at": _iso(tk.received_at), "text": shown["text"], "title": shown["title"], "address": tk.address,
        "channel": tk.channel, "request_type": tk.request_type, "urgency": tk.urgency,
        "complex_case": tk.complex_case, "caller_phone": shown["caller_phone"],
        "jurisdiction": tk.jurisdiction, "matter": tk.matter, "updated_at": _iso(tk.updated_at),
        "extension_pending": d.extension_pending,
        "decisions": [{
            "routing_id": r.decision_key, "attempt": r.attempt, "decision": r.decision, "matter": r.matter,
            "domain": r.domain, "agency": r.agency, "agency_kind": r.agency_kind, "jurisdiction": r.jurisdiction,
            "confidence": r.confidence, "basis": r.basis, "reason": r.reason, "alternatives": r.alternatives,
            "model_version": r.model_version, "decided_by": r.decided_by, "decided_at": _iso(r.decided_at),
            "queue": r.topic, "published_at": _iso(r.published_at),
        } for r in d.decisions],
        "events": [{
            "event_id": e.event_id, "type": e.type, "actor": e.actor, "agency": e.agency,
            "occurred_at": _iso(e.occurred_at), "accepted": e.accepted, "refused_because": e.reason,
            **{k: _shown(e.payload[k], reveal_phone) for k in EVENT_DETAILS
               if isinstance(e.payload, dict) and e.payload.get(k) is not None},
        } for e in d.events],
        "alerts": [{
            "alert_key": a.alert_key, "rule": a.rule, "level": a.level, "severity": a.severity, "agency": a.agency,
            "message": a.message, "raised_at": _iso(a.raised_at), "deadline": _iso(a.deadline),
        } for a in d.alerts],
    }


def _cards(s: Any, tickets: list[t.Ticket]) -> list[Card]:
    """Cards with the current decision, the returns and the extension state of each ticket."""
    if not tickets:
        return []
    ids = [tk.id for tk in tickets]
    decisions: dict[str, t.RoutingDecision] = {}
    ranked: dict[str, t.RoutingDecision] = {}  # ticket id -> latest decision with candidates
    of_ticket: dict[str, list[t.RoutingDecision]] = defaultdict(list)
    for d in s.scalars(select(t.RoutingDecision).where(t.RoutingDecision.ticket_id.in_(ids))
                       .order_by(t.RoutingDecision.attempt)):
        decisions[d.decision_key] = d
        of_ticket[d.ticket_id].append(d)
        if _has_candidates(d):
            ranked[d.ticket_id] = d
    types: dict[str, list[str]] = defaultdict(list)
    returns: dict[str, list[Return]] = defaultdict(list)
    for e in s.scalars(select(t.TicketEvent).where(t.TicketEvent.ticket_id.in_(ids), t.TicketEvent.accepted)
                       .order_by(*t.ACCEPTED_ORDER)):
        types[e.ticket_id].append(e.type)
        if e.type == "returned":
            p = e.payload if isinstance(e.payload, dict) else {}
            returns[e.ticket_id].append(Return(e.agency, str(p.get("reason_code") or ""), p.get("basis"),
                                               p.get("explanation"), e.occurred_at))
    return [Card(tk, decisions.get(f"{tk.id}#{tk.attempt}"), returns.get(tk.id, []),
                 extension_pending(types.get(tk.id, [])), ranked.get(tk.id),
                 dispatch_count(of_ticket[tk.id], tk.attempt)) for tk in tickets]


def _has_candidates(d: t.RoutingDecision) -> bool:
    message = d.message if isinstance(d.message, dict) else {}
    return d.decided_by == "router" and bool(message.get("matter") or message.get("alternatives"))


def agency_inbox(ledger: Ledger, agency: str, *, limit: int = 100) -> dict[str, list[Card]]:
    """An agency's tickets: waiting for sign-for, in hand, recently done, and the ones it returned."""
    with ledger.session() as s:
        def current(statuses: tuple[str, ...], newest_first: bool = False, n: int = limit) -> list[t.Ticket]:
            order = t.Ticket.updated_at.desc() if newest_first else t.Ticket.received_at
            return list(s.scalars(select(t.Ticket).where(t.Ticket.current_agency == agency,
                                                         t.Ticket.status.in_(statuses)).order_by(order).limit(n)))

        returned_ids = list(dict.fromkeys(s.scalars(
            select(t.TicketEvent.ticket_id).where(t.TicketEvent.type == "returned", t.TicketEvent.accepted,
                                                  t.TicketEvent.agency == agency)
            .order_by(t.TicketEvent.occurred_at.desc()).limit(20))))
        returned = list(s.scalars(select(t.Ticket).where(t.Ticket.id.in_(returned_ids)))) if returned_ids else []
        returned.sort(key=lambda tk: returned_ids.index(tk.id))
        return {
            "pending": _cards(s, current((Status.DISPATCHED,))),
            "handling": _cards(s, current((Status.SIGNED,))),
            "done": _cards(s, current(DONE, newest_first=True, n=20)),
            "returned": _cards(s, returned),
        }


def status_counts(ledger: Ledger, *, agency: str | None = None) -> dict[str, int]:
    """How many tickets are in each status (those the agency handles, when ``agency``): the queues and inboxes
    list at most ``limit`` tickets, the counts above them must not stop there."""
    with ledger.session() as s:
        q = select(t.Ticket.status, func.count()).group_by(t.Ticket.status)
        if agency is not None:
            q = q.where(t.Ticket.current_agency == agency)
        return {status: n for status, n in s.execute(q)}


def manual_queue(ledger: Ledger, *, limit: int = 100) -> list[Card]:
    """The dispatchers' queue: tickets the router did not dispatch (low confidence, no owner, designation)."""
    with ledger.session() as s:
        return _cards(s, list(s.scalars(select(t.Ticket).where(t.Ticket.status == Status.MANUAL)
                                        .order_by(t.Ticket.received_at).limit(limit))))


def recently_returned(ledger: Ledger, *, since: datetime, limit: int = 50) -> list[Card]:
    """Open tickets returned (退单) since ``since`` and re-routed to an agency since: the dispatcher checks
    the re-routing and re-dispatches when it went wrong (re-routed to the manual queue, they are there)."""
    with ledger.session() as s:
        ids = list(dict.fromkeys(s.scalars(
            select(t.TicketEvent.ticket_id).where(t.TicketEvent.type == "returned", t.TicketEvent.accepted,
                                                  t.TicketEvent.occurred_at >= since)
            .order_by(t.TicketEvent.occurred_at.desc()).limit(limit * 2))))
        if not ids:
            return []
        # not while RETURNED: the router is re-routing it at that moment (it shows again once re-routed)
        rows = [tk for tk in s.scalars(select(t.Ticket).where(t.Ticket.id.in_(ids)))
                if tk.status in (Status.DISPATCHED, Status.SIGNED)]
        rows.sort(key=lambda tk: ids.index(tk.id))
        return _cards(s, rows[:limit])


def agency_tickets(ledger: Ledger, agency: str, *, limit: int = 200) -> list[Card]:
    """Every ticket ever dispatched to the agency, newest first (the supervisor's drill-down)."""
    with ledger.session() as s:
        # selected and ordered in one query: a cut of the ids before ordering by time would drop the newest
        dispatched = select(t.RoutingDecision.ticket_id).where(t.RoutingDecision.agency == agency)
        rows = list(s.scalars(select(t.Ticket).where(or_(t.Ticket.current_agency == agency,
                                                         t.Ticket.id.in_(dispatched)))
                              .order_by(t.Ticket.received_at.desc(), t.Ticket.id.desc()).limit(limit)))
        return _cards(s, rows)


def list_tickets(ledger: Ledger, *, agency: str | None = None, status: str | None = None, limit: int = 100,
                 before: tuple[datetime, str] | None = None, visible_to: str | None = None,
                 search: Search | None = None, since: datetime | None = None, until: datetime | None = None,
                 caller_key: str | None = None) -> list[t.Ticket]:
    """Newest first, by (received_at, id): a total order, so that pages cut at ``before`` (the last ticket of
    the previous page) neither skip nor repeat tickets received at the same instant.

    ``visible_to``: an agency's tickets, those it handles now and those it returned (its inbox's; a number typed,
    or a caller's tickets, any it may see: :func:`_visible_to`); ``agency``: only those it handles now;
    ``search``: what the ticket search matched (:func:`_found`; words with digits only where the user sees
    them, :func:`_shows`); ``since``/``until``: received in [since, until); ``caller_key``: the tickets of one
    caller (``tickets.caller_key``, the digits of their number)."""
    with ledger.session() as s:
        where = []
        if agency is not None:
            where.append(t.Ticket.current_agency == agency)
        if caller_key is not None:
            where.append(t.Ticket.caller_key == caller_key)
        if status is not None:
            where.append(t.Ticket.status == status)
        if since is not None:
            where.append(t.Ticket.received_at >= since)
        if until is not None:
            where.append(t.Ticket.received_at < until)
        scope = [_visible_to(visible_to)] if visible_to is not None else []
        exact = False
        if search is not None:
            found, exact = _found(s, search, [*where, *scope], handled_by=visible_to)
            where.append(found)
        order = (t.Ticket.received_at.desc(), t.Ticket.id.desc())

        def page(after: tuple[datetime, str] | None) -> list[t.Ticket]:
            # a row value, not received_at < at OR (= at AND id < ...): both backends then read the page off
            # ix_tickets_received_id from the cursor on; with the OR, SQLite sorted every older ticket (seconds)
            cut = [tuple_(t.Ticket.received_at, t.Ticket.id) < tuple_(*after)] if after is not None else []
            if visible_to is None or exact or caller_key is not None:
                # a number found, or one caller's tickets: a few rows from an index, whatever the agency may see
                return list(s.scalars(select(t.Ticket).where(*where, *cut, *scope).order_by(*order).limit(limit)))
            return _merged(s, where + cut, order, visible_to, limit)

        masked_digits = search is not None and not exact and any(c.isdigit() for w in search.words for c in w)
        if not masked_digits:
            return page(before)
        # A word with digits is matched by the database against the full text, which shows a caller's number
        # whole: "油烟 1381" then "油烟 1382" ... read a masked number digit by digit. It counts only where the
        # user sees it (the numbers in the title and text masked but for the handling agency), so the pages are
        # read on until ``limit`` such tickets or the end.
        rows: list[t.Ticket] = []
        while True:
            batch = page(before)
            rows += [tk for tk in batch if _shows(tk, search.words,  # type: ignore[union-attr]
                                                  unmasked=visible_to is not None and tk.current_agency == visible_to)]
            if len(rows) >= limit or len(batch) < limit:
                return rows[:limit]
            before = (batch[-1].received_at, batch[-1].id)


def _merged(s: Any, where: list[Any], order: tuple[Any, ...], agency: str, limit: int) -> list[t.Ticket]:
    """An agency's list: the tickets it handles and those it returned, two ordered reads merged, not one with an
    OR: with the OR both backends sorted every ticket the agency was ever sent (0.45 s for a busy agency at
    300,000 tickets); each of these reads a page off an index."""
    # OFFSET 0 keeps PostgreSQL from walking every ticket newest first, probing its events (0.25 s for a busy
    # agency at 300,000 tickets): it reads the agency's returns first (0.02 s)
    returned = select(t.TicketEvent.ticket_id).where(t.TicketEvent.agency == agency, t.TicketEvent.type == "returned",
                                                     t.TicketEvent.accepted).offset(0)
    branches = [select(t.Ticket.received_at, t.Ticket.id).where(*where, branch).order_by(*order).limit(limit)
                .subquery() for branch in (t.Ticket.current_agency == agency, t.Ticket.id.in_(returned))]
    # merged and cut by the database, not by Python: the next page's cursor is compared in the column's collation,
    # and under one that is not code point order (en_US: 'a1' before 'B1') a merge sorted in Python skipped and
    # repeated tickets received at the same instant. UNION: a ticket in both branches once
    merged = union(*(select(b.c.received_at, b.c.id) for b in branches)).subquery()
    return list(s.scalars(select(t.Ticket).join(merged, t.Ticket.id == merged.c.id)
                          .order_by(merged.c.received_at.desc(), merged.c.id.desc()).limit(limit)))


def _shows(tk: t.Ticket, words: tuple[str, ...], *, unmasked: bool) -> bool:
    """Whether every word is in what the user is shown of the ticket: its number, title, text and address, the
    numbers in the title and text masked (models.tickets.shown_ticket) unless ``unmasked`` (the handling agency)."""
    fields = [folded(f) for f in (tk.id, tk.address or "", *(shown_text(v or "", reveal=unmasked)
                                                             for v in (tk.title, tk.text)))]
    return all(any(folded(word) in f for f in fields) for word in words)


def _visible_to(agency: str) -> Any:
    """The tickets an agency may see: it handles them now or they were dispatched to it before."""
    return or_(t.Ticket.current_agency == agency, t.Ticket.id.in_(
        select(t.RoutingDecision.ticket_id).where(t.RoutingDecision.agency == agency)))


def same_caller(ledger: Ledger, ticket: t.Ticket, *, visible_to: str | None = None) -> int:
    """How many other tickets the ticket's caller has (among those ``visible_to`` sees): what the ticket page links
    to, so that whoever reads a ticket sees the caller's history without being shown their number."""
    if ticket.caller_key is None:
        return 0
    with ledger.session() as s:
        q = select(func.count()).select_from(t.Ticket).where(t.Ticket.caller_key == ticket.caller_key,
                                                             t.Ticket.id != ticket.id)
        if visible_to is not None:
            q = q.where(_visible_to(visible_to))
        return s.scalar(q) or 0


def _found(s: Any, search: Search, where: list[Any], *, handled_by: str | None = None) -> tuple[Any, bool]:
    """What a search finds among the tickets ``where`` selects, and whether it is a number found: the ticket of
    that number or the caller of that number when there is one (index look-ups: with the words OR-ed in, every
    query read every ticket), else the tickets holding every word (LIKE, escaped: a % typed is a %). Decided
    before any page's cursor, so that every page of one search lists the same kind. Case-insensitive, as
    people type ticket numbers and Latin shop names.

    ``handled_by``: an agency's search finds a caller only among the tickets it handles, whose number it sees
    whole. Elsewhere a match would tell it the number behind 138****5678 in at most 10,000 tries.

    A ticket's number before a caller's: a ticket made with a guess as its number must not hide, behind that ticket
    found, whether the guess found a caller (the number-search throttle counts those that found nothing)."""
    exacts = [t.Ticket.id.in_(search.ticket_ids)]
    if search.caller_key is not None:
        caller = t.Ticket.caller_key == search.caller_key
        exacts.append(and_(caller, t.Ticket.current_agency == handled_by) if handled_by is not None else caller)
    for exact in exacts:
        if s.scalar(select(t.Ticket.id).where(*where, exact).limit(1)) is not None:
            return exact, True
    # SQLite's LIKE ignores ASCII case already: its ILIKE form, lower() of both sides, cost a third more per row
    dialect = s.get_bind().dialect.name
    sqlite = dialect == "sqlite"
    held = and_(*(or_(*(column.contains(form, autoescape=True) if sqlite else column.icontains(form, autoescape=True)
                        for form in forms for column in (t.Ticket.id, t.Ticket.title, t.Ticket.text, t.Ticket.address)))
                  for forms in search.word_forms))
    # the word index narrows the tickets the LIKE reads to those holding every bigram of the words (a word found
    # nowhere read every ticket: 0.93 s at 300,000 on SQLite); the LIKE decides among them, as before
    narrowed = word_index.candidates(dialect, search.word_forms, t.Ticket)
    return (held if narrowed is None else and_(narrowed, held)), False


def recent_alerts(ledger: Ledger, *, limit: int = 50, agency: str | None = None,
                  since: datetime | None = None) -> list[t.Alert]:
    with ledger.session() as s:
        q = select(t.Alert).order_by(t.Alert.raised_at.desc()).limit(limit)
        if agency is not None:
            q = q.where(t.Alert.agency == agency)
        if since is not None:
            q = q.where(t.Alert.raised_at >= since)
        return list(s.scalars(q))


def received_counts(ledger: Ledger, bounds: Sequence[datetime], *,
                    by_matter: bool = False) -> list[tuple[int, str | None, int]]:
    """Tickets received in each period [bounds[i], bounds[i + 1]), as (i, matter or None, count), counted by
    the database: a district's eight weeks are some 50,000 tickets, which read row by row took 40% of the
    overview's time. ``bounds`` ascend; the periods are found by a CASE on the received time, so both
    backends count alike whatever their date functions."""
    starts = list(enumerate(bounds[:-1]))
    period = case(*((t.Ticket.received_at >= start, i) for i, start in reversed(starts)))
    rows = (select(period.label("period"), (t.Ticket.matter if by_matter else null()).label("matter"))
            .where(t.Ticket.received_at >= bounds[0], t.Ticket.received_at < bounds[-1]).subquery())
    # grouped outside: PostgreSQL would see the CASE's parameters in GROUP BY as another expression
    with ledger.session() as s:
        return [(i, m, n) for i, m, n in s.execute(select(rows.c.period, rows.c.matter, func.count())
                                                   .group_by(rows.c.period, rows.c.matter))]


def training_examples(ledger: Ledger, *, limit: int = 20) -> tuple[int, list[t.TrainingExample]]:
    """How many dispatcher corrections are stored, and the latest ones."""
    with ledger.session() as s:
        total = s.scalar(select(func.count()).select_from(t.TrainingExample)) or 0
        return total, list(s.scalars(select(t.TrainingExample).order_by(t.TrainingExample.created_at.desc())
                                     .limit(limit)))
