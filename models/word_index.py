"""The ledger's word index: which tickets hold every two-character piece of a searched word.

The ticket search (工单查询) finds words with LIKE, which reads every ticket when a word is rare or found nowhere:
0.93 s on SQLite at 300,000 tickets, so seconds to a minute at a year of a big district's tickets. Chinese search
words are mostly two characters (油烟, 噪音, 停车), which neither PostgreSQL's pg_trgm nor SQLite's trigram
tokenizer can look up (both need three). This index holds each ticket's bigrams: a ticket holding a word holds
each of its bigrams, so the index gives a superset of the tickets that match, and the LIKE that follows decides,
on those few rows only, exactly as before. A word of one character has no bigram and is searched as before.

* SQLite: an FTS5 table of each ticket's bigrams as tokens (``ticket_grams``; contentless and without positions,
  so it stores only which rows hold each bigram), row ids those of ``tickets``. Its ``ascii`` tokenizer folds
  ASCII case, as SQLite's LIKE does, and splits at ASCII punctuation the ticket's bigrams and the searched ones
  alike. It is kept *behind* the ledger, not in the router's transaction: ``ticket_grams_upto`` holds the highest
  row id indexed, :func:`catch_up` indexes the tickets after it (the console does so every few seconds), and a
  search reads the tickets after it directly, so it finds a ticket recorded a moment ago all the same. Indexing a
  ticket costs ~0.17 ms of CPU (its bigrams in Python, FTS5's insert): 12% of the routing rate when the router
  paid it, and nothing a search needs before the search.
* PostgreSQL: a side table, ``ticket_grams``, of each ticket's bigrams (the function :data:`PG_FUNCTION` of its
  number, title, text and address, lower-cased as ILIKE compares), GIN indexed; the searched words go through the
  same function, so both sides are cut alike whatever the database's case rules. Behind the ledger too: the router
  only adds the ticket's number to ``ticket_grams_queue`` (in its own transaction, so no ticket is missed whatever
  order concurrent transactions commit in), the console takes up to 100 numbers at a time off the queue and
  writes their bigrams (:func:`catch_up_pg`: one statement, ``FOR UPDATE SKIP LOCKED``, so two consoles take
  different tickets), and a search reads the tickets still queued directly. The GIN index's pending list is the
  server's (4 MB by default): the console's insert that fills it merges it, and the console merges the rest when
  caught up (:func:`merge_pending`), so a search reads little of it.
  Until migration 0017 the index was an expression index on ``tickets`` itself: PostgreSQL gives an updated row
  new entries in *every* index of the table when an indexed column changes, so each update of a ticket's status
  (its routing's mirror, each lifecycle step) inserted all its bigrams into the GIN index again: 0.46 ms per
  update instead of 0.04 (and as much again to merge), on top of 0.3-0.4 ms at the insert.

Rows of ``tickets`` keep their row ids on SQLite (tickets are never deleted; SQLite gives a new row the highest
row id plus one, so the tickets after the mark are exactly those not indexed yet): a migration that rebuilds
``tickets`` anyway calls :func:`rebuild_sqlite` after it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, column, func, literal_column, or_, select, table, text, union_all

FTS_TABLE = "ticket_grams"
MARK_TABLE = "ticket_grams_upto"  # one row: every ticket with a row id up to it is in FTS_TABLE (migration 0015)
PG_TABLE = "ticket_grams"  # PostgreSQL (migration 0017): a ticket's number -> its bigrams
PG_QUEUE = "ticket_grams_queue"  # the tickets recorded and not in PG_TABLE yet: the router adds, the console takes
PG_INDEX = "ix_ticket_grams_grams"  # GIN on PG_TABLE.grams
PG_TICKETS_INDEX = "ix_tickets_bigrams"  # migrations 0014-0016: the expression index on tickets, which 0017 drops
PG_FUNCTION_NAME = "ticket_bigrams"
PG_PENDING_LIMIT_KB = 65536  # migration 0015's pending list for PG_TICKETS_INDEX, which the router appended to
# the bigrams of the fields joined by spaces, lower-cased; an immutable SQL function so it may be indexed.
# string_to_array(s, NULL) splits into characters and unnest pairs each with the next: 89 us for a ticket
# of 600 characters, a fifth of one per position with substr (GIN's own insert costs the rest, ~450 us)
PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {PG_FUNCTION_NAME}(VARIADIC fields text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(a || b), '{{}}')
  FROM (SELECT string_to_array(lower(array_to_string(fields, ' ')), NULL) AS c) AS chars,
       unnest(chars.c[1:cardinality(chars.c) - 1], chars.c[2:]) AS pairs(a, b)
$$"""
INDEXED = ("id", "title", "text", "address")  # the columns the search's LIKE reads
PG_BIGRAMS = f"{PG_FUNCTION_NAME}({', '.join(INDEXED)})"  # a row of tickets' bigrams, as indexed and as stored
PG_TICKETS_INDEX_DDL = f"CREATE INDEX {PG_TICKETS_INDEX} ON tickets USING gin ({PG_BIGRAMS})"
PG_TABLES_DDL = (
    f"CREATE TABLE {PG_TABLE} (ticket_id VARCHAR(64) NOT NULL, grams TEXT[] NOT NULL, "
    f"CONSTRAINT pk_{PG_TABLE} PRIMARY KEY (ticket_id), CONSTRAINT fk_{PG_TABLE}_ticket_id_tickets "
    "FOREIGN KEY (ticket_id) REFERENCES tickets (id) ON DELETE CASCADE)",
    f"CREATE TABLE {PG_QUEUE} (ticket_id VARCHAR(64) NOT NULL, CONSTRAINT pk_{PG_QUEUE} PRIMARY KEY (ticket_id), "
    f"CONSTRAINT fk_{PG_QUEUE}_ticket_id_tickets FOREIGN KEY (ticket_id) REFERENCES tickets (id) ON DELETE CASCADE)",
)
# the server's pending list (4 MB by default): only the console inserts here, and an insert that finds the list full
# merges it, so a burst's list stays small enough for searches to read (with 64 MB they planned a sequential scan)
PG_INDEX_DDL = f"CREATE INDEX {PG_INDEX} ON {PG_TABLE} USING gin (grams)"
# the queued tickets' bigrams, taken off the queue in the same statement; SKIP LOCKED: another console's batch is
# left to it, not waited for
PG_CATCH_UP = f"""
WITH taken AS (
  DELETE FROM {PG_QUEUE} WHERE ticket_id IN (
    SELECT ticket_id FROM {PG_QUEUE} ORDER BY ticket_id LIMIT %(n)s FOR UPDATE SKIP LOCKED)
  RETURNING ticket_id)
INSERT INTO {PG_TABLE} (ticket_id, grams)
SELECT tickets.id, {PG_BIGRAMS} FROM tickets JOIN taken ON tickets.id = taken.ticket_id
ON CONFLICT (ticket_id) DO NOTHING"""
FTS_DDL = (f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(grams, content='', detail=none, columnsize=0, "
           "tokenize='ascii')")  # no positions, no sizes: which rows hold a bigram is all a search asks
BATCH = 2000
CATCH_UP_BATCH = 100  # tickets per catch-up transaction: ~11 ms of SQLite's write lock, which the worker waits out


def bigrams(value: str) -> set[str]:
    """Every two consecutive characters of ``value`` (a ticket's field or a searched word), as they stand."""
    return {value[i:i + 2] for i in range(len(value) - 1)}


def document(fields: Iterable[str | None]) -> str:
    """A ticket's bigrams as the FTS table's text, each field's own (none across two fields)."""
    grams: set[str] = set()
    for value in fields:
        if value:
            grams |= bigrams(value)
    return " ".join(grams)


def _token(gram: str) -> bool:
    # the ascii tokenizer keeps non-ASCII characters and ASCII letters and digits; a bigram of two ASCII
    # separators ("--", ", ") is no token, and as a query an empty phrase, which matches nothing
    return any(not c.isascii() or c.isalnum() for c in gram)


def _grams(form: str) -> list[str]:
    return sorted({g for g in bigrams(form) if _token(g)})


def _quoted(gram: str) -> str:
    return '"' + gram.replace('"', '""') + '"'


def sqlite_match(words: Sequence[Sequence[str]]) -> str | None:
    """The FTS5 query for tickets holding, for every word, every bigram of one of its forms (the ways a ticket may
    write it: ``streams.console.search.forms``); None when no word narrows the search. A word with a form of no
    bigram (one character) narrows nothing."""
    clauses = []
    for forms in words:
        alternatives = [_grams(f) for f in dict.fromkeys(forms)]
        if not alternatives or not all(alternatives):
            continue
        ands = [" AND ".join(map(_quoted, grams)) for grams in alternatives]
        clauses.append(ands[0] if len(ands) == 1 else "(" + " OR ".join(f"({a})" for a in ands) + ")")
    return " AND ".join(clauses) or None


def candidates(dialect: str, words: Sequence[Sequence[str]], tickets: Any) -> Any | None:
    """A condition on ``tickets`` (the ORM class) true for every ticket that may hold all ``words``, each in one of
    its forms (and for few others); None when the index cannot narrow the search (no word of two characters).
    The indexed tickets holding every bigram of one form of each word, and every ticket not indexed yet (SQLite:
    after the mark; PostgreSQL: queued)."""
    if dialect == "sqlite":
        query = sqlite_match(words)
        if query is None:
            return None
        held = select(literal_column("rowid")).select_from(table(FTS_TABLE)).where(
            literal_column(FTS_TABLE).op("MATCH")(query))
        upto = select(literal_column("upto")).select_from(table(MARK_TABLE)).scalar_subquery()
        recent = select(literal_column("rowid")).select_from(table(tickets.__tablename__).alias("not_indexed")).where(
            literal_column("rowid") > upto)
        return literal_column(f"{tickets.__tablename__}.rowid").in_(union_all(held, recent))
    # an empty array would make GIN read its whole index: a word of one character narrows nothing
    long = [forms for forms in words if forms and all(len(f) > 1 for f in forms)]
    if not long:
        return None
    grams = table(PG_TABLE, column("ticket_id"), column("grams"))
    queued = table(PG_QUEUE, column("ticket_id"))
    held = select(grams.c.ticket_id).where(and_(*(
        or_(*(grams.c.grams.op("@>")(func.ticket_bigrams(f)) for f in dict.fromkeys(forms))) for forms in long)))
    return tickets.id.in_(union_all(held, select(queued.c.ticket_id)))


def enqueue(conn: Connection, ticket_ids: Collection[str]) -> None:
    """PostgreSQL: queue tickets just recorded for the console to index, in the recording transaction."""
    if ticket_ids:
        conn.exec_driver_sql(f"INSERT INTO {PG_QUEUE} (ticket_id) SELECT unnest(%(ids)s::text[])",
                             {"ids": list(ticket_ids)})


def catch_up_pg(conn: Connection, limit: int = CATCH_UP_BATCH) -> int:
    """PostgreSQL: index up to ``limit`` queued tickets, in the caller's transaction; how many."""
    return conn.exec_driver_sql(PG_CATCH_UP, {"n": limit}).rowcount


def _tickets_after(conn: Connection, after: int, limit: int) -> list[Any]:
    """Up to ``limit`` tickets with a row id above ``after``, in row id order: (row id, the indexed fields)."""
    return list(conn.exec_driver_sql(f"SELECT rowid, {', '.join(INDEXED)} FROM tickets WHERE rowid > ? "
                                     "ORDER BY rowid LIMIT ?", (after, limit)).all())


def _documents(rows: Iterable[Any]) -> list[dict[str, Any]]:
    """The FTS table's rows for tickets as :func:`_tickets_after` reads them."""
    return [{"r": r[0], "d": document(r[1:])} for r in rows]


def _insert_documents(conn: Connection, params: list[dict[str, Any]]) -> None:
    if params:
        conn.execute(text(f"INSERT INTO {FTS_TABLE}(rowid, grams) VALUES (:r, :d)"), params)


def catch_up(conn: Connection, limit: int = CATCH_UP_BATCH) -> int:
    """Index up to ``limit`` of the tickets after the mark (SQLite), in the caller's transaction; how many.

    The bigrams are cut before the first write, so SQLite's write lock, which the worker's writes wait for, is held
    only for FTS5's insert (~0.11 ms a ticket). Several processes may call it at once: the mark moves only from
    the value this call read (the UPDATE takes the write lock, so it compares with the latest committed mark), and
    a call that loses indexes nothing."""
    upto = conn.exec_driver_sql(f"SELECT upto FROM {MARK_TABLE}").scalar_one()
    rows = _tickets_after(conn, upto, limit)
    if not rows:
        return 0
    params = _documents(rows)
    moved = conn.exec_driver_sql(f"UPDATE {MARK_TABLE} SET upto = ? WHERE upto = ?", (rows[-1][0], upto)).rowcount
    if moved != 1:
        return 0
    _insert_documents(conn, params)
    return len(rows)


def behind(conn: Connection) -> int:
    """Tickets not indexed yet."""
    if conn.dialect.name != "sqlite":
        return conn.exec_driver_sql(f"SELECT count(*) FROM {PG_QUEUE}").scalar_one()
    return conn.exec_driver_sql(f"SELECT count(*) FROM tickets WHERE rowid > (SELECT upto FROM {MARK_TABLE})"
                                ).scalar_one()


def status(conn: Connection) -> str:
    """One line for an operator (``hotline db status``): how far the index is behind the ledger."""
    n = behind(conn)
    queued = (f"{n:,} tickets not indexed yet (the console indexes them every few seconds; searches read them "
              "directly meanwhile)" if n else "every ticket indexed")
    if conn.dialect.name == "sqlite":
        return queued
    size, options = conn.exec_driver_sql(
        "SELECT pg_size_pretty(pg_relation_size(c.oid)), coalesce(array_to_string(c.reloptions, ', '), '') "
        "FROM pg_class c WHERE c.oid = %(i)s::regclass", {"i": PG_INDEX}).one()
    limit = dict(o.split("=", 1) for o in options.split(", ") if "=" in o).get("gin_pending_list_limit")
    limit = f"{limit} kB" if limit else "the server's default"
    return (f"{queued}; GIN index {PG_INDEX}, {size}, its pending list (up to {limit}) merged by the console (which "
            "needs the role that owns the index)")


def create(conn: Connection) -> None:
    """Create the index and fill it from the stored tickets (migration 0014, as it was written)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(FTS_DDL)
        _fill_sqlite(conn)
    else:
        conn.exec_driver_sql(PG_FUNCTION)
        conn.exec_driver_sql(PG_TICKETS_INDEX_DDL)


def drop(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {FTS_TABLE}")
    else:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {PG_TICKETS_INDEX}")
        conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {PG_FUNCTION_NAME}(VARIADIC text[])")


def merge_pending(conn: Connection) -> int:
    """Merge the PostgreSQL index's pending list into the index (what the console's next insert would otherwise do
    once it is full); the pages it freed. Only the index's owner may (as for VACUUM)."""
    return conn.exec_driver_sql(f"SELECT gin_clean_pending_list('{PG_INDEX}'::regclass)").scalar_one()


NOT_OWNER = (f"this role does not own {PG_INDEX}, so the console cannot merge its pending list; the console's own "
             "inserts will, each time the list is full, and searches read a longer list meanwhile")
OWNER_FIX = "run the console with the role that ran `hotline db upgrade`, or ALTER INDEX ... OWNER TO it"


def may_merge(conn: Connection) -> bool:
    """Whether this connection's role may merge the PostgreSQL index's pending list (it owns the index, is a member of
    the role that does, or is a superuser)."""
    return conn.exec_driver_sql("SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class "
                                "WHERE oid = %(i)s::regclass", {"i": PG_INDEX}).scalar_one()


def create_mark(conn: Connection) -> None:
    """Migration 0015. SQLite: the mark, after every stored ticket (the ledger indexed each with its insert until
    then). PostgreSQL: a pending list the console merges, large enough that the router's inserts do not."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"CREATE TABLE {MARK_TABLE} (upto INTEGER NOT NULL)")
        conn.exec_driver_sql(f"INSERT INTO {MARK_TABLE} (upto) SELECT coalesce(max(rowid), 0) FROM tickets")
    else:
        conn.exec_driver_sql(f"ALTER INDEX {PG_TICKETS_INDEX} SET (gin_pending_list_limit = {PG_PENDING_LIMIT_KB})")


def drop_mark(conn: Connection) -> None:
    """Back to indexing with each insert: on SQLite the tickets after the mark are indexed first."""
    if conn.dialect.name == "sqlite":
        while catch_up(conn, BATCH):
            pass
        conn.exec_driver_sql(f"DROP TABLE {MARK_TABLE}")
    else:
        conn.exec_driver_sql(f"ALTER INDEX {PG_TICKETS_INDEX} RESET (gin_pending_list_limit)")


def create_side_table(conn: Connection) -> None:
    """Migration 0017 (PostgreSQL; nothing on SQLite): the bigrams move from an expression index on ``tickets`` to
    ``ticket_grams``, filled from the stored tickets before its index is built (one bulk build, not an insert per
    ticket), and the queue the router adds to."""
    if conn.dialect.name == "sqlite":
        return
    for ddl in PG_TABLES_DDL:
        conn.exec_driver_sql(ddl)
    fill_pg(conn)
    conn.exec_driver_sql(PG_INDEX_DDL)
    conn.exec_driver_sql(f"DROP INDEX {PG_TICKETS_INDEX}")


def fill_pg(conn: Connection) -> None:
    """PostgreSQL: index every stored ticket at once, the queue emptied (a ledger written around the router: the
    migration, a benchmark's bulk load)."""
    conn.exec_driver_sql(f"DELETE FROM {PG_QUEUE}")
    conn.exec_driver_sql(f"INSERT INTO {PG_TABLE} (ticket_id, grams) SELECT id, {PG_BIGRAMS} FROM tickets "
                         "ON CONFLICT (ticket_id) DO NOTHING")


def drop_side_table(conn: Connection) -> None:
    """Back to the expression index on ``tickets`` as migrations 0014 and 0015 left it (:func:`create`,
    :func:`create_mark`), which indexes every ticket as it is built."""
    if conn.dialect.name == "sqlite":
        return
    conn.exec_driver_sql(f"DROP TABLE {PG_QUEUE}")
    conn.exec_driver_sql(f"DROP TABLE {PG_TABLE}")
    create(conn)
    create_mark(conn)


def rebuild_sqlite(conn: Connection) -> None:
    """Index every ticket again (after a migration that rebuilt ``tickets`` and may have renumbered its rows): the
    index is emptied and its mark set back to the start, so searches read every ticket until :func:`catch_up` has
    gone through them again (the console does, in the background)."""
    conn.exec_driver_sql(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('delete-all')")
    conn.exec_driver_sql(f"UPDATE {MARK_TABLE} SET upto = 0")


def _fill_sqlite(conn: Connection) -> None:
    after = 0
    while rows := _tickets_after(conn, after, BATCH):  # in batches: a year of tickets is not read at once
        _insert_documents(conn, _documents(rows))
        after = rows[-1][0]


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """For Alembic's comparison of the database with the models: all but this index's objects (the FTS table,
    its shadow tables and its mark; the expression index), which the models do not declare."""
    return not name or not (name in (PG_INDEX, PG_TICKETS_INDEX) or name == FTS_TABLE
                            or name.startswith(f"{FTS_TABLE}_"))
