"""Events on the topics, as typed faust Records (JSON on the wire, each with a ``schema_version``).

Event names are in the past tense; the topic contract is in ``../shared/DESIGN.md`` and the
published JSON Schemas under ``docs/schemas``. Bump ``schema_version`` on any incompatible change.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import faust

from models.ledger import TicketEvent
from models.lifecycle import Role
from models.tickets import Rejection, column_chars, content_key, plausible_time, shown_payload, storable
from models.workcalendar import as_local


# coerce + isodates: fields typed datetime come back as datetimes, not ISO strings, after loads().
class Event(faust.Record, abstract=True, serializer="json", include_metadata=False, coerce=True, isodates=True):
    schema_version: int = 1


class TicketReceived(Event):
    """A validated ticket, as intake accepted it (on ``tickets.received`` it arrives as raw JSON)."""

    id: str
    text: str
    received_at: datetime
    address: str | None = None
    title: str | None = None
    channel: str | None = None
    request_type: str | None = None
    urgency: str | None = None
    caller_phone: str | None = None


class InputRejected(Event):
    """A dead letter on ``tickets.invalid``: what was rejected, why, and where it came from."""

    key: str
    reason: str
    source: str
    payload: str
    rejected_at: datetime
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


class LifecycleEvent(Event, abstract=True):
    """One action on a ticket, on ``tickets.events`` (key: ticket id). ``type`` selects the subclass."""

    event_id: str
    ticket_id: str
    type: str
    actor: str  # who: a user name, an agency system, "router"
    role: str  # system | agency | dispatcher | supervisor | callcenter
    occurred_at: datetime
    agency: str | None = None  # the acting agency (agency role) or the agency routed to


class TicketRouted(LifecycleEvent):
    """The router (or a dispatcher's dispatch) put the ticket on a queue: attempt n."""

    attempt: int = 1
    decision: str = "auto"  # auto | manual | unroutable | designated
    matter: str | None = None
    confidence: float | None = None
    reason: str | None = None
    designation: bool = False
    decided_by: str = "router"


def routed_event_id(routing_id: str) -> str:
    """The id of the 'routed' event announcing routing ``routing_id`` ("<ticket>#<attempt>"): whoever builds it
    (the announcement, the lifecycle catching up, a redelivery), the lifecycle and the ledger keep it once."""
    return f"routed:{routing_id}"


class TicketSigned(LifecycleEvent):
    pass


class TicketReturned(LifecycleEvent):
    reason_code: str = ""
    basis: str | None = None
    explanation: str | None = None


class TicketReassigned(LifecycleEvent):
    target_agency: str = ""
    explanation: str | None = None


class ExtensionRequested(LifecycleEvent):
    days: int = 0
    explanation: str | None = None


class ExtensionApproved(LifecycleEvent):
    explanation: str | None = None


class ExtensionDenied(LifecycleEvent):
    explanation: str | None = None


class TicketResolved(LifecycleEvent):
    reply: str = ""


class TicketRated(LifecycleEvent):
    rating: str = ""
    comment: str | None = None


class TicketReopened(LifecycleEvent):
    explanation: str | None = None


class TicketClosed(LifecycleEvent):
    explanation: str | None = None


EVENT_CLASSES: dict[str, type[LifecycleEvent]] = {
    "routed": TicketRouted, "signed": TicketSigned, "returned": TicketReturned, "reassigned": TicketReassigned,
    "extension_requested": ExtensionRequested, "extension_approved": ExtensionApproved,
    "extension_denied": ExtensionDenied, "resolved": TicketResolved, "rated": TicketRated,
    "reopened": TicketReopened, "closed": TicketClosed,
}


class Alternative(faust.Record, serializer="json", include_metadata=False):
    matter: str
    agency: str | None
    agency_kind: str | None
    confidence: float


class RoutedTicket(Event):
    """What an agency (``tickets.routed.<code>``) or the dispatchers (``tickets.manual``) receive."""

    routing_id: str  # "<ticket id>#<attempt>": consumers dedupe on it
    ticket_id: str
    attempt: int
    decision: str  # auto | manual | unroutable | designated
    reason: str
    received_at: datetime
    routed_at: datetime
    text: str
    title: str | None = None
    address: str | None = None
    request_type: str | None = None
    urgency: str | None = None
    channel: str | None = None
    caller_phone: str | None = None  # full number for the handling agency; masked on the manual queue
    complex_case: bool = False  # 复杂件: the longer time limits apply
    matter: str | None = None
    matter_name: str | None = None
    domain: str | None = None
    agency: str | None = None
    agency_name: str | None = None
    agency_kind: str | None = None
    jurisdiction: str | None = None
    street: str | None = None
    address_resolved: bool = False
    confidence: float | None = None
    basis: str | None = None
    alternatives: list[Alternative] | None = None
    excluded_agencies: list[str] | None = None
    designation: bool = False
    model_version: str | None = None
    decided_by: str = "router"


_REQUIRED = ("event_id", "ticket_id", "type", "actor", "role")


MAX_COUNT = 10_000  # days of an extension, dispatch attempts: far beyond any real value
MAX_CHARS = 10_000  # any text of an event (it is kept whole in the ledger's JSON payload)
# fields the ledger stores in a VARCHAR column of ticket_events (event_id, ticket_id, type, actor, agency):
# an overlong one must be rejected here, or PostgreSQL refuses the whole batch's write
LEDGER_CHARS = column_chars(TicketEvent)


_ROLES = frozenset(r.value for r in Role)  # a set built per message was a tenth of a report's replay


def parse_event(raw: bytes | str | dict[str, Any], *, now: datetime | None = None) -> LifecycleEvent | Rejection:
    """Validate one message of ``tickets.events``; bad input becomes a Rejection, never an exception. An event
    without ``occurred_at`` happened ``now`` (default: the wall clock)."""
    return read_event(raw, now=now)[0]


def read_event(raw: bytes | str | dict[str, Any], *, now: datetime | None = None
               ) -> tuple[LifecycleEvent | Rejection, dict[str, Any] | None]:
    """:func:`parse_event`, with the storable JSON object it read (None when the input is not one).

    The lifecycle stage keeps that object as the event's ledger payload, so a message is decoded once. An event
    stamped on arrival (no ``occurred_at``) has that stamp written into the object: the ledger's replays (figures,
    restage) read the payload again and must see the time the lifecycle judged, not the time of the replay.
    """
    try:
        data = storable(raw if isinstance(raw, dict) else json.loads(raw))
    except ValueError as exc:  # undecodable bytes, bad JSON, or an int of more than 4300 digits
        payload = shown_payload(raw)
        return Rejection(content_key(payload), f"not JSON: {exc}", payload[:2000]), None
    except RecursionError:  # thousands of nested brackets: rejected alone, not with the whole batch
        payload = shown_payload(raw)
        return Rejection(content_key(payload), "not JSON: nested too deeply", payload[:2000]), None
    if not isinstance(data, dict):
        payload = shown_payload(raw)
        return Rejection(content_key(payload), "not a JSON object", payload[:2000]), None
    event = _event_of(data, raw, now)
    if not isinstance(event, Rejection) and data.get("occurred_at") is None:
        data["occurred_at"] = event.occurred_at.isoformat()
    return event, data


def _event_of(data: dict[str, Any], raw: bytes | str | dict[str, Any],
              now: datetime | None) -> LifecycleEvent | Rejection:
    """The event a decoded message describes, or why it describes none (the message shown only then)."""
    named = data.get("event_id") or data.get("ticket_id")  # a huge int has no str(): the content's hash then
    key = (named if isinstance(named, str) else content_key(shown_payload(raw)))[:80]
    missing = [f for f in _REQUIRED if not isinstance(data.get(f), str) or not data.get(f, "").strip()]
    if missing:
        return Rejection(key, f"缺少字段或字段为空：{'、'.join(missing)} / missing or empty: {', '.join(missing)}",
                         shown_payload(raw)[:2000])
    cls = EVENT_CLASSES.get(data["type"])
    if cls is None:
        return Rejection(key, f"未知的事件类型 {data['type']!r} / unknown event type {data['type']!r}; "
                              f"expected one of {', '.join(EVENT_CLASSES)}", shown_payload(raw)[:2000])
    if data["role"] not in _ROLES:
        return Rejection(key, f"未知的角色 {data['role']!r} / unknown role {data['role']!r}; "
                              f"expected one of {', '.join(r.value for r in Role)}", shown_payload(raw)[:2000])
    occurred = data.get("occurred_at")
    try:
        if occurred is not None and not isinstance(occurred, str):
            raise ValueError("not a string")
        when = datetime.fromisoformat(occurred) if occurred is not None else (now or datetime.now(UTC))
        when = as_local(plausible_time(as_local(when) if when.tzinfo is None else when))
    except (ValueError, OverflowError):
        return Rejection(key, f"发生时间 occurred_at {occurred!r} 不是 2000 至 2099 年间的 ISO 8601 时间 / "
                              f"occurred_at {occurred!r} is not an ISO 8601 time between 2000 and 2099",
                         shown_payload(raw)[:2000])
    fields = cls._options.fields  # type: ignore[attr-defined]
    kwargs = {k: v for k, v in data.items() if k in fields}
    kwargs["occurred_at"] = when
    for name in ("days", "attempt"):
        if name in kwargs and not (isinstance(kwargs[name], int) and not isinstance(kwargs[name], bool)):
            return Rejection(key, f"字段 {name} 应为整数 / {name} must be an integer", shown_payload(raw)[:2000])
        if name in kwargs and not 0 <= kwargs[name] <= MAX_COUNT:  # also keeps state within 64-bit JSON
            return Rejection(key, f"字段 {name} 应在 0 至 {MAX_COUNT} 之间 / "
                                  f"{name} must be between 0 and {MAX_COUNT}", shown_payload(raw)[:2000])
    for name, value in kwargs.items():
        if name not in ("occurred_at", "days", "attempt", "confidence", "designation", "schema_version",
                        "alternatives") and value is not None and not isinstance(value, str):
            return Rejection(key, f"字段 {name} 应为文本 / {name} must be a string", shown_payload(raw)[:2000])
        if isinstance(value, str) and len(value) > MAX_CHARS:
            return Rejection(key, f"字段 {name} 超长（最多 {MAX_CHARS} 个字符） / {name} is longer than {MAX_CHARS} "
                                  "characters", shown_payload(raw)[:2000])
        if isinstance(value, str) and len(value) > (limit := LEDGER_CHARS.get(name, MAX_CHARS)):
            return Rejection(key, f"字段 {name} 超长（最多 {limit} 个字符） / {name} is longer than {limit} characters",
                             shown_payload(raw)[:2000])
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        return Rejection(key, f"事件内容无效 / invalid {data['type']} event: {exc}", shown_payload(raw)[:2000])


class AlertRaised(Event):
    """A supervision finding on ``supervision.alerts`` (key: ticket id, or agency code for agency-wide rules).

    ``alert_key`` identifies the finding (rule + subject + level), so a redelivered alert is deduped on it.
    """

    alert_key: str
    rule: str  # e.g. sign_overdue, handling_overdue, returned_repeatedly, ping_pong
    level: str  # the step within the rule: warning_50, overdue, reminder, censure ...
    severity: str  # info | warning | critical
    message: str  # one Chinese sentence for the supervisor
    raised_at: datetime
    details: dict[str, Any]  # rule-specific figures (elapsed, limit, attempts, agencies ...)
    # faust wants defaulted fields last; on the wire they are always present (null when not applicable)
    ticket_id: str | None = None
    agency: str | None = None
    deadline: datetime | None = None


class LinkObserved(Event):
    """A ticket seen under a linking key, on the internal topic ``supervision.links`` (key: ``key``).

    The supervision stage publishes one per linking key of a routed ticket so that tickets of one caller or
    one place, which arrive on different partitions of ``tickets.events``, meet on one partition, where the
    linker folds them (``models.supervision.linking.link``). Keys are hashes: no phone number is on it.
    """

    rule: str  # repeated_complaint | joint_enforcement
    kind: str  # caller | place_matter | biz | addr
    key: str  # the linking key, also the message key
    ticket_id: str
    at: datetime  # received (repeated_complaint) or dispatched (joint_enforcement)
    agency: str | None = None
    place: str | None = None  # joint_enforcement: the normalised address or business name
    # place_matter facts of a re-routed ticket whose matter changed: the routing attempt that moved it, and
    # whether the ticket leaves this key (the old matter's) rather than joins it; 0 and false on other facts
    # (and absent from workers before session 19, read as such)
    attempt: int = 0
    left: bool = False


class LinksObserved(Event):
    """The link facts of one lifecycle batch whose keys fall on one partition of ``supervision.links``.

    One message per partition and batch, not one per fact: a routed ticket has 2-3 linking keys, and every
    message costs a worker a produce, a fetch and an acknowledgement. The message has no key: it goes to the
    partition Kafka's default partitioner gives each of its facts' keys (``streams.app.link_partition``),
    where single facts keyed by linking key went before, so a key's facts and its state stay on one
    partition. The linker still reads such single :class:`LinkObserved` messages (workers before session 12).
    """

    facts: list[LinkObserved]
