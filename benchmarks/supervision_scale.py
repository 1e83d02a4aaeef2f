"""Supervision at scale: 1,000,000 open tickets in the deadline index; memory, build time, per-tick time.

The tickets are synthetic but shaped like a hotline's open stock: 30% waiting to be signed for (dispatched
over the last two days), 70% being handled (signed over the last three weeks, so the 3-working-day types
are often overdue and get a 催办 a day); request types mixed; urgent classes are rare in an open stock
because they close within hours (0.2% 紧急, 0.5% 水电气热, on the 24x7 clock), the rest run in working
days on the shipped 2025 calendar. "Now" is a Wednesday morning; checkpoints before it count as announced
(as after a long-running worker), so the ticks measure steady-state work: advancing the clock by one
minute (a handful due) and by one hour.

Build = pass 1, each ticket's deadlines and next checkpoint (untraced), then pass 2, the inserts into the
index under tracemalloc, so the traced figure is the index's own memory (ticket id strings included).
On a tick, a due ticket's facts are regenerated from its number, standing in for the stage's table read;
that time is reported apart. Prints build times, ``ru_maxrss`` and current RSS, tracemalloc of the index,
the index's own estimate, and the median per-tick time with what was due and announced.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import time
import tracemalloc
from datetime import datetime, timedelta

from config.catalogue import load_catalogue
from models.supervision import Supervisor, TicketFacts
from models.workcalendar import TZ

NOW = datetime(2025, 11, 12, 10, 0, tzinfo=TZ)  # a Wednesday
REQUEST_TYPES = ("咨询", "求助", "投诉", "举报", "建议", None)
AGENCIES = ("BH-ZJW", "BH-CGW", "BH-STHJ", "BH-SCJG", "BH-GA", "BH-JD-TG", "BH-JD-XG", "DL-CGW")


def _mix(n: int) -> int:
    """A cheap deterministic hash of the ticket number (splitmix-like), for reproducible ticket shapes."""
    x = (n * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 27)) & 0xFFFFFFFFFFFF


def facts_for(n: int) -> TicketFacts:
    h = _mix(n)
    kind, urgency_draw, rt_draw = h % 100, (h >> 8) % 1000, (h >> 18) % len(REQUEST_TYPES)
    urgency = "紧急" if urgency_draw < 2 else "水电气热" if urgency_draw < 7 else "一般"
    agency = AGENCIES[(h >> 22) % len(AGENCIES)]
    frac = ((h >> 26) % 1_000_000) / 1_000_000
    if urgency == "紧急":  # urgent tickets do not stay open for weeks
        span = timedelta(minutes=15 if kind < 30 else 120)
    elif urgency == "水电气热":
        span = timedelta(minutes=30 if kind < 30 else 24 * 60)
    else:
        span = timedelta(days=2 if kind < 30 else 21)
    started = NOW - span * frac
    tid = f"T{n:07d}"
    if kind < 30:
        return TicketFacts(tid, started, request_type=REQUEST_TYPES[rt_draw], urgency=urgency, status="dispatched",
                           agency=agency, attempt=1, dispatched_at=started)
    return TicketFacts(tid, started - timedelta(hours=2), request_type=REQUEST_TYPES[rt_draw], urgency=urgency,
                       status="signed", agency=agency, attempt=1, dispatched_at=started - timedelta(hours=1),
                       signed_at=started, handling_started_at=started)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--ticks", type=int, default=5, help="ticks per step size (median reported)")
    args = parser.parse_args()

    catalogue = load_catalogue()
    sup = Supervisor(catalogue)
    print(f"supervision scale benchmark: {args.tickets:,} open tickets, now = {NOW.isoformat()}")
    print(f"RSS before build: {current_rss_mb():.0f} MB")

    # The stage's table, reduced to what changes: facts whose progress moved after NOW.
    table: dict[str, TicketFacts] = {}
    lookup_time = [0.0]

    def stored_facts(n: int) -> TicketFacts:
        # what the table would hold at NOW: everything due before NOW counts as announced
        facts, _ = sup.catch_up(facts_for(n), NOW, announce=False)
        return facts

    def lookup(ticket_id: str) -> TicketFacts:
        t = time.perf_counter()
        facts = table.get(ticket_id) or stored_facts(int(ticket_id[1:]))
        lookup_time[0] += time.perf_counter() - t
        return facts

    t0 = time.perf_counter()
    plans = [sup.upcoming(stored_facts(n)) for n in range(args.tickets)]
    pass1 = time.perf_counter() - t0
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    for n, plan in enumerate(plans):
        sup.index.schedule(f"T{n:07d}", plan)
    pass2 = time.perf_counter() - t0
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del plans
    gc.collect()
    index = sup.index
    print(f"build pass 1 (deadlines, progress, next checkpoint): {pass1:.1f} s = "
          f"{pass1 / args.tickets * 1e6:.1f} µs per ticket")
    print(f"build pass 2 (index inserts, under tracemalloc): {pass2:.1f} s = "
          f"{pass2 / args.tickets * 1e6:.1f} µs per ticket")
    print(f"index: {index.tickets:,} tickets, {len(index):,} pending checkpoints, heap {index.heap_size:,}")
    print(f"tracemalloc of the index: {traced / 2**20:.0f} MB = {traced / max(index.tickets, 1):.0f} B per ticket; "
          f"index's own estimate {index.memory_estimate() / 2**20:.0f} MB")
    print(f"RSS after build: {current_rss_mb():.0f} MB (peak ru_maxrss {rss_mb():.0f} MB, incl. pass 1's "
          f"temporary plans)")
    nxt = index.next_at()
    print(f"next checkpoint due at {nxt.isoformat() if nxt else '-'}")

    now = NOW
    for label, step in (("1 minute", timedelta(minutes=1)), ("1 hour", timedelta(hours=1))):
        times, net, dues, alerts, touched = [], [], [], [], []
        for _ in range(args.ticks):
            now += step
            before_touched = index.stats.popped + index.stats.stale_skipped
            before_popped = index.stats.popped
            lookup_time[0] = 0.0
            t0 = time.perf_counter()
            tick = sup.tick(now, lookup)
            elapsed = time.perf_counter() - t0
            times.append(elapsed)
            net.append(elapsed - lookup_time[0])
            table.update(tick.updated)
            dues.append(index.stats.popped - before_popped)
            touched.append(index.stats.popped + index.stats.stale_skipped - before_touched)
            alerts.append(len(tick.alerts))
        med_due = max(statistics.median(dues), 1)
        print(f"tick +{label}: median {statistics.median(times) * 1e3:.1f} ms (min {min(times) * 1e3:.1f}, "
              f"max {max(times) * 1e3:.1f}), of which supervision {statistics.median(net) * 1e3:.1f} ms and "
              f"the synthetic table read the rest; due per tick median {statistics.median(dues):.0f} "
              f"(range {min(dues)}-{max(dues)}), heap entries touched {statistics.median(touched):.0f}, "
              f"alerts {statistics.median(alerts):.0f}; {statistics.median(net) / med_due * 1e6:.0f} µs "
              f"per due ticket")

    t0 = time.perf_counter()
    due_now = index.pop_due(now)
    print(f"bare pop_due with nothing new due: {(time.perf_counter() - t0) * 1e6:.0f} µs ({len(due_now)} due)")
    print(f"index after ticks: {index.tickets:,} tickets, heap {index.heap_size:,}, stale {index.stale:,}, "
          f"compactions {index.stats.compactions}")
    print(f"RSS at end: {current_rss_mb():.0f} MB, peak ru_maxrss {rss_mb():.0f} MB")

    # A full collection stops the event loop for as long as it takes to walk every tracked object, the
    # index's included: the pause a worker holding this many open tickets sees whenever its surviving
    # objects have grown by a quarter since the last one (rarely, with a stock this large, but this long).
    pauses = []
    for _ in range(3):
        t0 = time.perf_counter()
        gc.collect()
        pauses.append(time.perf_counter() - t0)
    print(f"full garbage collection with the index alive: median {statistics.median(pauses) * 1e3:.0f} ms "
          f"({len(gc.get_objects()):,} tracked objects)")
    gc.freeze()
    t0 = time.perf_counter()
    gc.collect()
    print(f"the same after gc.freeze(): {(time.perf_counter() - t0) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
