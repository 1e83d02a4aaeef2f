"""Repeated complaints (重复件) and joint-enforcement suggestions (联合执法): windows, keys, bounds."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from models.supervision import (
    Alert,
    JointEnforcementLinker,
    LinkFact,
    LinkRules,
    LinkState,
    RepeatLinker,
    TicketFacts,
    link,
    link_facts,
    normalise_phone,
    normalise_place,
)
from models.supervision.linking import caller_key, joint_fact, repeat_facts
from models.workcalendar import TZ

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=TZ)


def t(tid: str, days: float, **kw: Any) -> SimpleNamespace:
    values = {"caller_phone": None, "address": None, "matter": None, "business": None, "agency": None}
    values.update(kw)
    return SimpleNamespace(ticket_id=tid, received_at=T0 + timedelta(days=days), **values)


def test_normalisation() -> None:
    assert normalise_phone("+86 138-0000-1234") == normalise_phone("13800001234") == "13800001234"
    assert normalise_phone("008613800001234") == normalise_phone("１３８００００１２３４") == "13800001234"
    assert normalise_phone("+86 22 2580 1234") == normalise_phone("022-25801234") == "02225801234"
    assert normalise_phone("138****1234") is None and normalise_phone(None) is None
    assert normalise_place("天津市滨海新区 解放路１００号，") == normalise_place("滨海新区解放路100号") == "滨海新区解放路100号"
    assert normalise_place("滨海新区") is None  # an area, not a place


def test_the_third_complaint_of_a_caller_within_30_days_raises_an_alert() -> None:
    linker = RepeatLinker()
    # Given two earlier calls from the same number
    assert linker.observe(t("A", 0, caller_phone="13800001234")) == []
    assert linker.observe(t("B", 10, caller_phone="+86 13800001234")) == []
    # When the same caller calls a third time within 30 days
    (alert,) = linker.observe(t("C", 29, caller_phone="13800001234"))
    # Then one alert, on the third ticket, linking the earlier two
    assert (alert.alert_key, alert.rule, alert.level) == ("C:repeated_complaint:caller", "repeated_complaint",
                                                          "caller")
    assert alert.details["linked"] == ["A", "B"] and alert.details["count"] == 3
    assert "第3次反映" in alert.message_zh and "13800001234" not in alert.message_zh
    # and every further one is a finding of its own
    assert [a.details["count"] for a in linker.observe(t("D", 30, caller_phone="13800001234"))] == [4]


def test_complaints_further_apart_than_the_window_are_not_linked() -> None:
    linker = RepeatLinker()
    linker.observe(t("A", 0, caller_phone="13800001234"))
    linker.observe(t("B", 20, caller_phone="13800001234"))
    assert linker.observe(t("C", 31, caller_phone="13800001234")) == []  # A left the window


def test_redelivered_tickets_are_not_counted_twice_and_masked_numbers_not_linked() -> None:
    linker = RepeatLinker()
    for _ in range(3):
        assert linker.observe(t("A", 0, caller_phone="13800001234")) == []
    assert linker.observe(t("B", 1, caller_phone="13800001234")) == []
    for tid in ("X", "Y", "Z"):
        assert linker.observe(t(tid, 2, caller_phone="138****1234")) == []


def test_numbers_masked_with_other_characters_link_nobody() -> None:
    # 138＊＊＊＊1234 (full-width asterisks), 138××××1234, 138xxxx1234 left the key "1381234": every caller
    # whose number starts 138 and ends 1234 was one caller
    linker = RepeatLinker()
    for tid, phone in (("X", "138＊＊＊＊1234"), ("Y", "138××××1234"), ("Z", "138xxxx1234"), ("W", "138XXXX1234")):
        assert normalise_phone(phone) is None
        assert linker.observe(t(tid, 1, caller_phone=phone)) == []


def test_place_keys_keep_the_separator_between_two_numbers() -> None:
    # 3-2-101 (building 3, unit 2, flat 101) and 32-1-01 were both "32101": one place for the linkers
    assert normalise_place("滨海新区金街小区3-2-101") != normalise_place("滨海新区金街小区32-1-01")
    assert normalise_place("滨海新区万达广场1-101") != normalise_place("滨海新区万达广场11-01")
    # however the separator is written, and nothing kept where a number meets a Chinese character
    assert normalise_place("滨海新区金街小区3－2－101") == normalise_place("滨海新区金街小区 3 / 2 - 101。") \
        == "滨海新区金街小区3-2-101"
    assert normalise_place("滨海新区A座 12-01室") == normalise_place("滨海新区Ａ座12—01 室") == "滨海新区a座12-01室"


def test_same_address_and_matter_link_different_callers() -> None:
    linker = RepeatLinker()
    place = {"address": "滨海新区解放路100号", "matter": "ZJ-003"}
    linker.observe(t("A", 0, caller_phone="13800000001", **place))
    linker.observe(t("B", 3, caller_phone="13800000002", **place))
    assert linker.observe(t("X", 4, caller_phone="13800000003", address="滨海新区解放路100号",
                            matter="ZJ-001")) == []  # same place, other matter
    (alert,) = linker.observe(t("C", 5, caller_phone="13800000004", **place))
    assert alert.level == "place_matter" and alert.details["linked"] == ["A", "B"]


def test_the_linker_is_bounded() -> None:
    linker = RepeatLinker(max_keys=100, max_per_key=4)
    for n in range(1000):
        linker.observe(t(f"T{n}", n / 100, caller_phone=f"1380000{n:04d}"))
    assert len(linker) == 100
    for n in range(50):
        linker.observe(t(f"S{n}", 11 + n / 100, caller_phone="13911112222"))
    state = linker.states.get(caller_key("13911112222"))
    assert state is not None and len(state.seen) == 4
    assert linker.prune(T0 + timedelta(days=60)) == 100 and len(linker) == 0


def test_two_agencies_at_one_place_within_14_days_get_one_joint_enforcement_suggestion() -> None:
    linker = JointEnforcementLinker()
    place = {"address": "滨海新区解放路100号某某烧烤店"}
    # Given a noise complaint sent to the police and a fumes complaint to the environment bureau
    assert linker.observe(t("A", 0, **place), "BH-GA", T0) == []
    (s,) = linker.observe(t("B", 0, **place), "BH-STHJ", T0 + timedelta(days=3))
    assert s.rule == "joint_enforcement" and s.ticket_id is None
    assert s.alert_key.startswith("place-") and s.alert_key.endswith(":joint_enforcement:20250301")
    assert s.details["agencies"] == ["BH-GA", "BH-STHJ"] and s.details["tickets"] == ["A", "B"]
    assert "进一次门、查多项事" in s.message_zh
    # When a third agency and more tickets join within the episode: no further suggestion
    assert linker.observe(t("C", 5, **place), "BH-SCJG", T0 + timedelta(days=5)) == []
    assert linker.observe(t("D", 6, **place), "BH-GA", T0 + timedelta(days=6)) == []
    assert linker.observe(t("B", 0, **place), "BH-STHJ", T0 + timedelta(days=3)) == []  # redelivery


def test_one_agency_or_far_apart_tickets_are_no_joint_enforcement() -> None:
    linker = JointEnforcementLinker()
    place = {"address": "滨海新区解放路100号"}
    assert linker.observe(t("A", 0, **place), "BH-GA", T0) == []
    assert linker.observe(t("B", 1, **place), "BH-GA", T0 + timedelta(days=1)) == []
    assert linker.observe(t("C", 20, **place), "BH-STHJ", T0 + timedelta(days=20)) == []  # A and B expired
    assert linker.observe(t("D", 20, address="滨海新区"), "BH-SCJG", T0 + timedelta(days=20)) == []  # too vague


def test_one_ticket_redispatched_to_another_agency_is_not_joint_enforcement() -> None:
    linker = JointEnforcementLinker()
    place = {"address": "滨海新区解放路100号"}
    assert linker.observe(t("A", 0, **place), "BH-GA", T0) == []
    assert linker.observe(t("A", 0, **place), "BH-STHJ", T0 + timedelta(days=1)) == []  # ping-pong, not joint
    (s,) = linker.observe(t("B", 2, **place), "BH-GA", T0 + timedelta(days=2))
    assert s.details["agencies"] == ["BH-STHJ", "BH-GA"] and s.details["tickets"] == ["A", "B"]


def test_business_name_links_tickets_with_different_addresses() -> None:
    linker = JointEnforcementLinker()
    assert linker.observe(t("A", 0, business="某某餐饮有限公司", address="解放路100号"), "BH-SCJG", T0) == []
    (s,) = linker.observe(t("B", 1, business="某某餐饮有限公司", address="解放路一百号后门"), "BH-STHJ",
                          T0 + timedelta(days=1))
    assert "经营主体" in s.message_zh


# --- the per-key fold the linker agent runs (state in a table, facts from supervision.links) ---------------
def fold(facts: list[LinkFact], table: dict[str, LinkState] | None = None) -> list[Alert]:
    """The agent in miniature: one state per linking key, state stored after the alerts."""
    table = {} if table is None else table
    alerts = []
    for fact in facts:
        state, raised = link(table.get(fact.key), fact)
        alerts += raised
        table[fact.key] = LinkState.from_dict(json.loads(json.dumps(state.to_dict())))  # through the changelog
    return alerts


def caller_facts(n: int, phone: str = "13800001234") -> list[LinkFact]:
    out = []
    for i in range(n):
        (fact,) = repeat_facts(t(f"R{i}", i, caller_phone=phone))
        out.append(fact)
    return out


def test_three_complaints_of_one_caller_raise_one_alert_whatever_order_they_arrive_in() -> None:
    facts = caller_facts(3)
    assert len({f.key for f in facts}) == 1 and facts[0].key.startswith("caller-")
    assert "13800001234" not in facts[0].key
    keys = set()
    for order in itertools.permutations(facts):
        alerts = fold(list(order))
        assert [a.rule for a in alerts] == ["repeated_complaint"]
        assert alerts[0].alert_key == f"{order[-1].ticket_id}:repeated_complaint:caller"  # the third one seen
        keys.add(alerts[0].alert_key)
    assert len(keys) == 3  # which ticket carries it follows arrival order; there is always exactly one


def test_redelivered_facts_raise_nothing_and_a_crash_before_storing_raises_the_same_key() -> None:
    facts = caller_facts(3)
    table: dict[str, LinkState] = {}
    (alert,) = fold(facts, table)
    assert fold(facts, table) == []  # redelivery after a rebalance: every ticket is held already
    # a crash after the alert was sent but before the state was stored: the fact folds into the old state
    before_third: dict[str, LinkState] = {}
    fold(facts[:2], before_third)
    (again,) = fold(facts[2:], before_third)
    assert again.alert_key == alert.alert_key  # deduped by the ledger and consumers


def test_joint_enforcement_gives_one_suggestion_with_one_key_whatever_the_order() -> None:
    place = {"address": "滨海新区解放路100号某某烧烤店"}
    facts = [joint_fact(t("A", 0, **place), "BH-GA", T0), joint_fact(t("B", 1, **place), "BH-STHJ",
                                                                      T0 + timedelta(days=1)),
             joint_fact(t("C", 2, **place), "BH-SCJG", T0 + timedelta(days=2))]
    assert all(f is not None for f in facts)
    for order in itertools.permutations([f for f in facts if f is not None]):
        alerts = fold(list(order))
        assert [a.rule for a in alerts] == ["joint_enforcement"]
        # the episode starts at the earliest ticket present when the second agency joined; a replay of the
        # partition folds in the same order, so it computes the same key
        start = min(order[0].at, order[1].at)
        assert alerts[0].alert_key == f"{order[0].key}:joint_enforcement:{start:%Y%m%d}"


def test_link_facts_of_events() -> None:
    intake = {"caller_phone": "13800001234", "address": "滨海新区解放路100号某某烧烤店", "matter": "ZJ-003"}
    first = TicketFacts("T1", T0, **intake)
    routed = replace(first, status="dispatched", agency="BH-STHJ", attempt=1)
    ev = SimpleNamespace(type="routed", occurred_at=T0 + timedelta(hours=1))
    facts = link_facts(first, routed, ev)
    assert [(f.rule, f.kind) for f in facts] == [("repeated_complaint", "caller"),
                                                ("repeated_complaint", "place_matter"),
                                                ("joint_enforcement", "addr")]
    assert facts[0].at == T0 and facts[2].at == T0 + timedelta(hours=1) and facts[2].agency == "BH-STHJ"
    assert facts[2].place == "滨海新区解放路100号某某烧烤店"
    # a re-route is the same complaint: only the joint-enforcement fact, with the new agency
    rerouted = replace(routed, agency="BH-SCJG", attempt=2)
    assert [(f.rule, f.agency) for f in link_facts(routed, rerouted, ev)] == [("joint_enforcement", "BH-SCJG")]
    assert link_facts(routed, replace(routed, status="signed"), SimpleNamespace(type="signed")) == []
    manual = replace(first, status="manual", attempt=1)
    assert [f.rule for f in link_facts(first, manual, ev)] == ["repeated_complaint", "repeated_complaint"]


def test_a_state_expires_when_its_newest_ticket_leaves_the_window() -> None:
    (fact,) = caller_facts(1)
    state, _ = link(None, fact)
    assert LinkState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    assert not state.expired(T0 + timedelta(days=30), timedelta(days=30))
    assert state.expired(T0 + timedelta(days=30, seconds=1), timedelta(days=30))
    assert LinkRules().window("joint_enforcement") == timedelta(days=14)
    with pytest.raises(ValueError, match="unknown linking rule"):
        link(None, replace(fact, rule="other"))


def test_a_state_keeps_at_most_max_per_key_tickets_in_time_order() -> None:
    rules = LinkRules(max_per_key=4)
    state = None
    for i in (5, 1, 9, 3, 7, 2):
        state, _ = link(state, LinkFact("repeated_complaint", "caller", "caller-x", f"T{i}",
                                        T0 + timedelta(hours=i)), rules)
    assert state is not None and [tid for _, tid, _a in state.seen] == ["T3", "T5", "T7", "T9"]
