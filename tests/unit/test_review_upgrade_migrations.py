"""A district's ledger upgraded step by step from 0001: rows written by older versions survive every migration
(and a way back), and today's reads work on them, NULLs in the newer columns included. SQLite always,
PostgreSQL at 127.0.0.1:5432 when it answers (as ``tests/conftest.py``'s ``database_url``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from streams.db import Ledger, make_engine, upgrade
from tests.conftest import PG_DB, PG_HOST, PG_PORT, postgres_answers

AT = "2026-11-22 01:00:00"  # UTC, as the ledger has always stored it


@pytest.fixture(params=["sqlite", "postgresql"])
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh PostgreSQL schema (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
        return
    if not postgres_answers():
        pytest.skip(f"PostgreSQL not answering at {PG_HOST}:{PG_PORT}")
    import psycopg

    schema = f"review_upgrade_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user="postgres", autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{PG_DB}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user="postgres", autocommit=True) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _sql(url: str, statement: str, **params: object) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as c:
            c.execute(text(statement), params)
    finally:
        engine.dispose()


def _count(url: str, table: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            return int(c.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def _old_ledger(url: str) -> None:
    """Rows as versions at 0001, 0002, 0003 and 0005 wrote them (each with that revision's columns only)."""
    upgrade(url, "0001")
    _sql(url, "INSERT INTO tickets (id, received_at, text, status, current_agency, attempt, matter, caller_phone,"
              " address, source_topic, source_partition, source_offset, first_seen_at, updated_at) VALUES"
              " ('OLD-1', :at, '楼下饭店油烟扰民', 'signed', 'BH-ZFB', 1, 'ZJ-001', '13812345678', '泰达街道某小区',"
              " 'tickets.received', 0, 0, :at, :at)", at=AT)
    _sql(url, "INSERT INTO routing_decisions (decision_key, ticket_id, attempt, decision, matter, agency,"
              " alternatives, decided_by, decided_at) VALUES ('OLD-1#1', 'OLD-1', 1, 'auto', 'ZJ-001', 'BH-ZFB',"
              " '[]', 'router', :at)", at=AT)
    for event_id, kind, occurred in (("e1", "routed", "2026-11-22T09:00:02+08:00"),
                                     ("e2", "signed", "2026-11-22T09:00:01+08:00")):  # the agency's clock behind
        payload = {"schema_version": 1, "event_id": event_id, "ticket_id": "OLD-1", "type": kind,
                   "actor": "router" if kind == "routed" else "zfb", "role": "system" if kind == "routed" else "agency",
                   "occurred_at": occurred, "agency": "BH-ZFB", **({"attempt": 1} if kind == "routed" else {})}
        _sql(url, "INSERT INTO ticket_events (event_id, ticket_id, type, actor, agency, occurred_at, accepted,"
                  " payload, recorded_at) VALUES (:id, 'OLD-1', :kind, :actor, 'BH-ZFB', :occ, :yes, :payload, :at)",
             id=event_id, kind=kind, actor=payload["actor"], yes=True, payload=json.dumps(payload),
             occ=datetime.fromisoformat(occurred).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"), at=AT)
    upgrade(url, "0002")
    message = {"routing_id": "OLD-1#2", "ticket_id": "OLD-1", "attempt": 2, "matter": "ZJ-001", "agency": "BH-ZWB",
               "alternatives": [{"matter": "ZJ-002", "agency": "BH-ZFB", "agency_kind": "district", "confidence": .2}]}
    _sql(url, "INSERT INTO routing_decisions (decision_key, ticket_id, attempt, decision, matter, agency,"
              " alternatives, decided_by, decided_at, topic, published_at, message) VALUES ('OLD-1#2', 'OLD-1', 2,"
              " 'auto', 'ZJ-001', 'BH-ZWB', '[]', 'router', :at, 'tickets.routed.BH-ZWB', :at, :m)",
         at=AT, m=json.dumps(message))
    _sql(url, "INSERT INTO training_examples (ticket_id, text, label, label_kind, created_by, created_at) VALUES"
              " ('OLD-1', '楼下饭店油烟扰民', 'BH-ZFB', 'agency', 'paidan', :at)", at=AT)
    upgrade(url, "0003")
    from streams.console.accounts import hash_password, token_digest

    _sql(url, "INSERT INTO users (username, role, agency, password_hash, active, created_at) VALUES"
              " ('old', 'agency', 'BH-ZFB', :h, :yes, :at)", h=hash_password("password123"), yes=True, at=AT)
    _sql(url, "INSERT INTO api_tokens (user_id, token_hash, created_at) VALUES"
              " ((SELECT id FROM users WHERE username = 'old'), :th, :at)", th=token_digest(TOKEN), at=AT)
    upgrade(url, "0004")
    _sql(url, "INSERT INTO rejected_inputs (dedup_key, key, source, reason, payload, rejected_at) VALUES"
              " ('topic:tickets.received/0/1', 'k', 'topic', 'not JSON', '{', :at)", at=AT)


TOKEN = "hk_" + "a" * 40


def test_an_old_ledger_upgraded_to_head_keeps_its_rows_and_reads_them(blank_url: str) -> None:
    # Given a ledger written by versions at 0001 .. 0004, then upgraded to head (the SQLite copy of tickets
    # in 0006 deleted every routing decision through ON DELETE CASCADE)
    from config.catalogue import load_catalogue
    from streams.console import accounts, queries
    from streams.corrections import load_corrections
    from streams.reports import load_histories

    _old_ledger(blank_url)
    upgrade(blank_url)
    ledger = Ledger(make_engine(blank_url))
    try:
        # Then the decisions are there, and every read takes the NULLs of the newer columns
        detail = queries.ticket_detail(ledger, "OLD-1")
        assert detail is not None
        assert [d.decision_key for d in detail.decisions] == ["OLD-1#1", "OLD-1#2"]
        assert detail.decisions[0].message is None and detail.decisions[0].published_at is None
        assert [e.batch_position for e in detail.events] == [None, None]
        assert detail.ticket.complex_case is False and detail.ticket.received_at.tzinfo is not None
        shown = queries.ticket_json(detail, reveal_phone=False)
        assert shown["decisions"][1]["published_at"] == "2026-11-22T01:00:00+00:00"
        assert {c.ticket.id for c in queries.agency_inbox(ledger, "BH-ZFB")["handling"]} == {"OLD-1"}
        ((facts, events),) = load_histories(ledger)
        assert facts.complex_case is False and [e.type for e in events] == ["routed", "signed"]
        found = load_corrections(ledger, load_catalogue(), "matter", "BH")
        assert found.labels == ["ZJ-002"]  # the candidate matter of the stored (0002) message
        assert ledger.accounted_offsets("tickets.received", 0, 0, 5) == {0, 1}
        assert accounts.principal_for_token(ledger, TOKEN) is not None
        assert accounts.authenticate(ledger, "old", "password123") is not None
    finally:
        ledger.dispose()


def test_going_back_and_forth_keeps_decisions_and_tokens(blank_url: str) -> None:
    from streams.db import downgrade

    _old_ledger(blank_url)
    upgrade(blank_url)
    for revision in ("0007", "0006", "0005", "0004", "0003"):
        downgrade(blank_url, revision)  # 0006 and 0007 copy tickets and users on SQLite
        assert (_count(blank_url, "routing_decisions"), _count(blank_url, "api_tokens")) == (2, 1), revision
        upgrade(blank_url)
        assert (_count(blank_url, "routing_decisions"), _count(blank_url, "api_tokens")) == (2, 1), revision
    # and foreign keys are enforced again on the engine's connections afterwards
    _sql(blank_url, "DELETE FROM tickets")
    assert _count(blank_url, "routing_decisions") == 0
