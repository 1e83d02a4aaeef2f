"""How long a worker takes to rebuild one partition's linking states from ``supervision.links`` (issue 8).

Since session 13 the linker keeps no changelog: a worker assigned a partition folds the partition's link
facts again, from the log's start up to where the group resumes (``streams.supervision.replay_links``). This
is the price of that design, paid at each assignment, so it is measured at a district's scale.

Synthetic facts, shaped like the product's: each ticket gives a 重复件 fact under its caller (one of
``--callers``; a fifth of the calls come from the 1% who call often) and one under its place and matter,
and 70% of tickets a 联合执法 fact under their place with the agency they went to (2.7 facts per ticket, as
the throughput census counts). They are
packed 500 to a message, as the lifecycle sends them, into one partition of the embedded broker, spread over
``--days`` days. Default: 47,400 tickets a day (Tianjin's busiest day in 2022) over 4 partitions, 32 days
(the topic's retention) — the largest partition a worker of a 4-partition deployment would ever read back.

Prints per run the seconds to read and fold, facts per second, keys held and the reader's resident memory
growth; then medians.
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from datetime import UTC, datetime, timedelta

import orjson
from _common import median
from kafka import KafkaProducer

from config.settings import Settings
from models.supervision import LinkFact
from streams.broker import BrokerReader, EmbeddedBroker
from streams.runner import ensure_topics
from streams.supervision import FACTS_PER_MESSAGE, LINK_SCHEMA, links_message, replay_links

T0 = datetime(2026, 11, 1, tzinfo=UTC)
AGENCIES = ("BH-ZJW", "BH-CGW", "BH-STHJ", "BH-SCJG", "BH-GA", "BH-JD-TG", "BH-JD-XG", "DL-CGW")
MATTERS = tuple(f"M-{n:03d}" for n in range(200))


def facts(tickets: int, days: int, callers: int, places: int, seed: int = 12345) -> list[dict]:
    """The link facts of ``tickets`` tickets spread evenly over ``days``, in time order."""
    rnd = random.Random(seed)
    out: list[dict] = []
    step = timedelta(days=days) / tickets
    for n in range(tickets):
        at = T0 + n * step
        tid = f"T{n:08d}"
        # most callers call once; one in five calls comes from the 1% who call again and again
        caller = rnd.randrange(callers // 100) if rnd.random() < 0.2 else rnd.randrange(callers)
        place = rnd.randrange(places)
        matter = rnd.choice(MATTERS)
        agency = rnd.choice(AGENCIES)
        out.append(LinkFact("repeated_complaint", "caller", f"caller-{caller:x}", tid, at).to_dict())
        out.append(LinkFact("repeated_complaint", "place_matter", f"pm-{place:x}-{matter}", tid, at,
                            agency).to_dict())
        if rnd.random() < 0.7:
            out.append(LinkFact("joint_enforcement", "addr", f"addr-{place:x}", tid, at, agency,
                                f"地点{place}").to_dict())
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-day", type=int, default=47_400, help="tickets a day, whole deployment")
    ap.add_argument("--partitions", type=int, default=4, help="partitions they are spread over")
    ap.add_argument("--days", type=int, default=32)
    ap.add_argument("--callers", type=int, default=200_000)
    ap.add_argument("--places", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    tickets = args.per_day * args.days // args.partitions
    started = time.perf_counter()
    records = facts(tickets, args.days, args.callers, args.places)
    print(f"{tickets:,} tickets -> {len(records):,} link facts in one partition "
          f"({len(records) / tickets:.2f} per ticket), generated in {time.perf_counter() - started:.1f}s")
    settings = Settings()
    with EmbeddedBroker(settings.embedded_host) as broker:
        topic = "bench.links"
        ensure_topics(broker.bootstrap, [topic], 1, 1)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, max_request_size=4 * 2**20, linger_ms=20)
        started = time.perf_counter()
        messages = 0
        for i in range(0, len(records), FACTS_PER_MESSAGE):
            chunk = [{"schema_version": LINK_SCHEMA, **f} for f in records[i:i + FACTS_PER_MESSAGE]]
            producer.send(topic, value=links_message(chunk), partition=0)
            messages += 1
        producer.flush()
        producer.close()
        size = sum(len(orjson.dumps(r)) for r in records[:1000]) / 1000 * len(records) / 2**20
        print(f"{messages:,} messages (~{size:,.0f} MB of facts) produced in {time.perf_counter() - started:.1f}s")
        del records

        seconds, rates = [], []
        for run in range(1, args.runs + 1):
            reader = BrokerReader(broker.bootstrap, "bench", name="bench-links")
            before = rss_mb()
            try:
                started = time.perf_counter()
                replay = reader.executor.submit(replay_links, reader, 0, messages, topic).result()
                elapsed = time.perf_counter() - started
            finally:
                reader.close()
            grown = rss_mb() - before
            seconds.append(elapsed)
            rates.append(replay.facts / elapsed)
            print(f"run {run}: {replay.facts:,} facts in {replay.messages:,} messages rebuilt in {elapsed:.1f}s "
                  f"({replay.facts / elapsed:,.0f} facts/s): {len(replay.states):,} linking keys, "
                  f"{replay.skipped} skipped, resident memory +{grown:,.0f} MB")
            del replay
        print(f"median of {args.runs} runs: {median(seconds):.1f}s per partition, {median(rates):,.0f} facts/s")


if __name__ == "__main__":
    main()
