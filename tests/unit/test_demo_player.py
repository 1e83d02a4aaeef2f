"""The demo's decisions without a broker: when the player acts and as whom, and the orchestration helpers."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from config.catalogue import load_catalogue
from config.settings import get_settings
from models.clock import ManualClock
from models.directory import Catalogue
from models.events import parse_event
from models.tickets import Rejection
from models.workcalendar import TZ
from streams.demo.player import Player, TicketView
from streams.demo.run import (
    DEMO_SPEED,
    MARKER,
    DemoError,
    child_env,
    demo_speed,
    exclusive,
    fresh_dir,
    when_zh,
)
from streams.demo.scenario import Act, Scenario, Submit

NOW = datetime(2026, 11, 9, 10, 0, tzinfo=TZ)
ADDRESS = "滨海新区新港街道海韵花园3号楼"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def player(catalogue: Catalogue | None = None) -> Player:
    scenario = Scenario(NOW, (Submit(NOW, "T1", {"id": "T1", "text": "x"}),), {})
    return Player(scenario, bootstrap="unused:9092", ledger=None, clock=ManualClock(NOW),  # type: ignore[arg-type]
                  catalogue=catalogue)


def view(status: str = "dispatched", agency: str | None = "BH-SCJG", *, attempt: int = 1, returns: int = 0,
         returned_by: tuple[str, ...] = (), routed: bool = True, matter: str | None = None) -> TicketView:
    return TicketView(status, agency, attempt, returns, returned_by, routed, matter, ADDRESS, NOW)


def act(action: str, round_: int = 0, **options: object) -> Act:
    return Act(NOW, "T1", action, round_, dict(options))


def test_waits_until_the_router_routed_and_the_lifecycle_recorded_it() -> None:
    p = player()
    assert p._decide(act("sign"), None, NOW) == ("wait", None)  # not in the ledger yet
    assert p._decide(act("sign"), view(routed=False), NOW)[0] == "wait"  # our sign must not overtake 'routed'
    assert p._decide(act("sign"), view("returned", None), NOW)[0] == "wait"  # a re-route is on its way
    assert p._decide(act("resolve"), view("dispatched"), NOW)[0] == "wait"  # our sign is not processed yet


def test_acts_as_the_agency_the_ticket_is_with() -> None:
    verdict, event = player()._decide(act("sign"), view(agency="DL-CGW"), NOW)
    assert verdict == "send" and event is not None
    assert event["agency"] == "DL-CGW" and event["role"] == "agency" and event["type"] == "signed"
    assert event["occurred_at"] == NOW.isoformat()  # the simulated now, not the wall clock
    assert not isinstance(parse_event(event), Rejection)
    verdict, event = player()._decide(act("rate", rating="satisfied"), view("resolved", "DL-CGW"), NOW)
    assert verdict == "send" and event is not None and event["role"] == "callcenter" and "agency" not in event


def test_rounds_count_returns() -> None:
    p = player()
    after_one = view(returns=1, returned_by=("BH-CGW",), attempt=2)
    assert p._decide(act("sign", 1), view(), NOW)[0] == "wait"  # our return is not processed yet
    assert p._decide(act("sign", 1), after_one, NOW)[0] == "send"
    assert p._decide(act("sign", 0), after_one, NOW)[0] == "drop"  # the story has moved past this step


def test_rescue_only_for_the_manual_queue_and_to_the_owner(catalogue: Catalogue) -> None:
    p = player(catalogue)
    rescue = Act(NOW, "T1", "reassign", 0, {"explanation": "人工派单"}, only_if_manual=True,
                 targets=("BH-JD-XG",))
    assert p._decide(rescue, view("dispatched"), NOW)[0] == "skip"
    owner = catalogue.place("HB-001", ADDRESS, NOW).ownership.agency.code
    verdict, event = p._decide(rescue, view("manual", None, matter="HB-001"), NOW)
    assert verdict == "send" and event is not None and event["target_agency"] == owner
    assert event["role"] == "dispatcher"
    # the owner returned it: the next candidate; everyone returned it: the owner is designated anyway
    _, event = p._decide(rescue, view("manual", None, matter="HB-001", returns=0, returned_by=(owner,)), NOW)
    assert event is not None and event["target_agency"] == "BH-JD-XG"
    _, event = p._decide(rescue, view("manual", None, matter="HB-001", returned_by=(owner, "BH-JD-XG")), NOW)
    assert event is not None and event["target_agency"] == owner


def test_gives_up_a_step_after_patience_with_the_rest_of_its_story() -> None:
    scenario = Scenario(NOW, (Submit(NOW, "T1", {"id": "T1"}), act("sign"), act("resolve", reply="好")), {})
    p = Player(scenario, bootstrap="unused:9092", ledger=None, clock=ManualClock(NOW),  # type: ignore[arg-type]
               patience=0.0)
    p._next["T1"] = 2  # submission and sign taken from the chain; sign is the one waiting
    pending = p._heap
    from streams.demo.player import _Pending

    p._later(_Pending(NOW, 1, scenario.steps[1], first_try=0.0), NOW)
    assert not pending and p.stats.gave_up == 1 and p.stats.dropped == 2


def test_fresh_dir_wipes_only_its_own(tmp_path: Path) -> None:
    mine = tmp_path / "demo"
    fresh_dir(mine)
    (mine / "ledger.sqlite3").write_text("old")
    fresh_dir(mine)
    assert sorted(p.name for p in mine.iterdir()) == [MARKER]
    theirs = tmp_path / "other"
    theirs.mkdir()
    (theirs / "precious.txt").write_text("keep me")
    with pytest.raises(DemoError, match="not made by"):
        fresh_dir(theirs)
    assert (theirs / "precious.txt").exists()


def test_one_demo_per_data_dir(tmp_path: Path) -> None:
    with exclusive(tmp_path / "demo.lock"), pytest.raises(DemoError, match="another"), \
            exclusive(tmp_path / "demo.lock"):
        pass


def test_children_get_the_demo_settings_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_DATABASE_URL", "postgresql://somewhere/prod")
    monkeypatch.setenv("HOTLINE_DATABASE_PASSWORD", "secret")
    origin = datetime(2026, 11, 9, 8, 30, tzinfo=TZ)
    settings = get_settings(data_dir=tmp_path, database_url="", database_password=None, clock_speed=3600.0,
                            clock_origin=origin, kafka_bootstrap="broker:1")
    env = child_env(settings)
    assert env["HOTLINE_DATA_DIR"] == str(tmp_path) and env["HOTLINE_DATABASE_URL"] == ""
    assert env["HOTLINE_KAFKA_BOOTSTRAP"] == "broker:1" and env["HOTLINE_CLOCK_SPEED"] == "3600.0"
    assert datetime.fromisoformat(env["HOTLINE_CLOCK_ORIGIN"]) == origin
    assert "HOTLINE_DATABASE_PASSWORD" not in env and env["PATH"] == os.environ["PATH"]


def test_speed_flag_then_environment_then_demo_default() -> None:
    assert demo_speed(get_settings(clock_speed=1.0), None) == DEMO_SPEED == 3600.0
    assert demo_speed(get_settings(clock_speed=600.0), None) == 600.0
    assert demo_speed(get_settings(clock_speed=600.0), 7200.0) == 7200.0
    with pytest.raises(DemoError):
        demo_speed(get_settings(), 0)


def test_clock_label() -> None:
    assert when_zh(NOW) == "周一 11-09 10:00" and when_zh(NOW + timedelta(days=6)) == "周日 11-15 10:00"
    assert when_zh(None) == "--"
