"""Issue 8: throughput and latency against the limits, with the baselines measured in the same run.

On one embedded broker, with the same real-length texts (../shared/data/messages_unlabeled.csv):

1. broker alone: produce N raw ticket messages with kafka-python and consume them back (messages/s);
2. classifier alone: ``Router.route_many`` over the same N texts in one process (tickets/s);
3. end to end, one worker and two workers: a backlog of N tickets produced at once; the sustained rate is
   N / (first produce -> the broker acknowledged the last ticket on its agency or manual queue), read from
   the ledger's ``published_at`` (the router stores each decision, publishes it, and stamps the
   acknowledgement). The harness only polls the ledger meanwhile: a consumer of the 388 queue partitions
   cost 1.5 ms of CPU per ticket, a third of the machine, in session 5. Afterwards that consumer checks
   that every ticket is on a queue ("missing"). The web console runs beside the workers, as deployed (since
   session 26 it keeps the search's word index behind the ledger: its CPU is reported apart;
   ``--without-console`` leaves it out);
4. latency at a paced --rate (default 100 tickets/s) with two workers, p50 / p99, measured two ways in
   the same run: produce -> the broker acknowledged the ticket on its queue (the router's ledger stamps
   ``published_at`` when the acknowledgement comes; the ticket is then on its queue and in the ledger),
   and produce -> this harness's consumer saw it on the queue (which adds the harness's own fetch of
   388 queue partitions: ~30 ms at the median).

Each ticket carries a caller's number (one of 2,000) and an address (one of ~750 in the three districts'
streets), as the platform's tickets do, so supervision links them (2-3 link facts per ticket, 重复件 and
联合执法 alerts); ``--bare`` sends text only, as every run before session 11 did. After each backlog the
harness also waits until the workers' group has committed every message of tickets.received,
tickets.events and supervision.links ("all stages caught up"): the whole product done with the backlog.
``--backlog-only`` then counts the messages on every topic per ticket received (the census that found the
link facts' one-message-per-fact cost in session 12).

Ratios are from the same run: e2e / classifier alone is the share of the classifier's speed the whole
pipeline keeps. Prints one line per run and the medians over --runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

from _common import cpu_seconds, median, process_tree, read_csv, shipped_model_dir
from e2e_latency import QueueWatcher, start_hotline, start_worker
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from config.settings import Settings
from models.ledger import RoutingDecision
from streams.app import (
    ROUTED_PREFIX,
    SUPERVISION_LINKS,
    TICKETS_EVENTS,
    TICKETS_RECEIVED,
    app,
    contract_topics,
)
from streams.broker import BrokerReader, EmbeddedBroker, free_port, log_ends
from streams.db import Ledger, make_engine, upgrade
from streams.demo import texts as demo_texts
from streams.runner import agency_codes, ensure_topics


def broker_alone(bootstrap: str, texts: list[str], tag: str) -> float:
    topic = f"bench.raw.{tag}"
    ensure_topics(bootstrap, [topic], Settings().topic_partitions, 1)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    # assigned, not subscribed: a consumer-group join would dominate the figure
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50)
    consumer.assign([TopicPartition(topic, p) for p in range(Settings().topic_partitions)])
    consumer.seek_to_beginning()
    started = time.monotonic()
    for i, text in enumerate(texts):
        producer.send(topic, key=f"r{i}".encode(), value=json.dumps({"id": f"r{i}", "text": text},
                                                                     ensure_ascii=False).encode())
    producer.flush()
    seen = 0
    while seen < len(texts) and time.monotonic() - started < 120:
        seen += sum(len(v) for v in consumer.poll(timeout_ms=100).values())
    elapsed = time.monotonic() - started
    producer.close()
    consumer.close()
    return seen / elapsed


def classifier_alone(model_dir: Path, texts: list[str]) -> float:
    from classifier.router import Router, RouteRequest

    settings = Settings(model_dir=model_dir)
    router = Router.load(settings)
    requests = [RouteRequest(text, None, None) for text in texts]
    router.route_many(requests[:64])  # warm-up: jieba's dictionary and first-call costs
    started = time.monotonic()
    for i in range(0, len(requests), 256):
        router.route_many(requests[i:i + 256])
    return len(requests) / (time.monotonic() - started)


def callers_and_places(rng: random.Random) -> tuple[list[str], list[str]]:
    """2,000 callers and 744 addresses (8 buildings of each invented estate of the demo) in the three districts'
    streets: a backlog of 4,000 tickets then has repeat callers and places, so supervision's linkers see their
    facts (2-3 per ticket) and raise 重复件 and 联合执法 alerts, as they would on a real day."""
    callers = [f"1{rng.choice('35789')}{rng.randrange(10**9):09d}" for _ in range(2000)]
    places = [f"{rng.choice(demo_texts.DISTRICT_PREFIXES[j])}{street}{estate}{n}号楼"
              for j, streets in demo_texts.ESTATES.items() for street, estates in streets.items()
              for estate in estates for n in range(1, 9)]
    return callers, places


class Pipeline:
    """An embedded broker, a SQLite ledger (or a fresh schema in the PostgreSQL database ``database_url``) and
    ``workers`` router workers in one consumer group."""

    def __init__(self, model_dir: Path, workers: int, bare: bool = False, database_url: str | None = None,
                 console: bool = True, **worker_env: str) -> None:
        self.model_dir, self.n_workers, self.worker_env = model_dir, workers, worker_env
        self.database_url, self.schema, self.with_console = database_url, None, console
        self.rng = random.Random(12345)
        self.callers, self.places = ([], []) if bare else callers_and_places(self.rng)

    def __enter__(self) -> Pipeline:
        settings = Settings()
        self.tmp = tempfile.TemporaryDirectory()
        self.broker = EmbeddedBroker(settings.embedded_host).start()
        self.url = url = f"sqlite:///{Path(self.tmp.name) / 'ledger.sqlite3'}"
        if self.database_url:  # a schema of its own, dropped at the end: each pipeline starts from an empty ledger
            self.schema = f"throughput_{os.getpid()}_{int(time.time() * 1000)}"
            self._on_server(f'CREATE SCHEMA "{self.schema}"')
            self.url = url = f"{self.database_url}?options=-csearch_path%3D{self.schema}"
        upgrade(url)
        ensure_topics(self.broker.bootstrap, contract_topics(agency_codes(settings)), settings.topic_partitions, 1)
        self.workers = []
        for i in range(self.n_workers):
            folder = Path(self.tmp.name) / f"w{i}"
            folder.mkdir()
            self.workers.append(start_worker(self.broker.bootstrap, url, self.model_dir, str(folder),
                                             **self.worker_env))
        # the web console, as deployed beside the workers: it keeps the search's word index behind the ledger
        self.console = start_console(self.broker.bootstrap, url, Path(self.tmp.name) / "console") \
            if self.with_console else None
        self.watcher = QueueWatcher(self.broker.bootstrap)
        self.watcher.start()
        self.watcher.ready.wait(30)
        self.producer = KafkaProducer(bootstrap_servers=self.broker.bootstrap, linger_ms=2)
        self.sent: dict[str, float] = {}
        self.sent_wall: dict[str, float] = {}  # wall clock, to compare with the ledger's timestamps
        # warm-up: one ticket per partition key range until every worker has taken partitions
        warm = [f"warm-{i}" for i in range(8)]
        for tid in warm:
            self.send(tid, "小区门口的路灯坏了好几天了，晚上很黑，请尽快修理。")
        self.producer.flush()
        self.wait(warm, 120)
        return self

    def send(self, tid: str, text: str) -> None:
        self.sent_wall[tid] = time.time()
        self.sent[tid] = time.monotonic()
        ticket = {"id": tid, "text": text}
        if self.callers:  # a caller and a place, as the platform's tickets carry: supervision links them
            ticket["caller_phone"] = self.rng.choice(self.callers)
            ticket["address"] = self.rng.choice(self.places)
        self.producer.send(TICKETS_RECEIVED, key=tid.encode(), value=json.dumps(ticket, ensure_ascii=False).encode())

    def wait(self, ids: list[str], timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(i in self.watcher.seen for i in ids):
            time.sleep(0.05)
        return sum(1 for i in ids if i in self.watcher.seen)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of the workers (with their classifier children), the broker, the console (keeping the
        word index) and this harness."""
        workers = sum(cpu_seconds(p) for w in self.workers for p in process_tree(w.pid))
        return {"workers": workers, "broker": cpu_seconds(self.broker.process.pid if self.broker.process else 0),
                "console": cpu_seconds(self.console.pid) if self.console else 0.0, "harness": cpu_seconds(os.getpid())}

    def backlog(self, texts: list[str], tag: str) -> tuple[float, int]:
        """Tickets/s from the first produce to the last acknowledged publication, and how many reached a queue."""
        ids = [f"{tag}-{i}" for i in range(len(texts))]
        self.watcher.paused.set()
        before = self.cpu()
        started = time.time()
        for tid, text in zip(ids, texts, strict=True):
            self.send(tid, text)
        self.producer.flush()
        published, last = self.published(tag, len(ids), 600)
        after = self.cpu()
        # CPU milliseconds per ticket, by whom: with 2 cores shared by all three, this is where the time goes
        self.cpu_per_ticket = {k: (after[k] - before[k]) * 1000 / max(published, 1) for k in after}
        # The lifecycle and supervision stages are still working through the backlog's events: how long
        # until every stage has committed everything (the whole product caught up), and at what CPU cost
        drained = self.drained(600)
        whole = self.cpu()
        self.all_stages = {"rate": published / (drained - started), "lag": drained - last,
                           "cpu_worker": (whole["workers"] - before["workers"]) * 1000 / max(published, 1)}
        self.watcher.paused.clear()
        seen = self.wait(ids, 120)  # and each is really on a queue
        return published / (last - started), seen

    def published(self, tag: str, n: int, timeout: float) -> tuple[int, float]:
        """Poll the ledger until ``n`` first decisions of ``tag`` are acknowledged: (count, wall time of the last)."""
        from sqlalchemy import func, select

        ledger = Ledger(make_engine(self.url))
        query = (select(func.count(), func.max(RoutingDecision.published_at))
                 .where(RoutingDecision.ticket_id.like(f"{tag}-%"), RoutingDecision.attempt == 1,
                        RoutingDecision.published_at.is_not(None)))
        deadline = time.monotonic() + timeout
        try:
            while True:
                with ledger.session() as s:
                    count, last = s.execute(query).one()
                if count >= n or time.monotonic() > deadline:
                    return count, last.timestamp() if last else time.time()
                time.sleep(0.1)
        finally:
            ledger.dispose()

    def drained(self, timeout: float) -> float:
        """Wall time at which the workers' group had committed every message of its input topics (tickets,
        lifecycle events, link facts): every stage done with the backlog. Committed offsets move every
        ~3 s (faust's commit interval), so this is as coarse as that."""
        topics = (TICKETS_RECEIVED, TICKETS_EVENTS, SUPERVISION_LINKS)
        tps = [(t, p) for t in topics for p in range(Settings().topic_partitions)]
        reader = BrokerReader(self.broker.bootstrap, app.conf.id)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                committed = {(t, p): o for t in topics for p, o in reader.committed(t).items()}
                ends = asyncio.run(log_ends(self.broker.bootstrap, {tp: committed.get(tp, 0) for tp in tps}))
                if all(committed.get(tp, 0) >= end for tp, end in ends.items()):
                    return time.time()
                time.sleep(0.5)
            raise TimeoutError(f"the workers did not catch up within {timeout:.0f}s")
        finally:
            reader.close()

    def census(self) -> dict[str, float]:
        """Messages on each topic so far, per ticket received (the agency queues summed as tickets.routed.*):
        how many broker writes a ticket causes, stage by stage. Each costs a produce, and for the stages' own
        topics a fetch and an acknowledgement too."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.broker.bootstrap)
        try:
            described = admin.describe_topics(admin.list_topics())
        finally:
            admin.close()
        positions = {(d["name"], p["partition_index"]): 0 for d in described for p in d["partitions"]}
        counts: dict[str, int] = {}
        for (topic, _), end in asyncio.run(log_ends(self.broker.bootstrap, positions)).items():
            name = f"{ROUTED_PREFIX}*" if topic.startswith(ROUTED_PREFIX) else topic
            counts[name] = counts.get(name, 0) + end
        received = max(counts.get(TICKETS_RECEIVED, 0), 1)
        return {k: v / received for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if v}

    def settle(self, timeout: float = 120) -> None:
        """Wait until the workers are idle: after a backlog the lifecycle and supervision stages are still
        busy with its events for a while, and a latency run must not measure that."""
        deadline = time.monotonic() + timeout
        last = self.cpu()["workers"]
        while time.monotonic() < deadline:
            time.sleep(1)
            now = self.cpu()["workers"]
            if now - last < 0.1 * len(self.workers):
                return
            last = now

    def paced(self, texts: list[str], rate: float, seconds: float, tag: str) -> tuple[list[float], list[float]]:
        """Latencies in ms, sorted: to the broker's acknowledgement on the queue, and to the harness seeing it."""
        self.settle()
        ids = [f"{tag}-{i}" for i in range(int(rate * seconds))]
        start = time.monotonic()
        for i, tid in enumerate(ids):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.send(tid, texts[i % len(texts)])
            self.producer.flush()
        self.wait(ids, 60)
        seen = sorted((self.watcher.seen[i] - self.sent[i]) * 1000 for i in ids if i in self.watcher.seen)
        return self.acknowledged(ids), seen

    def acknowledged(self, ids: list[str]) -> list[float]:
        from sqlalchemy import select

        ledger = Ledger(make_engine(self.url))
        try:
            with ledger.session() as s:
                rows = s.execute(select(RoutingDecision.ticket_id, RoutingDecision.published_at)
                                 .where(RoutingDecision.ticket_id.in_(ids), RoutingDecision.attempt == 1)).all()
        finally:
            ledger.dispose()
        return sorted((at.timestamp() - self.sent_wall[tid]) * 1000 for tid, at in rows if at is not None)

    def __exit__(self, *exc: object) -> None:
        self.producer.close()
        self.watcher.stop_flag.set()
        self.watcher.join(5)
        processes = [*self.workers, *([self.console] if self.console else [])]
        for w in processes:
            w.terminate()
        for w in processes:
            w.wait(30)
        self.broker.stop()
        self.tmp.cleanup()
        if self.schema:
            self._on_server(f'DROP SCHEMA "{self.schema}" CASCADE')

    def _on_server(self, sql: str) -> None:
        engine = make_engine(self.database_url or "")
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
        engine.dispose()


def start_console(bootstrap: str, url: str, data_dir: Path) -> subprocess.Popen[bytes]:
    """``hotline web`` on a free port, on the pipeline's broker and ledger."""
    data_dir.mkdir()
    return start_hotline("web", bootstrap, url, data_dir, HOTLINE_WEB_PORT=str(free_port(Settings().web_host)))


def pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=4000, help="tickets per backlog")
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--model-dir", help="a trained model folder (default: train the shipped model afresh)")
    ap.add_argument("--classify-processes", type=int, default=None,
                    help="HOTLINE_CLASSIFY_PROCESSES for the workers (default: the setting's default)")
    ap.add_argument("--set", action="append", default=[], metavar="HOTLINE_X=VALUE",
                    help="a setting for the workers (repeatable), e.g. HOTLINE_BROKER_FETCH_MAX_WAIT_MS=25")
    ap.add_argument("--latency-only", action="store_true", help="only the paced latency run (for tuning)")
    ap.add_argument("--bare", action="store_true",
                    help="tickets with text only, as before session 11 (no caller, no address: nothing to link)")
    ap.add_argument("--database-url", help="a PostgreSQL database for the ledgers (a fresh schema per pipeline, "
                                           "dropped after it; default: SQLite in a temporary folder)")
    ap.add_argument("--without-console", action="store_true",
                    help="the workers alone, no web console beside them (as every run before session 26)")
    ap.add_argument("--backlog-only", action="store_true",
                    help="only the one-worker backlog: rate and CPU ms per ticket (for A/B runs of two checkouts)")
    args = ap.parse_args()
    env = {} if args.classify_processes is None else {"HOTLINE_CLASSIFY_PROCESSES": str(args.classify_processes)}
    env.update(dict(kv.split("=", 1) for kv in args.set))
    all_texts = [r["text"] for r in read_csv("messages_unlabeled.csv") if r["text"].strip()]
    texts = (all_texts * (args.n // len(all_texts) + 1))[:args.n]
    model_dir = Path(args.model_dir) if args.model_dir else shipped_model_dir(remove_at_exit=True)
    rows = []
    if args.latency_only:
        for run in range(args.runs):
            with Pipeline(model_dir, 2, args.bare, args.database_url, not args.without_console, **env) as two:
                acked, lat = two.paced(all_texts, args.rate, args.seconds, f"paced{run}")
            rows.append({"ack_p50": pct(acked, 0.5), "ack_p99": pct(acked, 0.99),
                         "p50": pct(lat, 0.5), "p99": pct(lat, 0.99)})
            print(f"run {run + 1}: {args.rate:.0f}/s paced, 2 workers: on the queue (acknowledged) p50 "
                  f"{rows[-1]['ack_p50']:.0f} ms p99 {rows[-1]['ack_p99']:.0f} ms ({len(acked)}); seen by a "
                  f"consumer p50 {rows[-1]['p50']:.0f} ms p99 {rows[-1]['p99']:.0f} ms ({len(lat)})", flush=True)
        print(f"median of {args.runs} runs: " + ", ".join(f"{k} {median([r[k] for r in rows]):.0f} ms"
                                                          for k in ("ack_p50", "ack_p99", "p50", "p99")))
        return
    if args.backlog_only:
        for run in range(args.runs):
            with Pipeline(model_dir, 1, args.bare, args.database_url, not args.without_console, **env) as one:
                rate, seen = one.backlog(texts, f"one{run}")
                census = one.census()
            cpu = one.cpu_per_ticket
            row = {"e2e1": rate, "lost": len(texts) - seen, "cpu_worker": cpu["workers"],
                   "cpu_broker": cpu["broker"], "cpu_console": cpu["console"], "cpu_harness": cpu["harness"],
                   "all1": one.all_stages["rate"], "lag1": one.all_stages["lag"],
                   "cpu_all": one.all_stages["cpu_worker"]}
            rows.append(row)
            print(f"run {run + 1}: e2e 1 worker {rate:.0f}/s | missing {row['lost']} | CPU ms/ticket: worker "
                  f"{row['cpu_worker']:.2f}, broker {row['cpu_broker']:.2f}, console {row['cpu_console']:.2f}, "
                  f"harness {row['cpu_harness']:.2f} | "
                  f"all stages caught up {row['lag1']:.1f}s after the last publication: {row['all1']:.0f}/s, "
                  f"worker {row['cpu_all']:.2f} CPU ms/ticket", flush=True)
            print("  broker messages per ticket: " + ", ".join(f"{t} {n:.2f}" for t, n in census.items())
                  + f" | in all {sum(census.values()):.2f}", flush=True)
        print(f"median of {args.runs} runs, {args.n} tickets each: "
              + ", ".join(f"{k} {median([r[k] for r in rows]):.2f}" for k in rows[0]))
        return
    for run in range(args.runs):
        with EmbeddedBroker(Settings().embedded_host) as broker:
            raw = broker_alone(broker.bootstrap, texts, f"{run}")
        clf = classifier_alone(model_dir, texts)
        with Pipeline(model_dir, 1, args.bare, args.database_url, not args.without_console, **env) as one:
            e2e1, seen1 = one.backlog(texts, f"one{run}")
            cpu1, all1 = one.cpu_per_ticket, one.all_stages
        with Pipeline(model_dir, 2, args.bare, args.database_url, not args.without_console, **env) as two:
            e2e2, seen2 = two.backlog(texts, f"two{run}")
            all2 = two.all_stages
            acked, lat = two.paced(all_texts, args.rate, args.seconds, f"paced{run}")
        row = {"ack_p50": pct(acked, 0.5), "ack_p99": pct(acked, 0.99), "broker": raw, "classifier": clf, "e2e1": e2e1, "e2e2": e2e2, "ratio1": e2e1 / clf,
               "ratio2": e2e2 / clf, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "paced_seen": len(lat),
               "lost": 2 * len(texts) - seen1 - seen2, "cpu_worker": cpu1["workers"],
               "cpu_broker": cpu1["broker"], "cpu_console": cpu1["console"], "cpu_harness": cpu1["harness"],
               "all1": all1["rate"], "all2": all2["rate"], "cpu_all": all1["cpu_worker"]}
        rows.append(row)
        print(f"run {run + 1}: broker alone {raw:.0f} msg/s | classifier alone {clf:.0f}/s | "
              f"e2e 1 worker {e2e1:.0f}/s (ratio {row['ratio1']:.2f}) | 2 workers {e2e2:.0f}/s "
              f"(ratio {row['ratio2']:.2f}) | {args.rate:.0f}/s paced, 2 workers: on the queue p50 "
              f"{row['ack_p50']:.0f} ms p99 {row['ack_p99']:.0f} ms, seen by a consumer p50 {row['p50']:.0f} ms "
              f"p99 {row['p99']:.0f} ms ({len(lat)} seen) | missing {row['lost']} | CPU ms/ticket, 1 worker: "
              f"worker {row['cpu_worker']:.2f}, broker {row['cpu_broker']:.2f}, console {row['cpu_console']:.2f}, "
              f"harness {row['cpu_harness']:.2f} | all stages caught up: 1 worker {row['all1']:.0f}/s ({all1['lag']:.1f}s after the last publication; "
              f"worker {row['cpu_all']:.2f} CPU ms/ticket), 2 workers {row['all2']:.0f}/s ({all2['lag']:.1f}s)",
              flush=True)
    print(f"median of {args.runs} runs, {args.n} tickets each: "
          + ", ".join(f"{k} {median([r[k] for r in rows]):.2f}" for k in
                      ("broker", "classifier", "e2e1", "e2e2", "ratio1", "ratio2", "ack_p50", "ack_p99", "p50", "p99", "cpu_worker",
                       "cpu_broker", "cpu_console", "cpu_harness", "all1", "all2", "cpu_all")))


if __name__ == "__main__":
    main()
