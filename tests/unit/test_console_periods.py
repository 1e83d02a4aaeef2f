"""Monthly periods for the supervisors' assessment (月度考核): 本月 and 上月 on the supervisor's pages and in the CSV
download, ``month`` / ``since`` / ``until`` on ``/api/figures``, all in calendar months and days in Shanghai time,
and the same month arithmetic for ``hotline report --month``."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from models.clock import ManualClock
from models.tickets import TicketIn
from models.workcalendar import TZ
from streams.db import Ledger
from streams.reports import last_month, month_bounds, parse_month, period_dates, this_month
from tests.unit.test_console_views import Site, _site

NOW = datetime(2026, 12, 15, 10, 0, tzinfo=TZ)
LAST_DAY_OF_LAST_MONTH = datetime(2026, 11, 30, 23, 30, tzinfo=TZ)  # 15:30 UTC, the same day
FIRST_NIGHT_OF_THIS_MONTH = datetime(2026, 12, 1, 0, 30, tzinfo=TZ)  # still 11-30 (16:30) in UTC


def dispatch(ledger: Ledger, ticket_id: str, agency: str, at: datetime) -> None:
    """A ticket received and dispatched to ``agency`` at ``at``, signed ten minutes later."""
    ledger.record_tickets([(TicketIn(id=ticket_id, text="油烟扰民" * 5, received_at=at, request_type="投诉"),
                            None, None, None)])
    for kind, when in [("routed", at), ("signed", at + timedelta(minutes=10))]:
        event_id = f"{kind}:{ticket_id}"
        payload = {"event_id": event_id, "ticket_id": ticket_id, "type": kind, "actor": "x",
                   "role": "system" if kind == "routed" else "agency", "occurred_at": when.isoformat(),
                   "agency": agency, "attempt": 1, "decision": "auto"}
        ledger.record_event(event_id=event_id, ticket_id=ticket_id, type=kind, actor="x", agency=agency,
                            occurred_at=when, accepted=True, reason=None, payload=payload)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    for s in _site(tmp_path):
        s.client.app.state.console._clock = ManualClock(NOW)  # type: ignore[attr-defined]
        dispatch(s.ledger, "T-NOV", "BH-STHJ", LAST_DAY_OF_LAST_MONTH)
        dispatch(s.ledger, "T-DEC", "BH-CGW", FIRST_NIGHT_OF_THIS_MONTH)
        yield s


def figures_rows(page: str) -> dict[str, int]:
    """Agency code -> 派单 of the supervisor page's figures table."""
    return {code: int(n) for code, n in re.findall(r'<tr data-agency="([^"]+)">.*?<td class="num">(\d+)</td>', page,
                                                   flags=re.S)}


def csv_rows(site: Site, period: str) -> dict[str, dict[str, str]]:
    r = site.client.get(f"/supervisor/figures.csv?period={period}")
    assert r.status_code == 200, r.text
    return {row["单位代码"]: row for row in csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))}


def test_month_arithmetic_in_shanghai_time() -> None:
    assert this_month(NOW) == (datetime(2026, 12, 1, tzinfo=TZ), None)
    assert last_month(NOW) == (datetime(2026, 11, 1, tzinfo=TZ), datetime(2026, 12, 1, tzinfo=TZ))
    # the first hours of a month in Shanghai are the last of the month before in UTC
    assert this_month(FIRST_NIGHT_OF_THIS_MONTH)[0] == datetime(2026, 12, 1, tzinfo=TZ)
    assert last_month(datetime(2027, 1, 1, 0, 5, tzinfo=TZ)) == month_bounds(2026, 12) == parse_month("2026-12")
    assert month_bounds(2026, 12)[1] == datetime(2027, 1, 1, tzinfo=TZ)
    assert period_dates(*last_month(NOW), NOW) == "2026-11-01 至 2026-11-30"
    assert period_dates(*this_month(NOW), NOW) == "2026-12-01 至 2026-12-15"
    assert period_dates(None, None, NOW) == ""
    assert parse_month("2026-1") == parse_month("2026-01")  # as `hotline report --month` always took it
    for bad in ("2026-13", "2026-00", "2026-123", "11-2026", "9999-12", "1999-12", "2026-11-01", "２０２６-１１", ""):
        with pytest.raises(ValueError):
            parse_month(bad)


def test_a_dispatch_late_on_the_last_day_of_last_month_counts_in_last_month_not_this_month(site: Site) -> None:
    site.login("boss")
    # When the supervisor picks 上月
    page = site.client.get("/supervisor?period=last-month").text
    # Then the period's dates are shown, and only last month's dispatch counts
    assert "上月（2026-11-01 至 2026-11-30）" in page
    assert figures_rows(page) == {"BH-STHJ": 1}
    assert 'href="/supervisor/figures.csv?period=last-month"' in page
    # And 本月 counts the dispatch of 12-01 00:30 (the last day of November in UTC), not the one of 11-30 23:30
    page = site.client.get("/supervisor?period=this-month").text
    assert "本月（2026-12-01 至 2026-12-15）" in page
    assert figures_rows(page) == {"BH-CGW": 1}
    # And both periods are offered as tabs
    assert 'href="/supervisor?period=this-month"' in page and 'href="/supervisor?period=last-month"' in page
    # And the drill-down follows the period
    drill = site.client.get("/supervisor/agencies/BH-STHJ?period=this-month").text
    assert "本月（2026-12-01 至 2026-12-15）没有派给本单位的工单。" in drill
    drill = site.client.get("/supervisor/agencies/BH-STHJ?period=last-month").text
    assert re.search(r"<dt>派单</dt><dd>1</dd>", drill) and "上月（2026-11-01 至 2026-11-30）" in drill


def test_the_csv_for_last_month_agrees_with_the_api_for_that_month(site: Site) -> None:
    site.login("boss")
    r = site.client.get("/supervisor/figures.csv?period=last-month")
    # a month's file is named by its month
    assert r.headers["content-disposition"] == 'attachment; filename="figures-2026-11-20261215.csv"'
    rows = csv_rows(site, "last-month")
    body = site.api("GET", "/api/figures?month=2026-11", "boss").json()
    assert body["since"] == "2026-11-01T00:00:00+08:00" and body["until"] == "2026-12-01T00:00:00+08:00"
    assert {a["agency"]: a["dispatched"] for a in body["agencies"]} == {
        code: int(row["派单量"]) for code, row in rows.items()} == {"BH-STHJ": 1}
    assert rows["BH-STHJ"]["按时签收率"] == "100%"
    # And the same days given as since/until say the same; until is not included
    dates = site.api("GET", "/api/figures?since=2026-11-01&until=2026-12-01", "boss").json()
    assert dates["agencies"] == body["agencies"]
    assert set(csv_rows(site, "this-month")) == {"BH-CGW"}
    tail = site.api("GET", "/api/figures?since=2026-12-01", "boss").json()
    assert [a["agency"] for a in tail["agencies"]] == ["BH-CGW"] and tail["until"] is None
    # And days keeps working
    assert {a["agency"] for a in site.api("GET", "/api/figures?days=30", "boss").json()["agencies"]} == {
        "BH-STHJ", "BH-CGW"}


@pytest.mark.parametrize("query", [
    "month=2026-13", "month=11-2026", "month=２０２６-１１", "month=9999-12", "since=2026-11-31", "since=2026/11/01",
    "since=20261101", "until=tomorrow", "since=2026-12-01&until=2026-11-01", "since=2026-11-01&until=2026-11-01",
    "days=7&month=2026-11", "days=7&since=2026-11-01", "month=2026-11&since=2026-11-01",
    "month=2026-11&until=2026-12-01",
])
def test_a_bad_or_reversed_period_is_refused_in_chinese(site: Site, query: str) -> None:
    r = site.api("GET", f"/api/figures?{query}", "boss")
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "invalid_period" and re.search(r"[\u4e00-\u9fff]", body["message"])


def test_an_unknown_period_is_refused_for_a_download(site: Site) -> None:
    site.login("boss")
    # a download is never another period than the one asked for, under a name that says otherwise
    r = site.client.get("/supervisor/figures.csv?period=last-year")
    assert r.status_code == 400 and "没有这个统计时段" in r.text
    # a page falls back to the default period, and says which
    page = site.client.get("/supervisor?period=last-year").text
    assert "近30天（2026-11-16 至 2026-12-15）" in page
    assert 'href="/supervisor/figures.csv?period=30"' in page
