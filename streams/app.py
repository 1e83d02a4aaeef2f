"""The one faust app and every topic of the contract, declared once.

Topic names are a contract with the hotline platform and the agencies (``../shared/DESIGN.md``).
The app is configured from our :class:`~config.settings.Settings` by :func:`configure`, which also
imports the stage modules so their agents register; faust's own environment variables
(``BROKER_URL`` ...) are ignored on purpose so that ``HOTLINE_*`` is the only source of truth.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import warnings
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from faust.exceptions import AlreadyConfiguredWarning

from config.settings import Settings
from models.events import InputRejected
from models.supervision import LinkRules
from streams.db import SchemaMoved

log = logging.getLogger(__name__)

TICKETS_RECEIVED = "tickets.received"
TICKETS_INVALID = "tickets.invalid"
TICKETS_MANUAL = "tickets.manual"
TICKETS_EVENTS = "tickets.events"
SUPERVISION_ALERTS = "supervision.alerts"
SUPERVISION_LINKS = "supervision.links"  # internal, not part of the contract with other parties
ROUTED_PREFIX = "tickets.routed."

STAGES = ("streams.routing", "streams.lifecycle", "streams.supervision", "streams.reconcile", "streams.web")


def routed_topic_name(agency_code: str) -> str:
    return f"{ROUTED_PREFIX}{agency_code}"


# The app id is the consumer group every router worker joins: part of the deployment contract.
app = faust.App("hotline-router", autodiscover=False)

# Inputs arrive as raw bytes: a malformed message must reach our validation (and the dead-letter
# topic) instead of dying in faust's deserializer, where it would be logged and skipped.
received_topic = app.topic(TICKETS_RECEIVED, key_type=bytes, value_type=bytes,
                           key_serializer="raw", value_serializer="raw")
invalid_topic = app.topic(TICKETS_INVALID, key_type=str, value_type=InputRejected, key_serializer="raw")
# Queues carry RoutedTicket JSON; we publish the stored bytes ourselves (identical on republication).
manual_topic = app.topic(TICKETS_MANUAL, key_type=str, value_type=bytes, key_serializer="raw",
                         value_serializer="raw")
# Agencies and dispatchers write lifecycle events with plain clients: read raw, validate ourselves.
events_topic = app.topic(TICKETS_EVENTS, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw")
alerts_topic = app.topic(SUPERVISION_ALERTS, key_type=str, key_serializer="raw", value_serializer="json")
# Supervision repartitions routed tickets by linking key (caller hash, place + matter, place): the tickets of
# one caller arrive on any partition of tickets.events, their link facts all on the partition of that key.
# internal=True: faust creates it with the app's partition count, like a table changelog.
# Values are LinksObserved (several facts of one partition) or, from workers before session 12, one
# LinkObserved: read raw, so the linker tells them apart and a stray message cannot crash it in faust's decoder.
# The topic is also the linker's state: each worker rebuilds the states of the partitions it is assigned by
# reading them back (streams.supervision), so it keeps every fact a little longer than the longest window.
LINKS_RETENTION = max(LinkRules().repeat_window, LinkRules().joint_window) + timedelta(days=2)
links_topic = app.topic(SUPERVISION_LINKS, key_type=str, value_type=bytes, key_serializer="raw",
                        value_serializer="raw", internal=True, retention=LINKS_RETENTION)
_routed_topics: dict[str, faust.TopicT] = {}


def routed_topic(agency_code: str) -> faust.TopicT:
    """The queue of one agency (declared on first use; created on the broker at start-up)."""
    topic = _routed_topics.get(agency_code)
    if topic is None:
        topic = _routed_topics[agency_code] = app.topic(
            routed_topic_name(agency_code), key_type=str, value_type=bytes, key_serializer="raw",
            value_serializer="raw")
    return topic


@functools.lru_cache(maxsize=65536)  # murmur2 is pure Python, and callers and places recur
def _murmur2(key: str) -> int:
    return murmur2(key.encode()) & 0x7FFFFFFF


def link_partition(key: str, partitions: int | None = None) -> int:
    """The partition of ``supervision.links`` (and of the linker's state) that holds a linking key: Kafka's
    default partitioner, murmur2 of the key, which placed every key while facts went one per message keyed
    by it, so all of a key's facts, older ones included, are on the one partition its state is rebuilt from."""
    return _murmur2(key) % (partitions or app.conf.topic_partitions)


def owned_partitions(topic: str) -> set[int]:
    """The partitions of ``topic`` assigned to this worker right now."""
    return {tp.partition for tp in app.consumer.assignment() if tp.topic == topic}


async def changelog_written(futures: Iterable[asyncio.Future[Any] | None]) -> None:
    """Wait until table changelog writes (``Table.send_changelog``'s futures) are acknowledged by the broker.

    Called before the messages that caused the writes are acknowledged. faust writes changelogs through its
    producer buffer and flushes that buffer before it commits offsets, but the flush gives up after 100 ms
    without progress (``ProducerBuffer.flush_atmost``) and misses a message its sender task has taken but
    not yet handed to the client. A worker killed after such a commit lost the writes while their source
    offsets were committed: the rebalance test saw a caller's two earlier calls vanish from the linking
    table (committed offset past them, changelog without them; full suite, 2026-12-02).
    """
    await delivered(futures)


async def delivered(futures: Iterable[asyncio.Future[Any] | None]) -> None:
    """Wait for the delivery reports of messages sent (faust's send futures, or the changelog's); raise the first
    failure, as ``asyncio.gather`` did.

    A stop cancels the agent or round that waits, and ``gather`` cancelled the futures it waited for with it. Those
    are faust's and the Kafka client's own futures: the messages go out all the same, but their report then lands on
    a cancelled future and faust's callback raises (``Topic._on_published``: InvalidStateError, or CancelledError,
    which it does not catch), a traceback in the log of a worker that stopped cleanly. That is what happened when a
    worker stopped for a newer ledger schema with a batch in the middle of a send (the rolling-upgrade test, 2 of
    30 runs). ``asyncio.wait`` leaves the futures alone when the waiter is cancelled."""
    pending = [f for f in futures if f is not None]
    if not pending:
        return
    await asyncio.wait(pending)
    for f in pending:
        f.result()


# --- timers -------------------------------------------------------------------------------------------------
ROUND_GRACE_SECONDS = 10.0  # how long a stopping worker waits for a timer round that is still running
_stopping = False
_rounds: set[asyncio.Task[Any]] = set()


async def every(seconds: float, round_: Callable[[], Awaitable[Any]], *, name: str,
                skip: Callable[[], bool] = lambda: False) -> None:
    """Run ``round_`` every ``seconds`` until the worker stops; a failed round is logged and the next one runs.

    faust stops its producer (one of the app's children) before it cancels the app's tasks, so a round that
    was still sending when the worker stopped left messages in a producer that no longer ran ("Cannot
    flush: Producer not Running", full suite, 2026-12-03). Each round runs as its own task, which
    :func:`_finish_rounds` lets complete before faust flushes the producer; no round starts after that.
    """
    while not _stopping:
        await asyncio.sleep(seconds)
        if _stopping or skip():
            continue
        task = asyncio.ensure_future(round_())
        _rounds.add(task)
        try:
            await asyncio.shield(task)  # a cancelled timer must not cut a round off in the middle of a send
        except asyncio.CancelledError:
            raise
        except SchemaMoved:
            pass  # said by Services.schema_moved; the worker is stopping
        except Exception:
            log.exception("%s failed", name)
        finally:
            _rounds.discard(task)


@app.on_before_shutdown.connect
async def _finish_rounds(sender: Any, **_: Any) -> None:
    """Sent by faust after its consumer stopped and before it flushes and stops the producer."""
    global _stopping
    _stopping = True
    if not _rounds:
        return
    _, late = await asyncio.wait(set(_rounds), timeout=ROUND_GRACE_SECONDS)
    if late:
        log.warning("stopping with %d timer round(s) still running after %.0fs", len(late), ROUND_GRACE_SECONDS)


def contract_topics(agency_codes: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Every topic of the contract: the fixed ones plus one routed queue per agency."""
    fixed = [TICKETS_RECEIVED, TICKETS_INVALID, TICKETS_MANUAL, TICKETS_EVENTS, SUPERVISION_ALERTS]
    return fixed + [routed_topic_name(code) for code in agency_codes]


def faust_options(settings: Settings, bootstrap: str) -> dict[str, Any]:
    brokers = ";".join(f"kafka://{hp.strip()}" for hp in bootstrap.split(",") if hp.strip())
    return {
        "env": {},  # faust must not read BROKER_URL, WEB_PORT ... from the environment
        "broker": brokers,
        "store": "memory://",
        # The check compares offsets a persistent store kept on disk with the changelog's end, to catch a
        # RocksDB file that outlived its topic. Our store is in memory, so it can only compare this process's
        # own bookkeeping; with several workers rebalancing it crashed them on an off-by-one (persisted 201 >
        # highwater 200, faust-streaming issue #158) while nothing was inconsistent.
        "recovery_consistency_check": False,
        # No standby replicas. The memory store drops every key of a partition that is not active when a
        # recovery completes, standby copies included, while faust keeps the standby's read offset; a
        # partition that later became active here was then read on from that offset, without the keys
        # dropped before it. The rebalance test lost a caller's two earlier calls that way (a full-suite
        # run, 2026-12-02). Without standbys, a partition taken over is read from the changelog's start.
        "table_standby_replicas": 0,
        "datadir": str(settings.data_dir / "faust"),
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": settings.topic_replicas,
        "processing_guarantee": settings.processing_guarantee,
        "broker_rebalance_timeout": settings.broker_rebalance_timeout,
        "broker_session_timeout": settings.broker_session_timeout,
        "broker_heartbeat_interval": settings.broker_heartbeat_interval,
        "producer_linger": settings.producer_linger_ms / 1000,
        "consumer_auto_offset_reset": "earliest",
        "web_enabled": True,
        "web_port": settings.worker_web_port,
        "web_bind": settings.worker_web_host,
        "web_host": settings.worker_web_host,
        "timezone": "Asia/Shanghai",
    }


def _install_consumer_thread(max_wait_ms: int) -> None:
    """Two corrections to faust's consumer (its thread class is replaced in the driver module; the consumer
    is created but not started here, so both take effect):

    * faust hard-codes fetch_max_wait_ms=1500. The embedded broker answers a fetch only when that wait
      expires, which cost ~650 ms per hop at low load (benchmarks/e2e_latency.py); a shorter wait bounds it.
    * A table's recovery reads its changelog up to the end that ``highwaters`` reports, from ListOffsets.
      The embedded broker answers that with the last record batch's base offset + 1, so a new or restarted
      worker stopped reading at the first message of the last batch and lost the rest of it: 51 keys
      written in a burst, 4 recovered (one per partition). The end is taken from a fetch's high
      watermark instead (:func:`streams.broker.log_ends`); on Kafka the two agree. With transactions faust
      reads the last stable offset, which is left alone.
    """
    from faust.transport.drivers import aiokafka as driver

    from streams.broker import log_ends

    base = driver.AIOKafkaConsumerThread
    if getattr(base, "fetch_max_wait_ms", None) is not None:
        base.fetch_max_wait_ms = max_wait_ms  # already installed: just update
        return

    class HotlineConsumerThread(base):  # type: ignore[misc, valid-type]
        fetch_max_wait_ms = max_wait_ms

        def _create_worker_consumer(self, transport):  # type: ignore[no-untyped-def]
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = type(self).fetch_max_wait_ms
            return consumer

        async def _highwaters(self, partitions):  # type: ignore[no-untyped-def]
            listed = await super()._highwaters(partitions)
            if self.consumer.in_transaction:
                return listed
            # From the last listed offset, which exists whenever the log is not empty: a fetch from there
            # returns the last batch and the log's true end.
            positions = {tp: end - 1 for tp, end in listed.items() if end}
            try:
                fetched = await log_ends(driver.server_list(self.transport.url, self.transport.default_port),
                                         positions)
            except Exception:
                log.exception(
                    "could not read the end of %d changelog partition(s) from a fetch; using ListOffsets",
                    len(positions))
                return listed
            return {tp: max(end, fetched.get(tp, end)) for tp, end in listed.items()}

    driver.AIOKafkaConsumerThread = HotlineConsumerThread


class ReadOffsets(dict):  # type: ignore[type-arg]
    """faust's per-partition read offsets, which refuse to advance while the consumer's flow is stopped.

    faust's delivery loop hands each fetched message to the agents unless its offset is below the partition's
    read offset (then it drops it silently), and sets the read offset to the message's offset afterwards. When
    the flow stops (a rebalance, a start-up seek), it abandons the hand-over but still sets the read offset.
    A batch fetched before the seek and iterated after it so moved the read offset past messages nobody
    handled, and the consumer then dropped them when it fetched them again from the committed offset: a
    restarted worker logged 514 "DROPPED MESSAGE ROFF" in the 0.4 s between faust's seek and "Worker ready",
    and three partitions stood still at their committed offsets (session 10; docs/guarantees.md). Here an
    advance while the flow is stopped is ignored: such a message may be delivered again later, which the
    ledger's idempotency absorbs, but is never skipped. Seeks (moving back, or faust's ``update`` after
    seeking to the committed offsets) still apply.
    """

    def __init__(self, flow_stopped: Callable[[], bool]) -> None:
        super().__init__()
        self._flow_stopped = flow_stopped

    def __missing__(self, key: Any) -> None:
        return None  # as faust's defaultdict(lambda: None): nothing read yet

    def __setitem__(self, key: Any, offset: int | None) -> None:
        if offset is not None and self._flow_stopped():
            current = self.get(key)
            if current is None or offset > current:
                return
        super().__setitem__(key, offset)


def _install_consumer_class() -> None:
    """Give faust's consumer :class:`ReadOffsets` (its transport creates the consumer from this class)."""
    from faust.transport.drivers import aiokafka as driver

    base = driver.Transport.Consumer
    if getattr(base, "guards_read_offsets", False):
        return

    class HotlineConsumer(base):  # type: ignore[misc, valid-type]
        guards_read_offsets = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._read_offset = ReadOffsets(self.suspend_flow.is_set)

        async def perform_seek(self) -> None:
            """Seek the stream partitions to their committed offsets with the flow stopped (as at a rebalance; at the
            end of a recovery faust calls this with the flow running, and resumes the flow right after).

            There faust resumes the stream partitions, seeks them, then resumes its flow control, which empties the
            agents' queues (``Recovery.on_recovery_completed``, ``_resume_streams``; faust-streaming issue #596).
            With the flow running, the delivery loop went on handing messages over meanwhile: one fetched from the
            new position and still in an agent's queue when it was emptied was lost, the read offset and the fetch
            position already past it (and with no offset committed before, faust commits past the hole). The
            rolling-upgrade test's new worker lost one held announcement so (1 of 24 runs: ``tickets.events[3]@0``,
            handed 1 ms after the seek and dropped the same ms; ~100 in 2 of 3 runs with the seek slowed by 1.5 s).
            Stopped, the loop hands nothing over until faust has emptied the queues and resumed the flow; what it
            handed before is fetched again from the committed offset (at least once: every stage is idempotent)."""
            self.stop_flow()
            await super().perform_seek()

        async def seek_to_committed(self) -> Any:
            committed = await super().seek_to_committed()
            # aiokafka seeks only the partitions with a committed offset above 0 (``if offset and offset > 0``)
            # and leaves the others where its fetcher is. That position can already be past messages no agent
            # was handed (fetched while the tables recovered, when faust's flow is stopped), and nothing reads
            # them again. The rolling-upgrade test lost that way the 'routed' announcements its stopped worker
            # had held in its first lifecycle batch (so no offset was ever committed on tickets.events): the new
            # worker's first batch began at offsets 3/3/3/4, the log's end, and offsets 0-2 were never handled
            # (5 of 18 runs). Such a partition is read from its start, as ``auto_offset_reset=earliest`` means
            # (at least once: every write is idempotent). Changelogs are left alone: recovery seeks them itself.
            unread = [tp for tp, offset in committed.items()
                      if not offset and tp.topic in self.app.topics.acking_topics]
            if unread:
                await self._thread.seek_to_beginning(*unread)
            return committed

    driver.Transport.Consumer = HotlineConsumer


def configure(settings: Settings, bootstrap: str) -> faust.App:
    """Apply settings to the app and register every stage's agents (idempotent)."""
    # The app is declared at import with defaults so the stages can declare their topics and tables on it;
    # the deployment's settings replace them here, before the worker starts. faust warns about any late
    # configuration, which would print a page of advice in every worker's log at every start.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlreadyConfiguredWarning)
        app.config_from_object(faust_options(settings, bootstrap), force=True)
    _install_consumer_thread(settings.broker_fetch_max_wait_ms)
    _install_consumer_class()
    for module in STAGES:
        importlib.import_module(module)
    return app
