"""What the word index (migration 0014, ``models.word_index``) costs the ledger's ticket writes.

Real-length texts from ``../shared/data/messages_unlabeled.csv`` are recorded through ``Ledger.record_tickets`` in
the router's batches, in rounds that alternate between the ledger with its word index and without it (SQLite: the
FTS table's rows not written; PostgreSQL: the GIN index dropped, built again after the round), so both sides see
the same machine and a ledger of the same size. Prints milliseconds per ticket for each side (medians of the
rounds) and their difference. A fresh SQLite file by default; ``--database-url`` for an empty PostgreSQL database
or schema (the script fills it and leaves it).
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
    """The ledger as it was before migration 0014, for one round."""
    if ledger.engine.dialect.name == "sqlite":
        kept = word_index.index_sqlite
        word_index.index_sqlite = lambda conn, rows: None  # type: ignore[assignment]
        try:
            yield
        finally:
            word_index.index_sqlite = kept
        return
    with ledger.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP INDEX {word_index.PG_INDEX}")
    try:
        yield
    finally:
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql(word_index.PG_INDEX_DDL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", help="an empty scratch database (default: SQLite in a temporary folder)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per side")
    ap.add_argument("--tickets", type=int, default=2000, help="tickets per round")
    ap.add_argument("--batch", type=int, default=200, help="tickets per record_tickets call (the router's batch)")
    args = ap.parse_args()
    texts = [row["text"] for row in read_csv("messages_unlabeled.csv") if row.get("text")]
    with tempfile.TemporaryDirectory(prefix="hotline-word-index-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'ledger.sqlite3'}"
        upgrade(url)
        ledger = Ledger(make_engine(url))
        start, n = datetime(2026, 6, 1, tzinfo=UTC), 0
        cost: dict[bool, list[float]] = {True: [], False: []}
        chars = 0
        for round_ in range(2 * args.rounds):
            indexed = round_ % 2 == 0
            items = []
            for _ in range(args.tickets):
                body = texts[n % len(texts)][:20_000]
                chars += len(body)
                items.append((TicketIn(id=f"B{n:08d}", text=body, title=body[:20], address=f"滨海新区某小区{n % 3000}号",
                                       received_at=start + timedelta(seconds=n)), "tickets.received", 0, n))
                n += 1
            with without_index(ledger) if not indexed else nullcontext():
                t0 = time.perf_counter()
                for i in range(0, len(items), args.batch):
                    ledger.record_tickets(items[i:i + args.batch])
                cost[indexed].append((time.perf_counter() - t0) * 1000 / len(items))
        with_, without = median(cost[True]), median(cost[False])
        print(f"ledger ({ledger.engine.dialect.name}): {n:,} tickets of {chars / n:.0f} characters on average, "
              f"recorded in batches of {args.batch}")
        print(f"ms per ticket with the word index:    {with_:.3f}  (rounds: "
              + ", ".join(f"{x:.3f}" for x in cost[True]) + ")")
        print(f"ms per ticket without the word index: {without:.3f}  (rounds: "
              + ", ".join(f"{x:.3f}" for x in cost[False]) + ")")
        print(f"the index costs {with_ - without:.3f} ms per ticket ({with_ / without:.2f}x)")
        ledger.dispose()


if __name__ == "__main__":
    main()
