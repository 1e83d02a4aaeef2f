"""Guarantees of docs/guarantees.md that had no unit test: a rejection is recorded once per position, an
interrupted publication goes out again as the stored message byte for byte, and the lifecycle stage waits for
its table changelog writes before the batch that caused them is done (and so can be acknowledged)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import update

from models import ledger as t
from models.clock import ManualClock
from models.lifecycle import Status, TicketState
from streams import routing, ticket_table
from tests.conftest import run_async
from tests.unit.test_lifecycle_stage import World, event, to
from tests.unit.test_review_routing_intake import batch, ticket, world  # noqa: F401  (world: the fixture)


# --- rejected input: once per position ------------------------------------------------------------------------
def test_a_redelivered_bad_message_is_recorded_once_at_its_position(world: SimpleNamespace) -> None:  # noqa: F811
    # Given a batch with a message that is no ticket at offset 1, delivered twice (a crash before the commit)
    batch(world, ticket("T1", "饭店油烟"), b"not json")
    batch(world, ticket("T1", "饭店油烟"), b"not json")
    # Then its rejection is one row, at its position
    rows = world.svc.ledger.rejections()
    assert [(r.source, r.source_offset) for r in rows] == [("topic", 1)]
    # and the same bytes at another position are another rejection
    batch(world, b"not json", start=7)
    assert sorted(r.source_offset for r in world.svc.ledger.rejections()) == [1, 7]


# --- routing decisions: an interrupted publication repeats the stored message ---------------------------------
def test_an_interrupted_publication_goes_out_as_the_stored_message_byte_for_byte(
        world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    values: list[bytes] = []

    class Queue:
        def get_topic_name(self) -> str:
            return "tickets.routed.BH-STHJ"

        async def send(self, key: Any = None, value: Any = None) -> asyncio.Future[None]:
            values.append(value)
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    monkeypatch.setattr(routing, "routed_topic", lambda _code: Queue())
    # Given T1 decided, stored and published, then its published mark lost (a crash between the two)
    batch(world, ticket("T1", "饭店油烟"))
    with world.svc.ledger.session() as s:
        s.execute(update(t.RoutingDecision).values(published_at=None))
    # When it is delivered again, later (a new decision would carry another routed_at) and to a classifier
    # that would now decide otherwise
    world.svc.clock = ManualClock(datetime(2025, 9, 27, 9, tzinfo=UTC))
    decided: list[Any] = []

    async def route_many(requests: list[Any]) -> list[Any]:
        decided.extend(requests)
        raise AssertionError("a ticket with a stored decision is not decided again")

    monkeypatch.setattr(world.svc, "route_many", route_many)
    batch(world, ticket("T1", "饭店油烟"))
    # Then the stored message goes out again, identical to the first publication, and is marked published
    assert len(values) == 2 and values[0] == values[1] and decided == []
    assert json.loads(values[1])["routing_id"] == "T1#1"
    assert world.svc.ledger.count(t.RoutingDecision) == 1
    assert world.svc.ledger.decisions(["T1#1"])["T1#1"].published_at is not None


# --- table changelogs: acknowledged before the batch is done ---------------------------------------------------
def test_the_lifecycle_batch_waits_for_its_changelog_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a ticket dispatched to BH-SCJG, and a ticket table whose changelog writes the broker has not
    # acknowledged yet
    lifecycle = World(monkeypatch, to("BH-SCJG"))
    lifecycle.states["T1"] = TicketState("T1", status=Status.DISPATCHED, agency="BH-SCJG", attempt=1).to_dict()
    writes: list[asyncio.Future[None]] = []

    def write(ticket_id: str, partition: int, *, state: Any = ticket_table.KEEP, facts: Any = None) -> Any:
        lifecycle.states[ticket_id] = state
        writes.append(asyncio.get_running_loop().create_future())
        return writes[-1]

    monkeypatch.setattr(ticket_table, "write", write)
    signed = event("sign1", "signed", "agency", "BH-SCJG")
    ev = SimpleNamespace(key=b"T1", value=json.dumps(signed).encode(),
                         message=SimpleNamespace(topic="tickets.events", partition=0, offset=0))

    async def run() -> tuple[bool, int, bool]:
        import streams.lifecycle as stage

        task = asyncio.ensure_future(stage.handle_batch([ev]))
        for _ in range(20):
            await asyncio.sleep(0)
        waiting, rows = not task.done(), len(lifecycle.svc.ledger.events)
        for f in writes:
            f.set_result(None)
        await asyncio.wait_for(task, 5)
        return waiting, rows, task.done()

    # When the batch runs
    waiting, rows_before, done = run_async(run())
    # Then it is not done (its offsets cannot be acknowledged) until the writes are, nor are its ledger rows
    # written before them; once acknowledged, it finishes
    assert len(writes) == 1 and waiting and rows_before == 0 and done
    assert [e["event_id"] for e in lifecycle.svc.ledger.events] == ["sign1"]
    assert lifecycle.state().status == Status.SIGNED


def test_a_ticket_decided_meanwhile_by_the_catch_up_goes_out_with_the_stored_decision(
        world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    values: list[dict[str, Any]] = []

    class Queue:
        def get_topic_name(self) -> str:
            return "tickets.routed.BH-STHJ"

        async def send(self, key: Any = None, value: Any = None) -> asyncio.Future[None]:
            values.append(json.loads(value))
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    monkeypatch.setattr(routing, "routed_topic", lambda _code: Queue())
    ledger = world.svc.ledger
    record = ledger.record_decisions

    def the_catch_up_first(rows: list[dict[str, Any]]) -> set[str]:
        # the reconciler's catch-up stores its decision of the same tickets just before this batch does
        record([{**r, "reason": "catch-up", "message": {**r["message"], "reason": "catch-up"}} for r in rows])
        return record(rows)

    monkeypatch.setattr(ledger, "record_decisions", the_catch_up_first)
    batch(world, ticket("T1", "饭店油烟"))
    # Then the decision stored first is the one published (both copies identical), and only one is stored
    assert [(v["routing_id"], v["reason"]) for v in values] == [("T1#1", "catch-up")]
    assert ledger.count(t.RoutingDecision) == 1
