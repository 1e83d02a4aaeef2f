"""Intake stage: validate what arrives on ``tickets.received``, record it, dead-letter the rest.

Every message leaves this stage one of two ways: a ticket in the ledger (once, however often it is
delivered), or an :class:`InputRejected` on ``tickets.invalid`` plus a row in ``rejected_inputs``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from models.events import InputRejected
from models.tickets import Rejection, TicketIn, content_key, parse_ticket
from streams.app import TICKETS_RECEIVED, app, invalid_topic, received_topic
from streams.wiring import services

log = logging.getLogger(__name__)


async def dead_letter(rejection: Rejection, *, source: str, topic: str | None = None,
                      partition: int | None = None, offset: int | None = None) -> None:
    """Publish the rejection and record it; keyed by position so a redelivery records it once."""
    svc = services()
    event = InputRejected(key=rejection.key, reason=rejection.reason, source=source,
                          payload=rejection.payload, rejected_at=datetime.now(UTC),
                          topic=topic, partition=partition, offset=offset)
    position = f"{topic}/{partition}/{offset}" if topic is not None else rejection.key
    await svc.db(svc.ledger.record_rejection, dedup_key=f"{source}:{position}", key=rejection.key,
                 source=source, reason=rejection.reason, payload=rejection.payload)
    await invalid_topic.send(key=rejection.key, value=event)


@app.agent(received_topic)
async def intake(stream):  # type: ignore[no-untyped-def]
    async for event in stream.events():
        msg = event.message
        where = f"{msg.topic}[{msg.partition}]@{msg.offset}"
        try:
            result = parse_ticket(event.value or b"")
            if isinstance(result, Rejection):
                log.warning("rejected %s key=%s: %s", where, result.key, result.reason)
                await dead_letter(result, source="topic", topic=msg.topic, partition=msg.partition,
                                  offset=msg.offset)
                continue
            await accept(result, topic=msg.topic, partition=msg.partition, offset=msg.offset)
        except Exception as exc:  # faust acks even when we raise: record it rather than lose it
            log.exception("intake failed on %s", where)
            raw = (event.value or b"").decode("utf-8", "replace")
            await dead_letter(Rejection(content_key(raw), f"internal error: {exc!r}", raw[:2000]),
                              source="topic", topic=msg.topic, partition=msg.partition, offset=msg.offset)


async def accept(ticket: TicketIn, *, topic: str = TICKETS_RECEIVED, partition: int | None = None,
                 offset: int | None = None) -> bool:
    svc = services()
    created = await svc.db(svc.ledger.record_ticket, ticket, topic=topic, partition=partition, offset=offset)
    if created:
        log.info("ticket %s received (%s[%s]@%s)", ticket.id, topic, partition, offset)
    else:
        log.info("ticket %s already known; duplicate delivery ignored", ticket.id)
    return created
