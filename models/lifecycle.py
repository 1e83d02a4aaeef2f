"""The ticket lifecycle as a pure state machine: which event may happen in which state, and what follows.

    received -> dispatched (auto, or by a dispatcher) | manual -> signed -> resolved -> closed
                returned (退单: reason code + legal basis or explanation) -> re-routed, attempt n+1;
                after max_attempts returned dispatches -> manual queue, marked for designation (指定承办)
                extension requested -> approved / denied;  rated unsatisfied -> reopened

:func:`apply` takes the current state and one event (any object with the event attributes, e.g. the
faust Records of ``models.events``) and returns the next state plus what the stage must do next
(re-route, designate, dispatch), or a :class:`Refusal` whose reason goes to the ticket's timeline, to the user
who acted and to the dead-letter topic: in Chinese first, in the console's words, then in English. The
dispatch such an effect makes stays ``pending`` in the state until its 'routed' event lands: at most one per
attempt number, and a redelivery of the event that caused it yields the effect again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from models.workcalendar import as_local, span_zh


class Status(StrEnum):
    RECEIVED = "received"
    DISPATCHED = "dispatched"  # on an agency's queue, waiting to be signed for
    MANUAL = "manual"  # on the dispatchers' queue
    SIGNED = "signed"  # the agency is handling it
    RETURNED = "returned"  # 退单, waiting to be re-routed
    RESOLVED = "resolved"
    CLOSED = "closed"


class Role(StrEnum):
    SYSTEM = "system"  # the router itself
    AGENCY = "agency"
    DISPATCHER = "dispatcher"
    SUPERVISOR = "supervisor"
    CALLCENTER = "callcenter"  # 回访: rates and reopens


EVENT_TYPES = ("routed", "signed", "returned", "reassigned", "extension_requested", "extension_approved",
               "extension_denied", "resolved", "rated", "reopened", "closed")

RETURN_REASONS: dict[str, str] = {
    "NOT_OUR_DUTY": "不属于本单位法定职责",
    "OTHER_JURISDICTION": "不属于本辖区管辖",
    "LITIGATION": "已进入诉讼、仲裁、行政复议等法定程序",
    "CIVIL_DISPUTE": "属于民事纠纷，应通过协商、调解或诉讼解决",
    "DUPLICATE": "与在办工单重复",
    "INFO_MISSING": "诉求地址或事实不清，无法核实",
    "NOT_GOVERNMENT": "属于企业经营或其他非政府职能事项",
}

RATINGS = ("satisfied", "unsatisfied")

# The product's words for statuses, events, roles and ratings, as the console shows them. A refusal's reason
# reaches the user who acted (the console's timeline and messages): it says in these words what was refused,
# then the same in English after " / " for logs and operators.
STATUS_NAMES: dict[str, str] = {
    Status.RECEIVED: "已受理", Status.DISPATCHED: "待签收", Status.MANUAL: "待人工派单", Status.SIGNED: "办理中",
    Status.RETURNED: "已退单", Status.RESOLVED: "已办结", Status.CLOSED: "已关闭",
}
EVENT_NAMES: dict[str, str] = {
    "routed": "派发", "signed": "签收", "returned": "退单", "reassigned": "改派", "extension_requested": "申请延期",
    "extension_approved": "批准延期", "extension_denied": "驳回延期", "resolved": "办结", "rated": "回访评价",
    "reopened": "重新办理", "closed": "关闭",
}
ROLE_NAMES: dict[str, str] = {
    Role.SYSTEM: "分拨系统", Role.AGENCY: "承办单位", Role.DISPATCHER: "派单员", Role.SUPERVISOR: "督办人员",
    Role.CALLCENTER: "回访中心",
}
RATING_NAMES: dict[str, str] = {"satisfied": "满意", "unsatisfied": "不满意"}
# Workers hold a closed ticket this long, then forget it (streams.supervision's daily prune): the longest window
# a rule looks back (重复件, 30 days) must fit in it. A rating or reopening after that is refused as unknown,
# and the console says so before sending one: a caller who comes back later is a new ticket (linked as 重复件).
CLOSED_HELD = timedelta(days=30)
SEEN_EVENTS_KEPT = 64  # redeliveries arrive close together; a bounded memory of event ids suffices


class LifecycleEvent(Protocol):
    event_id: str
    ticket_id: str
    type: str
    actor: str
    role: str
    agency: str | None
    occurred_at: datetime


@dataclass(frozen=True)
class TicketState:
    ticket_id: str
    status: str = Status.RECEIVED
    agency: str | None = None
    attempt: int = 0
    returned_by: tuple[str, ...] = ()  # each returning agency once
    returns: int = 0  # dispatches returned (退单), an agency returning twice counted twice: decides designation
    # routings that put it on an agency's queue (router or dispatcher): what a clerk calls 第N次派发. Not
    # ``attempt``, which also counts routings to the dispatchers' manual queue
    dispatches: int = 0
    designation: bool = False  # after the last attempt: the hotline must designate a handler
    manual_reason: str | None = None
    dispatched_at: datetime | None = None
    signed_at: datetime | None = None
    handling_started_at: datetime | None = None  # signature, or the last reopen
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    extension_pending_days: int = 0
    extension_days_granted: int = 0
    rating: str | None = None
    reopen_count: int = 0
    updated_at: datetime | None = None  # the last accepted step, by anyone
    # The handling agency's own last accepted step of this handling (签收, 延期申请, 办结): with the dispatch
    # and a reopen, what the agency's next step follows, so what its time is judged against (stamped_in_time)
    agency_acted_at: datetime | None = None
    seen_events: tuple[str, ...] = field(default=())
    # The dispatch (attempt n+1) decided but not landed yet, i.e. its 'routed' event has not come back:
    # "reroute" | "designate" | "dispatch" (to pending_agency). Kept in the state, not only in memory, so
    # that a redelivery of pending_event, or the stage's sweep of stuck dispatches, runs the follow-up again
    # after a crash or a failed follow-up; pending_actor is who caused it (a dispatch is decided in their name).
    pending: str | None = None
    pending_agency: str | None = None
    pending_event: str | None = None
    pending_actor: str | None = None

    def pending_effect(self) -> Effect | None:
        """What the stage must still do for the pending dispatch (idempotent: routing id ``<ticket>#<n+1>``)."""
        attempt = self.attempt + 1
        if self.pending == "dispatch" and self.pending_agency:
            return Dispatch(self.pending_agency, attempt)
        if self.pending == "designate":
            return Designate(self.returns, self.returned_by, attempt)
        if self.pending == "reroute":
            return Reroute(attempt, self.returned_by)
        return None

    def to_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in self.__dataclass_fields__}  # flat: asdict deep-copies
        for k, v in d.items():
            if isinstance(v, datetime):
                d[k] = v.isoformat()
            elif isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TicketState:
        kwargs: dict[str, Any] = {}
        for name, f in cls.__dataclass_fields__.items():
            if name not in d:
                continue
            v = d[name]
            if isinstance(v, list):
                v = tuple(v)
            elif isinstance(v, str) and "datetime" in str(f.type):
                v = datetime.fromisoformat(v)
            kwargs[name] = v
        if "returns" not in d:  # stored before returns were counted: one return per listed agency
            kwargs["returns"] = len(kwargs.get("returned_by", ()))
        if "dispatches" not in d:
            kwargs["dispatches"] = dispatches_before_counted(kwargs["returns"], kwargs.get("agency"))
        return cls(**kwargs)


def dispatches_before_counted(returns: int, agency: str | None) -> int:
    """The dispatches of a ticket stored before they were counted: each return ended one, and a current agency
    holds one. (A dispatch a dispatcher took away from its agency is missed: a lower bound.)"""
    return returns + (1 if agency else 0)


@dataclass(frozen=True)
class Reroute:
    """Classify again, excluding the agencies that returned it; this is attempt ``attempt``."""

    attempt: int
    exclude: tuple[str, ...]


@dataclass(frozen=True)
class Designate:
    """No taker after ``attempts`` returned dispatches: to the manual queue as attempt ``attempt``, marked for
    designation; tell supervisors."""

    attempts: int
    returned_by: tuple[str, ...]
    attempt: int


@dataclass(frozen=True)
class Dispatch:
    """A dispatcher assigned the ticket: put it on that agency's queue (attempt ``attempt``)."""

    agency: str
    attempt: int


Effect = Reroute | Designate | Dispatch


@dataclass(frozen=True)
class Outcome:
    state: TicketState
    effects: tuple[Effect, ...] = ()
    duplicate: bool = False  # the event was seen before: nothing changed, nothing to do


@dataclass(frozen=True)
class Refusal:
    reason: str  # "中文 / English": the user's words first, then the same for logs and operators


def said_in_chinese(reason: str) -> str:
    """A refusal's reason within a Chinese sentence (the console's message to the user who acted): its Chinese
    part. A reason recorded before reasons were bilingual has none and is said whole."""
    return reason.split(" / ", 1)[0]


_STATE_FIELDS = frozenset(f.name for f in fields(TicketState))


def _remember(state: TicketState, event: LifecycleEvent, **changes: Any) -> TicketState:
    seen = (*state.seen_events, event.event_id)[-SEEN_EVENTS_KEPT:]
    if not changes.keys() <= _STATE_FIELDS:  # a typo in a rule: as loud as dataclasses.replace
        raise TypeError(f"TicketState has no field(s) {sorted(changes.keys() - _STATE_FIELDS)}")
    # dataclasses.replace, without its trip through a frozen class's __init__ (7x slower): every event a worker
    # applies, and every one a report replays, makes a new state. TicketState has no __post_init__ to skip.
    new = object.__new__(TicketState)
    values = new.__dict__
    values.update(state.__dict__)
    values.update(changes, seen_events=seen, updated_at=event.occurred_at)
    return new


def _text(event: Any, name: str) -> str:
    value = getattr(event, name, None)
    return value.strip() if isinstance(value, str) else ""


def _named(event: Any) -> str:
    """The event's action as the console names it, e.g. 「签收」."""
    return f"「{EVENT_NAMES.get(event.type, event.type)}」"


def _when_zh(moment: datetime, beside: datetime | None = None) -> str:
    """12月5日09:30; with the year when it is not the year of ``beside`` (the other time of a comparison)."""
    m = as_local(moment)
    year = f"{m.year}年" if beside is not None and as_local(beside).year != m.year else ""
    return f"{year}{m.month}月{m.day}日{m:%H:%M}"


def apply(state: TicketState | None, event: LifecycleEvent, *, max_attempts: int = 3,
          known_agencies: Collection[str] = (), return_closes: datetime | None = None,
          now: datetime | None = None, max_skew: timedelta = timedelta(0)) -> Outcome | Refusal:
    """The next state after ``event``, with the follow-up effects; or why the event is refused.

    ``return_closes``: the end of the current dispatch's 退单 window, when returns after it are refused (the
    agency must then handle the ticket; a dispatcher can still reassign it). The caller knows the time limits;
    None accepts a return whenever it comes (supervision flags it late).

    ``now``: the stage's clock, for the check of the event's ``occurred_at`` (:func:`stamped_in_time`), with
    ``max_skew`` the clocks' allowed difference. None skips that check: a replay of events accepted before."""
    if event.type not in EVENT_TYPES:
        return Refusal(f"未知的事件类型 {event.type!r} / unknown event type {event.type!r}; "
                       f"expected one of {', '.join(EVENT_TYPES)}")
    if state is None:
        if event.type != "routed":
            return Refusal(f"工单 {event.ticket_id} 尚未派发，系统中没有它的办理记录，不能{_named(event)} / "
                           f"ticket {event.ticket_id} is unknown to the router; "
                           f"'{event.type}' needs a routed ticket")
        state = TicketState(ticket_id=event.ticket_id)
    if event.event_id in state.seen_events:
        # A redelivered event whose dispatch has not landed: its follow-up may have failed or been cut
        # short by a crash after the state was stored, so it is due again (idempotent by routing id).
        pending = state.pending_effect() if state.pending_event == event.event_id else None
        return Outcome(state, (pending,) if pending else (), duplicate=True)
    handler = _HANDLERS[event.type]
    outcome = handler(state, event, max_attempts, known_agencies)
    if (return_closes is not None and event.type == "returned" and isinstance(outcome, Outcome)
            and event.occurred_at > return_closes):  # refused only once it would otherwise be accepted
        return Refusal(f"退单时限已过（{_when_zh(return_closes)}），应予办理；"
                       "确非本单位职责的，请联系热线派单员改派 / "
                       f"the return window closed at {return_closes.isoformat()}: the agency must handle the "
                       "ticket now; a dispatcher can still reassign it")
    if now is not None and isinstance(outcome, Outcome) and not outcome.duplicate \
            and (refusal := stamped_in_time(state, event, now, max_skew)):
        return refusal  # as above: said only of an event that would otherwise be accepted
    return outcome


def stamped_in_time(state: TicketState, event: LifecycleEvent, now: datetime,
                    max_skew: timedelta) -> Refusal | None:
    """Why ``event`` cannot have happened when it says, or None. Its ``occurred_at`` comes from the sender (an
    agency's system, the console, a CLI): one later than ``now`` makes stage durations negative and deadlines
    meaningless; one earlier than the ticket's previous accepted step (the last event applied to ``state``: the
    dispatch a sign-for answers, the sign-for a resolution follows) would let an agency sign or resolve "before"
    it was dispatched, or before its own last step, and dodge an overdue mark. ``max_skew`` is how far a sender's
    clock may be off ours, so a sender whose clock is a little off is not refused for it; against the previous
    step twice that: two senders (an agency ahead, the call-back centre behind) may each be off by it the other way.

    An agency's step follows its dispatch, a reopen and its own last step, not what others did meanwhile: a
    办结 its system sent late, after a supervisor had approved its extension, happened before that approval and
    is accepted at its time (:func:`_previous_step`).

    Not of a 'routed' event: only the router writes one, stamped by the deployment's clock when the routing is
    announced (after the step that caused it). A refused one would strand its ticket: the ledger's row of its
    event id stops the catch-up and the re-announcement (``Ledger.unrecorded_routing``, ``unannounced``)."""
    if event.type == "routed":
        return None
    at = event.occurred_at
    if at > now + max_skew:
        return Refusal(f"{_named(event)}的办理时间（{_when_zh(at, now)}）晚于当前时间（{_when_zh(now, at)}），"
                       f"超出允许误差{span_zh(max_skew)}，请核对发送方系统时间后重新提交 / occurred_at "
                       f"{at.isoformat()} is later than now ({as_local(now).isoformat()}) by more than the "
                       f"allowed clock skew ({max_skew.total_seconds():g} s)")
    previous, apart = _previous_step(state, event), 2 * max_skew
    if previous is not None and at < previous - apart:
        return Refusal(f"{_named(event)}的办理时间（{_when_zh(at, previous)}）早于上一环节"
                       f"（{_when_zh(previous, at)}），超出允许误差{span_zh(apart)}，不予受理 / occurred_at "
                       f"{at.isoformat()} is earlier than the ticket's previous step ({as_local(previous).isoformat()}) "
                       f"by more than two senders' allowed clock skew ({apart.total_seconds():g} s)")
    return None


def _previous_step(state: TicketState, event: LifecycleEvent) -> datetime | None:
    """The step ``event`` follows, whose time it may not precede (beyond the clocks' tolerance)."""
    if event.role != Role.AGENCY:
        return state.updated_at
    steps = [t for t in (state.dispatched_at, state.handling_started_at, state.agency_acted_at) if t is not None]
    return max(steps, default=state.updated_at)


def _require_current_agency(state: TicketState, event: LifecycleEvent) -> Refusal | None:
    if event.role != Role.AGENCY:
        return Refusal(f"{_named(event)}由承办单位办理，{ROLE_NAMES.get(event.role, event.role)}不能操作 / "
                       f"'{event.type}' is done by the handling agency, not by role {event.role!r}")
    if not event.agency or event.agency != state.agency:
        return Refusal(f"单位 {event.agency or '（未注明）'} 不是工单 {state.ticket_id} 的当前承办单位"
                       f"（当前：{state.agency or '无'}），不能{_named(event)} / "
                       f"agency {event.agency or '(none)'} is not the current handler of {state.ticket_id} "
                       f"(current: {state.agency or 'none'})")
    return None


def _refuse_state(state: TicketState, event: LifecycleEvent, allowed: Collection[str]) -> Refusal | None:
    if state.status not in allowed:
        when = "、".join(f"「{name}」" for status, name in STATUS_NAMES.items() if status in allowed)
        return Refusal(f"工单当前状态为「{STATUS_NAMES.get(state.status, state.status)}」，不能{_named(event)}"
                       f"（仅在{when}时可以） / '{event.type}' is not allowed while the ticket is {state.status} "
                       f"(allowed in: {', '.join(sorted(allowed))})")
    return None


def _routed(state: TicketState, event: Any, max_attempts: int, known: Collection[str]) -> Outcome | Refusal:
    if event.role != Role.SYSTEM:
        return Refusal("「派发」只能由分拨系统写入 / 'routed' is written by the router only")
    attempt = int(getattr(event, "attempt", 0) or 0)
    if attempt <= state.attempt:
        return Outcome(state, duplicate=True)  # an older decision arriving late: nothing changes
    if refusal := _refuse_state(state, event, {Status.RECEIVED, Status.RETURNED, Status.MANUAL}):
        return refusal
    # A new attempt starts a new handling: the previous handler's signature, clock and extensions go.
    fresh = {"signed_at": None, "handling_started_at": None, "agency_acted_at": None, "extension_pending_days": 0,
             "extension_days_granted": 0, "pending": None, "pending_agency": None, "pending_event": None,
             "pending_actor": None}
    decision = getattr(event, "decision", "")
    if decision == "auto" and event.agency:
        return Outcome(_remember(state, event, status=Status.DISPATCHED, agency=event.agency, attempt=attempt,
                                 dispatches=state.dispatches + 1, dispatched_at=event.occurred_at,
                                 manual_reason=None, **fresh))
    return Outcome(_remember(state, event, status=Status.MANUAL, agency=None, attempt=attempt,
                             manual_reason=_text(event, "reason") or decision,
                             designation=bool(getattr(event, "designation", False)), **fresh))


def _signed(state: TicketState, event: Any, _m: int, _k: Collection[str]) -> Outcome | Refusal:
    if refusal := _require_current_agency(state, event) or _refuse_state(state, event, {Status.DISPATCHED}):
        return refusal
    return Outcome(_remember(state, event, status=Status.SIGNED, signed_at=event.occurred_at,
                             handling_started_at=event.occurred_at, agency_acted_at=event.occurred_at))


def _returned(state: TicketState, event: Any, max_attempts: int, _k: Collection[str]) -> Outcome | Refusal:
    if refusal := _require_current_agency(state, event) or \
            _refuse_state(state, event, {Status.DISPATCHED, Status.SIGNED}):
        return refusal
    code = _text(event, "reason_code")
    if code not in RETURN_REASONS:
        said = f"退单理由 {code} 不在规定的列表中" if code else "退单须选择退单理由"
        listed = "、".join(f"{k} {v}" for k, v in RETURN_REASONS.items())
        return Refusal(f"{said}（{listed}） / a return needs reason_code from the fixed list "
                       f"({', '.join(RETURN_REASONS)}); got {code or 'none'}")
    if not (_text(event, "basis") or _text(event, "explanation")):
        return Refusal("退单须写明法律依据，或说明为何不属于本单位职责 / "
                       "a return (退单) needs the legal basis or an explanation of why it is not this agency's")
    returned_by = tuple(dict.fromkeys((*state.returned_by, event.agency)))
    # Designation counts dispatches to agencies that were returned, not state.attempt: that also counts
    # routings to the manual queue, which no agency refused.
    returns = state.returns + 1
    new = _remember(state, event, status=Status.RETURNED, returned_by=returned_by, returns=returns, agency=None,
                    extension_pending_days=0, pending="designate" if returns >= max_attempts else "reroute",
                    pending_agency=None, pending_event=event.event_id, pending_actor=event.actor)
    return Outcome(new, (new.pending_effect(),))


def _reassigned(state: TicketState, event: Any, _m: int, known: Collection[str]) -> Outcome | Refusal:
    if event.role not in (Role.DISPATCHER, Role.SUPERVISOR):
        return Refusal("只有派单员或督办人员可以改派工单 / only a dispatcher (or supervisor) can reassign a ticket")
    if refusal := _refuse_state(state, event, {Status.MANUAL, Status.RETURNED, Status.DISPATCHED, Status.SIGNED}):
        return refusal
    target = _text(event, "target_agency")
    if not target or (known and target not in known):
        return Refusal(f"没有代码为 {target or '（未填写）'} 的承办单位，不能改派 / "
                       f"target_agency {target or '(none)'} is not a known agency code")
    if target == state.agency:
        return Refusal(f"工单已由 {target} 承办，无需改派 / the ticket is already with {target}")
    if state.pending:
        # One dispatch per attempt number: a second one would put the same routing id on two agencies'
        # queues. Refused rather than numbered n+2, since the first would still reach its agency and land
        # as the handler. The dispatcher reassigns again once it has landed.
        if state.pending == "dispatch" and target == state.pending_agency:
            # the same choice again (a stuck dispatch, a double click): send the same dispatch again
            return Outcome(_remember(state, event, pending_event=event.event_id, pending_actor=event.actor),
                           (Dispatch(target, state.attempt + 1),))
        going = {"dispatch": f"to {state.pending_agency}", "reroute": "re-routing after a return",
                 "designate": "to the manual queue for designation"}.get(state.pending, state.pending)
        # In the words of the ticket's page: its dispatches to agencies (派发次数), or, for a routing that may
        # go to the manual queue, its routings (分拨说明, numbered by attempt)
        going_zh = {"dispatch": f"第 {state.dispatches + 1} 次派发（派往 {state.pending_agency}）",
                    "reroute": f"第 {state.attempt + 1} 次分拨（退单后重新分拨）",
                    "designate": f"第 {state.attempt + 1} 次分拨（转人工派单、待指定承办）"}.get(
            state.pending, f"第 {state.attempt + 1} 次分拨（{state.pending}）")
        return Refusal(f"工单的{going_zh}尚未完成，请稍后刷新，待其完成后再改派 / "
                       f"dispatch attempt {state.attempt + 1} of {state.ticket_id} ({going}) has not landed yet; "
                       f"reassign once it has")
    # Until the dispatch lands (as a 'routed' event) the ticket waits with the dispatchers.
    # A pending extension was the old handler's request: it must not be approved for the new one.
    new = _remember(state, event, status=Status.MANUAL, agency=None, manual_reason="reassigned",
                    extension_pending_days=0, pending="dispatch", pending_agency=target,
                    pending_event=event.event_id, pending_actor=event.actor)
    return Outcome(new, (Dispatch(target, state.attempt + 1),))


def _extension_requested(state: TicketState, event: Any, _m: int, _k: Collection[str]) -> Outcome | Refusal:
    if refusal := _require_current_agency(state, event) or _refuse_state(state, event, {Status.SIGNED}):
        return refusal
    if state.extension_pending_days:
        return Refusal("已有延期申请等待审批 / an extension request is already waiting for a decision")
    days = getattr(event, "days", 0)
    if not isinstance(days, int) or not 1 <= days <= 30:
        return Refusal("延期天数须为 1 至 30 个工作日 / an extension needs 'days' between 1 and 30 working days")
    if not _text(event, "explanation"):
        return Refusal("申请延期须说明理由 / an extension request needs an explanation")
    return Outcome(_remember(state, event, extension_pending_days=days, agency_acted_at=event.occurred_at))


def _extension_decided(state: TicketState, event: Any, _m: int, _k: Collection[str]) -> Outcome | Refusal:
    if event.role not in (Role.SUPERVISOR, Role.DISPATCHER):
        return Refusal("延期申请由督办人员或派单员审批 / extensions are approved or denied by a supervisor or dispatcher")
    if not state.extension_pending_days:
        return Refusal("没有待审批的延期申请 / there is no pending extension request to decide")
    granted = state.extension_days_granted + (state.extension_pending_days if event.type == "extension_approved"
                                              else 0)
    return Outcome(_remember(state, event, extension_pending_days=0, extension_days_granted=granted))


def _resolved(state: TicketState, event: Any, _m: int, _k: Collection[str]) -> Outcome | Refusal:
    if refusal := _require_current_agency(state, event) or _refuse_state(state, event, {Status.SIGNED}):
        return refusal
    if not _text(event, "reply"):
        return Refusal("办结须填写答复群众的内容 / a resolution needs the reply text given to the citizen")
    return Outcome(_remember(state, event, status=Status.RESOLVED, resolved_at=event.occurred_at,
                             extension_pending_days=0, agency_acted_at=event.occurred_at))


def _rated(state: TicketState, event: Any, _m: int, _k: Collection[str]) -> Outcome | Refusal:
    if event.role not in (Role.CALLCENTER, Role.DISPATCHER):
        return Refusal("回访评价由回访中心或派单员录入 / ratings are recorded by the call-back centre or a dispatcher")
    if refusal := _refuse_state(state, event, {Status.RESOLVED, Status.CLOSED}):
        return refusal
    rating = _text(event, "rating")
    if rating not in RATINGS:
        return Refusal(f"回访评价须为 {'或 '.join(f'{r}（{RATING_NAMES[r]}）' for r in RATINGS)} / "
                       f"rating must be one of {', '.join(RATINGS)}")
    return Outcome(_remember(state, event, rating=rating))


def _reopened(state: TicketState, event: Any, _m: int, _k: Collection[str]) -> Outcome | Refusal:
    if event.role not in (Role.CALLCENTER, Role.DISPATCHER, Role.SUPERVISOR):
        return Refusal("只有回访中心、派单员或督办人员可以重新办理工单 / "
                       "only the call-back centre, a dispatcher or a supervisor can reopen a ticket")
    if refusal := _refuse_state(state, event, {Status.RESOLVED, Status.CLOSED}):
        return refusal
    reopened = {"resolved_at": None, "closed_at": None, "rating": None, "reopen_count": state.reopen_count + 1,
                "extension_days_granted": 0, "extension_pending_days": 0}
    if state.agency is None:
        # Closed from the manual queue, never handled: no agency to hand it back to (a signed ticket without
        # one gets overdue notices addressed to nobody), so it goes back to the dispatchers to assign.
        return Outcome(_remember(state, event, status=Status.MANUAL, manual_reason="reopened",
                                 handling_started_at=None, **reopened))
    # The same agency handles it again; a new handling clock starts now.
    return Outcome(_remember(state, event, status=Status.SIGNED, handling_started_at=event.occurred_at,
                             **reopened))


def _closed(state: TicketState, event: Any, _m: int, _k: Collection[str]) -> Outcome | Refusal:
    if event.role not in (Role.CALLCENTER, Role.DISPATCHER, Role.SYSTEM):
        return Refusal("工单由回访中心或派单员关闭 / tickets are closed by the call-back centre or a dispatcher")
    allowed = {Status.RESOLVED} | ({Status.MANUAL} if event.role == Role.DISPATCHER else set())
    if refusal := _refuse_state(state, event, allowed):
        return refusal
    return Outcome(_remember(state, event, status=Status.CLOSED, closed_at=event.occurred_at))


_HANDLERS = {
    "routed": _routed, "signed": _signed, "returned": _returned, "reassigned": _reassigned,
    "extension_requested": _extension_requested, "extension_approved": _extension_decided,
    "extension_denied": _extension_decided, "resolved": _resolved, "rated": _rated, "reopened": _reopened,
    "closed": _closed,
}
