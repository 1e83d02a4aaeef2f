"""The HTTP API (``/api``): intake, tickets, actions, alerts and figures, with bearer tokens.

Documented by the OpenAPI document FastAPI builds from these declarations (``/api/openapi.json``; a
readable page at ``/api-reference``; ``hotline web --openapi`` prints it). Errors are JSON
``{"error": <code>, "message": <中文说明>}``: 400 invalid input, 401 no or bad token, 403 not yours,
404 unknown, 409 not in the ticket's current state, 413 body over 64 KiB, 503 broker unavailable.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from models.lifecycle import RETURN_REASONS, Status
from models.tickets import TicketIn, mask_caller_phone, mask_phone
from streams.cli.agency import Action
from streams.console import queries
from streams.console.access import AGENCY, Principal, sees_full_phone
from streams.console.accounts import principal_for_token
from streams.console.service import MAX_BODY_BYTES, Console, ConsoleError

router = APIRouter(prefix="/api", tags=["api"])
bearer = HTTPBearer(auto_error=False, description="hotline users token 用户名 生成的令牌")

ReasonCode = StrEnum("ReasonCode", {code: code for code in RETURN_REASONS})  # type: ignore[misc]


class ErrorOut(BaseModel):
    error: str = Field(description="机器可读的错误代码，如 unauthorized、forbidden、invalid_ticket")
    message: str = Field(description="给人看的中文说明")


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "没有令牌，或令牌无效、已吊销、用户已停用"},
    403: {"model": ErrorOut, "description": "无权访问（如承办单位访问非本单位的工单）"},
}


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


class Submitted(BaseModel):
    status: str = Field("submitted", description="已写入 tickets.events，等待工作进程按状态机校验并记录")
    event_id: str
    ticket_id: str
    type: str


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


@router.get("/me", response_model=Me, responses=ERRORS, summary="当前令牌的用户")
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


@router.get("/tickets", response_model=list[TicketBrief], responses=ERRORS, summary="工单列表")
def list_tickets(request: Request, p: Principal = Depends(api_user),
                 status: Status | None = Query(None, description="按状态筛选，如 dispatched、manual"),
                 limit: int = Query(100, ge=1, le=500)) -> list[TicketBrief]:
    """最新受理的工单在前。承办单位只得到当前由本单位承办的工单。"""
    agency = p.agency if p.role == AGENCY else None
    if p.role == AGENCY and agency is None:
        return []
    rows = queries.list_tickets(console_of(request).ledger, agency=agency, status=status, limit=limit)
    out = []
    for tk in rows:
        reveal = sees_full_phone(p, tk.current_agency)
        shown = (lambda v: v) if reveal else mask_phone
        out.append(TicketBrief(id=tk.id, status=tk.status, current_agency=tk.current_agency, attempt=tk.attempt,
                               received_at=tk.received_at, matter=tk.matter, title=shown(tk.title),
                               text=shown(tk.text) or "", address=tk.address, request_type=tk.request_type,
                               urgency=tk.urgency,
                               caller_phone=tk.caller_phone if reveal else mask_caller_phone(tk.caller_phone)))
    return out


@router.get("/tickets/{ticket_id}", response_model=TicketView, summary="一张工单的全部记录",
            responses={**ERRORS, 404: {"model": ErrorOut, "description": "没有这张工单"}})
def get_ticket(ticket_id: str, request: Request, p: Principal = Depends(api_user)) -> dict[str, Any]:
    """状态、分拨决定（事项、法律依据、置信度、备选）、全部办理事件（含被拒绝的及原因）和督办预警。"""
    return console_of(request).ticket_json(p, ticket_id)


@router.post("/tickets/{ticket_id}/actions", status_code=202, response_model=Submitted, summary="办理工单",
             responses={**ERRORS, 400: {"model": ErrorOut, "description": "缺少或错误的字段"},
                        404: {"model": ErrorOut, "description": "没有这张工单"},
                        409: {"model": ErrorOut, "description": "工单当前状态不允许此操作"},
                        503: {"model": ErrorOut, "description": "消息总线不可用，未提交"}})
def act(ticket_id: str, body: ActionIn, request: Request, p: Principal = Depends(api_user)) -> dict[str, Any]:
    """写一个办理事件到 `tickets.events`。承办单位只能办理当前由本单位承办的工单；退单须有理由代码和法律依据。"""
    options = body.model_dump(mode="json", exclude={"action"}, exclude_none=True)
    return console_of(request).act(p, ticket_id, body.action, options)


@router.get("/alerts", response_model=list[AlertOut], responses=ERRORS, summary="督办预警")
def alerts(request: Request, p: Principal = Depends(api_user), agency: str | None = Query(None, max_length=32),
           limit: int = Query(50, ge=1, le=500)) -> list[AlertOut]:
    """最新的在前。承办单位只得到关于本单位的预警。"""
    if p.role == AGENCY:
        if agency not in (None, p.agency):
            raise ConsoleError(403, "forbidden", "承办单位只能查看本单位的预警。")
        agency = p.agency
    rows = queries.recent_alerts(console_of(request).ledger, limit=limit, agency=agency)
    return [AlertOut(alert_key=a.alert_key, rule=a.rule, level=a.level, severity=a.severity, ticket_id=a.ticket_id,
                     agency=a.agency, message=a.message, raised_at=a.raised_at, deadline=a.deadline) for a in rows]


@router.get("/figures", responses=ERRORS, summary="各承办单位考核指标")
def figures(request: Request, p: Principal = Depends(api_user), agency: str | None = Query(None, max_length=32),
            days: int | None = Query(None, ge=1, le=3660, description="统计最近多少天；不填为全部")
            ) -> dict[str, Any]:
    """按时签收率、按时办结率、退单率、一次派准率、逾期件数、平均办理工作日、重复件数等（定义见 README）。
    承办单位只得到本单位的指标。"""
    if p.role == AGENCY:
        if agency not in (None, p.agency):
            raise ConsoleError(403, "forbidden", "承办单位只能查看本单位的指标。")
        agency = p.agency
    console = console_of(request)
    return {"generated_at": console.now().isoformat(), "days": days,
            "agencies": [f.to_dict() for f in console.agency_figures(agency, days).values()]}
