"""The console's throttles counted in the ledger (migration 0016, ``streams.console.accounts.LedgerFailureCounts``)
on both backends: the same rules as in memory, and one count for every console process, which a restart keeps."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from config.catalogue import load_catalogue
from config.settings import Settings
from models import ledger as t
from streams.console import create_app
from streams.console.accounts import LedgerFailureCounts, LoginThrottle, in_ledger
from streams.console.search import NumberSearchThrottle
from streams.db import Ledger, make_engine
from tests.unit.test_console_views import PASSWORD, RecordingPublisher, _site


class WallClock:
    def __init__(self) -> None:
        self.t = 1_796_000_000.0  # 2026-12: the ledger stores it as a date and time

    def __call__(self) -> float:
        return self.t


def test_failures_within_the_window_lock_a_key_out_for_a_while(database_url: str) -> None:
    ledger, clock = Ledger(make_engine(database_url)), WallClock()
    counts = LedgerFailureCounts(ledger, "login_name", 3, 60, 300, clock=clock)
    key = ("scjg", "203.0.113.9")
    # Given two failures, then one after the window: the first two no longer count
    assert counts.failed(key) == 0 and counts.failed(key) == 0
    clock.t += 61
    assert counts.failed(key) == 0 and counts.retry_after(key) == 0
    # When two more come within the window, then the third in the window locks the key out for 300 s
    assert counts.failed(key) == 0
    assert counts.failed(key) == 300 and counts.retry_after(key) == 300
    assert counts.retry_after(("scjg", "198.51.100.1")) == 0 and counts.retry_after("scjg") == 0  # others not
    clock.t += 299.5
    assert counts.retry_after(key) == 1
    clock.t += 0.5
    assert counts.retry_after(key) == 0
    # and the count started again: a forgotten key too
    assert counts.failed(key) == 0 and counts.failed(key) == 0
    counts.forget(key)
    assert counts.failed(key) == 0 and counts.failed(key) == 0 and counts.failed(key) == 300
    # The tables hold what the windows hold: a failure deletes its counter's old failures and ended lock-outs
    clock.t += 3600
    LedgerFailureCounts(ledger, "login_name", 3, 60, 300, clock=clock).failed("another")
    with ledger.session() as s:
        assert s.scalar(select(func.count()).select_from(t.ThrottleFailure)) == 1
        assert s.scalar(select(func.count()).select_from(t.ThrottleLockout)) == 0
    ledger.dispose()


def test_two_consoles_count_one_user_s_failures_together(database_url: str) -> None:
    ledger, clock = Ledger(make_engine(database_url)), WallClock()
    # Given two consoles' throttles on one ledger (two processes behind one address)
    one, two = (LoginThrottle(max_failures=5, address_max_failures=20, clock=clock, counts=in_ledger(ledger, clock=clock))
                for _ in range(2))
    # When a guesser's five tries are spread over both, then the fifth locks the name out on both
    assert [one.failed("scjg", "203.0.113.9") for _ in range(3)] == [0, 0, 0]
    assert two.failed("scjg", "203.0.113.9") == 0 and two.failed("scjg", "203.0.113.9") == 900
    assert one.retry_after("scjg", "203.0.113.9") == two.retry_after("scjg", "203.0.113.9") == 900
    # and a console started afterwards (a restart) refuses it too
    restarted = LoginThrottle(counts=in_ledger(ledger, clock=clock))
    assert restarted.retry_after("scjg", "203.0.113.9") == 900
    # The number-search throttle counts the same way, per user and per address
    searches = [NumberSearchThrottle(misses=3, window_s=600, counts=in_ledger(ledger, clock=clock)) for _ in range(2)]
    assert searches[0].missed(7, "203.0.113.9") == 0 and searches[1].missed(7, "203.0.113.9") == 0
    assert searches[0].missed(7, "203.0.113.9") == 600 and searches[1].retry_after(7, "198.51.100.1") == 600
    ledger.dispose()


def test_a_restarted_console_still_refuses_a_locked_out_log_in(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"

    def attempt(client: TestClient, password: str) -> Any:
        client.cookies.clear()
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)  # type: ignore[union-attr]
        return client.post("/login", data={"username": "scjg", "password": password, "csrf": csrf},
                           follow_redirects=False)

    for site in _site(tmp_path, url):
        # Given a console where a name failed five times (the default limit), and is refused
        codes = [attempt(site.client, f"wrong-{i}").status_code for i in range(5)]
        assert codes == [401, 401, 401, 401, 429]
    # When the console is started again on the same ledger, then the name is still refused, the right password too
    ledger = Ledger(make_engine(url))
    app = create_app(Settings(data_dir=tmp_path / "data", database_url=url), ledger=ledger,
                     catalogue=load_catalogue(), publisher=RecordingPublisher())  # type: ignore[arg-type]
    with TestClient(app) as client:
        r = attempt(client, PASSWORD)
        assert r.status_code == 429 and "登录失败次数过多" in r.text and int(r.headers["retry-after"]) > 800
    ledger.dispose()
