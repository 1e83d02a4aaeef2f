"""Events on the topics, as typed faust Records (JSON on the wire, each with a ``schema_version``).

Event names are in the past tense; the topic contract is in ``../shared/DESIGN.md`` and the
published JSON Schemas under ``docs/schemas``. Bump ``schema_version`` on any incompatible change.
"""

from __future__ import annotations

from datetime import datetime

import faust


class Event(faust.Record, abstract=True, serializer="json", include_metadata=False):
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
