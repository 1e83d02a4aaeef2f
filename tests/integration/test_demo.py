"""The demo through real parts: the player against a real worker, and ``hotline demo`` stopped by Ctrl-C.

1. The first 40 tickets of the scripted week, played by :class:`streams.demo.player.Player` onto the
   session's embedded broker for a ``hotline worker`` subprocess on a fast shared clock: tickets are
   routed, an agency's return (退单) is recorded, alerts are raised, and the lifecycle refuses nothing
   (the player only acts when the ledger shows the ticket ready for it).
2. ``hotline demo`` as a user runs it: once it has routed a ticket, SIGINT stops it within seconds,
   exit code 130, no traceback, and its broker, worker and web console are gone.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from config.catalogue import load_catalogue
from config.settings import Settings
from models import ledger as t
from models.clock import shared_clock
from models.workcalendar import TZ
from streams.broker import free_port
from streams.db import Ledger, make_engine, upgrade
from streams.demo.player import Player, ledger_figures
from streams.demo.scenario import Act, build_scenario
from tests.conftest import wait_until

pytestmark = pytest.mark.integration

ORIGIN = datetime(2026, 11, 9, 8, 30, tzinfo=TZ)
SPEED = 36_000.0  # ten simulated hours per real second: the first day's returns and alerts come quickly


def test_player_routes_returns_and_raises_alerts(own_broker, start_worker, tmp_path: Path) -> None:
    # its own broker: the scripted week has fixed ticket ids, which the session broker's ticket-state
    # changelog may already hold from another test
    kafka_bootstrap = own_broker
    catalogue = load_catalogue()
    scenario = build_scenario(catalogue, ORIGIN).first(40)
    assert any(isinstance(s, Act) and s.action == "return" for s in scenario.steps)  # the run can show one
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    data_dir = tmp_path / "data"
    worker = start_worker(url, HOTLINE_KAFKA_BOOTSTRAP=kafka_bootstrap, HOTLINE_DATA_DIR=str(data_dir),
                          HOTLINE_CLOCK_SPEED=str(SPEED),
                          HOTLINE_CLOCK_ORIGIN=ORIGIN.isoformat())
    worker.wait_ready()
    ledger = Ledger(make_engine(url))
    clock = shared_clock(SPEED, ORIGIN, data_dir / "clock.json")  # the worker's clock, through the file
    stop = threading.Event()
    player = Player(scenario, bootstrap=kafka_bootstrap, ledger=ledger, clock=clock, catalogue=catalogue,
                    stop=stop, patience=30)
    thread = threading.Thread(target=player.run, daemon=True)
    thread.start()
    try:
        def signed_count() -> int:
            with ledger.session() as s:
                return len(s.scalars(select(t.TicketEvent.event_id).where(t.TicketEvent.type == "signed")).all())

        def shown() -> bool:
            # a return (退单) may come before any signing, so wait for a signing too, not only for a return
            f = ledger_figures(ledger)
            return f.routed >= 38 and f.returns >= 1 and f.alerts >= 1 and signed_count() >= 1

        assert wait_until(shown, timeout=60), (ledger_figures(ledger), signed_count(), player.stats,
                                               worker.log()[-3000:])
        # the agency that signed is the one the ticket was routed to (read from the ledger, not scripted)
        with ledger.session() as s:
            signed = s.execute(select(t.TicketEvent.ticket_id, t.TicketEvent.agency).where(
                t.TicketEvent.type == "signed")).all()
            routed = {(e.ticket_id, e.agency) for e in s.scalars(select(t.TicketEvent).where(
                t.TicketEvent.type == "routed"))}
        assert signed and all((tid, agency) in routed for tid, agency in signed)
        figures = ledger_figures(ledger)
        assert figures.refused == 0, figures
        assert player.stats.send_errors == 0
    finally:
        stop.set()
        thread.join(timeout=10)
        ledger.dispose()
    assert not thread.is_alive()
    assert worker.proc.poll() is None


def test_ctrl_c_stops_hotline_demo_cleanly(trained_model_dir: Path, tmp_path: Path) -> None:
    host = Settings().web_host
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update({"HOTLINE_DATA_DIR": str(tmp_path / "var"), "HOTLINE_MODEL_DIR": str(trained_model_dir),
                "HOTLINE_WEB_PORT": str(free_port(host)), "HOTLINE_WORKER_WEB_PORT": str(free_port(host)),
                "COLUMNS": "120"})
    out_path, err_path = tmp_path / "demo.out", tmp_path / "demo.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "demo", "--tickets", "40", "--speed",
                                 str(SPEED)], env=env, stdout=out, stderr=err, cwd=tmp_path)
        try:
            assert wait_until(lambda: "first ticket routed" in out_path.read_text(errors="replace")
                              or proc.poll() is not None, timeout=80), out_path.read_text()
            assert proc.poll() is None, out_path.read_text() + err_path.read_text()
            text = out_path.read_text()
            pids = {name: int(pid) for name, pid in re.findall(r"(broker|worker|web console)\b.*?pid (\d+)", text)}
            assert {"broker", "worker"} <= set(pids), text
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=25)  # a hang fails here; how long it takes is not this test's business
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text, errors = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    assert code == 130, text + errors
    assert "Traceback" not in text + errors
    assert "stopped: player" in text and "broker" in text.split("stopped:")[-1]
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # gone (the demo waited for each: no zombie either)
    worker_log = (tmp_path / "var" / "demo" / "worker.log").read_text(errors="replace")
    assert "Traceback" not in worker_log, worker_log[-3000:]
