"""Classification in child processes, so the worker's event loop and the classifier stop sharing one GIL.

Profiling the worker (docs/results.md) showed classification in a thread running at a third of its speed
alone: tokenising and scoring hold the GIL that the event loop, the lifecycle and supervision need too.
A :class:`RouterPool` keeps ``processes`` children, each with its own :class:`~classifier.router.Router`
loaded once from the same settings (so the same model version), and answers ``route_many`` from them.
With ``processes=0`` it routes in one background thread of the calling process instead (tests, small
machines). A child that dies is replaced and the batch is asked again: a ticket is never dropped
because the classifier crashed under it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from classifier.decision import Decision
from classifier.router import Router, RouteRequest
from config.settings import Settings

log = logging.getLogger(__name__)

_child_router: Router | None = None  # one per child process, loaded by the pool's initializer


def _load_in_child(settings: Settings) -> None:
    global _child_router
    _child_router = Router.load(settings)
    gc.collect()
    gc.freeze()  # the model lives as long as the child: no full collection walks it (see streams.runner)


def _route_in_child(requests: Sequence[RouteRequest]) -> list[Decision]:
    if _child_router is None:  # pragma: no cover - the initializer always ran first
        raise RuntimeError("classifier child started without its router")
    return _child_router.route_many(requests)


class RouterPool:
    """``route_many`` off the event loop: in ``processes`` child processes, or a thread when 0."""

    def __init__(self, router: Router, processes: int = 0, *, retries: int = 2) -> None:
        self.router = router
        self.processes = processes
        self.retries = retries
        self._executor: Executor = self._new_executor()

    def _new_executor(self) -> Executor:
        if self.processes <= 0:
            return ThreadPoolExecutor(max_workers=1, thread_name_prefix="classify")
        # spawn, not fork: the worker has threads (faust's consumer, the ledger executor) and a fork
        # would copy their locks mid-use; a spawned child imports cleanly and loads the model once.
        return ProcessPoolExecutor(max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_load_in_child, initargs=(self.router.settings,))

    def warm_up(self) -> list[Future[list[Decision]]]:
        """Start the children loading their models now (in the background: it overlaps the worker joining
        its consumer group) rather than under the first tickets. Returns the futures, for who must wait."""
        if self.processes <= 0:
            return []
        return [self._executor.submit(_route_in_child, [RouteRequest("预热")]) for _ in range(self.processes)]

    async def route_many(self, requests: Sequence[RouteRequest]) -> list[Decision]:
        if not requests:
            return []
        loop = asyncio.get_running_loop()
        for attempt in range(self.retries + 1):
            try:
                if self.processes <= 0:
                    return await loop.run_in_executor(self._executor, self.router.route_many, list(requests))
                return await loop.run_in_executor(self._executor, _route_in_child, list(requests))
            except BrokenProcessPool:
                # a child died (killed, out of memory): start fresh children and ask again
                log.error("a classifier process died; restarting the pool (attempt %d of %d)",
                          attempt + 1, self.retries + 1)
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()
        raise RuntimeError(f"the classifier processes died {self.retries + 1} times on one batch")

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
