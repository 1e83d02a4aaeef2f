"""Database plumbing: engine, sessions, Alembic commands, and the idempotent ledger writes.

Agents never block the event loop on the database: :class:`Ledger` methods are plain, synchronous
functions that agents run in a one-thread executor (one session per call, committed or rolled back).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from models import ledger as t
from models import word_index
from models.events import routed_event_id
from models.supervision.linking import phone_key
from models.tickets import TicketIn

log = logging.getLogger(__name__)
CHUNK = 500  # ids per IN (...) list: far below SQLite's variable limit
# Stores tickets' figure stages in the caller's transaction (streams.reports.restage)
Restage = Callable[[Session, list[str]], Any]
MIGRATIONS_DIR = Path(t.__file__).resolve().parent / "migrations"


def _json_dumps(value: Any) -> str:
    """JSON columns (stored routing messages, event payloads, alerts) written with orjson: the standard
    library's encoder was 3% of a busy worker's CPU. What orjson refuses (integers beyond 64 bits in a
    payload someone sent) still goes through the standard library, as before."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def make_engine(url: str) -> Engine:
    json_options = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **json_options)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            # WAL lets the web and CLI read while the worker writes; a busy timeout rides out locks.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, **json_options)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` (our engine, so SQLite's folder is created and pragmas apply)."""
    _migrate(url, command.upgrade, revision)


def downgrade(url: str, revision: str) -> None:
    """Take the database at ``url`` back to ``revision`` (as :func:`upgrade`, with the same care on SQLite)."""
    _migrate(url, command.downgrade, revision)


def _migrate(url: str, step: Any, revision: str) -> None:
    """Run an Alembic command on one connection of our engine.

    On SQLite, foreign keys are off while it runs. Alembic's batch mode alters a SQLite table by copying it
    and dropping the original, and with foreign keys on, dropping the original deletes the rows that refer to
    it (ON DELETE CASCADE): migration 0006 (``tickets.complex_case``) deleted every routing decision that
    way, and taking 0006 or 0007 back would delete every decision or every API token. The copies keep every
    row, so the references hold again afterwards; ``PRAGMA foreign_key_check`` is logged if one does not."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            sqlite_db = conn.dialect.name == "sqlite"
            if sqlite_db:  # only outside a transaction does SQLite take this pragma
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()
            try:
                with conn.begin():
                    hold_schema(conn)
                    cfg = alembic_config(url)
                    cfg.attributes["connection"] = conn
                    step(cfg, revision)
                if sqlite_db and (broken := conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()):
                    log.warning("the ledger %s has %d row(s) referring to rows that do not exist: %s", engine.url,
                                len(broken), broken[:5])
            finally:
                if sqlite_db:
                    conn.rollback()
                    conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                    conn.commit()
    finally:
        engine.dispose()


def migration_status(engine: Engine) -> tuple[str | None, str]:
    """(current revision in the database, head revision of the code)."""
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, code_revision()


def revision_moved(engine: Engine, expected: str) -> SchemaMoved | None:
    """Why the ledger is no longer at revision ``expected`` (a newer version migrated it, or it was taken back), or
    None. A ledger without ``alembic_version`` (downgraded to base) has moved too: a pinned write fails on the
    missing table instead of refusing. A plain read: no write lock on SQLite."""
    current, _ = migration_status(engine)
    return SchemaMoved(current, expected) if current != expected else None


@functools.cache
def code_revisions() -> tuple[str, ...]:
    """The revisions of this code's migrations, newest (its head: the schema it writes) first."""
    return tuple(s.revision for s in ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions())


def code_revision() -> str:
    """The schema revision this code was written for: the head of its own migrations."""
    return code_revisions()[0]


def hold_schema(conn: Connection) -> None:
    """Hold the ledger's schema revision until this migration's transaction ends (:func:`_migrate`).

    A worker's write checks the revision first, in its own transaction (:meth:`Ledger.writing`), so the two are
    serialised: on PostgreSQL this lock waits for the writes that read the revision to end and keeps new ones
    waiting until the migration commits, when they read the new revision and refuse. On SQLite the migration
    takes the write lock at once (its DDL would otherwise run outside any transaction, statement by statement,
    and a write could land on a half-migrated schema); writers wait for it, then read the new revision."""
    if conn.dialect.name == "sqlite":
        _begin_immediate(conn)
    elif conn.dialect.name == "postgresql" and conn.exec_driver_sql(
            "SELECT to_regclass('alembic_version')").scalar() is not None:
        conn.exec_driver_sql("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")


def _begin_immediate(conn: Connection) -> None:
    """On SQLite, begin the transaction with the write lock (the driver begins one only at the first INSERT,
    UPDATE or DELETE, and leaves DDL outside any)."""
    if conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class SchemaMoved(RuntimeError):
    """The ledger's schema revision is not the one this code was written for: a newer version upgraded it (or an
    older one took it back) while this process ran. Raised, in place of the write, by a pinned :class:`Ledger`."""

    def __init__(self, found: str | None, expected: str) -> None:
        super().__init__(f"the ledger's schema is now at revision {found or 'none'}, this code writes revision "
                         f"{expected}")
        self.found, self.expected = found, expected

    @property
    def advice(self) -> str:
        """What the operator does about it."""
        if self.found in code_revisions():  # taken back (``hotline db downgrade`` or a restored backup)
            return "an older revision of this code's: run `hotline db upgrade`, then start the workers again"
        return "a newer version upgraded it: run that version's workers, not this one"


def check_revision(s: Session, expected: str) -> None:
    """Raise :class:`SchemaMoved` unless the ledger's revision is ``expected``; the first statement of a pinned
    write transaction, so nothing is written when it raises.

    One read of the one-row ``alembic_version`` table. On PostgreSQL the read's own lock (ACCESS SHARE, held to
    the end of the transaction) is what a migration's :func:`hold_schema` waits for. On SQLite the transaction
    begins with the write lock (BEGIN IMMEDIATE): the driver would otherwise start it only at the first
    INSERT, and this read would sit outside it, before a migration that commits in between."""
    conn = s.connection()
    _begin_immediate(conn)
    _refuse_moved(conn, expected)


def _refuse_moved(conn: Connection, expected: str) -> None:
    found = [row[0] for row in conn.exec_driver_sql("SELECT version_num FROM alembic_version")]
    if found != [expected]:
        raise SchemaMoved(", ".join(found) or None, expected)


def key_order(column: Any) -> Any:
    """``column`` to ORDER BY in the order Python's ``sorted`` gives (code points: what ``COLLATE "C"`` sorts by
    in UTF-8), whatever the database's own collation. Rows are locked in this order by every writer."""
    return column.collate("C")


def lock_tickets(s: Session, ticket_ids: list[str]) -> None:
    """Hold these tickets' rows until the transaction ends (PostgreSQL; SQLite has one writer at a time), taken
    in :func:`key_order`. FOR NO KEY UPDATE, as the updates that follow would take: it leaves the router's decision
    inserts, whose foreign key takes KEY SHARE on the ticket, free to go on (FOR UPDATE made them wait)."""
    if s.get_bind().dialect.name != "postgresql":
        return
    tickets = t.Ticket.__table__
    for chunk in chunks(sorted(ticket_ids)):
        s.execute(select(tickets.c.id).where(tickets.c.id.in_(chunk)).order_by(key_order(tickets.c.id))
                  .with_for_update(key_share=True))


def drop_figures(s: Session | Connection, ticket_ids: list[str]) -> None:
    """Delete the tickets' stored figure stages and open stage (``streams.reports``)."""
    for table in (t.FigureStage.__table__, t.FigureOpen.__table__):
        s.execute(delete(table).where(table.c.ticket_id.in_(ticket_ids)))


def chunks(items: list[str], n: int = CHUNK) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _unrecorded_routings(s: Session, keys: list[str]) -> list[str]:
    """Of these routing ids, in their order, those without a 'routed' event in the ledger."""
    if not keys:
        return []
    recorded = set(s.scalars(select(t.TicketEvent.event_id).where(
        t.TicketEvent.event_id.in_([routed_event_id(key) for key in keys]))))
    return [key for key in keys if routed_event_id(key) not in recorded]


# what a redelivered event's new verdict rewrites of its row: all but its id (its place in the accepted order too)
_EVENT_VERDICT = ("ticket_id", "type", "actor", "agency", "occurred_at", "accepted", "reason", "payload", "recorded_at",
                  "batch_position")


def _insert(session: Session):  # type: ignore[no-untyped-def]
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


# An ORM bulk insert leaves a None out of its row, so rows with None in different columns are different statements,
# and consecutive rows alike are batched: decisions sorted by key (manual ones without an agency, some without a
# basis ...) were 2-3 rows a statement. With None written as NULL, a batch is one statement. Only for rows that
# carry every column they set, None where no default applies (``_ticket_row``, ``streams.routing.decision_row``,
# ``streams.supervision.alert_row``). (The events' insert is a Core one: one statement already.)
_ONE_STATEMENT = {"render_nulls": True}


def _insert_tickets(s: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert-or-ignore ticket rows by id; the ids inserted. (The search's word index follows behind, out of this
    transaction: ``models.word_index``; on PostgreSQL the new tickets are queued for it here.)"""
    stmt = _insert(s)(t.Ticket).on_conflict_do_nothing(index_elements=["id"])
    inserted = set(s.scalars(stmt.returning(t.Ticket.id), rows, execution_options=_ONE_STATEMENT))
    if s.get_bind().dialect.name == "postgresql":
        word_index.enqueue(s.connection(), inserted)
    return inserted


class Ledger:
    """The ledger's writes and reads used by the stages; every write is idempotent."""

    def __init__(self, engine: Engine, *, revision: str | None = None) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        # A worker's ledger is pinned to its code's schema revision: each write transaction checks it first
        # (:meth:`writing`), so an older worker left running after `hotline db upgrade` stops writing
        self.revision = revision
        self._merge_pending: bool | None = None  # PostgreSQL: whether this role may merge the word index's pending list
        self._unmerged = False  # PostgreSQL: tickets indexed since that list was last merged

    @classmethod
    def from_settings(cls, settings: Settings) -> Ledger:
        return cls(make_engine(settings.resolved_database_url))

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions.begin() as s:
            yield s

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session for one of the stages' writes: when the ledger is pinned, the transaction first checks that
        the schema is still at the code's revision (:func:`check_revision`, raising :class:`SchemaMoved`)."""
        with self.sessions.begin() as s:
            if self.revision is not None:
                check_revision(s, self.revision)
            yield s

    def schema_moved(self) -> SchemaMoved | None:
        """Whether a pinned ledger's schema moved, asked after one of its calls failed: a read comes before the
        write that would refuse, and fails once a newer version's migration renamed or dropped what it reads. None
        when it did not move, or when the ledger does not answer (the call's own error stands)."""
        if self.revision is None:
            return None
        try:
            return revision_moved(self.engine, self.revision)
        except SQLAlchemyError:
            return None

    def record_ticket(self, ticket: TicketIn, *, topic: str | None = None, partition: int | None = None,
                      offset: int | None = None) -> bool:
        """Insert the ticket unless its id is already known; True when this call created it."""
        with self.writing() as s:
            return bool(_insert_tickets(s, [_ticket_row(ticket, topic, partition, offset, t.utcnow())]))

    def record_rejection(self, *, dedup_key: str, key: str, source: str, reason: str, payload: str,
                         at: datetime | None = None, topic: str | None = None, partition: int | None = None,
                         offset: int | None = None) -> bool:
        with self.writing() as s:
            # whatever was refused is kept, but PostgreSQL text cannot hold NUL characters
            return upsert_values(s, t.RejectedInput, {
                "dedup_key": dedup_key[:200], "key": key[:80].replace("\x00", ""), "source": source,
                "reason": reason.replace("\x00", "\ufffd"), "payload": payload.replace("\x00", "\ufffd"),
                "rejected_at": at or t.utcnow(), "source_topic": topic, "source_partition": partition,
                "source_offset": offset}, ["dedup_key"])

    def record_tickets(self, items: list[tuple[TicketIn, str | None, int | None, int | None]]) -> set[str]:
        """Insert a batch of (ticket, topic, partition, offset); known ids are left untouched. Returns the ids
        this call inserted."""
        if not items:
            return set()
        now = t.utcnow()
        # in key order: two writers inserting overlapping ids in different orders (two workers across a
        # rebalance, the reconciler beside the agent) each wait for a row the other holds, a deadlock on PostgreSQL
        rows = sorted((_ticket_row(tk, topic, part, off, now) for tk, topic, part, off in items),
                      key=lambda r: r["id"])
        with self.writing() as s:
            return _insert_tickets(s, rows)

    def decisions(self, keys: list[str]) -> dict[str, t.RoutingDecision]:
        if not keys:
            return {}
        with self.session() as s:
            rows = s.scalars(select(t.RoutingDecision).where(t.RoutingDecision.decision_key.in_(keys)))
            return {r.decision_key: r for r in rows}

    def record_decisions(self, rows: list[dict[str, Any]]) -> set[str]:
        """Store decisions (idempotent by decision_key); returns the keys this call stored. A key it did
        not store was decided first by someone else, whose stored message is the one to publish."""
        if not rows:
            return set()
        with self.writing() as s:
            stmt = (_insert(s)(t.RoutingDecision).on_conflict_do_nothing(index_elements=["decision_key"])
                    .returning(t.RoutingDecision.decision_key))
            return set(s.scalars(stmt, sorted(rows, key=lambda r: r["decision_key"]),  # key order: no deadlock
                                 execution_options=_ONE_STATEMENT))

    def mark_published(self, keys: list[str]) -> None:
        """Mark decisions published and mirror each one onto its ticket row (only if no later attempt is
        there): one statement for the decisions, one executemany for the tickets — per-row updates cost
        ~0.16 s per 200-ticket batch (docs/results.md).

        Only the decisions this call marked are mirrored. A decision published again (the loser of a race to
        route the ticket: the reconciler, or a second worker during a rebalance) lands when the ticket may have
        moved on (signed, resolved): mirroring it again set a signed ticket back to dispatched. The first mark
        mirrors it, in the same transaction; on PostgreSQL a concurrent second one waits for that commit and
        then finds the decision published."""
        if not keys:
            return
        now = t.utcnow()
        tickets = t.Ticket.__table__
        mirror = (update(tickets)
                  .where(tickets.c.id == bindparam("b_id"), tickets.c.attempt <= bindparam("b_attempt_max"))
                  .values(status=bindparam("b_status"), current_agency=bindparam("b_agency"),
                          attempt=bindparam("b_attempt"), matter=bindparam("b_matter"),
                          jurisdiction=bindparam("b_jurisdiction"), updated_at=bindparam("b_now")))
        d_ = t.RoutingDecision
        with self.writing() as s:
            # plain rows of the six columns the mirror needs: ORM decisions would also decode each stored
            # message and its alternatives (JSON), which made this 8% of a busy worker's samples
            marked = s.execute(update(d_).where(d_.decision_key.in_(keys), d_.published_at.is_(None))
                               .values(published_at=now)
                               .returning(d_.ticket_id, d_.attempt, d_.decision, d_.agency, d_.matter,
                                          d_.jurisdiction))
            decided = sorted(marked, key=lambda d: (d.ticket_id, d.attempt))  # a later attempt is applied last
            if not decided:
                return
            s.execute(mirror, [{
                "b_id": d.ticket_id, "b_attempt_max": d.attempt, "b_attempt": d.attempt,
                "b_status": "dispatched" if d.decision == "auto" else "manual",
                "b_agency": d.agency if d.decision == "auto" else None, "b_matter": d.matter,
                "b_jurisdiction": d.jurisdiction, "b_now": now} for d in decided])

    def unrecorded_routing(self, ticket_id: str, after: int) -> dict[str, Any] | None:
        """The stored message of the ticket's first published decision beyond attempt ``after`` whose 'routed'
        event the lifecycle has not recorded (no ``routed:<routing id>`` row), or None.

        A published routing is on its queue and, in this ledger, on the ticket's row (dispatched, to its agency),
        so a clerk may act on it before its announcement reaches the lifecycle. One whose 'routed' row is here
        was applied once, and a state that no longer holds it forgot it (a closed ticket pruned, a fresh broker):
        that is not brought back."""
        d_ = t.RoutingDecision
        with self.session() as s:
            found = s.execute(select(d_.decision_key, d_.message).where(
                d_.ticket_id == ticket_id, d_.attempt > after, d_.published_at.is_not(None))
                .order_by(d_.attempt)).all()
            unheard = set(_unrecorded_routings(s, [key for key, _ in found]))
        return next((message for key, message in found if message and key in unheard), None)

    def unannounced(self, keys: list[str]) -> list[str]:
        """Of these routing ids (published decisions), those whose 'routed' event the lifecycle has not recorded."""
        if not keys:
            return []
        with self.session() as s:
            return _unrecorded_routings(s, keys)

    def lost_announcements(self, since: datetime, before: datetime, partitions: Collection[int], *,
                           skip: Collection[str] = (), limit: int = 200,
                           topic: str = "tickets.received") -> list[dict[str, Any]]:
        """The stored messages of decisions published in [since, before), of tickets received on ``partitions`` of
        ``topic``, whose 'routed' event the lifecycle never recorded (oldest first, at most ``limit``, none of the
        routing ids in ``skip``): their announcement was lost, or is very late. One index range (``published_at``),
        one key look-up each."""
        if not partitions:
            return []
        d, e, tk = t.RoutingDecision, t.TicketEvent, t.Ticket
        q = (select(d.message).join(tk, tk.id == d.ticket_id)
             .outerjoin(e, e.event_id == literal(routed_event_id("")).concat(d.decision_key))
             .where(d.published_at >= since, d.published_at < before, d.message.is_not(None),
                    tk.source_topic == topic, tk.source_partition.in_(sorted(partitions)), e.event_id.is_(None)))
        skipped = set(skip)  # filtered here: thousands of ids would not fit in one statement's parameters
        with self.session() as s:
            found = s.scalars(q.order_by(d.published_at, d.decision_key).limit(limit + len(skipped)))
            return [m for m in found if m.get("routing_id") not in skipped][:limit]

    def record_event(self, *, event_id: str, ticket_id: str, type: str, actor: str, agency: str | None,
                     occurred_at: datetime, accepted: bool, reason: str | None, payload: dict[str, Any],
                     status: str | None = None, current_agency: str | None = None) -> bool:
        """Store one lifecycle event (idempotent by event id); mirror the ticket's new status."""
        return self.record_events([{
            "event_id": event_id, "ticket_id": ticket_id, "type": type, "actor": actor, "agency": agency,
            "occurred_at": occurred_at, "accepted": accepted, "reason": reason, "payload": payload,
            "status": status, "current_agency": current_agency}]) == 1

    def record_events(self, rows: list[dict[str, Any]], *, restage: Restage | None = None) -> int:
        """Store a batch of lifecycle events in one transaction (each as :meth:`record_event`, in the order
        the lifecycle applied them, which their ``batch_position`` keeps); returns how many were new.

        Set-based: one executemany INSERT that returns the ids it stored, one executemany UPDATE for the ticket
        mirrors. A statement per event made this the worker's busiest call (a quarter of its samples in the
        profile, docs/results.md). Only the events this call stored are mirrored: two workers may handle the
        same events across a rebalance, and a SELECT of the ids already stored, taken before the other's INSERT
        committed, let the later writer mirror an old status over newer ones (a returned ticket's re-routing
        to another agency undone: the ticket left that agency's inbox).

        The supervisors' figures change with the same transaction: a ticket with new accepted events joins the
        live set (its stored figure stages go), and ``restage`` stores them again from its whole history, so its
        figures are added up instead of replayed (``streams.reports``). Not after a batch that only routed the
        ticket: that is the busy path (every ticket, at the rate tickets arrive), and the ticket stays live
        until its agency's next step."""
        if not rows:
            return 0
        now = t.utcnow()
        events = t.TicketEvent.__table__
        tickets = t.Ticket.__table__
        batch: dict[str, dict[str, Any]] = {}
        for position, row in enumerate(rows):
            # As one call per event would store them: the first of a repeated id wins, but an accepted copy takes
            # a refused one over, in its own place (a 办结 refused, the sign-for, the 办结 again: the state holds it)
            first = batch.get(row["event_id"])
            if first is None or (row["accepted"] and not first["accepted"]):
                batch.pop(row["event_id"], None)  # re-inserted last: the dict keeps the batch's order
                batch[row["event_id"]] = {**row, "batch_position": position}
        with self.writing() as s:
            # An event refused once and accepted on a redelivery (its verdict changed in between: a time stamped
            # ahead that "now" has reached, a routing recorded since) takes the refused row over, so the ledger
            # agrees with the lifecycle's state; an accepted row is never touched again.
            ins = _insert(s)(events)
            ins = ins.on_conflict_do_update(
                index_elements=["event_id"], set_={c: ins.excluded[c] for c in _EVENT_VERDICT},
                where=~events.c.accepted & ins.excluded.accepted)
            stored = set(s.scalars(
                ins.returning(events.c.event_id),
                [{**{k: v for k, v in row.items() if k not in ("status", "current_agency")}, "recorded_at": now}
                 for _, row in sorted(batch.items())]))  # in key order, as record_tickets: no deadlock
            fresh = [row for event_id, row in batch.items() if event_id in stored]
            mirrors = [{"b_id": row["ticket_id"], "b_status": row["status"], "b_agency": row.get("current_agency"),
                        "b_now": now}
                       for row in fresh
                       if row["accepted"] and row.get("status") is not None and row["type"] != "routed"]
            touched = sorted({row["ticket_id"] for row in fresh if row["accepted"]})
            if touched:
                # every row this transaction updates, locked first and in key order: the mirrors and the figures'
                # flags below would otherwise lock overlapping sets in different orders (deadlocks between workers).
                # Key order is Python's (code points), which the other writers' executemany follow (mark_published):
                # a database collation such as en_US puts 'a1' before 'B1' and deadlocked this against the router
                lock_tickets(s, touched)
            if mirrors:  # executemany runs in list order: the batch's last event on a ticket is the one kept
                mirrors.sort(key=lambda m: m["b_id"])  # key order (no deadlock); stable: a ticket's order is kept
                s.execute(update(tickets).where(tickets.c.id == bindparam("b_id")).values(
                    status=bindparam("b_status"), current_agency=bindparam("b_agency"),
                    updated_at=bindparam("b_now")), mirrors)
            # a ticket an agency, dispatcher or caller acted on is stored again by restage (which drops what was
            # stored first); one only routed just goes back to the live set
            stepped = ({row["ticket_id"] for row in fresh if row["accepted"] and row["type"] != "routed"}
                       if restage is not None else set())
            for chunk in chunks([tid for tid in touched if tid not in stepped]):
                self.figures_changed(s, chunk)
            if stepped:
                restage(s, sorted(stepped))
        return len(fresh)

    @staticmethod
    def figures_changed(s: Session, ticket_ids: list[str]) -> None:
        """Put tickets whose history changed back in the figures' live set and drop their stored stages (kept
        only while they match the ticket's history). The ticket's version (``updated_at``) stays."""
        tickets = t.Ticket.__table__
        changed = list(s.scalars(update(tickets).where(tickets.c.id.in_(ticket_ids), ~tickets.c.figures_live)
                                 .values(figures_live=True, updated_at=tickets.c.updated_at)
                                 .returning(tickets.c.id)))
        if changed:
            drop_figures(s, changed)

    def record_training_example(self, *, ticket_id: str, label: str, predicted: str | None,
                                created_by: str) -> None:
        with self.writing() as s:
            ticket = s.get(t.Ticket, ticket_id)
            if ticket is None:
                return
            stmt = _insert(s)(t.TrainingExample).values(
                ticket_id=ticket_id, text=ticket.text, label=label, label_kind="agency", predicted=predicted,
                created_by=created_by, created_at=t.utcnow())
            s.execute(stmt.on_conflict_do_update(index_elements=["ticket_id"], set_={
                "label": label, "created_by": created_by, "created_at": t.utcnow()}))

    def record_alerts(self, rows: list[dict[str, Any]]) -> None:
        """Store supervision alerts; idempotent by ``alert_key`` (a re-sent alert changes nothing)."""
        if not rows:
            return
        with self.writing() as s:
            s.execute(_insert(s)(t.Alert).on_conflict_do_nothing(index_elements=["alert_key"]), rows,
                      execution_options=_ONE_STATEMENT)

    # --- the reconciler's bookkeeping (streams/reconcile.py) ----------------------------------------------
    def audit_marks(self, topic: str) -> dict[int, int]:
        """Per partition of ``topic``: the offset up to which every message is known to the ledger."""
        with self.session() as s:
            return {a.partition: a.audited_to for a in s.scalars(select(t.OffsetAudit).where(
                t.OffsetAudit.topic == topic))}

    def accounted_offsets(self, topic: str, partition: int, lo: int, hi: int) -> set[int]:
        """Offsets in [lo, hi) of one partition that were handled to the end: a ticket with a published
        routing decision, or a rejection (both found by their indexed position columns). A ticket recorded
        without a published decision is not accounted: its batch stopped between the two writes, and if
        the group's offset is past it all the same, nobody else will route it. That holds even when the
        batch was dead-lettered as an internal error (the broker refusing the publication, say): the
        rejection records the failure, the reconciler still routes the ticket."""
        routed = select(t.RoutingDecision.decision_key).where(t.RoutingDecision.ticket_id == t.Ticket.id,
                                                               t.RoutingDecision.published_at.is_not(None))
        at = (t.Ticket.source_topic == topic, t.Ticket.source_partition == partition,
              t.Ticket.source_offset >= lo, t.Ticket.source_offset < hi)
        with self.session() as s:
            found = set(s.scalars(select(t.Ticket.source_offset).where(*at, routed.exists())))
            unfinished = set(s.scalars(select(t.Ticket.source_offset).where(*at, ~routed.exists())))
            found.update(set(s.scalars(select(t.RejectedInput.source_offset).where(
                t.RejectedInput.source_topic == topic, t.RejectedInput.source_partition == partition,
                t.RejectedInput.source_offset >= lo, t.RejectedInput.source_offset < hi))) - unfinished)
        return found

    def advance_audit(self, topic: str, partition: int, to: int, recovered: int = 0) -> None:
        """Move a partition's audit mark forward (never back: two workers may both audit across a rebalance).

        The row is created first if missing, then locked and moved: a look-up that found no row, then an insert
        that a concurrent writer's won, dropped this call's mark and its ``recovered`` count."""
        now = t.utcnow()
        with self.writing() as s:
            if upsert_values(s, t.OffsetAudit, {"topic": topic, "partition": partition, "audited_to": to,
                                                "recovered": recovered, "updated_at": now}, ["topic", "partition"]):
                return
            row = s.get(t.OffsetAudit, (topic, partition), with_for_update=True, populate_existing=True)
            if row is not None and (to > row.audited_to or recovered):
                row.audited_to = max(row.audited_to, to)
                row.recovered += recovered

    def tickets(self, ids: list[str]) -> dict[str, t.Ticket]:
        if not ids:
            return {}
        with self.session() as s:
            return {r.id: r for r in s.scalars(select(t.Ticket).where(t.Ticket.id.in_(ids)))}

    def intake_facts(self, ids: list[str]) -> dict[str, Any]:
        """What supervision needs of each ticket's intake, as plain rows: loading whole ORM tickets (with
        their text) for every routed ticket was 5% of a busy worker's samples."""
        if not ids:
            return {}
        cols = (t.Ticket.id, t.Ticket.request_type, t.Ticket.urgency, t.Ticket.matter, t.Ticket.address,
                t.Ticket.caller_phone, t.Ticket.received_at, t.Ticket.complex_case)
        with self.engine.connect() as conn:
            return {r.id: r for r in conn.execute(select(*cols).where(t.Ticket.id.in_(ids)))}

    def count(self, model: type[t.Base]) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(model)) or 0

    def get_ticket(self, ticket_id: str) -> t.Ticket | None:
        with self.session() as s:
            return s.get(t.Ticket, ticket_id)

    def rejections(self, limit: int = 100) -> list[t.RejectedInput]:
        with self.session() as s:
            return list(s.scalars(select(t.RejectedInput).order_by(t.RejectedInput.id.desc()).limit(limit)))

    def may_merge_word_index(self) -> bool:
        """Whether this role may merge the PostgreSQL word index's pending list (it owns the index); always on SQLite,
        where the console indexes the tickets itself. What the console's rounds and ``hotline doctor`` both ask."""
        if self.engine.dialect.name == "sqlite":
            return True
        with self.engine.connect() as conn:
            return word_index.may_merge(conn)

    def catch_up_word_index(self, limit: int = word_index.CATCH_UP_BATCH) -> int:
        """Index up to ``limit`` tickets the search's word index has not seen yet: how many (0 when caught up).
        On PostgreSQL, also merge the index's pending list after a batch: unless this role may not (it does not own
        the index), which is said once, and the list is then merged by the inserts that find it full."""
        sqlite = self.engine.dialect.name == "sqlite"
        with self.engine.begin() as conn:
            done = word_index.catch_up(conn, limit) if sqlite else word_index.catch_up_pg(conn, limit)
        if sqlite:
            return done
        # merged once caught up (a batch not full, or none after a full one): in a burst, the insert that fills the
        # list merges it
        self._unmerged = self._unmerged or done > 0
        if done == limit or not self._unmerged:
            return done
        self._unmerged = False
        if self._merge_pending is None:
            self._merge_pending = self.may_merge_word_index()
            if not self._merge_pending:
                log.warning("word index: %s. Fix: %s", word_index.NOT_OWNER, word_index.OWNER_FIX)
        if self._merge_pending:
            try:
                with self.engine.begin() as conn:
                    word_index.merge_pending(conn)
            except ProgrammingError as exc:  # the index changed hands since the first round
                self._merge_pending = False
                log.warning("word index: this role may no longer merge the pending list of %s (%s)",
                            word_index.PG_INDEX, str(exc.orig).splitlines()[0])
        return done

    def dispose(self) -> None:
        self.engine.dispose()


def _ticket_row(tk: TicketIn, topic: str | None, partition: int | None, offset: int | None,
                now: datetime) -> dict[str, Any]:
    return {
        "id": tk.id, "received_at": tk.received_at, "text": tk.text, "title": tk.title, "address": tk.address,
        "channel": tk.channel, "request_type": tk.request_type, "urgency": tk.urgency,
        "caller_phone": tk.caller_phone, "caller_key": phone_key(tk.caller_phone),
        "complex_case": tk.complex_case, "status": "received", "attempt": 0, "source_topic": topic,
        "source_partition": partition, "source_offset": offset, "first_seen_at": now, "updated_at": now,
    }


def upsert_values(session: Session, model: type[t.Base], values: dict[str, Any], key: list[str]) -> bool:
    """Insert-or-ignore by ``key`` on SQLite and PostgreSQL; True when a row was written.

    Uses RETURNING rather than rowcount: psycopg reports -1 for INSERT ... ON CONFLICT DO NOTHING.
    """
    pk = [getattr(model, k) for k in key]
    stmt = _insert(session)(model).values(**values).on_conflict_do_nothing(index_elements=key).returning(*pk)
    return session.execute(stmt).first() is not None


class NotMigrated(RuntimeError):
    """The ledger schema is missing or not at the code's revision."""


class SchemaAhead(NotMigrated):
    """The ledger is at a revision this code does not know: a newer version upgraded it."""


def revision_mismatch(url: str, current: str | None, head: str) -> NotMigrated:
    """What to tell the operator of a process whose code (``head``) does not match the ledger (``current``)."""
    if current is not None and current not in code_revisions():
        return SchemaAhead(f"the ledger {url} is at revision {current}, newer than this code's {head} (a newer "
                           f"version upgraded it): run that version's workers and commands, not this one")
    return NotMigrated(f"the ledger {url} is at revision {current or 'none'}, the code needs {head}: "
                       "run `hotline db upgrade` first")


class LedgerUnavailable(RuntimeError):
    """The ledger database cannot be reached."""


def open_migrated(settings: Settings, *, pin: bool = False) -> Ledger:
    """The ledger, if it exists, answers and is at the code's revision; else NotMigrated (SchemaAhead when a newer
    version upgraded it) or LedgerUnavailable, with a message for the operator. ``pin``: the ledger's writes check
    that the revision stays the code's (a worker's; :meth:`Ledger.writing`).

    A SQLite file that does not exist is not created here: opening it would leave an empty ledger behind for a
    command that only reads (``hotline report`` on a fresh install), and say "revision none" about a file the
    operator never made.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    # Settings refused a URL that is not one, or whose dialect or driver is missing (HOTLINE_DATABASE_URL)
    parsed = make_url(settings.resolved_database_url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).exists():
        raise NotMigrated(f"there is no ledger at {parsed.database} yet: the README's main command "
                          "creates it, or run `hotline db upgrade`")
    ledger = Ledger.from_settings(settings)
    try:
        current, head = migration_status(ledger.engine)
    except OperationalError as exc:  # down, unreachable, wrong password: a message, not a traceback
        ledger.dispose()
        raise LedgerUnavailable(f"cannot reach the ledger {settings.safe_database_url}: "
                                f"{str(exc.orig).strip()}") from None
    if current != head:
        ledger.dispose()
        raise revision_mismatch(settings.safe_database_url, current, head)
    if pin:
        ledger.revision = head
    return ledger
