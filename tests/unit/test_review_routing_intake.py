"""The routing stage's intake (streams.routing.route_batch) on a real SQLite ledger, with a fake classifier and
fake topics: one unreadable message is dead-lettered alone (not with its whole batch), and a different ticket
sent under an id already used is recorded as refused instead of vanishing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from classifier.decision import AUTO, Decision
from models import ledger as t
from models.clock import ManualClock
from models.tickets import Rejection, parse_ticket
from streams import intake, routing
from streams.db import Ledger, make_engine, upgrade
from tests.conftest import run_async

HUGE = b"1" * 5000  # an int json reads but str() refuses (sys.get_int_max_str_digits: 4300)


class Topic:
    def __init__(self, name: str, sent: list[tuple[str, Any]]) -> None:
        self.name, self.sent = name, sent

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, key: Any = None, value: Any = None) -> asyncio.Future[None]:
        self.sent.append((self.name, key))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Services:
    def __init__(self, url: str) -> None:
        self.ledger = Ledger(make_engine(url))
        self.settings = SimpleNamespace(stream_batch_wait_ms=10, max_clock_skew=300.0, reannounce_after_seconds=0.0)
        self.clock = ManualClock(datetime(2025, 9, 26, 2, tzinfo=UTC))

    async def db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    async def route_many(self, requests: list[Any]) -> list[Decision]:
        return [Decision(AUTO, "油烟", 0.9, matter="HB-001", agency="BH-STHJ", agency_name="生态环境局")
                for _ in requests]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    url = f"sqlite:///{tmp_path}/ledger.sqlite3"
    upgrade(url)
    svc, sent = Services(url), []
    for module in (routing, intake):
        monkeypatch.setattr(module, "services", lambda: svc)
    monkeypatch.setattr(routing, "routed_topic", lambda code: Topic(f"tickets.routed.{code}", sent))
    monkeypatch.setattr(routing, "manual_topic", Topic("tickets.manual", sent))
    monkeypatch.setattr(routing, "events_topic", Topic("tickets.events", sent))
    monkeypatch.setattr(intake, "invalid_topic", Topic("tickets.invalid", sent))
    yield SimpleNamespace(svc=svc, sent=sent)
    svc.ledger.dispose()


def batch(world: SimpleNamespace, *values: bytes, start: int = 0) -> None:
    events = [SimpleNamespace(value=v, message=SimpleNamespace(topic="tickets.received", partition=0, offset=n))
              for n, v in enumerate(values, start)]
    run_async(routing.route_batch(events))


def routed(world: SimpleNamespace) -> list[str]:
    return [key for name, key in world.sent if name.startswith("tickets.routed.")]


def refused(world: SimpleNamespace) -> dict[int, tuple[str, str]]:
    return {r.source_offset: (r.key, r.reason) for r in world.svc.ledger.rejections()}


def ticket(tid: str, text: str) -> bytes:
    return f'{{"id": "{tid}", "text": "{text}", "address": "滨海新区中心北路100号"}}'.encode()


# --- one bad message is refused alone -----------------------------------------------------------------------
@pytest.mark.parametrize("raw", [b'{"id": ' + HUGE + b', "text": "x"}',
                                 b'{"id": "A1", "text": "x", "urgency": ' + HUGE + b"}"])
def test_a_number_too_long_to_read_is_a_rejection_not_an_exception(raw: bytes) -> None:
    # json.loads raises a bare ValueError for it (not JSONDecodeError): it escaped parse_ticket
    result = parse_ticket(raw)
    assert isinstance(result, Rejection) and "4300" in result.reason
    assert isinstance(parse_ticket({"id": 10 ** 5000, "text": "x"}), Rejection)  # the same as a dict


def test_a_lone_surrogate_in_a_refused_id_or_payload_can_be_stored() -> None:
    # "\ud800" is valid JSON but has no UTF-8 form: the ledger (and a Kafka key) cannot hold it
    for raw in (b'{"id": "A\\ud800", "text": "x"}', {"id": "A\ud800", "text": "x\udc00"}):
        result = parse_ticket(raw)
        assert isinstance(result, Rejection)
        result.key.encode()
        result.payload.encode()


def test_a_bad_message_does_not_take_its_batch_down(world: SimpleNamespace) -> None:
    # Given a batch with good tickets and two messages that used to raise while being refused
    batch(world, ticket("T1", "饭店油烟"), b'{"id": ' + HUGE + b', "text": "x"}', b'{"id": "B\\ud800", "text": "x"}',
          ticket("T2", "饭店油烟"))
    # Then the good ones are routed and the two bad ones are refused, each at its own offset (before, the whole
    # batch was dead-lettered as an internal error, and the reconciler counted those offsets as handled)
    assert routed(world) == ["T1", "T2"]
    assert sorted(refused(world)) == [1, 2] and refused(world)[2][0] == "B\ufffd"
    assert world.svc.ledger.count(t.Ticket) == 2


# --- duplicate ids -------------------------------------------------------------------------------------------
def test_another_ticket_under_a_used_id_is_refused_and_recorded(world: SimpleNamespace) -> None:
    # Given T1 routed
    batch(world, ticket("T1", "饭店油烟"))
    # When the platform sends another request under the same id, and T1 again as it was
    batch(world, ticket("T1", "拖欠工资三个月"), ticket("T1", "饭店油烟"), start=1)
    # Then the first stays the ticket and is routed once; the different one is refused, saying where the first was
    assert routed(world) == ["T1"]
    assert world.svc.ledger.get_ticket("T1").text == "饭店油烟"
    (key, reason), = [v for o, v in refused(world).items() if o == 1]
    assert key == "T1" and "other content" in reason and "tickets.received[0]@0" in reason
    assert 2 not in refused(world)  # the identical re-send is a redelivery, nothing to refuse
    assert ("tickets.invalid", "T1") in world.sent


def test_two_tickets_under_one_id_in_one_batch(world: SimpleNamespace) -> None:
    batch(world, ticket("T1", "饭店油烟"), ticket("T1", "拖欠工资三个月"), ticket("T1", "饭店油烟"))
    assert routed(world) == ["T1"] and world.svc.ledger.get_ticket("T1").text == "饭店油烟"
    assert sorted(refused(world)) == [1]  # the different one, not the identical one


# --- the same on tickets.events, and characters no ledger can hold inside an accepted message ----------------
def test_an_event_with_a_number_too_long_or_a_lone_surrogate_is_refused_storably() -> None:
    from models.events import parse_event

    for raw in (b'{"event_id": ' + HUGE + b', "ticket_id": "T"}', b'{"event_id": "e\\ud800", "ticket_id": "T"}',
                b'{"event_id": "e1", "ticket_id": "T", "n": ' + HUGE + b"}"):
        result = parse_event(raw)
        assert isinstance(result, Rejection)
        result.key.encode()
        result.payload.encode()


def test_a_stray_surrogate_in_a_citizens_text_is_replaced_and_the_ticket_kept() -> None:
    from models.events import parse_event

    ticket = parse_ticket(b'{"id": "T1", "text": "\\u8def\\u706f\\ud800\\u574f\\u4e86", "title": "a\\u0000b"}')
    assert not isinstance(ticket, Rejection)
    assert (ticket.text, ticket.title) == ("路灯\ufffd坏了", "ab")
    event = parse_event(b'{"event_id": "e1", "ticket_id": "T1", "type": "resolved", "actor": "a", "role": "agency",'
                        b' "agency": "BH-CGW", "reply": "\\u5df2\\udc00\\u529e"}')
    assert not isinstance(event, Rejection) and event.reply == "已\ufffd办"
