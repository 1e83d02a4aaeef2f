"""The browser tests' stack, started once per session: the session's embedded broker, a SQLite ledger
migrated by Alembic, one ``hotline worker`` subprocess and one ``hotline web`` subprocess (uvicorn), and
headless Chromium from Debian's package (``/usr/bin/chromium``) driven by Playwright. Playwright's own
browser downloads are never used: the machine has no internet for them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from streams.broker import free_port
from tests.conftest import WorkerProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class WebProcess:
    """A ``hotline web`` subprocess; its log goes to a file shown when something fails."""

    def __init__(self, env: dict[str, str], log_path: Path, base_url: str) -> None:
        self.log_path, self.base_url = log_path, base_url
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "web"], env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"hotline web exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"hotline web not ready after {timeout}s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@dataclass
class Stack:
    base_url: str
    database_url: str
    env: dict[str, str]
    worker: WorkerProcess
    web: WebProcess

    def logs(self) -> str:
        return f"--- worker ---\n{self.worker.log()[-3000:]}\n--- web ---\n{self.web.log()[-3000:]}"

    def api(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


# Module scope, not session: a worker left running would stay in the consumer group of every later test on
# the session's broker and take half of their partitions (routing their tickets into this ledger).
@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Stack]:
    from streams.db import upgrade

    root = tmp_path_factory.mktemp("e2e")
    database_url = f"sqlite:///{root / 'ledger.sqlite3'}"
    upgrade(database_url)
    host = Settings().web_host
    port = free_port(host)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update({
        "HOTLINE_KAFKA_BOOTSTRAP": kafka_bootstrap, "HOTLINE_DATABASE_URL": database_url,
        "HOTLINE_DATA_DIR": str(root / "data"), "HOTLINE_MODEL_DIR": str(trained_model_dir),
        "HOTLINE_WORKER_WEB_PORT": str(free_port(Settings().worker_web_host)), "HOTLINE_LOG_LEVEL": "INFO",
        "HOTLINE_WEB_PORT": str(port),
    })
    worker = WorkerProcess(env, root / "worker.log")
    web = WebProcess(env, root / "web.log", f"http://{host}:{port}")
    try:
        web.wait_ready()
        worker.wait_ready()
        yield Stack(web.base_url, database_url, env, worker, web)
    finally:
        web.stop()
        worker.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file() and shutil.which("chromium") is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium chromium-driver (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium"),
                               args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
