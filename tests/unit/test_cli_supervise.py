"""``hotline alerts`` and ``hotline report`` on a real (SQLite) ledger, without a broker."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.events import AlertRaised
from models.supervision import Alert
from models.tickets import SHANGHAI, TicketIn
from streams.cli import app
from streams.db import Ledger, make_engine, upgrade
from streams.supervision import alert_row

runner = CliRunner()


@pytest.fixture
def ledger_env(tmp_path: Path) -> dict[str, str]:
    """A migrated ledger with one ticket dispatched to BH-STHJ two days ago, never signed, and its alert."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    ledger = Ledger(make_engine(url))
    now = datetime.now(SHANGHAI)
    routed_at = now - timedelta(days=6)
    ledger.record_tickets([(TicketIn(id="T-1", text="油烟扰民" * 5, received_at=routed_at, urgency="紧急",
                                     request_type="投诉"), None, None, None)])
    routed = {"event_id": "routed:T-1#1", "ticket_id": "T-1", "type": "routed", "actor": "router", "role": "system",
              "occurred_at": routed_at.isoformat(), "agency": "BH-STHJ", "attempt": 1, "decision": "auto"}
    ledger.record_event(event_id="routed:T-1#1", ticket_id="T-1", type="routed", actor="router", agency="BH-STHJ",
                        occurred_at=routed_at, accepted=True, reason=None, payload=routed)
    alert = Alert("T-1:sign_deadline:overdue@1", "sign_deadline", "overdue", "critical", "T-1", "BH-STHJ",
                  routed_at + timedelta(minutes=15), "工单T-1已超过签收时限。", routed_at + timedelta(minutes=15),
                  {"stage": "sign"})
    ledger.record_alerts([alert_row(alert, AlertRaised(**alert.record_fields()))])
    ledger.record_alerts([alert_row(alert, AlertRaised(**alert.record_fields()))])  # idempotent
    ledger.dispose()
    return {"HOTLINE_DATABASE_URL": url, "HOTLINE_DATA_DIR": str(tmp_path / "var"), "HOTLINE_KAFKA_BOOTSTRAP": ""}


def test_alerts_json_lines_are_the_published_records(ledger_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["alerts", "--json", "--agency", "bh-sthj"], env=ledger_env)
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    alert = json.loads(line)
    assert alert["alert_key"] == "T-1:sign_deadline:overdue@1" and alert["severity"] == "critical"
    assert runner.invoke(app, ["alerts", "--agency", "BH-CGW", "--json"], env=ledger_env).stdout == ""
    table = runner.invoke(app, ["alerts"], env=ledger_env)
    assert table.exit_code == 0 and "sign_deadline" in table.stdout
    assert runner.invoke(app, ["alerts", "--since", "not-a-date"], env=ledger_env).exit_code == 2


def test_report_and_digest(ledger_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["report", "--json"], env=ledger_env)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["agencies"]
    assert row["agency"] == "BH-STHJ" and row["dispatched"] == 1 and row["sign_on_time_rate"] == 0.0
    assert row["overdue"] == 1 and row["alerts"] == {"sign_deadline": 1}
    assert [o["ticket_id"] for o in row["open_overdue"]] == ["T-1"]
    digest = runner.invoke(app, ["report", "--digest"], env=ledger_env)
    assert digest.exit_code == 0, digest.output
    assert "督办日报" in digest.stdout and "T-1 签收截止" in digest.stdout  # open overdue, whatever the day
    assert runner.invoke(app, ["report", "--agency", "NOPE"], env=ledger_env).exit_code == 2


def test_report_replays_a_batch_in_the_order_the_lifecycle_accepted_it(tmp_path: Path) -> None:
    # Given a routing and its sign-for accepted in one lifecycle batch (one recorded_at), the agency's clock
    # 5 s behind the router's: by occurred_at the sign-for came first and the replay refused it
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    ledger = Ledger(make_engine(url))
    routed_at = datetime.now(SHANGHAI) - timedelta(days=6)
    signed_at = routed_at - timedelta(seconds=5)
    ledger.record_tickets([(TicketIn(id="T-2", text="油烟扰民" * 5, received_at=routed_at, request_type="投诉"),
                            None, None, None)])
    routed = {"event_id": "routed:T-2#1", "ticket_id": "T-2", "type": "routed", "actor": "router",
              "role": "system", "occurred_at": routed_at.isoformat(), "agency": "BH-STHJ", "attempt": 1,
              "decision": "auto"}
    signed = {"event_id": "s-1", "ticket_id": "T-2", "type": "signed", "actor": "a", "role": "agency",
              "occurred_at": signed_at.isoformat(), "agency": "BH-STHJ"}
    ledger.record_events([{"event_id": e["event_id"], "ticket_id": "T-2", "type": e["type"], "actor": e["actor"],
                           "agency": "BH-STHJ", "occurred_at": datetime.fromisoformat(e["occurred_at"]),
                           "accepted": True, "reason": None, "payload": e, "status": status,
                           "current_agency": "BH-STHJ"} for e, status in ((routed, "dispatched"), (signed, "signed"))])
    ledger.dispose()
    env = {"HOTLINE_DATABASE_URL": url, "HOTLINE_DATA_DIR": str(tmp_path / "var"), "HOTLINE_KAFKA_BOOTSTRAP": ""}
    result = runner.invoke(app, ["report", "--json"], env=env)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["agencies"]
    # Then it was signed on time, and it is not open past its sign-for deadline
    assert row["sign_on_time_rate"] == 1.0 and row["open_overdue"] == [] and row["overdue"] == 0


@pytest.mark.parametrize("command", [["report"], ["alerts"], ["web"]])
def test_a_read_only_command_on_a_fresh_install_says_so_and_leaves_no_empty_ledger(
        tmp_path: Path, command: list[str]) -> None:
    # Given a data directory where nothing has run yet (no ledger file)
    env = {"HOTLINE_DATA_DIR": str(tmp_path), "HOTLINE_DATABASE_URL": "", "HOTLINE_KAFKA_BOOTSTRAP": ""}
    # When a command that only reads the ledger runs there
    result = runner.invoke(app, command, env=env)
    # Then it says there is no ledger yet and how to get one, and creates no empty file ("revision none")
    assert result.exit_code != 0
    assert "there is no ledger at" in result.output and "hotline db upgrade" in result.output, result.output
    assert not (tmp_path / "ledger.sqlite3").exists()


def test_report_of_one_month_or_a_closed_period(ledger_env: dict[str, str]) -> None:
    # Given the ledger's one dispatch, six days ago
    routed = datetime.now(SHANGHAI) - timedelta(days=6)
    month = routed.strftime("%Y-%m")

    def dispatched(*args: str) -> int:
        result = runner.invoke(app, ["report", "--json", *args], env=ledger_env)
        assert result.exit_code == 0, result.output
        return sum(r["dispatched"] for r in json.loads(result.stdout)["agencies"])

    # Then its month counts it, the month before does not, and --until leaves out its own day
    before = (routed.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    assert dispatched("--month", month) == 1 and dispatched("--month", before) == 0
    day = routed.date()
    assert dispatched("--since", str(day), "--until", str(day + timedelta(days=1))) == 1
    assert dispatched("--since", str(day - timedelta(days=3)), "--until", str(day)) == 0
    # And periods that make no sense are refused with a message
    for bad in (["--month", "2026-13"], ["--month", month, "--since", str(day)],
                ["--since", str(day), "--until", str(day)], ["--until", "soon"], ["--digest", "--month", month],
                # no hotline stamped a time outside 2000-2099: the month after 9999-12 and Shanghai's 0001-01-01 in
                # UTC do not exist (tracebacks before)
                ["--month", "9999-12"], ["--month", "0001-01"], ["--since", "0001-01-01"]):
        result = runner.invoke(app, ["report", *bad], env=ledger_env)
        assert result.exit_code == 2 and "Traceback" not in result.output, (bad, result.output)
    assert "--until 'soon' is not a date" in runner.invoke(app, ["report", "--until", "soon"], env=ledger_env).output


def test_the_digest_names_alert_rules_in_chinese() -> None:
    from datetime import date

    from config.catalogue import load_catalogue
    from models.supervision.figures import AgencyFigures
    from streams.reports import digest_text

    f = AgencyFigures(agency="BH-SCJG", alerts={"sign_deadline": 3, "handle_deadline": 4})
    text = digest_text({"BH-SCJG": f}, load_catalogue(), date(2026, 12, 10))
    # the supervisors' Chinese digest said "预警：handle_deadline 4，sign_deadline 3"
    assert "预警：办理时限 4，签收时限 3" in text and "deadline" not in text


def test_web_on_a_port_already_taken_says_so_before_announcing_itself(ledger_env: dict[str, str]) -> None:
    import socket

    # Given another process listening on the console's port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # When the console is started there
        result = runner.invoke(app, ["web"], env={**ledger_env, "HOTLINE_WEB_HOST": "127.0.0.1",
                                                  "HOTLINE_WEB_PORT": str(port)})
    # Then it says it cannot listen there, and never announced an address it does not serve
    assert result.exit_code == 3, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "web console on http" not in result.output
