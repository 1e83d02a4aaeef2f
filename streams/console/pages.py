"""The console's HTML pages (server-rendered with Jinja2; a signed session cookie carries the log-in).

* ``/agency`` — an agency's inbox: sign, return (reason + legal basis), request an extension, resolve;
* ``/dispatcher`` — the manual queue with the top-3 suggestions and their legal bases, and the tickets
  returned lately, each dispatched with one click (every dispatch is kept as a training example);
* ``/supervisor`` — live alerts, per-agency figures, charts of volumes and on-time rates, weekly hot spots,
  drill-down per agency (``/supervisor/agencies/{code}``);
* ``/tickets/{id}`` — text, routing explanation, the full timeline of events and alerts, allowed actions.

Forms are plain ``application/x-www-form-urlencoded`` posts with a per-session CSRF token; an action answers
"已提交" at once (the worker records it moments later) and redirects back (post/redirect/get).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from models.lifecycle import EVENT_NAMES, RATING_NAMES, RATINGS, RETURN_REASONS, Status, said_in_chinese
from models.supervision import RULE_NAMES
from models.tickets import mask_caller_phone, mask_phone
from models.workcalendar import as_local
from streams.cli.agency import Action
from streams.console import queries
from streams.console.access import (
    ACTION_NAMES,
    AGENCY,
    DISPATCHER,
    ROLE_NAMES,
    STATUS_NAMES,
    SUPERVISOR,
    Principal,
    allowed_actions,
    sees_full_phone,
)
from streams.console.accounts import authenticate, client_address, principal_for_session
from streams.console.api import decode_cursor, encode_cursor, search_tickets, ticket_filters
from streams.console.app import HERE, LoginRequired
from streams.console.charts import bar_chart, line_chart
from streams.console.service import MAX_BODY_BYTES, Console, ConsoleError
from streams.console.suggest import Suggestion, suggestions
from streams.console.trends import FOCUS_GROUPS
from streams.reports import figures_csv, last_month, percent, period_dates, period_start, this_month

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(HERE / "templates"))
HOME = {AGENCY: "/agency", DISPATCHER: "/dispatcher", SUPERVISOR: "/supervisor"}
Bounds = tuple[datetime | None, datetime | None]
# the figures' periods, by their key in the address: (label, [since, until) at the deployment's "now"); the months are
# calendar months in Shanghai time, for 月度考核
PERIODS: dict[str, tuple[str, Callable[[datetime], Bounds]]] = {
    "7": ("近7天", lambda now: (period_start(now, 7), None)),
    "30": ("近30天", lambda now: (period_start(now, 30), None)),
    "this-month": ("本月", this_month),
    "last-month": ("上月", last_month),
    "all": ("全部", lambda now: (None, None)),
}
DEFAULT_PERIOD = "30"
SEVERITY_NAMES = {"info": "提示", "warning": "警告", "critical": "严重"}
# a session's actions followed up until the worker records them: how many (the cookie holds them, 4 KB in all), how
# long at most
SENT_KEPT, SENT_WATCHED_S = 8, 3600


def local(value: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
    return as_local(value).strftime(fmt) if value is not None else ""


templates.env.filters.update(local=local, pct=percent, masked=mask_phone, masked_phone=mask_caller_phone)
templates.env.globals.update(
    STATUS_NAMES=STATUS_NAMES, ACTION_NAMES=ACTION_NAMES, EVENT_NAMES=EVENT_NAMES, ROLE_NAMES=ROLE_NAMES,
    RETURN_REASONS=RETURN_REASONS, RATINGS=RATINGS, RATING_NAMES=RATING_NAMES, SEVERITY_NAMES=SEVERITY_NAMES,
    RULE_NAMES=RULE_NAMES, Action=Action, Status=Status)


def console_of(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


# --- session, log-in, CSRF ---------------------------------------------------------------------------
def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return token


def page_user(request: Request) -> Principal:
    """The logged-in user of this session (still active, same credentials as at log-in), or LoginRequired."""
    uid, stamp = request.session.get("uid"), request.session.get("cred")
    if not isinstance(uid, int) or not isinstance(stamp, str):  # no stamp: a session from before stamps
        request.session.clear()
        raise LoginRequired()
    p = principal_for_session(console_of(request).ledger, uid, stamp)
    if p is None:  # disabled, deleted, or the password changed since the log-in
        request.session.clear()
        raise LoginRequired()
    return p


def require(p: Principal, *roles: str) -> None:
    if p.role not in roles:
        who = "、".join(ROLE_NAMES[r] for r in roles)
        raise ConsoleError(403, "forbidden", f"此页面仅供{who}使用；您的账号是{ROLE_NAMES.get(p.role, p.role)}。")


def flash(request: Request, kind: str, message: str) -> None:
    # assigned, not appended in place: the session is saved only when a key is set, so a message added to a list
    # already there (a double click: the first response's message not shown yet) would be lost
    request.session["flash"] = [*request.session.get("flash", []), [kind, message]]


def safe_next(value: str | None, default: str) -> str:
    """Only a local path (no scheme, no host, no protocol-relative ``//``) is a redirect target."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value and len(value) < 300:
        return value
    return default


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form, bounded like every body; the last value of a repeated field wins."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise ConsoleError(413, "too_large", "提交的内容过长。")
    body, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ConsoleError(413, "too_large", "提交的内容过长。")
        body.append(chunk)
    try:
        fields = parse_qs(b"".join(body).decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise ConsoleError(400, "invalid_form", "无法读取提交的表单。") from None
    return {k: v[-1] for k, v in fields.items()}


def check_csrf(request: Request, form: dict[str, str]) -> None:
    expected = request.session.get("csrf")
    # as bytes: compare_digest refuses str with non-ASCII characters (TypeError, a 500 for a forged form)
    if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), form.get("csrf", "").encode()):
        raise ConsoleError(403, "csrf", "页面已过期（安全校验未通过），请刷新页面后重试。")


def render(request: Request, name: str, user: Principal | None, *, status: int = 200, fragment: bool = False,
           **context: Any) -> HTMLResponse:
    console = console_of(request)
    catalogue = console.catalogue

    def agency_name(code: str | None) -> str:
        return catalogue.agencies[code].name if code and code in catalogue.agencies else (code or "—")

    def matter_name(code: str | None) -> str:
        return catalogue.matters[code].name if code and code in catalogue.matters else (code or "未识别")

    if user is not None and not fragment:
        report_outcomes(request, console)
    # a fragment (the polled alerts panel) must not eat the messages meant for the next full page
    flashes = request.session.pop("flash", []) if not fragment and "flash" in request.session else []
    return templates.TemplateResponse(request, name, {
        "user": user, "csrf": csrf_token(request), "flashes": flashes, "agency_name": agency_name,
        "matter_name": matter_name, "home": HOME.get(user.role, "/") if user else "/login",
        "reveal": lambda tk: user is not None and sees_full_phone(user, tk.current_agency), **context,
    }, status_code=status)


def report_outcomes(request: Request, console: Console) -> None:
    """Tell the user about their own submitted actions the lifecycle has since refused (a concurrent action by
    someone else got there first, the ticket moved on): "已提交" was all they were told at the time, and the
    refusal is otherwise only in the ticket's timeline. Each action is followed until it is recorded."""
    sent = request.session.get("sent")
    if not isinstance(sent, list) or not sent:
        return
    entries = [e for e in sent if isinstance(e, list) and len(e) == 4 and time.time() - e[3] < SENT_WATCHED_S]
    try:
        outcomes = queries.event_outcomes(console.ledger, [e[0] for e in entries])
    except SQLAlchemyError:  # the page (perhaps the error page saying the ledger is down) matters more
        log.warning("could not look up the outcome of %d submitted actions", len(entries), exc_info=True)
        return
    for event_id, ticket_id, action, _ in entries:
        accepted, reason = outcomes.get(event_id, (True, None))
        if not accepted:
            name = ACTION_NAMES[Action(action)] if action in set(Action) else action
            flash(request, "error", f"您对工单 {ticket_id} 的「{name}」未被系统受理（提交后工单状态已有变化）："
                                    f"{said_in_chinese(reason or '')[:200]}。请打开工单查看当前状态。")
    request.session["sent"] = [e for e in entries if e[0] not in outcomes]


def render_error(request: Request, status: int, message: str) -> HTMLResponse:
    """An error page; the session's user label is used for the header without a database call."""
    cached = request.session.get("user") if "session" in request.scope else None
    user = Principal(0, cached["username"], cached["role"], cached.get("agency"), cached.get("display_name")) \
        if isinstance(cached, dict) else None
    titles = {400: "请求有误", 401: "需要登录", 403: "无权访问", 404: "未找到", 409: "当前不能办理", 413: "内容过长",
              503: "暂时不可用"}
    return render(request, "error.html", user, status=status, status_code=status,
                  title=titles.get(status, "出错了"), message=message)


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    try:
        with console_of(request).ledger.session() as s:
            s.execute(text("SELECT 1"))
    except Exception as exc:  # any failure = not ready; say why
        return JSONResponse({"status": "unavailable", "ledger": str(exc).splitlines()[0]}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    if isinstance(request.session.get("uid"), int):
        return RedirectResponse(safe_next(next, "/"), status_code=303)
    return render(request, "login.html", None, next=safe_next(next, ""))


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    check_csrf(request, form)
    username, password = form.get("username", "").strip().lower(), form.get("password", "")
    # the throttle counts in the ledger: each of its calls off the event loop, as authenticate's
    throttle, address = console_of(request).login_throttle, client_address(request)
    if wait := await run_in_threadpool(throttle.address_retry_after, address):  # locked: not even checked (scrypt)
        return _locked_out(request, form, username, wait, address_wide=True)
    if username and (wait := await run_in_threadpool(throttle.retry_after, username, address)):
        return _locked_out(request, form, username, wait)
    signed_in = await run_in_threadpool(authenticate, console_of(request).ledger, username, password) \
        if username and password else None
    if signed_in is None:
        if username and password and (wait := await run_in_threadpool(throttle.failed, username, address)):
            return _locked_out(request, form, username, wait,
                               address_wide=await run_in_threadpool(throttle.address_retry_after, address) > 0)
        return render(request, "login.html", None, status=401, next=safe_next(form.get("next"), ""),
                      username=username[:32], error="用户名或密码错误，或账号已停用。")
    await run_in_threadpool(throttle.succeeded, username, address)
    p = signed_in.principal
    request.session.clear()
    request.session.update(uid=p.user_id, cred=signed_in.stamp, csrf=secrets.token_urlsafe(24), user={
        "username": p.username, "role": p.role, "agency": p.agency, "display_name": p.display_name})
    return RedirectResponse(safe_next(form.get("next"), HOME.get(p.role, "/")), status_code=303)


def _locked_out(request: Request, form: dict[str, str], username: str, wait: int, *,
                address_wide: bool = False) -> HTMLResponse:
    minutes = max(1, -(-wait // 60))
    who = "从您当前网络地址的登录失败次数过多" if address_wide else "该账号登录失败次数过多"
    response = render(request, "login.html", None, status=429, next=safe_next(form.get("next"), ""),
                      username=username[:32], error=f"{who}，已暂停登录，请 {minutes} 分钟后再试"
                                                    "（如忘记密码，请联系管理员重置）。")
    response.headers["Retry-After"] = str(wait)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await read_form(request)
    check_csrf(request, form)
    request.session.clear()
    flash(request, "ok", "已退出登录。")
    return RedirectResponse("/login", status_code=303)


@router.get("/")
def home(p: Principal = Depends(page_user)) -> Response:
    return RedirectResponse(HOME.get(p.role, "/login"), status_code=303)


# --- agency --------------------------------------------------------------------------------------------
@router.get("/agency")
def agency_page(request: Request, p: Principal = Depends(page_user)) -> HTMLResponse:
    require(p, AGENCY)
    console = console_of(request)
    ledger, now = console.ledger, console.now()
    inbox = queries.agency_inbox(ledger, p.agency or "")
    closes = console.return_closes_of([c.ticket for c in inbox["pending"] + inbox["handling"]])
    return render(request, "agency.html", p, inbox=inbox, counts=queries.status_counts(ledger, agency=p.agency or ""),
                  actions=lambda c: _actions(p, c, closes.get(c.ticket.id), now))


def _actions(p: Principal, card: queries.Card, return_closes: datetime | None = None,
             now: datetime | None = None) -> list[Action]:
    tk = card.ticket
    return allowed_actions(p, ticket_id=tk.id, status=tk.status, current_agency=tk.current_agency,
                           extension_pending=card.extension_pending, return_closes=return_closes, now=now)


# --- dispatcher ----------------------------------------------------------------------------------------
def _suggest(console: Console, card: queries.Card) -> list[Suggestion]:
    tk = card.ticket
    message = card.candidates.message if card.candidates is not None else None
    excluded = {r.agency for r in card.returns if r.agency}
    return suggestions(message, address=tk.address, received_at=tk.received_at, catalogue=console.catalogue,
                       default_jurisdiction=console.settings.default_jurisdiction, excluded=excluded)


def _agency_options(console: Console) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every agency for the "other agency" picker, grouped by jurisdiction."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for code, a in sorted(console.catalogue.agencies.items()):
        j = console.catalogue.jurisdictions.get(a.jurisdiction)
        groups.setdefault(j.name if j else a.jurisdiction, []).append((code, a.name))
    return list(groups.items())


@router.get("/dispatcher")
def dispatcher_page(request: Request, p: Principal = Depends(page_user)) -> HTMLResponse:
    require(p, DISPATCHER, SUPERVISOR)
    console = console_of(request)
    manual = queries.manual_queue(console.ledger)
    returned = queries.recently_returned(console.ledger, since=console.now() - timedelta(days=7))
    corrections, latest = queries.training_examples(console.ledger, limit=8)
    return render(request, "dispatcher.html", p, manual=[(c, _suggest(console, c)) for c in manual],
                  manual_count=queries.status_counts(console.ledger).get(Status.MANUAL, 0),
                  returned=[(c, _suggest(console, c)) for c in returned], corrections=corrections,
                  latest_corrections=latest, agency_options=_agency_options(console),
                  can_dispatch=p.role == DISPATCHER)


# --- supervisor ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ChosenPeriod:
    key: str
    label: str  # with its dates: "上月（2026-11-01 至 2026-11-30）"
    since: datetime | None
    until: datetime | None


def chosen_period(console: Console, period: str, *, strict: bool = False) -> ChosenPeriod:
    """The figures' period named ``period`` as of now; an unknown one is the default (a page) or a 400 (``strict``:
    a download must not be another period than the one asked for, under a name that says otherwise)."""
    if period not in PERIODS:
        if strict:
            raise ConsoleError(400, "invalid_period", f"没有这个统计时段：{period[:32]}（可选："
                               + "、".join(f"{k}（{label}）" for k, (label, _) in PERIODS.items()) + "）。")
        period = DEFAULT_PERIOD
    label, bounds = PERIODS[period]
    now = console.now()
    since, until = bounds(now)
    dates = period_dates(since, until, now)
    return ChosenPeriod(period, f"{label}（{dates}）" if dates else label, since, until)


@router.get("/supervisor")
def supervisor_page(request: Request, period: str = DEFAULT_PERIOD,
                    p: Principal = Depends(page_user)) -> HTMLResponse:
    require(p, SUPERVISOR)
    console = console_of(request)
    chosen = chosen_period(console, period)
    ov = console.overview(chosen.since, chosen.until)
    day_labels = [d.strftime("%m-%d") for d in ov.series.days]
    charts = {
        "volume": bar_chart(list(zip(day_labels, [float(v) for v in ov.series.received], strict=True)),
                            title="每日受理工单量", unit="件"),
        "rates": line_chart(day_labels, [("按时签收率", ov.series.sign_on_time),
                                         ("按时办结率", ov.series.resolution_on_time)], title="每日按时率"),
    }
    alerts = queries.recent_alerts(console.ledger, limit=30)
    return render(request, "supervisor.html", p, ov=ov, charts=charts, alerts=alerts, period=chosen.key,
                  periods=PERIODS, period_label=chosen.label, focus_groups=list(FOCUS_GROUPS))


@router.get("/supervisor/figures.csv")
def supervisor_figures_csv(request: Request, period: str = DEFAULT_PERIOD,
                           p: Principal = Depends(page_user)) -> Response:
    """The period's per-agency figures as a spreadsheet download (考核 tables are kept in Excel)."""
    require(p, SUPERVISOR)
    console = console_of(request)
    chosen = chosen_period(console, period, strict=True)
    body = figures_csv(console.agency_figures(None, chosen.since, chosen.until), console.catalogue)
    # a month's file is named by its month: "figures-2026-11-20261203.csv" for 上月 downloaded on 12-03
    key = f"{as_local(chosen.since):%Y-%m}" if chosen.key.endswith("month") and chosen.since else chosen.key
    name = f"figures-{key}-{as_local(console.now()):%Y%m%d}.csv"
    # with a byte-order mark: Excel on a Chinese Windows reads a CSV without one as GBK, and the headers garble
    return Response("\ufeff" + body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/supervisor/alerts")
def supervisor_alerts(request: Request, p: Principal = Depends(page_user)) -> HTMLResponse:
    """The live alerts panel, fetched again every few seconds by the supervisor's page."""
    require(p, SUPERVISOR)
    return render(request, "alerts.html", p, fragment=True,
                  alerts=queries.recent_alerts(console_of(request).ledger, limit=30))


@router.get("/supervisor/agencies/{code}")
def supervisor_agency(code: str, request: Request, period: str = DEFAULT_PERIOD,
                      p: Principal = Depends(page_user)) -> HTMLResponse:
    require(p, SUPERVISOR)
    console = console_of(request)
    if code not in console.catalogue.agencies:
        raise ConsoleError(404, "not_found", f"没有代码为 {code[:32]} 的承办单位。")
    chosen = chosen_period(console, period)
    figs = console.agency_figures(code, chosen.since, chosen.until).get(code)
    return render(request, "supervisor_agency.html", p, code=code, figures=figs, period=chosen.key, periods=PERIODS,
                  period_label=chosen.label, cards=queries.agency_tickets(console.ledger, code),
                  alerts=queries.recent_alerts(console.ledger, limit=50, agency=code))


# --- tickets -------------------------------------------------------------------------------------------
SEARCH_PAGE = 50


@router.get("/tickets")
def tickets_page(request: Request, q: str = "", status: str = "", agency: str = "", since: str = "",
                 until: str = "", before: str = "", caller_of: str = "",
                 p: Principal = Depends(page_user)) -> Response:
    """工单查询: by number, caller's number or words, with status, handler and receipt dates; an agency finds
    the tickets it handles and those it returned, by number any it may see. ``caller_of``: the tickets of that ticket's
    caller (the ticket page's link: the caller's history without their number in the address bar)."""
    console = console_of(request)
    form = {"q": q.strip(), "status": status, "agency": "" if p.role == AGENCY else agency, "since": since.strip(),
            "until": until.strip()}
    context: dict[str, Any] = {"form": form, "rows": [], "next_url": None, "error": None, "searched": False,
                               "caller_of": None, "agency_options": [] if p.role == AGENCY else _agency_options(console)}
    try:
        if status and status not in STATUS_NAMES:
            raise ConsoleError(400, "invalid_status", f"没有这个工单状态：{status[:24]}。")
        filters = ticket_filters(console.now(), **{k: v or None for k, v in form.items()},
                                 through=True)
        position = decode_cursor(before) if before else None
        # the ticket whose caller's tickets are asked for; 404 as for its page when p may not see it
        caller = console.visible_ticket(p, caller_of.strip()) if caller_of.strip() else None
    except ConsoleError as exc:
        return render(request, "tickets.html", p, status=exc.status, **{**context, "error": exc.message})
    query = {**filters.query, **({"caller_of": caller.id} if caller is not None else {})}
    context.update(searched=bool(query), caller_of=caller)
    if p.role == AGENCY and p.agency is None or caller is not None and caller.caller_key is None:
        return render(request, "tickets.html", p, **context)
    try:
        rows = search_tickets(console, p, filters, client_address(request), limit=SEARCH_PAGE + 1, before=position,
                              caller_key=caller.caller_key if caller is not None else None)
    except ConsoleError as exc:  # too many number searches that found no one: the form and why, not the list
        response = render(request, "tickets.html", p, status=exc.status, **{**context, "error": exc.message})
        response.headers.update(exc.headers)
        return response
    search = filters.criteria["search"]
    if search is not None and before == "" and len(rows) == 1 and rows[0].id in search.ticket_ids:
        return RedirectResponse(f"/tickets/{rows[0].id}", status_code=303)  # a ticket number typed: that ticket
    if len(rows) > SEARCH_PAGE:
        rows = rows[:SEARCH_PAGE]
        context["next_url"] = f"/tickets?{urlencode({**query, 'before': encode_cursor(rows[-1].received_at, rows[-1].id)})}"
    first = f"/tickets?{urlencode(query)}" if before else None
    return render(request, "tickets.html", p, **{**context, "rows": rows, "first_url": first})


@router.get("/tickets/{ticket_id}")
def ticket_page(ticket_id: str, request: Request, p: Principal = Depends(page_user)) -> HTMLResponse:
    console = console_of(request)
    detail = console.ticket(p, ticket_id)
    tk = detail.ticket
    actions = allowed_actions(p, ticket_id=tk.id, status=tk.status, current_agency=tk.current_agency,
                              extension_pending=detail.extension_pending,
                              return_closes=console.return_closes(detail), now=console.now(),
                              held_until=console.held_until(detail))
    card = queries.Card(tk, detail.current_decision, [], detail.extension_pending, dispatches=detail.dispatches)
    card.returns = [queries.Return(e.agency, str(e.payload.get("reason_code") or ""), e.payload.get("basis"),
                                   e.payload.get("explanation"), e.occurred_at)
                    for e in detail.events if e.accepted and e.type == "returned" and isinstance(e.payload, dict)]
    timeline = sorted([("event", e.occurred_at, e) for e in detail.events]
                      + [("alert", a.raised_at, a) for a in detail.alerts], key=lambda item: as_local(item[1]))
    # a dispatcher's dispatch carries no matter: show the last one the classifier recognised
    known_matter = tk.matter or next((r.matter for r in reversed(detail.decisions) if r.matter), None)
    return render(request, "ticket.html", p, d=detail, card=card, actions=actions, timeline=timeline,
                  known_matter=known_matter,
                  full_phone=sees_full_phone(p, tk.current_agency),
                  same_caller=queries.same_caller(console.ledger, tk, visible_to=p.own_agency),
                  suggestions=_suggest(console, card) if Action.REASSIGN in actions else [],
                  agency_options=_agency_options(console) if Action.REASSIGN in actions else [])


@router.post("/tickets/{ticket_id}/actions")
async def ticket_action(ticket_id: str, request: Request, p: Principal = Depends(page_user)) -> Response:
    form = await read_form(request)
    check_csrf(request, form)
    back = safe_next(form.get("next"), f"/tickets/{ticket_id}")
    try:
        action = Action(form.get("action", ""))
    except ValueError:
        raise ConsoleError(400, "invalid_action", f"未知的操作：{form.get('action', '')[:32]}") from None
    options = {k: v for k, v in form.items() if k not in ("action", "csrf", "next", "version") and v.strip()}
    try:
        result = await run_in_threadpool(console_of(request).act, p, ticket_id, action, options,
                                          form.get("version") or None)
    except ConsoleError as exc:
        if exc.status in (403, 404):  # not this user's (or no such) ticket: nothing to go back to
            raise
        flash(request, "error", exc.message)
        return RedirectResponse(back, status_code=303)
    if result["duplicate"]:
        flash(request, "ok", f"工单 {ticket_id} 的{ACTION_NAMES[action]}此前已提交并记录（事件 {result['event_id'][:8]}），"
                             "未重复提交。")
        return RedirectResponse(back, status_code=303)
    sent = [e for e in request.session.get("sent", []) if isinstance(e, list) and e[:1] != [result["event_id"]]]
    request.session["sent"] = [*sent, [result["event_id"], ticket_id, action.value, time.time()]][-SENT_KEPT:]
    flash(request, "ok", f"已提交：工单 {ticket_id} {ACTION_NAMES[action]}（事件 {result['event_id'][:8]}）。"
                         "系统校验并记录后，刷新页面即可看到结果。")
    return RedirectResponse(back, status_code=303)


# --- API reference -------------------------------------------------------------------------------------
@router.get("/api-reference")
def api_reference(request: Request, p: Principal = Depends(page_user)) -> HTMLResponse:
    spec = request.app.openapi()
    operations = [(path, method.upper(), op) for path, item in spec["paths"].items() for method, op in item.items()]
    return render(request, "api_reference.html", p, spec=spec, operations=operations)
