"""Scale-out: workers in one consumer group share the partitions; one joins mid-stream, one leaves.

Every ticket must be routed exactly once in the ledger and sit on exactly one queue, none lost, while
the group rebalances twice under a steady stream of tickets.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from sqlalchemy import select

from models.ledger import OffsetAudit
from streams.app import TICKETS_RECEIVED
from streams.db import Ledger, make_engine
from tests.conftest import wait_until
from tests.integration.flow import decisions, produce, published, read_queues, realistic_tickets

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = 600


def _steady(bootstrap: str, tickets: list[dict], per_second: float, stop: threading.Event,
            resume: threading.Event, pause_at: int) -> None:
    """Send tickets in small batches at about ``per_second`` until done or told to stop; after ``pause_at``
    tickets, wait for ``resume`` (a worker joining on a slow machine can take longer than the whole stream, and
    then would join after it: the join must happen mid-stream)."""
    batch = 10
    for i in range(0, len(tickets), batch):
        if i >= pause_at:
            resume.wait(120)
        if stop.is_set():
            return
        produce(bootstrap, TICKETS_RECEIVED, [(tk["id"], tk) for tk in tickets[i:i + batch]])
        time.sleep(batch / per_second)


def test_a_worker_joins_and_one_leaves_mid_stream_and_every_ticket_is_routed_once(
        own_broker, start_worker, tmp_path):
    kafka_bootstrap = own_broker
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    from streams.db import upgrade

    upgrade(url)
    ledger = Ledger(make_engine(url))
    prefix = f"S{uuid.uuid4().hex[:6]}"
    tickets = realistic_tickets(N, prefix, seed=99)
    # Given two workers in one group (the topics have 4 partitions: two each)
    env = {"HOTLINE_KAFKA_BOOTSTRAP": kafka_bootstrap, "HOTLINE_RECONCILE_SECONDS": "2"}
    first = start_worker(url, **env)
    second = start_worker(url, **env)
    first.wait_ready()
    second.wait_ready()
    # When tickets stream in at ~25/s for ~24 s (halfway, the sender waits until the third worker is up) ...
    stop, resume = threading.Event(), threading.Event()
    sender = threading.Thread(target=_steady, args=(kafka_bootstrap, tickets, 25.0, stop, resume, N // 2),
                              daemon=True)
    sender.start()
    try:
        assert wait_until(lambda: published(ledger, prefix) >= 60, timeout=60), first.log()[-3000:]
        # ... a third worker joins ...
        third = start_worker(url, **env)
        third.wait_ready()
        resume.set()
        joined_at = published(ledger, prefix)
        assert wait_until(lambda: published(ledger, prefix) >= joined_at + 50, timeout=60)
        # ... and the first one leaves (a clean stop: rolling deploy)
        first.stop()
        sender.join(timeout=120)
    finally:
        stop.set()
        resume.set()
    # Then every ticket is routed, exactly once, and lands on exactly one queue
    assert wait_until(lambda: published(ledger, prefix) == N, timeout=150), \
        f"{published(ledger, prefix)}/{N}\n{second.log()[-2000:]}\n{third.log()[-2000:]}"
    ds = decisions(ledger, prefix)
    assert len(ds) == N and len({d.ticket_id for d in ds}) == N
    queues = read_queues(kafka_bootstrap, prefix)
    assert set(queues) == {tk["id"] for tk in tickets}
    for tid, seen in queues.items():
        assert len({topic for topic, _ in seen}) == 1, tid
        # at-least-once may repeat a publication after a rebalance; if so it is the same message
        assert len({json.dumps(m, sort_keys=True) for _, m in seen}) == 1, tid
    # and the work was really shared: the surviving workers both routed some of it
    for w in (second, third):
        assert "published" in w.log(), w.log()[-2000:]
        assert w.proc.poll() is None, w.log()[-4000:]
    # the reconciler's share: tickets the consumers never received and it routed (reported, not required)
    with ledger.session() as s:
        recovered = sum(a.recovered for a in s.scalars(select(OffsetAudit)))
    print(f"scale-out: {N} routed, {recovered} of them recovered by the reconciler")
    ledger.dispose()
