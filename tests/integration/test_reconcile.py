"""The reconciler through real parts: offsets the consumer group skipped are found and routed.

The fault it guards against is a committed offset ahead of what was handled (seen once under a rebalance
on the embedded broker, and once after a kill -9, docs/guarantees.md). The test makes that fault on purpose:
it commits the group past five unhandled tickets before any worker runs, so the worker's consumer never
receives them; two of the five are in the ledger already, recorded by a batch that never decided them, and
one of those two was dead-lettered by that batch as an internal error.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.errors import NoError
from kafka.structs import OffsetAndMetadata
from sqlalchemy import select

from config.settings import Settings
from models import ledger as t
from models.tickets import parse_ticket
from streams.app import TICKETS_RECEIVED, app
from streams.db import Ledger, make_engine, upgrade
from streams.routing import decision_key
from streams.runner import ensure_topics
from tests.conftest import catch_up_rounds, run_async, wait_until
from tests.integration.flow import decisions, realistic_tickets

pytestmark = pytest.mark.integration
PARTITION = 0


def _send(bootstrap: str, tickets: list[dict]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for tk in tickets:
        producer.send(TICKETS_RECEIVED, key=tk["id"].encode(), partition=PARTITION,
                      value=json.dumps({k: v for k, v in tk.items() if not k.startswith("_")},
                                       ensure_ascii=False).encode())
    producer.flush()
    producer.close()


def _commit(bootstrap: str, offset: int) -> None:
    """Set the router's consumer group (not yet joined by anyone) to ``offset``, as a faulty commit would."""
    tp = TopicPartition(TICKETS_RECEIVED, PARTITION)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        errors = admin.alter_group_offsets(app.conf.id, {tp: OffsetAndMetadata(offset, "", -1)})
        assert all(e is NoError for e in errors.values()), errors
    finally:
        admin.close()


def _audit(ledger: Ledger) -> t.OffsetAudit | None:
    with ledger.session() as s:
        return s.get(t.OffsetAudit, (TICKETS_RECEIVED, PARTITION))


def test_offsets_committed_but_never_handled_are_found_and_routed_once(own_broker, start_worker, tmp_path):
    bootstrap = own_broker  # a fresh broker: the router's group has no members and no offsets yet
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    ledger = Ledger(make_engine(url))
    prefix = f"R{uuid.uuid4().hex[:6]}"
    tickets = realistic_tickets(10, prefix, seed=7)
    try:
        # Given ten tickets on partition 0, a ledger that has audited that partition from its start ...
        ensure_topics(bootstrap, [TICKETS_RECEIVED], Settings().topic_partitions, 1)
        _send(bootstrap, tickets)
        ledger.advance_audit(TICKETS_RECEIVED, PARTITION, 0)
        # ... where offsets 3 and 4 were recorded by a batch that stopped before deciding them ...
        recorded = [parse_ticket({k: v for k, v in tk.items() if not k.startswith("_")}) for tk in tickets[3:5]]
        ledger.record_tickets([(tk, TICKETS_RECEIVED, PARTITION, 3 + i) for i, tk in enumerate(recorded)])
        assert not ledger.decisions([decision_key(tk.id, 1) for tk in recorded])
        # (the one at 3 dead-lettered as an internal error: a failed publication takes that path, and the
        # rejection must not count as having handled it)
        ledger.record_rejection(dedup_key=f"routing:{TICKETS_RECEIVED}/{PARTITION}/3", key=recorded[0].id,
                                source="routing", reason="internal error in routing; see worker log",
                                payload="{}", topic=TICKETS_RECEIVED, partition=PARTITION, offset=3)
        # ... and a group committed past the first five all the same
        _commit(bootstrap, 5)
        # When a worker starts
        worker = start_worker(url, HOTLINE_KAFKA_BOOTSTRAP=bootstrap, HOTLINE_RECONCILE_SECONDS="1")
        worker.wait_ready()
        # Then the partitions this ledger had never audited are adopted where the group starts reading them
        # (at assignment: faust sends that signal while recovery goes on, so it may come just after "Ready")
        assert wait_until(lambda: "reconcile: auditing tickets.received from offsets [1]@0, [2]@0, [3]@0"
                          in worker.log(), timeout=10), worker.log()[-3000:]
        # and all ten are routed: five as the consumer receives them, five found by the reconciler
        assert wait_until(lambda: len(decisions(ledger, prefix)) == 10, timeout=60), worker.log()[-3000:]
        assert wait_until(lambda: (a := _audit(ledger)) is not None and a.audited_to >= 10 and a.recovered == 5,
                          timeout=30), worker.log()[-3000:]
        # (below the committed 5, or a later one when the consumer committed before the reconciler's first round)
        assert re.search(r"offset\(s\) below the committed \d+ had no routed ticket or rejection of their own \(0-4\)",
                         worker.log())
        # ... each exactly once, recorded at its own offset
        routed = decisions(ledger, prefix)
        assert sorted(d.ticket_id for d in routed) == sorted(tk["id"] for tk in tickets)
        with ledger.session() as s:
            offsets = sorted(s.scalars(select(t.Ticket.source_offset).where(t.Ticket.id.like(f"{prefix}%"))))
        assert offsets == list(range(10))
        # and a later round finds nothing more to do
        recovered = _audit(ledger).recovered  # type: ignore[union-attr]
        time.sleep(2.5)
        assert _audit(ledger).recovered == recovered  # type: ignore[union-attr]
    finally:
        ledger.dispose()


def test_the_catch_up_reads_a_stopped_partition_from_the_real_broker(own_broker, catch_up_world):
    # Given ten tickets on partition 0 and the group committed at 4, as a consumer that stopped there leaves it
    from streams.broker import BrokerReader

    bootstrap = own_broker
    ensure_topics(bootstrap, [TICKETS_RECEIVED], Settings().topic_partitions, 1)
    tickets = realistic_tickets(10, f"C{uuid.uuid4().hex[:6]}", seed=8)
    _send(bootstrap, tickets)
    _commit(bootstrap, 4)
    reader = BrokerReader(bootstrap, app.conf.id)
    try:
        committed = reader.committed(TICKETS_RECEIVED)
        # (the end as the fetch's high watermark: this broker's ListOffsets says 1, the last batch's base + 1)
        assert committed == {PARTITION: 4} and run_async(reader.end_offsets(TICKETS_RECEIVED, committed)) == {PARTITION: 10}
        # When two rounds see it unmoved (one look is not a stall)
        catch_up_rounds(reader, committed, 2, interval=0.05)
    finally:
        reader.close()
    # Then the six waiting tickets are read from the broker, in order, and the consumer is sent back to 4
    assert [(m.offset, json.loads(m.value)["id"]) for m in catch_up_world.routed] == \
        [(o, tickets[o]["id"]) for o in range(4, 10)]
    assert catch_up_world.nudged == [(PARTITION, 4)]
