"""Routing stage: tickets on ``tickets.received`` -> an agency's queue or the manual queue.

Per batch: validate (bad ones are dead-lettered), record the tickets, decide (classifier +
responsibility list, off the event loop), store each decision *with the exact message* before
publishing, publish and wait for the broker's acknowledgement, then mark the decisions published
and announce them on ``tickets.events``. A redelivered ticket whose decision is already published is
skipped; one whose publication was interrupted is published again from the stored message. So a
ticket is routed once, and never lost between the ledger and the queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from classifier.decision import AUTO, Decision
from classifier.router import RouteRequest
from models.events import Alternative, RoutedTicket, TicketRouted, routed_event_id
from models.tickets import Rejection, TicketIn, mask_caller_phone, parse_ticket
from streams.app import app, delivered, events_topic, manual_topic, received_topic, routed_topic
from streams.db import Ledger
from streams.intake import batch_or_each, dead_letter, ticket_json
from streams.wiring import clock_skew, handling, services

log = logging.getLogger(__name__)
BATCH = 200  # up to 200 tickets, or as many as came within settings.stream_batch_wait_ms


class Activity:
    """What the routing agent is doing: whether it is inside a batch, and when it last handled a message of
    each partition. The reconciler tells a consumer that stopped delivering a partition (nothing of it
    handled for a while, the agent free, messages waiting) from one that is merely busy."""

    def __init__(self) -> None:
        self.busy = False
        self.started = time.monotonic()
        self.handled: dict[int, float] = {}

    def quiet_for(self, partition: int) -> float:
        """Seconds since a message of ``partition`` was handled (or the worker started); 0 while in a batch."""
        if self.busy:
            return 0.0
        return time.monotonic() - self.handled.get(partition, self.started)


activity = Activity()


def decision_key(ticket_id: str, attempt: int) -> str:
    return f"{ticket_id}#{attempt}"


@app.agent(received_topic)
async def route(stream):  # type: ignore[no-untyped-def]
    within = services().settings.stream_batch_wait_ms / 1000
    async for events in stream.take_events(BATCH, within=within):
        activity.busy = True
        try:
            with handling(events):
                await batch_or_each(events, route_batch, stage="routing", source="routing")
        finally:
            done = time.monotonic()
            for ev in events:
                activity.handled[ev.message.partition] = done
            activity.busy = False


async def route_batch(events: Sequence[Any]) -> None:
    svc = services()
    copies: dict[str, list[tuple[TicketIn, Any]]] = {}  # each id's copies in this batch, in order
    # A ticket without received_at was received now, on our clock (one "now" per batch); one received later
    # than now, beyond the clocks' allowed difference, is rejected (its deadlines would never run out)
    now, skew = svc.clock.now(), clock_skew(svc.settings, svc.clock)
    for ev in events:
        m = ev.message
        result = parse_ticket(ev.value or b"", now=now, max_skew=skew)
        if isinstance(result, Rejection):
            log.warning("rejected %s[%s]@%s key=%s: %s", m.topic, m.partition, m.offset, result.key, result.reason)
            await dead_letter(result, source="topic", topic=m.topic, partition=m.partition, offset=m.offset)
        else:
            copies.setdefault(result.id, []).append((result, m))
    if not copies:
        return
    accepted = {tid: same[0] for tid, same in copies.items()}  # the same ticket twice in one batch: once
    existing, known = await svc.db(record_and_look_up, svc.ledger,
                                   [(tk, m.topic, m.partition, m.offset) for tk, m in accepted.values()])
    for tid, same in copies.items():
        # First writer wins (docs/guarantees.md): the ledger's copy when it came before this batch, else the
        # batch's first. Another ticket under a used id is no redelivery, though: dropped silently, nobody
        # would learn that a citizen's request was never routed. It is dead-lettered, saying so.
        first, first_m = same[0]
        where, content = known.get(tid, ((first_m.topic, first_m.partition, first_m.offset), ticket_content(first)))
        for tk, m in same:
            if ticket_content(tk) != content:
                if tk is first:
                    del accepted[tid]  # (a stored decision of the ledger's copy, if unpublished, still goes out)
                await refuse_copy(tk, m, where)
    fresh = [tk for tid, (tk, _) in accepted.items() if decision_key(tid, 1) not in existing]
    pending = [d.message for d in existing.values() if d.published_at is None and d.message]
    skipped = len(existing) - len(pending)
    if skipped:
        log.info("%d ticket(s) already routed; duplicate deliveries ignored", skipped)
        # Redelivered after their publication: a worker that died between marking and announcing them lost the
        # announcement, which nothing else sends again (the lifecycle would not watch their time limits). Those
        # the lifecycle has not recorded are announced again; it applies one routing id once. (Mostly the
        # lifecycle is only behind, hence no warning: a redelivery soon after publication finds them unrecorded.)
        done = [key for key, d in existing.items() if d.published_at is not None and d.message]
        unheard = await svc.db(svc.ledger.unannounced, done) if done else []
        if unheard:
            log.info("announcing again %d published routing(s) the lifecycle never recorded: %s", len(unheard),
                     ", ".join(unheard[:10]))
            await announce([existing[key].message for key in unheard], again=True)
    if fresh:
        decisions = await svc.route_many([RouteRequest(tk.text, tk.address, tk.received_at) for tk in fresh])
        now = svc.clock.now()
        messages = [message_json(routed_message(tk, d, attempt=1, at=now))
                    for tk, d in zip(fresh, decisions, strict=True)]
        stored = await svc.db(svc.ledger.record_decisions, [decision_row(data) for data in messages])
        if len(stored) < len(messages):  # decided first elsewhere (the reconciler's catch-up): publish that
            first = await svc.db(svc.ledger.decisions, [m["routing_id"] for m in messages
                                                         if m["routing_id"] not in stored])
            messages = [m if m["routing_id"] in stored else first[m["routing_id"]].message for m in messages]
        pending.extend(messages)
    await publish(pending)


# What makes two copies under one id the same ticket: all but received_at (a copy without one is stamped on
# arrival, so two copies of one ticket may differ there)
CONTENT_FIELDS = ("text", "title", "address", "caller_phone", "request_type", "urgency", "channel", "complex_case")


def ticket_content(ticket: TicketIn | Any) -> tuple[Any, ...]:
    return tuple(getattr(ticket, f) for f in CONTENT_FIELDS)


def record_and_look_up(ledger: Ledger, items: list[tuple[TicketIn, str, int, int]]
                       ) -> tuple[dict[str, Any], dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]]]:
    """Record a batch's tickets, in one trip to the ledger thread (each trip waits for that thread and the GIL:
    milliseconds on a busy worker). For the ids the ledger held before (a redelivery, or another message under
    an id already used), also the first-attempt decisions already taken on them, and, for those recorded from
    another position, that position and the stored content. A ticket this call inserted has neither, so a
    batch of new tickets costs the one INSERT."""
    inserted = ledger.record_tickets(items)
    held = {tk.id: (topic, partition, offset) for tk, topic, partition, offset in items if tk.id not in inserted}
    if not held:
        return {}, {}
    known = {row.id: (at, ticket_content(row)) for row in ledger.tickets(list(held)).values()
             if (at := (row.source_topic, row.source_partition, row.source_offset)) != held[row.id]}
    return ledger.decisions([decision_key(tid, 1) for tid in held]), known


async def refuse_copy(ticket: TicketIn, m: Any, first: tuple[Any, ...]) -> None:
    """Dead-letter a copy of a ticket id that came ``first`` (topic, partition, offset) with other content."""
    topic, partition, offset = first
    log.warning("%s[%s]@%s: ticket id %s was received before with other content; this copy is not routed",
                m.topic, m.partition, m.offset, ticket.id)
    await dead_letter(Rejection(ticket.id, f"id: already used by a ticket with other content (received at "
                                           f"{topic}[{partition}]@{offset}); this copy was not routed",
                                ticket_json(ticket).decode()[:2000]),
                      source="topic", topic=m.topic, partition=m.partition, offset=m.offset)


def routed_message(ticket: TicketIn | Any, d: Decision, *, attempt: int, decided_by: str = "router",
                   designation: bool = False, at: datetime | None = None) -> RoutedTicket:
    """The queue message of one decision; ``at`` is the routing time on the deployment's clock."""
    auto = d.decision == AUTO and d.agency is not None
    return RoutedTicket(
        routing_id=decision_key(ticket.id, attempt), ticket_id=ticket.id, attempt=attempt,
        decision=("designated" if designation else d.decision), reason=d.reason,
        received_at=ticket.received_at, routed_at=at or datetime.now(UTC), text=ticket.text, title=ticket.title,
        address=ticket.address, request_type=ticket.request_type, urgency=ticket.urgency, channel=ticket.channel,
        # the full number only on the handling agency's own queue
        caller_phone=ticket.caller_phone if auto else mask_caller_phone(ticket.caller_phone),
        complex_case=bool(getattr(ticket, "complex_case", False)),
        matter=d.matter, matter_name=d.matter_name, domain=d.domain, agency=d.agency,
        agency_name=d.agency_name, agency_kind=d.agency_kind, jurisdiction=d.jurisdiction, street=d.street,
        address_resolved=d.address_resolved, confidence=round(d.confidence, 4), basis=d.basis,
        alternatives=[Alternative(matter=a.matter, agency=a.agency, agency_kind=a.agency_kind,
                                  confidence=a.confidence) for a in d.alternatives],
        excluded_agencies=list(d.excluded_agencies), designation=designation, model_version=d.model_version,
        decided_by=decided_by,
    )


def message_json(msg: RoutedTicket) -> dict[str, Any]:
    """The message as JSON-safe data: serialised once, stored in the ledger and published from there."""
    return orjson.loads(msg.dumps())


def queue_for(data: dict[str, Any]) -> Any:
    """The agency's own queue for an automatic decision with an owner; the dispatchers' queue otherwise."""
    if data["decision"] == AUTO and data.get("agency"):
        return routed_topic(data["agency"])
    return manual_topic


def decision_row(data: dict[str, Any]) -> dict[str, Any]:
    """The ledger row of one routing decision (``data`` from :func:`message_json`), message included."""
    return {
        "decision_key": data["routing_id"], "ticket_id": data["ticket_id"], "attempt": data["attempt"],
        "decision": data["decision"], "matter": data["matter"], "domain": data["domain"],
        "agency": data["agency"] if data["decision"] == AUTO else None, "agency_kind": data["agency_kind"],
        "jurisdiction": data["jurisdiction"], "confidence": data["confidence"], "basis": data["basis"],
        "reason": data["reason"], "alternatives": data["alternatives"] or [],
        "model_version": data["model_version"], "decided_by": data["decided_by"],
        "decided_at": datetime.fromisoformat(data["routed_at"]),
        "topic": queue_for(data).get_topic_name(), "message": data,
    }


async def publish(messages: list[dict[str, Any]]) -> None:
    """Send each stored message to its queue, wait for the broker, mark published, announce the routing."""
    if not messages:
        return
    svc = services()
    futures = []
    for data in messages:
        # the stored JSON goes out byte for byte: a republication is identical to the first one (orjson:
        # UTF-8, compact; the standard library's encoder was 1.5% of a busy worker)
        value = orjson.dumps(data)
        futures.append(await queue_for(data).send(key=data["ticket_id"], value=value))
    await delivered(futures)  # delivery reports: the broker has them
    await svc.db(svc.ledger.mark_published, [d["routing_id"] for d in messages])
    await announce(messages)
    log.info("published %d routing decision(s)", len(messages))


async def announce(messages: list[dict[str, Any]], *, again: bool = False) -> None:
    """Tell the lifecycle stage (``tickets.events``) that these published decisions are on their queues; the
    event id is the routing id's, so an announcement made twice is applied once. ``again``: announced once more
    (lost on the way, or its worker stopped before it): stamped when the decision was routed, as the lifecycle's
    catch-up stamps it (:func:`streams.lifecycle.published_routing`). The ticket has been on its queue since, and
    its sign-for deadline runs from then, not from the moment someone noticed."""
    svc = services()
    for data in messages:
        at = svc.clock.now()
        if again and isinstance(data.get("routed_at"), str):
            at = datetime.fromisoformat(data["routed_at"])
        ev = routed_event(data, at)
        await events_topic.send(key=data["ticket_id"].encode(), value=ev.dumps())


def routed_event(data: dict[str, Any], at: datetime) -> TicketRouted:
    """The 'routed' event of a published decision (``data``: its stored message), as it happened ``at``. Its id
    is the routing id's, whoever builds it: the announcement, or the lifecycle catching up on a routing whose
    announcement has not reached it yet (:func:`streams.lifecycle.published_routing`)."""
    return TicketRouted(
        event_id=routed_event_id(data["routing_id"]), ticket_id=data["ticket_id"], type="routed", actor="router",
        role="system", occurred_at=at, agency=data.get("agency"), attempt=data["attempt"],
        decision=data["decision"], matter=data.get("matter"),
        confidence=data.get("confidence"), reason=data.get("reason"),
        designation=bool(data.get("designation")), decided_by=data.get("decided_by", "router"))
