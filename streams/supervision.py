"""Supervision stage: the pure core (``models.supervision``) wired to the lifecycle, a timer and the ledger.

* Facts: ``TicketFacts.to_dict()`` per ticket id, kept beside the lifecycle's state in the ticket table
  (:mod:`streams.ticket_table`), which recovers on the worker that owns the ticket. The facts carry
  ``progress`` (what was announced already): that is what makes time alerts exactly-once across restarts.
* Events: :func:`observe_many` is the lifecycle stage's one hook, called for each batch of accepted,
  non-duplicate events; it returns the new facts, and the lifecycle stores them with the new states in one
  write, so a crash leaves both old or both new. The ids of the events observed are kept with the facts.
* Time: a task ticks every ``supervision_tick_seconds`` on the configured clock (``HOTLINE_CLOCK_SPEED``);
  the work per tick is proportional to what is due (the core's deadline index), and it runs on the CPU
  executor so a large backlog does not stall the event loop.
* Rebalances: after each table recovery (``Table.on_recover``, i.e. after every partition assignment) the
  supervisor is rebuilt from the facts of the partitions this worker now holds; ticks wait while faust is
  rebalancing.
* Linking (重复件, 联合执法): tickets of one caller or one place arrive on *different* partitions, so no
  worker sees them all. :func:`observe_many` publishes each routed ticket's link facts (``linking.link_facts``;
  a re-route with another matter moves the ticket from its old place + matter key to the new one) to the
  internal topic ``supervision.links``, on the partition of their linking key (hashes of caller, of
  place + matter, the place id): the faust way of repartitioning, with one message per partition and batch
  (``LinksObserved``) rather than per fact. The :func:`linker` agent folds them into one ``LinkState`` per
  key with the pure ``linking.link``. The states live in memory, per partition, and the topic itself is their
  log: when the linker first meets a partition after an assignment, it rebuilds that partition's states by
  folding the partition's facts again, from the log's start up to the offset it was handed (the topic keeps
  facts a little longer than the longest window). No changelog: that cost 2.6 broker writes per ticket.
  Keys whose tickets left the window are forgotten once per simulated day (window measured in ticket time).

Every alert is sent to ``supervision.alerts`` and acknowledged by the broker *before* it is recorded in the
ledger (idempotent by ``alert_key``) and before the facts move on: a crash in between re-sends, it never
loses. Alerts whose key the ledger already has are not sent again. All of this runs under the ticket table's
lock, so an event and a tick never interleave their read-modify-write of the same ticket's facts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select

from models import ledger as t
from models.events import AlertRaised, LifecycleEvent, LinkObserved, LinksObserved
from models.lifecycle import CLOSED_HELD, TicketState
from models.supervision import (
    Alert,
    LinkFact,
    LinkRules,
    LinkState,
    Supervisor,
    TicketFacts,
    link,
    link_facts,
)
from models.supervision.facts import same_lifecycle
from streams import ticket_table
from streams.app import (
    SUPERVISION_LINKS,
    TICKETS_EVENTS,
    alerts_topic,
    app,
    changelog_written,
    delivered,
    every,
    link_partition,
    links_topic,
    owned_partitions,
)
from streams.broker import BrokerReader
from streams.db import Ledger
from streams.wiring import handling, services

log = logging.getLogger(__name__)

# The linker's state: partition of supervision.links -> linking key -> state. A partition is here once its
# states are rebuilt (:func:`_rebuild_links`) and for as long as this worker keeps it.
link_states: dict[int, dict[str, LinkState]] = {}

SEEN_EVENTS_KEPT = 16  # event ids remembered per ticket: redeliveries come soon after the original
PRUNE_EVERY = timedelta(days=1)  # simulated time between housekeeping rounds
KEYS_PER_QUERY = 500  # SQLite refuses more than ~1000 bound parameters per statement
LINK_RULES = LinkRules()  # 重复件: 3rd within 30 days; 联合执法: 2 agencies within 14 days
BATCH = 50  # messages per linker batch (each carries one lifecycle batch's facts of one partition), or as
# many as came within settings.stream_batch_wait_ms
# LinkObserved's fields without a default: what a message must carry to be read as a link fact
FACT_FIELDS = frozenset(LinkObserved._options.fields) - LinkObserved._options.defaults.keys()  # type: ignore[attr-defined]
LINK_SCHEMA = LinkObserved._options.defaults["schema_version"]  # type: ignore[attr-defined]
LINKS_SCHEMA = LinksObserved._options.defaults["schema_version"]  # type: ignore[attr-defined]
FACTS_PER_MESSAGE = 500  # ~250 bytes each: well under the broker's 1 MB message limit
REBUILD_ATTEMPTS = 5  # tries to read a partition's facts back, 1, 2, 4, 8 s apart, before linking on without them
REBUILD_BACKOFF = 1.0  # seconds before the second try; doubled each time

_sup: Supervisor | None = None
_ready = False  # set once the first recovery has rebuilt the index: no tick before that
_last_prune: datetime | None = None
_ticked = False  # the first tick after start is always logged
# Newest ticket time the linker has seen (event time). Link states expire against it, not against the clock:
# linking compares tickets' own times, and on a sped-up clock those (stamped by intake and the router) lag
# far behind simulated "now", which would expire keys whose tickets can still be linked.
_link_watermark: datetime | None = None


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


# --- the lifecycle hook ---------------------------------------------------------------------------
Observation = tuple[TicketState | None, LifecycleEvent, TicketState]
"""(state before, accepted event, state after)."""


async def observe_many(items: list[Observation]) -> dict[str, dict[str, Any]]:
    """A batch of accepted lifecycle events, in order: update each ticket's facts, raise the rule alerts and
    publish the link facts. Returns the tickets' new facts, which the caller stores with their new states,
    still under :data:`streams.ticket_table.lock` (which it holds for the whole call).

    The ledger is read once for every ticket seen for the first time, and alerts and link facts go out (and
    are acknowledged) together before anything is stored: the same crash safety as one event at a time, for
    a handful of round trips per batch instead of per event. Never raises: a failure is logged with the
    ticket and event, and must not stop the lifecycle (a ticket whose facts failed keeps its old ones; its
    next event, or the next tick, carries on from them).
    """
    if not items:
        return {}
    batch: dict[str, dict[str, Any]] = {}  # ticket id -> facts value written by this batch
    try:
        firsts = sorted({ev.ticket_id for _, ev, _ in items if not ticket_table.facts(ev.ticket_id)})
        svc = services()
        rows = await svc.db(svc.ledger.intake_facts, firsts) if firsts else {}
        alerts: list[Alert] = []
        links: list[LinkFact] = []
        for before_state, event, state in items:
            try:
                raw = batch.get(event.ticket_id) or ticket_table.facts(event.ticket_id)
                if raw and event.event_id in (raw.get("_events") or ()):
                    continue  # observed already: an earlier version stored facts apart from, and before, the state
                before = TicketFacts.from_dict(raw) if raw else _first_facts(
                    before_state, event, rows.get(event.ticket_id))
                facts, raised = supervisor().on_event(before, event, state)
                alerts.extend(raised)
                links.extend(link_facts(before, facts, event))
                seen = [*(raw.get("_events") or () if raw else ()), event.event_id][-SEEN_EVENTS_KEPT:]
                batch[event.ticket_id] = {**facts.to_dict(), "_events": seen}
            except Exception:
                log.exception("supervision failed on %s %s of ticket %s", event.type, event.event_id,
                              event.ticket_id)
        await _send(alerts, links)
    except Exception:
        log.exception("supervision failed on a batch of %d event(s) (tickets %s)", len(items),
                      ", ".join(sorted({ev.ticket_id for _, ev, _ in items})[:5]))
        return {}
    return batch


SEND_RETRY_DELAYS = (0.5, 1.0, 2.0)  # seconds before each new attempt: a broker away for a moment


async def _send(alerts: list[Alert], links: list[LinkFact]) -> None:
    """Publish a batch's alerts and link facts, trying again a few times: a batch that cannot send is stored
    with its tickets' old facts, and its rule alerts (a return, a misdispatch, ping-pong) are then lost.
    Sending twice is harmless: consumers dedupe alerts on their key, the linker holds each ticket once."""
    for delay in (*SEND_RETRY_DELAYS, None):
        try:
            await emit(alerts)
            # Published (and acknowledged) before the facts are stored, like alerts: a crash in between
            # publishes them again, and the linker ignores a ticket it already holds under that key.
            await publish_links(links)
            return
        except Exception as exc:
            if delay is None:
                raise
            log.warning("supervision could not publish %d alert(s) and %d link fact(s) (%s); retry in %.1fs",
                        len(alerts), len(links), exc, delay)
            await asyncio.sleep(delay)


def _first_facts(before_state: TicketState | None, event: LifecycleEvent, row: Any) -> TicketFacts:
    """A ticket's first facts: intake fields from its ledger row, lifecycle fields from the state before."""
    if row is None:  # the router records a ticket before routing it: this should not happen
        log.warning("ticket %s is not in the ledger; supervising it from its events only", event.ticket_id)
        intake: dict[str, Any] = {}
        received_at = event.occurred_at
    else:
        intake = {"request_type": row.request_type, "urgency": row.urgency or "一般", "matter": row.matter,
                  "address": row.address, "caller_phone": row.caller_phone,
                  "complex_case": bool(row.complex_case)}
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
    await delivered(futures)  # delivery reports: the broker has them before the ledger says so
    await svc.db(svc.ledger.record_alerts, [alert_row(a, r) for a, r in zip(todo, records, strict=True)])
    log.info("raised %d alert(s): %s", len(todo), ", ".join(a.alert_key for a in todo[:5])
             + (" ..." if len(todo) > 5 else ""))
    return len(todo)


async def publish_links(facts: list[LinkFact]) -> None:
    """Send link facts to ``supervision.links``, one message per partition of their keys (at most
    ``FACTS_PER_MESSAGE`` each), and wait for the broker's acknowledgement."""
    if not facts:
        return
    by_partition: dict[int, list[dict[str, Any]]] = {}
    for f in facts:
        by_partition.setdefault(link_partition(f.key), []).append({"schema_version": LINK_SCHEMA, **f.to_dict()})
    futures = [await links_topic.send(partition=p, value=links_message(group[i:i + FACTS_PER_MESSAGE]))
               for p, group in sorted(by_partition.items()) for i in range(0, len(group), FACTS_PER_MESSAGE)]
    await delivered(futures)


def links_message(facts: list[dict[str, Any]]) -> bytes:
    """A ``LinksObserved`` message, written straight from the facts' dicts: building a faust record per fact
    and serialising it again cost more than the rest of publishing them (tests/unit/test_schemas.py checks
    that the JSON is the same)."""
    return orjson.dumps({"schema_version": LINKS_SCHEMA, "facts": facts})


# --- linking across partitions -----------------------------------------------------------------------------
@app.agent(links_topic)
async def linker(stream):  # type: ignore[no-untyped-def]
    """Fold link facts into their keys' states, a batch of messages at a time: emit the alerts first, then
    store the states.

    Batches for the same reason as the other stages: one fact at a time waited for the broker twice per
    fact (its alerts, its changelog write), so a burst's link facts queued behind each other for minutes.
    A partition met for the first time since its assignment has its states rebuilt first, from the facts
    below the first offset handed over (the group's committed offset): the rest come through here.
    """
    within = services().settings.stream_batch_wait_ms / 1000
    async for events in stream.take_events(BATCH, within=within):
        with handling(events):
            await _link_batch(events)


async def _link_batch(events: list[Any]) -> None:
    firsts: dict[int, int] = {}
    for ev in events:
        firsts.setdefault(ev.message.partition, ev.message.offset)
    await _rebuild_links(firsts)
    items = [(fact, ev.message) for ev in events for fact in facts_of(ev)]
    try:
        await on_links([(fact, m.partition) for fact, m in items])
    except Exception:  # one fact at a time, so one bad fact does not take its batch (or message) with it
        log.exception("linking failed on a batch of %d fact(s); retrying them one at a time", len(items))
        for fact, m in items:
            try:
                await on_links([(fact, m.partition)])
            except Exception:  # logged with its position; the key's next fact carries on from the stored state
                log.exception("linking failed on a fact of %s[%s]@%s (key %s)", m.topic, m.partition, m.offset,
                              fact.get("key"))


def facts_of(ev: Any) -> list[dict[str, Any]]:
    """The link facts of one ``supervision.links`` message (a faust event). Anything that is not link facts is
    logged with its position and skipped: only this stage writes the topic, so it would be a bug, and the
    linker must go on."""
    facts = facts_in(ev.value)
    if facts is None:
        m = ev.message
        log.error("not link facts on %s[%s]@%s; skipped: %.200r", m.topic, m.partition, m.offset, ev.value)
        return []
    return facts


def facts_in(raw: bytes | None) -> list[dict[str, Any]] | None:
    """The link facts of one message's value: a :class:`LinksObserved`, or one :class:`LinkObserved` as
    workers before session 12 sent them; None for anything else."""
    try:
        value = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return None
    if isinstance(value, dict):
        facts = value.get("facts") if "facts" in value else [value]
        if isinstance(facts, list) and all(isinstance(f, dict) and FACT_FIELDS <= f.keys() for f in facts):
            return facts
    return None


async def on_links(items: list[tuple[dict[str, Any], int]]) -> list[Alert]:
    """Link facts (``LinkObserved`` fields) with the partitions of their messages, in order (several may
    share a key: each folds into the state the previous one left). Facts of a partition whose states this
    worker does not hold (taken away by a rebalance in the meantime) are left to its new owner."""
    global _link_watermark
    states: dict[tuple[int, str], LinkState] = {}  # (partition, key) -> state, for the keys this batch moved
    alerts: list[Alert] = []
    for record, partition in items:
        held = link_states.get(partition)
        if held is None:
            continue
        fact = LinkFact.from_dict(record)
        _link_watermark = fact.at if _link_watermark is None else max(_link_watermark, fact.at)
        where = (partition, fact.key)
        state = states[where] if where in states else held.get(fact.key)
        new, raised = link(state, fact, LINK_RULES)
        alerts.extend(raised)
        if new != state:
            states[where] = new
    # Alerts before states: if sending them fails, the facts are folded again (one at a time) into the old
    # states and compute the same alerts with the same alert_keys, instead of finding their tickets already
    # counted. A crash loses the states, and the rebuild folds the unacknowledged facts again just the same.
    await emit(alerts)
    for (partition, key), state in states.items():
        if (held := link_states.get(partition)) is not None:  # not revoked while the alerts went out
            held[key] = state
    return alerts


_links_reader: BrokerReader | None = None


def links_reader() -> BrokerReader:
    """The linker's reader of ``supervision.links`` (its own thread; read-committed under exactly-once, so
    the facts of an aborted lifecycle batch are not folded)."""
    global _links_reader
    if _links_reader is None:
        svc = services()
        committed = svc.settings.processing_guarantee == "exactly_once"
        _links_reader = BrokerReader(svc.bootstrap, app.conf.id, name="links",
                                     isolation_level="read_committed" if committed else "read_uncommitted")
    return _links_reader


@dataclass
class Replay:
    """One partition's states as the facts below an offset leave them, and what reading them back met."""

    states: dict[str, LinkState] = field(default_factory=dict)
    messages: int = 0
    facts: int = 0
    skipped: int = 0  # messages that are not link facts, and facts that failed to link: logged when first met


def replay_links(reader: BrokerReader, partition: int, stop: int, topic: str = SUPERVISION_LINKS) -> Replay:
    """Fold the partition's facts below offset ``stop`` (on the reader's thread). The alerts they raise are
    not wanted: they were emitted when the facts were first linked."""
    out = Replay()

    def fold(offset: int, value: bytes | None) -> None:
        facts = facts_in(value)
        out.skipped += facts is None
        for record in facts or ():
            try:
                fact = LinkFact.from_dict(record)
                out.states[fact.key], _ = link(out.states.get(fact.key), fact, LINK_RULES)
                out.facts += 1
            except Exception:  # as in the linker: a broken fact is skipped, its key's next fact carries on
                out.skipped += 1

    out.messages = reader.scan(topic, partition, stop, fold)
    return out


async def _rebuild_links(firsts: dict[int, int]) -> None:
    """Rebuild the states of each partition this worker owns but does not hold yet, from the facts below the
    first offset the linker was handed for it. A failed read is retried with back-off; after
    ``REBUILD_ATTEMPTS`` the partition links on from empty states (logged as an error), rather than stopping
    every partition's linking for a broker that may stay away."""
    global _link_watermark
    todo = {p: o for p, o in firsts.items() if p not in link_states}
    if todo:
        todo = {p: o for p, o in todo.items() if p in owned_partitions(SUPERVISION_LINKS)}
    for partition, stop in sorted(todo.items()):
        started = time.perf_counter()
        replay = Replay()
        for attempt in range(1, REBUILD_ATTEMPTS + 1):
            try:
                reader = links_reader()
                replay = await reader.call(replay_links, reader, partition, stop)
                log.info("supervision links: partition %d rebuilt from %d fact(s) in %d message(s) below offset "
                         "%d (%d skipped): %d linking key(s), %.2fs", partition, replay.facts, replay.messages,
                         stop, replay.skipped, len(replay.states), time.perf_counter() - started)
                break
            except Exception:
                if attempt == REBUILD_ATTEMPTS:
                    log.exception("supervision links: could not read %s[%d] back to offset %d; linking goes on "
                                  "without the facts before it", SUPERVISION_LINKS, partition, stop)
                    break
                log.warning("supervision links: reading %s[%d] back failed (attempt %d of %d); retrying",
                            SUPERVISION_LINKS, partition, attempt, REBUILD_ATTEMPTS, exc_info=True)
                await asyncio.sleep(REBUILD_BACKOFF * 2 ** (attempt - 1))
        # A rebalance may have taken the partition meanwhile: its facts are then its new owner's. (Taken and
        # given back within one rebuild, with another worker linking facts in between, those facts would be
        # missing here until they leave the window: a repeat might go unnoticed; no ticket is affected.)
        if partition in owned_partitions(SUPERVISION_LINKS):
            link_states[partition] = replay.states
            newest = max((s.seen[-1][0] for s in replay.states.values() if s.seen), default=None)
            if newest is not None:
                _link_watermark = newest if _link_watermark is None else max(_link_watermark, newest)


@app.on_partitions_assigned.connect
async def _links_assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
    """Forget the states of partitions this worker no longer owns: should one come back, another worker may
    have linked facts in the meantime, so it is rebuilt from the topic."""
    owned = {tp.partition for tp in assigned if tp.topic == SUPERVISION_LINKS}
    gone = sorted(set(link_states) - owned)
    for partition in gone:
        del link_states[partition]
    log.info("supervision links: assigned partitions %s; holding %s, dropped %s", sorted(owned),
             sorted(link_states), gone)


@app.on_before_shutdown.connect
async def _close_links_reader(sender: Any, **_: Any) -> None:
    global _links_reader
    if _links_reader is not None:
        _links_reader.close()
        _links_reader = None


def _expire_links(now: datetime) -> int:
    """Forget link states nothing can join any more: their newest ticket is older than the rule's window
    before ``now`` — the linker's watermark, capped by the clock so that one ticket stamped in the future
    cannot expire everything. Runs without awaiting, so the linker cannot write a key in between."""
    if _link_watermark is None:
        return 0
    now = min(now, _link_watermark)
    expired = 0
    for held in link_states.values():
        stale = [key for key, state in held.items() if state.expired(now, LINK_RULES.window(state.rule))]
        for key in stale:
            del held[key]
        expired += len(stale)
    return expired


def _current(raw: dict[str, Any]) -> TicketFacts:
    """Stored facts with the lifecycle fields of the ticket's stored state. The two are written together,
    except after :func:`observe_many` failed on a batch: the lifecycle then stored the new state beside the
    old facts, and their stopped clocks (a sign-for already signed, a handling resolved) must not run on."""
    facts = TicketFacts.from_dict(raw)
    state = ticket_table.state(facts.ticket_id)
    if not state or same_lifecycle(raw, state):
        return facts
    return facts.with_state(TicketState.from_dict(state))


def _lookup(ticket_id: str) -> TicketFacts | None:
    """Facts for the core's tick; reads the store directly (called on the CPU thread, under the lock)."""
    raw = ticket_table.facts(ticket_id)
    return _current(raw) if raw else None


# --- time -------------------------------------------------------------------------------------------------
async def tick_once() -> tuple[int, int, float]:
    """One tick: announce what is due by now, store the moved facts. Returns (alerts, updated, seconds)."""
    svc = services()
    async with ticket_table.lock:
        now, started = svc.clock.now(), time.perf_counter()
        tick = await svc.cpu(supervisor().tick, now, _lookup)
        elapsed = time.perf_counter() - started
        try:
            raised = await emit(tick.alerts)
        except Exception:
            # The tick took these tickets' due checkpoints off the index and scheduled their next ones; put
            # them back on the stored progress, so that the next tick sends these alerts again rather than
            # the next checkpoint (an overdue alert would otherwise wait for the first 催办, a day later).
            for tid in tick.updated:
                if (stored := _lookup(tid)) is not None:
                    supervisor().track(stored)
            raise
        written = []
        for tid, facts in tick.updated.items():
            raw = ticket_table.facts(tid)
            partition = ticket_table.partition(tid)
            if raw is not None and partition is not None:  # still ours (no rebalance took it while we ticked)
                written.append(ticket_table.write(tid, partition, facts={
                    **facts.to_dict(), "_events": raw.get("_events") or []}))
        await changelog_written(written)
        await _maybe_prune(now)
    global _ticked
    # The first tick says where the (simulated) time resumes; after it, a tick is news when it is slow or when due
    # alerts were sent before (a restart, a rebalance). New ones were just logged by emit(): one line is enough.
    news = elapsed > 0.5 or not _ticked or raised < len(tick.alerts)
    if news or tick.alerts:
        _ticked = True
        log.log(logging.INFO if news else logging.DEBUG,
                "supervision tick at %s: %d due alert(s), %d new, %d ticket(s) updated, %.3fs",
                now.isoformat(timespec="minutes"), len(tick.alerts), raised, len(tick.updated), elapsed)
    return raised, len(tick.updated), elapsed


async def _maybe_prune(now: datetime) -> None:
    """Once per simulated day: expire link states, and forget tickets closed longer than the repeat window,
    state and facts (kept that long so that a late event about a recently closed ticket, a rating or a
    reopening, is still judged against them). Keeping the state for good made the table, its changelog and
    every scan of it grow with each ticket ever handled; a ticket's later events are refused as unknown."""
    global _last_prune
    if _last_prune is not None and now - _last_prune < PRUNE_EVERY:
        return
    _last_prune = now
    expired = _expire_links(now)
    if expired:
        log.info("supervision: expired %d linking key(s) with no ticket since %s", expired,
                 (now - LINK_RULES.repeat_window).date())
    cutoff = now - max(CLOSED_HELD, LINK_RULES.repeat_window)
    old = ticket_table.closed_before(cutoff)
    for ticket_id, _ in old:  # their clocks stopped at closing; a stale checkpoint would find no facts anyway
        supervisor().index.cancel(ticket_id)
    await changelog_written([ticket_table.forget(ticket_id, partition) for ticket_id, partition in old])
    if old:
        log.info("supervision: forgot %d ticket(s) closed before %s", len(old), cutoff.date())


@app.task
async def supervise() -> None:
    """The supervision timer (a task rather than ``@app.timer``: the interval is a setting)."""
    svc = services()
    # Build the shared clock off the loop: its first use reads (or writes) the clock state file.
    await asyncio.to_thread(lambda: svc.clock)
    # No tick while the table is being recovered: its facts are not complete yet.
    await every(svc.settings.supervision_tick_seconds, tick_once, name="supervision tick",
                skip=lambda: not _ready or app.rebalancing)


# --- rebalances -----------------------------------------------------------------------------------------
def rebuild(stored: list[dict[str, Any]]) -> Supervisor:
    """A fresh supervisor scheduling every stored ticket (the linkers' state is in their own table)."""
    sup = _new_supervisor()
    sup.rebuild(_current(v) for v in stored)
    return sup


@ticket_table.table.on_recover
async def _recovered() -> None:
    """After each recovery (= each partition assignment): rebuild from the facts this worker now holds."""
    global _sup, _ready
    svc = services()
    async with ticket_table.lock:
        ticket_table.forget_except(owned_partitions(TICKETS_EVENTS))
        stored = list(ticket_table.all_facts())
        started = time.perf_counter()
        _sup = await svc.cpu(rebuild, stored)
        _ready = True
    log.info("supervision rebuilt from %d stored ticket(s): %d with running clocks, %.3fs", len(stored),
             _sup.index.tickets, time.perf_counter() - started)
