"""Lifecycle stage: every action on a ticket (``tickets.events``) checked against the state machine.

The ticket's state lives in a faust table keyed by ticket id, co-partitioned with ``tickets.events``
(same key, same partition count), so each worker holds the state of exactly the tickets whose events
it consumes; the table's changelog rebuilds it after a crash. Legal events update the state, go to the
ledger and trigger what follows (re-route after a return, designation after the last attempt, a
dispatcher's dispatch); illegal ones are recorded with the reason and dead-lettered.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from classifier.decision import AUTO, MANUAL, Decision
from classifier.router import RouteRequest
from models.events import LifecycleEvent, parse_event
from models.lifecycle import Designate, Dispatch, Outcome, Reroute, TicketState, apply
from models.tickets import Rejection, content_key
from streams import supervision
from streams.app import app, events_topic
from streams.intake import dead_letter
from streams.routing import decision_row, message_json, publish, routed_message
from streams.wiring import services

log = logging.getLogger(__name__)

# Values are TicketState.to_dict() (JSON); no value_type, so recovery from the changelog yields dicts.
ticket_state = app.Table("ticket-state", key_type=str, default=None)


@app.agent(events_topic)
async def lifecycle(stream):  # type: ignore[no-untyped-def]
    async for ev in stream.events():
        m = ev.message
        try:
            await handle(ev.key, ev.value or b"", m)
        except Exception:  # faust would ack and move on: record it instead of losing it silently
            log.exception("lifecycle failed on %s[%s]@%s", m.topic, m.partition, m.offset)
            raw = (ev.value or b"").decode("utf-8", "replace")
            await dead_letter(Rejection(content_key(raw), "internal error in the lifecycle stage; see worker log",
                                        raw[:2000]), source="events", topic=m.topic, partition=m.partition,
                              offset=m.offset)


async def handle(key: bytes | None, value: bytes, m: Any) -> None:
    svc = services()
    event = parse_event(value)
    if isinstance(event, Rejection):
        log.warning("rejected event %s[%s]@%s: %s", m.topic, m.partition, m.offset, event.reason)
        await dead_letter(event, source="events", topic=m.topic, partition=m.partition, offset=m.offset)
        return
    if (key or b"").decode("utf-8", "replace") != event.ticket_id:
        # State is partitioned by ticket id: an event keyed otherwise is re-keyed, then handled there.
        await events_topic.send(key=event.ticket_id.encode(), value=value)
        return
    raw_state = ticket_state.get(event.ticket_id)
    state = TicketState.from_dict(raw_state) if raw_state else None
    outcome = apply(state, event, max_attempts=svc.catalogue.sla.max_dispatch_attempts,
                    known_agencies=svc.catalogue.agencies)
    payload = json.loads(value)
    if not isinstance(outcome, Outcome):
        log.warning("illegal %s on %s by %s: %s", event.type, event.ticket_id, event.actor, outcome.reason)
        await svc.db(svc.ledger.record_event, event_id=event.event_id, ticket_id=event.ticket_id, type=event.type,
                     actor=event.actor, agency=event.agency, occurred_at=event.occurred_at, accepted=False,
                     reason=outcome.reason, payload=payload)
        await dead_letter(Rejection(event.event_id, f"illegal {event.type}: {outcome.reason}", value.decode()),
                          source="events", topic=m.topic, partition=m.partition, offset=m.offset)
        return
    if outcome.duplicate:
        return
    await supervision.observe(state, event, outcome.state)  # before the state: it is idempotent, the state is not
    ticket_state[event.ticket_id] = outcome.state.to_dict()
    await svc.db(svc.ledger.record_event, event_id=event.event_id, ticket_id=event.ticket_id, type=event.type,
                 actor=event.actor, agency=event.agency, occurred_at=event.occurred_at, accepted=True, reason=None,
                 payload=payload, status=outcome.state.status, current_agency=outcome.state.agency)
    for effect in outcome.effects:
        await follow_up(effect, event, outcome.state)


async def follow_up(effect: Reroute | Designate | Dispatch, event: LifecycleEvent, state: TicketState) -> None:
    svc = services()
    tickets = await svc.db(svc.ledger.tickets, [event.ticket_id])
    ticket = tickets.get(event.ticket_id)
    if ticket is None:
        log.error("ticket %s has lifecycle state but is not in the ledger; cannot act on %s", event.ticket_id,
                  type(effect).__name__)
        return
    if isinstance(effect, Reroute):
        (d,) = await svc.cpu(svc.router.route_many, [RouteRequest(ticket.text, ticket.address, ticket.received_at,
                                                                  effect.exclude)])
        msg = routed_message(ticket, d, attempt=effect.attempt)
        log.info("ticket %s returned by %s: attempt %d -> %s", ticket.id, event.agency, effect.attempt,
                 d.agency if d.decision == AUTO else "manual queue")
    elif isinstance(effect, Designate):
        d = Decision(MANUAL, f"已派{effect.attempts}次均被退回（{'、'.join(effect.returned_by)}），"
                             f"需热线指定承办单位", 0.0, excluded_agencies=effect.returned_by)
        msg = routed_message(ticket, d, attempt=effect.attempts + 1, designation=True)
        log.warning("ticket %s returned %d times: to the manual queue for designation", ticket.id, effect.attempts)
    else:
        agency = svc.catalogue.agency(effect.agency)
        d = Decision(AUTO, f"调度员{event.actor}指派至{agency.name}", 1.0, agency=agency.code,
                     agency_name=agency.name, agency_kind=agency.kind, jurisdiction=agency.jurisdiction,
                     excluded_agencies=state.returned_by)
        msg = routed_message(ticket, d, attempt=effect.attempt, decided_by=event.actor)
        await svc.db(svc.ledger.record_training_example, ticket_id=ticket.id, label=agency.code,
                     predicted=ticket.current_agency, created_by=event.actor)
    data = message_json(msg)
    await svc.db(svc.ledger.record_decisions, [decision_row(data)])
    await publish([data])


