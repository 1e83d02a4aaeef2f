"""The per-agency figures as a spreadsheet: `hotline report --csv` and the supervisor's 导出 CSV download say what
the figures page and `report --json` say, with Chinese headers, and Excel can open the download."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.tickets import TicketIn
from streams.cli import app
from streams.db import Ledger
from streams.reports import CSV_COLUMNS
from tests.unit.test_console_views import Site, _site


def _dispatch_one(ledger: Ledger) -> None:
    """One ticket dispatched to BH-STHJ a day ago, signed an hour later (on time: 签收 allows 2 working hours
    or more)."""
    routed_at = datetime.now(UTC) - timedelta(days=1)
    ledger.record_tickets([(TicketIn(id="T-1", text="油烟扰民" * 5, received_at=routed_at, request_type="投诉"),
                            None, None, None)])
    for kind, at in [("routed", routed_at), ("signed", routed_at + timedelta(minutes=10))]:
        payload = {"event_id": f"{kind}:T-1", "ticket_id": "T-1", "type": kind, "actor": "x", "role": "system" if kind == "routed" else "agency",
                   "occurred_at": at.isoformat(), "agency": "BH-STHJ", "attempt": 1, "decision": "auto"}
        ledger.record_event(event_id=f"{kind}:T-1", ticket_id="T-1", type=kind, actor="x", agency="BH-STHJ",
                            occurred_at=at, accepted=True, reason=None, payload=payload)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from _site(tmp_path)


def test_the_supervisors_download_is_the_figures_page_as_csv_that_excel_reads(site: Site) -> None:
    # Given one dispatch, signed on time
    _dispatch_one(site.ledger)
    site.login("boss")
    # When the supervisor follows 导出 CSV on the figures page
    page = site.client.get("/supervisor?period=7").text
    assert 'href="/supervisor/figures.csv?period=7"' in page
    r = site.client.get("/supervisor/figures.csv?period=7")
    # Then it is a UTF-8 CSV download with a byte-order mark (Excel on Chinese Windows reads GBK otherwise)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith('attachment; filename="figures-7-')
    assert r.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    (row,) = rows
    # And its row says what the API's figures say, under Chinese headers
    (api,) = site.api("GET", "/api/figures?days=7", "boss").json()["agencies"]
    assert list(row) == [header for _, header in CSV_COLUMNS]
    assert row["单位代码"] == "BH-STHJ" and row["单位名称"] and row["派单量"] == str(api["dispatched"]) == "1"
    assert row["按时签收率"] == "100%" and row["按时办结率"] == ""  # nothing resolved yet: no rate, not 0%
    # And only supervisors get it
    site.login("disp")
    assert site.client.get("/supervisor/figures.csv").status_code == 403


def test_report_csv_has_the_same_columns(site: Site, tmp_path: Path) -> None:
    _dispatch_one(site.ledger)
    env = {"HOTLINE_DATABASE_URL": str(site.ledger.engine.url), "HOTLINE_DATA_DIR": str(tmp_path / "var"),
           "HOTLINE_KAFKA_BOOTSTRAP": ""}
    runner = CliRunner()
    result = runner.invoke(app, ["report", "--csv"], env=env)
    assert result.exit_code == 0, result.output
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    as_json = json.loads(runner.invoke(app, ["report", "--json"], env=env).stdout)["agencies"][0]
    assert row["单位代码"] == as_json["agency"] and row["派单量"] == str(as_json["dispatched"])
    assert runner.invoke(app, ["report", "--csv", "--json"], env=env).exit_code == 2
