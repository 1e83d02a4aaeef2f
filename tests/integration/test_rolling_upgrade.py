"""Rolling upgrades: a worker whose code is older than the ledger's schema stops without writing, and leaves the
batch it was handling unacknowledged for the next worker (docs/guarantees.md, "Upgrading the ledger's schema")."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka import KafkaAdminClient
from sqlalchemy import func, select

from models import ledger as t
from models.tickets import TicketIn
from streams.app import TICKETS_RECEIVED, app
from streams.db import Ledger, SchemaMoved, code_revision, hold_schema, make_engine, open_migrated, upgrade
from streams.wiring import Services
from tests.conftest import wait_until
from tests.integration.flow import decisions, produce, published, realistic_tickets, unrouted_report

pytestmark = pytest.mark.integration

NEWER = "9999_newer"  # a revision no version of this code has: what a newer version's `hotline db upgrade` leaves


def _ticket(tid: str) -> TicketIn:
    return TicketIn(id=tid, text="小区路灯坏了一个多月了，晚上出行很不方便，请尽快修复", received_at=datetime.now(UTC))


def _set_revision(ledger: Ledger, revision: str) -> dict[str, Any]:
    """Move the ledger to ``revision`` as a migration would (holding the schema first: in-flight writes finish, new
    ones wait), and return what the ledger held at that moment."""
    with ledger.engine.connect() as conn, conn.begin():
        hold_schema(conn)
        conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{revision}'")
        counts = {model.__tablename__: conn.scalar(select(func.count()).select_from(model))
                  for model in (t.Ticket, t.RoutingDecision, t.TicketEvent, t.RejectedInput, t.Alert, t.FigureStage)}
        counts["published"] = conn.scalar(select(func.count()).select_from(t.RoutingDecision)
                                          .where(t.RoutingDecision.published_at.is_not(None)))
        counts["audits"] = sorted(conn.execute(select(t.OffsetAudit.partition, t.OffsetAudit.audited_to,
                                                      t.OffsetAudit.recovered)).all())
        return counts


def test_a_pinned_ledger_writes_nothing_once_the_schema_moved(database_url):
    # Given a worker's ledger (pinned to the code's revision) and a command's (not pinned)
    settings_free = Ledger(make_engine(database_url))
    pinned = Ledger(make_engine(database_url), revision=code_revision())
    assert pinned.record_tickets([(_ticket("RU-1"), "tickets.received", 0, 1)]) == {"RU-1"}
    # When a newer version migrates the ledger
    _set_revision(pinned, NEWER)
    # Then every write of the stages refuses, in its own transaction, and leaves nothing behind
    writes = [
        lambda: pinned.record_tickets([(_ticket("RU-2"), "tickets.received", 0, 2)]),
        lambda: pinned.record_rejection(dedup_key="x", key="k", source="topic", reason="r", payload="p"),
        lambda: pinned.record_decisions([{"decision_key": "RU-1#1", "ticket_id": "RU-1", "attempt": 1,
                                          "decision": "manual", "topic": "tickets.manual", "message": {}}]),
        lambda: pinned.mark_published(["RU-1#1"]),
        lambda: pinned.record_event(event_id="e1", ticket_id="RU-1", type="signed", actor="a", agency=None,
                                    occurred_at=datetime.now(UTC), accepted=True, reason=None, payload={}),
        lambda: pinned.record_alerts([{"alert_key": "a1"}]),
        lambda: pinned.advance_audit("tickets.received", 0, 10),
    ]
    for write in writes:
        with pytest.raises(SchemaMoved, match=f"revision {NEWER}, this code writes revision {code_revision()}"):
            write()
    assert settings_free.count(t.Ticket) == 1 and settings_free.count(t.RejectedInput) == 0
    assert settings_free.count(t.OffsetAudit) == 0 and settings_free.count(t.TicketEvent) == 0
    # a process that does not pin (a command that checked at its start) is not stopped mid-way
    assert settings_free.record_tickets([(_ticket("RU-3"), "tickets.received", 0, 3)]) == {"RU-3"}
    # And back at the code's revision, the pinned ledger writes again
    _set_revision(pinned, code_revision())
    assert pinned.record_tickets([(_ticket("RU-2"), "tickets.received", 0, 2)]) == {"RU-2"}
    pinned.dispose()
    settings_free.dispose()


def test_processes_refuse_a_ledger_a_newer_version_migrated(database_url, tmp_path, monkeypatch):
    from config.settings import Settings
    from streams.db import SchemaAhead

    ledger = Ledger(make_engine(database_url))
    _set_revision(ledger, NEWER)
    ledger.dispose()
    settings = Settings(database_url=database_url, data_dir=tmp_path / "var", kafka_bootstrap="")
    with pytest.raises(SchemaAhead) as refused:
        open_migrated(settings)
    said = str(refused.value)
    assert NEWER in said and code_revision() in said and "newer" in said and "hotline db upgrade" not in said


@pytest.mark.parametrize("ledger_at", ["0010", NEWER])
def test_a_worker_refuses_to_start_on_another_revision_in_one_line(ledger_at, tmp_path, start_worker):
    from streams.db import downgrade, upgrade

    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    if ledger_at == NEWER:
        _set_revision(Ledger(make_engine(url)), NEWER)
    else:
        downgrade(url, ledger_at)
    worker = start_worker(url)
    assert worker.proc.wait(timeout=60) == 1
    log = worker.log()
    said = [line for line in log.splitlines() if "cannot start" in line]
    assert len(said) == 1 and "Traceback" not in log, log[-2000:]
    assert f"revision {ledger_at}" in said[0] and code_revision() in said[0]
    if ledger_at == NEWER:  # a newer version's ledger: not this code's to upgrade
        assert "newer than this code's" in said[0] and "hotline db upgrade" not in said[0]
    else:  # as before: the operator migrates it first
        assert "run `hotline db upgrade` first" in said[0]


def test_a_migration_waits_for_a_write_in_flight_and_the_next_write_sees_it(database_url):
    """The check and a migration are serialised: a write that read the old revision finishes before the
    migration's change lands, and a write after it refuses (no window between the check and the write)."""
    pinned = Ledger(make_engine(database_url), revision=code_revision())
    other = Ledger(make_engine(database_url))
    in_write, release, migrated = threading.Event(), threading.Event(), threading.Event()

    def slow_write() -> None:
        with pinned.writing() as s:  # checked: at the code's revision
            s.add(t.RejectedInput(dedup_key="slow", key="k", source="topic", reason="r", payload="p",
                                  rejected_at=t.utcnow()))
            s.flush()
            in_write.set()
            release.wait(10)

    writer = threading.Thread(target=slow_write)
    writer.start()
    assert in_write.wait(10)
    migration = threading.Thread(target=lambda: (_set_revision(other, NEWER), migrated.set()))
    migration.start()
    time.sleep(0.5)
    assert not migrated.is_set()  # the migration waits for the write that checked the old revision
    release.set()
    writer.join(10)
    migration.join(20)
    assert migrated.is_set() and other.count(t.RejectedInput) == 1  # the write landed, before the change
    with pytest.raises(SchemaMoved):
        pinned.record_rejection(dedup_key="late", key="k", source="topic", reason="r", payload="p")
    assert other.count(t.RejectedInput) == 1
    pinned.dispose()
    other.dispose()


def _committed(bootstrap: str) -> dict[tuple[str, int], int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets({app.conf.id: None})[app.conf.id]
    finally:
        admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}


N = 400


# slow, on both backends. It failed intermittently (5 of 18 runs): the new worker never read the 'routed' announcements
# the old one held in its first lifecycle batch (no offset committed on tickets.events: faust's start-up seek left
# those partitions where the fetcher was; HotlineConsumer.seek_to_committed in streams/app.py reads them from the start).
# Still 1 of 17 runs after that: offset 0 of one tickets.events partition never recorded (handed over during the seek
# at the end of the new worker's recovery, then dropped when faust emptied the agents' queues; the seek now stops the
# flow first: HotlineConsumer.perform_seek). The reconciler now announces again a routing published a while ago
# without its 'routed' event (reconcile.announce_lost; here after 5 s instead of 300): the test asserts the guarantee,
# and says when that net had to catch one.
@pytest.mark.slow
def test_an_old_worker_stops_without_writing_and_an_upgraded_one_takes_its_batch(own_broker, database_url,
                                                                                 start_worker):
    # Given a worker routing a burst of tickets (on a broker of the test's own: the group's committed offsets are
    # read back; reconciler rounds every 2 s, as in the scale-out test, for the embedded broker's stalls)
    env = {"HOTLINE_KAFKA_BOOTSTRAP": own_broker, "HOTLINE_RECONCILE_SECONDS": "2",
           "HOTLINE_REANNOUNCE_AFTER_SECONDS": "5"}
    ledger = Ledger(make_engine(database_url))
    prefix = f"U{uuid.uuid4().hex[:6]}"
    tickets = realistic_tickets(N, prefix, seed=2026)
    old = start_worker(database_url, **env)
    old.wait_ready()
    produce(own_broker, TICKETS_RECEIVED, [(tk["id"], tk) for tk in tickets])
    assert wait_until(lambda: published(ledger, prefix) > 0, timeout=60, interval=0.05), old.log()[-3000:]

    # When a newer version migrates the ledger under it (the router is in its next batch by then)
    at_change = _set_revision(ledger, NEWER)
    assert at_change["published"] < N, "the change came after the stream: nothing to hold"

    # Then the worker stops by itself (exit 3), saying why and which batches it holds, and writes nothing more
    assert old.proc.wait(timeout=60) == 3, old.log()[-3000:]
    log = old.log()
    held = [line for line in log.splitlines() if "held unacknowledged" in line]  # then each batch started after
    assert held and "[ERROR]" in held[0] and NEWER in held[0] and code_revision() in held[0], log[-3000:]
    assert f"stopped: the ledger's schema is now at revision {NEWER}" in log
    assert "Traceback" not in log[log.index(NEWER):]
    assert _set_revision(ledger, NEWER) == at_change
    # and the batches it held stay at or above the group's committed offsets: faust did not acknowledge them
    committed = _committed(own_broker)
    spans = [(topic, int(p), int(first)) for line in held
             for topic, p, first in re.findall(r"([\w.]+)\[(\d+)\]@(\d+)", line)]
    assert any(topic == TICKETS_RECEIVED for topic, _, _ in spans), held
    for topic, partition, first in spans:
        assert committed.get((topic, partition), 0) <= first, (topic, partition, first, committed)

    # When the ledger is back at this code's revision (the newer workers, in real life) and a worker starts
    _set_revision(ledger, code_revision())
    new = start_worker(database_url, **env)
    new.wait_ready()

    # Then every ticket is in the ledger exactly once: one row, one published decision, one 'routed' event
    assert wait_until(lambda: published(ledger, prefix) == N, timeout=90), (
        f"{published(ledger, prefix)}/{N}\n{unrouted_report(ledger, own_broker, app.conf.id, tickets)}\n"
        f"--- stopped worker\n{old.log()[-2500:]}\n--- new worker\n{new.log()[-2500:]}")
    ds = decisions(ledger, prefix)
    assert len(ds) == N and len({d.ticket_id for d in ds}) == N
    with ledger.session() as s:
        assert s.scalar(select(func.count()).select_from(t.Ticket).where(t.Ticket.id.like(f"{prefix}-%"))) == N

    def routed() -> Counter[str]:
        with ledger.session() as s:
            return Counter(s.scalars(select(t.TicketEvent.ticket_id).where(
                t.TicketEvent.ticket_id.like(f"{prefix}-%"), t.TicketEvent.type == "routed")))

    assert wait_until(lambda: len(routed()) == N, timeout=60), (
        f"no 'routed' event: {sorted({tk['id'] for tk in tickets} - set(routed()))[:20]}; committed "
        f"{sorted(_committed(own_broker).items())}\n--- new worker\n{new.log()[-3000:]}")
    assert set(routed().values()) == {1}
    assert new.proc.poll() is None
    caught = [line for line in new.log().splitlines() if "announcing them again" in line]
    if caught:  # the guarantee held, through the net: worth knowing when the handover itself lost one
        print(f"the reconciler announced again what the handover lost: {caught}")
    ledger.dispose()


def test_a_read_the_migration_broke_stops_the_worker_as_a_refused_write_does(database_url):
    """A read comes before the batch's writes (the lifecycle's look-ups, supervision's intake facts, the
    reconciler's audit): after a newer version's migration renamed or dropped what it reads, it fails instead of
    refusing. On SQLite that is an OperationalError, which Services.db retried as "unavailable" for ever (the
    worker never stopped), on PostgreSQL a ProgrammingError, which failed the batch."""
    ledger = Ledger(make_engine(database_url), revision=code_revision())
    stops: list[int] = []
    svc = Services(settings=None, ledger=ledger, router=None, catalogue=None, classifier=object(),  # type: ignore[arg-type]
                   stop=lambda: stops.append(1), max_backoff=0.2)
    other = Ledger(make_engine(database_url))
    _set_revision(other, NEWER)
    with other.engine.begin() as conn:  # what a newer migration may do to a table this code reads
        conn.exec_driver_sql("ALTER TABLE offset_audits RENAME TO offset_audits_v2")

    async def audit_marks() -> Any:
        return await asyncio.wait_for(svc.db(ledger.audit_marks, TICKETS_RECEIVED), 5)

    with pytest.raises(SchemaMoved, match=NEWER):  # outside a batch (a timer's round): the round ends
        asyncio.run(audit_marks())
    assert stops == [1] and isinstance(svc.moved, SchemaMoved)
    svc.executor.shutdown()
    svc.cpu_executor.shutdown()
    ledger.dispose()
    other.dispose()


def test_an_idle_worker_whose_reads_the_migration_broke_stops_too(tmp_path, start_worker):
    # Given an idle worker (its reconciler's round reads the audit marks every 2 s, before any write)
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    worker = start_worker(url, HOTLINE_RECONCILE_SECONDS="2")
    worker.wait_ready()
    # When a newer version's migration renames the table that round reads
    ledger = Ledger(make_engine(url))
    with ledger.engine.connect() as conn, conn.begin():
        hold_schema(conn)
        conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{NEWER}'")
        conn.exec_driver_sql("ALTER TABLE offset_audits RENAME TO offset_audits_v2")
    ledger.dispose()
    # Then the worker stops as for a refused write (it retried the read as "ledger unavailable" for ever)
    assert worker.proc.wait(timeout=60) == 3, worker.log()[-3000:]
    assert f"stopped: the ledger's schema is now at revision {NEWER}" in worker.log()


def test_a_ledger_taken_back_to_no_revision_stops_a_pinned_worker_and_the_console(database_url, tmp_path):
    """`hotline db downgrade base` drops ``alembic_version``: a pinned write then fails on the missing table
    instead of refusing; before, the worker retried it as "ledger unavailable" for ever (SQLite), and the console
    and the worker asked two different questions (the console saw it, the worker did not)."""
    from config.settings import Settings
    from streams.console.service import Console

    ledger = Ledger(make_engine(database_url), revision=code_revision())
    stops: list[int] = []
    svc = Services(settings=None, ledger=ledger, router=None, catalogue=None, classifier=object(),  # type: ignore[arg-type]
                   stop=lambda: stops.append(1), max_backoff=0.2)
    console = Console(Settings(database_url=database_url, data_dir=tmp_path / "var", kafka_bootstrap=""),
                      Ledger(make_engine(database_url)), catalogue=None, publisher=None)  # type: ignore[arg-type]
    assert console.schema_moved() is None
    with ledger.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE alembic_version")

    async def write() -> Any:
        return await asyncio.wait_for(svc.db(ledger.record_rejection, dedup_key="x", key="k", source="topic",
                                             reason="r", payload="p"), 5)

    with pytest.raises(SchemaMoved, match="revision none"):
        asyncio.run(write())
    assert stops == [1] and svc.moved is not None and svc.moved.found is None
    console._schema_checked = None  # its next look (every SCHEMA_CHECK_SECONDS)
    moved = console.schema_moved()
    assert moved is not None and moved.found is None
    svc.executor.shutdown()
    svc.cpu_executor.shutdown()
    console.ledger.dispose()
    ledger.dispose()
