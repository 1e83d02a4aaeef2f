"""parse_event holds every field the ledger keeps in a VARCHAR column to that column's length.

An overlong value passed parse_event (whose only cap was 10,000 characters) and then failed the whole batch's
``ticket_events`` insert on PostgreSQL (DataError); rejected here, it is dead-lettered alone.
"""

from __future__ import annotations

from typing import Any

import pytest

from models.events import EVENT_CLASSES, LEDGER_CHARS, LifecycleEvent, parse_event
from models.ledger import TicketEvent
from models.tickets import Rejection


def event(**overrides: Any) -> dict[str, Any]:
    return {"event_id": "e1", "ticket_id": "T1", "type": "signed", "actor": "scjg", "role": "agency",
            "agency": "scjg", "occurred_at": "2025-09-26T10:00:00+08:00", **overrides}


def test_the_limits_are_the_ledger_columns() -> None:
    assert LEDGER_CHARS == {"event_id": 80, "ticket_id": 64, "type": 32, "actor": 64, "agency": 32}
    assert all(LEDGER_CHARS[c.name] == c.type.length for c in TicketEvent.__table__.columns
               if c.name in LEDGER_CHARS)
    assert set(LEDGER_CHARS) <= set(EVENT_CLASSES["signed"]._options.fields)  # type: ignore[attr-defined]
    assert max(len(name) for name in EVENT_CLASSES) <= LEDGER_CHARS["type"]  # type is checked against these


@pytest.mark.parametrize("field,limit", [("event_id", 80), ("ticket_id", 64), ("actor", 64), ("agency", 32)])
@pytest.mark.parametrize("char", ["x", "长"])  # characters, not bytes: VARCHAR(n) counts characters
def test_a_value_longer_than_its_column_is_rejected(field: str, limit: int, char: str) -> None:
    result = parse_event(event(**{field: char * (limit + 1)}))
    assert isinstance(result, Rejection), result
    assert f"{field} is longer than {limit} characters" in result.reason and "超长" in result.reason
    assert result.key and len(result.key) <= 80  # rejected_inputs.key is VARCHAR(80)


@pytest.mark.parametrize("field,limit", [("event_id", 80), ("ticket_id", 64), ("actor", 64), ("agency", 32)])
def test_a_value_as_long_as_its_column_is_accepted(field: str, limit: int) -> None:
    result = parse_event(event(**{field: "长" * limit}))
    assert isinstance(result, LifecycleEvent), result
    assert getattr(result, field) == "长" * limit


@pytest.mark.parametrize("overrides", [
    {"type": "routed", "decided_by": "x" * 65, "actor": "disp"},  # not a column of ticket_events: in the JSON
    {"type": "returned", "reason_code": "R" * 100, "explanation": "长" * 9_999},
    {"type": "rated", "rating": "满意", "comment": "长" * 10_000},
])
def test_fields_kept_only_in_the_payload_keep_the_general_cap(overrides: dict[str, Any]) -> None:
    assert isinstance(parse_event(event(**overrides)), LifecycleEvent)


def test_the_general_cap_still_applies_first() -> None:
    result = parse_event(event(actor="x" * 10_001))
    assert isinstance(result, Rejection) and "actor is longer than 10000 characters" in result.reason
