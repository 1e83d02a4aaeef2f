"""How link facts travel on ``supervision.links``: packed, one message per partition of their keys, on the
partition Kafka's default partitioner gives each key (where single facts went before session 12); what the
linker accepts back (packed, single from an older worker, anything else skipped); and how it keeps their
states, per partition it holds."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from faust.types import TP

from models.events import LinkObserved
from models.supervision import LinkFact
from models.supervision.linking import caller_key, place_matter_key
from models.workcalendar import TZ
from streams import supervision
from streams.app import link_partition
from tests.conftest import run_async

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=TZ)
KEYS = [caller_key(f"1380000{n:04d}") for n in range(100)] + [place_matter_key(f"泰达街道第{n}大街1号", "HB-005")
                                                              for n in range(100)]


@pytest.mark.parametrize("partitions", [1, 4, 12])
def test_a_key_goes_where_kafkas_default_partitioner_put_it(partitions: int) -> None:
    every = list(range(partitions))
    expected = [DefaultPartitioner()(key.encode(), every, every) for key in KEYS]
    assert [link_partition(key, partitions) for key in KEYS] == expected
    assert len(set(expected)) == partitions  # and the keys spread over all of them


def message(value: bytes, partition: int = 0) -> Any:
    return SimpleNamespace(value=value, message=SimpleNamespace(topic="supervision.links", partition=partition,
                                                                offset=7))


def test_facts_are_packed_one_message_per_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[int, dict[str, Any]]] = []

    async def send(*, partition: int, value: bytes) -> asyncio.Future[None]:
        sent.append((partition, orjson.loads(value)))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    monkeypatch.setattr(supervision.links_topic, "send", send)
    monkeypatch.setattr(supervision, "FACTS_PER_MESSAGE", 30)
    facts = [LinkFact("repeated_complaint", "caller", key, f"T{i}", T0 + timedelta(minutes=i))
             for i, key in enumerate(KEYS)]
    run_async(supervision.publish_links(facts))

    partitions = {link_partition(k) for k in KEYS}
    assert {p for p, _ in sent} == partitions
    assert all(len(m["facts"]) <= 30 for _, m in sent)
    assert len(sent) == sum(-(-sum(link_partition(k) == p for k in KEYS) // 30) for p in partitions)
    for partition, msg in sent:
        assert all(link_partition(f["key"]) == partition for f in msg["facts"])
    # every fact exactly once, in its order within a partition
    assert sorted(f["ticket_id"] for _, m in sent for f in m["facts"]) == sorted(f"T{i}" for i in range(len(KEYS)))
    for p in partitions:
        ids = [f["ticket_id"] for q, m in sent if q == p for f in m["facts"]]
        assert ids == sorted(ids, key=lambda t: int(t[1:]))
    # and each round-trips into the linker's facts
    (_, first), *_ = sent
    assert [LinkFact.from_dict(f) for f in supervision.facts_of(message(orjson.dumps(first)))][0].at.tzinfo


def test_the_linker_reads_packed_and_single_facts_and_skips_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    fact = orjson.loads(LinkObserved(rule="repeated_complaint", kind="caller", key="k", ticket_id="T1",
                                     at=T0).dumps())
    assert supervision.facts_of(message(orjson.dumps({"schema_version": 1, "facts": [fact, fact]}))) == [fact, fact]
    assert supervision.facts_of(message(orjson.dumps(fact))) == [fact]  # a worker before session 12
    for stray in (b"{not json", b"[]", b'"text"', orjson.dumps({"facts": "no"}),
                  orjson.dumps({"rule": "repeated_complaint", "kind": "caller"}), b""):
        assert supervision.facts_of(message(stray, partition=2)) == []
    assert caplog.text.count("not link facts on supervision.links[2]@7") == 6


# --- the linker's states: held per partition, rebuilt after an assignment ----------------------------------
def repeat(key: str, tid: str, minutes: int) -> dict[str, Any]:
    return LinkFact("repeated_complaint", "caller", key, tid, T0 + timedelta(minutes=minutes)).to_dict()


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> dict[int, dict]:
    states: dict[int, dict] = {}
    monkeypatch.setattr(supervision, "link_states", states)
    monkeypatch.setattr(supervision, "_link_watermark", None)
    return states


def test_facts_link_in_the_partitions_held_and_wait_for_their_new_owner_elsewhere(held, monkeypatch) -> None:
    # Given partition 1 held with a caller's two calls, partition 2 not held (taken by a rebalance)
    sent: list[str] = []

    async def emit(alerts: list) -> int:
        sent.extend(a.alert_key for a in alerts)
        return len(alerts)

    monkeypatch.setattr(supervision, "emit", emit)
    run_async(supervision.on_links([(repeat("k", "T1", 0), 1), (repeat("k", "T2", 1), 1)]))
    # When the third call comes, and facts of partition 2
    alerts = run_async(supervision.on_links([(repeat("k", "T3", 2), 1), (repeat("k2", "U1", 0), 2)]))
    # Then nothing, since nothing was held... until partition 1 is rebuilt (held), and then one 重复件
    assert alerts == [] and held == {}
    held[1] = {}
    run_async(supervision.on_links([(repeat("k", "T1", 0), 1), (repeat("k", "T2", 1), 1)]))
    alerts = run_async(supervision.on_links([(repeat("k", "T3", 2), 1), (repeat("k2", "U1", 0), 2)]))
    assert [a.ticket_id for a in alerts] == ["T3"] and sent == ["T3:repeated_complaint:caller"]
    assert set(held) == {1} and [t for _, t, _ in held[1]["k"].seen] == ["T1", "T2", "T3"]


def test_states_move_only_after_their_alerts_went_out(held, monkeypatch) -> None:
    held[0] = {}

    async def failing(alerts: list) -> int:
        raise ConnectionError("broker away")

    async def fine(alerts: list) -> int:
        return len(alerts)

    monkeypatch.setattr(supervision, "emit", fine)
    run_async(supervision.on_links([(repeat("k", "T1", 0), 0), (repeat("k", "T2", 1), 0)]))
    before = dict(held[0])
    monkeypatch.setattr(supervision, "emit", failing)
    with pytest.raises(ConnectionError):
        run_async(supervision.on_links([(repeat("k", "T3", 2), 0)]))
    assert held[0] == before  # so the retry counts T3 as new and raises its alert
    monkeypatch.setattr(supervision, "emit", fine)
    assert [a.ticket_id for a in run_async(supervision.on_links([(repeat("k", "T3", 2), 0)]))] == ["T3"]


def test_an_assignment_drops_the_states_of_partitions_gone_elsewhere(held) -> None:
    held.update({0: {"a": None}, 1: {"b": None}, 3: {}})
    tps = {TP("supervision.links", 1), TP("supervision.links", 2), TP("tickets.events", 0)}
    run_async(supervision._links_assigned(None, assigned=tps))
    assert held == {1: {"b": None}}  # 2 is rebuilt when the linker first meets it; 0 and 3 belong elsewhere


class FlakyReader:
    """A reader of the topic that fails ``failures`` times, then replays ``states``."""

    def __init__(self, failures: int, states: dict) -> None:
        self.failures, self.states, self.calls = failures, states, []

    async def call(self, fn: Any, reader: Any, partition: int, stop: int) -> supervision.Replay:
        self.calls.append((partition, stop))
        if len(self.calls) <= self.failures:
            raise TimeoutError("no progress")
        return supervision.Replay(states=self.states, messages=2, facts=2)


def test_a_partition_is_rebuilt_once_below_the_first_offset_handed_over_and_retried(held, monkeypatch,
                                                                                     caplog) -> None:
    from models.supervision import link

    state, _ = link(None, LinkFact.from_dict(repeat("k", "T1", 0)))
    reader = FlakyReader(2, {"k": state})
    monkeypatch.setattr(supervision, "links_reader", lambda: reader)
    monkeypatch.setattr(supervision, "owned_partitions", lambda topic: {0, 1})
    monkeypatch.setattr(supervision, "REBUILD_BACKOFF", 0.0)
    held[1] = {}
    # partition 1 is held, 3 is not ours: only 0 is read back, below offset 40, after two failed tries
    run_async(supervision._rebuild_links({0: 40, 1: 12, 3: 5}))
    assert reader.calls == [(0, 40)] * 3 and held == {0: {"k": state}, 1: {}}
    assert supervision._link_watermark == T0  # the newest ticket time rebuilt: housekeeping can start from it
    run_async(supervision._rebuild_links({0: 41}))
    assert len(reader.calls) == 3


def test_a_partition_that_cannot_be_read_back_links_on_from_empty_states(held, monkeypatch, caplog) -> None:
    reader = FlakyReader(supervision.REBUILD_ATTEMPTS, {})
    monkeypatch.setattr(supervision, "links_reader", lambda: reader)
    monkeypatch.setattr(supervision, "owned_partitions", lambda topic: {2})
    monkeypatch.setattr(supervision, "REBUILD_BACKOFF", 0.0)
    run_async(supervision._rebuild_links({2: 9}))
    assert len(reader.calls) == supervision.REBUILD_ATTEMPTS and held == {2: {}}
    assert "could not read supervision.links[2] back to offset 9" in caplog.text
