"""The linker table's housekeeping in the supervision stage: which link states expire, measured in ticket
time (the linker's watermark) and never beyond the clock; only keys of partitions this worker owns."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from models.supervision import LinkFact, link
from models.workcalendar import TZ
from streams import supervision

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=TZ)


def state(key: str, newest: datetime, partition: int, rule: str = "repeated_complaint") -> dict[str, Any]:
    new, _ = link(None, LinkFact(rule, "caller", key, f"{key}-t", newest))
    return {**new.to_dict(), "_partition": partition}


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], list[tuple[int, str]]]:
    data: dict[str, Any] = {}
    deleted: list[tuple[int, str]] = []
    # the table's store (a faust memory store once the app runs) and its changelog, seen from outside
    monkeypatch.setattr(type(supervision.links_table), "data", property(lambda self: data))
    monkeypatch.setattr(supervision.links_table, "send_changelog",
                        lambda partition, key, value, **kw: deleted.append((partition, key)))
    monkeypatch.setattr(supervision, "owned_partitions", lambda topic: {0, 1})
    return data, deleted


def test_states_expire_by_ticket_time_only_on_owned_partitions(table, monkeypatch) -> None:
    data, deleted = table
    data.update({"old": state("old", T0 - timedelta(days=31), 0),
                 "recent": state("recent", T0 - timedelta(days=29), 1),
                 "joint-old": state("joint-old", T0 - timedelta(days=15), 0, "joint_enforcement"),
                 "elsewhere": state("elsewhere", T0 - timedelta(days=90), 3)})  # a standby copy: not ours
    monkeypatch.setattr(supervision, "_link_watermark", T0)
    # a sped-up clock is far ahead of the tickets' own times: the watermark decides, not the clock
    assert supervision._expire_links(T0 + timedelta(days=365)) == 2
    assert sorted(deleted) == [(0, "joint-old"), (0, "old")]
    assert set(data) == {"recent", "elsewhere"}


def test_the_clock_caps_a_watermark_from_the_future_and_nothing_expires_before_any_ticket(table,
                                                                                          monkeypatch) -> None:
    data, deleted = table
    data["k"] = state("k", T0 - timedelta(days=10), 0)
    monkeypatch.setattr(supervision, "_link_watermark", None)
    assert supervision._expire_links(T0 + timedelta(days=365)) == 0
    monkeypatch.setattr(supervision, "_link_watermark", T0 + timedelta(days=3650))  # a ticket dated 2035
    assert supervision._expire_links(T0) == 0 and deleted == []
