"""The ledger: the durable record of every ticket, routing decision, lifecycle event and alert,
and of the console's users and API tokens.

SQLAlchemy 2.0 declarative tables. Topics on the embedded broker live only in memory, so this
database is what survives; every write is keyed (ticket id, decision key, event id, alert key) so a
message delivered twice writes once. The schema itself is built by Alembic (``models/migrations``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
    true,
)
from sqlalchemy import text as sql  # ``text`` is a ticket's column
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on every backend: stored as UTC, returned aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; pass an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Ticket(Base):
    """One work order. ``status`` and ``current_agency`` mirror the lifecycle table for queries."""

    __tablename__ = "tickets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime]
    text: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(String(500))
    address: Mapped[str | None] = mapped_column(String(500))
    channel: Mapped[str | None] = mapped_column(String(40))
    request_type: Mapped[str | None] = mapped_column(String(8))
    urgency: Mapped[str | None] = mapped_column(String(8))
    caller_phone: Mapped[str | None] = mapped_column(String(40))  # shown masked except to the handler
    # its digits as the linker compares them (normalise_phone), for the search by caller (migration 0013)
    caller_key: Mapped[str | None] = mapped_column(String(20))
    complex_case: Mapped[bool] = mapped_column(default=False, server_default=false())  # 复杂件, said at intake
    jurisdiction: Mapped[str | None] = mapped_column(String(16))
    street: Mapped[str | None] = mapped_column(String(64))
    matter: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24), default="received")
    current_agency: Mapped[str | None] = mapped_column(String(32))  # indexed first in two below
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    source_topic: Mapped[str | None] = mapped_column(String(120))
    source_partition: Mapped[int | None]
    source_offset: Mapped[int | None] = mapped_column(BigInteger)  # Kafka offsets are 64-bit (migration 0009)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # The supervisors' figures replay this ticket when asked: its figure_stages and figure_open are not stored,
    # or no longer match its history (migration 0011)
    figures_live: Mapped[bool] = mapped_column(default=True, server_default=true())

    __table_args__ = (Index("ix_tickets_status_received", "status", "received_at"),
                      Index("ix_tickets_source_position", "source_topic", "source_partition", "source_offset"),
                      # the ticket list and its pages, newest first (migration 0010)
                      Index("ix_tickets_received_id", "received_at", "id"),
                      # an agency's own list; its inbox by status and its counts
                      Index("ix_tickets_agency_received_id", "current_agency", "received_at", "id"),
                      Index("ix_tickets_agency_status_received", "current_agency", "status", "received_at"),
                      # a caller's tickets, newest first: the search by number (migration 0013)
                      Index("ix_tickets_caller_key_received", "caller_key", "received_at"),
                      # the few live ones among a year's tickets, for the figures (partial: ~open tickets only)
                      Index("ix_tickets_figures_live", "id", sqlite_where=sql("figures_live"),
                            postgresql_where=sql("figures_live")))


class RoutingDecision(Base):
    """One routing decision per (ticket, attempt): what the router decided, and why."""

    __tablename__ = "routing_decisions"

    decision_key: Mapped[str] = mapped_column(String(80), primary_key=True)  # "<ticket>#<attempt>"
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    decision: Mapped[str] = mapped_column(String(16))  # auto | manual | unroutable | designated
    matter: Mapped[str | None] = mapped_column(String(16))
    domain: Mapped[str | None] = mapped_column(String(16))
    agency: Mapped[str | None] = mapped_column(String(32), index=True)
    agency_kind: Mapped[str | None] = mapped_column(String(32))
    jurisdiction: Mapped[str | None] = mapped_column(String(16))
    confidence: Mapped[float | None] = mapped_column(Float)
    basis: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    alternatives: Mapped[list[Any]] = mapped_column(default=list)
    model_version: Mapped[str | None] = mapped_column(String(64))
    decided_by: Mapped[str] = mapped_column(String(64), default="router")
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    topic: Mapped[str | None] = mapped_column(String(120))  # the queue it was published to
    # None until the broker acknowledged the publication; indexed for the reconciler's look for lost announcements
    published_at: Mapped[datetime | None] = mapped_column(index=True)
    message: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # exactly what was (to be) published


class TicketEvent(Base):
    """A lifecycle event (signed, returned, resolved ...) as received on ``tickets.events``.

    Read a ticket's history in :data:`ACCEPTED_ORDER`."""

    __tablename__ = "ticket_events"

    event_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    agency: Mapped[str | None] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    accepted: Mapped[bool] = mapped_column(default=True)
    reason: Mapped[str | None] = mapped_column(Text)  # why it was rejected, when it was
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Place in the lifecycle batch that stored it: a batch shares one recorded_at, and occurred_at is the
    # sender's clock, so (recorded_at, batch_position) is the only order the lifecycle accepted them in.
    # None for rows stored before migration 0008.
    batch_position: Mapped[int | None]

    __table_args__ = (Index("ix_ticket_events_ticket_time", "ticket_id", "occurred_at"),
                      # an agency's returns (its inbox); the events of a period, newest first (the dispatcher's
                      # recent returns, the reports): migration 0010. None leads with type: SQLite then read
                      # every routed event for a few tickets' routings
                      Index("ix_ticket_events_agency_type_time", "agency", "type", "occurred_at"),
                      Index("ix_ticket_events_occurred_at", "occurred_at"))


# A ticket's events as the lifecycle accepted them: batch by batch, in each batch in the order it applied them
# (rows from before migration 0008 have no position and fall back on their senders' occurred_at).
ACCEPTED_ORDER = (TicketEvent.recorded_at, TicketEvent.batch_position, TicketEvent.occurred_at)


class FigureStage(Base):
    """A ticket's contribution to one agency's figures (``models.supervision.figures.Stage``), counted in the
    period its ``anchor_at`` (the dispatch) falls in. Written with the lifecycle events that changed the ticket,
    so a period's figures add these up and replay only the live tickets (``Ticket.figures_live``)."""

    __tablename__ = "figure_stages"

    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency: Mapped[str] = mapped_column(String(32))
    anchor_at: Mapped[datetime] = mapped_column(index=True)
    dispatched: Mapped[int] = mapped_column(Integer, default=0)
    signed_on_time: Mapped[int] = mapped_column(Integer, default=0)
    signed_late: Mapped[int] = mapped_column(Integer, default=0)
    resolved_on_time: Mapped[int] = mapped_column(Integer, default=0)
    resolved_late: Mapped[int] = mapped_column(Integer, default=0)
    returns: Mapped[int] = mapped_column(Integer, default=0)
    first_dispatched: Mapped[int] = mapped_column(Integer, default=0)
    first_time_right: Mapped[int] = mapped_column(Integer, default=0)
    late: Mapped[bool] = mapped_column(default=False)
    handled: Mapped[int] = mapped_column(Integer, default=0)
    handling_centidays: Mapped[int] = mapped_column(Integer, default=0)


class FigureOpen(Base):
    """A ticket's stage still open at an agency (``models.supervision.figures.OpenStage``), stored with its
    stages: whether it is late depends on when the figures are read, so it is judged then, not replayed."""

    __tablename__ = "figure_open"

    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(8))  # sign | handle
    agency: Mapped[str] = mapped_column(String(32))
    anchor_at: Mapped[datetime]
    due_at: Mapped[datetime | None]
    late: Mapped[bool] = mapped_column(default=False)


class Alert(Base):
    """A supervision alert; ``alert_key`` = (ticket or agency, rule, level) makes it unique."""

    __tablename__ = "alerts"

    alert_key: Mapped[str] = mapped_column(String(160), primary_key=True)
    rule: Mapped[str] = mapped_column(String(40), index=True)
    level: Mapped[str] = mapped_column(String(24))
    severity: Mapped[str] = mapped_column(String(16))
    ticket_id: Mapped[str | None] = mapped_column(String(64), index=True)
    agency: Mapped[str | None] = mapped_column(String(32), index=True)
    deadline: Mapped[datetime | None]
    message: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    raised_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)  # the latest first (migration 0010)


class TrainingExample(Base):
    """A dispatcher's correction, kept as a labelled example for the next ``hotline train``."""

    __tablename__ = "training_examples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(String(64), unique=True)
    text: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(32))  # agency code chosen by the dispatcher
    label_kind: Mapped[str] = mapped_column(String(16), default="agency")
    predicted: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RejectedInput(Base):
    """Every input refused anywhere (topic, HTTP, file import), with the reason: nothing vanishes."""

    __tablename__ = "rejected_inputs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)  # source + position or content
    key: Mapped[str] = mapped_column(String(80), index=True)
    source: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    rejected_at: Mapped[datetime] = mapped_column(default=utcnow)
    # where a message refused off a topic was (None for HTTP and file imports): the reconciler asks the
    # ledger which offsets of a partition it holds, by range, through this index
    source_topic: Mapped[str | None] = mapped_column(String(120))
    source_partition: Mapped[int | None]
    source_offset: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_rejected_inputs_source_position", "source_topic", "source_partition",
                            "source_offset"),)


class User(Base):
    """A console/API user: a dispatcher, a member of one agency, or a supervisor.

    ``password_hash`` is ``scrypt$n$r$p$<salt b64>$<hash b64>`` (see ``streams.console.accounts``); never the
    password itself. ``agency`` is set for (and only for) agency members.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # dispatcher | agency | supervisor
    agency: Mapped[str | None] = mapped_column(String(32), index=True)
    display_name: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(256))
    # part of every console session's stamp: bumped when the user is disabled, so re-enabling revives none
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class ApiToken(Base):
    """A bearer token of one user for the HTTP API; only its SHA-256 is stored (the token is shown once)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    name: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class OffsetAudit(Base):
    """How far the reconciler has checked that every offset of an input partition reached the ledger
    (``streams/reconcile.py``): offsets below ``audited_to`` are each a ticket, a rejection, or re-read."""

    __tablename__ = "offset_audits"

    topic: Mapped[str] = mapped_column(String(120), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    audited_to: Mapped[int] = mapped_column(BigInteger)
    recovered: Mapped[int] = mapped_column(Integer, default=0)  # offsets found missing and routed since
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ThrottleFailure(Base):
    """A failure a console throttle counts: a failed log-in, a search by a caller's number that found no one
    (``streams.console.accounts``). In the ledger, not in a console's memory, so every console process counts the
    same failures and a restart forgets none. Rows older than their counter's window are deleted as failures come."""

    __tablename__ = "throttle_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    counter: Mapped[str] = mapped_column(String(32))  # which throttle and what it counts by (login_name, ...)
    key: Mapped[str] = mapped_column(String(200))  # a user name and client address, a user id, an address
    at: Mapped[datetime]
    __table_args__ = (Index("ix_throttle_failures_counter_key_at", "counter", "key", "at"),
                      Index("ix_throttle_failures_counter_at", "counter", "at"))


class ThrottleLockout(Base):
    """A key a throttle refuses until ``until`` (its failures reached the counter's limit within its window)."""

    __tablename__ = "throttle_lockouts"

    counter: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    until: Mapped[datetime] = mapped_column(index=True)
