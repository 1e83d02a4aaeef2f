"""The HTTP API (``/api``): intake, tickets, actions, alerts and figures, with bearer tokens.

Documented by the OpenAPI document FastAPI builds from these declarations (``/api/openapi.json``; a
readable page at ``/api-reference``; ``hotline web --openapi`` prints it). Errors are JSON
``{"error": <code>, "message": <中文说明>}``: 400 invalid input, 401 no or bad token, 403 not allowed to,
404 unknown (for an agency also another agency's ticket: existence is not revealed), 409 not in the ticket's
current state (or changed since the ``version`` an action names), 413 body over 64 KiB, 429 too many searches by a
caller's number that found no one (with ``Retry-After``), 503 broker unavailable.

``GET /api/tickets`` pages with a keyset cursor: the body stays a plain list (as before paging existed), and
when more tickets follow, a ``Link: <...>; rel="next"`` header gives the next page's address, whose opaque
``before`` cursor encodes the (received_at, id) of the page's last ticket.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from config.catalogue import AGENCY_CODE
from models import ledger as t
from models.lifecycle import RETURN_REASONS, Status
from models.tickets import ID_PATTERN, TicketIn, mask_caller_phone, shown_ticket
from streams.cli.agency import Action
from streams.console import queries
from streams.console.access import AGENCY, SUPERVISOR, Principal, sees_full_phone
from streams.console.accounts import client_address, principal_for_token
from streams.console.search import MAX_QUERY_CHARS, BadSearch, number_found, parse_search
from streams.console.service import MAX_BODY_BYTES, Console, ConsoleError
from streams.reports import day_bounds, parse_day, parse_month, period_start

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["api"])
bearer = HTTPBearer(auto_error=False, description="hotline users token 用户名 生成的令牌")

ReasonCode = StrEnum("ReasonCode", {code: code for code in RETURN_REASONS})  # type: ignore[misc]


class ErrorOut(BaseModel):
    error: str = Field(description="机器可读的错误代码，如 unauthorized、forbidden、invalid_ticket")
    message: str = Field(description="给人看的中文说明")


AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "没有令牌，或令牌无效、已吊销、用户已停用"}}
ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH, 403: {"model": ErrorOut, "description": "无权执行（角色不允许，或承办单位要办理、查看非本单位的工单、预警、指标）"}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "没有这张工单；承办单位查询非本单位的工单也得到 404（不透露工单是否存在）"}}
MAX_CURSOR_CHARS = 200


class Me(BaseModel):
    username: str
    role: str = Field(description="dispatcher | agency | supervisor")
    agency: str | None = Field(description="承办单位代码（仅承办单位账号）")
    agency_name: str | None
    display_name: str | None


class Accepted(BaseModel):
    id: str
    status: str = Field("accepted", description="工单已写入 tickets.received，稍后由路由工作进程分拨")


class ActionIn(BaseModel):
    """One action on a ticket. Which fields apply depends on ``action``."""

    action: Action = Field(description="sign 签收、return 退单、extend 申请延期、resolve 办结（承办单位）；reassign "
                                       "派单/改派、close 关闭、rate 回访、reopen 重新办理（派单员）；approve-extension / "
                                       "deny-extension 审批延期（督办或派单员）")
    reason_code: ReasonCode | None = Field(  # type: ignore[valid-type]
        None, description="退单理由：" + "；".join(f"{k} {v}" for k, v in RETURN_REASONS.items()))
    basis: str | None = Field(None, max_length=2000, description="退单的法律依据（必填）")
    explanation: str | None = Field(None, max_length=2000, description="说明（延期必填）")
    reply: str | None = Field(None, max_length=2000, description="办结时答复群众的内容")
    days: int | None = Field(None, ge=1, le=30, description="延期的工作日数")
    to: str | None = Field(None, max_length=32, description="派往的承办单位代码")
    rating: str | None = Field(None, description="satisfied | unsatisfied")
    version: str | None = Field(None, max_length=64, description="工单的 updated_at（取自 GET /api/tickets/{id}）："
                                "给出时，工单此后若已有新的办理记录则拒绝（409），以免操作落到已变化的工单上；"
                                "同一版本上重复提交的同一操作只记录一次")


class Submitted(BaseModel):
    status: str = Field("submitted", description="已写入 tickets.events，等待工作进程按状态机校验并记录")
    event_id: str
    ticket_id: str
    type: str
    duplicate: bool = Field(False, description="同一操作此前已提交并记录：未再次写入，event_id 为原事件")


class TicketBrief(BaseModel):
    id: str
    status: str
    current_agency: str | None
    attempt: int
    received_at: datetime
    matter: str | None
    title: str | None
    text: str
    address: str | None
    request_type: str | None
    urgency: str | None
    complex_case: bool = Field(description="复杂件：时限按复杂件计（受理时由热线认定）")
    caller_phone: str | None = Field(description="仅当前承办单位可见全号，其他人为掩码")


class TicketView(BaseModel):
    """One ticket as the ledger knows it: its routing decisions, lifecycle events and alerts."""

    id: str
    status: str
    current_agency: str | None
    attempt: int
    received_at: str | None
    text: str
    title: str | None
    address: str | None
    channel: str | None
    request_type: str | None
    urgency: str | None
    complex_case: bool = Field(description="复杂件：时限按复杂件计（受理时由热线认定）")
    caller_phone: str | None
    jurisdiction: str | None
    matter: str | None
    updated_at: str | None
    extension_pending: bool
    decisions: list[dict[str, Any]]
    events: list[dict[str, Any]]
    alerts: list[dict[str, Any]]


class AlertOut(BaseModel):
    alert_key: str
    rule: str
    level: str
    severity: str
    ticket_id: str | None
    agency: str | None
    message: str
    raised_at: datetime
    deadline: datetime | None


def encode_cursor(received_at: datetime, ticket_id: str) -> str:
    """The opaque ``before`` cursor after a ticket: base64url of ``[received_at ISO, id]``, unpadded."""
    raw = json.dumps([received_at.isoformat(), ticket_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (received_at, id) of a cursor from :func:`encode_cursor`; 400 with the reason when it is not one.

    Only a position: whoever asks, the listing's own filter (an agency's tickets) applies on every page, so a
    forged cursor can skip tickets but show no others."""
    def bad(reason: str) -> ConsoleError:
        return ConsoleError(400, "invalid_cursor", f"分页游标 before 无效（{reason}）：请原样使用上一页响应 Link "
                                                   "头（rel=\"next\"）中的地址，或去掉 before 从第一页开始。",
                            reasons=f"before: {reason}")

    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise bad("不是 base64url 编码") from None
    try:
        received, ticket_id = json.loads(raw)
        at = datetime.fromisoformat(received)
    except (ValueError, TypeError):  # not JSON, not a pair, not a time
        raise bad("内容不是 [受理时间, 工单编号]") from None
    if at.tzinfo is None:
        raise bad("受理时间缺少时区")
    if not isinstance(ticket_id, str) or len(ticket_id) > 64 or not ID_PATTERN.match(ticket_id):
        raise bad("工单编号格式不对")
    return at, ticket_id


def console_of(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


def api_user(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
    """The token's user; 401 with what to do when there is none or it is not valid."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise ConsoleError(401, "unauthorized", "缺少身份凭证：请在请求头中提供 Authorization: Bearer <令牌>"
                                                 "（令牌由管理员用 hotline users token 用户名 生成）。")
    p = principal_for_token(console_of(request).ledger, credentials.credentials.strip())
    if p is None:
        raise ConsoleError(401, "unauthorized", "令牌无效、已吊销，或其用户已停用。")
    return p


async def read_limited(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, read in chunks; 413 as soon as it passes ``limit`` (also without a Content-Length)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ConsoleError(413, "too_large", f"请求体超过 {limit // 1024} KiB。", limit_bytes=limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ConsoleError(413, "too_large", f"请求体超过 {limit // 1024} KiB。", limit_bytes=limit)
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class TicketFilters:
    """A ticket list's filters, checked: ``criteria`` for :func:`queries.list_tickets`, ``query`` to link the
    next page with (as given)."""

    criteria: dict[str, Any]
    query: dict[str, str]

    def of(self, p: Principal) -> dict[str, Any]:
        """The criteria as ``p`` may search: a caller by their number only for the hotline's dispatchers, who take
        the calls, and an agency among the tickets it handles (:func:`queries._found`). A supervisor sees every
        number masked; a match would tell the number behind 138****5678 in at most 10,000 tries. Their number
        is a word then, found where it shows."""
        search = self.criteria["search"]
        if p.role == SUPERVISOR and search is not None and search.caller_key is not None:
            return {**self.criteria, "search": replace(search, caller_key=None)}
        return self.criteria


def ticket_filters(now: datetime, *, q: str | None = None, status: str | None = None, agency: str | None = None,
                   since: str | None = None, until: str | None = None, through: bool = False) -> TicketFilters:
    """The filters of the ticket list and the search (API and page alike); 400 in Chinese for a bad one.

    ``until`` is the first day not included (as ``/api/figures``), or with ``through`` the last day included (the
    page's date fields: "从 12-01 至 12-05" means the 5th too)."""
    try:
        search = parse_search(q)
    except BadSearch as exc:
        raise ConsoleError(400, "invalid_search", str(exc)) from None
    if agency and not AGENCY_CODE.match(agency):  # not one (NUL in it was a 500 on PostgreSQL)
        raise ConsoleError(400, "invalid_agency", f"承办单位代码格式不对（如 BH-SCJG），而不是 {agency[:32]!r}。")
    if through:
        # the page's own fields and words: its last day may be 2099-12-31 (the API's exclusive until is a day later)
        first, last = (_page_day(value, label) for value, label in ((since, "受理自"), (until, "至")))
        if first is not None and last is not None and last < first:
            raise ConsoleError(400, "invalid_period", f"「至」（{until}）早于「受理自」（{since}）。")
        start = day_bounds(first)[0] if first is not None else None
        end = day_bounds(last)[1] if last is not None else None
    else:
        start, end = figures_period(now, None, since, until, None)
    given = {"q": search.text if search else None, "status": status, "agency": agency or None, "since": since,
             "until": until}
    return TicketFilters({"search": search, "status": status, "agency": agency or None, "since": start,
                          "until": end}, {k: str(v) for k, v in given.items() if v})


def search_tickets(console: Console, p: Principal, filters: TicketFilters, address: str | None,
                   **kw: Any) -> list[t.Ticket]:
    """:func:`queries.list_tickets` with ``filters`` as ``p`` may search them (:meth:`TicketFilters.of`); a search by
    a caller's number among tickets whose numbers ``p`` sees masked (a dispatcher's: a supervisor's number is a
    word, an agency's finds only its own callers) is throttled (:class:`~streams.console.search.NumberSearchThrottle`):
    429 with ``retry_after`` while ``p`` or ``address`` made too many that found no one, and one that finds no one
    is counted."""
    criteria = filters.of(p)
    search = criteria["search"]
    guess = search if search is not None and search.caller_key is not None and p.own_agency is None else None
    throttle = console.number_searches
    if guess is not None and (wait := throttle.retry_after(p.user_id, address)):
        log.warning("number search by user %s from %s refused (too many found no one; %d s to wait): %s",
                    p.username, address, wait, mask_caller_phone(guess.caller_key))
        raise ConsoleError(429, "too_many_number_misses", f"号码查询未命中次数过多，请 {_wait_words(wait)}后再试"
                                                          "（按工单编号或关键词查询不受影响）。", retry_after=wait)
    rows = queries.list_tickets(console.ledger, visible_to=p.own_agency, **kw, **criteria)
    if guess is not None and not number_found(guess, rows) and (wait := throttle.missed(p.user_id, address)):
        log.warning("number searches by user %s from %s refused for %d s: too many found no one (last: %s)",
                    p.username, address, wait, mask_caller_phone(guess.caller_key))
    return rows


def _wait_words(seconds: int) -> str:
    """A wait as a person reads it: "10 分钟", a day's refusal "24 小时"."""
    minutes = -(-seconds // 60)
    return f"{minutes} 分钟" if minutes < 120 else f"{-(-minutes // 60)} 小时"


def _page_day(value: str | None, label: str) -> date | None:
    """A date field of the search page, or None when empty; 400 naming the field as the page does."""
    if value is None:
        return None
    try:
        return parse_day(value)
    except ValueError:
        raise ConsoleError(400, "invalid_period", f"「{label}」应为 2000 至 2099 年间的日期，格式 YYYY-MM-DD"
                                                  f"（如 2026-11-30），而不是 {value[:20]!r}。") from None


@router.get("/me", response_model=Me, responses=AUTH, summary="当前令牌的用户")
def me(request: Request, p: Principal = Depends(api_user)) -> Me:
    agency = console_of(request).catalogue.agencies.get(p.agency or "")
    return Me(username=p.username, role=p.role, agency=p.agency, agency_name=agency.name if agency else None,
              display_name=p.display_name)


@router.post("/tickets", status_code=202, response_model=Accepted, summary="受理一张工单（派单员/热线平台）",
             responses={**ERRORS, 400: {"model": ErrorOut, "description": "工单无效（原因在 reasons 中），已记入台账"},
                        413: {"model": ErrorOut, "description": "请求体超过 64 KiB"},
                        503: {"model": ErrorOut, "description": "消息总线不可用，工单未受理，可重试"}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": TicketIn.model_json_schema()}}}})
async def intake(request: Request, p: Principal = Depends(api_user)) -> Accepted:
    """校验工单（与其他入口相同的规则）后写入 `tickets.received`，由路由工作进程分拨。"""
    body = await read_limited(request)
    ticket = await run_in_threadpool(console_of(request).intake, p, body)
    return Accepted(id=ticket.id, status="accepted")


@router.get("/tickets", response_model=list[TicketBrief], summary="工单列表与查询", responses={
    **AUTH, 200: {"description": "一页工单（最新受理的在前）", "headers": {"Link": {
        "description": '还有更多工单时给出下一页：`</api/tickets?...&before=<游标>>; rel="next"`；没有此头即已是最后一页',
        "schema": {"type": "string"}}}},
    400: {"model": ErrorOut, "description": "参数有误（如 status 未知、承办单位代码格式不对、before 游标无效、日期格式不对、"
                                                  "查询内容过长或含控制字符）"},
    429: {"model": ErrorOut, "description": "按来电号码查询未命中的次数过多，暂停号码查询（Retry-After 头给出秒数）；"
                                            "按工单编号或关键词查询不受影响"}})
def list_tickets(request: Request, response: Response, p: Principal = Depends(api_user),
                 q: str | None = Query(None, max_length=2 * MAX_QUERY_CHARS,
                                       description="查询：工单编号、来电号码（任意写法）或关键词（空格分隔，须都出现在"
                                                   "编号、标题、内容或地址中）"),
                 status: Status | None = Query(None, description="按状态筛选，如 dispatched、manual"),
                 agency: str | None = Query(None, max_length=32, description="当前承办单位代码"),
                 since: str | None = Query(None, description="受理时间自该日上海时间 0 时起（YYYY-MM-DD，含该日）"),
                 until: str | None = Query(None, description="受理时间到该日上海时间 0 时为止（YYYY-MM-DD，不含该日）"),
                 limit: int = Query(100, ge=1, le=500, description="每页最多多少张"),
                 before: str | None = Query(None, max_length=MAX_CURSOR_CHARS,
                                            description="分页游标：取上一页响应 Link 头（rel=\"next\"）中的地址即可，"
                                                        "不必自己构造")) -> list[TicketBrief]:
    """最新受理的工单在前（受理时间相同的按编号），每页至多 `limit` 张；后面还有时，响应的 `Link` 头给出下一页的地址
    （`rel="next"`，带 `before` 游标），逐页取完不会漏掉或重复工单。`q` 按工单编号、来电号码或关键词查询，可与
    状态、承办单位、受理日期同用。承办单位只得到当前由本单位承办和本单位退回的工单；按编号或来电号码可查到曾派给本单位的任何工单。"""
    position = decode_cursor(before) if before is not None else None
    if p.role == AGENCY and p.agency is None:
        return []
    console = console_of(request)
    filters = ticket_filters(console.now(), q=q, status=status, agency=agency, since=since, until=until)
    # one more than asked for: whether a next page exists, without a count
    rows = search_tickets(console, p, filters, client_address(request), limit=limit + 1, before=position)
    if len(rows) > limit:
        rows = rows[:limit]
        query = {**filters.query, "limit": limit, "before": encode_cursor(rows[-1].received_at, rows[-1].id)}
        # a relative reference (RFC 8288): right behind a proxy that rewrites the host, too
        response.headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
    out = []
    for tk in rows:
        shown = shown_ticket({"title": tk.title, "text": tk.text, "caller_phone": tk.caller_phone},
                             reveal=sees_full_phone(p, tk.current_agency))
        out.append(TicketBrief(id=tk.id, status=tk.status, current_agency=tk.current_agency, attempt=tk.attempt,
                               received_at=tk.received_at, matter=tk.matter, title=shown["title"],
                               text=shown["text"] or "", address=tk.address, request_type=tk.request_type,
                               urgency=tk.urgency, complex_case=tk.complex_case, caller_phone=shown["caller_phone"]))
    return out


@router.get("/tickets/{ticket_id}", response_model=TicketView, summary="一张工单的全部记录",
            responses={**AUTH, **NOT_FOUND})
def get_ticket(ticket_id: str, request: Request, p: Principal = Depends(api_user)) -> dict[str, Any]:
    """状态、分拨决定（事项、法律依据、置信度、备选）、全部办理事件（含被拒绝的及原因）和督办预警。
    承办单位只能查看派给过本单位的工单；其他工单与不存在的工单一样得到 404。"""
    return console_of(request).ticket_json(p, ticket_id)


@router.post("/tickets/{ticket_id}/actions", status_code=202, response_model=Submitted, summary="办理工单",
             responses={**ERRORS, **NOT_FOUND, 400: {"model": ErrorOut, "description": "缺少或错误的字段"},
                        409: {"model": ErrorOut, "description": "工单当前状态不允许此操作，或在所给 version 之后已有变化"},
                        503: {"model": ErrorOut, "description": "消息总线不可用，未提交"}})
def act(ticket_id: str, body: ActionIn, request: Request, p: Principal = Depends(api_user)) -> dict[str, Any]:
    """写一个办理事件到 `tickets.events`。承办单位只能办理当前由本单位承办的工单；退单须有理由代码和法律依据。"""
    options = body.model_dump(mode="json", exclude={"action", "version"}, exclude_none=True)
    return console_of(request).act(p, ticket_id, body.action, options, body.version)


@router.get("/alerts", response_model=list[AlertOut], responses=ERRORS, summary="督办预警")
def alerts(request: Request, p: Principal = Depends(api_user), agency: str | None = Query(None, max_length=32),
           limit: int = Query(50, ge=1, le=500)) -> list[AlertOut]:
    """最新的在前。承办单位只得到关于本单位的预警。"""
    if p.role == AGENCY:
        if agency not in (None, p.agency):
            raise ConsoleError(403, "forbidden", "承办单位只能查看本单位的预警。")
        if p.agency is None:  # a member of no agency (a hand-edited user): none, as in the ticket list, not all
            return []
        agency = p.agency
    rows = queries.recent_alerts(console_of(request).ledger, limit=limit, agency=agency)
    return [AlertOut(alert_key=a.alert_key, rule=a.rule, level=a.level, severity=a.severity, ticket_id=a.ticket_id,
                     agency=a.agency, message=a.message, raised_at=a.raised_at, deadline=a.deadline) for a in rows]


def figures_period(now: datetime, days: int | None, since: str | None, until: str | None,
                   month: str | None) -> tuple[datetime | None, datetime | None]:
    """[since, until) of ``/api/figures``: the last ``days`` calendar days, a calendar month, dates (Shanghai
    midnight; ``until`` not included), or all time; 400 in Chinese for a bad or reversed period."""
    def bad(message: str) -> ConsoleError:
        return ConsoleError(400, "invalid_period", message)

    if days is not None and (since, until, month) != (None, None, None):
        raise bad("days 不能与 since、until、month 同时使用：请只用其中一种方式指定统计时段。")
    if month is not None:
        if (since, until) != (None, None):
            raise bad("month 不能与 since、until 同时使用：month 本身就是一个完整的自然月。")
        try:
            return parse_month(month)
        except ValueError:
            raise bad(f"month 应为 2000 至 2099 年间的月份，格式 YYYY-MM（如 2026-11），"
                      f"而不是 {month[:20]!r}。") from None
    bounds: list[datetime | None] = []
    for name, value in (("since", since), ("until", until)):
        try:
            bounds.append(day_bounds(parse_day(value))[0] if value is not None else None)
        except ValueError:
            raise bad(f"{name} 应为 2000 至 2099 年间的日期，格式 YYYY-MM-DD（如 2026-11-01），"
                      f"而不是 {value[:20]!r}。") from None
    start, end = bounds
    if start is not None and end is not None and end <= start:
        raise bad(f"until（{until}，不含该日）须晚于 since（{since}）。")
    if start is None and end is None:
        return period_start(now, days), None
    return start, end


@router.get("/figures", summary="各承办单位考核指标", responses={**ERRORS, 400: {
    "model": ErrorOut, "description": "统计时段有误（格式不对、until 不晚于 since，或几种方式同时使用）"}})
def figures(request: Request, p: Principal = Depends(api_user), agency: str | None = Query(None, max_length=32),
            days: int | None = Query(None, ge=1, le=3660, description="统计最近多少个自然日（含今天）；不填为全部"),
            since: str | None = Query(None, description="自该日上海时间 0 时起（YYYY-MM-DD，含该日）"),
            until: str | None = Query(None, description="到该日上海时间 0 时为止（YYYY-MM-DD，不含该日）；不填为至今"),
            month: str | None = Query(None, description="一个自然月（YYYY-MM，如 2026-11），用于月度考核；"
                                                        "不能与 days、since、until 同用")
            ) -> dict[str, Any]:
    """按时签收率、按时办结率、退单率、一次派准率、逾期件数、平均办理工作日、重复件数等（定义见 README），
    统计派单时间在所给时段内的工单（`days`、`month`、`since`/`until` 任选一种，都不填为全部）；响应中的
    `since`、`until` 为实际采用的时段（`until` 不含）。承办单位只得到本单位的指标。"""
    if p.role == AGENCY:
        if agency not in (None, p.agency):
            raise ConsoleError(403, "forbidden", "承办单位只能查看本单位的指标。")
        agency = p.agency
    console = console_of(request)
    now = console.now()
    start, end = figures_period(now, days, since, until, month)
    out: dict[str, Any] = {"generated_at": now.isoformat(), "days": days,
                           "since": start.isoformat() if start else None, "until": end.isoformat() if end else None}
    if p.role == AGENCY and agency is None:  # a member of no agency: no agency's figures, rather than all
        return {**out, "agencies": []}
    return {**out, "agencies": [f.to_dict() for f in console.agency_figures(agency, start, end).values()]}
