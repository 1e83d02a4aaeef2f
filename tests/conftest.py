"""Shared fixtures: real services, started once per session.

- ``kafka_bootstrap``: the embedded Kafka-compatible broker (Tansu, memory only).
- ``database_url``: parametrised over SQLite (always) and PostgreSQL at 127.0.0.1:5432 (database
  ``test``, trust auth), the latter skipped with a clear message when nothing answers there. Each
  PostgreSQL run gets its own schema, built by the Alembic migrations like production.
- ``start_worker``: launches ``hotline worker`` as a real subprocess against those.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from streams.broker import EmbeddedBroker, free_port

PG_HOST, PG_PORT, PG_DB = "127.0.0.1", 5432, "test"


def postgres_answers() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with EmbeddedBroker(Settings().embedded_host) as broker:
        yield broker.bootstrap


@pytest.fixture
def own_broker() -> Iterator[str]:
    """A broker of the test's own, for tests whose workers must not meet state other tests left on the
    session's broker: the consumer group's offsets and the tables' changelogs (fixed ticket ids, rebalances
    of several workers)."""
    with EmbeddedBroker(Settings().embedded_host) as broker:
        yield broker.bootstrap


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The team-corpus model, trained once per run (workers get it via HOTLINE_MODEL_DIR).

    Under pytest-xdist every test process has its own session; they share one model in the run's common
    temporary folder, trained by whichever asks first while the others wait on the lock (two trainings at
    once on two cores took each twice as long)."""
    from classifier.training import team_dataset, train
    from config.catalogue import load_catalogue

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the folder all of this run's test processes have theirs in
    folder, done = root / "shared-model", root / "shared-model.trained"
    with open(root / "shared-model.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if training fails
        if not done.exists():
            catalogue = load_catalogue()
            train(team_dataset(catalogue, per_matter=30), catalogue, folder,
                  threshold=Settings().confidence_threshold)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str]:
    if not postgres_answers():
        pytest.skip(f"PostgreSQL not answering at {PG_HOST}:{PG_PORT}; PostgreSQL ledger tests skipped")
    import psycopg

    schema = f"hotline_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user="postgres", autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
    yield (f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{PG_DB}"
           f"?options=-csearch_path%3D{schema}")
    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user="postgres", autocommit=True) as c:
        c.execute(f'DROP SCHEMA "{schema}" CASCADE')


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked ``postgresql_in_slow`` runs on SQLite in ``make test`` and on PostgreSQL in
    ``make test-slow``. Such tests drive workers for 20-50 s each, where the backend is one of many parts;
    the ledger's writes and queries run on both backends in ``make test`` (test_ledger, the console, the
    main routing flow and a supervision flow), so the second backend there bought minutes, not coverage."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if (item.get_closest_marker("postgresql_in_slow") and callspec is not None
                and callspec.params.get("database_url") == "postgresql"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty ledger database (SQLite file, or a fresh PostgreSQL schema)."""
    from streams.db import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    else:
        base = request.getfixturevalue("pg_schema_url")
        # each test gets its own schema so tests never see each other's rows
        import psycopg

        schema = f"hotline_t_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user="postgres",
                             autocommit=True) as c:
            c.execute(f'CREATE SCHEMA "{schema}"')
        request.addfinalizer(lambda: _drop_schema(schema))
        url = base.split("?")[0] + f"?options=-csearch_path%3D{schema}"
    upgrade(url)
    return url


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user="postgres", autocommit=True) as c:
        c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class WorkerProcess:
    """A ``hotline worker`` subprocess; its log goes to a file the test can read on failure."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started = time.monotonic()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 60) -> float:
        while time.monotonic() - self.started < timeout:
            if "[^Worker]: Ready" in self.log():
                return time.monotonic() - self.started
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log()[-4000:]}")

    def stop(self, sig: int = 15) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def start_worker(kafka_bootstrap: str, trained_model_dir: Path, tmp_path: Path
                 ) -> Iterator[Callable[..., WorkerProcess]]:
    workers: list[WorkerProcess] = []

    def _start(database_url: str, **extra_env: str) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        env.update({
            "HOTLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "HOTLINE_DATABASE_URL": database_url,
            "HOTLINE_DATA_DIR": str(tmp_path / f"worker{len(workers)}"),
            "HOTLINE_WORKER_WEB_PORT": str(free_port(Settings().worker_web_host)),
            "HOTLINE_LOG_LEVEL": "INFO",
            "HOTLINE_MODEL_DIR": str(trained_model_dir),
            **extra_env,
        })
        w = WorkerProcess(env, tmp_path / f"worker{len(workers)}.log")
        workers.append(w)
        return w

    yield _start
    for w in workers:
        w.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 30, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture
def catch_up_world(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """For the reconciler's catch-up: a quiet routing agent (started long ago, nothing handled), no stalls
    seen, and a route_batch and a consumer seek that record what they were given (``.routed``: the
    messages, ``.nudged``: (partition, offset))."""
    from types import SimpleNamespace

    from streams import reconcile
    from streams.routing import activity

    world = SimpleNamespace(routed=[], nudged=[])

    async def route_batch(found):  # type: ignore[no-untyped-def]
        world.routed.extend(found)

    async def nudge(topic: str, partition: int, offset: int) -> None:
        world.nudged.append((partition, offset))

    monkeypatch.setattr(reconcile, "route_batch", route_batch)
    monkeypatch.setattr(reconcile, "nudge", nudge)
    monkeypatch.setattr(reconcile, "stalls", {})
    monkeypatch.setattr(activity, "busy", False)
    monkeypatch.setattr(activity, "started", time.monotonic() - 100)
    monkeypatch.setattr(activity, "handled", {})
    return world


def run_async(coro: Any) -> Any:
    """Run a coroutine to its end on an event loop of its own, in a thread: the browser tests leave a loop
    running in the main thread, where asyncio.run refuses to start another."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def catch_up_rounds(reader: Any, committed: dict[int, int], n: int, interval: float = 0.01,
                    owned: set[int] | None = None) -> int:
    """n catch-up rounds on the ``owned`` partitions (default: those ``committed``), each on a loop of its own
    (:func:`run_async`)."""
    from streams.app import TICKETS_RECEIVED
    from streams.reconcile import catch_up

    total = 0
    for _ in range(n):
        total += run_async(catch_up(reader, TICKETS_RECEIVED, committed,
                                    set(committed) if owned is None else owned, interval))
        time.sleep(interval * 2)
    return total
