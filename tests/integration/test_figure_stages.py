"""The supervisors' figures kept as stored stages: the same figures as replaying every ticket, at any moment, on
SQLite and PostgreSQL, whatever moves a ticket between the stored stages and the live set.

Tickets are played event by event through ``Ledger.record_events`` as the lifecycle stage records them (each
event its own batch, with the state it left), so the stages are stored by the write path itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from config.catalogue import load_catalogue
from config.settings import Settings
from models import ledger as t
from models.directory import Catalogue
from models.events import parse_event
from models.lifecycle import Outcome, TicketState, apply
from models.supervision.figures import agency_figures
from models.tickets import TicketIn
from models.workcalendar import TZ
from streams import reports
from streams.db import Ledger, lock_tickets, make_engine

pytestmark = pytest.mark.integration

NOW = datetime(2025, 11, 28, 16, 0, tzinfo=TZ)  # a Friday
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue()


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    led = Ledger(make_engine(database_url))
    yield led
    led.dispose()


class Player:
    """Records a ticket's events one lifecycle batch at a time, each with the status it left."""

    def __init__(self, ledger: Ledger, cat: Catalogue, *, restage: bool = True) -> None:
        self.ledger, self.cat = ledger, cat
        self.restage = reports.restager(cat) if restage else None
        self.states: dict[str, TicketState | None] = {}
        self.n = 0

    def ticket(self, tid: str, received: datetime, request_type: str = "投诉") -> None:
        self.ledger.record_tickets([(TicketIn(id=tid, text="小区门口餐饮店油烟扰民，请尽快处理。", received_at=received,
                                              request_type=request_type), None, None, None)])
        self.states[tid] = None

    def event(self, tid: str, kind: str, at: datetime, agency: str | None = None, **extra: Any) -> None:
        self.n += 1
        role = {"routed": "system", "rated": "callcenter", "closed": "callcenter", "reopened": "callcenter",
                "extension_approved": "supervisor", "reassigned": "dispatcher"}.get(kind, "agency")
        payload = {"schema_version": 1, "event_id": f"{tid}-{self.n}", "ticket_id": tid, "type": kind,
                   "actor": role, "role": role, "occurred_at": at.isoformat(), **({"agency": agency} if agency else {}),
                   **extra}
        outcome = apply(self.states[tid], parse_event(payload), max_attempts=self.cat.sla.max_dispatch_attempts,
                        known_agencies=self.cat.agencies)
        assert isinstance(outcome, Outcome), outcome
        self.states[tid] = state = outcome.state
        self.ledger.record_events([{"event_id": payload["event_id"], "ticket_id": tid, "type": kind, "actor": role,
                                    "agency": agency, "occurred_at": at, "accepted": True, "reason": None,
                                    "payload": payload, "status": state.status.value,
                                    "current_agency": state.agency}], restage=self.restage)

    def routed(self, tid: str, at: datetime, agency: str, attempt: int = 1) -> None:
        self.event(tid, "routed", at, agency, attempt=attempt, decision="auto")


def district(p: Player) -> None:
    """Tickets of every shape a month brings: on time, late, returned and re-routed, extended, reopened, closed
    after a rating, and still open (signed, unsigned past the deadline)."""
    start = NOW - 40 * DAY
    for i in range(12):
        at = start + i * 3 * DAY + timedelta(hours=i % 5)
        tid = f"F{i:02d}"
        p.ticket(tid, at)
        p.routed(tid, at + timedelta(minutes=1), "BH-STHJ" if i % 2 else "BH-CGW")
        agency = "BH-STHJ" if i % 2 else "BH-CGW"
        if i % 4 == 3:  # 退单, then the router tries another agency
            p.event(tid, "returned", at + timedelta(hours=2), agency, reason_code="NOT_OUR_DUTY", basis="《示例》")
            agency = "BH-SCJG"
            p.routed(tid, at + timedelta(hours=2, minutes=1), agency, attempt=2)
        if i == 10:  # still open, never signed: overdue now
            continue
        p.event(tid, "signed", at + timedelta(hours=1 + 30 * (i % 3 == 2)), agency)  # some signed a day late
        if i == 11:  # still open, signed
            continue
        if i % 5 == 1:
            p.event(tid, "extension_requested", at + 2 * DAY, agency, days=5, explanation="核查")
            p.event(tid, "extension_approved", at + 2 * DAY + timedelta(hours=2))
        p.event(tid, "resolved", at + (2 + 9 * (i % 6 == 0)) * DAY, agency, reply="已处理")
        if i % 3 == 0:
            p.event(tid, "rated", at + 12 * DAY, rating="satisfied")
            p.event(tid, "closed", at + 12 * DAY + timedelta(seconds=1))
        if i == 4:  # the caller was not satisfied: 重新办理, then resolved again
            p.event(tid, "reopened", at + 3 * DAY, explanation="未解决")
            p.event(tid, "resolved", at + 5 * DAY, agency, reply="已再次处理")


PERIODS = [(None, None), (NOW - 30 * DAY, None), (NOW - 20 * DAY, NOW - 10 * DAY), (NOW - 7 * DAY, NOW)]


def replayed(ledger: Ledger, cat: Catalogue, since: datetime | None, until: datetime | None,
             now: datetime = NOW) -> dict[str, Any]:
    """The figures as computed before stages were stored: every ticket replayed."""
    figs = agency_figures(reports.load_histories(ledger), cat, now=now, since=since, until=until,
                          alerts=reports.load_alert_rules(ledger, since, until))
    return {code: f.to_dict() for code, f in sorted(figs.items())}


def stored(ledger: Ledger, cat: Catalogue, since: datetime | None, until: datetime | None,
           now: datetime = NOW) -> dict[str, Any]:
    return {code: f.to_dict() for code, f in reports.figures(ledger, cat, now=now, since=since, until=until).items()}


def live_and_staged(ledger: Ledger) -> tuple[set[str], set[str]]:
    with ledger.session() as s:
        live = set(s.scalars(select(t.Ticket.id).where(reports.LIVE)))
        staged = set(s.scalars(select(t.FigureStage.ticket_id)))
    return live, staged


def open_stages(ledger: Ledger) -> dict[str, str]:
    with ledger.session() as s:
        return {tid: stage for tid, stage in s.execute(select(t.FigureOpen.ticket_id, t.FigureOpen.stage))}


ALL = {f"F{i:02d}" for i in range(12)}


def test_stages_are_stored_as_agencies_act_and_the_figures_do_not_change(ledger: Ledger, cat: Catalogue) -> None:
    # Given a month of tickets recorded as the lifecycle records them
    district(Player(ledger, cat))
    # Then every ticket an agency acted on has its stages stored (F11's handling open, judged when read); F10,
    # only routed so far (the busy path), is live: replayed when the figures are read
    live, staged = live_and_staged(ledger)
    assert live == {"F10"} and staged == ALL - {"F10"} and open_stages(ledger) == {"F11": "handle"}
    # And every period's figures are those of replaying every ticket, now and a month later (F11 overdue then)
    for now in (NOW, NOW + 30 * DAY):
        for since, until in PERIODS:
            assert stored(ledger, cat, since, until, now) == replayed(ledger, cat, since, until, now), (since, now)
    figs = stored(ledger, cat, None, None)
    assert sum(f["dispatched"] for f in figs.values()) == 15 and sum(f["returns"] for f in figs.values()) == 3
    assert [o["ticket_id"] for f in figs.values() for o in f["open_overdue"]] == ["F10"]
    later = stored(ledger, cat, None, None, NOW + 30 * DAY)
    assert sorted(o["ticket_id"] for f in later.values() for o in f["open_overdue"]) == ["F10", "F11"]


def test_the_overview_sums_the_stored_stages_in_the_database_as_a_replay_counts_them(ledger: Ledger,
                                                                                      cat: Catalogue) -> None:
    """The console's overview asks the database for the stored stages' sums per agency and day (a CASE over the
    days' midnights, grouped outside it: PostgreSQL refuses the CASE's parameters in GROUP BY otherwise)."""
    from models.clock import ManualClock
    from models.supervision.figures import replay_all, settle_all, tally
    from streams.console.service import Console
    from streams.console.trends import daily_series

    # Given a month of tickets, and a supervisor reading the last 30 days and the last 7 (days start at midnight;
    # the series' 14 days straddle the 7-day period's start)
    district(Player(ledger, cat))
    console = Console(Settings(), ledger, cat, publisher=None)  # type: ignore[arg-type]
    console._clock = ManualClock(NOW)
    stages, pending = replay_all(reports.load_histories(ledger), cat)
    late, overdue = settle_all(pending, NOW, cat.calendar)
    for days in (30, 7, None):
        since = reports.period_start(NOW, days)
        # When the overview is read
        view = console.overview(since)
        # Then its figures and its daily series are those of replaying every ticket
        assert {c: f.to_dict() for c, f in view.figures.items()} == {
            c: f.to_dict() for c, f in sorted(tally(stages + late, overdue, since=since).items())}, days
        expected = daily_series(dict(zip(view.series.days, view.series.received, strict=True)), stages + late,
                                now=NOW)
        assert view.series == expected, days
    assert sum(view.series.dispatched) > 0 and any(f.overdue for f in view.figures.values())


def test_a_reopened_ticket_is_restaged_with_its_handling_open(ledger: Ledger, cat: Catalogue) -> None:
    p = Player(ledger, cat)
    district(p)
    with ledger.session() as s:
        before = s.get(t.Ticket, "F00").updated_at  # type: ignore[union-attr]
    # When a closed ticket is reopened (重新办理)
    p.event("F00", "reopened", NOW - DAY, explanation="仍未解决")
    # Then its stages are stored again from its whole history, with its handling open
    live, staged = live_and_staged(ledger)
    assert "F00" not in live and "F00" in staged and open_stages(ledger)["F00"] == "handle"
    with ledger.session() as s:
        assert s.get(t.Ticket, "F00").updated_at > before  # type: ignore[union-attr]
    for since, until in PERIODS:
        assert stored(ledger, cat, since, until) == replayed(ledger, cat, since, until)
    # When it is resolved again, its stages are stored again, with nothing open
    p.event("F00", "resolved", NOW - timedelta(hours=2), "BH-CGW", reply="已处理")
    live, staged = live_and_staged(ledger)
    assert "F00" not in live and "F00" in staged and "F00" not in open_stages(ledger)
    for since, until in PERIODS:
        assert stored(ledger, cat, since, until) == replayed(ledger, cat, since, until)


def test_a_ledger_from_before_the_stages_is_restaged_with_the_same_figures(ledger: Ledger, cat: Catalogue) -> None:
    # Given tickets recorded without stages (as every ticket is after migration 0011): all live
    district(Player(ledger, cat, restage=False))
    assert live_and_staged(ledger) == (ALL, set())
    expected = [replayed(ledger, cat, since, until) for since, until in PERIODS]
    assert [stored(ledger, cat, since, until) for since, until in PERIODS] == expected
    with ledger.session() as s:
        versions = {tid: at for tid, at in s.execute(select(t.Ticket.id, t.Ticket.updated_at))}
    # When they are restaged (hotline db upgrade / db restage)
    assert reports.restage_all(ledger, cat) == (12, 12)
    # Then they are stored, the figures are the same, and no ticket's version moved (a clerk's open page stays
    # valid: the console refuses actions on a ticket that changed since it was shown)
    assert live_and_staged(ledger) == (set(), ALL) and open_stages(ledger) == {"F10": "sign", "F11": "handle"}
    assert [stored(ledger, cat, since, until) for since, until in PERIODS] == expected
    with ledger.session() as s:
        assert {tid: at for tid, at in s.execute(select(t.Ticket.id, t.Ticket.updated_at))} == versions
    # And restaging every ticket again changes nothing
    with ledger.session() as s:
        rows = s.scalar(select(func.count()).select_from(t.FigureStage))
    assert reports.restage_all(ledger, cat, every=True) == (12, 12)
    with ledger.session() as s:
        assert s.scalar(select(func.count()).select_from(t.FigureStage)) == rows


def test_a_ticket_that_fails_to_replay_stays_live_and_its_events_are_recorded(
        ledger: Ledger, cat: Catalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    p = Player(ledger, cat)
    p.ticket("B1", NOW - 3 * DAY)
    p.routed("B1", NOW - 3 * DAY, "BH-CGW")
    p.event("B1", "signed", NOW - 3 * DAY + timedelta(hours=1), "BH-CGW")

    def broken(*_: Any, **__: Any) -> Any:
        raise ValueError("a defect in the replay")

    # When the replay fails on the batch that resolves the ticket
    monkeypatch.setattr(reports, "replay", broken)
    p.event("B1", "resolved", NOW - DAY, "BH-CGW", reply="已处理")
    monkeypatch.undo()
    # Then the event is recorded all the same, and the ticket stays live: its figures are replayed when asked
    with ledger.session() as s:
        assert s.scalar(select(func.count()).select_from(t.TicketEvent).where(t.TicketEvent.ticket_id == "B1")) == 3
        assert s.get(t.Ticket, "B1").status == "resolved"  # type: ignore[union-attr]
    assert live_and_staged(ledger) == ({"B1"}, set())
    assert stored(ledger, cat, None, None)["BH-CGW"]["resolved_on_time"] == 1


def test_db_upgrade_and_db_restage_store_the_stages_a_migration_left_live(tmp_path: Any, cat: Catalogue) -> None:
    from typer.testing import CliRunner

    from streams.cli import app
    from streams.db import upgrade

    runner = CliRunner()
    env = {"HOTLINE_DATABASE_URL": "", "HOTLINE_DATA_DIR": str(tmp_path / "none"), "HOTLINE_KAFKA_BOOTSTRAP": ""}
    # On a fresh install there is nothing to restage, and no empty ledger is made
    result = runner.invoke(app, ["db", "restage"], env=env)
    assert result.exit_code == 1 and "there is no ledger" in result.output
    assert not (tmp_path / "none" / "ledger.sqlite3").exists()
    # Given a ledger whose tickets were recorded before migration 0011 (all live)
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    ledger = Ledger(make_engine(url))
    district(Player(ledger, cat, restage=False))
    env = {**env, "HOTLINE_DATABASE_URL": url, "HOTLINE_DATA_DIR": str(tmp_path / "var")}
    # When the ledger is upgraded, the tickets get their stages
    result = runner.invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert "figure stages stored for 12 ticket(s)" in " ".join(result.output.split())
    assert live_and_staged(ledger) == (set(), ALL)
    # And `db restage --all` judges every ticket with events again
    result = runner.invoke(app, ["db", "restage", "--all"], env=env)
    assert result.exit_code == 0 and "figure stages stored for 12 ticket(s)" in " ".join(result.output.split())
    ledger.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_batch_locks_its_tickets_in_the_order_the_other_writers_do_whatever_the_collation(
        ledger: Ledger, cat: Catalogue) -> None:
    """The lifecycle's batch locks its tickets' rows first, in key order; the router's mirror (mark_published)
    updates them in Python's order. Under a database collation that sorts otherwise (en_US: 'a1' before 'B1';
    Python: 'B1' first), the two took the rows in opposite orders: a deadlock, found with the router marking
    decisions published while the lifecycle recorded events of the same tickets (2 in 15 s)."""
    with ledger.session() as s:
        if s.scalar(text("SELECT count(*) FROM pg_collation WHERE collname = 'en-US-x-icu'")) == 0:
            pytest.skip("PostgreSQL without ICU collations")
        s.execute(text('ALTER TABLE tickets ALTER COLUMN id TYPE VARCHAR(64) COLLATE "en-US-x-icu"'))
    p = Player(ledger, cat)
    for tid in ("B1", "a1"):
        p.ticket(tid, NOW - 3 * DAY)
        p.routed(tid, NOW - 3 * DAY, "BH-CGW")
    router = ledger.engine.connect()
    try:
        # Given the router's mirror holding the first of the two rows in Python's order ...
        router.execute(text("UPDATE tickets SET updated_at = updated_at WHERE id = 'B1'"))
        failed: list[BaseException] = []

        def batch() -> None:
            try:  # ... when a lifecycle batch on both tickets comes (it waits for B1)
                ledger.record_events([
                    {"event_id": f"{tid}-both", "ticket_id": tid, "type": "signed", "actor": "agency",
                     "agency": "BH-CGW", "occurred_at": NOW - 2 * DAY, "accepted": True, "reason": None,
                     "payload": {}, "status": "signed", "current_agency": "BH-CGW"} for tid in ("a1", "B1")],
                    restage=reports.restager(cat))
            except BaseException as exc:  # reported by the test
                failed.append(exc)

        worker = threading.Thread(target=batch)
        worker.start()
        holder = router.scalar(text("SELECT pg_backend_pid()"))
        with ledger.engine.connect() as watch:  # until the batch waits for the router
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not watch.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid))"),
                    {"holder": holder}):
                time.sleep(0.05)
                watch.rollback()
        # Then the router takes the second row at once, and the batch goes through after the router's commit
        router.execute(text("SET LOCAL lock_timeout = '5s'"))
        router.execute(text("UPDATE tickets SET updated_at = updated_at WHERE id = 'a1'"))
        router.commit()
        worker.join(timeout=30)
        assert not failed, failed
    finally:
        router.close()
    with ledger.session() as s:
        assert set(s.scalars(select(t.TicketEvent.event_id).where(t.TicketEvent.event_id.like("%-both")))) \
            == {"a1-both", "B1-both"}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_batch_holding_its_tickets_leaves_the_routers_decision_inserts_free(ledger: Ledger, cat: Catalogue) -> None:
    # Given a lifecycle batch holding a ticket's row as record_events locks it (its transaction still open)
    p = Player(ledger, cat)
    p.ticket("K1", NOW - DAY)
    lifecycle = Session(ledger.engine)
    try:
        lock_tickets(lifecycle, ["K1"])
        # When the router stores a decision for that ticket (its foreign key takes KEY SHARE on the row)
        with ledger.engine.connect() as router:
            router.execute(text("SET lock_timeout = '2s'"))
            router.execute(insert(t.RoutingDecision).values(
                decision_key="K1#1", ticket_id="K1", attempt=1, decision="auto", agency="BH-CGW",
                decided_by="router", decided_at=NOW, alternatives=[]))
            router.commit()
        # Then it goes through at once: FOR UPDATE there made the router wait for the whole batch
    finally:
        lifecycle.rollback()
        lifecycle.close()
    assert ledger.decisions(["K1#1"])["K1#1"].agency == "BH-CGW"


def test_the_overview_does_not_count_a_stage_anchored_after_today_on_today(ledger: Ledger, cat: Catalogue) -> None:
    """A dispatch stamped after the console's midnight (a worker's clock a little ahead, the demo's fast clock) is
    not on any day of the series; summed with today's stages of its agency it must not be counted today."""
    from models.clock import ManualClock
    from models.supervision.figures import replay_all, settle_all
    from streams.console.service import Console
    from streams.console.trends import daily_series

    p = Player(ledger, cat)
    tomorrow = NOW.replace(hour=0) + DAY  # Saturday 00:00
    for tid, at in (("T1", NOW - timedelta(hours=2)), ("T2", tomorrow + timedelta(minutes=30))):
        p.ticket(tid, at - timedelta(minutes=1))
        p.routed(tid, at, "BH-CGW")
        p.event(tid, "signed", at + timedelta(minutes=5), "BH-CGW")
        p.event(tid, "resolved", at + timedelta(minutes=50), "BH-CGW", reply="已处理")
    assert live_and_staged(ledger) == (set(), {"T1", "T2"})
    console = Console(Settings(), ledger, cat, publisher=None)  # type: ignore[arg-type]
    console._clock = ManualClock(NOW)
    stages, pending = replay_all(reports.load_histories(ledger), cat)
    late, _ = settle_all(pending, NOW, cat.calendar)
    view = console.overview(reports.period_start(NOW, 7))
    expected = daily_series(dict(zip(view.series.days, view.series.received, strict=True)), stages + late, now=NOW)
    assert view.series.dispatched[-1] == 1
    assert view.series == expected
