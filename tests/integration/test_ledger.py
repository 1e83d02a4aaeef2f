"""Ledger writes are idempotent and say whether they wrote, on SQLite and on PostgreSQL alike.

(psycopg reports rowcount -1 for INSERT ... ON CONFLICT DO NOTHING; the ledger must not rely on it.)
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from models import ledger as t
from models.tickets import parse_ticket
from streams.db import Ledger, make_engine

pytestmark = pytest.mark.integration


def test_idempotent_writes_report_what_they_did(database_url):
    ledger = Ledger(make_engine(database_url))
    ticket = parse_ticket({"id": "L-1", "text": "路灯不亮", "received_at": "2025-10-01T08:00:00"})
    assert ledger.record_ticket(ticket) is True
    assert ledger.record_ticket(ticket) is False
    event = {"event_id": "e-1", "ticket_id": "L-1", "type": "signed", "actor": "a", "agency": "BH-CGW",
             "occurred_at": datetime.now(UTC), "accepted": True, "reason": None, "payload": {}}
    assert ledger.record_event(**event, status="signed", current_agency="BH-CGW") is True
    assert ledger.get_ticket("L-1").status == "signed"  # the mirror follows the accepted event
    assert ledger.record_event(**event, status="resolved", current_agency="BH-CGW") is False
    assert ledger.get_ticket("L-1").status == "signed"  # a redelivery changes nothing
    rej = {"dedup_key": "topic:x/0/1", "key": "k", "source": "topic", "reason": "not JSON", "payload": "{"}
    assert ledger.record_rejection(**rej) is True and ledger.record_rejection(**rej) is False
    assert ledger.count(t.RejectedInput) == 1 and ledger.count(t.TicketEvent) == 1
    assert ledger.get_ticket("L-1").received_at.isoformat() == "2025-10-01T00:00:00+00:00"
    ledger.dispose()


def test_intake_facts_are_the_ticket_fields_supervision_reads(database_url):
    ledger = Ledger(make_engine(database_url))
    ticket = parse_ticket({"id": "L-2", "text": "楼下饭店油烟扰民" * 50, "received_at": "2025-10-01T08:00:00",
                           "address": "泰达街道某小区", "caller_phone": "13812345678", "urgency": "紧急"})
    ledger.record_ticket(ticket)
    facts = ledger.intake_facts(["L-2", "L-404"])
    assert set(facts) == {"L-2"} and ledger.intake_facts([]) == {}
    row = facts["L-2"]
    assert (row.address, row.caller_phone, row.urgency) == ("泰达街道某小区", "13812345678", "紧急")
    assert row.received_at == ledger.get_ticket("L-2").received_at  # timezone-aware, as through the ORM
    assert row.received_at.tzinfo is not None
    ledger.dispose()


def test_accounted_offsets_find_routed_tickets_and_rejections_by_position(database_url):
    ledger = Ledger(make_engine(database_url))
    # Given tickets at offsets 3, 5 and 6 of partition 1 (3 routed and published, 5 decided but not yet
    # published, 6 only recorded), one routed on partition 2, and rejections at positions and over HTTP
    for n, off in enumerate((3, 5, 6)):
        ledger.record_tickets([(parse_ticket({"id": f"P-{n}", "text": "路灯不亮"}), "tickets.received", 1, off)])
    ledger.record_tickets([(parse_ticket({"id": "P-other", "text": "路灯不亮"}), "tickets.received", 2, 4)])
    with ledger.session() as s:
        for tid, published in (("P-0", True), ("P-1", False), ("P-other", True)):
            s.add(t.RoutingDecision(decision_key=f"{tid}#1", ticket_id=tid, attempt=1, decision="manual",
                                    published_at=datetime.now(UTC) if published else None))
    for source, off in (("intake", 4), ("routing", 7), ("intake", 40), ("routing", 5), ("routing", 6)):
        ledger.record_rejection(dedup_key=f"{source}:tickets.received/1/{off}", key=f"k{off}", source=source,
                                reason="not JSON", payload="{", topic="tickets.received", partition=1, offset=off)
    ledger.record_rejection(dedup_key="http:abc", key="k", source="http", reason="bad", payload="{}")
    # Then only what was handled to the end is accounted: the routed ticket and the rejections, but not the
    # tickets whose batch was dead-lettered after they were recorded (5, 6: the publication failed, say)
    assert ledger.accounted_offsets("tickets.received", 1, 3, 8) == {3, 4, 7}
    ledger.mark_published(["P-1#1"])
    assert ledger.accounted_offsets("tickets.received", 1, 3, 8) == {3, 4, 5, 7}
    assert ledger.accounted_offsets("tickets.received", 2, 0, 100) == {4}
    assert ledger.accounted_offsets("tickets.events", 1, 0, 100) == set()
    ledger.dispose()


def test_rejections_recorded_before_0005_get_their_position_from_their_key(database_url):
    # Given a ledger at revision 0004 with rejections keyed by position (and one that is not)
    from alembic import command
    from sqlalchemy import text

    from streams.db import alembic_config, upgrade

    engine = make_engine(database_url)
    with engine.begin() as conn:
        cfg = alembic_config(database_url)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    with engine.begin() as conn:
        for key in ("routing:tickets.received/2/17", "intake:tickets.received/2/18", "http:abc",
                    "ingest:data/2024/05.csv:12:deadbeef"):
            conn.execute(text("INSERT INTO rejected_inputs (dedup_key, key, source, reason, payload, rejected_at) "
                              "VALUES (:k, 'k', 's', 'r', 'p', :at)"), {"k": key, "at": datetime.now(UTC)})
    engine.dispose()
    # When it is migrated
    upgrade(database_url)
    # Then the reconciler finds the old rejections by their offsets
    ledger = Ledger(make_engine(database_url))
    assert ledger.accounted_offsets("tickets.received", 2, 0, 100) == {17, 18}
    assert sum(r.source_topic is None for r in ledger.rejections()) == 2
    ledger.dispose()


def test_the_migrations_build_exactly_the_models_schema(database_url):
    # a column or index added to models/ledger.py without its migration (or the reverse) shows up here
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from models import word_index

    engine = make_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": word_index.include_name})
        assert compare_metadata(context, t.Base.metadata) == []
    engine.dispose()


def test_received_counts_per_shanghai_day_and_matter(database_url):
    from datetime import timedelta

    from streams.console.queries import received_counts
    from streams.reports import day_bounds

    ledger = Ledger(make_engine(database_url))
    # Given tickets on both sides of Shanghai midnights (16:00 UTC), one not yet classified, one too late
    received = {"C-1": ("2025-06-01T23:59:59+08:00", "HB-001"), "C-2": ("2025-06-02T00:00:00+08:00", "HB-001"),
                "C-3": ("2025-06-02T15:59:59Z", "HB-001"), "C-4": ("2025-06-02T16:00:00Z", "RS-002"),
                "C-5": ("2025-06-03T09:00:00+08:00", None), "C-6": ("2025-06-04T00:00:00+08:00", "HB-001"),
                "C-0": ("2025-05-31T23:59:59+08:00", "HB-001")}
    for tid, (at, _) in received.items():
        ledger.record_ticket(parse_ticket({"id": tid, "text": "楼下饭店油烟扰民", "received_at": at}))
    with ledger.session() as s:
        for tid, (_, matter) in received.items():
            s.get(t.Ticket, tid).matter = matter
    # When they are counted per day from 1 to 3 June
    first = date(2025, 6, 1)
    bounds = [day_bounds(first + timedelta(days=i))[0] for i in range(4)]
    # Then each lands on its Shanghai day, before and after grouping by matter
    assert sorted(received_counts(ledger, bounds)) == [(0, None, 1), (1, None, 2), (2, None, 2)]
    assert sorted(received_counts(ledger, bounds, by_matter=True), key=str) == sorted(
        [(0, "HB-001", 1), (1, "HB-001", 2), (2, "RS-002", 1), (2, None, 1)], key=str)
    assert received_counts(ledger, bounds[:1] + bounds[-1:]) == [(0, None, 5)]  # one period of three days
    ledger.dispose()


def test_an_event_refused_then_accepted_on_redelivery_takes_its_row_over(database_url):
    ledger = Ledger(make_engine(database_url))
    ledger.record_ticket(parse_ticket({"id": "R-1", "text": "路灯不亮", "received_at": "2025-10-01T08:00:00"}))
    signed = {"event_id": "e-sign", "ticket_id": "R-1", "type": "signed", "actor": "a", "agency": "BH-CGW",
              "occurred_at": datetime(2025, 10, 1, 9, tzinfo=UTC), "payload": {"type": "signed"}}
    # Given a sign-for refused when first delivered (its stamp then ahead of the lifecycle's clock, say)
    assert ledger.record_event(**signed, accepted=False, reason="办理时间晚于当前时间") is True
    assert ledger.get_ticket("R-1").status != "signed"
    # When its redelivery is accepted
    assert ledger.record_event(**signed, accepted=True, reason=None, status="signed", current_agency="BH-CGW")
    # Then the ledger says what the lifecycle's state says: the row is accepted and the mirror follows it
    with ledger.session() as s:
        row = s.get(t.TicketEvent, "e-sign")
        assert (row.accepted, row.reason) == (True, None)
    assert ledger.get_ticket("R-1").status == "signed"
    # and an accepted row is never taken back
    assert ledger.record_event(**signed, accepted=False, reason="again") is False
    assert ledger.count(t.TicketEvent) == 1 and ledger.get_ticket("R-1").status == "signed"
    ledger.dispose()


def test_an_event_refused_then_accepted_in_one_batch_is_stored_accepted(database_url):
    ledger = Ledger(make_engine(database_url))
    ledger.record_ticket(parse_ticket({"id": "R-2", "text": "路灯不亮", "received_at": "2025-10-01T08:00:00"}))
    at = datetime(2025, 10, 1, 9, tzinfo=UTC)

    def row(event_id: str, type_: str, accepted: bool, status: str | None) -> dict:
        return {"event_id": event_id, "ticket_id": "R-2", "type": type_, "actor": "a", "agency": "BH-CGW",
                "occurred_at": at, "accepted": accepted, "reason": None if accepted else "工单当前状态为「已派发」",
                "payload": {"type": type_}, "status": status, "current_agency": "BH-CGW"}

    # Given one lifecycle batch holding a 办结 refused (not signed yet), the sign-for, then the 办结 sent again
    # under its event id and now accepted: the lifecycle's state says resolved
    rows = [row("e-resolve", "resolved", False, None), row("e-sign", "signed", True, "signed"),
            row("e-resolve", "resolved", True, "resolved")]
    # When the batch is stored
    assert ledger.record_events(rows) == 2
    # Then the ledger says what the state says: the 办结 accepted, after the sign-for, and the ticket resolved
    with ledger.session() as s:
        stored = {e.event_id: e for e in s.query(t.TicketEvent)}
        assert stored["e-resolve"].accepted and stored["e-resolve"].reason is None
        assert stored["e-resolve"].batch_position > stored["e-sign"].batch_position
    assert ledger.get_ticket("R-2").status == "resolved"
    ledger.dispose()


def test_a_replay_reads_an_event_stored_without_its_time_at_the_time_the_lifecycle_gave_it(database_url):
    from streams.reports import histories_of

    ledger = Ledger(make_engine(database_url))
    ledger.record_ticket(parse_ticket({"id": "R-3", "text": "路灯不亮", "received_at": "2025-10-01T08:00:00"}))
    at = datetime(2025, 10, 1, 9, tzinfo=UTC)
    routed = {"event_id": "R-3#1", "ticket_id": "R-3", "type": "routed", "actor": "router", "role": "system",
              "agency": "BH-CGW", "attempt": 1, "decision": "auto", "occurred_at": at.isoformat()}
    # Given a sign-for its agency sent without occurred_at, stored before the lifecycle wrote its stamp into the
    # payload (the stamp only in the row's column)
    signed = {"event_id": "e-sign", "ticket_id": "R-3", "type": "signed", "actor": "a", "role": "agency",
              "agency": "BH-CGW"}
    ledger.record_events([
        {"event_id": "R-3#1", "ticket_id": "R-3", "type": "routed", "actor": "router", "agency": "BH-CGW",
         "occurred_at": at, "accepted": True, "reason": None, "payload": routed, "status": "dispatched"},
        {"event_id": "e-sign", "ticket_id": "R-3", "type": "signed", "actor": "a", "agency": "BH-CGW",
         "occurred_at": at + timedelta(minutes=20), "accepted": True, "reason": None, "payload": signed,
         "status": "signed"}])
    # When the figures replay the ticket's history (a report, a restage), on any later day
    with ledger.session() as s:
        ((_, events),) = histories_of(s, ["R-3"])
    # Then the sign-for happened when the lifecycle said it did, not at the time of the replay
    assert [e.occurred_at for e in events] == [at, at + timedelta(minutes=20)]
    ledger.dispose()


def test_lost_announcements_are_published_routings_without_their_routed_event(database_url):
    from sqlalchemy import insert

    ledger = Ledger(make_engine(database_url))
    now = datetime.now(UTC)
    for i, (partition, published, recorded) in enumerate([(0, 10, False), (0, 10, True), (1, 10, False),
                                                           (0, 120, False), (0, None, False), (0, 1, False)]):
        tid = f"LA-{i}"
        ledger.record_tickets([(parse_ticket({"id": tid, "text": "路灯不亮", "received_at": "2025-10-01T08:00:00"}),
                                "tickets.received", partition, i)])
        with ledger.session() as s:
            s.execute(insert(t.RoutingDecision).values(
                decision_key=f"{tid}#1", ticket_id=tid, attempt=1, decision="auto", message={"routing_id": f"{tid}#1"},
                published_at=None if published is None else now - timedelta(minutes=published)))
        if recorded:
            ledger.record_event(event_id=f"routed:{tid}#1", ticket_id=tid, type="routed", actor="router", agency=None,
                                occurred_at=now, accepted=True, reason=None, payload={})
    lost = ledger.lost_announcements(now - timedelta(hours=1), now - timedelta(minutes=5), {0})
    # LA-0 only: LA-1 recorded, LA-2 another partition's, LA-3 before the hour, LA-4 unpublished, LA-5 too recent
    assert lost == [{"routing_id": "LA-0#1"}]
    assert ledger.lost_announcements(now - timedelta(hours=3), now, {0, 1}) == [
        {"routing_id": f"LA-{i}#1"} for i in (3, 0, 2, 5)]  # oldest first (LA-0 and LA-2 tie: by key)
    assert ledger.lost_announcements(now - timedelta(hours=1), now, set()) == []
    # those announced again a moment ago are skipped, and the limit counts the others only
    assert ledger.lost_announcements(now - timedelta(hours=3), now, {0, 1}, skip={"LA-3#1", "LA-0#1"}, limit=1) == [
        {"routing_id": "LA-2#1"}]
    assert ledger.lost_announcements(now - timedelta(hours=3), now, {0}, topic="tickets.other") == []
    ledger.dispose()


def test_a_batch_of_decisions_with_none_in_different_columns_is_one_insert(database_url):
    """The ORM leaves a None out of its row, so rows with None in different columns were each other statements: a
    batch sorted by key (a manual decision without an agency or a basis between two automatic ones) took one
    INSERT per two or three rows. Written as NULL, the batch is one statement, and every value lands as given."""
    from sqlalchemy import event, select

    from streams.routing import decision_row

    ledger = Ledger(make_engine(database_url))
    now = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    ledger.record_tickets([(parse_ticket({"id": f"N{i}", "text": "x", "received_at": now.isoformat()}), None, None, None)
                           for i in range(6)])
    rows = []
    for i in range(6):
        auto = i % 2 == 0
        rows.append(decision_row({
            "routing_id": f"N{i}#1", "ticket_id": f"N{i}", "attempt": 1, "decision": "auto" if auto else "manual",
            "matter": "SJ-001" if i != 3 else None, "domain": "商贸旅游", "agency": "BH-SCJG" if auto else None,
            "agency_kind": "market_regulation", "jurisdiction": "BH" if i != 4 else None, "confidence": 0.9,
            "basis": "《某法》第一条" if auto else None, "reason": None if auto else "低置信度", "alternatives": [],
            "model_version": "v1", "decided_by": "router", "routed_at": now.isoformat()}))
    inserts: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO ROUTING_DECISIONS"):
            inserts.append(statement)

    event.listen(ledger.engine, "before_cursor_execute", seen)
    assert ledger.record_decisions(rows) == {f"N{i}#1" for i in range(6)}
    event.remove(ledger.engine, "before_cursor_execute", seen)
    assert len(inserts) == 1, inserts
    with ledger.session() as s:
        stored = {d.decision_key: d for d in s.scalars(select(t.RoutingDecision))}
    assert stored["N1#1"].agency is None and stored["N1#1"].basis is None and stored["N0#1"].agency == "BH-SCJG"
    assert stored["N3#1"].matter is None and stored["N4#1"].jurisdiction is None
    assert all(d.decided_by == "router" and d.alternatives == [] and d.message is not None for d in stored.values())
    ledger.dispose()
