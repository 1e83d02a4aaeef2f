"""Intake: the doors tickets come in by, and the dead-letter path for what is refused.

The hotline platform writes ``tickets.received`` directly; ``hotline ingest`` and the console's
``POST /api/tickets`` validate first (so a caller learns at once what is wrong) and then write the
same topic, in the canonical form of :func:`ticket_json`. The routing stage validates again, because the topic is open to other producers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from models.events import InputRejected
from models.tickets import Rejection, TicketIn, content_key
from streams.app import invalid_topic
from streams.wiring import services

log = logging.getLogger(__name__)


async def dead_letter(rejection: Rejection, *, source: str, topic: str | None = None,
                      partition: int | None = None, offset: int | None = None) -> None:
    """Record the rejection and publish it; keyed by position so a redelivery records it once."""
    svc = services()
    position = f"{topic}/{partition}/{offset}" if topic is not None else rejection.key
    await svc.db(svc.ledger.record_rejection, dedup_key=f"{source}:{position}", key=rejection.key,
                 source=source, reason=rejection.reason, payload=rejection.payload, topic=topic,
                 partition=partition, offset=offset)
    event = InputRejected(key=rejection.key, reason=rejection.reason, source=source, payload=rejection.payload,
                          rejected_at=datetime.now(UTC), topic=topic, partition=partition, offset=offset)
    await invalid_topic.send(key=rejection.key, value=event)


async def last_resort(rejection: Rejection, *, source: str, message: Any) -> None:
    """Dead-letter after an internal error, and never raise: if even that fails (the database refusing
    the record), the log keeps where the message was, and the agent lives on to take the next one."""
    try:
        await dead_letter(rejection, source=source, topic=message.topic, partition=message.partition,
                          offset=message.offset)
    except Exception:
        log.exception("could not dead-letter %s[%s]@%s (%s)", message.topic, message.partition, message.offset,
                      rejection.reason)


async def batch_or_each(events: Sequence[Any], handle: Callable[[Sequence[Any]], Awaitable[None]], *, stage: str,
                        source: str) -> None:
    """An agent's batch through ``handle``; when it fails, each event again as a batch of one, so one event that
    hits a bug does not take the batch with it (every stage is idempotent: what the failed batch did is not done
    twice). One that fails alone too is dead-lettered with the error (``source``), never dropped: before, every
    event of a failed batch (up to 200) was, and none of them was handled."""
    try:
        await handle(events)
        return
    except Exception:
        log.exception("%s batch of %d failed (%s); retrying its events one at a time", stage, len(events),
                      positions(ev.message for ev in events))
    for ev in events:
        m = ev.message
        try:
            await handle([ev])
        except Exception:
            log.exception("%s failed on %s[%s]@%s; dead-lettering it", stage, m.topic, m.partition, m.offset)
            raw = (ev.value or b"").decode("utf-8", "replace")
            await last_resort(Rejection(content_key(raw), f"internal error in {stage}; see worker log", raw[:2000]),
                              source=source, message=m)


def positions(messages: Iterable[Any]) -> str:
    """Where a batch's messages are, for the log: ``topic[partition]@first-last`` per partition."""
    spans: dict[tuple[str, int], list[int]] = {}
    for m in messages:
        spans.setdefault((m.topic, m.partition), []).append(m.offset)
    return ", ".join(f"{topic}[{partition}]@{min(offs)}" + (f"-{max(offs)}" if len(offs) > 1 else "")
                     for (topic, partition), offs in sorted(spans.items()))


def ticket_json(ticket: TicketIn) -> bytes:
    """The canonical JSON of a validated ticket, as written to ``tickets.received``."""
    return json.dumps(ticket.model_dump(mode="json", exclude_none=True), ensure_ascii=False).encode()
