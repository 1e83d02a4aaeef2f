"""What the word index (``models.word_index``) costs the ledger, and where.

Real-length texts from ``../shared/data/messages_unlabeled.csv`` are recorded through ``Ledger.record_tickets`` in
the router's batches, round after round.

* SQLite (default, a fresh file): since migration 0015 the router does not index; the console catches up behind
  it. Each round records its tickets, then catches the index up (``Ledger.catch_up_word_index``, in the console's
  batches); prints milliseconds per ticket of each (medians of the rounds): the router's cost, and the console's.
* PostgreSQL (``--database-url``, an empty database or schema, filled and left): each insert adds the ticket's
  bigrams to the GIN index's pending list, which the console merges (migration 0015), so rounds alternate between
  the ledger with the index (then the console's merge, timed) and without it (dropped, built again after the
  round); the difference is the index's cost to the router's writes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import median, read_csv

from models import word_index
from models.tickets import TicketIn
from streams.db import Ledger, make_engine, upgrade


@contextmanager
def without_index(ledger: Ledger) -> Any:
    """The PostgreSQL ledger as it was before migration 0014, for one round."""
    with ledger.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP INDEX {word_index.PG_INDEX}")
    try:
        yield
    finally:
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql(word_index.PG_INDEX_DDL)
            word_index.create_mark(conn)  # its pending list as migration 0015 sets it


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", help="an empty scratch PostgreSQL database (default: SQLite in a temporary "
                                           "folder)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (per side, on PostgreSQL)")
    ap.add_argument("--tickets", type=int, default=2000, help="tickets per round")
    ap.add_argument("--batch", type=int, default=200, help="tickets per record_tickets call (the router's batch)")
    args = ap.parse_args()
    texts = [row["text"] for row in read_csv("messages_unlabeled.csv") if row.get("text")]
    with tempfile.TemporaryDirectory(prefix="hotline-word-index-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'ledger.sqlite3'}"
        upgrade(url)
        ledger = Ledger(make_engine(url))
        sqlite = ledger.engine.dialect.name == "sqlite"
        start, n, chars = datetime(2026, 6, 1, tzinfo=UTC), 0, 0
        cost: dict[str, list[float]] = {"with": [], "without": [], "catch-up": []}
        for round_ in range(args.rounds if sqlite else 2 * args.rounds):
            items = []
            for _ in range(args.tickets):
                body = texts[n % len(texts)][:20_000]
                chars += len(body)
                items.append((TicketIn(id=f"B{n:08d}", text=body, title=body[:20], address=f"滨海新区某小区{n % 3000}号",
                                       received_at=start + timedelta(seconds=n)), "tickets.received", 0, n))
                n += 1
            side = "without" if sqlite or round_ % 2 else "with"
            with without_index(ledger) if side == "without" and not sqlite else nullcontext():
                t0 = time.perf_counter()
                for i in range(0, len(items), args.batch):
                    ledger.record_tickets(items[i:i + args.batch])
                cost[side].append((time.perf_counter() - t0) * 1000 / len(items))
            if side == "with" or sqlite:
                t0 = time.perf_counter()
                while ledger.catch_up_word_index():
                    pass
                cost["catch-up"].append((time.perf_counter() - t0) * 1000 / len(items))
        print(f"ledger ({ledger.engine.dialect.name}): {n:,} tickets of {chars / n:.0f} characters on average, "
              f"recorded in batches of {args.batch}")
        for side, label in [("without", "the router's record_tickets" if sqlite else "without the GIN index"),
                            ("with", "with the GIN index"),
                            ("catch-up", "the console's catch-up of the index" if sqlite else
                             "the console's merge of the GIN index's pending list")]:
            if cost[side]:
                print(f"ms per ticket, {label}: {median(cost[side]):.3f}  (rounds: "
                      + ", ".join(f"{x:.3f}" for x in cost[side]) + ")")
        if not sqlite:
            with_, without = median(cost["with"]), median(cost["without"])
            print(f"the index costs {with_ - without:.3f} ms per ticket ({with_ / without:.2f}x)")
        ledger.dispose()


if __name__ == "__main__":
    main()
