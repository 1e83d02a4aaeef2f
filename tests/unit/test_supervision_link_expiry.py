"""The linker's housekeeping in the supervision stage: which link states expire, measured in ticket time (the
linker's watermark) and never beyond the clock."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from models.supervision import LinkFact, LinkState, link
from models.workcalendar import TZ
from streams import supervision

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=TZ)


def state(key: str, newest: datetime, rule: str = "repeated_complaint") -> LinkState:
    new, _ = link(None, LinkFact(rule, "caller", key, f"{key}-t", newest, agency="A"))
    return new


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> dict[int, dict[str, LinkState]]:
    states: dict[int, dict[str, LinkState]] = {}
    monkeypatch.setattr(supervision, "link_states", states)
    return states


def test_states_expire_by_ticket_time_in_every_partition_held(held, monkeypatch) -> None:
    held[0] = {"old": state("old", T0 - timedelta(days=31)),
               "joint-old": state("joint-old", T0 - timedelta(days=15), "joint_enforcement")}
    held[1] = {"recent": state("recent", T0 - timedelta(days=29)),
               "joint-recent": state("joint-recent", T0 - timedelta(days=13), "joint_enforcement")}
    monkeypatch.setattr(supervision, "_link_watermark", T0)
    # a sped-up clock is far ahead of the tickets' own times: the watermark decides, not the clock
    assert supervision._expire_links(T0 + timedelta(days=365)) == 2
    assert held == {0: {}, 1: {"recent": state("recent", T0 - timedelta(days=29)),
                               "joint-recent": state("joint-recent", T0 - timedelta(days=13), "joint_enforcement")}}


def test_the_clock_caps_a_watermark_from_the_future_and_nothing_expires_before_any_ticket(held,
                                                                                          monkeypatch) -> None:
    held[0] = {"k": state("k", T0 - timedelta(days=10))}
    monkeypatch.setattr(supervision, "_link_watermark", None)
    assert supervision._expire_links(T0 + timedelta(days=365)) == 0
    monkeypatch.setattr(supervision, "_link_watermark", T0 + timedelta(days=3650))  # a ticket dated 2035
    assert supervision._expire_links(T0) == 0 and set(held[0]) == {"k"}
