"""The console's rounds that keep the search's word index behind the ledger (``streams.console.app``): a round
that fails, the ledger locked or a bug, is logged and the next one comes."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.exc import OperationalError

from models import word_index
from streams.console.app import keep_word_index


class _Console:
    """Rounds that answer, in turn, from ``script``: a number of tickets indexed, or an exception to raise."""

    def __init__(self, script: list[int | Exception]) -> None:
        self.script, self.rounds, self.done = list(script), 0, asyncio.Event()

    def catch_up_word_index(self) -> int:
        self.rounds += 1
        step = self.script.pop(0) if self.script else 0
        if not self.script:
            asyncio.run_coroutine_threadsafe(self._finish(), self.loop)
        if isinstance(step, Exception):
            raise step
        return step

    async def _finish(self) -> None:
        self.done.set()


def test_failed_rounds_are_logged_and_the_rounds_go_on(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> _Console:
        console = _Console([OperationalError("UPDATE", {}, Exception("database is locked")), RuntimeError("bug"),
                            word_index.CATCH_UP_BATCH, 3])
        console.loop = asyncio.get_running_loop()  # type: ignore[attr-defined]
        task = asyncio.create_task(keep_word_index(console, every=0.01))  # type: ignore[arg-type]
        await asyncio.wait_for(console.done.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return console

    with caplog.at_level(logging.WARNING, logger="streams.console.app"), ThreadPoolExecutor(1) as thread:
        # a loop of its own, in a thread: the browser tests' session keeps a loop running in this one
        console = thread.submit(asyncio.run, run()).result()
    assert console.rounds == 4
    failures = [r for r in caplog.records if "catching up failed" in r.getMessage()]
    assert [r.levelname for r in failures] == ["WARNING", "ERROR"]  # the lock expected, the bug with its traceback
    assert failures[1].exc_info is not None
