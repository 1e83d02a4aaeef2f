"""The stored figure stages against a replay of every ticket, over random lifecycles (hypothesis, SQLite).

Batches of events of a few tickets go through the real ``Ledger.record_events`` as the lifecycle stage writes
them (accepted with the state they left, refused with accepted=False, redelivered ones again): several events of
one ticket in a batch, returns, reassignments, the manual queue, extensions, resolutions, ratings and
reopenings after closing, clocks running behind, ``hotline db restage`` in between. After every batch, every
period's figures must equal those of replaying every ticket, and a ticket is either live or has stored stages.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from config.catalogue import load_catalogue
from models import ledger as t
from models.directory import Catalogue
from models.events import parse_event
from models.lifecycle import EVENT_TYPES, Outcome, Status, TicketState, apply
from models.supervision.figures import agency_figures, replay_all, settle_all, tally
from models.tickets import TicketIn
from models.workcalendar import TZ
from streams import reports
from streams.console.trends import daily_series, last_days
from streams.db import Ledger, make_engine, upgrade

pytestmark = pytest.mark.integration

START = datetime(2025, 10, 20, 9, 0, tzinfo=TZ)  # a Monday
AGENCIES = ("BH-CGW", "BH-STHJ", "BH-SCJG")
TICKETS = ("P0", "P1", "P2")
STEPS = [timedelta(0), timedelta(seconds=1), timedelta(minutes=30), timedelta(hours=3), timedelta(hours=20),
         timedelta(days=2), timedelta(days=9), -timedelta(hours=2)]  # the last: a sender's clock behind
ROLES = {"routed": "system", "rated": "callcenter", "reopened": "callcenter", "extension_approved": "supervisor",
         "extension_denied": "supervisor", "reassigned": "dispatcher"}
# what each status usually sees next (the rest of the time, any event: most are refused)
LIKELY: dict[Status | None, tuple[str, ...]] = {
    None: ("routed",), Status.RECEIVED: ("routed",), Status.RETURNED: ("routed", "reassigned"),
    Status.MANUAL: ("routed", "reassigned", "closed"), Status.DISPATCHED: ("signed", "returned", "reassigned"),
    Status.SIGNED: ("resolved", "extension_requested", "extension_approved", "extension_denied", "returned",
                    "reassigned"),
    Status.RESOLVED: ("rated", "closed", "reopened"), Status.CLOSED: ("rated", "reopened")}


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue()


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    """A migrated, empty SQLite ledger, copied for each example (migrating takes longer than an example)."""
    with tempfile.TemporaryDirectory(prefix="stages-") as folder:
        path = Path(folder) / "template.sqlite3"
        upgrade(f"sqlite:///{path}")
        yield path


class Lifecycle:
    """The lifecycle stage's bookkeeping for the ledger: states, and rows as ``handle_batch`` writes them."""

    def __init__(self, ledger: Ledger, cat: Catalogue) -> None:
        self.ledger, self.cat = ledger, cat
        self.restage = reports.restager(cat)
        self.states: dict[str, TicketState | None] = {tid: None for tid in TICKETS}
        self.clock = {tid: START for tid in TICKETS}
        self.sent: list[dict[str, Any]] = []

    def payload(self, data: st.DataObject, tid: str) -> dict[str, Any]:
        state = self.states[tid]
        status = state.status if state is not None else None
        kind = data.draw(st.sampled_from(LIKELY[status]) if data.draw(st.integers(0, 5)) else
                         st.sampled_from(EVENT_TYPES), label="type")
        self.clock[tid] += data.draw(st.sampled_from(STEPS), label="step")
        agency = state.agency if state is not None and state.agency and data.draw(st.integers(0, 7)) \
            else data.draw(st.sampled_from(AGENCIES), label="agency")
        role = ROLES.get(kind, "agency")
        extra: dict[str, Any] = {}
        if kind == "routed":
            attempt = (state.attempt if state is not None else 0) + data.draw(st.sampled_from([1, 1, 1, 0]))
            if state is not None and state.pending == "dispatch" and state.pending_agency:
                agency = state.pending_agency
            manual = data.draw(st.integers(0, 5)) == 0
            extra = {"attempt": attempt, "decision": "manual" if manual else "auto"}
            if manual:
                agency = None
        elif kind == "closed" and status == Status.MANUAL:
            role = "dispatcher"
        elif kind == "closed":
            role = "callcenter"
        elif kind == "returned":
            extra = {"reason_code": "NOT_OUR_DUTY", "basis": "《示例》"}
        elif kind == "reassigned":
            extra = {"target_agency": data.draw(st.sampled_from(AGENCIES), label="target")}
            agency = None
        elif kind == "extension_requested":
            extra = {"days": data.draw(st.sampled_from([1, 5])), "explanation": "核查"}
        elif kind == "resolved":
            extra = {"reply": "已处理"}
        elif kind == "rated":
            extra = {"rating": data.draw(st.sampled_from(["satisfied", "unsatisfied"]))}
            agency = None
        elif kind == "reopened":
            extra = {"explanation": "未解决"}
            agency = None
        if role != "agency" and kind != "routed":
            agency = None
        payload = {"schema_version": 1, "event_id": f"{tid}-{len(self.sent)}", "ticket_id": tid, "type": kind,
                   "actor": role, "role": role, "occurred_at": self.clock[tid].isoformat(),
                   **({"agency": agency} if agency else {}), **extra}
        self.sent.append(payload)
        return payload

    def batch(self, payloads: list[dict[str, Any]]) -> None:
        """As ``streams.lifecycle.handle_batch``: apply in order, then one ``record_events`` with the rows."""
        rows = []
        for payload in payloads:
            event = parse_event(payload)
            assert not isinstance(event, reports.Rejection), event
            state = self.states[event.ticket_id]
            outcome = apply(state, event, max_attempts=self.cat.sla.max_dispatch_attempts,
                            known_agencies=self.cat.agencies)
            row = {"event_id": event.event_id, "ticket_id": event.ticket_id, "type": event.type,
                   "actor": event.actor, "agency": event.agency, "occurred_at": event.occurred_at,
                   "payload": payload}
            if not isinstance(outcome, Outcome):
                rows.append({**row, "accepted": False, "reason": outcome.reason, "status": None,
                             "current_agency": None})
                continue
            if not outcome.duplicate:
                self.states[event.ticket_id] = state = outcome.state
            rows.append({**row, "accepted": True, "reason": None, "status": state.status if state else None,
                         "current_agency": state.agency if state else None})
        self.ledger.record_events(rows, restage=self.restage)


def figures_of(ledger: Ledger, cat: Catalogue, now: datetime, since: datetime | None,
               until: datetime | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(stored stages + live replays, every ticket replayed) for one period."""
    stored = reports.figures(ledger, cat, now=now, since=since, until=until)
    replayed = agency_figures(reports.load_histories(ledger), cat, now=now, since=since, until=until)
    return ({c: f.to_dict() for c, f in sorted(stored.items())},
            {c: f.to_dict() for c, f in sorted(replayed.items())})


def check(ledger: Ledger, cat: Catalogue, lc: Lifecycle) -> None:
    with ledger.session() as s:
        live = set(s.scalars(select(t.Ticket.id).where(reports.LIVE)))
        staged = set(s.scalars(select(t.FigureStage.ticket_id)))
    assert not live & staged, f"live tickets with stored stages: {live & staged}"
    latest = max(lc.clock.values())
    for now in (latest + timedelta(hours=1), latest + timedelta(days=40), START + timedelta(days=1)):
        for since, until in ((None, None), (START, None), (START + timedelta(days=1), START + timedelta(days=4)),
                             (START + timedelta(days=3), None), (None, START + timedelta(hours=12))):
            stored, replayed = figures_of(ledger, cat, now, since, until)
            assert stored == replayed, (now, since, until)
    # the console's overview: one load (stored stages summed per agency and day) for its figures and daily series
    now = START + timedelta(days=5, hours=3)
    days = last_days(now.date(), 14)
    since, series_since = START + timedelta(days=1), reports.period_start(now, 14)
    assert series_since is not None
    stages, overdue = reports.load_stages(ledger, cat, now=now, since=min(since, series_since),
                                          split=[*(reports.day_bounds(d)[0] for d in days), reports.day_bounds(days[-1])[1], since])
    every_stage, pending = replay_all(reports.load_histories(ledger), cat)
    late, replayed_overdue = settle_all(pending, now, cat.calendar)
    assert daily_series({}, stages, now=now) == daily_series({}, every_stage + late, now=now)
    assert ({c: f.to_dict() for c, f in tally(stages, overdue, since=since).items()}
            == {c: f.to_dict() for c, f in tally(every_stage + late, replayed_overdue, since=since).items()})


def open_ledger(template: Path, path: Path) -> Ledger:
    """A copy of the migrated template with the three tickets received."""
    shutil.copy(template, path)
    ledger = Ledger(make_engine(f"sqlite:///{path}"))
    ledger.record_tickets([(TicketIn(id=tid, text="小区门口餐饮店油烟扰民，请尽快处理。", received_at=START,
                                     request_type=rt, complex_case=complex_case), None, None, None)
                           for tid, rt, complex_case in zip(TICKETS, ("投诉", "求助", "投诉"), (False, False, True),
                                                            strict=True)])
    return ledger


# Derandomized: the same 30 examples every run (a CI run once timed out at 300 s on a random one). Hunt with random
# ones by hand: max_examples=400 and no derandomize, ~7 minutes (session 23: seed 73584458186333841601683001041955534435
# found the scenario of the next test; after its fix 400 other random examples passed, 4 minutes)
@settings(max_examples=30, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_stored_figures_equal_a_replay_of_every_ticket_whatever_happened(
        data: st.DataObject, cat: Catalogue, template: Path, tmp_path: Path) -> None:
    ledger = open_ledger(template, path := tmp_path / f"ledger-{id(data)}.sqlite3")
    try:
        lc = Lifecycle(ledger, cat)
        for _ in range(data.draw(st.integers(1, 14), label="batches")):
            action = data.draw(st.integers(0, 9), label="action")
            if action == 0 and lc.sent:  # a batch redelivered, in part
                lc.batch(data.draw(st.lists(st.sampled_from(lc.sent), min_size=1, max_size=3), label="again"))
            elif action == 1:  # hotline db restage [--all], between batches
                reports.restage_all(ledger, cat, every=data.draw(st.booleans(), label="every"))
            else:
                tids = data.draw(st.lists(st.sampled_from(TICKETS), min_size=1, max_size=4), label="tickets")
                lc.batch([lc.payload(data, tid) for tid in tids])
            check(ledger, cat, lc)
    finally:
        ledger.dispose()
        path.unlink(missing_ok=True)


def test_two_tickets_overdue_since_one_instant_are_listed_alike_stored_or_replayed(cat: Catalogue, template: Path,
                                                                                   tmp_path: Path) -> None:
    """The random hunt's falsifying example (session 23): P1 stored, P0 live, both unsigned past the same
    deadline; the stored figures listed P1 before P0 and the replay the other way round."""
    ledger = open_ledger(template, tmp_path / "ledger.sqlite3")
    lc = Lifecycle(ledger, cat)

    def event(tid: str, kind: str, **fields: Any) -> dict[str, Any]:
        role = ROLES.get(kind, "agency")
        payload = {"schema_version": 1, "event_id": f"{tid}-{len(lc.sent)}", "ticket_id": tid, "type": kind,
                   "actor": role, "role": role, "occurred_at": START.isoformat(), **fields}
        lc.sent.append(payload)
        return payload

    # Given P0 reassigned before any routing (refused) and P1 routed, in one batch, then P1's stages stored
    lc.batch([event("P0", "reassigned", target_agency="BH-CGW"),
              event("P1", "routed", agency="BH-STHJ", attempt=1, decision="auto")])
    reports.restage_all(ledger, cat)
    # When P0 is routed to the same agency at the same instant (live: just routed)
    lc.batch([event("P0", "routed", agency="BH-STHJ", attempt=1, decision="auto")])
    # Then 40 days later both are open past the same sign-for deadline, listed alike whichever way they were read
    stored, replayed = figures_of(ledger, cat, START + timedelta(days=40), None, None)
    assert [o["ticket_id"] for o in stored["BH-STHJ"]["open_overdue"]] == ["P0", "P1"]
    assert stored == replayed
    ledger.dispose()
