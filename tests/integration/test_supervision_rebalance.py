"""Supervision across workers and restarts, on the embedded broker with real ledgers.

* Two workers in one consumer group: the tickets of one caller are on partitions of *both* workers, yet
  the third raises exactly one 重复件 alert; two agencies at one place give exactly one 联合执法 suggestion
  (the link facts are repartitioned by linking key on ``supervision.links``). Then the worker holding the
  linking keys' state is killed mid-scenario (kill -9, a rebalance): the survivor rebuilds that state from
  the link facts on the topic and the scenario completes with no missing and no duplicate alert.
* A worker restarted mid-scenario on a sped-up clock continues the simulated time (``clock.json``): the
  remaining checkpoints come when due, none is repeated.
"""

from __future__ import annotations

import json
import re
import signal
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kafka.partitioner.default import murmur2
from sqlalchemy import select

from config.settings import Settings
from models import ledger as t
from models.clock import SimulatedClock, shared_clock
from models.supervision.linking import caller_key, normalise_place, place_id
from streams.app import TICKETS_EVENTS, TICKETS_RECEIVED
from streams.db import Ledger, make_engine
from tests.conftest import wait_until
from tests.integration.flow import event, produce
from tests.integration.test_supervision_flow import topic_alerts

pytestmark = pytest.mark.integration

PARTITIONS = Settings().topic_partitions
ENV = {"HOTLINE_CONFIDENCE_THRESHOLD": "0.02"}
FUMES = "楼下新开的烧烤饭店油烟特别大，排烟管道直接对着居民楼窗户，油烟净化器根本不开，请管一管。"
FOOD = "在这家饭店吃饭后全家上吐下泻，后厨卫生很差，饭菜里吃出苍蝇，怀疑食品变质，要求市场监管部门查处。"
WAGES = "公司拖欠我们三个月工资，老板一直躲着不见，工友们都急了，请帮我们讨薪。"
BURST = "小区停水已经两天了，家里老人孩子没法生活，物业说是供水管道爆裂，一直没人来修，请尽快恢复供水。"


def partition(key: str) -> int:
    """The partition a key goes to (murmur2, like kafka-python, aiokafka and the Java client)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


def ids_on_distinct_partitions(prefix: str, n: int) -> list[str]:
    """n ticket ids whose messages land on n different partitions of tickets.received / tickets.events."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < n:
        tid = f"{prefix}-{i}"
        found.setdefault(partition(tid), tid)
        i += 1
    return list(found.values())


ASSIGNED = re.compile(r"supervision links: assigned partitions \[([\d, ]*)\]")


def links_partitions(log: str) -> set[int]:
    """The partitions of supervision.links a worker owned at its last assignment (the linker logs each one)."""
    found = ASSIGNED.findall(log)
    return {int(p) for p in found[-1].split(",") if p.strip()} if found else set()


def rule_alerts(ledger: Ledger, rule: str) -> list[t.Alert]:
    with ledger.session() as s:
        return list(s.scalars(select(t.Alert).where(t.Alert.rule == rule)))


def repeats_of(ledger: Ledger, ids: list[str]) -> list[t.Alert]:
    return [a for a in rule_alerts(ledger, "repeated_complaint") if a.ticket_id in ids]


def joint_of(ledger: Ledger, ids: list[str]) -> list[t.Alert]:
    return [a for a in rule_alerts(ledger, "joint_enforcement") if set(a.payload["details"]["tickets"]) & set(ids)]


def ticket(tid: str, text: str, address: str, phone: str | None = None, **extra: Any) -> tuple[str, dict]:
    return tid, {"id": tid, "text": text, "address": address, **({"caller_phone": phone} if phone else {}), **extra}


def routed(ledger: Ledger, ids: list[str]) -> bool:
    with ledger.session() as s:
        done = set(s.scalars(select(t.RoutingDecision.ticket_id).where(t.RoutingDecision.ticket_id.in_(ids),
                                                                      t.RoutingDecision.published_at.is_not(None))))
    return done == set(ids)


def phone_on(partitions: set[int], run: str) -> str:
    """A caller number whose linking key lives on one of ``partitions`` of supervision.links."""
    for n in range(10_000):
        phone = f"139{int(run[:4], 16) % 10000:04d}{n:04d}"
        if partition(caller_key(phone)) in partitions:
            return phone
    raise AssertionError("no phone found")  # cannot happen with 4 partitions


def place_on(partitions: set[int], run: str) -> str:
    for n in range(10_000):
        place = f"泰达街道第{n}大街{run}号金色港湾烧烤店"
        if partition(place_id(f"addr:{normalise_place(place)}")) in partitions:
            return place
    raise AssertionError("no place found")


@pytest.mark.postgresql_in_slow
def test_two_workers_link_across_partitions_and_a_rebalance_loses_and_repeats_nothing(
        kafka_bootstrap, database_url, start_worker):
    # Given two workers in one consumer group, each owning part of the partitions
    a, b = start_worker(database_url, **ENV), start_worker(database_url, **ENV)
    a.wait_ready()
    b.wait_ready()

    def split() -> bool:
        mine, theirs = links_partitions(a.log()), links_partitions(b.log())
        return bool(mine) and bool(theirs) and not mine & theirs and mine | theirs == set(range(PARTITIONS))

    assert wait_until(split, timeout=60), f"{a.log()[-2000:]}\n{b.log()[-2000:]}"
    ledger = Ledger(make_engine(database_url))
    run = uuid.uuid4().hex[:6]

    # When one caller calls three times, each ticket on another partition (so both workers handle some)
    p1 = ids_on_distinct_partitions(f"RP1{run}", 3)
    phone1 = f"1380{int(run[:4], 16) % 10000:04d}111"
    produce(kafka_bootstrap, TICKETS_RECEIVED, [ticket(tid, text, f"东丽区华明街道{run}小区{i}号楼", phone1)
                                                for i, (tid, text) in enumerate(zip(p1, [WAGES, FUMES, FOOD],
                                                                                    strict=True))])
    # and one restaurant gets a fumes complaint (生态环境) and a food-safety complaint (市场监管)
    j1 = ids_on_distinct_partitions(f"JT1{run}", 2)
    place1 = f"泰达街道第三大街{run}号海鲜烧烤店"
    produce(kafka_bootstrap, TICKETS_RECEIVED, [ticket(j1[0], FUMES, place1), ticket(j1[1], FOOD, place1)])

    # Then exactly one 重复件 alert (on the third linked ticket) and exactly one 联合执法 suggestion
    assert wait_until(lambda: len(repeats_of(ledger, p1)) >= 1 and len(joint_of(ledger, j1)) >= 1, timeout=60), \
        f"{a.log()[-3000:]}\n{b.log()[-3000:]}"
    (rep,) = repeats_of(ledger, p1)
    assert rep.level == "caller" and rep.payload["details"]["count"] == 3
    assert sorted([rep.ticket_id, *rep.payload["details"]["linked"]]) == sorted(p1)
    (jnt,) = joint_of(ledger, j1)
    assert sorted(jnt.payload["details"]["tickets"]) == sorted(j1) and len(jnt.payload["details"]["agencies"]) == 2

    # When a second caller's first two tickets and a second place's first ticket are handled, their linking
    # keys living on worker b's partitions, and then worker b is killed (kill -9: a rebalance, no goodbye)
    on_b = links_partitions(b.log())
    phone2, place2 = phone_on(on_b, run), place_on(on_b, run)
    p2 = ids_on_distinct_partitions(f"RP2{run}", 3)
    j2 = ids_on_distinct_partitions(f"JT2{run}", 2)
    produce(kafka_bootstrap, TICKETS_RECEIVED, [ticket(p2[0], WAGES, f"东丽区万新街道{run}小区1号楼", phone2),
                                                ticket(p2[1], FUMES, f"东丽区万新街道{run}小区2号楼", phone2),
                                                ticket(j2[0], FUMES, place2)])
    assert wait_until(lambda: routed(ledger, [p2[0], p2[1], j2[0]]), timeout=30), b.log()[-3000:]
    # let b fold the link facts into its table before it dies (the test is about the takeover, and a fact
    # not yet folded is simply folded again by the survivor, from the committed offset)
    time.sleep(6)
    b.stop(signal.SIGKILL)
    produce(kafka_bootstrap, TICKETS_RECEIVED, [ticket(p2[2], FOOD, f"东丽区万新街道{run}小区3号楼", phone2),
                                                ticket(j2[1], FOOD, place2)])

    # Then the survivor takes the partitions over and completes both findings, once each
    assert wait_until(lambda: len(repeats_of(ledger, p2)) >= 1 and len(joint_of(ledger, j2)) >= 1, timeout=90), \
        a.log()[-4000:]
    assert links_partitions(a.log()) == set(range(PARTITIONS))
    (rep2,) = repeats_of(ledger, p2)
    assert rep2.ticket_id == p2[2] and sorted(rep2.payload["details"]["linked"]) == sorted(p2[:2])
    (jnt2,) = joint_of(ledger, j2)
    assert sorted(jnt2.payload["details"]["tickets"]) == sorted(j2)

    # and nothing is repeated: a few more seconds of redeliveries change nothing, in the ledger or on the topic
    assert not wait_until(lambda: len(repeats_of(ledger, p1 + p2)) > 2 or len(joint_of(ledger, j1 + j2)) > 2,
                          timeout=5, interval=1)
    keys = {a.alert_key for a in repeats_of(ledger, p1 + p2) + joint_of(ledger, j1 + j2)}
    on_topic = Counter(m["alert_key"] for m in topic_alerts(kafka_bootstrap, "") if m["alert_key"] in keys)
    assert on_topic == dict.fromkeys(keys, 1), on_topic
    assert a.proc.poll() is None
    ledger.dispose()


# the clock is the subject, not the ledger: SQLite only (the alerts' idempotency runs on both backends in
# test_supervision_flow: SQLite in make test, PostgreSQL in make test-slow)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_restarted_worker_continues_the_simulated_time(kafka_bootstrap, database_url, start_worker,
                                                         tmp_path: Path):
    # Given a worker on a clock 3600x faster than real time (an hour per second), its state in a data dir
    # that the restarted worker will share
    data_dir = tmp_path / "shared-data"
    fast = {**ENV, "HOTLINE_CLOCK_SPEED": "3600", "HOTLINE_DATA_DIR": str(data_dir)}
    first = start_worker(database_url, **fast)
    first.wait_ready()
    state_file = data_dir / "clock.json"
    assert wait_until(state_file.exists, timeout=20), first.log()[-3000:]
    anchor = json.loads(state_file.read_text())["anchor"]
    # the test is one more process of the deployment: it reads the same simulated "now"
    clock = shared_clock(3600, None, state_file)
    assert isinstance(clock, SimulatedClock) and clock.anchor == anchor
    ledger = Ledger(make_engine(database_url))
    tid = f"CLK{uuid.uuid4().hex[:6]}-water"

    # and a water-supply ticket (水电气热: handled within 24 hours on the 24x7 clock) signed at simulated now
    produce(kafka_bootstrap, TICKETS_RECEIVED, [ticket(tid, BURST, "东丽区万新街道某小区", urgency="水电气热",
                                                       request_type="求助")])
    assert wait_until(lambda: routed(ledger, [tid]), timeout=30), first.log()[-3000:]
    with ledger.session() as s:
        agency = s.scalars(select(t.RoutingDecision.agency).where(t.RoutingDecision.ticket_id == tid)).first()
    signed_at = clock.now()
    produce(kafka_bootstrap, TICKETS_EVENTS, [(tid, event(tid, "signed", "agency", agency,
                                                          occurred_at=signed_at.isoformat()))])

    def handle_levels() -> list[str]:
        with ledger.session() as s:
            rows = s.scalars(select(t.Alert).where(t.Alert.ticket_id == tid, t.Alert.rule == "handle_deadline")
                             .order_by(t.Alert.raised_at))
            return [a.level for a in rows]

    # When the first warning (12 simulated hours = 12 real seconds) has come, the worker is restarted
    assert wait_until(lambda: "warn_50" in handle_levels(), timeout=40), first.log()[-3000:]
    assert "overdue" not in handle_levels()
    before_stop = clock.now()
    first.stop()
    second = start_worker(database_url, **fast)
    second.wait_ready()

    # Then it continues the simulated time: the same anchor (neither created nor replaced), and its first
    # tick is past the simulated moment of the stop (a clock restarted at real now would be hours behind)
    assert wait_until(lambda: "overdue" in handle_levels(), timeout=40), second.log()[-3000:]
    assert "clock state" not in second.log()
    assert json.loads(state_file.read_text())["anchor"] == anchor
    def ticks() -> list[datetime]:  # the worker always logs its first tick, with the simulated time
        return [datetime.fromisoformat(m) for m in re.findall(r"supervision tick at (\S+?): ", second.log())]

    # (the first worker may have announced the overdue itself while it shut down: wait for the second's tick)
    assert wait_until(ticks, timeout=40), second.log()[-3000:]
    assert min(ticks()) >= before_stop.replace(second=0, microsecond=0), (ticks(), before_stop)
    # the overdue moment is 24 simulated hours after the signature, announced once, after the warnings
    assert handle_levels()[:4] == ["warn_50", "warn_75", "warn_90", "overdue"]
    with ledger.session() as s:
        overdue = s.scalars(select(t.Alert).where(t.Alert.ticket_id == tid, t.Alert.level == "overdue",
                                                  t.Alert.rule == "handle_deadline")).one()
    assert abs((overdue.deadline - signed_at).total_seconds() - 24 * 3600) < 1
    counts = Counter(m["alert_key"] for m in topic_alerts(kafka_bootstrap, tid))
    assert counts and max(counts.values()) == 1, counts
    ledger.dispose()


def test_links_partitions_reads_the_last_assignment_logged() -> None:
    log = """x
[2026-12-03 10:00:01] supervision links: assigned partitions [0, 1, 2, 3]; holding [], dropped []
[2026-12-03 10:00:09] supervision links: assigned partitions [1, 3]; holding [1, 3], dropped [0, 2]
"""
    assert links_partitions(log) == {1, 3}
    assert links_partitions(log + "supervision links: assigned partitions []; holding [], dropped [1, 3]\n") == set()
    assert links_partitions("nothing") == set()
