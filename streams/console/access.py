"""Who may see and do what in the console and the HTTP API (pure rules, no I/O).

Three roles: a **dispatcher** (hotline operator: manual queue, dispatch, intake), a member of one
**agency** (its own tickets only), a **supervisor** (every ticket, alerts and figures). The rules here
decide visibility, phone masking and which lifecycle actions a user may take on a ticket in its current
state; the worker's lifecycle stage stays the final judge of every event, these rules only keep a user
from sending what would be refused (and say why, in Chinese, before anything is sent).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from models.lifecycle import CLOSED_HELD, STATUS_NAMES, Status
from models.lifecycle import ROLE_NAMES as LIFECYCLE_ROLE_NAMES
from models.supervision.rules import when_zh
from streams.cli.agency import Action

DISPATCHER, AGENCY, SUPERVISOR = "dispatcher", "agency", "supervisor"
ROLES = (DISPATCHER, AGENCY, SUPERVISOR)
# the lifecycle's words (its refusals use them too), for the console's roles
ROLE_NAMES = {role: LIFECYCLE_ROLE_NAMES[role] for role in ROLES}

ACTION_NAMES = {
    Action.SIGN: "签收", Action.RETURN: "退单", Action.EXTEND: "申请延期", Action.RESOLVE: "办结",
    Action.REASSIGN: "派单", Action.CLOSE: "关闭", Action.APPROVE_EXTENSION: "批准延期",
    Action.DENY_EXTENSION: "驳回延期", Action.RATE: "回访评价", Action.REOPEN: "重新办理",
}

# Which actions each role may take, and in which ticket states (the lifecycle's own rules, in short).
_AGENCY_ACTIONS: dict[Action, set[str]] = {
    Action.SIGN: {Status.DISPATCHED}, Action.RETURN: {Status.DISPATCHED, Status.SIGNED},
    Action.EXTEND: {Status.SIGNED}, Action.RESOLVE: {Status.SIGNED},
}
_DISPATCHER_ACTIONS: dict[Action, set[str]] = {
    # Not while RETURNED: the router is re-routing it right then, and a dispatch would race its attempt.
    Action.REASSIGN: {Status.MANUAL, Status.DISPATCHED, Status.SIGNED},
    Action.CLOSE: {Status.MANUAL, Status.RESOLVED}, Action.RATE: {Status.RESOLVED, Status.CLOSED},
    Action.REOPEN: {Status.RESOLVED, Status.CLOSED},
    Action.APPROVE_EXTENSION: {Status.SIGNED}, Action.DENY_EXTENSION: {Status.SIGNED},
}
_SUPERVISOR_ACTIONS: dict[Action, set[str]] = {
    Action.APPROVE_EXTENSION: {Status.SIGNED}, Action.DENY_EXTENSION: {Status.SIGNED},
    Action.REOPEN: {Status.RESOLVED, Status.CLOSED},
}
_BY_ROLE = {AGENCY: _AGENCY_ACTIONS, DISPATCHER: _DISPATCHER_ACTIONS, SUPERVISOR: _SUPERVISOR_ACTIONS}
_EXTENSION_DECISIONS = (Action.APPROVE_EXTENSION, Action.DENY_EXTENSION)


@dataclass(frozen=True, slots=True)
class Principal:
    """The user behind a request (from a session or an API token)."""

    user_id: int
    username: str
    role: str
    agency: str | None = None
    display_name: str | None = None

    @property
    def label(self) -> str:
        return self.display_name or self.username

    @property
    def own_agency(self) -> str | None:
        """The agency whose tickets alone this user sees and acts on; None for dispatchers and supervisors."""
        return self.agency if self.role == AGENCY else None


@dataclass(frozen=True, slots=True)
class Denial:
    """Why an action is refused: ``status`` is the HTTP status (403 not yours to take, 409 not now)."""

    status: int
    message: str


def can_view_ticket(p: Principal, current_agency: str | None, dispatched_to: Collection[str]) -> bool:
    """Dispatchers and supervisors see every ticket; an agency only the ones that are or were dispatched to it."""
    if p.role != AGENCY:
        return p.role in (DISPATCHER, SUPERVISOR)
    return p.agency is not None and (p.agency == current_agency or p.agency in dispatched_to)


def not_found_message(p: Principal, ticket_id: str) -> str:
    """The answer for a ticket ``p`` cannot see: the same for a missing one and, for an agency, another agency's
    (a 404 either way, so that ticket numbers cannot be probed for what other agencies handle)."""
    if p.role == AGENCY:
        return f"没有编号为 {ticket_id} 的工单，或该工单未派给本单位（承办单位只能查看派给本单位的工单）。"
    return f"没有编号为 {ticket_id} 的工单。"


def sees_full_phone(p: Principal, current_agency: str | None) -> bool:
    """Only the handling agency (the ticket's current agency) sees the caller's full number."""
    return p.role == AGENCY and current_agency is not None and p.agency == current_agency


def check_action(p: Principal, action: Action, *, ticket_id: str, status: str, current_agency: str | None,
                 extension_pending: bool, return_closes: datetime | None = None,
                 now: datetime | None = None, held_until: datetime | None = None) -> Denial | None:
    """None when ``p`` may take ``action`` on the ticket now; otherwise who-may (403) or not-now (409).

    ``return_closes``: when the 退单 window of the current dispatch closes, if late returns are refused (the
    lifecycle refuses them too; this only says so before anything is sent). ``held_until``: when the workers
    forget a closed ticket (``models.lifecycle.CLOSED_HELD`` after closing), after which they refuse a rating
    or reopening as unknown."""
    allowed = _BY_ROLE.get(p.role, {})
    name = ACTION_NAMES[action]
    if action not in allowed:
        who = "、".join(ROLE_NAMES[r] for r, acts in _BY_ROLE.items() if action in acts)
        return Denial(403, f"{ROLE_NAMES.get(p.role, p.role)}不能{name}；此操作由{who}执行。")
    if p.role == AGENCY and (p.agency is None or p.agency != current_agency):
        return Denial(403, f"工单 {ticket_id} 当前不由本单位承办，不能{name}。")
    if status == Status.RETURNED and action is Action.REASSIGN:
        return Denial(409, f"工单 {ticket_id} 刚被退回，系统正在重新分拨，请稍后刷新再派单。")
    if status not in allowed[action]:
        state = STATUS_NAMES.get(status, status)
        return Denial(409, f"工单 {ticket_id} 当前状态为「{state}」，不能{name}。")
    if action is Action.RETURN and return_closes is not None and now is not None and now > return_closes:
        return Denial(409, f"工单 {ticket_id} 已超过退单时限（{when_zh(return_closes)}），应予办理；"
                           "确非本单位职责的，请联系热线调度员改派。")
    if action in (Action.RATE, Action.REOPEN) and status == Status.CLOSED and held_until is not None \
            and now is not None and now > held_until:
        return Denial(409, f"工单 {ticket_id} 已关闭超过{CLOSED_HELD.days}天，不再受理{name}；来电人再次反映的，"
                           "请作为新工单受理（系统会按重复件关联）。")
    if action is Action.EXTEND and extension_pending:
        return Denial(409, f"工单 {ticket_id} 已有延期申请等待审批。")
    if action in _EXTENSION_DECISIONS and not extension_pending:
        return Denial(409, f"工单 {ticket_id} 没有待审批的延期申请。")
    return None


def allowed_actions(p: Principal, *, ticket_id: str, status: str, current_agency: str | None,
                    extension_pending: bool, return_closes: datetime | None = None,
                    now: datetime | None = None, held_until: datetime | None = None) -> list[Action]:
    """The actions to offer ``p`` on this ticket now (the buttons of the ticket page)."""
    return [a for a in _BY_ROLE.get(p.role, {}) if check_action(
        p, a, ticket_id=ticket_id, status=status, current_agency=current_agency,
        extension_pending=extension_pending, return_closes=return_closes, now=now,
        held_until=held_until) is None]


def extension_pending(event_types: list[str]) -> bool:
    """Is an extension request waiting, given the ticket's accepted event types in order?"""
    pending = False
    for kind in event_types:
        if kind == "extension_requested":
            pending = True
        elif kind in ("extension_approved", "extension_denied", "returned", "reassigned", "routed", "resolved"):
            pending = False
    return pending
