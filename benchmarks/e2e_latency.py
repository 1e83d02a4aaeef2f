"""Issue 5: end-to-end latency and sustained rate of the router on the embedded broker.

A ticket's latency = the moment it is produced on ``tickets.received`` to the moment a plain
kafka-python consumer sees it on its agency's queue (or the manual queue); same machine, same clock.
Texts are real citizen messages from ../shared/data/messages_unlabeled.csv (real lengths).

1. paced at --rate tickets/s (default 50) for --seconds: p50 / p99 / max latency;
2. a burst of --burst tickets produced as fast as possible: the sustained routing rate (tickets/s),
   measured from the first produce to the last ticket seen on a queue.
Runs one worker (SQLite ledger) unless told otherwise; prints medians over --runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import median, read_csv, shipped_model_dir
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from config.settings import Settings
from streams.app import TICKETS_RECEIVED, contract_topics
from streams.broker import EmbeddedBroker, free_port
from streams.db import upgrade
from streams.runner import agency_codes, ensure_topics


class QueueWatcher(threading.Thread):
    """Consumes every routed/manual queue from its end at start and stamps when each ticket id first appears.

    The queues (created before the watcher) are assigned to it directly, not through a consumer group: a
    group that commits nothing, rebalanced while the watcher was paused, restarted every partition at its
    end, and the tickets published in between were reported missing although they were on their queues
    (310 of 4,000 in one backlog run on a slow machine; all 310 were found there read from the beginning)."""

    QUEUES = re.compile(r"^tickets\.(routed\..+|manual)$")

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        self.seen: dict[str, float] = {}
        self.stop_flag = threading.Event()
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10)
        self.consumer.assign([TopicPartition(topic, p) for topic in self.consumer.topics()
                              if self.QUEUES.match(topic) for p in self.consumer.partitions_for_topic(topic)])
        self.consumer.seek_to_end()
        self.ready = threading.Event()
        self.paused = threading.Event()  # set: no fetching (a throughput run must not pay for this consumer)

    def run(self) -> None:
        while not self.stop_flag.is_set():
            if self.paused.is_set():
                time.sleep(0.05)
                continue
            batch = self.consumer.poll(timeout_ms=50)
            self.ready.set()
            now = time.monotonic()
            for records in batch.values():
                for r in records:
                    self.seen.setdefault(r.key.decode(), now)
        self.consumer.close()


def start_worker(bootstrap: str, url: str, model_dir: Path, data_dir: str,
                 **extra_env: str) -> subprocess.Popen[bytes]:
    settings = Settings()
    return start_hotline("worker", bootstrap, url, data_dir, HOTLINE_MODEL_DIR=str(model_dir),
                         HOTLINE_WORKER_WEB_PORT=str(free_port(settings.worker_web_host)), **extra_env)


def start_hotline(command: str, bootstrap: str, url: str, data_dir: str | Path,
                  **extra_env: str) -> subprocess.Popen[bytes]:
    """``hotline COMMAND`` on the benchmark's broker and ledger, with only the settings given here (none of this
    shell's HOTLINE_*), its log in ``data_dir/COMMAND.log``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update({"HOTLINE_KAFKA_BOOTSTRAP": bootstrap, "HOTLINE_DATABASE_URL": url, "HOTLINE_DATA_DIR": str(data_dir),
                "HOTLINE_LOG_LEVEL": "WARNING", **extra_env})
    return subprocess.Popen([sys.executable, "-m", "streams.cli", command], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(Path(data_dir) / f"{command}.log", "wb"))


def one_run(texts: list[str], model_dir: Path, rate: float, seconds: float, burst: int, run: int) -> dict:
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(settings.embedded_host) as broker:
        url = f"sqlite:///{Path(tmp) / 'ledger.sqlite3'}"
        upgrade(url)
        ensure_topics(broker.bootstrap, contract_topics(agency_codes(settings)), settings.topic_partitions, 1)
        worker = start_worker(broker.bootstrap, url, model_dir, tmp)
        watcher = QueueWatcher(broker.bootstrap)
        watcher.start()
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
        try:
            watcher.ready.wait(30)
            # warm-up: the worker is up when a first ticket comes through
            sent: dict[str, float] = {}

            def send(tid: str, text: str) -> None:
                sent[tid] = time.monotonic()
                producer.send(TICKETS_RECEIVED, key=tid.encode(),
                              value=json.dumps({"id": tid, "text": text}, ensure_ascii=False).encode())

            send(f"warm-{run}", texts[0])
            producer.flush()
            deadline = time.monotonic() + 90
            while f"warm-{run}" not in watcher.seen and time.monotonic() < deadline:
                time.sleep(0.05)
            # 1. paced
            n_paced = int(rate * seconds)
            start = time.monotonic()
            for i in range(n_paced):
                target = start + i / rate
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                send(f"p{run}-{i}", texts[i % len(texts)])
                producer.flush()
            ids = [f"p{run}-{i}" for i in range(n_paced)]
            deadline = time.monotonic() + 60
            while not all(i in watcher.seen for i in ids) and time.monotonic() < deadline:
                time.sleep(0.05)
            lat = sorted((watcher.seen[i] - sent[i]) * 1000 for i in ids if i in watcher.seen)
            # 2. burst
            b_ids = [f"b{run}-{i}" for i in range(burst)]
            b_start = time.monotonic()
            for i, tid in enumerate(b_ids):
                send(tid, texts[i % len(texts)])
            producer.flush()
            deadline = time.monotonic() + 300
            while not all(i in watcher.seen for i in b_ids) and time.monotonic() < deadline:
                time.sleep(0.05)
            b_end = max(watcher.seen.get(i, time.monotonic()) for i in b_ids)
            return {
                "paced_n": len(ids), "paced_seen": len(lat),
                "p50_ms": lat[len(lat) // 2] if lat else float("nan"),
                "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
                "max_ms": lat[-1] if lat else float("nan"),
                "burst_n": burst, "burst_seen": sum(1 for i in b_ids if i in watcher.seen),
                "burst_rate": burst / (b_end - b_start),
            }
        finally:
            producer.close()
            watcher.stop_flag.set()
            watcher.join(5)
            worker.terminate()
            worker.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rate", type=float, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--burst", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--model-dir", help="a trained model folder (default: train the shipped model afresh)")
    args = ap.parse_args()
    texts = [r["text"] for r in read_csv("messages_unlabeled.csv") if r["text"].strip()]
    model_dir = Path(args.model_dir) if args.model_dir else shipped_model_dir(remove_at_exit=True)
    results = []
    for run in range(args.runs):
        r = one_run(texts, model_dir, args.rate, args.seconds, args.burst, run)
        results.append(r)
        print(f"run {run + 1}: paced {r['paced_seen']}/{r['paced_n']} at {args.rate}/s p50 {r['p50_ms']:.0f} ms "
              f"p99 {r['p99_ms']:.0f} ms max {r['max_ms']:.0f} ms; burst {r['burst_seen']}/{r['burst_n']} "
              f"at {r['burst_rate']:.0f} tickets/s", flush=True)
    print(f"median over {args.runs} runs: p50 {median([r['p50_ms'] for r in results]):.0f} ms, "
          f"p99 {median([r['p99_ms'] for r in results]):.0f} ms at {args.rate:.0f} tickets/s; "
          f"sustained burst rate {median([r['burst_rate'] for r in results]):.0f} tickets/s (one worker)")


if __name__ == "__main__":
    main()
