"""Faults, each on real parts: the broker not there at start, a corrupt model, the ledger database
unavailable for a while (PostgreSQL cut off, SQLite locked), and what the worker logs meanwhile.

The kill -9 case lives with the routing flow (test_routing_flow.py); scale-out in test_scale_out.py.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from classifier import model as mm
from config.settings import Settings
from streams.app import TICKETS_RECEIVED
from streams.broker import EmbeddedBroker, free_port
from streams.db import Ledger, make_engine, upgrade
from tests.conftest import PG_DB, PG_HOST, PG_PORT, postgres_answers, wait_until
from tests.integration.flow import decisions, produce, published, realistic_tickets
from tests.integration.proxy import CuttableProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _no_traceback(log: str) -> None:
    assert "Traceback" not in log, log[-4000:]


def test_broker_unreachable_at_start_retries_then_runs_when_it_comes(start_worker, tmp_path):
    # Given a worker pointed at a Kafka address where nothing answers yet
    host = Settings().embedded_host
    port = free_port(host)
    url = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    upgrade(url)
    worker = start_worker(url, HOTLINE_KAFKA_BOOTSTRAP=f"{host}:{port}", HOTLINE_BROKER_CONNECT_TIMEOUT="90")
    # Then it says so and keeps trying, with growing pauses
    assert wait_until(lambda: "not answering (attempt 3" in worker.log(), timeout=30), worker.log()[-3000:]
    assert worker.proc.poll() is None
    # When the broker comes up on that address, the worker goes on by itself
    with EmbeddedBroker(host, port):
        worker.wait_ready(timeout=90)
        log = worker.log()
        assert f"Kafka broker at {host}:{port} answering after" in log
        _no_traceback(log)
        worker.stop()


def test_broker_that_never_answers_ends_with_a_message_not_a_traceback(start_worker, tmp_path):
    host = Settings().embedded_host
    url = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    upgrade(url)
    worker = start_worker(url, HOTLINE_KAFKA_BOOTSTRAP=f"{host}:{free_port(host)}",
                          HOTLINE_BROKER_CONNECT_TIMEOUT="3")
    assert worker.proc.wait(timeout=60) == 1
    log = worker.log()
    assert "did not answer within 3s" in log and "HOTLINE_KAFKA_BOOTSTRAP" in log
    _no_traceback(log)


def test_corrupt_model_file_refuses_to_start_with_a_clear_message(start_worker, trained_model_dir, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(trained_model_dir, models, symlinks=True)
    model_file = models / mm.CURRENT / mm.MODEL_FILE
    data = bytearray(model_file.read_bytes())
    data[len(data) // 3] ^= 0xFF
    model_file.write_bytes(bytes(data))
    url = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    upgrade(url)
    worker = start_worker(url, HOTLINE_MODEL_DIR=str(models))
    assert worker.proc.wait(timeout=60) == 1
    log = worker.log()
    assert "cannot start" in log and "does not match its metadata" in log and "hotline train" in log
    _no_traceback(log)


@pytest.fixture
def pg_url() -> str:
    """A fresh, migrated PostgreSQL schema (skipped when PostgreSQL does not answer)."""
    if not postgres_answers():
        pytest.skip(f"PostgreSQL not answering at {PG_HOST}:{PG_PORT}")
    import psycopg

    schema = f"hotline_f_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user="postgres", autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
    url = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{PG_DB}?options=-csearch_path%3D{schema}"
    upgrade(url)
    yield url
    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user="postgres", autocommit=True) as c:
        c.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _one_decision_each(ledger: Ledger, prefix: str, n: int) -> None:
    ds = decisions(ledger, prefix)
    assert len(ds) == n and len({d.ticket_id for d in ds}) == n
    assert all(d.published_at is not None for d in ds)


def test_postgresql_cut_off_for_a_while_retries_with_backoff_and_loses_nothing(
        kafka_bootstrap, start_worker, pg_url):
    # Given a worker whose only way to PostgreSQL is a proxy we can cut
    proxy = CuttableProxy(PG_HOST, (PG_HOST, PG_PORT)).start()
    worker_url = pg_url.replace(f"{PG_HOST}:{PG_PORT}", proxy.address)
    ledger = Ledger(make_engine(pg_url))  # the test reads PostgreSQL directly
    prefix = f"P{uuid.uuid4().hex[:6]}"
    tickets = realistic_tickets(120, prefix, seed=31)
    secret = f"s3cret-{uuid.uuid4().hex[:8]}"
    worker = start_worker(worker_url, HOTLINE_DATABASE_PASSWORD=secret)
    try:
        worker.wait_ready()
        produce(kafka_bootstrap, TICKETS_RECEIVED, [(tk["id"], tk) for tk in tickets[:60]])
        assert wait_until(lambda: published(ledger, prefix) >= 10, timeout=60), worker.log()[-3000:]
        # When the database goes away mid-stream and tickets keep coming
        proxy.cut()
        produce(kafka_bootstrap, TICKETS_RECEIVED, [(tk["id"], tk) for tk in tickets[60:]])
        assert wait_until(lambda: worker.log().count("ledger unavailable (attempt") >= 3, timeout=40), \
            worker.log()[-3000:]
        stalled = published(ledger, prefix)
        assert stalled < 120, "the outage came too late to test anything"
        time.sleep(3)
        assert worker.proc.poll() is None  # it waits; it does not die
        # Then, once the database is back, every ticket is routed exactly once
        proxy.start()
        assert wait_until(lambda: published(ledger, prefix) == 120, timeout=120), \
            f"{published(ledger, prefix)}/120\n{worker.log()[-3000:]}"
        _one_decision_each(ledger, prefix, 120)
        log = worker.log()
        delays = [float(line.split("retry in ")[1].split("s)")[0])
                  for line in log.splitlines() if "ledger unavailable (attempt" in line]
        assert max(delays) > 2 * min(delays), f"no back-off: {delays}"  # it backs off, not hammers
        assert secret not in log  # the password never reaches the log
        for tk in tickets:
            assert tk["caller_phone"] not in log  # nor a caller's number
        _no_traceback(log)
    finally:
        proxy.cut()
        ledger.dispose()


def test_sqlite_locked_for_a_while_loses_nothing(kafka_bootstrap, start_worker, tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    ledger = Ledger(make_engine(url))
    prefix = f"L{uuid.uuid4().hex[:6]}"
    tickets = realistic_tickets(80, prefix, seed=32)
    worker = start_worker(url)
    worker.wait_ready()
    produce(kafka_bootstrap, TICKETS_RECEIVED, [(tk["id"], tk) for tk in tickets[:40]])
    assert wait_until(lambda: published(ledger, prefix) >= 5, timeout=60), worker.log()[-3000:]
    # When another process holds the write lock (a backup, a stuck admin session) for a while
    locker = sqlite3.connect(Path(tmp_path / "ledger.sqlite3"), timeout=30, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    produce(kafka_bootstrap, TICKETS_RECEIVED, [(tk["id"], tk) for tk in tickets[40:]])
    time.sleep(6)
    stalled = published(ledger, prefix)  # WAL: we can still read while it is locked
    assert stalled < 80 and worker.proc.poll() is None
    locker.rollback()
    locker.close()
    # Then the worker carries on where it stood and nothing is lost
    assert wait_until(lambda: published(ledger, prefix) == 80, timeout=120), \
        f"{published(ledger, prefix)}/80\n{worker.log()[-3000:]}"
    _one_decision_each(ledger, prefix, 80)
    _no_traceback(worker.log())
    ledger.dispose()


def test_exactly_once_on_a_broker_without_transactions_refuses_to_start_clearly(start_worker, tmp_path):
    # The embedded Tansu broker does not grant transactional producer ids: say so, before running.
    url = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    upgrade(url)
    worker = start_worker(url, HOTLINE_PROCESSING_GUARANTEE="exactly_once")
    assert worker.proc.wait(timeout=90) == 1
    log = worker.log()
    said = " ".join(log.split())  # the console wraps long lines
    assert "exactly_once needs Kafka transactions" in said and "at_least_once" in said
    _no_traceback(log)
