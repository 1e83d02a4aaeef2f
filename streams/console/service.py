"""What the console does, shared by the HTML pages and the HTTP API: read a ticket as a given user,
take an action on it, accept a ticket at intake, assemble the supervisor's overview.

Synchronous (ledger and producer calls block): the routers run these in FastAPI's thread pool. Every
refusal is a :class:`ConsoleError` with the HTTP status and one Chinese sentence for the user.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from config.settings import Settings
from models import ledger as t
from models.clock import Clock
from models.directory import Catalogue
from models.events import InputRejected, parse_event
from models.lifecycle import CLOSED_HELD, RATINGS, RETURN_REASONS, Status, said_in_chinese
from models.supervision.deadlines import return_window
from models.supervision.figures import AgencyFigures, tally
from models.tickets import ID_PATTERN, MAX_ID_CHARS, Rejection, TicketIn, content_key, parse_ticket
from models.workcalendar import as_local
from streams.app import TICKETS_EVENTS, TICKETS_INVALID, TICKETS_RECEIVED
from streams.cli.agency import Action, build_event, intent_event_id, ticket_version
from streams.console import queries
from streams.console.access import (
    ACTION_NAMES,
    DISPATCHER,
    STATUS_NAMES,
    Principal,
    can_view_ticket,
    check_action,
    not_found_message,
    sees_full_phone,
)
from streams.console.accounts import LoginThrottle, in_ledger
from streams.console.publisher import BusUnavailable, Publisher
from streams.console.search import NumberSearchThrottle
from streams.console.trends import (
    DailySeries,
    WeeklyHotspots,
    daily_series,
    hotspot_weeks,
    last_days,
    weekly_hotspots,
)
from streams.db import Ledger, SchemaMoved, code_revision, revision_moved
from streams.intake import ticket_json
from streams.reports import day_bounds, figures, intake_facts, load_alert_rules, load_stages, period_start

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024
MAX_FIELD_CHARS = 2000
BUS_DOWN = "消息总线暂时不可用，操作未提交，请稍后重试。"


# how often (real seconds) the console looks at the ledger's schema revision; a worker checks it in every write
# (streams.db.Ledger.writing), the console only needs to stop serving soon after `hotline db upgrade`
SCHEMA_CHECK_SECONDS = 10.0


class ConsoleError(Exception):
    """A refused request: HTTP ``status``, a machine-readable ``code`` and a Chinese ``message``."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    @property
    def headers(self) -> dict[str, str]:
        """The HTTP headers its response carries, page or API: a 429's ``Retry-After`` (RFC 9110), not only in the
        body."""
        return {"Retry-After": str(self.extra["retry_after"])} if "retry_after" in self.extra else {}


def _refuse_malformed(p: Principal, ticket_id: str) -> None:
    """404 for what is no ticket number at all, as for a missing ticket (a NUL in it was a 500 on PostgreSQL)."""
    if not ID_PATTERN.match(ticket_id) or len(ticket_id) > MAX_ID_CHARS:
        raise ConsoleError(404, "not_found", not_found_message(p, ticket_id[:MAX_ID_CHARS]))


def _denied(status: int, message: str) -> ConsoleError:
    return ConsoleError(status, "forbidden" if status == 403 else "conflict", message)


def _text(options: dict[str, Any], name: str) -> str | None:
    value = options.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConsoleError(400, "invalid_action", f"{name} 应为文本。")
    value = value.strip()
    if len(value) > MAX_FIELD_CHARS:
        raise ConsoleError(400, "invalid_action", f"{name} 不能超过 {MAX_FIELD_CHARS} 字。")
    return value or None


def action_options(action: Action, options: dict[str, Any], catalogue: Catalogue) -> dict[str, Any]:
    """The options of ``action`` checked, with Chinese reasons (400) for what is missing or wrong."""
    bad = lambda message: ConsoleError(400, "invalid_action", message)  # noqa: E731
    explanation = _text(options, "explanation")
    if action is Action.RETURN:
        code = _text(options, "reason_code")
        if code not in RETURN_REASONS:
            raise bad("退单须选择退单理由（" + "、".join(f"{k} {v}" for k, v in RETURN_REASONS.items()) + "）。")
        basis = _text(options, "basis")
        if not basis:
            raise bad("退单须写明法律依据（法律法规名称及条款），说明为何不属于本单位职责。")
        return {"reason_code": code, "basis": basis, "explanation": explanation}
    if action is Action.EXTEND:
        raw = options.get("days")
        try:
            days = int(raw) if not isinstance(raw, bool) else 0
        except (TypeError, ValueError):
            days = 0
        if not 1 <= days <= 30:
            raise bad("延期天数须为 1 至 30 个工作日。")
        if not explanation:
            raise bad("申请延期须说明理由。")
        return {"days": days, "explanation": explanation}
    if action is Action.RESOLVE:
        reply = _text(options, "reply")
        if not reply:
            raise bad("办结须填写答复群众的内容。")
        return {"reply": reply}
    if action is Action.REASSIGN:
        to = _text(options, "to")
        if not to or to not in catalogue.agencies:
            raise bad("请选择要派往的承办单位。" if not to else f"没有代码为 {to} 的承办单位。")
        return {"to": to, "explanation": explanation}
    if action is Action.RATE:
        rating = _text(options, "rating")
        if rating not in RATINGS:
            raise bad("回访评价须为 satisfied（满意）或 unsatisfied（不满意）。")
        return {"rating": rating, "explanation": explanation}
    if action is Action.SIGN:
        return {}
    return {"explanation": explanation}


def _midnights(days: list[date]) -> list[datetime]:
    """The Shanghai midnights that start ``days``."""
    return [day_bounds(d)[0] for d in days]


def intent_id(ticket_id: str, action: Action, p: Principal, options: dict[str, Any], version: str) -> str:
    """The event id of ``p`` taking ``action`` with ``options`` on the ticket as of ``version``: the same for a
    double click, a resubmitted form or a retried request (the lifecycle and the ledger then keep one event),
    different for another action, other options, another user or a ticket that has moved on since (``hotline
    act`` derives its ids the same way, :func:`streams.cli.agency.intent_event_id`)."""
    return intent_event_id(ticket_id, action, actor=p.username, role=p.role, agency=p.agency, options=options,
                           version=version)


@dataclass(frozen=True, slots=True)
class Overview:
    now: datetime
    since: datetime | None
    until: datetime | None
    figures: dict[str, AgencyFigures]
    series: DailySeries
    hotspots: WeeklyHotspots


class Console:
    """The console's dependencies and its use cases."""

    def __init__(self, settings: Settings, ledger: Ledger, catalogue: Catalogue, publisher: Publisher) -> None:
        self.settings, self.ledger, self.catalogue, self.publisher = settings, ledger, catalogue, publisher
        self._clock: Clock | None = None  # built on first use: that is when a shared clock file is read
        # counted in the ledger: every console process counts the same failures, and a restart forgets none
        self.login_throttle = LoginThrottle(counts=in_ledger(ledger))
        self.number_searches = NumberSearchThrottle(
            misses=settings.number_search_misses, window_s=settings.number_search_window_minutes * 60,
            misses_per_day=settings.number_search_misses_per_day,
            address_misses=settings.number_search_misses_per_address, counts=in_ledger(ledger))
        self._schema_checked: float | None = None  # time.monotonic() of the last look at the ledger's revision
        self._schema_moved: SchemaMoved | None = None

    def schema_check_due(self, *, writes: bool = False) -> bool:
        return writes or self._schema_checked is None \
            or time.monotonic() - self._schema_checked >= SCHEMA_CHECK_SECONDS

    def schema_moved(self, *, writes: bool = False) -> SchemaMoved | None:
        """Why this console must not serve any more, or None: a newer version migrated the ledger under it (its
        pages would read, and its account writes write, the new schema the old way). Looked at every
        ``SCHEMA_CHECK_SECONDS`` at most, and before every request that ``writes`` (a log-in, a refused ticket,
        an action): one read of ``alembic_version`` (~0.2 ms), so no write lands the old way in the seconds after
        an upgrade. A ledger that does not answer is left to the request to say."""
        if self.schema_check_due(writes=writes):
            self._schema_checked = time.monotonic()
            try:
                self._schema_moved = revision_moved(self.ledger.engine, code_revision())
            except SQLAlchemyError:
                pass
        return self._schema_moved

    def catch_up_word_index(self) -> int:
        """One round of indexing the tickets recorded since the last (the word index, ``models.word_index``, kept
        by the console so that the router does not pay for it): how many; none once a newer version has migrated
        the ledger, whose index is that version's to keep."""
        if self.schema_moved(writes=True) is not None:
            return 0
        return self.ledger.catch_up_word_index()

    def now(self) -> datetime:
        """The deployment's "now": real time, or the simulated clock shared with the worker (demo, tests)."""
        return self.clock().now()

    def clock(self) -> Clock:
        if self._clock is None:
            from streams.wiring import clock_for_settings

            self._clock = clock_for_settings(self.settings)
        return self._clock

    # --- tickets --------------------------------------------------------------------------------
    def ticket(self, p: Principal, ticket_id: str) -> queries.TicketDetail:
        """The ticket's history if ``p`` may see it; 404 when unknown and also when it is another agency's, with
        the same words: an agency learns nothing of tickets that are not its own, not even that they exist."""
        _refuse_malformed(p, ticket_id)
        detail = queries.ticket_detail(self.ledger, ticket_id)
        if detail is None or not can_view_ticket(p, detail.ticket.current_agency, detail.dispatched_to):
            raise ConsoleError(404, "not_found", not_found_message(p, ticket_id))
        return detail

    def visible_ticket(self, p: Principal, ticket_id: str) -> t.Ticket:
        """The ticket's row alone (no history) if ``p`` may see it; 404 as :meth:`ticket` otherwise."""
        _refuse_malformed(p, ticket_id)
        tk, dispatched = queries.dispatched_to(self.ledger, ticket_id)
        if tk is None or not can_view_ticket(p, tk.current_agency, dispatched):
            raise ConsoleError(404, "not_found", not_found_message(p, ticket_id))
        return tk

    def return_closes(self, detail: queries.TicketDetail) -> datetime | None:
        """When the current dispatch's 退单 window closes, if ``sla.yaml`` refuses late returns (as the
        lifecycle does, from the latest routing it accepted); None otherwise. Whatever the ticket's status:
        ``check_action`` refuses a return in any status but dispatched or signed before it reads this."""
        if not self.catalogue.sla.refuse_late_returns:
            return None
        routed = [e for e in detail.events if e.accepted and e.type == "routed"]
        return self._window_closes(detail.ticket, routed[-1].occurred_at) if routed else None

    def held_until(self, detail: queries.TicketDetail) -> datetime | None:
        """When the workers forget this closed ticket (``CLOSED_HELD`` after its closing); None while it is open."""
        if detail.ticket.status != Status.CLOSED:
            return None
        closed = [e.occurred_at for e in detail.events if e.accepted and e.type == "closed"]
        return max(closed) + CLOSED_HELD if closed else None

    def return_closes_of(self, tickets: list[Any]) -> dict[str, datetime]:
        """:meth:`return_closes` for a list of tickets (an inbox), with one query for their latest routings."""
        if not self.catalogue.sla.refuse_late_returns or not tickets:
            return {}
        routed = queries.latest_routings(self.ledger, [tk.id for tk in tickets])
        return {tk.id: at for tk in tickets if tk.id in routed
                if (at := self._window_closes(tk, routed[tk.id])) is not None}

    def _window_closes(self, ticket: Any, routed_at: datetime) -> datetime | None:
        facts = replace(intake_facts(ticket), dispatched_at=as_local(routed_at), attempt=ticket.attempt)
        window = return_window(facts, self.catalogue)
        return window.due if window is not None else None

    def ticket_json(self, p: Principal, ticket_id: str) -> dict[str, Any]:
        detail = self.ticket(p, ticket_id)
        return queries.ticket_json(detail, reveal_phone=sees_full_phone(p, detail.ticket.current_agency))

    def act(self, p: Principal, ticket_id: str, action: Action, options: dict[str, Any],
            version: str | None = None) -> dict[str, Any]:
        """Check and send one lifecycle event; the worker records it (or its refusal) shortly after.

        ``version``: the ticket's version (:func:`ticket_version`) on the page or in the response the user acted
        on. An action on a ticket that has changed since is refused (409): it was meant for what the user saw,
        not for the ticket's new state (reassigned, re-dispatched, a new extension request). The event id is the
        intent's (:func:`intent_id`), so a repeated submission is sent as the same event, or, once recorded,
        answered from the ledger (``duplicate``) instead of being sent again."""
        detail = self.ticket(p, ticket_id)
        tk = detail.ticket
        current = ticket_version(tk)
        seen = version or current
        try:
            opts: dict[str, Any] | None = action_options(action, options, self.catalogue)
            invalid = None
        except ConsoleError as exc:  # reported after the checks that say more (not yours, not now)
            opts, invalid = None, exc
        event_id = intent_id(ticket_id, action, p, opts, seen) if opts is not None else None
        earlier = next((e for e in detail.events if e.event_id == event_id), None)
        if earlier is not None:  # the same action from the same page, already recorded: not sent twice
            if not earlier.accepted:
                raise ConsoleError(409, "refused", f"您此前对工单 {ticket_id} 提交的同一{ACTION_NAMES[action]}操作"
                                                   f"未被受理（{said_in_chinese(earlier.reason or '')}），"
                                                   "请刷新页面查看工单当前状态。")
            return {"status": "submitted", "event_id": earlier.event_id, "ticket_id": ticket_id,
                    "type": earlier.type, "duplicate": True}
        denial = check_action(p, action, ticket_id=ticket_id, status=tk.status, current_agency=tk.current_agency,
                              extension_pending=detail.extension_pending, return_closes=self.return_closes(detail),
                              held_until=self.held_until(detail),
                              now=self.now())
        if denial is not None:
            raise _denied(denial.status, denial.message)
        if invalid is not None or opts is None:
            raise invalid or ConsoleError(400, "invalid_action", "操作参数有误。")
        if seen != current:
            held = f"，当前承办单位为{self._agency_name(tk.current_agency)}" if tk.current_agency else ""
            raise ConsoleError(409, "stale", f"工单 {ticket_id} 在您打开页面后已有新的办理记录（当前状态"
                                             f"「{STATUS_NAMES.get(tk.status, tk.status)}」{held}），"
                                             f"{ACTION_NAMES[action]}未提交；请刷新页面查看后再操作。")
        if action is Action.REASSIGN and opts["to"] == tk.current_agency:
            raise ConsoleError(409, "conflict", f"工单 {ticket_id} 已由该单位承办。")
        try:
            event = build_event(ticket_id, action, actor=p.username, role=p.role,
                                agency=p.own_agency, options=opts, now=self.now())
        except ValueError as exc:  # our checks above should have caught it; say what build_event says
            raise ConsoleError(400, "invalid_action", str(exc)) from None
        assert event_id is not None
        event["event_id"] = event_id
        checked = parse_event(event)  # the worker's first check, done here so a bad event is never sent
        if isinstance(checked, Rejection):
            raise ConsoleError(400, "invalid_action", checked.reason)
        try:
            self.publisher.send(TICKETS_EVENTS, ticket_id, json.dumps(event, ensure_ascii=False).encode())
        except BusUnavailable:
            raise ConsoleError(503, "bus_unavailable", BUS_DOWN) from None
        log.info("%s (%s) sent %s for %s", p.username, p.role, event["type"], ticket_id)
        return {"status": "submitted", "event_id": event_id, "ticket_id": ticket_id, "type": event["type"],
                "duplicate": False}

    def _agency_name(self, code: str) -> str:
        agency = self.catalogue.agencies.get(code)
        return f"{agency.name}（{code}）" if agency else code

    # --- intake ---------------------------------------------------------------------------------
    def intake(self, p: Principal, body: bytes) -> TicketIn:
        """Validate a ticket like every other door and put it on ``tickets.received``; a refused body is
        recorded in the ledger (keyed by its content, so a retried bad body counts once) and dead-lettered."""
        if p.role != DISPATCHER:
            raise ConsoleError(403, "forbidden", "只有派单员（热线平台账号）可以提交工单。")
        # a ticket without received_at was received now on the deployment's clock, as the router would stamp
        # it (a simulated clock in the demo and tests): not the wall clock; one received later than now (beyond
        # the clocks' allowed difference) is refused here, as the router would refuse it
        from streams.wiring import clock_skew

        result = parse_ticket(body, now=self.now(), max_skew=clock_skew(self.settings, self.clock()))
        if isinstance(result, Rejection):
            self.ledger.record_rejection(dedup_key=f"http:{content_key(body)}", key=result.key, source="http",
                                         reason=result.reason, payload=result.payload)
            dead = InputRejected(key=result.key, reason=result.reason, source="http", payload=result.payload,
                                 rejected_at=datetime.now(UTC))
            try:
                self.publisher.send(TICKETS_INVALID, result.key, dead.dumps())
            except BusUnavailable:  # the ledger has it; the dead-letter topic is a convenience copy
                log.warning("could not dead-letter refused HTTP input %s", result.key)
            raise ConsoleError(400, "invalid_ticket", f"工单无效：{result.reason}", reasons=result.reason)
        try:
            self.publisher.send(TICKETS_RECEIVED, result.id, ticket_json(result))
        except BusUnavailable:
            raise ConsoleError(503, "bus_unavailable", "消息总线暂时不可用，工单未受理，请稍后重试。") from None
        log.info("ticket %s accepted over HTTP from %s", result.id, p.username)
        return result

    # --- supervision ----------------------------------------------------------------------------
    def overview(self, since: datetime | None, until: datetime | None = None, *, series_days: int = 14,
                 weeks: int = 8) -> Overview:
        """Per-agency figures for dispatches in [since, until) (None: open on that side), the daily series and the
        weekly hot spots."""
        now = self.now()
        series_since = period_start(now, series_days)
        # One load serves both: the stages since the earlier start (a superset; the figures count by window).
        today = as_local(now).date()
        days, mondays = last_days(today, series_days), hotspot_weeks(today, weeks)
        # the series' days and the end of today: a stage anchored after it (a clock ahead) must not be summed with
        # today's, nor a ticket received after it counted on it
        day_starts = _midnights([*days, today + timedelta(days=1)])
        stages, overdue = load_stages(self.ledger, self.catalogue, now=now,
                                      since=None if since is None else min(since, series_since),
                                      split=[*day_starts, *(b for b in (since, until) if b is not None)])
        figures = tally(stages, overdue, since=since, until=until, alerts=load_alert_rules(self.ledger, since, until))
        # received tickets counted per day and per week (and matter) by the database
        per_day = queries.received_counts(self.ledger, day_starts)
        per_week = queries.received_counts(self.ledger, _midnights([*mondays, mondays[-1] + timedelta(weeks=1)]),
                                           by_matter=True)
        return Overview(
            now, since, until, dict(sorted(figures.items())),
            daily_series({days[i]: n for i, _, n in per_day}, stages, now=now, days=series_days),
            weekly_hotspots([(mondays[i], m, n) for i, m, n in per_week], self.catalogue, today=today, weeks=weeks))

    def agency_figures(self, agency: str | None, since: datetime | None,
                       until: datetime | None = None) -> dict[str, AgencyFigures]:
        """Per-agency figures (one agency's, when named) for dispatches in [since, until)."""
        return figures(self.ledger, self.catalogue, now=self.now(), since=since, until=until, agency=agency)
