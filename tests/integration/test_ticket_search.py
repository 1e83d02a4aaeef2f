"""The ticket search's query (``queries.list_tickets`` with a ``Search``) on both backends: a caller found by their
number however the platform wrote it, every word required, LIKE's wildcards taken literally, an agency's lists
(what it handles and what it returned; by number, any ticket it may see),
the receipt dates, an agency's pages under any collation, control characters a 400, a dispatcher's number searches
that find no one throttled; and migration 0013 giving the tickets stored before it their caller key."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update

from models import ledger as t
from models.tickets import TicketIn
from models.workcalendar import TZ
from streams.console import queries
from streams.console.accounts import add_user, issue_token
from streams.console.search import NumberSearchThrottle, folded, parse_search
from streams.db import Ledger, make_engine, upgrade
from tests.conftest import PG_DB, PG_HOST, PG_PORT
from tests.unit.test_console_views import PASSWORD, Clock, Site, _site

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=TZ)
CALLER = "13812345678"
TWO_NUMBERS = "13812345678 转 0225801234567890"  # 27 digits: a valid caller_phone (40 characters at most)


@pytest.fixture
def ledger(database_url: str) -> Ledger:
    ledger = Ledger(make_engine(database_url))
    # Given tickets as the router records them, one an hour, newest last
    rows = [
        ("A1", "新北街道某某烧烤店油烟很大，晚上开窗全是烟味", "滨海新区新北街道福州道100号", "+86 138-1234-5678"),
        ("A2", "还是那家烧烤店，油烟问题没有解决", "滨海新区新北街道福州道100号", "１３８１２３４５６７８"),
        ("B1", "小区门口占道经营，早上堵路", "滨海新区新河街道", "13900001111"),
        ("C1", "打折标价100%虚假，商场价格欺诈", "滨海新区胡家园街道", None),
        ("D1", "公司拖欠工资三个月，烧烤店老板不给钱", "东丽区华明街道", "022-2580 1234"),
        ("E1", "请回电13900001111或13700009999，路灯不亮", "滨海新区新河街道", None),
    ]
    ledger.record_tickets([(TicketIn(id=f"12345-{tid}", text=body, address=address, caller_phone=phone,
                                     received_at=T0 + timedelta(hours=i)), None, None, None)
                           for i, (tid, body, address, phone) in enumerate(rows)]
                          + [(TicketIn(id="12345-F0", text="代邻居反映，联系电话13900001111，井盖缺失",
                                       received_at=T0 - timedelta(hours=1)), None, None, None)])
    with ledger.session() as s:
        for tid, status, agency in [("A1", "resolved", "BH-SCJG"), ("A2", "dispatched", "BH-STHJ"),
                                    ("B1", "dispatched", "BH-CGW"), ("D1", "manual", None)]:
            tk = s.get(t.Ticket, f"12345-{tid}")
            assert tk is not None
            tk.status, tk.current_agency = status, agency
        # A2 went to 市场监管 first, which returned it; the ecology bureau handles it now
        for tid, attempt, agency in [("A1", 1, "BH-SCJG"), ("A2", 1, "BH-SCJG"), ("A2", 2, "BH-STHJ"),
                                     ("B1", 1, "BH-CGW")]:
            s.add(t.RoutingDecision(decision_key=f"12345-{tid}#{attempt}", ticket_id=f"12345-{tid}", attempt=attempt,
                                    decision="auto", agency=agency))
    ledger.record_event(event_id="ret-A2", ticket_id="12345-A2", type="returned", actor="scjg", agency="BH-SCJG",
                        occurred_at=T0 + timedelta(hours=2), accepted=True, reason=None,
                        payload={"reason_code": "NOT_OUR_DUTY", "basis": "《某法》"})
    return ledger


def found(ledger: Ledger, query: str, **kw: object) -> list[str]:
    return [tk.id.removeprefix("12345-") for tk in queries.list_tickets(ledger, search=parse_search(query), **kw)]


def test_a_caller_is_found_by_their_number_however_either_side_wrote_it(ledger: Ledger) -> None:
    # the platform stored +86 138-1234-5678 and full-width digits; the operator types it plainly, or with spaces
    assert found(ledger, CALLER) == ["A2", "A1"]  # newest first
    assert found(ledger, "138 1234 5678") == found(ledger, "+8613812345678") == ["A2", "A1"]
    # a landline with its area code, typed with a dash
    assert found(ledger, "022-25801234") == ["D1"]
    # part of a number is no caller: it is a word, found only where it is written
    assert found(ledger, "1234567") == []
    # a caller's number finds that caller's tickets, not others that mention it; a number no caller rang from
    # is a word, found where it shows: masked to everyone but the handling agency (E1 has none), by its ends only
    assert found(ledger, "13900001111") == ["B1"]
    assert found(ledger, "13700009999") == []
    assert found(ledger, "9999") == found(ledger, "137") == ["E1"]
    # decided before the page's cursor: the page after the caller's only ticket is empty, not the older F0,
    # which mentions the number
    (b1,) = queries.list_tickets(ledger, search=parse_search("13900001111"))
    assert found(ledger, "13900001111", before=(b1.received_at, b1.id)) == []


def test_every_word_must_appear_in_the_number_title_text_or_address(ledger: Ledger) -> None:
    assert found(ledger, "烧烤店") == ["D1", "A2", "A1"]
    assert found(ledger, "烧烤店 福州道") == ["A2", "A1"]  # one in the text, one in the address
    assert found(ledger, "烧烤店 工资") == ["D1"]
    assert found(ledger, "油烟 东丽区") == []


def test_wildcards_are_taken_literally(ledger: Ledger) -> None:
    assert found(ledger, "100%") == ["C1"]  # not "100" followed by anything
    assert found(ledger, "%") == ["C1"]
    assert found(ledger, "_") == []


def test_a_ticket_number_is_found_in_either_case(ledger: Ledger) -> None:
    assert found(ledger, "12345-B1") == found(ledger, "12345-b1") == ["B1"]
    assert found(ledger, "B1") == ["B1"]  # a part of the number, as a word


def test_an_agency_finds_what_it_handles_or_returned_and_nothing_else(ledger: Ledger) -> None:
    # 市场监管 resolved A1 and returned A2, which the ecology bureau handles now
    assert found(ledger, "烧烤店", visible_to="BH-SCJG") == ["A2", "A1"]
    assert found(ledger, "烧烤店", visible_to="BH-STHJ") == ["A2"]
    assert found(ledger, CALLER, visible_to="BH-CGW") == []
    assert found(ledger, "12345-A1", visible_to="BH-CGW") == []
    # nor by a number whose ticket it cannot see: the word search among its own finds nothing either
    assert found(ledger, "13900001111", visible_to="BH-SCJG") == []
    # a ticket a dispatcher took away from it (no return of its own) is not in its lists, but its ticket number
    # finds it; its caller's number does not: the agency no longer sees it whole (a match would confirm a guess)
    with ledger.session() as s:
        s.add(t.RoutingDecision(decision_key="12345-B1#0", ticket_id="12345-B1", attempt=0, decision="auto",
                                agency="BH-SCJG"))
    assert found(ledger, "占道经营", visible_to="BH-SCJG") == []
    assert found(ledger, "12345-B1", visible_to="BH-SCJG") == ["B1"]
    assert found(ledger, "13900001111", visible_to="BH-SCJG") == []
    assert found(ledger, "13900001111", visible_to="BH-CGW") == ["B1"]  # its handler's
    # and the filters on top: handled now by, status
    assert found(ledger, "烧烤店", visible_to="BH-SCJG", agency="BH-SCJG") == ["A1"]
    assert found(ledger, "烧烤店", status="manual") == ["D1"]


def test_receipt_dates_and_pages(ledger: Ledger) -> None:
    assert found(ledger, "烧烤店", since=T0 + timedelta(hours=1)) == ["D1", "A2"]
    assert found(ledger, "烧烤店", until=T0 + timedelta(hours=4)) == ["A2", "A1"]
    first = queries.list_tickets(ledger, search=parse_search("烧烤店"), limit=2)
    rest = queries.list_tickets(ledger, search=parse_search("烧烤店"), limit=2,
                                before=(first[-1].received_at, first[-1].id))
    assert [tk.id for tk in first + rest] == ["12345-D1", "12345-A2", "12345-A1"]


def test_an_agency_s_pages_neither_skip_nor_repeat_tickets_whatever_the_collation(database_url: str) -> None:
    """The agency's list merges what it handles and what it returned; the next page starts below the last ticket
    as the database compares (received_at, id). Merged in Python's order, under a collation other than code
    points (en_US: 'a1' before 'B1') tickets received at one instant were skipped and repeated."""
    ledger = Ledger(make_engine(database_url))
    if database_url.startswith("postgresql"):
        with ledger.session() as s:
            if s.scalar(text("SELECT count(*) FROM pg_collation WHERE collname = 'en-US-x-icu'")) == 0:
                pytest.skip("PostgreSQL without ICU collations")
            s.execute(text('ALTER TABLE tickets ALTER COLUMN id TYPE VARCHAR(64) COLLATE "en-US-x-icu"'))
    # Given six tickets received at one instant: three 市场监管 handles, three it returned to others
    handles, returned = ["B1", "b3", "C-2"], ["a1", "A2", "c1"]
    ledger.record_tickets([(TicketIn(id=tid, text="路灯不亮", received_at=T0), None, None, None)
                           for tid in handles + returned])
    with ledger.session() as s:
        for tid in handles + returned:
            s.execute(update(t.Ticket).where(t.Ticket.id == tid).values(
                status="dispatched", attempt=1, current_agency="BH-SCJG" if tid in handles else "BH-CGW"))
        for tid in returned:
            s.add(t.TicketEvent(event_id=f"ret-{tid}", ticket_id=tid, type="returned", actor="scjg",
                                agency="BH-SCJG", occurred_at=T0, accepted=True, payload={}))
    # When its list (and its word search) is read page by page, whatever the page's size
    for search in (None, parse_search("路灯")):
        for limit in range(1, 7):
            seen: list[str] = []
            before = None
            while page := queries.list_tickets(ledger, visible_to="BH-SCJG", search=search, limit=limit,
                                               before=before):
                seen += [tk.id for tk in page]
                before = (page[-1].received_at, page[-1].id)
            # Then every ticket comes once
            assert sorted(seen) == sorted(handles + returned), (limit, seen)
    ledger.dispose()


def test_a_phone_field_with_more_digits_than_one_number_is_stored_without_a_caller_key(database_url: str) -> None:
    # the ticket is valid (caller_phone holds 40 characters); on PostgreSQL its 27-digit key overflowed the
    # caller_key column and failed the write of the whole batch
    ledger = Ledger(make_engine(database_url))
    assert ledger.record_tickets([(TicketIn(id=tid, text="x", caller_phone=phone, received_at=T0), None, None, None)
                                  for tid, phone in [("L1", TWO_NUMBERS), ("L2", CALLER)]]) == {"L1", "L2"}
    with ledger.session() as s:
        assert dict(s.execute(select(t.Ticket.id, t.Ticket.caller_key)).all()) == {"L1": None, "L2": CALLER}
    ledger.dispose()


def test_control_characters_are_a_400_not_a_500(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL refuses NUL in a string: a NUL in the query, the agency or caller_of failed the request (500)."""
    for site in _site(tmp_path, database_url):
        for params in ({"q": "\x00"}, {"q": "油烟\x00"}, {"q": "138\x0012345678"}):
            r = site.api("GET", "/api/tickets", "disp", params=params)
            assert r.status_code == 400 and r.json()["error"] == "invalid_search", r.text
        r = site.api("GET", "/api/tickets", "disp", params={"agency": "BH-SCJG\x00"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_agency"
        site.login("disp")
        page = site.client.get("/tickets", params={"q": "油烟\x00"})
        assert page.status_code == 400 and "控制字符" in page.text
        assert site.client.get("/tickets", params={"agency": "X\x00"}).status_code == 400
        assert site.client.get("/tickets", params={"caller_of": "A1\x00"}).status_code == 404


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0013_gives_stored_tickets_their_caller_key(backend: str, tmp_path, request) -> None:  # type: ignore[no-untyped-def]
    url = _scratch_url(backend, tmp_path, request)
    # Given a ledger of the previous version with tickets in it, one with two numbers in its phone field
    _stored_at(url, "0012", [{"text": "x", "caller_phone": phone}
                             for phone in ["+86 138-1234-5678", None, "138****5678", "12345", TWO_NUMBERS]])
    # When it is migrated
    upgrade(url)
    # Then a real number has its key; none, a masked one, a short one or digits too long for one number (on
    # PostgreSQL they overflowed the column and failed the migration) have none
    engine = make_engine(url)
    with engine.connect() as conn:
        keys = dict(conn.execute(select(t.Ticket.id, t.Ticket.caller_key)).all())
    engine.dispose()
    assert keys == {"T0": CALLER, "T1": None, "T2": None, "T3": None, "T4": None}


def _scratch_url(backend: str, tmp_path, request) -> str:  # type: ignore[no-untyped-def]
    """An empty ledger of its own (a migration test starts below the head)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'old.sqlite3'}"
    base = request.getfixturevalue("pg_schema_url")
    import psycopg

    schema = f"hotline_m_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user="postgres", autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
    request.addfinalizer(lambda: _drop(schema))
    return base.split("?")[0] + f"?options=-csearch_path%3D{schema}"


def _stored_at(url: str, revision: str, tickets: list[dict[str, Any]]) -> None:
    """A ledger migrated up to ``revision`` (an earlier version's) holding ``tickets`` (T0, T1 ...: their columns
    beside the required ones), written by SQL as that version's worker left them."""
    upgrade(url, revision)
    engine = make_engine(url)
    at = T0.isoformat() if engine.dialect.name == "sqlite" else T0
    with engine.begin() as conn:
        for i, row in enumerate(tickets):
            columns = ", ".join(row)
            conn.execute(text(f"INSERT INTO tickets (id, received_at, status, attempt, first_seen_at, updated_at, "
                              f"{columns}) VALUES (:id, :at, 'received', 0, :at, :at, "
                              f"{', '.join(':' + c for c in row)})"), {"id": f"T{i}", "at": at, **row})
    engine.dispose()


def _drop(schema: str) -> None:
    import psycopg

    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user="postgres", autocommit=True) as c:
        c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_caller_field_longer_than_any_phone_number_is_stored_without_a_key(ledger: Ledger) -> None:
    # 25 digits in the caller field (a platform's account number, a typo): the key column holds 20 characters,
    # and PostgreSQL refused the whole routing batch's insert when the key was the 25 digits
    odd = TicketIn(id="12345-Z1", text="路灯不亮", caller_phone="1234567890123456789012345", received_at=T0)
    assert ledger.record_tickets([(odd, None, None, None)]) == {"12345-Z1"}
    with ledger.session() as s:
        assert s.scalar(select(t.Ticket.caller_key).where(t.Ticket.id == "12345-Z1")) is None
    # and not found by it: no caller has that number, and the caller field is not searched by parts (typing
    # "138" would tell a user who sees the number masked which tickets have callers starting so)
    assert found(ledger, "1234567890123456789012345") == []


def test_pages_read_on_past_tickets_matched_only_in_a_hidden_number(ledger: Ledger) -> None:
    # Given 30 newer tickets whose text holds a number with 1381 in its hidden middle, and one older ticket showing
    # 1381 in its address
    ledger.record_tickets([(TicketIn(id=f"12345-H{i:02d}", text=f"噪音扰民，回电1391381{i:04d}",
                                     received_at=T0 + timedelta(days=1, minutes=i)), None, None, None)
                           for i in range(30)]
                          + [(TicketIn(id="12345-G1", text="噪音扰民", address="福州道1381号",
                                       received_at=T0 - timedelta(days=1)), None, None, None)])
    # When a user who sees those numbers masked searches "噪音 1381", a page of 5 at a time
    search = parse_search("噪音 1381")
    first = queries.list_tickets(ledger, search=search, limit=5)
    # Then the page holds the one ticket where 1381 shows, read past the 30 others, and nothing follows it
    assert [tk.id for tk in first] == ["12345-G1"]
    assert queries.list_tickets(ledger, search=search, limit=5, before=(first[0].received_at, first[0].id)) == []


# Tickets whose words sit next to ASCII punctuation, quotes, case and field edges: what the word index cuts
WORDY = [("W1", "KFC门口油烟机噪音", "噪音扰民", "3-5号楼"),
         ("W2", 'He said "hi"，烧烤店到半夜', None, "新港路"),
         ("W3", "路灯, 不亮--请修", "夜间施工", None),
         ("W4", "一", None, None)]


def _wordy(ledger: Ledger) -> None:
    ledger.record_tickets([(TicketIn(id=f"12345-{tid}", text=body, title=title, address=address,
                                     received_at=T0 + timedelta(minutes=i)), None, None, None)
                           for i, (tid, body, title, address) in enumerate(WORDY)])


@pytest.mark.parametrize("query", ["油烟", "kfc", "Kfc", "3-5号", "5号楼", "--", '"hi"', "噪音 施工", "音扰", "烧",
                                   "烧 hi", "灯,", "火星", "民K", "W3", "12345-w", "一", "扰民 3-5", "e s"])
def test_the_word_index_finds_every_ticket_the_words_are_in(database_url: str, query: str) -> None:
    """The index only narrows what LIKE reads: it must hold every ticket LIKE would find (here, ASCII case folded
    on both backends), and a word across two fields (民K: the title's end, the text's start) is in neither."""
    # Given tickets with punctuation, quotes, ASCII case and a one-character text
    ledger = Ledger(make_engine(database_url))
    _wordy(ledger)
    # When the words are searched for
    # Then the tickets are those holding every word in one of their number, title, text or address
    words = parse_search(query).words  # type: ignore[union-attr]
    expected = sorted(tid for tid, body, title, address in WORDY
                      if all(any(folded(w) in folded(f) for f in (f"12345-{tid}", body, title or "", address or ""))
                             for w in words))
    assert sorted(found(ledger, query)) == expected
    ledger.dispose()


WIDTHS = [("X1", "６栋楼下ＫＴＶ噪音到半夜", "Ａ座３－５号"),  # full-width, as some citizens write
          ("X2", "6栋楼下ktv噪音到半夜", "A座3-5号"),
          ("X3", "６-8号楼漏水", None)]  # both widths in one word


@pytest.mark.parametrize("indexed", [False, True])
@pytest.mark.parametrize("query, expected", [("6栋", ["X2", "X1"]), ("６栋", ["X2", "X1"]), ("KTV", ["X2", "X1"]),
                                             ("ｋｔｖ 噪音", ["X2", "X1"]), ("Ａ座", ["X2", "X1"]),
                                             ("3-5号", ["X2", "X1"]), ("６-8号", ["X3"]), ("楼漏", ["X3"])])
def test_a_word_is_found_written_in_half_or_full_width(database_url: str, indexed: bool, query: str,
                                                       expected: list[str]) -> None:
    # Given tickets writing the same words in full-width and in half-width characters
    ledger = Ledger(make_engine(database_url))
    ledger.record_tickets([(TicketIn(id=f"12345-{tid}", text=body, address=address,
                                     received_at=T0 + timedelta(minutes=i)), None, None, None)
                           for i, (tid, body, address) in enumerate(WIDTHS)])
    while indexed and ledger.catch_up_word_index():  # SQLite: through the index, not the tickets after its mark
        pass
    # When the operator types the word either way, then both are found (newest first)
    assert found(ledger, query) == expected
    ledger.dispose()


def test_on_sqlite_the_search_reads_the_word_index_and_the_tickets_not_in_it_yet(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The router does not index; a ticket recorded a moment ago is found all the same (read directly), and once
    indexed it is found through the index, not by a LIKE over every ticket: a ticket the index lost is not found
    by a word of two characters, and is again once the index is rebuilt (what a migration that copies ``tickets``
    must do)."""
    from models import word_index

    ledger = Ledger(make_engine(f"sqlite:///{tmp_path / 'l.sqlite3'}"))
    upgrade(str(ledger.engine.url))
    # Given tickets just recorded: none is indexed yet, and the search finds them
    _wordy(ledger)
    with ledger.engine.connect() as conn:
        assert word_index.behind(conn) == len(WORDY)
    assert found(ledger, "油烟") == ["W1"]
    # When the index catches up, then nothing is behind and the same search finds the same
    assert ledger.catch_up_word_index(limit=3) == 3
    assert ledger.catch_up_word_index() == 1
    assert ledger.catch_up_word_index() == 0
    assert found(ledger, "油烟") == ["W1"]
    # and it is the index that found it: emptied (the mark left where it is), a two-character word finds nothing
    with ledger.engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO {word_index.FTS_TABLE}({word_index.FTS_TABLE}) VALUES ('delete-all')")
    assert found(ledger, "油烟") == []
    assert found(ledger, "烧") == ["W2"]  # one character: no bigram to look up, LIKE reads every ticket
    # A rebuild sets the mark back: every ticket is read directly until the index has caught up again
    with ledger.engine.begin() as conn:
        word_index.rebuild_sqlite(conn)
    assert found(ledger, "油烟") == ["W1"]
    while ledger.catch_up_word_index():
        pass
    assert found(ledger, "油烟") == ["W1"]
    with ledger.engine.connect() as conn:
        assert word_index.behind(conn) == 0
    ledger.dispose()


def test_db_status_says_how_far_the_word_index_is_behind(database_url: str, tmp_path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from streams.cli import app

    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HOTLINE_DATABASE_URL", database_url)
    ledger = Ledger(make_engine(database_url))
    _wordy(ledger)

    def said() -> str:
        r = CliRunner().invoke(app, ["db", "status"])
        assert r.exit_code == 0, r.output
        return " ".join(line for line in r.output.splitlines() if line.startswith("word index"))

    assert "4 tickets not indexed yet" in said()
    while ledger.catch_up_word_index():
        pass
    assert "every ticket indexed" in said()
    if ledger.engine.dialect.name != "sqlite":
        assert "pending list (up to the server's default)" in said()
    ledger.dispose()


class _Interleaved:
    """A connection on which ``between`` runs just before the first UPDATE: another process's catch-up landing
    between this one's read of the mark and its move of it."""

    def __init__(self, conn: Any, between: Any) -> None:
        self.conn, self.between = conn, between

    def exec_driver_sql(self, sql: str, *args: Any) -> Any:
        if sql.startswith("UPDATE") and self.between is not None:
            self.between, between = None, self.between
            between()
        return self.conn.exec_driver_sql(sql, *args)

    def execute(self, *args: Any) -> Any:
        return self.conn.execute(*args)


def test_two_consoles_catching_up_at_once_index_each_ticket_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from models import word_index

    url = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    upgrade(url)
    mine, other = Ledger(make_engine(url)), Ledger(make_engine(url))
    _wordy(mine)
    # Given another console's catch-up landing after this one read the mark and the tickets after it
    with mine.engine.begin() as conn:
        indexed_here = word_index.catch_up(_Interleaved(conn, other.catch_up_word_index))  # type: ignore[arg-type]
    # Then this one indexes nothing (the other indexed them), and the mark is at the last ticket
    assert indexed_here == 0
    with mine.engine.connect() as conn:
        assert word_index.behind(conn) == 0
        assert conn.exec_driver_sql(f"SELECT upto FROM {word_index.MARK_TABLE}").scalar_one() == \
            conn.exec_driver_sql("SELECT max(rowid) FROM tickets").scalar_one()
    assert found(mine, "油烟") == ["W1"]
    mine.dispose()
    other.dispose()


def test_the_console_keeps_the_word_index(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A running console indexes what the router records, without a request asking it to."""
    import time

    from models import word_index

    for site in _site(tmp_path):
        _wordy(site.ledger)
        deadline = time.monotonic() + 20
        while True:
            with site.ledger.engine.connect() as conn:
                if word_index.behind(conn) == 0:
                    break
            assert time.monotonic() < deadline, "the console did not index the tickets recorded"
            time.sleep(0.1)
        assert found(site.ledger, "油烟") == ["W1"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0014_indexes_the_stored_tickets(backend: str, tmp_path, request) -> None:  # type: ignore[no-untyped-def]
    url = _scratch_url(backend, tmp_path, request)
    # Given a ledger of the previous version with tickets in it
    _stored_at(url, "0013", [{"text": "楼下饭店油烟直排", "address": "新港路1号"}, {"text": "工地夜间施工噪音"}])
    # When it is migrated, then its tickets are found by their words, and a ticket recorded since too
    upgrade(url)
    ledger = Ledger(make_engine(url))
    ledger.record_tickets([(TicketIn(id="T2", text="油烟扰民", received_at=T0), None, None, None)])
    assert sorted(tk.id for tk in queries.list_tickets(ledger, search=parse_search("油烟"))) == ["T0", "T2"]
    assert [tk.id for tk in queries.list_tickets(ledger, search=parse_search("港路"))] == ["T0"]
    assert [tk.id for tk in queries.list_tickets(ledger, search=parse_search("施工 噪音"))] == ["T1"]
    ledger.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0015_starts_the_index_s_mark_after_the_tickets_indexed_with_their_insert(
        backend: str, tmp_path, request) -> None:  # type: ignore[no-untyped-def]
    from models import word_index
    from streams.db import downgrade

    url = _scratch_url(backend, tmp_path, request)
    # Given a ledger of version 0014, whose tickets were indexed as they were written
    _stored_at(url, "0013", [{"text": "楼下饭店油烟直排"}, {"text": "工地夜间施工噪音"}])
    upgrade(url, "0014")
    # When it is migrated, then nothing is behind, and its tickets are found by their words
    upgrade(url)
    ledger = Ledger(make_engine(url))
    sqlite = ledger.engine.dialect.name == "sqlite"
    if sqlite:
        with ledger.engine.connect() as conn:
            assert word_index.behind(conn) == 0
    else:  # PostgreSQL: since migration 0017 the bigrams are in a side table whose index has the server's list
        assert _pending_limit(ledger) is None
    assert [tk.id for tk in queries.list_tickets(ledger, search=parse_search("油烟"))] == ["T0"]
    # and taken back, the tickets recorded since (not indexed yet) are indexed for 0014's code, which reads only
    # the index
    ledger.record_tickets([(TicketIn(id="T2", text="油烟扰民", received_at=T0), None, None, None)])
    downgrade(url, "0014")
    if sqlite:
        with ledger.engine.connect() as conn:
            held = conn.exec_driver_sql(f"SELECT rowid FROM {word_index.FTS_TABLE} WHERE {word_index.FTS_TABLE} "
                                        "MATCH '\"扰民\"'").scalars().all()
            assert held == conn.exec_driver_sql("SELECT rowid FROM tickets WHERE id = 'T2'").scalars().all()
    else:  # the expression index on tickets again (migration 0017 taken back), built from every ticket
        assert _pending_limit(ledger, word_index.PG_TICKETS_INDEX) is None
        with ledger.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT id FROM tickets WHERE ticket_bigrams(id, title, text, address) "
                                        "@> ticket_bigrams('扰民')").scalars().all() == ["T2"]
    ledger.dispose()


def _pending_limit(ledger: Ledger, index: str | None = None) -> list[str] | None:
    from models import word_index

    with ledger.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT reloptions FROM pg_class WHERE oid = %(i)s::regclass",
                                    {"i": index or word_index.PG_INDEX}).scalar_one()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_the_console_indexes_the_queued_tickets_and_merges_the_pending_list(  # type: ignore[no-untyped-def]
        database_url: str, caplog) -> None:
    from models import word_index

    ledger = Ledger(make_engine(database_url))
    # Given tickets just recorded: the router queued them, and they are found (read directly)
    _wordy(ledger)
    with ledger.engine.connect() as conn:
        assert word_index.behind(conn) == len(WORDY)
        # no index of tickets holds their bigrams: updating a ticket's status re-inserts none (migration 0017)
        assert conn.exec_driver_sql("SELECT count(*) FROM pg_indexes WHERE tablename = 'tickets' AND "
                                    "strpos(indexdef, 'ticket_bigrams') > 0").scalar_one() == 0
    assert found(ledger, "油烟") == ["W1"]
    # When the console's round runs, then they are indexed, the queue is empty, the pending list merged (nothing left
    # for a second merge), and they are found through the index: emptied, a two-character word finds nothing
    assert ledger.catch_up_word_index(limit=3) == 3
    assert ledger.catch_up_word_index() == 1
    assert ledger.catch_up_word_index() == 0
    with ledger.engine.begin() as conn:
        assert word_index.behind(conn) == 0
        assert word_index.merge_pending(conn) == 0
    assert found(ledger, "油烟") == ["W1"]
    with ledger.engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM {word_index.PG_TABLE}")
    assert found(ledger, "油烟") == []
    with ledger.engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO {word_index.PG_QUEUE} SELECT id FROM tickets")
    while ledger.catch_up_word_index():
        pass
    # A role that does not own the index may not merge: said once, and the console goes on
    import psycopg

    role = f"hotline_ro_{uuid.uuid4().hex[:8]}"
    schema = database_url.rsplit("%3D", 1)[1]
    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user="postgres", autocommit=True) as c:
        c.execute(f'CREATE ROLE "{role}" NOLOGIN')
        c.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        c.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
    try:
        other = Ledger(make_engine(f"{database_url}%20-crole%3D{role}"))
        with caplog.at_level("WARNING", logger="streams.db"):
            for tid in ("12345-W9", "12345-W10"):
                other.record_tickets([(TicketIn(id=tid, text="油烟又来了", received_at=T0), None, None, None)])
                assert other.catch_up_word_index() == 1
        said = [r.getMessage() for r in caplog.records if "pending list" in r.getMessage()]
        assert len(said) == 1 and "does not own" in said[0] and "OWNER TO" in said[0], said
        assert found(other, "油烟") == ["W9", "W10", "W1"]  # newest first: W9 and W10 at T0, by number descending
        other.dispose()
        # and `hotline doctor` says so beforehand, for that role and not for the owner
        from streams.cli.platform import _word_index_check

        for url, warned in [(database_url, False), (f"{database_url}%20-crole%3D{role}", True)]:
            checked = Ledger(make_engine(url))
            check = _word_index_check(checked)
            checked.dispose()
            assert check.ok and check.detail.startswith("warning") == warned, check
    finally:
        with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user="postgres", autocommit=True) as c:
            c.execute(f'DROP OWNED BY "{role}"')
            c.execute(f'DROP ROLE "{role}"')
    ledger.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_the_list_is_merged_also_when_the_last_batch_was_full(database_url: str) -> None:
    from models import word_index

    ledger = Ledger(make_engine(database_url))
    _wordy(ledger)
    # Given the queue emptied by full batches (no merge after a full one: more may follow)
    assert ledger.catch_up_word_index(limit=2) == 2 and ledger.catch_up_word_index(limit=2) == 2
    # When the next round finds the queue empty, then it merges what the full ones indexed
    assert ledger.catch_up_word_index(limit=2) == 0
    with ledger.engine.begin() as conn:
        assert word_index.merge_pending(conn) == 0
    ledger.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_two_consoles_catching_up_at_once_take_different_tickets(database_url: str) -> None:
    from models import word_index

    ledger = Ledger(make_engine(database_url))
    _wordy(ledger)
    # Given one console's batch taken off the queue and not committed yet
    with ledger.engine.connect() as mine, ledger.engine.connect() as other:
        with mine.begin():
            assert word_index.catch_up_pg(mine, 2) == 2
            # When another console catches up meanwhile, then it takes the other tickets, without waiting
            with other.begin():
                other.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                assert word_index.catch_up_pg(other, 10) == len(WORDY) - 2
    # Then each ticket is indexed once, and the queue is empty
    with ledger.engine.connect() as conn:
        assert word_index.behind(conn) == 0
        assert conn.exec_driver_sql(f"SELECT count(*), count(DISTINCT ticket_id) FROM {word_index.PG_TABLE}").one() \
            == (len(WORDY), len(WORDY))
    assert found(ledger, "油烟") == ["W1"]
    ledger.dispose()


def test_a_number_that_is_a_ticket_s_finds_that_ticket_and_not_also_a_caller(ledger: Ledger) -> None:
    # with both found, a ticket made with each guess as its number would be found by every guess, and whether a
    # caller came with it would read the masked number while the throttle saw only searches that found something
    ledger.record_tickets([(TicketIn(id="138-1234-5678", text="x", received_at=T0), None, None, None)])
    assert found(ledger, "138-1234-5678") == ["138-1234-5678"]
    assert found(ledger, CALLER) == ["A2", "A1"]


def test_a_dispatcher_s_number_searches_that_find_no_one_are_throttled(ledger: Ledger, database_url: str, tmp_path,
                                                                      caplog) -> None:  # type: ignore[no-untyped-def]
    """Each number search that finds no caller tells a dispatcher, who sees the number masked, that a guess at the
    hidden digits of 138****5678 was wrong: 10,000 of them read it. After 20 within 10 minutes, no more for a
    while; words, numbers found and other users go on."""
    for site in _site(tmp_path, database_url):
        clock = Clock()
        site.client.app.state.console.number_searches = NumberSearchThrottle(clock=clock)  # type: ignore[attr-defined]
        add_user(site.ledger, "disp2", "dispatcher", PASSWORD)
        site.tokens["disp2"] = issue_token(site.ledger, "disp2")

        def guess(i: int, user: str = "disp", site: Site = site) -> Any:  # a guess at 138****5678's hidden digits
            return site.api("GET", "/api/tickets", user, params={"q": f"138{i:04d}5678"})

        # Given 19 guesses that found no one (one found only as a word, in the address of a ticket made for it),
        # among searches by words and by numbers that found their caller or their ticket
        ledger.record_tickets([(TicketIn(id=tid, text="x", address=address, received_at=T0), None, None, None)
                               for tid, address in [("12345-P1", "13800005678号"), ("2025113000123", None)]])
        assert [tk["id"] for tk in guess(0).json()] == ["12345-P1"]
        for i in range(1, 19):
            r = guess(i)
            assert r.status_code == 200 and r.json() == [], r.text
        for q in [CALLER, "138 1234 5678", "13900001111", "2025113000123", "烧烤店", "12345-B1",
                  "路灯 13700009999"] * 5:
            assert site.api("GET", "/api/tickets", "disp", params={"q": q}).status_code == 200, q
        # When the 20th misses, then the 21st number search is refused: a 429 saying when to try again
        assert guess(19).status_code == 200
        r = guess(20)
        assert r.status_code == 429 and r.headers["retry-after"] == "600", r.text
        assert r.json()["error"] == "too_many_number_misses" and "10 分钟后再试" in r.json()["message"]
        assert site.api("GET", "/api/tickets", "disp", params={"q": CALLER}).status_code == 429  # any number
        # and on the page, the form and why, not the list
        site.login("disp")
        page = site.client.get("/tickets", params={"q": "13800015678"})
        assert page.status_code == 429 and page.headers["retry-after"] == "600"
        assert "号码查询未命中次数过多，请 10 分钟后再试" in page.text and "<table" not in page.text
        # words, ticket numbers, a caller's other tickets (the ticket page's link) and the lists stay open
        assert site.client.get("/tickets", params={"q": "烧烤店"}).status_code == 200
        assert site.client.get("/tickets", params={"caller_of": "12345-A1"}).status_code == 200
        assert site.api("GET", "/api/tickets", "disp", params={"q": "12345-B1"}).status_code == 200
        # the refusal is logged, the number masked
        refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert refusals and "138****5678" in refusals[-1] and not any(re.search(r"\d{7}", m) for m in refusals)
        # another dispatcher, at the same address, is not affected; nor are a supervisor's numbers (words to them)
        assert guess(21, "disp2").status_code == 200
        assert all(guess(i, "boss").status_code == 200 for i in range(30, 55))
        # When the window has passed, the dispatcher may search by number again
        clock.t += 600
        assert guess(22).status_code == 200
