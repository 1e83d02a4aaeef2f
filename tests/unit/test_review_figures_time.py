"""Review of figures at boundaries (time zones, days, rates): what supervisors read must say what happened."""

from __future__ import annotations

import re
from datetime import UTC, date

from models.supervision.figures import AgencyFigures
from streams.console.charts import line_chart
from streams.reports import digest_text, percent


class _NoNames:
    agencies: dict[str, object] = {}


def test_a_rate_between_0_and_1_never_reads_0_or_100_percent() -> None:
    # Given an agency that signed 299 of 300 dispatches on time and resolved 1 of 300 on time
    f = AgencyFigures(
        "BH-CGW", dispatched=300, signed_on_time=299, signed_late=1, resolved_on_time=1, resolved_late=299
    )
    # Then neither rate reads as a perfect or a null score next to the late ones
    assert (percent(f.sign_on_time_rate), percent(f.resolution_on_time_rate)) == ("99.67%", "0.33%")
    assert "按时签收率 99.67%，按时办结率 0.33%" in digest_text({"BH-CGW": f}, _NoNames(), date(2026, 12, 4))
    tips = re.findall(
        r"<title>按时签收率 12-04：([^<]*)</title>",
        line_chart(["12-04"], [("按时签收率", [f.sign_on_time_rate])], title="按时率"),
    )
    assert tips == ["99.67%"]
    # And whole rates keep whole percents
    assert [percent(r) for r in (None, 0.0, 0.5, 0.6667, 1.0)] == ["—", "0%", "50%", "67%", "100%"]


def test_every_place_that_shows_a_rate_rounds_it_alike() -> None:
    from rich.console import Console as RichConsole

    from streams.cli.supervise import figures_table
    from streams.console.pages import templates

    # Given the rate of 299 of 300 on time
    assert templates.env.filters["pct"](299 / 300) == "99.67%"  # the console's pages
    table = figures_table([{"agency": "BH-CGW", "dispatched": 300, "sign_on_time_rate": 0.9967,
                            "resolution_on_time_rate": 1.0, "return_rate": 0.0, "first_time_right_rate": None,
                            "overdue": 1, "average_handling_working_days": None, "repeated_complaints": 0,
                            "alerts": {}}], _NoNames(), "figures")
    out = RichConsole(width=300, record=True)
    out.print(table)
    assert "99.67%" in out.export_text()  # `hotline report`'s table


def test_the_last_n_days_are_calendar_days_in_shanghai_today_included() -> None:
    from datetime import datetime

    from models.workcalendar import TZ
    from streams.reports import period_start

    # Given 2027-01-07 10:00 in Shanghai (02:00 UTC)
    now = datetime(2027, 1, 7, 2, 0, tzinfo=UTC)
    # Then 近7天 starts at 2027-01-01 00:00 Shanghai: 2026-12-31 23:30 is the eighth day back, not in it
    assert period_start(now, 7) == datetime(2027, 1, 1, tzinfo=TZ)
    assert period_start(now, 1) == datetime(2027, 1, 7, tzinfo=TZ)
    assert period_start(now, None) is None and period_start(now, 0) is None
