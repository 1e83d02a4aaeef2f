"""The stages' dependencies, wired in one place so tests can swap in fakes.

Agents reach the ledger (blocking SQLAlchemy) only through :meth:`Services.db`, which runs the call
on a single background thread: the event loop stays free and writes to SQLite stay serialised.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.exc import OperationalError

from classifier.router import Router
from config.settings import Settings
from models.directory import Catalogue
from streams.db import Ledger

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Services:
    settings: Settings
    ledger: Ledger
    router: Router
    catalogue: Catalogue
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger"))
    cpu_executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="classify"))
    max_backoff: float = 30.0

    async def cpu(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-bound work (classification) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.cpu_executor, functools.partial(fn, *args))

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a ledger call off the loop; retry while the database is unreachable (nothing is dropped)."""
        loop = asyncio.get_running_loop()
        delay, attempt = 0.2, 0
        while True:
            try:
                return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))
            except OperationalError as exc:  # unreachable, restarting, or locked: wait, don't drop
                attempt += 1
                log.warning("ledger unavailable (attempt %d, retry in %.1fs): %s", attempt, delay,
                            str(exc).splitlines()[0])
                await asyncio.sleep(delay)
                delay = min(self.max_backoff, delay * 2) * (0.8 + 0.4 * random.random())

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.cpu_executor.shutdown(wait=True)
        self.ledger.dispose()


_services: Services | None = None


def wire(services: Services) -> Services:
    global _services
    _services = services
    return services


def services() -> Services:
    if _services is None:
        raise RuntimeError("streams.wiring.wire() was not called before the agents started")
    return _services
