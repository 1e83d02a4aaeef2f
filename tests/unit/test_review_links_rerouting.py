"""重复件 by place + matter follows a ticket's latest matter: a re-route with another matter (a dispatcher's
reassignment or designation) moves the ticket from the old matter's key to the new one, once, whatever is
redelivered, and the linker's rebuild from the topic ends where live linking did."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from models.supervision import Alert, LinkFact, LinkState, TicketFacts, link, link_facts
from models.supervision.linking import normalise_place, place_matter_key
from models.workcalendar import TZ
from streams import supervision
from tests.conftest import run_async

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=TZ)
ADDRESS = "滨海新区解放路100号某某烧烤店"
PLACE = normalise_place(ADDRESS)
OLD, NEW = "ZJ-003", "SC-001"
OLD_KEY, NEW_KEY = place_matter_key(PLACE, OLD), place_matter_key(PLACE, NEW)
ROUTED = SimpleNamespace(type="routed", occurred_at=T0 + timedelta(hours=1))


def routed(tid: str, days: float, matter: str) -> tuple[TicketFacts, TicketFacts]:
    """(facts before, facts after) the first routing of a ticket about ADDRESS."""
    before = TicketFacts(tid, T0 + timedelta(days=days), address=ADDRESS, matter=matter)
    return before, replace(before, status="dispatched", agency="BH-STHJ", attempt=1)


def rerouted(facts: TicketFacts, matter: str) -> TicketFacts:
    return replace(facts, matter=matter, agency="BH-SCJG", attempt=facts.attempt + 1)


def place_facts(before: TicketFacts, after: TicketFacts) -> list[LinkFact]:
    return [f for f in link_facts(before, after, ROUTED) if f.kind == "place_matter"]


def fold(facts: list[LinkFact], table: dict[str, LinkState]) -> list[Alert]:
    alerts: list[Alert] = []
    for fact in facts:
        table[fact.key], raised = link(table.get(fact.key), LinkFact.from_dict(fact.to_dict()))
        alerts += raised
    return alerts


def members(table: dict[str, LinkState], key: str) -> list[str]:
    return [t for _, t, _ in table[key].seen] if key in table else []


def test_a_reroute_with_another_matter_leaves_the_old_key_and_joins_the_new_one() -> None:
    first, dispatched = routed("T", 0, OLD)
    moved = rerouted(dispatched, NEW)
    facts = place_facts(dispatched, moved)
    assert [(f.key, f.left) for f in facts] == [(OLD_KEY, True), (NEW_KEY, False)]
    assert place_facts(dispatched, rerouted(dispatched, OLD)) == []  # same matter: the same complaint, as before
    table: dict[str, LinkState] = {}
    fold(place_facts(first, dispatched) + facts, table)
    assert members(table, OLD_KEY) == [] and members(table, NEW_KEY) == ["T"]


def test_the_new_matters_tickets_link_with_the_moved_one_and_the_old_ones_no_longer_do() -> None:
    table: dict[str, LinkState] = {}
    # Given T first guessed as OLD, with one more OLD and two NEW complaints at the same place
    t_first, t_dispatched = routed("T", 0, OLD)
    fold(place_facts(t_first, t_dispatched), table)
    for tid, days, matter in (("A", 1, OLD), ("N1", 2, NEW), ("N2", 3, NEW)):
        assert fold(place_facts(*routed(tid, days, matter)), table) == []
    # When a dispatcher reassigns T to NEW: it is the third NEW complaint there
    (alert,) = fold(place_facts(t_dispatched, rerouted(t_dispatched, NEW)), table)
    assert alert.alert_key == "T:repeated_complaint:place_matter" and alert.details["linked"] == ["N1", "N2"]
    # Then a later OLD complaint is the second one there, not the third
    assert fold(place_facts(*routed("B", 4, OLD)), table) == []
    assert members(table, OLD_KEY) == ["A", "B"] and members(table, NEW_KEY) == ["T", "N1", "N2"]


def test_redelivered_facts_of_a_moved_ticket_count_once_and_raise_nothing_again() -> None:
    table: dict[str, LinkState] = {}
    t_first, t_dispatched = routed("T", 0, OLD)
    joined = place_facts(t_first, t_dispatched)
    fold(joined, table)
    fold(place_facts(*routed("A", 1, OLD)), table)
    assert len(fold(place_facts(*routed("B", 2, OLD)), table)) == 1  # B is the third OLD complaint
    moved = place_facts(t_dispatched, rerouted(t_dispatched, NEW))
    fold(moved, table)
    settled = dict(table)
    # a crash re-sends the move, the linker reads the partition again from an older offset: nothing changes,
    # and T's first routing, folded again after it left, neither brings it back nor raises its own 重复件
    assert fold(moved + joined + moved, table) == [] and table == settled
    assert members(table, OLD_KEY) == ["A", "B"] and members(table, NEW_KEY) == ["T"]


def test_a_ticket_moved_back_rejoins_its_first_key_without_a_second_alert() -> None:
    table: dict[str, LinkState] = {}
    for tid, days in (("A", 0), ("B", 1)):
        fold(place_facts(*routed(tid, days, OLD)), table)
    t_first, t_dispatched = routed("T", 2, OLD)
    (first_alert,) = fold(place_facts(t_first, t_dispatched), table)
    there = rerouted(t_dispatched, NEW)
    back = rerouted(there, OLD)
    fold(place_facts(t_dispatched, there), table)
    alerts = fold(place_facts(there, back), table)
    assert members(table, OLD_KEY) == ["A", "B", "T"] and members(table, NEW_KEY) == []
    # the ledger and consumers dedupe on the key: it is the one T raised on its first routing
    assert [a.alert_key for a in alerts] == [first_alert.alert_key]
    assert fold(place_facts(t_dispatched, there), table) == []  # the older move, redelivered: ignored
    assert members(table, OLD_KEY) == ["A", "B", "T"] and members(table, NEW_KEY) == []


def test_a_move_is_told_apart_on_the_topic_and_older_facts_read_as_first_routings() -> None:
    first, dispatched = routed("T", 0, OLD)
    facts = link_facts(first, dispatched, ROUTED)
    assert all((f.to_dict()["attempt"], f.to_dict()["left"]) == (0, False) for f in facts)
    for fact in facts:  # a fact from a worker before the move fields: the same first-routing fact
        old = {k: v for k, v in fact.to_dict().items() if k not in ("attempt", "left")}
        assert LinkFact.from_dict(old) == fact
    for fact in place_facts(dispatched, rerouted(dispatched, NEW)):
        assert LinkFact.from_dict(orjson.loads(orjson.dumps(fact.to_dict()))) == fact


# --- live linking and the rebuild from the topic agree ------------------------------------------------------
class LogReader:
    """The partition's messages, as the broker keeps them."""

    def __init__(self, messages: list[bytes]) -> None:
        self.messages = messages

    def scan(self, topic: str, partition: int, stop: int, fn: Any) -> int:
        for offset, value in enumerate(self.messages[:stop]):
            fn(offset, value)
        return min(stop, len(self.messages))


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> dict[int, dict[str, LinkState]]:
    states: dict[int, dict[str, LinkState]] = {0: {}}
    monkeypatch.setattr(supervision, "link_states", states)
    monkeypatch.setattr(supervision, "_link_watermark", None)

    async def emit(alerts: list[Alert]) -> int:
        return len(alerts)

    monkeypatch.setattr(supervision, "emit", emit)
    return states


def test_a_rebuild_from_the_topic_gives_the_states_live_linking_left(held) -> None:
    t_first, t_dispatched = routed("T", 0, OLD)
    there = rerouted(t_dispatched, NEW)
    batches = [place_facts(t_first, t_dispatched), place_facts(*routed("A", 1, OLD)),
               place_facts(t_dispatched, there), place_facts(*routed("N", 2, NEW)),
               place_facts(t_dispatched, there),  # re-sent after a crash
               place_facts(there, back := rerouted(there, OLD)), place_facts(back, rerouted(back, NEW))]
    log = [supervision.links_message([{"schema_version": 1, **f.to_dict()} for f in batch]) for batch in batches]
    for value in log:
        run_async(supervision.on_links([(fact, 0) for fact in supervision.facts_in(value) or ()]))
    replay = supervision.replay_links(LogReader(log), 0, len(log))  # type: ignore[arg-type]
    assert replay.skipped == 0 and replay.states == held[0]
    assert members(held[0], OLD_KEY) == ["A"] and members(held[0], NEW_KEY) == ["T", "N"]
