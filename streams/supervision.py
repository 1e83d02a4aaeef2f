"""Supervision stage: the pure core (``models.supervision``) wired to the lifecycle, a timer and the ledger.

* Facts: the faust table ``supervision-facts`` holds ``TicketFacts.to_dict()`` per ticket id. Its changelog
  is written with the partition of the ticket's ``tickets.events`` messages, so it is co-partitioned with
  the lifecycle's ``ticket-state`` and recovers on the worker that owns the ticket. The facts carry
  ``progress`` (what was announced already): that is what makes time alerts exactly-once across restarts.
* Events: :func:`observe` is the lifecycle stage's one hook, called for every accepted, non-duplicate event
  *before* the lifecycle stores the new state; it is idempotent per event id, so a redelivery after a crash
  between the two writes neither loses nor repeats an observation.
* Time: a task ticks every ``supervision_tick_seconds`` on the configured clock (``HOTLINE_CLOCK_SPEED``);
  the work per tick is proportional to what is due (the core's deadline index), and it runs on the CPU
  executor so a large backlog does not stall the event loop.
* Rebalances: after each table recovery (``Table.on_recover``, i.e. after every partition assignment) the
  supervisor is rebuilt from the facts of the partitions this worker now holds; ticks wait while faust is
  rebalancing. The in-memory linkers (重复件, 联合执法) are replayed from the same facts, their alerts dropped:
  every stored ticket had its alerts sent before its facts were stored.

Every alert is sent to ``supervision.alerts`` and acknowledged by the broker *before* it is recorded in the
ledger (idempotent by ``alert_key``) and before the facts move on: a crash in between re-sends, it never
loses. Alerts whose key the ledger already has are not sent again. All of this runs under one lock, so an
event and a tick never interleave their read-modify-write of the same ticket's facts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from faust import current_event
from sqlalchemy import select

from models import ledger as t
from models.clock import Clock, clock_for
from models.events import AlertRaised, LifecycleEvent
from models.lifecycle import Status, TicketState
from models.supervision import Alert, Supervisor, TicketFacts
from streams.app import TICKETS_EVENTS, alerts_topic, app
from streams.db import Ledger
from streams.wiring import services

log = logging.getLogger(__name__)

# Values are TicketFacts.to_dict() plus "_partition" and "_events" (see _store). No value_type: recovery
# from the changelog then yields plain dicts (a dict value_type breaks it).
facts_table = app.Table("supervision-facts", key_type=str, default=None)

SEEN_EVENTS_KEPT = 16  # event ids remembered per ticket: redeliveries come soon after the original
PRUNE_EVERY = timedelta(days=1)
KEYS_PER_QUERY = 500  # simulated time between housekeeping rounds

_lock = asyncio.Lock()
_sup: Supervisor | None = None
_clock: Clock | None = None
_ready = False  # set once the first recovery has rebuilt the index: no tick before that
_last_prune: datetime | None = None


def supervisor() -> Supervisor:
    """The worker's supervisor, built on first use from the wired catalogue and settings."""
    global _sup
    if _sup is None:
        _sup = _new_supervisor()
    return _sup


def _new_supervisor() -> Supervisor:
    svc = services()
    return Supervisor(svc.catalogue, review_threshold=svc.settings.review_confidence,
                      default_jurisdiction=svc.settings.default_jurisdiction)


def clock() -> Clock:
    global _clock
    if _clock is None:
        _clock = clock_for(services().settings.clock_speed)
    return _clock


# --- the lifecycle hook ---------------------------------------------------------------------------
async def observe(before_state: TicketState | None, event: LifecycleEvent, state: TicketState) -> None:
    """One accepted lifecycle event: update the ticket's facts, raise the rule alerts, store the facts.

    Never raises: a supervision failure is logged with the message's position and must not stop the
    lifecycle (the next event of the ticket, or the next tick, carries on from the stored facts).
    """
    ev = current_event()
    partition = ev.message.partition if ev is not None else None
    try:
        async with _lock:
            raw = facts_table.get(event.ticket_id)
            if raw and event.event_id in (raw.get("_events") or ()):
                return  # observed before a crash; the lifecycle state had not been stored yet
            before = TicketFacts.from_dict(raw) if raw else await _first_facts(before_state, event)
            facts, alerts = supervisor().on_event(before, event, state)
            await emit(alerts)
            seen = [*(raw.get("_events") or () if raw else ()), event.event_id][-SEEN_EVENTS_KEPT:]
            _store(facts, partition if partition is not None else (raw or {}).get("_partition"), seen)
    except Exception:
        where = f"{ev.message.topic}[{ev.message.partition}]@{ev.message.offset}" if ev is not None else "?"
        log.exception("supervision failed on %s %s of ticket %s at %s", event.type, event.event_id,
                      event.ticket_id, where)


async def _first_facts(before_state: TicketState | None, event: LifecycleEvent) -> TicketFacts:
    """A ticket's first facts: intake fields from the ledger row, lifecycle fields from the state before."""
    svc = services()
    row = (await svc.db(svc.ledger.tickets, [event.ticket_id])).get(event.ticket_id)
    if row is None:  # the router records a ticket before routing it: this should not happen
        log.warning("ticket %s is not in the ledger; supervising it from its events only", event.ticket_id)
        intake: dict[str, Any] = {}
        received_at = event.occurred_at
    else:
        intake = {"request_type": row.request_type, "urgency": row.urgency or "一般", "matter": row.matter,
                  "address": row.address, "caller_phone": row.caller_phone}
        received_at = row.received_at
    if before_state is None:
        return TicketFacts(ticket_id=event.ticket_id, received_at=received_at, **intake)
    return TicketFacts.from_state(before_state, received_at=received_at, **intake)


# --- alerts out ---------------------------------------------------------------------------------------
def alert_subject(alert: Alert) -> str:
    """The message key: the ticket id, else the agency, else the finding's own subject (a place)."""
    return alert.ticket_id or alert.agency or alert.alert_key.split(":", 1)[0]


def alert_row(alert: Alert, record: AlertRaised) -> dict[str, Any]:
    return {"alert_key": alert.alert_key, "rule": alert.rule, "level": alert.level, "severity": alert.severity,
            "ticket_id": alert.ticket_id, "agency": alert.agency, "deadline": alert.deadline,
            "message": alert.message_zh, "payload": json.loads(record.dumps()), "raised_at": alert.at}


def unknown_keys(ledger: Ledger, keys: list[str]) -> set[str]:
    """The alert keys the ledger does not have yet (runs on the ledger thread)."""
    known: set[str] = set()
    with ledger.session() as s:
        for i in range(0, len(keys), KEYS_PER_QUERY):  # a backlog tick can raise far more than SQLite binds
            known.update(s.scalars(select(t.Alert.alert_key).where(t.Alert.alert_key.in_(keys[i:i + KEYS_PER_QUERY]))))
    return set(keys) - known


async def emit(alerts: list[Alert]) -> int:
    """Send new alerts, wait for the broker's acknowledgement, then record them; returns how many were new."""
    if not alerts:
        return 0
    svc = services()
    fresh = await svc.db(unknown_keys, svc.ledger, [a.alert_key for a in alerts])
    todo = list({a.alert_key: a for a in alerts if a.alert_key in fresh}.values())
    if not todo:
        return 0
    records = [AlertRaised(**a.record_fields()) for a in todo]
    futures = [await alerts_topic.send(key=alert_subject(a), value=r) for a, r in zip(todo, records, strict=True)]
    await asyncio.gather(*futures)  # delivery reports: the broker has them before the ledger says so
    await svc.db(svc.ledger.record_alerts, [alert_row(a, r) for a, r in zip(todo, records, strict=True)])
    log.info("raised %d alert(s): %s", len(todo), ", ".join(a.alert_key for a in todo[:5])
             + (" ..." if len(todo) > 5 else ""))
    return len(todo)


# --- the facts table ------------------------------------------------------------------------------------
def _store(facts: TicketFacts, partition: int | None, seen: Iterable[str] | None = None) -> None:
    """Write one ticket's facts. Inside the lifecycle's stream faust picks the event's partition itself;
    from the timer we name the partition we recorded, since faust refuses table writes outside a stream."""
    old = facts_table.data.get(facts.ticket_id) or {}
    value = {**facts.to_dict(), "_partition": partition,
             "_events": list(seen if seen is not None else old.get("_events") or ())}
    if current_event() is not None:
        facts_table[facts.ticket_id] = value
    elif partition is not None:
        facts_table.send_changelog(partition, facts.ticket_id, value)
        facts_table.data[facts.ticket_id] = value
    else:  # cannot happen for facts written by observe(); keep it in memory rather than guess a partition
        log.warning("no partition known for ticket %s: its facts are not persisted", facts.ticket_id)
        facts_table.data[facts.ticket_id] = value


def _drop(ticket_id: str, partition: int) -> None:
    facts_table.send_changelog(partition, ticket_id, None, value_serializer="raw")
    facts_table.data.pop(ticket_id, None)


def _lookup(ticket_id: str) -> TicketFacts | None:
    """Facts for the core's tick; reads the store directly (called on the CPU thread, under the lock)."""
    raw = facts_table.data.get(ticket_id)
    return TicketFacts.from_dict(raw) if raw else None


# --- time -------------------------------------------------------------------------------------------------
async def tick_once() -> tuple[int, int, float]:
    """One tick: announce what is due by now, store the moved facts. Returns (alerts, updated, seconds)."""
    svc = services()
    async with _lock:
        now, started = clock().now(), time.perf_counter()
        tick = await svc.cpu(supervisor().tick, now, _lookup)
        elapsed = time.perf_counter() - started
        raised = await emit(tick.alerts)
        for tid, facts in tick.updated.items():
            raw = facts_table.data.get(tid)
            if raw is not None:  # still ours (no rebalance took it while we ticked)
                _store(facts, raw.get("_partition"))
        await _maybe_prune(now)
    if tick.alerts or elapsed > 0.5:
        log.info("supervision tick at %s: %d due alert(s), %d new, %d ticket(s) updated, %.3fs",
                 now.isoformat(timespec="minutes"), len(tick.alerts), raised, len(tick.updated), elapsed)
    return raised, len(tick.updated), elapsed


async def _maybe_prune(now: datetime) -> None:
    """Once per simulated day: prune the linkers, and forget closed tickets the linkers no longer need."""
    global _last_prune
    if _last_prune is not None and now - _last_prune < PRUNE_EVERY:
        return
    _last_prune = now
    sup = supervisor()
    sup.prune(now)
    cutoff = now - sup.repeats.window
    old = [(k, v.get("_partition")) for k, v in list(facts_table.data.items())
           if v and v.get("status") == Status.CLOSED and v.get("closed_at")
           and datetime.fromisoformat(v["closed_at"]) < cutoff and v.get("_partition") is not None]
    for ticket_id, partition in old:
        _drop(ticket_id, partition)
    if old:
        log.info("supervision: forgot %d ticket(s) closed before %s", len(old), cutoff.date())


@app.task
async def supervise() -> None:
    """The supervision timer (a task rather than ``@app.timer``: the interval is a setting)."""
    interval = services().settings.supervision_tick_seconds
    while True:
        await asyncio.sleep(interval)
        if not _ready or app.rebalancing:
            continue  # the table is being recovered: its facts are not complete yet
        try:
            await tick_once()
        except Exception:  # keep ticking; the next tick retries what is still due
            log.exception("supervision tick failed")


# --- rebalances -----------------------------------------------------------------------------------------
def rebuild(stored: list[dict[str, Any]]) -> Supervisor:
    """A fresh supervisor scheduling every stored ticket, its linkers replayed (alerts dropped: sent before)."""
    sup = _new_supervisor()
    facts = sorted((TicketFacts.from_dict(v) for v in stored), key=lambda f: f.received_at)
    sup.rebuild(facts)
    for f in facts:
        if f.attempt > 0:
            sup.repeats.observe(f)
        if f.agency and f.dispatched_at is not None:
            sup.joint.observe(f, f.agency, f.dispatched_at)
    return sup


@facts_table.on_recover
async def _recovered() -> None:
    """After each recovery (= each partition assignment): rebuild from the facts this worker now holds."""
    global _sup, _ready
    svc = services()
    async with _lock:
        # The memory store forgets revoked partitions only for keys it recovered from the changelog, not
        # for keys this worker wrote itself: drop those too, their new owner recovered them.
        assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == TICKETS_EVENTS}
        for key in [k for k, v in facts_table.data.items() if v and v.get("_partition") not in assigned]:
            facts_table.data.pop(key, None)
        stored = [v for v in facts_table.data.values() if v]
        started = time.perf_counter()
        _sup = await svc.cpu(rebuild, stored)
        _ready = True
    log.info("supervision rebuilt from %d stored ticket(s): %d with running clocks, %.3fs", len(stored),
             _sup.index.tickets, time.perf_counter() - started)
