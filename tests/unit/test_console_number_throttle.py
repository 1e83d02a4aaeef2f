"""The throttle on searches by a caller's number that found no one (``NumberSearchThrottle``), on its own with an
injected clock: each such search told a dispatcher, who sees callers' numbers masked, that a guess at the hidden
digits of 138****5678 was wrong, and 10,000 of them read the number."""

from __future__ import annotations

from types import SimpleNamespace

from streams.console.search import NumberSearchThrottle, number_found, parse_search

HERE, ELSEWHERE = "203.0.113.9", "198.51.100.7"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_21st_miss_within_the_window_is_refused_until_the_window_has_passed() -> None:
    clock = Clock()
    throttle = NumberSearchThrottle(misses=20, window_s=600, clock=clock)
    assert [throttle.missed(1, HERE) for _ in range(19)] == [0] * 19 and throttle.retry_after(1, HERE) == 0
    assert throttle.missed(1, HERE) == 600  # the 20th: the next number search is refused
    assert throttle.retry_after(1, HERE) == 600 and throttle.retry_after(1, ELSEWHERE) == 600  # the user, anywhere
    assert throttle.retry_after(2, HERE) == 0  # another user is not affected, also at the same address
    clock.t += 599.5
    assert throttle.retry_after(1, HERE) == 1
    clock.t += 0.5
    assert throttle.retry_after(1, HERE) == 0  # over; the count starts again
    assert [throttle.missed(1, HERE) for _ in range(19)] == [0] * 19


def test_misses_spread_beyond_the_window_are_not_added_up_within_a_day() -> None:
    clock = Clock()
    throttle = NumberSearchThrottle(misses=20, window_s=600, misses_per_day=200, clock=clock)
    for _ in range(10):  # 190 misses, 19 every 10 minutes: never 20 in one window
        assert [throttle.missed(1, HERE) for _ in range(19)] == [0] * 19
        clock.t += 600
    assert throttle.retry_after(1, HERE) == 0


def test_a_script_kept_under_the_window_s_limit_is_stopped_by_the_day_s() -> None:
    clock = Clock()
    throttle = NumberSearchThrottle(misses=20, window_s=600, misses_per_day=200, address_misses=10_000, clock=clock)
    for _ in range(10):
        for _ in range(19):
            throttle.missed(1, HERE)
        clock.t += 600
    assert [throttle.missed(1, HERE) for _ in range(10)] == [0] * 9 + [24 * 3600]  # the 200th within the day
    clock.t += 3600
    assert throttle.retry_after(1, HERE) == 23 * 3600


def test_one_address_is_throttled_across_its_users() -> None:
    throttle = NumberSearchThrottle(misses=20, window_s=600, address_misses=30, clock=Clock())
    for user in (1, 2):  # two log-ins at one desk, 15 misses each: neither user reaches 20
        for _ in range(15):
            throttle.missed(user, HERE)
    assert throttle.retry_after(3, HERE) == 600  # a third user there too
    assert throttle.retry_after(3, ELSEWHERE) == 0 and throttle.retry_after(1, ELSEWHERE) == 0


def test_a_number_search_found_its_ticket_or_its_caller_not_the_number_as_a_word() -> None:
    search = parse_search("138-1234-5678")
    assert search is not None and search.caller_key == "13812345678"
    ticket = lambda tid, key=None: SimpleNamespace(id=tid, caller_key=key)  # noqa: E731
    assert number_found(search, [ticket("T1", "13812345678")])
    assert number_found(search, [ticket("138-1234-5678")])  # a ticket with that number
    # a ticket found by the number as a word (in its address: a planted one) is no caller found
    assert not number_found(search, [ticket("T2", "13900001111"), ticket("T3")])
    assert not number_found(search, [])
