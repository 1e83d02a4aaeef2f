"""The published message contract, generated from the code: JSON Schemas (draft 2020-12) and AsyncAPI 3.0.

Every schema is derived from the class that produces or parses the message — the faust Records of
:mod:`models.events` (field types, defaults) and the pydantic :class:`~models.tickets.TicketIn` — plus
the vocabularies the rules use (roles, return reasons, ratings). So a schema cannot drift from the
code: ``tests/unit/test_schemas.py`` fails when the committed files under ``docs/`` differ from what
:func:`render` produces now; ``hotline schemas write`` regenerates them.

:func:`validator` gives a ready validator for a topic name (``tickets.routed.<agency>`` and
``tickets.manual`` share the routed-ticket schema), for tests and tools that check live traffic.

This module sits in ``models`` (ground floor): the agency list of the AsyncAPI document is passed in
by the caller (the CLI loads it from the catalogue), never loaded from here.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import faust
import yaml
from jsonschema import Draft202012Validator, FormatChecker

from models.domain import AGENCY_KINDS
from models.events import (
    EVENT_CLASSES,
    AlertRaised,
    InputRejected,
    LinksObserved,
    RoutedTicket,
)
from models.lifecycle import RATINGS, RETURN_REASONS, Role
from models.tickets import ID_PATTERN, RequestType, TicketIn, Urgency

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = "schemas"  # under the output folder, next to asyncapi.yaml
ASYNCAPI_FILE = "asyncapi.yaml"
WRITE_COMMAND = "hotline schemas write"

# Topic names: the same strings as streams.app (a test keeps them equal; models may not import streams).
TICKETS_RECEIVED = "tickets.received"
TICKETS_INVALID = "tickets.invalid"
TICKETS_ROUTED = "tickets.routed"  # schema name; the topics are tickets.routed.<agency code>
TICKETS_MANUAL = "tickets.manual"
TICKETS_EVENTS = "tickets.events"
SUPERVISION_ALERTS = "supervision.alerts"
SUPERVISION_LINKS = "supervision.links"  # internal: supervision to its own linker (repartitioned by key)
ROUTED_PREFIX = TICKETS_ROUTED + "."

ALERT_SEVERITIES = ("info", "warning", "critical")
ROUTING_DECISIONS = ("auto", "manual", "unroutable", "designated")

ROLE_NOTES: dict[str, str] = {
    Role.SYSTEM: "the router itself (writes 'routed')",
    Role.AGENCY: "the handling agency: signed, returned, extension_requested, resolved",
    Role.DISPATCHER: "hotline dispatcher (派单员): reassigned, extension decisions, rated, reopened, closed",
    Role.SUPERVISOR: "supervision office (督办): reassigned, extension decisions, reopened",
    Role.CALLCENTER: "call-back centre (回访): rated, reopened, closed",
}

# What each lifecycle event means and who may send it (the rules themselves are models.lifecycle.apply).
EVENT_NOTES: dict[str, str] = {
    "routed": "派单: the router (or a dispatcher's dispatch) put the ticket on a queue, attempt n. "
              "Role system.",
    "signed": "签收: the agency the ticket was dispatched to takes it. Role agency, while dispatched.",
    "returned": "退单: the agency says it is not theirs; reason_code from the fixed list and the legal basis "
                "or an explanation are required. The router re-routes (attempt n+1) excluding the agencies "
                "that returned it; after the last attempt the ticket waits for designation (指定承办).",
    "reassigned": "改派: a dispatcher or supervisor sends the ticket to target_agency.",
    "extension_requested": "延期申请: the handling agency asks for 1-30 more working days, with an explanation.",
    "extension_approved": "延期批准: a supervisor or dispatcher approves the pending request.",
    "extension_denied": "延期驳回: a supervisor or dispatcher denies the pending request.",
    "resolved": "办结: the handling agency answers the citizen; reply is required.",
    "rated": "回访评价: satisfied or unsatisfied, by the call-back centre or a dispatcher.",
    "reopened": "重办: the same agency handles it again; a new handling clock starts.",
    "closed": "结案: by the call-back centre or a dispatcher (a dispatcher may also close a manual ticket).",
}

# Per-field documentation and constraints, by class name; a subclass inherits its bases' entries.
_FIELD_NOTES: dict[str, dict[str, dict[str, Any]]] = {
    "Event": {"schema_version": {"minimum": 1, "description": "bumped on any incompatible change"}},
    "InputRejected": {
        "key": {"description": "the ticket id when known, else sha1:<hash of the payload>"},
        "reason": {"description": "why it was rejected, for a person to act on"},
        "source": {"description": "where it came from: topic, http, file, routing, events ..."},
        "payload": {"description": "the rejected input (first 2000 characters)"},
    },
    "LifecycleEvent": {
        "event_id": {"description": "unique per action; a redelivery with the same id is ignored"},
        "ticket_id": {"description": "also the message key"},
        "actor": {"description": "who acted: a user name, an agency system, 'router'"},
        "role": {"enum": [r.value for r in Role],
                 "description": "the actor's role (see the roles in the description)"},
        "occurred_at": {"description": "when it happened (ISO 8601 with offset)"},
        "agency": {"description": "the acting agency (role agency), or the agency routed to"},
    },
    "TicketRouted": {"decision": {"enum": list(ROUTING_DECISIONS)}},
    "TicketReturned": {
        "reason_code": {"enum": list(RETURN_REASONS),
                        "description": "; ".join(f"{k} {v}" for k, v in RETURN_REASONS.items())},
        "basis": {"description": "the legal basis (law and article) showing the ticket is not this agency's"},
    },
    "TicketReassigned": {"target_agency": {"minLength": 1, "description": "agency code to dispatch to"}},
    "ExtensionRequested": {"days": {"minimum": 1, "maximum": 30, "description": "working days"},
                           "explanation": {"type": "string", "minLength": 1}},
    "TicketResolved": {"reply": {"minLength": 1, "description": "the answer given to the citizen"}},
    "TicketRated": {"rating": {"enum": list(RATINGS)}},
    "RoutedTicket": {
        "routing_id": {"description": "<ticket id>#<attempt>; consumers dedupe on it"},
        "decision": {"enum": list(ROUTING_DECISIONS)},
        "reason": {"description": "the explanation, in Chinese"},
        "request_type": {"enum": [t.value for t in RequestType]},
        "urgency": {"enum": [u.value for u in Urgency]},
        "caller_phone": {"description": "full number on the agency's own queue, masked on tickets.manual"},
        "complex_case": {"description": "复杂件, as the hotline judged it at intake: the complex cases' longer "
                                        "time limits apply (to return, to handle)"},
        "agency_kind": {"enum": list(AGENCY_KINDS)},
        "basis": {"description": "legal basis of the responsibility item that makes the agency the owner"},
        "excluded_agencies": {"description": "agencies that returned the ticket before"},
        "designation": {"description": "true after the last attempt: the hotline must designate a handler"},
    },
    "Alternative": {"agency_kind": {"enum": list(AGENCY_KINDS)}},
    "AlertRaised": {
        "alert_key": {"description": "identifies the finding (rule + subject + level); consumers dedupe "
                                     "on it"},
        "severity": {"enum": list(ALERT_SEVERITIES)},
        "message": {"description": "one sentence in Chinese for the supervisor"},
        "deadline": {"description": "the deadline the alert is about, if any"},
        "details": {"description": "rule-specific figures"},
    },
    "LinkObserved": {
        "rule": {"enum": ["repeated_complaint", "joint_enforcement"]},
        "kind": {"enum": ["caller", "place_matter", "biz", "addr"],
                 "description": "caller / place_matter (重复件), biz / addr: business or address (联合执法)"},
        "key": {"description": "the linking key (a hash; no phone number or address); also the message key"},
        "at": {"description": "when the ticket was received (重复件) or dispatched (联合执法)"},
        "agency": {"description": "the agency the ticket was dispatched to"},
        "place": {"description": "联合执法: the normalised address or business name, for the supervisor"},
    },
    "LinksObserved": {
        "facts": {"description": "link facts whose keys all fall on this message's partition (Kafka's default "
                                 "partitioner: murmur2 of the key)"},
    },
}

# Fields the lifecycle rules require although the Record gives them a default (apply() refuses without).
_REQUIRED_BY_RULE: dict[str, tuple[str, ...]] = {
    "TicketReturned": ("reason_code",),
    "TicketReassigned": ("target_agency",),
    "ExtensionRequested": ("days", "explanation"),
    "TicketResolved": ("reply",),
    "TicketRated": ("rating",),
}


# --- JSON Schema from a faust Record ----------------------------------------------------------------
def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    t = schema.get("type")
    if isinstance(t, str):
        out = {**schema, "type": [t, "null"]}
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [schema, {"type": "null"}]}


def _type_schema(tp: Any, defs: dict[str, Any], all_required: bool) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {tp!r}: only `X | None`")
        inner = _type_schema(args[0], defs, all_required)
        return _nullable(inner) if len(args) < len(typing.get_args(tp)) else inner
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return {"type": "array", "items": _type_schema(item, defs, all_required)}
    if tp is dict or origin is dict:
        return {"type": "object"}
    if tp is Any:
        return {}
    if isinstance(tp, type) and issubclass(tp, faust.Record):
        if tp.__name__ not in defs:
            defs[tp.__name__] = {}  # placeholder first: a self-referencing record must not recurse forever
            defs[tp.__name__] = record_schema(tp, defs=defs, all_required=all_required)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    simple: dict[Any, dict[str, Any]] = {
        bool: {"type": "boolean"}, int: {"type": "integer"}, float: {"type": "number"},
        str: {"type": "string"},
        datetime: {"type": "string", "format": "date-time"}, date: {"type": "string", "format": "date"},
    }
    if tp in simple:
        return dict(simple[tp])
    raise TypeError(f"no JSON Schema mapping for field type {tp!r}; extend models.schemas._type_schema")


# Whole-object rules of one event type, beyond single fields.
_RULES: dict[str, dict[str, Any]] = {
    "TicketReturned": {"anyOf": [
        {"required": ["basis"], "properties": {"basis": {"type": "string", "minLength": 1}}},
        {"required": ["explanation"], "properties": {"explanation": {"type": "string", "minLength": 1}}},
    ]},
}


def _notes(cls: type) -> tuple[dict[str, dict[str, Any]], set[str]]:
    notes: dict[str, dict[str, Any]] = {}
    required: set[str] = set()
    for base in reversed(cls.__mro__):
        for name, extra in _FIELD_NOTES.get(base.__name__, {}).items():
            notes[name] = {**notes.get(name, {}), **extra}
        required.update(_REQUIRED_BY_RULE.get(base.__name__, ()))
    return notes, required


def _own_doc(cls: type) -> str | None:
    doc = cls.__dict__.get("__doc__")  # not inherited: TicketSigned must not repeat LifecycleEvent's text
    return inspect.cleandoc(doc) if doc else None


def record_schema(cls: type[faust.Record], *, defs: dict[str, Any] | None = None,
                  all_required: bool = False, const: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON Schema of one faust Record: its fields, types and defaults (a default -> not required).

    ``all_required``: for messages only we produce — their JSON always carries every field (null when
    empty), so consumers may rely on it. ``const`` pins fields (the ``type`` of a lifecycle event).
    ``defs`` collects nested records (``$defs``); the caller places it at the document root.
    """
    defs = {} if defs is None else defs
    options = cls._options  # type: ignore[attr-defined]
    notes, required_by_rule = _notes(cls)
    props: dict[str, Any] = {}
    required: list[str] = []
    for name, tp in options.fields.items():
        prop = _type_schema(tp, defs, all_required)
        extra = notes.get(name, {})
        prop.update({k: v for k, v in extra.items() if k != "enum"})
        if "enum" in extra:  # a nullable field also accepts null
            nullable = isinstance(prop.get("type"), list) and "null" in prop["type"]
            prop["enum"] = [*extra["enum"], *([None] if nullable else [])]
        if const and name in const:
            prop["const"] = const[name]
        if name in options.defaults and name not in required_by_rule:  # "" would contradict the rule
            default = options.defaults[name]
            if isinstance(default, str | int | float | bool | type(None)):
                prop["default"] = default
        pinned = bool(const and name in const)
        if all_required or name not in options.defaults or name in required_by_rule or pinned:
            required.append(name)
        props[name] = prop
    schema: dict[str, Any] = {"title": cls.__name__}
    if doc := _own_doc(cls):
        schema["description"] = doc
    schema.update({"type": "object", "required": required, "properties": props})
    schema.update(_RULES.get(cls.__name__, {}))
    return schema


def _document(title: str, description: str, body: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    doc = {"$schema": DIALECT, "title": title, "description": description,
           **{k: v for k, v in body.items() if k not in ("title", "description")}}
    if defs:
        doc["$defs"] = {**doc.get("$defs", {}), **dict(sorted(defs.items()))}
    return doc


# --- the five schemas --------------------------------------------------------------------------------
def ticket_schema() -> dict[str, Any]:
    """``tickets.received``: TicketIn as intake validates it (unknown fields are ignored)."""
    body = TicketIn.model_json_schema(mode="validation")
    body["properties"]["id"]["pattern"] = ID_PATTERN.pattern  # a field validator pydantic cannot export
    body["properties"]["id"]["description"] = "the platform's ticket id; also the message key"
    body["properties"]["received_at"]["description"] = (
        "ISO 8601; without an offset Asia/Shanghai is assumed; missing -> the time of intake")
    body["properties"]["complex_case"]["description"] = (
        "复杂件 as the hotline judged it: the complex cases' longer time limits apply. Also accepted: 是/否, "
        "复杂/普通, 1/0")
    return _document(TICKETS_RECEIVED, "A citizen's request (工单) from the hotline platform, `hotline ingest` "
                     "or HTTP intake. Message key: the ticket id. Fields not listed are ignored.", body, {})


def invalid_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    body = record_schema(InputRejected, defs=defs, all_required=True)
    return _document(TICKETS_INVALID, "Dead letter: an input the router could not accept, with the reason. "
                     "Message key: the ticket id, or sha1:<hash> when unknown.", body, defs)


def events_schema() -> dict[str, Any]:
    """``tickets.events``: one of the lifecycle events, selected by ``type``."""
    defs: dict[str, Any] = {}
    for type_name, cls in EVENT_CLASSES.items():
        schema = record_schema(cls, defs=defs, const={"type": type_name})
        defs[cls.__name__] = {"title": schema.pop("title"), "description": EVENT_NOTES[type_name],
                              **{k: v for k, v in schema.items() if k != "description"}}
    body = {"type": "object", "required": ["type"],
            "properties": {"type": {"enum": list(EVENT_CLASSES)}},
            "oneOf": [{"$ref": f"#/$defs/{cls.__name__}"} for cls in EVENT_CLASSES.values()]}
    roles = "; ".join(f"{r} = {n}" for r, n in ROLE_NOTES.items())
    description = ("One action on a ticket by an agency, a dispatcher, the call-back centre or the router; "
                   "`type` selects the event. Message key: the ticket id. Events that break the lifecycle "
                   f"rules are refused with the reason on tickets.invalid. Roles: {roles}.")
    return _document(TICKETS_EVENTS, description, body, defs)


def routed_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    body = record_schema(RoutedTicket, defs=defs, all_required=True)
    return _document(TICKETS_ROUTED, "A routed ticket with its explanation, on tickets.routed.<agency code> "
                     "(decision auto) and tickets.manual (manual, unroutable, designated). Message key: the "
                     "ticket id; dedupe on routing_id.", body, defs)


def alerts_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    body = record_schema(AlertRaised, defs=defs, all_required=True)
    return _document(SUPERVISION_ALERTS, "A supervision alert (overdue, early warning, misrouting). Message "
                     "key: the ticket id, or the agency code for agency-wide findings.", body, defs)


def links_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    body = record_schema(LinksObserved, defs=defs, all_required=True)
    return _document(SUPERVISION_LINKS, "Internal: tickets seen under linking keys (caller, place and matter, "
                     "place or business), so that the tickets to link meet on one partition: one message per "
                     "partition and batch, sent to the partition of its facts' keys, without a message key. "
                     "Written and read by the router's workers only (which still read a single LinkObserved, "
                     "keyed by linking key, as workers before session 12 wrote them).", body, defs)


def topic_schemas() -> dict[str, dict[str, Any]]:
    """Schema name (= topic name, ``tickets.routed`` for every routed queue) -> JSON Schema."""
    return {TICKETS_RECEIVED: ticket_schema(), TICKETS_INVALID: invalid_schema(),
            TICKETS_EVENTS: events_schema(), TICKETS_ROUTED: routed_schema(),
            SUPERVISION_ALERTS: alerts_schema(), SUPERVISION_LINKS: links_schema()}


def schema_name(topic: str) -> str:
    """The schema a topic's messages follow; KeyError for a topic outside the contract."""
    if topic.startswith(ROUTED_PREFIX) or topic == TICKETS_MANUAL:
        return TICKETS_ROUTED
    if topic in (TICKETS_RECEIVED, TICKETS_INVALID, TICKETS_EVENTS, SUPERVISION_ALERTS, SUPERVISION_LINKS):
        return topic
    raise KeyError(f"{topic!r} is not a topic of the contract")


# --- validation ------------------------------------------------------------------------------------
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def format_checker() -> FormatChecker:
    """jsonschema's format checker, with 'date-time' (RFC 3339, offset required) even without the
    optional rfc3339-validator package, which would otherwise make 'date-time' silently unchecked."""
    checker = FormatChecker()
    if "date-time" not in checker.checkers:
        @checker.checks("date-time", raises=ValueError)
        def _date_time(value: object) -> bool:
            if not isinstance(value, str):
                return True  # formats constrain strings only
            if not _RFC3339.match(value):
                return False
            datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # range check: month 13 raises
            return True
    return checker


@cache
def validator(topic: str) -> Draft202012Validator:
    """A validator (with format checking) for the messages of ``topic``, e.g. ``tickets.routed.BH-SCJG``."""
    schema = topic_schemas()[schema_name(topic)]
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=format_checker())


# --- AsyncAPI ----------------------------------------------------------------------------------------
def _schema_ref(name: str, pointer: str = "") -> dict[str, str]:
    return {"$ref": f"./{SCHEMA_DIR}/{name}.schema.json{pointer}"}


def _kafka_key(description: str) -> dict[str, Any]:
    return {"kafka": {"key": {"type": "string", "description": description}, "bindingVersion": "0.5.0"}}


def _message(name: str, title: str, summary: str, payload: dict[str, str], key: str) -> dict[str, Any]:
    return {"name": name, "title": title, "summary": summary, "contentType": "application/json",
            "payload": payload, "bindings": _kafka_key(key)}


def asyncapi(agencies: Mapping[str, str], embedded_host: str) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the router.

    ``agencies``: code -> name, the routed queues' parameter; ``embedded_host``: the embedded broker's
    address (settings' default), passed in like the agencies because ``models`` reads no configuration.
    """
    version = InputRejected._options.defaults["schema_version"]  # type: ignore[attr-defined]
    roles = "\n".join(f"| `{r}` | {n} |" for r, n in ROLE_NOTES.items())
    reasons = "\n".join(f"| `{k}` | {v} |" for k, v in RETURN_REASONS.items())
    description = (
        "12345 热线工单智能分拨: topics through which the hotline platform, the agencies, the dispatchers and "
        "the supervisors integrate with the router. Generated from the code by `" + WRITE_COMMAND + "`; "
        "payload schemas are JSON Schema draft 2020-12 files under `" + SCHEMA_DIR + "/`.\n\n"
        "Messages are UTF-8 JSON; every event carries `schema_version`. Delivery is at least once: "
        "consumers dedupe (tickets by `id`, events by `event_id`, queue messages by `routing_id`, alerts by "
        "`alert_key`). Times are ISO 8601 with an offset (Asia/Shanghai when the hotline sends none).\n\n"
        "Operations are described from the router's side: `receive` = the router reads the topic, "
        "`send` = the router writes it; the other parties do the opposite (see each channel).\n\n"
        "### Roles on `tickets.events`\n\n| role | who |\n|---|---|\n" + roles + "\n\n"
        "### Return (退单) reason codes\n\n| reason_code | meaning |\n|---|---|\n" + reasons + "\n\n"
        "Ratings: " + ", ".join(f"`{r}`" for r in RATINGS) + ". Routing decisions: "
        + ", ".join(f"`{d}`" for d in ROUTING_DECISIONS) + ". Alert severities: "
        + ", ".join(f"`{s}`" for s in ALERT_SEVERITIES) + "."
    )
    event_messages = {
        f"event_{t}": _message(f"event_{t}", cls.__name__, EVENT_NOTES[t],
                               _schema_ref(TICKETS_EVENTS, f"#/$defs/{cls.__name__}"), "ticket id")
        for t, cls in EVENT_CLASSES.items()
    }
    messages = {
        "ticket": _message("ticket", "TicketIn", "A citizen's request (工单) as intake accepts it.",
                           _schema_ref(TICKETS_RECEIVED), "ticket id"),
        "inputRejected": _message("inputRejected", "InputRejected", "A dead letter, with the reason.",
                                  _schema_ref(TICKETS_INVALID), "ticket id, or sha1:<hash of the payload>"),
        "routedTicket": _message("routedTicket", "RoutedTicket", "A ticket on a queue, with the explanation "
                                 "of the decision (matter, legal basis, confidence, alternatives).",
                                 _schema_ref(TICKETS_ROUTED), "ticket id"),
        **event_messages,
        "alertRaised": _message("alertRaised", "AlertRaised", "A supervision alert.",
                                _schema_ref(SUPERVISION_ALERTS), "ticket id, or agency code"),
        "linksObserved": _message("linksObserved", "LinksObserved", "Tickets seen under linking keys of one "
                                  "partition.", _schema_ref(SUPERVISION_LINKS), "none (sent to the keys' partition)"),
    }

    def msgs(*names: str) -> dict[str, Any]:
        return {n: {"$ref": f"#/components/messages/{n}"} for n in names}

    agency_list = "\n".join(f"- `{code}` {name}" for code, name in sorted(agencies.items()))
    channels = {
        "ticketsReceived": {"address": TICKETS_RECEIVED, "title": "Incoming tickets",
                            "description": "Written by the hotline platform, `hotline ingest` and the HTTP "
                                           "intake; read by the router.", "messages": msgs("ticket")},
        "ticketsInvalid": {"address": TICKETS_INVALID, "title": "Dead letters",
                           "description": "Written by the router (inputs and events it cannot accept, with "
                                          "the reason); read by operators.",
                           "messages": msgs("inputRejected")},
        "ticketsRouted": {
            "address": ROUTED_PREFIX + "{agency}", "title": "An agency's queue",
            "description": "Written by the router; read by that agency, which then reports what it does on "
                           "`tickets.events`.",
            "parameters": {"agency": {"enum": sorted(agencies),
                                      "description": "agency code (承办单位):\n" + agency_list}},
            "messages": msgs("routedTicket")},
        "ticketsManual": {"address": TICKETS_MANUAL, "title": "Dispatchers' queue",
                          "description": "Written by the router (low confidence, no owner, designation "
                                         "after the last attempt); read by dispatchers.",
                          "messages": msgs("routedTicket")},
        "ticketsEvents": {"address": TICKETS_EVENTS, "title": "Lifecycle events",
                          "description": "Written by agencies, dispatchers, the call-back centre and the "
                                         "router (`routed`); read by the lifecycle and supervision stages. "
                                         "Illegal events are refused with the reason on `tickets.invalid`.",
                          "messages": msgs(*event_messages)},
        "supervisionAlerts": {"address": SUPERVISION_ALERTS, "title": "Supervision alerts",
                              "description": "Written by supervision; read by supervisors.",
                              "messages": msgs("alertRaised")},
        "supervisionLinks": {"address": SUPERVISION_LINKS, "title": "Linking keys (internal)",
                             "description": "Written and read by the router's supervision stage only: "
                                            "repartitions routed tickets by caller / place so that 重复件 and "
                                            "联合执法 see every ticket of a key whichever worker handled it. "
                                            "Not for other parties.",
                             "messages": msgs("linksObserved")},
    }

    def op(action: str, channel: str, summary: str, names: tuple[str, ...] | None = None) -> dict[str, Any]:
        ch = channels[channel]["messages"]
        return {"action": action, "channel": {"$ref": f"#/channels/{channel}"}, "summary": summary,
                "messages": [{"$ref": f"#/channels/{channel}/messages/{n}"} for n in (names or tuple(ch))]}

    operations = {
        "receiveTickets": op("receive", "ticketsReceived", "Route each incoming ticket."),
        "sendInvalid": op("send", "ticketsInvalid", "Dead-letter what cannot be accepted, with the reason."),
        "sendToAgency": op("send", "ticketsRouted", "Put a confidently routed ticket on its owner's queue."),
        "sendToDispatchers": op("send", "ticketsManual",
                                "Hand a ticket to the dispatchers, with the best guess."),
        "receiveEvents": op("receive", "ticketsEvents", "Follow each ticket's lifecycle: check every action "
                            "against the rules, re-route after a return, dispatch after a reassignment."),
        "sendRouted": op("send", "ticketsEvents", "Announce each routing decision.", ("event_routed",)),
        "sendAlerts": op("send", "supervisionAlerts", "Alert supervisors to overdue and misrouted tickets."),
        "sendLinks": op("send", "supervisionLinks", "Publish each routed ticket under its linking keys."),
        "receiveLinks": op("receive", "supervisionLinks", "Link the tickets of one key: repeated complaints, "
                           "joint-enforcement suggestions."),
    }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "12345 work-order router", "version": f"{version}.0.0", "description": description},
        "defaultContentType": "application/json",
        "servers": {
            "embedded": {
                "host": embedded_host + ":{port}", "protocol": "kafka",
                "description": "The embedded broker (Tansu, memory only) of the default profile; the worker "
                               "announces its address at start.",
                "variables": {"port": {"description": (
                    "a free port picked at start (HOTLINE_EMBEDDED_PORT=0, the default) or "
                    "HOTLINE_EMBEDDED_PORT; the address is written to <data dir>/broker.address")}}},
            "production": {"host": "kafka:9092", "protocol": "kafka",
                           "description": "Apache Kafka (KRaft) of docker-compose.yml."},
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


# --- files -------------------------------------------------------------------------------------------
class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so the Markdown in descriptions stays readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def render(agencies: Mapping[str, str], embedded_host: str) -> dict[str, str]:
    """Every generated file: relative path -> exact text."""
    files = {f"{SCHEMA_DIR}/{name}.schema.json": json.dumps(schema, ensure_ascii=False, indent=2) + "\n"
             for name, schema in topic_schemas().items()}
    header = f"# Generated by `{WRITE_COMMAND}` from the code; do not edit by hand.\n"
    document = yaml.dump(asyncapi(agencies, embedded_host), Dumper=_Dumper, allow_unicode=True,
                         sort_keys=False, width=110)
    files[ASYNCAPI_FILE] = header + document
    return files


def stale_files(out_dir: Path, agencies: Mapping[str, str], embedded_host: str) -> list[str]:
    """Files under ``out_dir`` that differ from the generator's output, are missing, or are left over."""
    expected = render(agencies, embedded_host)
    stale = [rel for rel, text in expected.items()
             if not (out_dir / rel).is_file() or (out_dir / rel).read_text(encoding="utf-8") != text]
    schema_dir = out_dir / SCHEMA_DIR
    leftovers = [f"{SCHEMA_DIR}/{p.name}" for p in sorted(schema_dir.glob("*.schema.json"))] \
        if schema_dir.is_dir() else []
    return stale + [rel for rel in leftovers if rel not in expected]


def write_schemas(out_dir: Path, agencies: Mapping[str, str], embedded_host: str) -> list[Path]:
    """(Re)write the JSON Schemas and the AsyncAPI document under ``out_dir``; drop schemas no longer made."""
    expected = render(agencies, embedded_host)
    written = []
    for rel, text in expected.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    for old in (out_dir / SCHEMA_DIR).glob("*.schema.json"):
        if f"{SCHEMA_DIR}/{old.name}" not in expected:
            old.unlink()
    return written
