"""Lifecycle stage: every action on a ticket (``tickets.events``) checked against the state machine.

The ticket's state lives in the ticket table (:mod:`streams.ticket_table`, beside supervision's facts), keyed
by ticket id and co-partitioned with ``tickets.events`` (same key, same partition count), so each worker
holds the state of exactly the tickets whose events it consumes; the table's changelog rebuilds it after a
crash. Legal events update the state, go to the
ledger and trigger what follows (re-route after a return, designation after the last attempt, a
dispatcher's dispatch); illegal ones are recorded with the reason and dead-lettered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from classifier.decision import AUTO, MANUAL, Decision
from classifier.router import RouteRequest
from models.events import LifecycleEvent, read_event
from models.lifecycle import EVENT_TYPES, Designate, Dispatch, Outcome, Refusal, Reroute, TicketState, apply
from models.supervision import TicketFacts
from models.supervision.deadlines import return_window
from models.tickets import Rejection
from streams import supervision, ticket_table
from streams.app import app, changelog_written, events_topic, every
from streams.corrections import candidates_of, correction_label
from streams.db import SchemaMoved
from streams.intake import batch_or_each, dead_letter
from streams.routing import (
    announce,
    decision_key,
    decision_row,
    message_json,
    publish,
    routed_event,
    routed_message,
)
from streams.wiring import clock_skew, handling, services

log = logging.getLogger(__name__)
BATCH = 200  # up to 200 events, or as many as came within settings.stream_batch_wait_ms


@app.agent(events_topic)
async def lifecycle(stream):  # type: ignore[no-untyped-def]
    # Batches, as in routing: one ledger write, one acknowledged publish of link facts per batch instead of
    # per event (per-event round trips held a worker to ~200 events/s). Tables are written with the
    # partition of each ticket's own messages (see handle_batch), as faust does for one event.
    within = services().settings.stream_batch_wait_ms / 1000
    async for events in stream.take_events(BATCH, within=within):
        with handling(events):
            await batch_or_each(events, handle_batch, stage="the lifecycle stage", source="events")


def _event_row(event: LifecycleEvent, payload: dict[str, Any], *, accepted: bool, reason: str | None = None,
               state: TicketState | None = None) -> dict[str, Any]:
    return {"event_id": event.event_id, "ticket_id": event.ticket_id, "type": event.type, "actor": event.actor,
            "agency": event.agency, "occurred_at": event.occurred_at, "accepted": accepted, "reason": reason,
            "payload": payload, "status": state.status if state else None,
            "current_agency": state.agency if state else None}


def return_closes(state: TicketState | None, event: LifecycleEvent) -> datetime | None:
    """When the current dispatch's 退单 window closes, for a return to be refused after it (``sla.yaml``
    ``late_returns: refuse``); None when returns are only flagged, or when the window cannot be told here: the
    ticket's facts are stored with its state after its routing's batch, so a return in that same batch, which
    is within the window anyway, is accepted."""
    svc = services()
    if event.type != "returned" or state is None or state.dispatched_at is None \
            or not svc.catalogue.sla.refuse_late_returns:
        return None
    raw = ticket_table.facts(event.ticket_id)
    window = return_window(TicketFacts.from_dict(raw).with_state(state), svc.catalogue) if raw else None
    return window.due if window is not None else None


async def handle_batch(events: Sequence[Any]) -> None:
    """Apply a batch of events in order; then supervision, the states, the ledger and the follow-ups.

    Order of the writes, as for one event: supervision observes (its alerts and link facts go out), then
    each ticket's new state and facts are stored in one write; the ledger rows come after, and a
    redelivered event the state already holds still writes its (idempotent) row, so a crash between the
    two loses no row. Its follow-up, if the state still has it pending (a crash, or a follow-up that
    failed, after the state was stored), runs again too: the retry of a failed batch and any redelivery
    finish what the first run did not.
    """
    svc = services()
    # the senders' times are judged against our clock (one "now" per batch, taken after its events arrived)
    now, skew = svc.clock.now(), clock_skew(svc.settings, svc.clock)

    def judge(state: TicketState | None, event: LifecycleEvent) -> Outcome | Refusal:
        return apply(state, event, max_attempts=svc.catalogue.sla.max_dispatch_attempts,
                     known_agencies=svc.catalogue.agencies, return_closes=return_closes(state, event),
                     now=now, max_skew=skew)

    states: dict[str, tuple[TicketState, int]] = {}  # ticket id -> (state after this batch, partition)
    observed: list[supervision.Observation] = []
    rows: list[dict[str, Any]] = []
    refused: list[tuple[Rejection, Any]] = []
    effects: list[tuple[Reroute | Designate | Dispatch, LifecycleEvent, TicketState]] = []
    for ev in events:
        m = ev.message
        value = ev.value or b""
        event, payload = read_event(value, now=now)
        if isinstance(event, Rejection):
            log.warning("rejected event %s[%s]@%s: %s", m.topic, m.partition, m.offset, event.reason)
            await dead_letter(event, source="events", topic=m.topic, partition=m.partition, offset=m.offset)
            continue
        if (ev.key or b"").decode("utf-8", "replace") != event.ticket_id:
            # State is partitioned by ticket id: an event keyed otherwise is re-keyed, then handled there.
            await events_topic.send(key=event.ticket_id.encode(), value=value)
            continue
        if event.ticket_id in states:
            state: TicketState | None = states[event.ticket_id][0]
        else:
            raw_state = ticket_table.state(event.ticket_id)
            state = TicketState.from_dict(raw_state) if raw_state else None
        outcome = judge(state, event)
        if not isinstance(outcome, Outcome) and event.type in EVENT_TYPES and event.type != "routed" \
                and (caught_up := await published_routing(state, event.ticket_id)) is not None:
            # Acted on a routing whose announcement is still behind it on this partition: the routing is applied
            # first (what its announcement will do; that one is then a duplicate), and the event judged again.
            routed, routed_payload, landed = caught_up
            log.info("%s on %s (%s[%s]@%s) came before the announcement of %s; applying that routing first",
                     event.type, event.ticket_id, m.topic, m.partition, m.offset, routed.event_id)
            observed.append((state, routed, landed))
            states[event.ticket_id] = (landed, m.partition)
            rows.append(_event_row(routed, routed_payload, accepted=True, state=landed))
            state = landed
            outcome = judge(state, event)
        if not isinstance(outcome, Outcome):
            log.warning("illegal %s on %s by %s (%s[%s]@%s): %s", event.type, event.ticket_id, event.actor,
                        m.topic, m.partition, m.offset, outcome.reason)
            rows.append(_event_row(event, payload, accepted=False, reason=outcome.reason))
            refused.append((Rejection(event.event_id, f"illegal {event.type}: {outcome.reason}",
                                      value.decode("utf-8", "replace")), m))
            continue
        if outcome.duplicate:  # applied before; its ledger row may be what a crash left unwritten
            rows.append(_event_row(event, payload, accepted=True, state=state))
            # and so may its follow-up (still pending in the state): it runs again
            effects.extend((effect, event, outcome.state) for effect in outcome.effects)
            continue
        observed.append((state, event, outcome.state))
        states[event.ticket_id] = (outcome.state, m.partition)
        rows.append(_event_row(event, payload, accepted=True, state=outcome.state))
        effects.extend((effect, event, outcome.state) for effect in outcome.effects)
    async with ticket_table.lock:  # the timer must not move these tickets' facts in between
        facts = await supervision.observe_many(observed)
        await changelog_written([  # durable before the batch's offsets can be committed
            ticket_table.write(ticket_id, partition, state=state_after.to_dict(),
                               facts=facts.get(ticket_id, ticket_table.KEEP))
            for ticket_id, (state_after, partition) in states.items()])
    if rows:
        await svc.db(svc.ledger.record_events, rows, restage=svc.restage)
    for rejection, m in refused:
        await dead_letter(rejection, source="events", topic=m.topic, partition=m.partition, offset=m.offset)
    done: set[tuple[str, int]] = set()  # an event and its redelivery in one batch: one follow-up
    for effect, event, state_after in effects:
        if (event.ticket_id, effect.attempt) not in done:
            done.add((event.ticket_id, effect.attempt))
            await follow_up(effect, state_after, event.actor)


async def published_routing(state: TicketState | None, ticket_id: str
                            ) -> tuple[LifecycleEvent, dict[str, Any], TicketState] | None:
    """The routing of ``ticket_id`` that is published but not yet applied to ``state``: its 'routed' event, that
    event's payload and the state after it; None when there is none, or when the state machine would not take it.

    The ledger marks a decision published (the ticket's row: dispatched, to its agency) once its queue has it,
    and only then is it announced on ``tickets.events``; the console offers 签收 from that row, and an agency's
    system reads its queue. An action sent in between lands ahead of the announcement on the ticket's partition
    (measured: 1-5 ms after publication on a quiet worker, up to 350 ms with a backlog), and the state does not
    know the routing yet. The event is built from the stored message, as the announcement is (same event id), at
    the time the decision was routed, so the action cannot precede it; the announcement is then a duplicate."""
    svc = services()
    data = await svc.db(svc.ledger.unrecorded_routing, ticket_id, state.attempt if state is not None else 0)
    if data is None:
        return None
    at = datetime.fromisoformat(data["routed_at"]) if isinstance(data.get("routed_at"), str) else svc.clock.now()
    routed, payload = read_event(routed_event(data, at).dumps())
    if isinstance(routed, Rejection) or payload is None:
        return None
    # no check of its time (no ``now``): our own stored decision, stamped when it was routed, after the step that
    # caused it; the action judged again after it is checked against that time
    landed = apply(state, routed, max_attempts=svc.catalogue.sla.max_dispatch_attempts,
                   known_agencies=svc.catalogue.agencies)
    if not isinstance(landed, Outcome) or landed.duplicate:
        return None
    return routed, payload, landed.state


def dispatched_matter(agency: str, messages: list[Any], ticket: Any) -> dict[str, Any]:
    """The matter a dispatcher's choice of agency implies: the best of the router's candidate matters
    (over all attempts) that the agency owns at the ticket's place and date, with its legal basis — so the
    ticket keeps a matter for figures and hot spots. Empty when none fits (the dispatcher knew better)."""
    svc = services()
    matter = correction_label(agency, "matter", candidates_of(messages), svc.catalogue, address=ticket.address,
                              received_at=ticket.received_at,
                              default_jurisdiction=svc.settings.default_jurisdiction)
    if matter is None:
        return {}
    m = svc.catalogue.matter(matter)
    out: dict[str, Any] = {"matter": m.code, "matter_name": m.name, "domain": m.domain}
    try:
        own = svc.catalogue.place(matter, ticket.address or "", ticket.received_at,
                                  svc.settings.default_jurisdiction).ownership
        if own.agency.code == agency:
            out["basis"] = own.basis
    except LookupError:
        pass
    return out


async def follow_up(effect: Reroute | Designate | Dispatch, state: TicketState, actor: str) -> None:
    """Decide and publish the dispatch of attempt ``effect.attempt``, which ``actor``'s event caused. Run again
    when that event is redelivered or the sweep finds the dispatch stuck (still pending), so a decision
    stored under its routing id is what goes out: the same message, never a second decision for the same id."""
    svc = services()
    ticket_id = state.ticket_id
    key = decision_key(ticket_id, effect.attempt)
    stored = (await svc.db(svc.ledger.decisions, [key])).get(key)
    if stored is not None and stored.message:
        log.info("ticket %s: dispatch %s was decided before; publishing it again", ticket_id, key)
        await publish([stored.message])
        return
    tickets = await svc.db(svc.ledger.tickets, [ticket_id])
    ticket = tickets.get(ticket_id)
    if ticket is None:
        log.error("ticket %s has lifecycle state but is not in the ledger; cannot act on %s", ticket_id,
                  type(effect).__name__)
        return
    if isinstance(effect, Reroute):
        (d,) = await svc.route_many([RouteRequest(ticket.text, ticket.address, ticket.received_at, effect.exclude)])
        msg = routed_message(ticket, d, attempt=effect.attempt, at=svc.clock.now())
        log.info("ticket %s returned (by %s): attempt %d -> %s", ticket.id, "、".join(state.returned_by),
                 effect.attempt, d.agency if d.decision == AUTO else "manual queue")
    elif isinstance(effect, Designate):
        d = Decision(MANUAL, f"已派{effect.attempts}次均被退回（{'、'.join(effect.returned_by)}），"
                             f"需热线指定承办单位", 0.0, excluded_agencies=effect.returned_by)
        msg = routed_message(ticket, d, attempt=effect.attempt, designation=True, at=svc.clock.now())
        log.warning("ticket %s returned %d times: to the manual queue for designation", ticket.id, effect.attempts)
    else:
        agency = svc.catalogue.agency(effect.agency)
        earlier = await svc.db(svc.ledger.decisions, [decision_key(ticket.id, a) for a in range(1, effect.attempt)])
        matter = dispatched_matter(agency.code, [d.message for d in earlier.values()], ticket)
        d = Decision(AUTO, f"调度员{actor}指派至{agency.name}", 1.0, agency=agency.code,
                     agency_name=agency.name, agency_kind=agency.kind, jurisdiction=agency.jurisdiction,
                     excluded_agencies=state.returned_by, **matter)
        msg = routed_message(ticket, d, attempt=effect.attempt, decided_by=actor, at=svc.clock.now())
    data = message_json(msg)
    if key not in await svc.db(svc.ledger.record_decisions, [decision_row(data)]):
        # decided first by a concurrent run (as in routing.route_batch): that stored message is the dispatch
        first = await svc.db(svc.ledger.decisions, [key])
        log.warning("ticket %s: dispatch %s was stored meanwhile; publishing the stored one", ticket.id, key)
        await publish([first[key].message])
        return
    if isinstance(effect, Dispatch):  # the dispatcher's choice is a labelled example, once it is the dispatch
        # predicted: where the latest earlier decision sent it (None: to the manual queue). Not the ticket's
        # current agency, which the reassignment has already cleared in the ledger.
        latest = max(earlier.values(), key=lambda r: r.attempt, default=None)
        await svc.db(svc.ledger.record_training_example, ticket_id=ticket.id, label=effect.agency,
                     predicted=latest.agency if latest is not None else None, created_by=actor)
    await publish([data])


# --- stuck dispatches ---------------------------------------------------------------------------------------
# A follow-up that fails in its batch and again alone dead-letters its event; the state keeps the dispatch
# pending. Nothing would redeliver that event, so a sweep does the dispatch again instead.
_recovered = False  # no sweep before the table is recovered: a half-read state may be an old one
_pending_since: dict[tuple[str, str | None], float] = {}  # (ticket, pending event) -> first seen pending


@ticket_table.table.on_recover
async def _table_recovered() -> None:
    global _recovered
    _recovered = True


async def sweep_stuck_dispatches(now: float | None = None) -> int:
    """Do again each follow-up dispatch this worker's tickets have had pending since the previous sweep (at
    least ``settings.stuck_dispatch_seconds``): decide, store and publish it, or publish the stored decision
    (:func:`follow_up`); a decision already published whose 'routed' event never came back (a crash between
    the two) is only announced again. Returns how many dispatches were done again.

    A dispatch in flight lands within milliseconds, so one seen pending on two sweeps is stuck; should it
    merely be slow (a backlog on ``tickets.events``), doing it again repeats an identical message that its
    routing id makes idempotent. A failure is logged, and the next sweep tries again."""
    svc = services()
    now = time.monotonic() if now is None else now
    pending = {(s.ticket_id, s.pending_event): s
               for s in map(TicketState.from_dict, ticket_table.pending_states())}
    for gone in _pending_since.keys() - pending.keys():
        del _pending_since[gone]
    due = []
    for mark, state in pending.items():
        if now - _pending_since.setdefault(mark, now) >= svc.settings.stuck_dispatch_seconds:
            _pending_since[mark] = now
            due.append(state)
    for state in due:
        effect = state.pending_effect()
        if effect is None:
            continue
        key = decision_key(state.ticket_id, effect.attempt)
        try:
            stored = (await svc.db(svc.ledger.decisions, [key])).get(key)
            if stored is not None and stored.message and stored.published_at is not None:
                log.warning("ticket %s: dispatch %s is on its queue but its routing never came back; "
                            "announcing it again", state.ticket_id, key)
                await announce([stored.message], again=True)
            else:
                log.warning("ticket %s: dispatch %s (%s, caused by %s) has not landed; doing it again",
                            state.ticket_id, key, state.pending, state.pending_event)
                await follow_up(effect, state, state.pending_actor or "dispatcher")
        except SchemaMoved:
            raise  # the worker is stopping (streams.wiring.Services.schema_moved): the round ends, as the others'
        except Exception:
            log.exception("ticket %s: dispatch %s failed again; the next sweep retries it", state.ticket_id, key)
    return len(due)


@app.task
async def sweep_stuck() -> None:
    """The sweep's timer (a task: the interval is a setting); quiet while the group rebalances."""
    interval = services().settings.stuck_dispatch_seconds
    if interval:
        await every(interval, sweep_stuck_dispatches, name="stuck-dispatch sweep",
                    skip=lambda: not _recovered or app.rebalancing)
