"""Property-based bad-input campaign over the pure doors: ticket JSON, lifecycle events and the state
machine, CSV and JSONL imports, phone masking.

The property everywhere: whatever arrives, the function answers (an accepted value, or a rejection with
a non-empty reason) and never raises. The worker-level half of the campaign, where the same kinds of
input go through a real broker into a real ledger, is tests/integration/test_bad_input_campaign.py.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.events import EVENT_CLASSES, parse_event
from models.lifecycle import Outcome, Refusal, Role, apply
from models.tickets import Rejection, TicketIn, mask_phone, parse_ticket
from streams.cli.ingest import ColumnMap, UnusableInput, check_row, read_csv, read_jsonl

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# \u0000 inside strings too: JSON allows it, PostgreSQL text does not
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
TICKET_FIELDS = ["id", "text", "received_at", "address", "title", "channel", "request_type", "urgency",
                 "caller_phone"]
EVENT_FIELDS = ["event_id", "ticket_id", "type", "actor", "role", "agency", "occurred_at", "reason_code",
                "basis", "explanation", "days", "target_agency", "rating", "attempt", "decision", "confidence"]
near_times = st.sampled_from(["2025-10-01T09:00:00+08:00", "2025-10-01 09:00", "yesterday", "", "2025-13-45",
                              "2025-10-01T09:00:00", "9999-12-31T23:59:59Z", "0001-01-01"])


def _shaped(fields: list[str], specials: dict[str, st.SearchStrategy]) -> st.SearchStrategy[dict]:
    """Objects with the right field names and anything (or something nearly right) as values."""
    return st.fixed_dictionaries({}, optional={
        f: specials.get(f, st.nothing()) | json_values for f in fields})


tickets = _shaped(TICKET_FIELDS, {"id": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True),
                                  "text": st.text(max_size=300), "received_at": near_times,
                                  "request_type": st.sampled_from(["投诉", "咨询", "complaint", ""])})
events = _shaped(EVENT_FIELDS, {"type": st.sampled_from([*EVENT_CLASSES, "deleted", ""]),
                                "role": st.sampled_from([*(r.value for r in Role), "hacker"]),
                                "event_id": st.uuids().map(str), "ticket_id": st.sampled_from(["T1", "T2"]),
                                "actor": st.sampled_from(["张三", "bot"]),
                                "agency": st.sampled_from(["BH-CGW", "BH-STHJ", "NOPE", ""]),
                                "target_agency": st.sampled_from(["BH-CGW", "BH-STHJ", "NOPE"]),
                                "occurred_at": near_times, "days": st.integers(-5, 400),
                                "attempt": st.integers(-1, 9),
                                "decision": st.sampled_from(["auto", "manual", "x"])})


def _check(result: object, accepted: type) -> None:
    assert isinstance(result, accepted | Rejection)
    if isinstance(result, Rejection):
        assert result.reason.strip() and result.key
        assert "\x00" not in result.payload  # PostgreSQL text cannot store it
    else:
        assert not any("\x00" in v for v in vars(result).values() if isinstance(v, str))


def test_nul_characters_never_reach_the_ledger() -> None:
    ticket = parse_ticket('{"id": "N1", "text": "路灯\\u0000不亮", "address": "\\u0000新港街道"}')
    assert isinstance(ticket, TicketIn) and ticket.text == "路灯不亮" and ticket.address == "新港街道"
    refused = parse_ticket(b"\x00")
    assert isinstance(refused, Rejection) and "\x00" not in refused.payload


@SETTINGS
@given(st.binary(max_size=400))
def test_any_bytes_are_a_ticket_or_a_rejection(raw: bytes) -> None:
    _check(parse_ticket(raw), TicketIn)


@SETTINGS
@given(json_values | tickets)
def test_any_json_is_a_ticket_or_a_rejection_with_reasons(value: object) -> None:
    result = parse_ticket(json.dumps(value, ensure_ascii=False))
    _check(result, TicketIn)
    if isinstance(result, TicketIn):
        assert result.text.strip() and result.received_at is not None and result.received_at.tzinfo


@SETTINGS
@given(st.binary(max_size=400) | (json_values | events).map(lambda v: json.dumps(v, ensure_ascii=False)))
def test_any_event_message_parses_or_is_rejected(raw: bytes | str) -> None:
    result = parse_event(raw)
    assert isinstance(result, Rejection) or type(result) in EVENT_CLASSES.values()
    if isinstance(result, Rejection):
        assert result.reason.strip()


@SETTINGS
@given(st.lists(events, min_size=1, max_size=12))
def test_the_state_machine_answers_any_sequence_of_events(sequence: list[dict]) -> None:
    """Legal or not, every event gets an Outcome or a Refusal, and the state stays consistent."""
    routed = {"event_id": "e0", "ticket_id": "T1", "type": "routed", "actor": "router", "role": "system",
              "agency": "BH-CGW", "attempt": 1, "decision": "auto",
              "occurred_at": datetime(2025, 10, 9, 9, tzinfo=UTC).isoformat()}
    state = None
    for raw in [routed, *sequence]:
        event = parse_event(raw)
        if isinstance(event, Rejection):
            continue
        outcome = apply(state, event, max_attempts=3, known_agencies={"BH-CGW", "BH-STHJ"})
        assert isinstance(outcome, Outcome | Refusal)
        if isinstance(outcome, Refusal):
            assert outcome.reason.strip()
            continue
        state = outcome.state
        assert state.attempt >= 1 and state.status
        # a ticket is only ever with a known agency (or with nobody while dispatchers decide)
        assert state.agency in {None, "BH-CGW", "BH-STHJ"}


csv_text = st.lists(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30),
                             min_size=0, max_size=5), max_size=8)


@SETTINGS
@given(csv_text, st.booleans())
def test_csv_imports_of_any_shape_end_in_tickets_rejections_or_one_clear_message(rows: list[list[str]],
                                                                                 with_header: bool) -> None:
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf)
    if with_header:
        writer.writerow(["id", "text", "address"])
    writer.writerows(rows)
    columns = ColumnMap.from_flags({"text": "text", "id": "id", "address": "address"})
    try:
        header, records = read_csv(io.StringIO(buf.getvalue()))
        columns.check_header(header)
        for record in records:
            _check(check_row(record, columns), TicketIn)
    except UnusableInput as exc:
        assert str(exc).strip()


@SETTINGS
@given(st.lists(st.text(max_size=80) | (json_values | tickets).map(lambda v: json.dumps(v, ensure_ascii=False)),
                max_size=8))
def test_jsonl_imports_of_any_lines_end_in_tickets_or_rejections(lines: list[str]) -> None:
    columns = ColumnMap.from_flags({"text": "text", "id": "id"})
    stream = io.StringIO("\n".join(line.replace("\n", " ") for line in lines))
    try:
        for record in read_jsonl(stream):
            _check(check_row(record, columns), TicketIn)
    except UnusableInput as exc:
        assert str(exc).strip()


@SETTINGS
@given(st.text(max_size=60), st.from_regex(r"1[3-9]\d{9}", fullmatch=True), st.text(max_size=60))
def test_a_mobile_number_anywhere_in_text_is_masked(before: str, phone: str, after: str) -> None:
    # digits glued to the number make it a longer number, which is not a phone: keep them apart
    text = f"{before} {phone} {after}"
    assert phone not in mask_phone(text)
