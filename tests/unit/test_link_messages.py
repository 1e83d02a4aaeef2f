"""How link facts travel on ``supervision.links``: packed, one message per partition of their keys, on the
partition Kafka's default partitioner gives each key (where single facts went before session 12); and what
the linker accepts back (packed, single from an older worker, anything else skipped)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

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
