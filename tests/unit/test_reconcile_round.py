"""One reconciler round on a real SQLite ledger with the routing stage's fakes: an identical re-send of a
ticket at another offset is no recovered ticket, and one partition's failed read does not stop the others."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from models import ledger as t
from streams import intake, reconcile, routing
from streams.broker import Redelivery
from streams.db import upgrade
from tests.unit.test_review_routing_intake import Services, Topic, ticket

TOPIC = "tickets.received"


@pytest.fixture
def svc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Services:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    svc, sent = Services(url), []
    for module in (routing, intake, reconcile):
        monkeypatch.setattr(module, "services", lambda: svc)
    monkeypatch.setattr(routing, "routed_topic", lambda code: Topic(f"tickets.routed.{code}", sent))
    monkeypatch.setattr(routing, "manual_topic", Topic("tickets.manual", sent))
    monkeypatch.setattr(routing, "events_topic", Topic("tickets.events", sent))
    monkeypatch.setattr(intake, "invalid_topic", Topic("tickets.invalid", sent))
    svc.settings.reconcile_seconds = 0  # no catch-up in these rounds: the audit only
    return svc


class Reader:
    """The broker as the reconciler reads it: committed offsets and messages by offset."""

    def __init__(self, committed: dict[int, int], log: dict[int, dict[int, bytes]], down: set[int] = frozenset()):
        self._committed, self._log, self._down = committed, log, down

    async def call(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    def committed(self, topic: str) -> dict[int, int]:
        return self._committed

    def read(self, topic: str, partition: int, ranges: list[tuple[int, int]]) -> list[Redelivery]:
        if partition in self._down:
            raise ConnectionError("broker away")
        return [Redelivery(topic, partition, o, b"k", self._log[partition][o]) for a, b in ranges for o in range(a, b)]


def test_a_re_sent_ticket_is_not_counted_as_recovered(svc: Services, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    # Given T1 at offset 0 and an identical copy at offset 1, and T2 at 2 that nobody routed; committed at 3
    monkeypatch.setattr(reconcile, "owned_partitions", lambda topic: {0})
    svc.ledger.advance_audit(TOPIC, 0, 0)
    log = {0: {0: ticket("T1", "饭店油烟"), 1: ticket("T1", "饭店油烟"), 2: ticket("T2", "路灯不亮")}}
    # When a round audits the partition
    with caplog.at_level(logging.INFO, logger="streams.reconcile"):
        recovered = asyncio.run(reconcile.reconcile_once(Reader({0: 3}, log), TOPIC))
    # Then T1 and T2 are routed once each, and the copy is told apart from the two recovered tickets
    assert svc.ledger.count(t.RoutingDecision) == 2
    assert recovered == 2 and "1 offset(s) below the committed 3 repeat tickets handled at other offsets" \
        in caplog.text
    assert "2 offset(s) below the committed 3 had no routed ticket or rejection of their own (0, 2)" in caplog.text
    with svc.ledger.session() as s:
        audit = s.get(t.OffsetAudit, (TOPIC, 0))
        assert (audit.audited_to, audit.recovered) == (3, 2)


def test_a_re_send_alone_raises_no_warning(svc: Services, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    # Given T1 routed from offset 0 and audited, then an identical copy of it at offset 1 (a producer's retry)
    monkeypatch.setattr(reconcile, "owned_partitions", lambda topic: {0})
    svc.ledger.advance_audit(TOPIC, 0, 0)
    log = {0: {0: ticket("T1", "饭店油烟"), 1: ticket("T1", "饭店油烟")}}
    asyncio.run(reconcile.reconcile_once(Reader({0: 1}, log), TOPIC))
    caplog.clear()
    # When the next round audits the copy
    with caplog.at_level(logging.INFO, logger="streams.reconcile"):
        recovered = asyncio.run(reconcile.reconcile_once(Reader({0: 2}, log), TOPIC))
    # Then nothing is recovered and nothing is said at WARNING: a re-send is no alarm (it said "routing them now")
    assert recovered == 0 and svc.ledger.count(t.RoutingDecision) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert "1 offset(s) below the committed 2 repeat tickets handled at other offsets" in caplog.text


def test_a_partition_whose_read_fails_does_not_stop_the_others(svc: Services,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Given two partitions with a ticket nobody routed each, and the broker unreadable for partition 0
    monkeypatch.setattr(reconcile, "owned_partitions", lambda topic: {0, 1})
    for partition in (0, 1):
        svc.ledger.advance_audit(TOPIC, partition, 0)
    log = {0: {0: ticket("A1", "饭店油烟")}, 1: {0: ticket("B1", "路灯不亮")}}
    # When a round runs
    recovered = asyncio.run(reconcile.reconcile_once(Reader({0: 1, 1: 1}, log, down={0}), TOPIC))
    # Then partition 1 is audited and its ticket routed; partition 0 waits for the next round
    assert recovered == 1 and svc.ledger.audit_marks(TOPIC) == {0: 0, 1: 1}


def test_a_round_announces_again_the_routings_whose_announcement_never_reached_the_ledger(
        svc: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    # Given four tickets routed and published from partitions 0 and 1, their announcements sent; the lifecycle
    # recorded A1's only (A2's and B1's never came: lost with a stopped worker, say); A3 was published long ago
    monkeypatch.setattr(reconcile, "owned_partitions", lambda topic: {0})
    monkeypatch.setattr(reconcile, "_reannounced", {})
    svc.settings.reannounce_after_seconds = 300.0
    sent: list[tuple[str, Any]] = []
    values: list[dict[str, Any]] = []

    class Events(Topic):
        async def send(self, key: Any = None, value: Any = None) -> Any:
            values.append(json.loads(value))
            return await super().send(key, value)

    monkeypatch.setattr(routing, "events_topic", Events("tickets.events", sent))
    for partition, offset, tid in ((0, 0, "A1"), (0, 1, "A2"), (0, 2, "A3"), (1, 0, "B1")):
        ev = SimpleNamespace(value=ticket(tid, "饭店油烟"), message=SimpleNamespace(topic=TOPIC, partition=partition,
                                                                                offset=offset))
        asyncio.run(routing.route_batch([ev]))
    svc.ledger.record_event(event_id="routed:A1#1", ticket_id="A1", type="routed", actor="router", agency=None,
                            occurred_at=datetime.now(UTC), accepted=True, reason=None, payload={})
    now = datetime.now(UTC)
    with svc.ledger.session() as s:
        for tid, ago in (("A1", 10), ("A2", 10), ("B1", 10), ("A3", 120)):
            s.execute(update(t.RoutingDecision).where(t.RoutingDecision.ticket_id == tid)
                      .values(published_at=now - timedelta(minutes=ago)))
    sent.clear()
    svc.clock.advance(timedelta(minutes=10))
    # When a round runs (nothing to audit)
    with caplog.at_level(logging.WARNING, logger="streams.reconcile"):
        asyncio.run(reconcile.reconcile_once(Reader({0: 3}, {}), TOPIC))
    # Then A2 is announced again, saying so: A1 was recorded, B1 is another worker's (partition 1), A3 past the hour
    assert sent == [("tickets.events", b"A2")]
    # stamped when it was routed (its sign-for deadline runs from then), not at this round
    (stored,) = svc.ledger.decisions(["A2#1"]).values()
    assert values[-1]["occurred_at"] == stored.message["routed_at"] != svc.clock.now().isoformat()
    assert "1 published routing(s) without a 'routed' event" in caplog.text and "A2#1" in caplog.text
    # and not at the next round: it is given another grace (a lifecycle far behind, or one failing on it)
    sent.clear()
    asyncio.run(reconcile.reconcile_once(Reader({0: 3}, {}), TOPIC))
    assert sent == []
    monkeypatch.setattr(reconcile, "_reannounced", {})  # (as after that grace)
    # and not while within the grace (the lifecycle may only be behind)
    svc.settings.reannounce_after_seconds = 1200.0
    sent.clear()
    asyncio.run(reconcile.reconcile_once(Reader({0: 3}, {}), TOPIC))
    assert sent == []
