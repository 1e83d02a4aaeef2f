"""The ticket lifecycle as a pure state machine: which event may happen in which state, and what follows.

    received -> dispatched (auto, or by a dispatcher) | manual -> signed -> resolved -> closed
                returned (退单: reason code + legal basis or explanation) -> re-routed, attempt n+1;
                after max_attempts returned dispatches -> manual queue, marked for designation (指定承办)
                extension requested -> approved / denied;  rated unsatisfied -> reopened

:func:`apply` takes the current state and one event (any object with the event attributes, e.g. the
faust Records of ``models.events``) and returns the next state plus what the stage must do next
(re-route, designate, dispatch), or a :class:`Refusal` whose reason goes to the dead-letter topic. The
dispatch such an effect makes stays ``pending`` in the state until its 'routed' event lands: at most one per
attempt number, and a redelivery of the event that caused it yields the effect again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


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
    updated_at: datetime | None = None
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
        return cls(**kwargs)


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
    reason: str


def _remember(state: TicketState, event: LifecycleEvent, **changes: Any) -> TicketState:
    seen = (*state.seen_events, event.event_id)[-SEEN_EVENTS_KEPT:]
    return replace(state, seen_events=seen, updated_at=event.occurred_at, **changes)


def _text(event: Any, name: str) -> str:
    value = getattr(event, name, None)
    return value.strip() if isinstance(value, str) else ""


def apply(state: TicketState | None, event: LifecycleEvent, *, max_attempts: int = 3,
          known_agencies: Collection[str] = (), return_closes: datetime | None = None) -> Outcome | Refusal:
    """The next state after ``event``, with the follow-up effects; or why the event is refused.

    ``return_closes``: the end of the current dispatch's 退单 window, when returns after it are refused (the
    agency must then handle the ticket; a dispatcher can still reassign it). The caller knows the time limits;
    None accepts a return whenever it comes (supervision flags it late)."""
    if event.type not in EVENT_TYPES:
        return Refusal(f"unknown event type {event.type!r}; expected one of {', '.join(EVENT_TYPES)}")
    if state is None:
        if event.type != "routed":
            return Refusal(f"ticket {event.ticket_id} is unknown to the router; '{event.type}' needs a routed ticket")
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
        return Refusal(f"the return window closed at {return_closes.isoformat()}: the agency must handle the "
                       "ticket now (退单时限已过，应予办理); a dispatcher can still reassign it")
    return outcome


def _require_current_agency(state: TicketState, event: LifecycleEvent) -> Refusal | None:
    if event.role != Role.AGENCY:
        return Refusal(f"'{event.type}' is done by the handling agency, not by role {event.role!r}")
    if not event.agency or event.agency != state.agency:
        return Refusal(f"agency {event.agency or '(none)'} is not the current handler of {state.ticket_id} "
                       f"(current: {state.agency or 'none'})")
    return None


def _refuse_state(state: TicketState, event: LifecycleEvent, allowed: Collection[str]) -> Refusal | None:
    if state.status not in allowed:
        return Refusal(f"'{event.type}' is not allowed while the ticket is {state.status} "
                       f"(allowed in: {', '.join(sorted(allowed))})")
    return None


def _routed(state: TicketState, event: Any, max_attempts: int, known: Collection[str]) -> Outcome | Refusal:
    if event.role != Role.SYSTEM:
        return Refusal("'routed' is written by the router only")
    attempt = int(getattr(event, "attempt", 0) or 0)
    if attempt <= state.attempt:
        return Outcome(state, duplicate=True)  # an older decision arriving late: nothing changes
    if refusal := _refuse_state(state, event, {Status.RECEIVED, Status.RETURNED, Status.MANUAL}):
        return refusal
    # A new attempt starts a new handling: the previous handler's signature, clock and extensions go.
    fresh = {"signed_at": None, "handling_started_at": None, "extension_pending_days": 0,
             "extension_days_granted": 0, "pending": None, "pending_agency": None, "pending_event": None,
             "pending_actor": None}
    decision = getattr(event, "decision", "")
    if decision == "auto" and event.agency:
        return Outcome(_remember(state, event, status=Status.DISPATCHED, agency=event.agency, attempt=attempt,
                                 dispatched_at=event.occurred_at, manual_reason=None, **fresh))
    return Outcome(_remember(state, event, status=Status.MANUAL, agency=None, attempt=attempt,
                             manual_reason=_text(event, "reason") or decision,
                             designation=bool(getattr(event, "designation", False)), **fresh))


def _signed(state: TicketState, event: Any, _m: int, _k: Collection[str]) -> Outcome | Refusal:
    if refusal := _require_current_agency(state, event) or _refuse_state(state, event, {Status.DISPATCHED}):
        return refusal
    return Outcome(_remember(state, event, status=Status.SIGNED, signed_at=event.occurred_at,
                             handling_started_at=event.occurred_at))


def _returned(state: TicketState, event: Any, max_attempts: int, _k: Collection[str]) -> Outcome | Refusal:
    if refusal := _require_current_agency(state, event) or \
            _refuse_state(state, event, {Status.DISPATCHED, Status.SIGNED}):
        return refusal
    code = _text(event, "reason_code")
    if code not in RETURN_REASONS:
        return Refusal(f"a return needs reason_code from the fixed list ({', '.join(RETURN_REASONS)}); "
                       f"got {code or 'none'}")
    if not (_text(event, "basis") or _text(event, "explanation")):
        return Refusal("a return (退单) needs the legal basis or an explanation of why it is not this agency's")
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
        return Refusal("only a dispatcher (or supervisor) can reassign a ticket")
    if refusal := _refuse_state(state, event, {Status.MANUAL, Status.RETURNED, Status.DISPATCHED, Status.SIGNED}):
        return refusal
    target = _text(event, "target_agency")
    if not target or (known and target not in known):
        return Refusal(f"target_agency {target or '(none)'} is not a known agency code")
    if target == state.agency:
        return Refusal(f"the ticket is already with {target}")
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
        return Refusal(f"dispatch attempt {state.attempt + 1} of {state.ticket_id} ({going}) has not landed yet; "
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
        return Refusal("an extension request is already waiting for a decision")
    days = getattr(event, "days", 0)
    if not isinstance(days, int) or not 1 <= days <= 30:
        return Refusal("an extension needs 'days' between 1 and 30 working days")
    if not _text(event, "explanation"):
        return Refusal("an extension request needs an explanation")
    return Outcome(_remember(state, event, extension_pending_days=days))


def _extension_decided(state: TicketState, event: Any, _m: int, _k: Collection[str]) -> Outcome | Refusal:
    if event.role not in (Role.SUPERVISOR, Role.DISPATCHER):
        return Refusal("extensions are approved or denied by a supervisor or dispatcher")
    if not state.extension_pending_days:
        return Refusal("there is no pending extension request to decide")
    granted = state.extension_days_granted + (state.extension_pending_days if event.type == "extension_approved"
                                              else 0)
    return Outcome(_remember(state, event, extension_pending_days=0, extension_days_granted=granted))


def _resolved(state: TicketState, event: Any, _m: int, _k: Collection[str]) -> Outcome | Refusal:
    if refusal := _require_current_agency(state, event) or _refuse_state(state, event, {Status.SIGNED}):
        return refusal
    if not _text(event, "reply"):
        return Refusal("a resolution needs the reply text given to the citizen")
    return Outcome(_remember(state, event, status=Status.RESOLVED, resolved_at=event.occurred_at,
                             extension_pending_days=0))


def _rated(state: TicketState, event: Any, _m: int, _k: Collection[str]) -> Outcome | Refusal:
    if event.role not in (Role.CALLCENTER, Role.DISPATCHER):
        return Refusal("ratings are recorded by the call-back centre or a dispatcher")
    if refusal := _refuse_state(state, event, {Status.RESOLVED, Status.CLOSED}):
        return refusal
    rating = _text(event, "rating")
    if rating not in RATINGS:
        return Refusal(f"rating must be one of {', '.join(RATINGS)}")
    return Outcome(_remember(state, event, rating=rating))


def _reopened(state: TicketState, event: Any, _m: int, _k: Collection[str]) -> Outcome | Refusal:
    if event.role not in (Role.CALLCENTER, Role.DISPATCHER, Role.SUPERVISOR):
        return Refusal("only the call-back centre, a dispatcher or a supervisor can reopen a ticket")
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
        return Refusal("tickets are closed by the call-back centre or a dispatcher")
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
