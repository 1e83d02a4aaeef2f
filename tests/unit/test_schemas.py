"""The published contract: committed schemas are what the code generates, and our own messages conform.

If ``test_committed_docs_are_generated_from_the_code`` fails, a Record, TicketIn or a vocabulary
changed: run ``hotline schemas write`` from the project root and commit ``docs/``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from jsonschema import Draft202012Validator

from classifier.decision import AUTO, MANUAL, Alternative, Decision
from config.catalogue import load_catalogue
from models import schemas
from models.events import EVENT_CLASSES, AlertRaised, InputRejected, LifecycleEvent, parse_event
from models.lifecycle import EVENT_TYPES, RATINGS, RETURN_REASONS, Role
from models.tickets import TicketIn, parse_ticket

DOCS = Path(__file__).resolve().parents[2] / "docs"
T0 = datetime(2025, 9, 28, 9, 30, tzinfo=timezone(timedelta(hours=8)))


@pytest.fixture(scope="module")
def agencies() -> dict[str, str]:
    return {code: a.name for code, a in load_catalogue().agencies.items()}


@pytest.fixture(scope="module")
def host() -> str:
    from streams.cli.docs import embedded_host

    return embedded_host()


def errors(topic: str, payload: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in schemas.validator(topic).iter_errors(payload)]


def wire(record: Any) -> Any:
    """What a consumer reads: the Record's JSON bytes, decoded."""
    return json.loads(record.dumps())


# --- (a) the committed files are generated --------------------------------------------------------
def test_committed_docs_are_generated_from_the_code(agencies: dict[str, str], host: str) -> None:
    stale = schemas.stale_files(DOCS, agencies, host)
    assert not stale, (f"docs/ is out of date with the code ({', '.join(stale)}): "
                       f"run `{schemas.WRITE_COMMAND}` from the project root and commit docs/")


def test_write_then_check_round_trip(tmp_path: Path, agencies: dict[str, str], host: str) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "tickets.old.schema.json").write_text("{}")
    assert "schemas/tickets.old.schema.json" in schemas.stale_files(tmp_path, agencies, host)
    schemas.write_schemas(tmp_path, agencies, host)
    assert schemas.stale_files(tmp_path, agencies, host) == []  # and the leftover schema is gone
    assert sorted(p.name for p in (tmp_path / "schemas").iterdir()) == [
        "supervision.alerts.schema.json", "supervision.links.schema.json", "tickets.events.schema.json",
        "tickets.invalid.schema.json",
        "tickets.received.schema.json", "tickets.routed.schema.json"]


@pytest.mark.parametrize("name", list(schemas.topic_schemas()))
def test_every_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = schemas.topic_schemas()[name]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_topic_names_match_the_faust_app() -> None:
    from streams import app

    assert (schemas.TICKETS_RECEIVED, schemas.TICKETS_INVALID, schemas.TICKETS_MANUAL, schemas.TICKETS_EVENTS,
            schemas.SUPERVISION_ALERTS, schemas.SUPERVISION_LINKS, schemas.ROUTED_PREFIX) == (
        app.TICKETS_RECEIVED, app.TICKETS_INVALID, app.TICKETS_MANUAL, app.TICKETS_EVENTS,
        app.SUPERVISION_ALERTS, app.SUPERVISION_LINKS, app.ROUTED_PREFIX)


def test_vocabularies_are_the_code_s() -> None:
    events = schemas.events_schema()
    variants = [d["$ref"].rsplit("/", 1)[1] for d in events["oneOf"]]
    assert variants == [c.__name__ for c in EVENT_CLASSES.values()]
    assert list(EVENT_CLASSES) == list(EVENT_TYPES) == list(schemas.EVENT_NOTES)
    defs = events["$defs"]
    assert defs["TicketReturned"]["properties"]["reason_code"]["enum"] == list(RETURN_REASONS)
    assert defs["TicketRated"]["properties"]["rating"]["enum"] == list(RATINGS)
    assert defs["TicketSigned"]["properties"]["role"]["enum"] == [r.value for r in Role]
    assert set(schemas.ROLE_NOTES) == set(Role)
    for type_name, cls in EVENT_CLASSES.items():
        assert defs[cls.__name__]["properties"]["type"]["const"] == type_name


def test_record_schema_maps_field_types() -> None:
    routed = schemas.routed_schema()
    props = routed["properties"]
    assert props["received_at"] == {"type": "string", "format": "date-time"}
    assert props["attempt"] == {"type": "integer"}
    assert props["address_resolved"]["type"] == "boolean"
    assert props["confidence"]["type"] == ["number", "null"]
    assert props["alternatives"]["type"] == ["array", "null"]
    assert props["alternatives"]["items"] == {"$ref": "#/$defs/Alternative"}
    assert routed["$defs"]["Alternative"]["properties"]["confidence"] == {"type": "number"}
    alert = schemas.alerts_schema()["properties"]
    assert alert["details"]["type"] == "object"
    assert alert["deadline"]["type"] == ["string", "null"] and alert["deadline"]["format"] == "date-time"
    assert alert["severity"]["enum"] == ["info", "warning", "critical"]


def test_defaults_are_optional_for_inputs_and_present_on_outputs() -> None:
    signed = schemas.events_schema()["$defs"]["TicketSigned"]
    assert set(signed["required"]) == {"event_id", "ticket_id", "type", "actor", "role", "occurred_at"}
    assert "schema_version" not in signed["required"] and "agency" not in signed["required"]
    # the lifecycle rules need it although the Record has a default
    assert "reason_code" in schemas.events_schema()["$defs"]["TicketReturned"]["required"]
    received = schemas.ticket_schema()
    assert sorted(received["required"]) == ["id", "text"]
    # what only we produce always carries every field (nullable ones as null)
    alert = schemas.alerts_schema()
    assert set(alert["required"]) == set(alert["properties"]) == {
        "schema_version", "alert_key", "rule", "level", "severity", "ticket_id", "agency", "deadline",
        "message", "raised_at", "details"}


@pytest.mark.parametrize("topic,name", [
    ("tickets.received", "tickets.received"), ("tickets.invalid", "tickets.invalid"),
    ("tickets.events", "tickets.events"), ("supervision.alerts", "supervision.alerts"),
    ("supervision.links", "supervision.links"), ("tickets.manual", "tickets.routed"), ("tickets.routed.BH-SCJG", "tickets.routed"),
])
def test_topic_to_schema(topic: str, name: str) -> None:
    assert schemas.schema_name(topic) == name
    assert schemas.validator(topic).schema["title"] == name


def test_unknown_topic_has_no_schema() -> None:
    with pytest.raises(KeyError, match="not a topic of the contract"):
        schemas.validator("tickets.other")


def test_asyncapi_document_is_consistent(agencies: dict[str, str]) -> None:
    doc = yaml.safe_load((DOCS / schemas.ASYNCAPI_FILE).read_text(encoding="utf-8"))
    assert doc["asyncapi"] == "3.0.0"
    assert doc["servers"]["production"]["host"] == "kafka:9092"
    assert "port" in doc["servers"]["embedded"]["variables"]
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {"tickets.received", "tickets.invalid", "tickets.routed.{agency}", "tickets.manual",
                         "tickets.events", "supervision.alerts", "supervision.links"}
    assert doc["channels"]["ticketsRouted"]["parameters"]["agency"]["enum"] == sorted(agencies)
    for code in ("NOT_OUR_DUTY", "OTHER_JURISDICTION"):
        assert code in doc["info"]["description"]
    for role in Role:
        assert f"`{role}`" in doc["info"]["description"]

    def resolve(ref: str) -> Any:
        file, _, pointer = ref.partition("#")
        node: Any = json.loads((DOCS / file).read_text(encoding="utf-8")) if file else doc
        for part in filter(None, pointer.split("/")):
            node = node[part]
        return node

    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend([node["$ref"]] if "$ref" in node else [])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    assert len(refs) > 30
    for ref in refs:
        assert resolve(ref) is not None, ref
    for message in doc["components"]["messages"].values():
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
    actions = {name: op["action"] for name, op in doc["operations"].items()}
    assert actions["receiveTickets"] == actions["receiveEvents"] == "receive"
    assert actions["sendToAgency"] == actions["sendAlerts"] == "send"


# --- (b) our own messages conform ----------------------------------------------------------------
def intake_json(ticket: TicketIn) -> Any:
    from streams.intake import ticket_json

    return json.loads(ticket_json(ticket))


def a_ticket(**extra: Any) -> TicketIn:
    t = parse_ticket({"id": "12345-20250928-0001", "text": "小区门口餐馆油烟扰民，晚上十点还在排烟",
                      "received_at": "2025-09-28T09:30:00", **extra})
    assert isinstance(t, TicketIn)
    return t


def test_intake_ticket_conforms() -> None:
    minimal = intake_json(a_ticket())
    full = intake_json(a_ticket(address="天津市滨海新区新港街道某小区", title="油烟", channel="phone",
                                request_type="投诉", urgency="一般", caller_phone="13812345678"))
    assert errors("tickets.received", minimal) == []
    assert errors("tickets.received", full) == []


def test_dead_letter_conforms() -> None:
    msg = InputRejected(key="sha1:abc", reason="not JSON", source="topic", payload="{", rejected_at=T0,
                        topic="tickets.received", partition=0, offset=42)
    bare = InputRejected(key="A1", reason="text: Field required", source="http", payload="{}",
                         rejected_at=datetime.now(UTC))
    assert errors("tickets.invalid", wire(msg)) == []
    assert errors("tickets.invalid", wire(bare)) == []


def every_event() -> list[LifecycleEvent]:
    base = {"ticket_id": "T1", "occurred_at": T0}
    agency = {**base, "role": "agency", "actor": "scjg-system", "agency": "BH-SCJG"}
    return [
        EVENT_CLASSES["routed"](event_id="routed:T1#1", type="routed", actor="router", role="system",
                                agency="BH-SCJG", attempt=1, decision="auto", matter="SC-001",
                                confidence=0.91, reason="识别为…", **base),
        EVENT_CLASSES["signed"](event_id="e2", type="signed", **agency),
        EVENT_CLASSES["returned"](event_id="e3", type="returned", reason_code="NOT_OUR_DUTY",
                                  basis="《大气污染防治法》第八十一条", **agency),
        EVENT_CLASSES["reassigned"](event_id="e4", type="reassigned", actor="dispatcher-li",
                                    role="dispatcher", target_agency="BH-STHJ", explanation="属生态环境局职责",
                                    **base),
        EVENT_CLASSES["extension_requested"](event_id="e5", type="extension_requested", days=5,
                                             explanation="需现场检测", **agency),
        EVENT_CLASSES["extension_approved"](event_id="e6", type="extension_approved", actor="sup-wang",
                                            role="supervisor", **base),
        EVENT_CLASSES["extension_denied"](event_id="e7", type="extension_denied", actor="sup-wang",
                                          role="supervisor", explanation="理由不足", **base),
        EVENT_CLASSES["resolved"](event_id="e8", type="resolved", reply="已责令整改，安装油烟净化设备", **agency),
        EVENT_CLASSES["rated"](event_id="e9", type="rated", actor="cb-01", role="callcenter",
                               rating="unsatisfied", comment="仍有油烟", **base),
        EVENT_CLASSES["reopened"](event_id="e10", type="reopened", actor="cb-01", role="callcenter", **base),
        EVENT_CLASSES["closed"](event_id="e11", type="closed", actor="cb-01", role="callcenter", **base),
    ]


@pytest.mark.parametrize("event", every_event(), ids=lambda e: e.type)
def test_every_lifecycle_event_conforms_and_parses_back(event: LifecycleEvent) -> None:
    payload = wire(event)
    assert errors("tickets.events", payload) == []
    back = parse_event(event.dumps())
    assert type(back) is type(event) and back.event_id == event.event_id


def test_every_event_type_is_covered() -> None:
    assert {e.type for e in every_event()} == set(EVENT_CLASSES)


def a_decision(decision: str = AUTO) -> Decision:
    alts = (Alternative("HB-002", "噪声扰民", "BH-STHJ", "滨海新区生态环境局", "ecology_environment", 0.05,
                        "《噪声污染防治法》"),
            Alternative("CG-009", "其他", None, None, None, 0.01))
    return Decision(decision, "识别为“餐饮油烟扰民”，置信度0.91，依权责清单派至…", 0.912345, matter="HB-001",
                    matter_name="餐饮油烟扰民", domain="环境保护", agency="BH-CGW", agency_name="滨海新区城管委",
                    agency_kind="urban_management", jurisdiction="BH", street="新港街道", address_resolved=True,
                    basis="《大气污染防治法》第一百一十八条", responsibility_item="BH-A01", co_owners=("BH-STHJ",),
                    alternatives=alts, model_version="2025-09-01T00:00:00", excluded_agencies=("BH-SCJG",))


@pytest.mark.parametrize("decision", [AUTO, MANUAL])
def test_routed_ticket_from_routing_conforms(decision: str) -> None:
    from streams.routing import routed_message

    msg = routed_message(a_ticket(caller_phone="13812345678", request_type="投诉"), a_decision(decision),
                         attempt=2)
    payload = wire(msg)
    topic = "tickets.routed.BH-CGW" if decision == AUTO else "tickets.manual"
    assert errors(topic, payload) == []
    assert payload["alternatives"][1]["agency"] is None


def test_designation_and_unroutable_messages_conform() -> None:
    from streams.routing import routed_message

    bare = Decision("unroutable", "工单内容为空或没有可识别的文字", 0.0)
    assert errors("tickets.manual", wire(routed_message(a_ticket(), bare, attempt=1))) == []
    designated = Decision(MANUAL, "已派3次均被退回", 0.0, excluded_agencies=("A", "B", "C"))
    payload = wire(routed_message(a_ticket(), designated, attempt=4, designation=True))
    assert payload["decision"] == "designated"
    assert errors("tickets.manual", payload) == []


def an_alert(**overrides: Any) -> AlertRaised:
    fields: dict[str, Any] = {
        "alert_key": "sign_overdue:T1:overdue", "rule": "sign_overdue", "level": "overdue",
        "severity": "critical", "ticket_id": "T1", "agency": "BH-SCJG", "deadline": T0 + timedelta(days=1),
        "message": "工单T1已超过签收时限，滨海新区市场监管局尚未签收。", "raised_at": T0 + timedelta(days=1, minutes=5),
        "details": {"limit": "1 working day", "elapsed_minutes": 1445}, **overrides}
    return AlertRaised(**fields)


def test_alert_conforms() -> None:
    assert errors("supervision.alerts", wire(an_alert())) == []
    agency_wide = an_alert(alert_key="ping_pong:BH-SCJG", rule="ping_pong", level="warning",
                           severity="warning", ticket_id=None, deadline=None, details={})
    assert errors("supervision.alerts", wire(agency_wide)) == []


def test_link_facts_of_a_routed_ticket_conform() -> None:
    from types import SimpleNamespace

    from models.events import LinkObserved, LinksObserved
    from models.supervision import TicketFacts, link_facts
    from streams.supervision import links_message

    before = TicketFacts("T1", T0, caller_phone="13800001234", address="滨海新区解放路100号某某烧烤店",
                         matter="ZJ-003")
    after = TicketFacts("T1", T0, caller_phone="13800001234", address="滨海新区解放路100号某某烧烤店",
                        matter="ZJ-003", status="dispatched", agency="BH-STHJ", attempt=1)
    facts = link_facts(before, after, SimpleNamespace(type="routed", occurred_at=T0))
    assert [f.kind for f in facts] == ["caller", "place_matter", "addr"]
    # the stage writes the message from the facts' dicts, not through faust's records: the same JSON
    message = orjson.loads(links_message([{"schema_version": 1, **fact.to_dict()} for fact in facts]))
    assert message == wire(LinksObserved(facts=[LinkObserved(**fact.to_dict()) for fact in facts]))
    assert errors("supervision.links", message) == []
    assert "13800001234" not in json.dumps(message)  # keys are hashes: no phone number on the topic
    message["facts"][1]["rule"] = "other"
    assert errors("supervision.links", message)


# --- (c) invalid payloads fail ---------------------------------------------------------------------
def test_invalid_tickets_fail() -> None:
    good = intake_json(a_ticket())
    assert errors("tickets.received", {k: v for k, v in good.items() if k != "text"})
    assert errors("tickets.received", {**good, "id": "has space"})
    assert errors("tickets.received", {**good, "urgency": "urgent"})
    assert errors("tickets.received", {**good, "received_at": "yesterday"})
    assert errors("tickets.received", {**good, "text": ""})


@pytest.mark.parametrize("mutate", [
    lambda p: p.pop("event_id"),
    lambda p: p.update(type="exploded"),
    lambda p: p.update(role="mayor"),
    lambda p: p.update(occurred_at="2025-09-28 9:30"),
    lambda p: p.update(occurred_at="2025-13-28T09:30:00+08:00"),
    lambda p: p.update(occurred_at="2025-09-28T09:30:00"),  # no offset
    lambda p: p.update(ticket_id=42),
], ids=["no event_id", "unknown type", "unknown role", "not ISO", "month 13", "no offset", "numeric id"])
def test_invalid_signed_events_fail(mutate: Any) -> None:
    payload = wire(every_event()[1])
    mutate(payload)
    assert errors("tickets.events", payload)


@pytest.mark.parametrize("payload", [
    {"reason_code": ""},  # what the Record defaults to
    {"reason_code": "TOO_BUSY"},
    {"basis": None, "explanation": None},
    {"basis": "", "explanation": ""},
])
def test_invalid_returns_fail(payload: dict[str, Any]) -> None:
    good = wire(every_event()[2])
    assert errors("tickets.events", good) == []
    assert errors("tickets.events", {**good, **payload})


def test_return_with_explanation_only_is_valid() -> None:
    good = wire(every_event()[2])
    assert errors("tickets.events", {**good, "basis": None, "explanation": "该地址属东丽区"}) == []


@pytest.mark.parametrize("payload", [
    {"days": "5"}, {"days": 0}, {"days": 31}, {"days": 2.5}, {"explanation": None},
])
def test_invalid_extension_requests_fail(payload: dict[str, Any]) -> None:
    good = wire(every_event()[4])
    assert errors("tickets.events", {**good, **payload})


def test_invalid_routed_and_alert_fail() -> None:
    from streams.routing import routed_message

    routed = wire(routed_message(a_ticket(), a_decision(), attempt=1))
    assert errors("tickets.manual", {k: v for k, v in routed.items() if k != "routing_id"})
    assert errors("tickets.manual", {**routed, "attempt": "1"})
    assert errors("tickets.manual", {**routed, "decision": "maybe"})
    assert errors("tickets.manual", {**routed, "alternatives": [{"matter": "X"}]})  # confidence missing
    alert = wire(an_alert())
    assert errors("supervision.alerts", {**alert, "severity": "fatal"})
    assert errors("supervision.alerts", {**alert, "details": []})
    assert errors("supervision.alerts", {k: v for k, v in alert.items() if k != "ticket_id"})
