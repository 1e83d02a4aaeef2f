"""Repeated complaints (重复件) and joint-enforcement suggestions (联合执法): windows, keys, bounds."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from models.supervision import JointEnforcementLinker, RepeatLinker, normalise_phone, normalise_place
from models.workcalendar import TZ

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=TZ)


def t(tid: str, days: float, **kw: Any) -> SimpleNamespace:
    values = {"caller_phone": None, "address": None, "matter": None, "business": None, "agency": None}
    values.update(kw)
    return SimpleNamespace(ticket_id=tid, received_at=T0 + timedelta(days=days), **values)


def test_normalisation() -> None:
    assert normalise_phone("+86 138-0000-1234") == normalise_phone("13800001234") == "13800001234"
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
    assert len(linker._keys._keys["caller:13911112222"].seen) == 4
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
