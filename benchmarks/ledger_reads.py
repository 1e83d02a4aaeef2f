"""How long the ledger's read paths take at a district's scale: the console's lists and pages, and the figures.

A district's line takes tens of thousands of tickets a day, so after a year the ledger holds millions of
tickets. This builds a synthetic ledger with the repository's migrations (``--tickets`` tickets received over
the last year, a skewed load over the catalogue's agencies; routing decisions, dispatches, returns and
re-routings, sign-fors, extensions, resolutions, ratings, alerts, as the worker writes them), then times each
read path a user hits ``--runs`` times and prints the medians. SQLite in a temporary folder by default;
``--database-url`` for PostgreSQL (an empty scratch database: the script fills it and leaves it).

The figures (supervisor overview, ``hotline report``) add up the stored stages, judge the open ones as of now
and replay the live tickets (``streams.reports``: those routed and not yet signed, as workers leave them); for
each period they are also computed as before migration 0011, replaying
every ticket with an event in the period and every open one, in the same run: the ratio is between the two.
No real messages are read.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import median
from sqlalchemy import insert, select

from config.catalogue import load_catalogue
from config.settings import Settings
from models import ledger as t
from models import word_index
from models.clock import ManualClock
from models.supervision.figures import agency_figures
from models.supervision.linking import phone_key
from streams.console import queries
from streams.console.search import parse_search
from streams.console.service import Console
from streams.db import Ledger, chunks, code_revision, make_engine, upgrade
from streams.reports import figures, load_alert_rules, load_histories, period_start, restage_all, restager

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
TEXT = "小区门口餐饮店油烟扰民，每天晚上排放严重，多次反映未解决，请相关部门尽快处理。"


class Generator:
    """Tickets as the worker leaves them in the ledger, with their decisions, events and alerts."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        catalogue = load_catalogue()
        self.agencies = list(catalogue.agencies)
        self.weights = [1.0 / (i + 1) ** 0.8 for i in range(len(self.agencies))]  # a few get most tickets
        self.matters = list(catalogue.matters)
        # each ticket's text one of its matter's example tickets (the team's, real length), drawn apart from the
        # rest so that every other field is what the earlier sessions' ledgers held: a word index over one text
        # repeated would hold nothing to look up
        self.texts, self.examples = random.Random(seed + 1), {code: m.examples or (TEXT,)
                                                             for code, m in catalogue.matters.items()}
        self.names = {code: m.name for code, m in catalogue.matters.items()}

    def agency(self) -> str:
        return self.rnd.choices(self.agencies, self.weights)[0]

    def event(self, tid: str, kind: str, at: datetime, agency: str | None, role: str, **extra: Any) -> dict:
        eid = f"{kind}:{uuid.UUID(int=self.rnd.getrandbits(128))}"
        payload = {"schema_version": 1, "event_id": eid, "ticket_id": tid, "type": kind, "actor": role,
                   "role": role, "occurred_at": at.isoformat(), **({"agency": agency} if agency else {}), **extra}
        return {"event_id": eid, "ticket_id": tid, "type": kind, "actor": role, "agency": agency, "occurred_at": at,
                "accepted": True, "reason": None, "payload": payload, "recorded_at": at + timedelta(seconds=1),
                "batch_position": 0}

    def decision(self, tid: str, attempt: int, agency: str | None, matter: str, at: datetime) -> dict:
        return {"decision_key": f"{tid}#{attempt}", "ticket_id": tid, "attempt": attempt,
                "decision": "auto" if agency else "manual", "matter": matter, "domain": "城乡建设", "agency": agency,
                "agency_kind": "urban_management", "jurisdiction": "BH", "confidence": 0.8, "basis": "《示例》第八条",
                "reason": None, "alternatives": [], "model_version": "bench", "decided_by": "router", "decided_at": at,
                "topic": f"tickets.routed.{agency}" if agency else "tickets.manual", "published_at": at,
                "message": {"routing_id": f"{tid}#{attempt}", "ticket_id": tid, "attempt": attempt}}

    def ticket(self, i: int) -> tuple[dict, list[dict], list[dict], list[dict]]:
        rnd, tid = self.rnd, f"T{i:08d}"
        received = NOW - timedelta(seconds=rnd.random() * 365 * 86400)
        matter = rnd.choice(self.matters)
        phone = f"138{rnd.randrange(10**8):08d}"  # a caller rings again now and then: see read_paths' search
        tk = {"id": tid, "received_at": received, "text": self.texts.choice(self.examples[matter]),
              "title": self.names[matter],
              "address": f"滨海新区塘沽街道某小区{rnd.randrange(1, 3000)}号", "channel": "phone",
              "request_type": rnd.choice(["咨询", "求助", "投诉", "举报", "建议"]), "urgency": "一般",
              "caller_phone": phone, "caller_key": phone_key(phone), "complex_case": False, "jurisdiction": "BH",
              "matter": matter, "status": "received", "current_agency": None, "attempt": 0,
              "source_topic": "tickets.received", "source_partition": i % 6, "source_offset": i // 6,
              "first_seen_at": received, "updated_at": received}
        decisions, events, alerts = [], [], []
        at, attempt, agency = received + timedelta(seconds=2), 1, self.agency()
        while True:
            decisions.append(self.decision(tid, attempt, agency, matter, at))
            events.append(self.event(tid, "routed", at, agency, "system", attempt=attempt, decision="auto",
                                     matter=matter))
            tk.update(status="dispatched", current_agency=agency, attempt=attempt, updated_at=at)
            signed = at + timedelta(minutes=rnd.expovariate(1 / 300))
            if NOW < signed:
                return tk, decisions, events, alerts
            if rnd.random() < 0.06 and attempt < 3:  # 退单, and the router tries another agency
                events.append(self.event(tid, "returned", signed, agency, "agency", reason_code="NOT_OUR_DUTY",
                                         basis="《示例》第十条"))
                alerts.append({"alert_key": f"{tid}:returned:a{attempt}", "rule": "returned", "level": "in_time",
                               "severity": "info", "ticket_id": tid, "agency": agency, "deadline": None,
                               "message": "退单", "payload": {}, "raised_at": signed})
                at, attempt, agency = signed + timedelta(seconds=3), attempt + 1, self.agency()
                continue
            events.append(self.event(tid, "signed", signed, agency, "agency"))
            tk.update(status="signed", updated_at=signed)
            break
        done = signed + timedelta(hours=rnd.expovariate(1 / 72))
        if rnd.random() < 0.03 and (asked := signed + (done - signed) / 2) < NOW:
            events.append(self.event(tid, "extension_requested", asked, agency, "agency", days=5, explanation="核查"))
            if asked + timedelta(hours=2) < NOW:
                events.append(self.event(tid, "extension_approved", asked + timedelta(hours=2), None, "supervisor"))
        if NOW < done:
            return tk, decisions, events, alerts
        events.append(self.event(tid, "resolved", done, agency, "agency", reply="已处理"))
        tk.update(status="resolved", updated_at=done)
        if rnd.random() < 0.3 and done + timedelta(days=1) < NOW:
            events.append(self.event(tid, "rated", done + timedelta(days=1), None, "callcenter", rating="satisfied"))
            events.append(self.event(tid, "closed", done + timedelta(days=1, seconds=1), None, "callcenter"))
            tk.update(status="closed", updated_at=done + timedelta(days=1, seconds=1))
        return tk, decisions, events, alerts


def build(url: str, tickets: int, seed: int) -> dict[str, int]:
    upgrade(url)
    engine = make_engine(url)
    tables = (t.Ticket.__table__, t.RoutingDecision.__table__, t.TicketEvent.__table__, t.Alert.__table__)
    totals = dict.fromkeys(("tickets", "decisions", "events", "alerts"), 0)
    gen = Generator(seed)
    for start in range(0, tickets, 20_000):
        batch: list[list[dict]] = [[], [], [], []]
        for i in range(start, min(tickets, start + 20_000)):
            tk, *rest = gen.ticket(i)
            batch[0].append(tk)
            for k, rows in enumerate(rest, start=1):
                batch[k].extend(rows)
        with engine.begin() as conn:
            for table, rows, name in zip(tables, batch, totals, strict=True):
                if rows:
                    conn.execute(insert(table), rows)
                    totals[name] += len(rows)
    if engine.dialect.name == "sqlite":  # all caught up, as the console leaves a ledger (a rebuild: restaged rows)
        started = time.perf_counter()
        with engine.begin() as conn:
            word_index.rebuild_sqlite(conn)
            while word_index.catch_up(conn, word_index.BATCH):
                pass
        print(f"word index filled in {time.perf_counter() - started:.1f}s")
    else:  # PostgreSQL: the bulk load went around the router, which queues each ticket it records
        started = time.perf_counter()
        with engine.begin() as conn:
            word_index.fill_pg(conn)
            word_index.merge_pending(conn)  # as the console leaves it once caught up
        print(f"word index filled in {time.perf_counter() - started:.1f}s")
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return totals


def read_paths(ledger: Ledger, console: Console, busy: str) -> dict[str, Callable[[], Any]]:
    first = queries.list_tickets(ledger, limit=51)

    def search(query: str | None, **kw: Any) -> list[t.Ticket]:
        return queries.list_tickets(ledger, search=parse_search(query), limit=51, **kw)

    return {
        "ticket list, first page": lambda: queries.list_tickets(ledger, limit=51),
        "ticket list, next page": lambda: queries.list_tickets(ledger, limit=51,
                                                               before=(first[-1].received_at, first[-1].id)),
        "ticket list, one agency": lambda: queries.list_tickets(ledger, agency=busy, limit=51),
        "ticket list, an agency's own (API)": lambda: queries.list_tickets(ledger, visible_to=busy, limit=51),
        "ticket page": lambda: queries.ticket_json(queries.ticket_detail(ledger, first[5].id), reveal_phone=False),
        "agency inbox + counts": lambda: (queries.agency_inbox(ledger, busy),
                                          queries.status_counts(ledger, agency=busy)),
        "dispatcher: returned lately": lambda: queries.recently_returned(ledger, since=NOW - timedelta(days=7)),
        "supervisor: alerts panel": lambda: queries.recent_alerts(ledger, limit=30),
        "supervisor: overview, 7 days": lambda: console.overview(period_start(NOW, 7)),
        "supervisor: overview, 30 days": lambda: console.overview(period_start(NOW, 30)),
        "report --digest (yesterday)": lambda: figures(ledger, console.catalogue, now=NOW,
                                                       since=NOW - timedelta(days=1), until=NOW),
        # 工单查询 (50 a page, as the console's page asks): a caller's number and a ticket number are index
        # look-ups; a word found everywhere stops at the first page; a word found nowhere reads every ticket
        "search: caller's number": lambda: search(first[7].caller_phone),
        "search: ticket number": lambda: search(first[9].id.lower()),
        "search: common word": lambda: search("油烟"),
        "search: two words, few hits": lambda: search("油烟 2999号"),
        "search: an estate's name": lambda: search("融城佳苑"),
        "search: Latin letters": lambda: search("KTV"),
        "search: full-width digits": lambda: search("２９９９号"),
        "search: one character (no bigram)": lambda: search("吵"),
        "search: word found nowhere": lambda: search("垃圾焚烧"),
        "search: nowhere, last 30 days": lambda: search("垃圾焚烧", since=period_start(NOW, 30)),
        "search: nowhere, an agency's own": lambda: search("垃圾焚烧", visible_to=busy),
    }


FIGURE_PERIODS = (("yesterday", NOW - timedelta(days=1), NOW), ("last 7 days", period_start(NOW, 7), None),
                  ("last 30 days", period_start(NOW, 30), None), ("all time", None, None))


def timed(read: Callable[[], Any], runs: int) -> float:
    seconds = []
    for _ in range(runs):
        t0 = time.perf_counter()
        read()
        seconds.append(time.perf_counter() - t0)
    return median(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickets", type=int, default=30_000, help="tickets in the ledger (over one year)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--database-url", help="an empty scratch database (default: SQLite in a temporary folder)")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--keep", type=Path, metavar="FILE",
                    help="a SQLite file to build the ledger in and keep; when it exists, it is read as it is (to "
                         "compare two versions of the code on one ledger: a 300,000-ticket build takes 5 minutes)")
    ap.add_argument("--built", action="store_true",
                    help="with --database-url: the database holds a ledger this script built before; read it as it is")
    ap.add_argument("--only", metavar="TEXT",
                    help="time only the read paths whose name contains TEXT (e.g. 'search'), not the figures")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hotline-ledger-reads-") as tmp:
        url = args.database_url or f"sqlite:///{args.keep or Path(tmp) / 'ledger.sqlite3'}"
        reuse = args.keep is not None and args.keep.exists() or args.built and args.database_url is not None
        if not reuse:
            started = time.perf_counter()
            totals = build(url, args.tickets, args.seed)
            print(f"ledger ({make_engine(url).dialect.name}): " + ", ".join(f"{n:,} {k}" for k, n in totals.items())
                  + f"; built in {time.perf_counter() - started:.0f}s")
        ledger = Ledger(make_engine(url))
        console = Console(Settings(database_url=url), ledger, load_catalogue(), publisher=None)  # type: ignore[arg-type]
        console._clock = ManualClock(NOW)  # the ledger's "now"
        busy = Generator(args.seed).agencies[0]  # the heaviest weight: the busiest inbox
        if reuse:
            print(f"ledger {args.keep or make_engine(url).url.render_as_string()}: {ledger.count(t.Ticket):,} tickets, "
                  "as built before")
        else:
            t0 = time.perf_counter()
            stored, seen = restage_all(ledger, console.catalogue)  # as `hotline db upgrade` does after 0011
            print(f"restaged: {stored:,} of {seen:,} live tickets in {time.perf_counter() - t0:.1f}s")
            with ledger.session() as s:  # a worker leaves a ticket live after its routing, until its agency acts
                routed = sorted(s.scalars(select(t.Ticket.id).where(t.Ticket.status == "dispatched")))
                for chunk in chunks(routed):
                    Ledger.figures_changed(s, chunk)
            print(f"live: {len(routed):,} tickets routed and not yet signed")
        print(f"{'read path':38} {'median s':>9}  (of {args.runs} runs)")
        for name, read in read_paths(ledger, console, busy).items():
            if args.only is None or args.only in name:
                found = f"  ({len(read())} found)" if name.startswith("search") else ""
                print(f"{name:38} {timed(read, args.runs):9.3f}{found}")
        if args.only is not None:
            ledger.dispose()
            return
        # the figures alone, against replaying the period's tickets as before migration 0011, in the same run
        print(f"{'figures (hotline report)':34} {'stored':>9} {'replayed':>9} {'ratio':>6}")
        for label, since, until in FIGURE_PERIODS:
            stored = timed(lambda s=since, u=until: figures(ledger, console.catalogue, now=NOW, since=s, until=u),
                           args.runs)
            replayed = timed(lambda s=since, u=until: agency_figures(
                load_histories(ledger, s), console.catalogue, now=NOW, since=s, until=u,
                alerts=load_alert_rules(ledger, s, u)), args.runs)
            print(f"{label:34} {stored:9.3f} {replayed:9.3f} {replayed / stored:5.1f}x")
        if args.keep is None:
            write_path(ledger, console.catalogue)
        else:  # it resolves the signed tickets: a kept ledger would not be the same for the next run
            print("write path: not measured with --keep (it changes the ledger)")
        ledger.dispose()


def write_path(ledger: Ledger, catalogue: Any, batch: int = 20) -> None:
    """What storing stages costs the lifecycle: batches resolving signed tickets, recorded with and without
    restaging, and with and without the worker's schema revision check (:meth:`Ledger.writing`), taken in turn
    (the same batch size), in ms per resolved ticket."""
    with ledger.session() as s:
        signed = list(s.execute(select(t.Ticket.id, t.Ticket.current_agency).where(t.Ticket.status == "signed")
                                .order_by(t.Ticket.id)))
    modes = [(True, False), (False, False), (True, True), (False, True)]  # (restage, revision check)
    gen, cost = Generator(1), {mode: [] for mode in modes}
    restage = restager(catalogue)
    for n, i in enumerate(range(0, len(signed) - batch + 1, batch)):
        rows = []
        for tid, agency in signed[i:i + batch]:
            ev = gen.event(tid, "resolved", NOW, agency, "agency", reply="已处理")
            rows.append({**{k: ev[k] for k in ("event_id", "ticket_id", "type", "actor", "agency", "occurred_at",
                                              "accepted", "reason", "payload")},
                         "status": "resolved", "current_agency": agency})
        stage, pinned = modes[n % len(modes)]
        ledger.revision = code_revision() if pinned else None
        t0 = time.perf_counter()
        ledger.record_events(rows, restage=restage if stage else None)
        cost[stage, pinned].append((time.perf_counter() - t0) * 1000 / batch)
    ledger.revision = None
    if all(cost.values()):
        print(f"lifecycle batches resolving {batch} tickets: {median(cost[True, False]):.2f} ms/ticket storing their "
              f"stages, {median(cost[False, False]):.2f} without ({len(cost[True, False])}+{len(cost[False, False])} "
              f"batches); with the schema revision check: {median(cost[True, True]):.2f} and "
              f"{median(cost[False, True]):.2f} ({len(cost[True, True])}+{len(cost[False, True])} batches)")

if __name__ == "__main__":
    main()
