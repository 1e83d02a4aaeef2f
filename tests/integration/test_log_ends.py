"""The end of a log, which the embedded broker's ListOffsets gets wrong, as the product's readers see it.

Asked for "latest", the embedded broker answers with the last record batch's base offset + 1. faust reads a
table's changelog up to that end, so a recovery stopped at the first message of the last batch and dropped
the rest of it: a ticket whose state was written in that batch was "unknown to the router" after a restart.
An agency's queue reader stopped there too. Both take the end from a fetch's high watermark now
(``streams.broker.log_ends``, ``streams.app``, ``streams.cli.agency``)."""

from __future__ import annotations

import time
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from faust.types import TP
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import select

from models import ledger as t
from streams.app import TICKETS_EVENTS, TICKETS_RECEIVED
from streams.broker import log_ends
from streams.cli.agency import QueueReader
from streams.db import Ledger, make_engine
from tests.conftest import run_async, wait_until
from tests.integration.flow import decisions, event, produce, published, realistic_tickets

pytestmark = pytest.mark.integration


async def write_batches(bootstrap: str, topic: str, sizes: tuple[int, ...] = (10, 5)) -> None:
    """Record batches of these sizes, in this order, on partition 0."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=100)
    await producer.start()
    try:
        n = 0
        for size in sizes:
            for _ in range(size):
                await producer.send(topic, b'{"n": %d}' % n, key=b"k%d" % n, partition=0)
                n += 1
            await producer.flush()
    finally:
        await producer.stop()


def test_log_ends_reads_the_end_that_list_offsets_gets_wrong(kafka_bootstrap):
    # Given a batch of ten messages, then a batch of five, in one partition of a new topic
    topic = f"log-ends-{uuid.uuid4().hex[:8]}"

    async def write_and_ask() -> tuple[dict, dict]:
        await write_batches(kafka_bootstrap, topic)
        # When the end is read by a fetch, from the start, from the middle and from the end
        ends = {start: (await log_ends(kafka_bootstrap, {TP(topic, 0): start}))[TP(topic, 0)]
                for start in (0, 12, 15)}
        return ends, await log_ends(kafka_bootstrap, {(topic, 1): 0})

    ends, empty = run_async(write_and_ask())

    # Then it is 15 from anywhere, and 0 for an empty partition
    assert ends == {0: 15, 12: 15, 15: 15}
    assert empty == {(topic, 1): 0}
    # (ListOffsets, for the record, says 11 on the embedded broker; a real Kafka says 15)
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    assert consumer.end_offsets([TopicPartition(topic, 0)])[TopicPartition(topic, 0)] in {11, 15}
    consumer.close()


def test_a_restarted_worker_knows_every_ticket_routed_in_a_burst(kafka_bootstrap, database_url, start_worker):
    if "postgresql" in database_url:
        pytest.skip("table recovery does not touch the ledger; one backend is enough")
    # Given a worker that routed 60 tickets arriving at once (their states written to the changelog in
    # batches of many messages), and was then stopped
    prefix = f"TR{uuid.uuid4().hex[:6]}"
    tickets = realistic_tickets(60, prefix, seed=31)
    ledger = Ledger(make_engine(database_url))
    first = start_worker(database_url, HOTLINE_CONFIDENCE_THRESHOLD="0.02")
    first.wait_ready()
    produce(kafka_bootstrap, TICKETS_RECEIVED, [(tk["id"], tk) for tk in tickets])

    def states_written() -> int:  # the lifecycle writes a ticket's state, then its accepted 'routed' event
        with ledger.session() as s:
            return len(set(s.scalars(select(t.TicketEvent.ticket_id).where(
                t.TicketEvent.ticket_id.like(f"{prefix}-%"), t.TicketEvent.type == "routed",
                t.TicketEvent.accepted))))

    assert wait_until(lambda: published(ledger, prefix) == 60 and states_written() == 60, timeout=120), \
        f"{published(ledger, prefix)} published, {states_written()} states\n{first.log()[-3000:]}"
    first.stop()

    # When a new worker starts and the agencies sign for their tickets
    second = start_worker(database_url, HOTLINE_CONFIDENCE_THRESHOLD="0.02")
    second.wait_ready()
    auto = {d.ticket_id: d.agency for d in decisions(ledger, prefix) if d.decision == "auto"}
    assert len(auto) >= 40, f"only {len(auto)} of 60 decided auto"
    produce(kafka_bootstrap, TICKETS_EVENTS, [(tid, event(tid, "signed", "agency", agency))
                                               for tid, agency in auto.items()])

    # Then every signature is accepted: the new worker knows every ticket's state
    def signatures() -> list[t.TicketEvent]:
        with ledger.session() as s:
            return list(s.scalars(select(t.TicketEvent).where(
                t.TicketEvent.ticket_id.like(f"{prefix}-%"), t.TicketEvent.type == "signed")))

    assert wait_until(lambda: len(signatures()) == len(auto), timeout=60), second.log()[-3000:]
    refused = [(e.ticket_id, e.reason) for e in signatures() if not e.accepted]
    assert not refused, f"{len(refused)} of {len(auto)} signatures refused, e.g. {refused[:3]}"
    ledger.dispose()


def test_the_queue_reader_reads_to_the_end_of_the_last_batch(kafka_bootstrap):
    # Given a queue whose messages came in a batch of ten, then a batch of five, and an agency that was
    # shown the first twelve before it quit
    topic = f"tickets.routed.LOGENDS{uuid.uuid4().hex[:6]}"
    group = f"agency-{uuid.uuid4().hex[:6]}"
    run_async(write_batches(kafka_bootstrap, topic))

    def read(show_below: int | None = None) -> list[int]:
        reader = QueueReader(kafka_bootstrap, topic, group)
        try:
            assert reader.join(from_beginning=False)
            seen = [m for batch in reader.batches(follow=False, idle=10) for m in batch]
            for m in seen:
                if show_below is None or m.offset < show_below:
                    reader.shown(m)
            reader.commit()
            return [m.offset for m in seen]
        finally:
            reader.close()

    assert read(show_below=12) == list(range(15))

    # When it reads its queue again, without following
    started = time.monotonic()
    again = read()

    # Then it is shown the last three, at once. (ListOffsets says 11, below where the agency stands; the
    # reader did show them before its fix too, when the poll that waits for the assignment prefetched them,
    # which it does here. It stops on a fetch's high watermark now, prefetched or not.)
    assert again == [12, 13, 14]
    assert time.monotonic() - started < 10
