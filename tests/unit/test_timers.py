"""The worker's timers (``streams.app.every``): a round running when the worker stops is finished before faust
flushes and stops its producer, no round starts afterwards, and a failing round does not stop the timer."""

from __future__ import annotations

import asyncio

import pytest

from streams import app as streams_app
from tests.conftest import run_async


@pytest.fixture(autouse=True)
def _fresh_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams_app, "_stopping", False)
    monkeypatch.setattr(streams_app, "_rounds", set())


def test_a_round_running_at_shutdown_finishes_before_the_producer_is_flushed() -> None:
    events: list[str] = []

    async def slow_round() -> None:
        events.append("round started")
        await asyncio.sleep(0.3)  # e.g. waiting for the broker to acknowledge a tick's alerts
        events.append("round sent")

    async def scenario() -> None:
        # Given a timer whose round is in progress
        timer = asyncio.ensure_future(streams_app.every(0.01, slow_round, name="test round"))
        while "round started" not in events:
            await asyncio.sleep(0.005)
        # When faust announces the shutdown (its consumer stopped; the producer flush comes next)
        await streams_app._finish_rounds(None)
        events.append("producer flushed")
        await asyncio.wait_for(timer, timeout=1)  # the timer ended by itself: faust has nothing to cancel

    run_async(scenario())
    # Then the round finished first, and no other round started after the announcement
    assert events == ["round started", "round sent", "producer flushed"]


def test_no_round_starts_once_the_worker_is_stopping() -> None:
    rounds: list[int] = []

    async def round_() -> None:
        rounds.append(1)

    async def scenario() -> None:
        await streams_app._finish_rounds(None)  # nothing running: returns at once
        await asyncio.wait_for(streams_app.every(0.01, round_, name="test round"), timeout=1)

    run_async(scenario())
    assert rounds == []


def test_a_failing_round_is_logged_and_the_next_one_runs(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    async def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("ledger said no")
        if len(calls) == 3:
            streams_app._stopping = True

    run_async(asyncio.wait_for(streams_app.every(0.01, flaky, name="flaky round"), timeout=2))
    assert len(calls) == 3
    assert "flaky round failed" in caplog.text and "ledger said no" in caplog.text


def test_skipped_rounds_do_not_run() -> None:
    ran: list[int] = []
    checks: list[int] = []

    def skip() -> bool:
        checks.append(1)
        if len(checks) == 5:
            streams_app._stopping = True  # end the timer once it has skipped a few times
        return True

    async def round_() -> None:
        ran.append(1)

    run_async(asyncio.wait_for(streams_app.every(0.001, round_, name="r", skip=skip), timeout=2))
    assert ran == [] and len(checks) == 5
