"""Tickets produced with plain kafka-python onto ``tickets.received`` end up in the ledger exactly once;
malformed messages are dead-lettered with a reason and do not stop the worker."""

from __future__ import annotations

import json
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy import func, select

from models import ledger as t
from streams.app import TICKETS_INVALID, TICKETS_RECEIVED
from streams.db import Ledger, make_engine
from tests.conftest import wait_until

pytestmark = pytest.mark.integration


def produce(bootstrap: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for key, value in messages:
        producer.send(TICKETS_RECEIVED, key=key, value=value)
    producer.flush()
    producer.close()


def ticket(tid: str, text: str = "小区门口的烧烤摊每天晚上油烟很大，请有关部门管一管。", **more: str) -> bytes:
    return json.dumps({"id": tid, "text": text, "address": "滨海新区新港街道", "request_type": "投诉", **more},
                      ensure_ascii=False).encode()


@pytest.mark.postgresql_in_slow
def test_tickets_recorded_once_and_bad_input_dead_lettered(kafka_bootstrap, database_url, start_worker):
    # Given a running worker
    worker = start_worker(database_url)
    worker.wait_ready()
    ledger = Ledger(make_engine(database_url))
    run = uuid.uuid4().hex[:8]
    good = [f"T{run}-{i}" for i in range(20)]

    # When tickets arrive, each one twice, mixed with malformed messages
    produce(kafka_bootstrap, [(tid.encode(), ticket(tid)) for tid in good])
    produce(kafka_bootstrap, [
        (b"bad1", b"\xff\xfe not json"),
        (b"bad2", json.dumps({"text": f"no id {run}"}).encode()),
        (f"T{run}-noText".encode(), json.dumps({"id": f"T{run}-noText"}).encode()),
    ])
    produce(kafka_bootstrap, [(tid.encode(), ticket(tid)) for tid in good])
    late = f"T{run}-after-bad"
    produce(kafka_bootstrap, [(late.encode(), ticket(late, complex_case="是"))])  # 复杂件, as a platform says it

    # Then every good ticket is in the ledger exactly once, including the one after the bad input
    def recorded() -> int:
        with ledger.session() as s:
            return s.scalar(select(func.count()).select_from(t.Ticket).where(t.Ticket.id.like(f"T{run}-%")))

    assert wait_until(lambda: recorded() == len(good) + 1, timeout=40), worker.log()[-3000:]
    with ledger.session() as s:
        ids = s.scalars(select(t.Ticket.id).where(t.Ticket.id.like(f"T{run}-%"))).all()
        assert sorted(ids) == sorted([*good, late])
        row = s.get(t.Ticket, good[0])
        assert row.received_at.tzinfo is not None and row.request_type == "投诉" and not row.complex_case
        assert s.get(t.Ticket, late).complex_case
    # a complex case says so on its queue, where the agency learns it has the longer time limits
    assert wait_until(lambda: f"{late}#1" in ledger.decisions([f"{late}#1"]), timeout=20)
    assert ledger.decisions([f"{late}#1"])[f"{late}#1"].message["complex_case"] is True
    assert ledger.intake_facts([late])[late].complex_case

    # And the malformed ones are recorded with their reasons
    assert wait_until(lambda: len(_rejections(ledger, run)) >= 2, timeout=20)
    reasons = _rejections(ledger, run)
    assert any("text: Field required" in r for r in reasons.values())
    assert wait_until(lambda: any("not JSON" in r.reason for r in ledger.rejections(200)), timeout=10)

    # ... and published on tickets.invalid
    consumer = KafkaConsumer(TICKETS_INVALID, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    dead = [json.loads(m.value) for m in consumer]
    consumer.close()
    assert any(d["key"] == f"T{run}-noText" and "text" in d["reason"] and d["schema_version"] == 1
               for d in dead)
    assert worker.proc.poll() is None, "the worker must survive bad input"
    ledger.dispose()


def _rejections(ledger: Ledger, run: str) -> dict[str, str]:
    with ledger.session() as s:
        rows = s.scalars(select(t.RejectedInput)).all()
        return {r.key: r.reason for r in rows if run in r.payload}
