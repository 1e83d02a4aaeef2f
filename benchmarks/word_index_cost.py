"""What the word index (``models.word_index``) costs the ledger, and where.

Real-length texts from ``../shared/data/messages_unlabeled.csv`` are recorded through ``Ledger.record_tickets`` in
the router's batches, round after round, on SQLite (default, a fresh file) or PostgreSQL (``--database-url``, an
empty database or schema, filled and left). Each round, timed apart, in milliseconds per ticket (medians of the
rounds):

* the router's ``record_tickets`` (since migration 0015 it does not index on SQLite; since 0017 it only queues
  the ticket on PostgreSQL);
* a status update of each ticket, as the router's mirror of its routing and each lifecycle step make: what an
  index of ``tickets`` that holds the bigrams made dear on PostgreSQL (migrations 0014-0016: every update
  inserted all of the ticket's bigrams into the GIN index again);
* the console's catch-up: on SQLite the FTS5 insert; on PostgreSQL the queued tickets' bigrams into
  ``ticket_grams``, then the merge of the GIN index's pending list, each timed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import median, read_csv
from sqlalchemy import bindparam, update

from models import ledger as t
from models import word_index
from models.tickets import TicketIn
from streams.db import Ledger, make_engine, upgrade


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", help="an empty scratch PostgreSQL database (default: SQLite in a temporary "
                                           "folder)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tickets", type=int, default=2000, help="tickets per round")
    ap.add_argument("--batch", type=int, default=200, help="tickets per record_tickets call (the router's batch)")
    args = ap.parse_args()
    texts = [row["text"] for row in read_csv("messages_unlabeled.csv") if row.get("text")]
    tickets = t.Ticket.__table__
    mirror = update(tickets).where(tickets.c.id == bindparam("b_id")).values(
        status="dispatched", current_agency="BH-SCJG", updated_at=bindparam("b_now"))
    with tempfile.TemporaryDirectory(prefix="hotline-word-index-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'ledger.sqlite3'}"
        upgrade(url)
        ledger = Ledger(make_engine(url))
        sqlite = ledger.engine.dialect.name == "sqlite"
        start, n, chars = datetime(2026, 6, 1, tzinfo=UTC), 0, 0
        cost: dict[str, list[float]] = {"record": [], "update": [], "catch-up": [], "merge": []}
        for _ in range(args.rounds):
            items = []
            for _ in range(args.tickets):
                body = texts[n % len(texts)][:20_000]
                chars += len(body)
                items.append((TicketIn(id=f"B{n:08d}", text=body, title=body[:20], address=f"滨海新区某小区{n % 3000}号",
                                       received_at=start + timedelta(seconds=n)), "tickets.received", 0, n))
                n += 1
            per_ticket = 1000 / len(items)
            t0 = time.perf_counter()
            for i in range(0, len(items), args.batch):
                ledger.record_tickets(items[i:i + args.batch])
            cost["record"].append((time.perf_counter() - t0) * per_ticket)
            t0 = time.perf_counter()
            for i in range(0, len(items), args.batch):
                with ledger.session() as s:
                    s.execute(mirror, [{"b_id": tk.id, "b_now": start} for tk, *_ in items[i:i + args.batch]])
            cost["update"].append((time.perf_counter() - t0) * per_ticket)
            t0 = time.perf_counter()
            while True:
                with ledger.engine.begin() as conn:  # the console's batches, as Ledger.catch_up_word_index takes them
                    if not (word_index.catch_up(conn) if sqlite else word_index.catch_up_pg(conn)):
                        break
            cost["catch-up"].append((time.perf_counter() - t0) * per_ticket)
            if not sqlite:
                t0 = time.perf_counter()
                with ledger.engine.begin() as conn:
                    word_index.merge_pending(conn)
                cost["merge"].append((time.perf_counter() - t0) * per_ticket)
        print(f"ledger ({ledger.engine.dialect.name}): {n:,} tickets of {chars / n:.0f} characters on average, "
              f"recorded in batches of {args.batch}")
        for side, label in [("record", "the router's record_tickets"), ("update", "a status update of each ticket"),
                            ("catch-up", "the console's catch-up of the index"),
                            ("merge", "the console's merge of the GIN index's pending list (once per round)")]:
            if cost[side]:
                print(f"ms per ticket, {label}: {median(cost[side]):.3f}  (rounds: "
                      + ", ".join(f"{x:.3f}" for x in cost[side]) + ")")
        ledger.dispose()


if __name__ == "__main__":
    main()
