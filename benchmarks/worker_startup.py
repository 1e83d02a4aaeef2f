"""Time from ``hotline worker`` launch to its first consumed message, on the embedded broker.

Each run: a fresh embedded broker and SQLite ledger, one ticket already waiting on
``tickets.received``, then the worker is launched; the clock stops when the ticket is in the ledger.
The same is done with faust's default group timeouts for comparison. Prints medians, and how much of
each run the worker spent setting itself up (model, catalogue, ledger, topics: its "worker starting ...
after launch" log line) before faust started joining the consumer group.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import failed, median, shipped_model_dir
from kafka import KafkaProducer
from sqlalchemy import select

from config.settings import Settings
from models import ledger as t
from streams.app import TICKETS_RECEIVED, contract_topics
from streams.broker import EmbeddedBroker, free_port
from streams.db import Ledger, make_engine, upgrade
from streams.runner import ensure_topics

FAUST_DEFAULTS = {"HOTLINE_BROKER_REBALANCE_TIMEOUT": "60", "HOTLINE_BROKER_SESSION_TIMEOUT": "60",
                  "HOTLINE_BROKER_HEARTBEAT_INTERVAL": "3"}


SETUP_LINE = re.compile(rb"worker starting: .*?([0-9.]+)s after launch")


def one_run(extra_env: dict[str, str], timeout: float, model_dir: Path) -> tuple[float, float]:
    """Seconds from launch to the ticket in the ledger, and the worker's own set-up within them."""
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(settings.embedded_host) as broker:
        url = f"sqlite:///{Path(tmp) / 'ledger.sqlite3'}"
        upgrade(url)
        ensure_topics(broker.bootstrap, contract_topics(), settings.topic_partitions, 1)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        producer.send(TICKETS_RECEIVED, key=b"BENCH-1",
                      value=json.dumps({"id": "BENCH-1", "text": "路灯不亮了"}, ensure_ascii=False).encode())
        producer.flush()
        producer.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        env.update({"HOTLINE_KAFKA_BOOTSTRAP": broker.bootstrap, "HOTLINE_DATABASE_URL": url,
                    "HOTLINE_DATA_DIR": tmp, "HOTLINE_LOG_LEVEL": "INFO", "HOTLINE_MODEL_DIR": str(model_dir),
                    "HOTLINE_WORKER_WEB_PORT": str(free_port(settings.worker_web_host)), **extra_env})
        ledger = Ledger(make_engine(url))
        started = time.monotonic()
        log_path = Path(tmp) / "worker.log"
        log_file = open(log_path, "wb")
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                                stdout=log_file, stderr=subprocess.STDOUT)
        try:
            while time.monotonic() - started < timeout:
                with ledger.session() as s:
                    if s.scalar(select(t.Ticket.id).where(t.Ticket.id == "BENCH-1")):
                        took = time.monotonic() - started
                        setup = SETUP_LINE.search(log_path.read_bytes())
                        return took, float(setup.group(1)) if setup else float("nan")
                time.sleep(0.05)
            print(f"  run timed out after {timeout}s; worker log tail:\n"
                  + log_path.read_text(errors="replace")[-1500:], file=sys.stderr)
            return float("nan"), float("nan")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log_file.close()
            ledger.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--default-runs", type=int, default=3, help="runs with faust's default timeouts (0 = skip)")
    ap.add_argument("--model-dir", help="a trained model folder (default: train the shipped model once)")
    args = ap.parse_args()
    model_dir = Path(args.model_dir) if args.model_dir else shipped_model_dir(remove_at_exit=True)  # the worker needs one
    tuned, setup = zip(*(one_run({}, 60, model_dir) for _ in range(args.runs)), strict=True)
    print(f"tuned (4 s rebalance / 6 s session / 1 s heartbeat): runs={[round(x, 2) for x in tuned]} "
          f"median={median(list(tuned)):.2f}s{timed_out(tuned)}; the worker's set-up in them: median "
          f"{median(list(setup)):.2f}s")
    if args.default_runs:
        default = [one_run(FAUST_DEFAULTS, 90, model_dir)[0] for _ in range(args.default_runs)]
        print(f"faust defaults (60 s / 60 s / 3 s):                  runs={[round(x, 2) for x in default]} "
              f"median={median(default):.2f}s{timed_out(default)}")
        print(f"ratio default/tuned: {median(default) / median(list(tuned)):.1f}x")


def timed_out(runs: tuple[float, ...] | list[float]) -> str:
    """A timed-out run (NaN) is left out of the median: say so, since it was the slowest."""
    n = failed(list(runs))
    return f" of {len(runs) - n} runs ({n} timed out and left out)" if n else ""


if __name__ == "__main__":
    main()
