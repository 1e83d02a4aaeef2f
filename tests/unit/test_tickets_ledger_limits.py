"""Intake's length limits are the ledger's ``tickets`` columns (derived from them, so they cannot drift)."""

from __future__ import annotations

import pytest

from models.ledger import Ticket
from models.tickets import MAX_ID_CHARS, TICKET_CHARS, Rejection, TicketIn, parse_ticket

STORED = ["id", "title", "address", "channel", "caller_phone"]  # the VARCHAR columns intake fills from input


def test_every_stored_field_is_capped_at_its_column() -> None:
    columns = Ticket.__table__.columns
    for name in STORED:
        (limit,) = [m.max_length for m in TicketIn.model_fields[name].metadata if hasattr(m, "max_length")]
        assert limit == columns[name].type.length == TICKET_CHARS[name], name
    assert MAX_ID_CHARS == 64


@pytest.mark.parametrize("field", STORED)
def test_one_character_over_the_column_is_rejected(field: str) -> None:
    limit = TICKET_CHARS[field]
    value = "A" * (limit + 1) if field == "id" else "长" * (limit + 1)
    result = parse_ticket({"id": "A1", "text": "路灯不亮", field: value})
    assert isinstance(result, Rejection) and f"{field}:" in result.reason
    assert len(result.key) <= 80


@pytest.mark.parametrize("field", STORED)
def test_as_long_as_the_column_is_accepted(field: str) -> None:
    value = "A" * TICKET_CHARS[field] if field == "id" else "长" * TICKET_CHARS[field]
    assert isinstance(parse_ticket({"id": "A1", "text": "路灯不亮", field: value}), TicketIn)


@pytest.mark.parametrize("depth", [600, 100_000])
def test_json_nested_too_deeply_is_rejected_not_raised(depth: int) -> None:
    # a message of thousands of brackets must be dead-lettered alone, not fail its whole batch
    from models.events import parse_event

    raw = ('{"id": "T1", "text": "路灯不亮", "x": ' + "[" * depth + "]" * depth + "}").encode()
    for parse in (parse_ticket, parse_event):
        result = parse(raw)
        assert isinstance(result, Rejection) and "JSON" in result.reason
