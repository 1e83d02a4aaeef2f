"""The log-in throttle counts per (user name, client address) and per client address: a stranger who knows a
user name cannot lock its user out, one address cannot spray passwords over many names, memory stays bounded."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config.catalogue import load_catalogue
from config.settings import Settings
from streams.console import create_app
from streams.console.accounts import LoginThrottle, add_user, address_key
from streams.db import Ledger, make_engine, upgrade
from tests.unit.test_console_views import RecordingPublisher

PASSWORD = "s3cret-pass"
ATTACKER, VICTIM = ("203.0.113.9", 40000), ("198.51.100.7", 40000)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    ledger = Ledger(make_engine(url))
    catalogue = load_catalogue()
    add_user(ledger, "scjg", "agency", PASSWORD, agency="BH-SCJG", catalogue=catalogue)
    yield create_app(Settings(data_dir=tmp_path / "data", database_url=url), ledger=ledger, catalogue=catalogue,
                     publisher=RecordingPublisher())  # type: ignore[arg-type]
    ledger.dispose()


def attempt(client: TestClient, username: str, password: str) -> Any:
    client.cookies.clear()
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)  # type: ignore[union-attr]
    return client.post("/login", data={"username": username, "password": password, "csrf": csrf},
                       follow_redirects=False)


def test_a_user_locked_out_from_one_address_still_logs_in_from_another(app: Any) -> None:
    with TestClient(app, client=ATTACKER) as attacker, TestClient(app, client=VICTIM) as victim:
        assert [attempt(attacker, "scjg", f"guess-{i}").status_code for i in range(5)] == [401] * 4 + [429]
        r = attempt(attacker, "scjg", PASSWORD)
        assert r.status_code == 429 and "该账号登录失败次数过多" in r.text and r.headers["retry-after"] == "900"
        assert attempt(victim, "scjg", PASSWORD).status_code == 303  # the real user, elsewhere


def test_one_address_spraying_many_names_is_throttled_whatever_the_names(app: Any) -> None:
    with TestClient(app, client=ATTACKER) as attacker, TestClient(app, client=VICTIM) as victim:
        codes = [attempt(attacker, f"user{i}", "password-1").status_code for i in range(25)]
        assert codes[:19] == [401] * 19 and set(codes[19:]) == {429}
        r = attempt(attacker, "scjg", PASSWORD)  # the address is locked: even a right password is not checked
        assert r.status_code == 429 and "从您当前网络地址的登录失败次数过多" in r.text
        assert attempt(victim, "scjg", PASSWORD).status_code == 303


def test_a_success_does_not_reset_the_addresss_count() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, address_max_failures=4, window_s=60, lockout_s=300, clock=clock)
    for name in ("a", "b", "c"):
        throttle.failed(name, "203.0.113.9")
    throttle.succeeded("mine", "203.0.113.9")
    assert throttle.failed("d", "203.0.113.9") == 300 and throttle.address_retry_after("203.0.113.9") == 300
    assert throttle.retry_after("anyone", "203.0.113.9") == 300 and throttle.retry_after("a", "203.0.113.10") == 0
    clock.t += 300
    assert throttle.retry_after("anyone", "203.0.113.9") == 0


def test_an_ipv6_host_counts_as_its_slash_64() -> None:
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_key("::ffff:203.0.113.9") == "203.0.113.9" and address_key(None) == "-"
    throttle = LoginThrottle(max_failures=50, address_max_failures=3, clock=Clock())
    for i in range(3):
        throttle.failed(f"n{i}", f"2001:db8:1:2::{i + 1}")
    assert throttle.address_retry_after("2001:db8:1:2::abcd") > 0 and not throttle.address_retry_after("2001:db8::1")


def test_memory_is_bounded_in_both_tables_without_lifting_a_lock_out() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=2, address_max_failures=2, window_s=60, lockout_s=300, tracked=10,
                             clock=clock)
    throttle.failed("victim", "198.51.100.7")
    throttle.failed("victim", "198.51.100.7")
    for i in range(500):  # made-up names from ever new addresses
        throttle.failed(f"x{i}", f"10.0.{i // 250}.{i % 250}")
    assert len(throttle._by_name) <= 10 and len(throttle._by_address) <= 10
    assert throttle.retry_after("victim", "198.51.100.7") > 0
    clock.t += 61  # old entries expire: the next new key makes room by dropping them first
    throttle.failed("fresh", "192.0.2.1")
    assert len(throttle._by_name) <= 10 and ("fresh", "192.0.2.1") in throttle._by_name
