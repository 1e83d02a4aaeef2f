"""The embedded broker's process: it never outlives the process that started it, and a busy port is said."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from streams.broker import BrokerUnavailable, EmbeddedBroker

ROOT = Path(__file__).resolve().parents[2]


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:  # a zombie of init counts as gone
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_broker_dies_with_a_worker_killed_by_sigkill(tmp_path: Path) -> None:
    # a stand-in for the Tansu binary: any long-running process started the way EmbeddedBroker starts it
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    code = textwrap.dedent(f"""
        import time
        import streams.broker as b
        b.broker_binary = lambda: {str(fake)!r}
        b.wait_for_metadata = lambda *a, **k: 0.0
        broker = b.EmbeddedBroker("127.0.0.1").start()
        print(broker.process.pid, flush=True)
        time.sleep(30)
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    broker_pid = int(parent.stdout.readline())  # type: ignore[union-attr]
    try:
        parent.kill()  # SIGKILL: no finally, no atexit
        parent.wait(5)
        assert _gone(broker_pid, 3), "the broker outlived the process that started it"
    finally:
        if not _gone(broker_pid, 0):
            os.kill(broker_pid, signal.SIGKILL)
        parent.stdout.close()  # type: ignore[union-attr]


def test_a_configured_port_in_use_is_refused_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.broker as b

    started: list[object] = []
    waited: list[object] = []  # "at once": no sleeping, no waiting for an answer (counted, not timed)
    monkeypatch.setattr(b.subprocess, "Popen", lambda *a, **k: started.append(a) or pytest.fail("started"))
    monkeypatch.setattr(b.time, "sleep", lambda seconds: waited.append(("sleep", seconds)))
    monkeypatch.setattr(b, "wait_for_metadata", lambda *a, **k: waited.append(("metadata", a)) or 0.0)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(BrokerUnavailable, match=f"127.0.0.1:{port}.*HOTLINE_EMBEDDED_PORT"):
            EmbeddedBroker("127.0.0.1", port).start()
    assert not started and waited == []
