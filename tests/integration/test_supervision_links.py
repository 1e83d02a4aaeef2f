"""Supervision rules that link tickets, through a real worker: 重复件 (same caller, third time),
联合执法 (one place, two agencies -> one coordinated visit), 错派 (a dispatch against the 权责清单)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from models import ledger as t
from streams.app import TICKETS_EVENTS, TICKETS_RECEIVED
from streams.db import Ledger, make_engine
from tests.conftest import wait_until
from tests.integration.flow import event, produce

pytestmark = pytest.mark.integration

FAST = {"HOTLINE_CLOCK_SPEED": "60", "HOTLINE_CONFIDENCE_THRESHOLD": "0.02"}
FUMES = "楼下新开的烧烤饭店油烟特别大，排烟管道直接对着居民楼窗户，油烟净化器根本不开，请管一管。"
FOOD = "在这家饭店吃饭后全家上吐下泻，后厨卫生很差，饭菜里吃出苍蝇，怀疑食品变质，要求市场监管部门查处。"
WAGES = "公司拖欠我们三个月工资，老板一直躲着不见，工友们都急了，请帮我们讨薪。"


def rule_alerts(ledger: Ledger, rule: str, ids: list[str]) -> list[t.Alert]:
    with ledger.session() as s:
        return list(s.scalars(select(t.Alert).where(t.Alert.rule == rule, t.Alert.ticket_id.in_(ids))))


def started(start_worker: Any, database_url: str) -> tuple[Any, Ledger, str]:
    """A ready worker, a ledger to watch, and a fresh run id for this test's tickets."""
    worker = start_worker(database_url, **FAST)
    worker.wait_ready()
    return worker, Ledger(make_engine(database_url)), uuid.uuid4().hex[:6]


def caller_phone(prefix: str, run: str) -> str:
    return f"{prefix}{run[:4].encode().hex()[:7]}"


@pytest.mark.postgresql_in_slow
def test_repeat_joint_and_misdispatch_alerts(kafka_bootstrap, database_url, start_worker):
    worker, ledger, run = started(start_worker, database_url)

    # 重复件: the same caller three times within 30 days -> the third raises an alert
    phone = caller_phone("1390", run)
    repeats = [f"REP{run}-{i}" for i in range(3)]
    for i, tid in enumerate(repeats):
        produce(kafka_bootstrap, TICKETS_RECEIVED, [(tid, {
            "id": tid, "text": [WAGES, FUMES, FOOD][i], "address": f"东丽区华明街道{run}小区", "caller_phone": phone})])
    assert wait_until(lambda: len(rule_alerts(ledger, "repeated_complaint", repeats)) >= 1, timeout=60), \
        worker.log()[-3000:]
    # exactly one: the third linked ticket raises it. Which of the three carries it follows processing
    # order, and the three are on different partitions (keyed by ticket id), so that order may differ.
    assert len(rule_alerts(ledger, "repeated_complaint", repeats)) == 1

    # 联合执法: one restaurant, fumes (生态环境) and food safety (市场监管) within 14 days -> one suggestion
    place = f"泰达街道第三大街{run}号金色港湾烧烤店"
    joint = [f"JNT{run}-{i}" for i in range(2)]
    produce(kafka_bootstrap, TICKETS_RECEIVED, [(joint[0], {"id": joint[0], "text": FUMES, "address": place}),
                                                (joint[1], {"id": joint[1], "text": FOOD, "address": place})])

    def joint_alerts() -> list[t.Alert]:
        with ledger.session() as s:
            return [a for a in s.scalars(select(t.Alert).where(t.Alert.rule == "joint_enforcement"))
                    if any(j in str(a.payload) for j in joint)]  # the suggestion lists the tickets it links

    assert wait_until(lambda: len(joint_alerts()) == 1, timeout=60), worker.log()[-3000:]
    assert "进一次门" in joint_alerts()[0].message or "联合" in joint_alerts()[0].message

    # 错派: a dispatcher sends the fumes ticket to the education bureau, which owns no such power there
    produce(kafka_bootstrap, TICKETS_EVENTS, [(joint[0], event(joint[0], "reassigned", "dispatcher",
                                                               target_agency="BH-JTJ"))])
    assert wait_until(lambda: len(rule_alerts(ledger, "misdispatch", [joint[0]])) == 1, timeout=60), \
        worker.log()[-3000:]
    assert worker.proc.poll() is None
    ledger.dispose()


def test_single_facts_of_an_older_worker_link_with_packed_ones(kafka_bootstrap, database_url, start_worker):
    """Given a caller's first link fact as workers before session 12 sent it (one message, keyed by linking
    key, so on Kafka's default partition for that key), the second packed with a broken fact in one message
    on that partition, and two messages on the topic that are not link facts, when the same caller's third
    ticket is routed by this worker, then the three meet on one key and raise one 重复件 alert: the broken
    fact and the strays are logged and skipped, and take nothing else with them."""
    from datetime import UTC, datetime

    from kafka import KafkaProducer

    from config.settings import Settings
    from models.events import LinkObserved
    from models.supervision.linking import caller_key
    from streams.app import SUPERVISION_LINKS, link_partition
    from streams.supervision import links_message

    worker, ledger, run = started(start_worker, database_url)
    phone = caller_phone("1370", run)
    key = caller_key(phone)
    older = [f"OLD{run}-{i}" for i in range(2)]
    fact = [orjson.loads(LinkObserved(rule="repeated_complaint", kind="caller", key=key, ticket_id=tid,
                                      at=datetime.now(UTC)).dumps()) for tid in older]
    produce(kafka_bootstrap, SUPERVISION_LINKS, [
        (key, b"{not json"), (key, {"rule": "repeated_complaint", "kind": "caller", "note": "no facts"}),
        (key, fact[0])])
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    packed = links_message([{**fact[1], "ticket_id": f"BAD{run}", "at": "not a time"}, fact[1]])
    producer.send(SUPERVISION_LINKS, value=packed,
                  partition=link_partition(key, Settings().topic_partitions))
    producer.flush()
    producer.close()
    third = f"NEW{run}"
    produce(kafka_bootstrap, TICKETS_RECEIVED, [(third, {"id": third, "text": WAGES, "caller_phone": phone,
                                                         "address": f"东丽区华明街道{run}小区"})])
    assert wait_until(lambda: len(rule_alerts(ledger, "repeated_complaint", [third])) == 1, timeout=60), \
        worker.log()[-3000:]
    (alert,) = rule_alerts(ledger, "repeated_complaint", [third])
    assert alert.payload["details"]["linked"] == older  # in time order; the broken fact is not among them
    log = worker.log()
    assert log.count("not link facts on supervision.links") == 2  # the strays, with their positions
    assert "linking failed on a fact of supervision.links" in log  # the broken fact, alone
    assert worker.proc.poll() is None
    ledger.dispose()


def test_a_partition_s_states_are_rebuilt_from_its_facts_below_the_offset_handed_over(kafka_bootstrap):
    """Given a partition holding packed facts, a single fact of an older worker, a stray message and a broken
    fact, when its states are rebuilt below an offset, then they equal folding the facts below that offset
    one by one (what the linker did), the facts from that offset on are left to the linker, and what is not
    a fact is counted as skipped."""
    from datetime import UTC, datetime, timedelta

    from kafka import KafkaProducer

    from models.supervision import LinkFact, link
    from streams.broker import BrokerReader
    from streams.runner import ensure_topics
    from streams.supervision import LINK_RULES, links_message, replay_links

    topic = f"test.links.{uuid.uuid4().hex[:6]}"
    ensure_topics(kafka_bootstrap, [topic], 1, 1)
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def fact(key: str, tid: str, minutes: int, rule: str = "repeated_complaint", agency: str | None = None) -> dict:
        return LinkFact(rule, "caller" if rule == "repeated_complaint" else "addr", key, tid,
                        t0 + timedelta(minutes=minutes), agency).to_dict()

    messages = [
        fact("k1", "T1", 0),  # one fact per message, as before session 12
        [fact("k1", "T2", 5), fact("k2", "J1", 6, "joint_enforcement", "A")],
        b"{not json",
        [fact("k1", "T2", 5), {**fact("k2", "J2", 7), "at": "not a time"}, fact("k2", "J3", 8, "joint_enforcement", "B")],
        [fact("k1", "T3", 9)],  # offset 4: the first one handed over to the linker
    ]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for m in messages:
        value = m if isinstance(m, bytes) else orjson.dumps(m) if isinstance(m, dict) else links_message(m)
        producer.send(topic, value=value, partition=0)
    producer.flush()
    producer.close()

    reader = BrokerReader(kafka_bootstrap, "test", name="test-links")
    try:
        replay = reader.executor.submit(replay_links, reader, 0, 4, topic).result(timeout=30)
    finally:
        reader.close()

    expected: dict = {}
    for record in [messages[0], *messages[1], messages[3][0], messages[3][2]]:
        f = LinkFact.from_dict(record)
        expected[f.key], _ = link(expected.get(f.key), f, LINK_RULES)
    assert (replay.messages, replay.facts, replay.skipped) == (4, 5, 2)
    assert replay.states == expected
    assert [tid for _, tid, _ in replay.states["k1"].seen] == ["T1", "T2"]  # T2 twice counts once; T3 is the linker's
    assert {a for _, _, a in replay.states["k2"].seen} == {"A", "B"}


@pytest.mark.postgresql_in_slow
def test_a_restarted_worker_rebuilds_the_linking_states_from_the_topic(kafka_bootstrap, database_url,
                                                                       start_worker):
    """Given a caller's first two calls linked by a worker that then stops, when the caller calls a third
    time and a new worker routes it, then the new worker has rebuilt the caller's state from
    ``supervision.links`` (there is no changelog for it) and raises exactly one 重复件 alert linking all three."""
    import time

    from tests.integration.test_supervision_rebalance import routed

    first, ledger, run = started(start_worker, database_url)
    phone = caller_phone("1360", run)
    calls = [f"RST{run}-{i}" for i in range(3)]
    produce(kafka_bootstrap, TICKETS_RECEIVED, [(tid, {"id": tid, "text": text, "caller_phone": phone,
                                                       "address": f"东丽区华明街道{run}小区"})
                                                for tid, text in zip(calls[:2], [WAGES, FUMES], strict=True)])
    assert wait_until(lambda: routed(ledger, calls[:2]), timeout=60), first.log()[-3000:]
    time.sleep(4)  # the linker folds the two facts and faust commits them (every ~3 s), so they are rebuilt
    first.stop()
    assert "supervision links: assigned partitions" in first.log()

    second = start_worker(database_url, **FAST)
    second.wait_ready()
    produce(kafka_bootstrap, TICKETS_RECEIVED, [(calls[2], {"id": calls[2], "text": FOOD, "caller_phone": phone,
                                                            "address": f"东丽区华明街道{run}小区"})])
    assert wait_until(lambda: len(rule_alerts(ledger, "repeated_complaint", calls)) >= 1, timeout=60), \
        second.log()[-3000:]
    (alert,) = rule_alerts(ledger, "repeated_complaint", calls)
    assert alert.ticket_id == calls[2] and sorted(alert.payload["details"]["linked"]) == calls[:2]
    assert "rebuilt from" in second.log()
    assert second.proc.poll() is None
    ledger.dispose()
