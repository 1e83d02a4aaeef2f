"""Long-running stability: the ticket table holds the tickets of a bounded period, not every ticket ever handled.

Supervision's daily housekeeping used to forget a long-closed ticket's facts and keep its lifecycle state for
good, so a worker's memory, its changelog (one compacted record per ticket on Kafka, read in full by every
worker taking a partition over) and the stuck-dispatch sweep's scan of every state grew with each ticket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from models.supervision.index import DeadlineIndex
from models.workcalendar import TZ
from streams import supervision, ticket_table

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=TZ)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int, str, Any, dict[str, Any]]]]:
    """Changelog writes of both tables (table, partition, key, value, options) instead of a producer."""
    out: list[tuple[str, int, str, Any, dict[str, Any]]] = []
    for t in (ticket_table.table, ticket_table.legacy_facts):
        monkeypatch.setattr(
            t, "send_changelog", lambda p, k, v, _n=t.name, **kw: out.append((_n, p, k, v, kw))
        )
        t.data.clear()

    async def written(_futures: Any) -> None:
        return None

    monkeypatch.setattr(supervision, "changelog_written", written)
    monkeypatch.setattr(supervision, "_last_prune", None)
    monkeypatch.setattr(supervision, "_link_watermark", None)
    monkeypatch.setattr(supervision, "_sup", SimpleNamespace(index=DeadlineIndex()))
    yield out
    for t in (ticket_table.table, ticket_table.legacy_facts):
        t.data.clear()


def _ticket(tid: str, partition: int, status: str, closed_at: datetime | None) -> None:
    state = {"ticket_id": tid, "status": status, "closed_at": closed_at.isoformat() if closed_at else None}
    ticket_table.write(tid, partition, state=state, facts={**state, "_events": [f"{tid}-e1"]})


def test_a_ticket_closed_longer_than_the_repeat_window_is_dropped_whole(sent: list[Any]) -> None:
    window = supervision.LINK_RULES.repeat_window
    _ticket("OLD", 1, "closed", NOW - window - timedelta(days=1))
    _ticket("RECENT", 2, "closed", NOW - window + timedelta(days=1))  # a rating or reopening may still come
    _ticket("OPEN", 3, "signed", None)
    # what an earlier version left: a long-closed ticket's state with its facts already forgotten
    ticket_table.write(
        "FORGOTTEN",
        0,
        state={"ticket_id": "FORGOTTEN", "status": "closed", "closed_at": (NOW - window * 2).isoformat()},
        facts=None,
    )
    # and a bare state of an even earlier one, with its facts in their own table
    ticket_table.table.data["BARE"] = {
        "ticket_id": "BARE",
        "status": "closed",
        "closed_at": (NOW - window * 3).isoformat(),
    }
    ticket_table.table.data._key_partition["BARE"] = 2
    ticket_table.legacy_facts.data["BARE"] = {"ticket_id": "BARE", "status": "closed", "_partition": 2}
    sent.clear()

    asyncio.run(supervision._maybe_prune(NOW))

    assert set(ticket_table.table.data) == {"RECENT", "OPEN"}
    assert not ticket_table.legacy_facts.data and "BARE" not in ticket_table.table.data._key_partition
    # tombstones (a null value, not the JSON "null"), so that a recovery and Kafka's compaction drop the keys
    tombstones = {
        (name, p, k) for name, p, k, v, kw in sent if v is None and kw.get("value_serializer") == "raw"
    }
    assert tombstones == {
        ("ticket-state", 1, "OLD"),
        ("ticket-state", 0, "FORGOTTEN"),
        ("ticket-state", 2, "BARE"),
        ("supervision-facts", 2, "BARE"),
    }
    assert len(sent) == len(tombstones)


def test_the_table_stays_bounded_however_many_tickets_went_through(sent: list[Any]) -> None:
    # Four tickets a day for 120 days, each closed three days after it came, housekeeping once a day:
    # what the worker holds is the last repeat window's tickets, not the 480 handled.
    start = NOW - timedelta(days=120)
    for day in range(120):
        today = start + timedelta(days=day)
        for n in range(4):
            tid = f"T{day:03d}-{n}"
            _ticket(tid, n, "received", None)
            _ticket(tid, n, "closed", today - timedelta(days=3))
        asyncio.run(supervision._maybe_prune(today))

    window_days = supervision.LINK_RULES.repeat_window.days
    assert len(ticket_table.table.data) <= 4 * (window_days + 4)
    assert len(ticket_table.pending_states()) == 0 and len(list(ticket_table.all_facts())) <= 4 * (
        window_days + 4
    )
