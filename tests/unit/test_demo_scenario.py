"""The demo's scripted week (streams.demo.scenario): shape, storylines, determinism, valid messages.

No broker, no database: the scenario is pure data built from the catalogue.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from config.catalogue import load_catalogue
from models.directory import Catalogue
from models.events import parse_event
from models.lifecycle import RETURN_REASONS
from models.tickets import Rejection, TicketIn, parse_ticket
from models.workcalendar import TZ
from streams.cli.agency import DEFAULT_ROLE, Action, build_event
from streams.demo import texts
from streams.demo.scenario import Act, Scenario, Submit, build_scenario, demo_origin, describe, office_after

ORIGIN = datetime(2026, 11, 9, 8, 30, tzinfo=TZ)
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture(scope="module")
def scenario(catalogue: Catalogue) -> Scenario:
    return build_scenario(catalogue, ORIGIN)


def submits(scenario: Scenario) -> list[Submit]:
    return [s for s in scenario.steps if isinstance(s, Submit)]


def test_about_300_tickets_across_the_three_jurisdictions(scenario: Scenario) -> None:
    per = Counter(t.jurisdiction for t in scenario.tickets.values())
    assert len(scenario.tickets) == len(submits(scenario)) == 300
    assert set(per) == {"BH", "TEDA", "DL"}
    assert per["BH"] > per["DL"] > per["TEDA"] >= 30  # 滨海新区 is the largest, 经开区 the smallest
    assert len({t.matter for t in scenario.tickets.values()}) >= 80  # many matters, not a handful


def test_one_simulated_week_from_monday_0830(scenario: Scenario) -> None:
    assert scenario.origin == ORIGIN and ORIGIN.weekday() == 0
    assert all(ORIGIN < s.at < ORIGIN + timedelta(days=7) for s in scenario.steps)
    days = Counter((s.at - ORIGIN).days for s in submits(scenario))
    assert set(days) == set(range(7)) and days[0] > days[4] > days[6]  # busy Monday, quiet Sunday


def test_each_ticket_story_starts_with_its_submission_and_runs_forward_in_time(scenario: Scenario) -> None:
    for tid, chain in scenario.chains().items():
        assert isinstance(chain[0], Submit) and chain[0].ticket_id == tid
        assert all(isinstance(s, Act) for s in chain[1:])
        assert all(a.at < b.at for a, b in zip(chain, chain[1:], strict=False)), tid
        rounds = [s.round for s in chain[1:] if isinstance(s, Act)]
        assert rounds == sorted(rounds)


def test_tickets_are_valid_and_addresses_resolve_where_written(scenario: Scenario, catalogue: Catalogue) -> None:
    ids = set()
    for step in submits(scenario):
        ticket = parse_ticket(step.ticket)
        assert isinstance(ticket, TicketIn), getattr(ticket, "reason", "")
        assert ticket.received_at == step.at
        ids.add(ticket.id)
        meant = scenario.tickets[ticket.id]
        match = catalogue.resolve_address(ticket.address or "")
        assert match is not None and match.jurisdiction == meant.jurisdiction, ticket.address
        assert meant.street is None or match.street == meant.street
        assert catalogue.place(meant.matter, ticket.address or "", ticket.received_at).ownership.agency.code \
            == meant.owner
    assert len(ids) == 300


def test_every_action_makes_a_valid_lifecycle_event(scenario: Scenario) -> None:
    for step in scenario.steps:
        if not isinstance(step, Act):
            continue
        action = Action(step.action)
        options = dict(step.options)
        if step.only_if_manual:
            assert action is Action.REASSIGN and step.targets
            options["to"] = step.targets[0]
        role = DEFAULT_ROLE[action].value
        event = build_event(step.ticket_id, action, actor="demo", role=role,
                            agency="BH-SCJG" if step.by_agency else None, options=options, now=step.at)
        assert not isinstance(parse_event(event), Rejection), event


def test_storylines_returns_extensions_reopen_close_and_overdue(scenario: Scenario) -> None:
    acts = Counter(s.action for s in scenario.steps if isinstance(s, Act))
    assert acts["return"] >= 12 and acts["extend"] >= 10 and acts["approve-extension"] >= 5
    assert acts["deny-extension"] >= 1 and acts["reopen"] >= 5 and acts["close"] >= 100
    for step in scenario.steps:
        if isinstance(step, Act) and step.action == "return":
            assert step.options["reason_code"] in RETURN_REASONS and step.options["basis"]
    stories = Counter(t.storyline for t in scenario.tickets.values())
    assert stories["unsigned"] >= 5 and stories["stalled"] >= 5  # left to go overdue
    # re-dispatched: after a return the next round is handled by whoever has the ticket then
    chains = scenario.chains()
    bounced = [t for t in scenario.tickets.values() if t.storyline == "bounced"]
    assert bounced and max(s.round for s in chains[bounced[0].id] if isinstance(s, Act)) == 2
    # whenever a ticket may land on the manual queue a dispatcher is ready to assign it
    rescues = Counter((s.ticket_id, s.round) for s in scenario.steps if isinstance(s, Act) and s.only_if_manual)
    assert all(rescues[(tid, 0)] == 1 for tid in scenario.tickets)


def test_repeated_complaints_same_caller_and_same_place_and_matter(scenario: Scenario) -> None:
    by_phone: dict[str, list[datetime]] = defaultdict(list)
    by_place: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for t in scenario.tickets.values():
        by_phone[t.caller_phone].append(t.received_at)
        by_place[(t.address, t.matter)].append(t.received_at)
    callers = [v for v in by_phone.values() if len(v) >= 3]
    places = [v for v in by_place.values() if len(v) >= 3]
    assert len(callers) == 1 and max(callers[0]) - min(callers[0]) < timedelta(days=30)
    assert len(places) == 1 and max(places[0]) - min(places[0]) < timedelta(days=30)


def test_joint_enforcement_case_one_place_two_or_more_agencies_within_14_days(scenario: Scenario) -> None:
    by_place: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for t in scenario.tickets.values():
        by_place[t.address].append((t.received_at, t.owner))
    joint = [v for v in by_place.values() if len({owner for _, owner in v}) >= 2
             and max(at for at, _ in v) - min(at for at, _ in v) <= timedelta(days=14)]
    assert len(joint) == 1 and len({o for _, o in joint[0]}) == 3


def test_urgent_and_utility_tickets_with_their_urgency(scenario: Scenario) -> None:
    urgency = Counter(t.urgency for t in scenario.tickets.values())
    assert urgency["紧急"] == len(texts.URGENT) and urgency["水电气热"] == len(texts.UTILITIES)
    first = min(scenario.tickets.values(), key=lambda t: t.received_at)
    assert first.received_at < ORIGIN + timedelta(hours=1)  # the demo has something to show at once


def test_deterministic_by_seed(catalogue: Catalogue, scenario: Scenario) -> None:
    assert build_scenario(catalogue, ORIGIN).steps == scenario.steps
    other = build_scenario(catalogue, ORIGIN, seed=7)
    assert other.steps != scenario.steps and len(other.tickets) == 300


def test_size_and_first_n(catalogue: Catalogue, scenario: Scenario) -> None:
    small = build_scenario(catalogue, ORIGIN, tickets=60)
    assert 55 <= len(small.tickets) <= 60
    head = scenario.first(25)
    assert len(head.tickets) == len(submits(head)) == 25
    assert max(t.received_at for t in head.tickets.values()) <= min(
        t.received_at for tid, t in scenario.tickets.items() if tid not in head.tickets)
    assert "300 tickets" in describe(scenario)


def test_origin_is_monday_0830_of_a_plain_week(catalogue: Catalogue) -> None:
    assert demo_origin(catalogue.calendar, date(2026, 11, 22)) == ORIGIN  # Sunday: the week before
    assert demo_origin(catalogue.calendar, date(2026, 11, 23)).date() == date(2026, 11, 16)
    # 2025-09-29 has 国庆 in it and 2025-09-22 the 调休 Sunday 09-28: both skipped
    assert demo_origin(catalogue.calendar, date(2025, 10, 9)) == datetime(2025, 9, 15, 8, 30, tzinfo=TZ)


def test_office_after_skips_evenings_and_weekends(catalogue: Catalogue) -> None:
    friday = datetime(2026, 11, 13, 17, 0, tzinfo=TZ)
    assert office_after(catalogue.calendar, friday, 60) == datetime(2026, 11, 16, 9, 0, tzinfo=TZ)
    night = datetime(2026, 11, 10, 23, 0, tzinfo=TZ)
    assert office_after(catalogue.calendar, night, 15) == datetime(2026, 11, 11, 8, 45, tzinfo=TZ)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not present")
def test_nothing_copied_from_shared_data(scenario: Scenario) -> None:
    """No 20-character window of the demo's texts occurs in ../shared/data (see test_corpus for the method)."""
    window, half = 20, 10
    written = [s.ticket["text"] for s in submits(scenario)] + [
        v for name in dir(texts) if name.isupper() for v in _strings(getattr(texts, name))]
    shingles20 = {t[i:i + window] for t in written for i in range(len(t) - window + 1)}
    shingles10 = {t[i:i + half] for t in written for i in range(len(t) - half + 1)}
    csv.field_size_limit(1 << 30)
    hits = []
    for path in sorted(SHARED_DATA.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    for start in range(0, len(cell) - half + 1, half):
                        if cell[start:start + half] in shingles10:
                            lo = max(0, start + half - window)
                            hits += [cell[j:j + window] for j in range(lo, min(start, len(cell) - window) + 1)
                                     if cell[j:j + window] in shingles20]
    assert not hits, sorted(set(hits))[:5]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, tuple | list):
        return [s for v in value for s in _strings(v)]
    return []
