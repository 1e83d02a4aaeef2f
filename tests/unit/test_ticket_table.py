"""The ticket table: one value per ticket holding state and facts, and what an upgraded worker reads of the
two tables an earlier version wrote (a bare state in ``ticket-state``, the facts in ``supervision-facts``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from streams import ticket_table

STATE = {"ticket_id": "T1", "status": "dispatched", "agency": "A1", "attempt": 1}
FACTS = {"ticket_id": "T1", "status": "dispatched", "_partition": 2, "_events": ["e1"]}


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, str, Any]]]:
    """The changelog writes, instead of a producer; both tables start empty and are emptied after."""
    sent: list[tuple[int, str, Any]] = []
    monkeypatch.setattr(ticket_table.table, "send_changelog",
                        lambda partition, key, value, **_: sent.append((partition, key, value)))
    for t in (ticket_table.table, ticket_table.legacy_facts):
        t.data.clear()
    yield sent
    for t in (ticket_table.table, ticket_table.legacy_facts):
        t.data.clear()


def test_state_and_facts_are_one_write(writes: list[tuple[int, str, Any]]) -> None:
    ticket_table.write("T1", 2, state=STATE, facts=FACTS)

    assert writes == [(2, "T1", {"schema": 2, "partition": 2, "state": STATE, "facts": FACTS})]
    assert ticket_table.state("T1") == STATE and ticket_table.facts("T1") == FACTS
    assert ticket_table.partition("T1") == 2


def test_a_write_keeps_the_part_it_is_not_given(writes: list[tuple[int, str, Any]]) -> None:
    ticket_table.write("T1", 2, state=STATE, facts=FACTS)
    moved = {**FACTS, "progress": {"sign": "warned"}}

    ticket_table.write("T1", 2, facts=moved)  # the timer's write
    assert ticket_table.state("T1") == STATE and ticket_table.facts("T1") == moved

    ticket_table.write("T1", 2, facts=None)  # as an earlier version forgot a long-closed ticket's facts
    assert ticket_table.state("T1") == STATE and ticket_table.facts("T1") is None
    assert list(ticket_table.all_facts()) == []


def test_an_earlier_versions_values_are_read_and_move_on_the_first_write(
        writes: list[tuple[int, str, Any]]) -> None:
    # Given what an earlier version recovered: the bare state, and the facts in their own table
    ticket_table.table.data["T1"] = STATE
    ticket_table.legacy_facts.data["T1"] = FACTS
    ticket_table.table.data["T2"] = {**STATE, "ticket_id": "T2"}  # a ticket with a state and no facts yet

    # Then both are read as before
    assert ticket_table.state("T1") == STATE and ticket_table.facts("T1") == FACTS
    assert ticket_table.partition("T1") == 2
    assert ticket_table.state("T2")["ticket_id"] == "T2" and ticket_table.facts("T2") is None
    assert list(ticket_table.all_facts()) == [FACTS]

    # When the lifecycle stores a new state, the old facts move with it
    new_state = {**STATE, "status": "signed"}
    ticket_table.write("T1", 2, state=new_state)
    assert writes[-1] == (2, "T1", {"schema": 2, "partition": 2, "state": new_state, "facts": FACTS})

    # And forgetting them later does not bring the earlier table's copy back
    ticket_table.write("T1", 2, facts=None)
    assert ticket_table.facts("T1") is None and ticket_table.state("T1") == new_state


def test_partitions_given_up_are_forgotten_but_not_an_earlier_versions_bare_states(
        writes: list[tuple[int, str, Any]]) -> None:
    ticket_table.write("T1", 2, state=STATE, facts=FACTS)
    ticket_table.write("T3", 0, state={**STATE, "ticket_id": "T3"}, facts=None)
    ticket_table.legacy_facts.data["T4"] = {**FACTS, "ticket_id": "T4", "_partition": 1}
    ticket_table.table.data["T5"] = {**STATE, "ticket_id": "T5"}  # says no partition: faust's store drops it

    assert ticket_table.forget_except({0}) == 2  # T1 on 2, T4's earlier facts on 1

    assert set(ticket_table.table.data) == {"T3", "T5"} and not ticket_table.legacy_facts.data
