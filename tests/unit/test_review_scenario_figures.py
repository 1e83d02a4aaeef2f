"""Review scenarios: the figures agree with the alerts about handlings extended after their deadline."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest

from config.catalogue import build_catalogue
from models.directory import Catalogue
from models.supervision import TicketFacts
from models.supervision.figures import agency_figures, history_of
from models.workcalendar import TZ
from tests.unit import domain_fixtures as fx


@pytest.fixture(scope="module")
def cat(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    built, _ = build_catalogue(fx.build(tmp_path_factory.mktemp("review-figures")))
    assert built is not None
    return built


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def ev(n: int, when: str, kind: str, role: str, agency: str | None = None, **extra: Any) -> SimpleNamespace:
    return SimpleNamespace(event_id=f"E{n}", ticket_id="X1", type=kind, actor="t", role=role, agency=agency,
                           occurred_at=at(when), **extra)


def extended(request_at: str, approve_at: str, resolve_at: str | None) -> tuple[TicketFacts, list[Any]]:
    """咨询 signed Monday 2025-09-01 11:00: handling due Thursday 09-04 11:00 (3 working days)."""
    events = [
        ev(1, "2025-09-01T10:00", "routed", "system", "BH-CGW", attempt=1, decision="auto"),
        ev(2, "2025-09-01T11:00", "signed", "agency", "BH-CGW"),
        ev(3, request_at, "extension_requested", "agency", "BH-CGW", days=2, explanation="需要现场复核"),
        ev(4, approve_at, "extension_approved", "supervisor"),
    ]
    if resolve_at:
        events.append(ev(5, resolve_at, "resolved", "agency", "BH-CGW", reply="已办理"))
    return history_of(TicketFacts("X1", at("2025-09-01T09:00"), request_type="咨询"), events)


def test_an_extension_approved_in_time_moves_the_deadline(cat: Catalogue) -> None:
    figs = agency_figures([extended("2025-09-03T09:00", "2025-09-03T10:00", "2025-09-05T10:00")], cat,
                          now=at("2025-09-10T12:00"))
    cgw = figs["BH-CGW"]
    assert (cgw.resolved_on_time, cgw.resolved_late, cgw.overdue) == (1, 0, 0)


def test_an_extension_approved_after_the_deadline_does_not_make_the_handling_on_time(cat: Catalogue) -> None:
    # the handling was overdue at 09-04 11:00 (supervision raised handle_deadline/overdue then); an extension
    # asked for and approved afterwards must not turn it into an on-time resolution in the report
    figs = agency_figures([extended("2025-09-04T15:00", "2025-09-04T16:00", "2025-09-05T10:00")], cat,
                          now=at("2025-09-10T12:00"))
    cgw = figs["BH-CGW"]
    assert (cgw.resolved_on_time, cgw.resolved_late) == (0, 1)
    assert cgw.overdue == 1


def test_an_open_handling_extended_after_its_deadline_stays_counted_late(cat: Catalogue) -> None:
    figs = agency_figures([extended("2025-09-04T15:00", "2025-09-04T16:00", None)], cat,
                          now=at("2025-09-05T10:00"))  # before the extended due (09-08 11:00)
    cgw = figs["BH-CGW"]
    assert (cgw.resolved_on_time, cgw.resolved_late, cgw.overdue) == (0, 1, 1)
    assert cgw.open_overdue == []  # not past the deadline now in force


def test_an_extension_asked_in_time_and_approved_late_still_moves_the_deadline(cat: Catalogue) -> None:
    # the agency asked a day before its deadline; the supervisor decided after it: the agency is not late
    figs = agency_figures([extended("2025-09-03T09:00", "2025-09-04T15:00", "2025-09-05T10:00")], cat,
                          now=at("2025-09-10T12:00"))
    cgw = figs["BH-CGW"]
    assert (cgw.resolved_on_time, cgw.resolved_late, cgw.overdue) == (1, 0, 0)
