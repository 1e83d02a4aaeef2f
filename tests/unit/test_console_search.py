"""工单查询: what a typed query means (``streams.console.search``), and the console's search page and the API's
``q`` on a SQLite ledger: a caller ringing again found by their number, a ticket number going straight to its
page, an agency finding only what it may see, the caller's number masked as everywhere else, the page's dates
including the last day, bad queries answered with a reason."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from models import ledger as t
from models.tickets import TicketIn
from models.workcalendar import TZ
from streams.console.search import MAX_QUERY_CHARS, BadSearch, Search, folded, forms, half_width, parse_search
from tests.unit.test_console_views import Site, _site

CALLER = "13812345678"
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=TZ)


# --- what a query means ---------------------------------------------------------------------------------------
def test_a_phone_number_in_any_notation_is_a_caller_and_also_a_word() -> None:
    for typed in ("13812345678", "+86 138-1234-5678", "１３８ １２３４ ５６７８", "(0086)13812345678"):
        search = parse_search(typed)
        assert search is not None and search.caller_key == CALLER and search.words == (search.text,)
    assert parse_search("022-2580 1234") == Search("022-2580 1234", ("022-2580 1234",), "02225801234")


def test_words_are_split_at_spaces_once_each_and_an_empty_query_is_no_search() -> None:
    assert parse_search("  油烟   新北街道 油烟 ") == Search("油烟 新北街道 油烟", ("油烟", "新北街道"))
    assert parse_search("12345-20261204-0001").text == "12345-20261204-0001"  # type: ignore[union-attr]
    assert parse_search("138****5678") == Search("138****5678", ("138****5678",))  # a masked number: no caller
    assert parse_search("") is None and parse_search("   ") is None and parse_search(None) is None


def test_a_query_too_long_or_with_too_many_words_is_refused_saying_why() -> None:
    with pytest.raises(BadSearch, match="查询内容过长"):
        parse_search("油" * (MAX_QUERY_CHARS + 1))
    with pytest.raises(BadSearch, match="关键词过多"):
        parse_search("a b c d e f")
    with pytest.raises(BadSearch, match="控制字符"):  # PostgreSQL refuses a NUL; SQLite's LIKE stopped at it
        parse_search("油烟\x00")


def test_a_word_s_forms_are_as_typed_half_width_and_full_width_in_either_case() -> None:
    assert forms("油烟") == ("油烟",)
    assert forms("６栋") == ("６栋", "6栋")
    assert forms("Ktv") == ("Ktv", "Ｋｔｖ", "ｋｔｖ", "ＫＴＶ")  # half-width is as typed; full-width as typed, lower, upper
    assert forms("3-5号") == ("3-5号", "３－５号")
    assert forms("６-8号") == ("６-8号", "6-8号", "６－８号")
    assert half_width("１２３４５－ＢＨ　Ａ") == "12345-BH A" and folded("ＫＴＶ店") == "ktv店"
    # a ticket number typed in full-width is tried half-width too
    assert "12345-BH-0001" in parse_search("１２３４５－ｂｈ－０００１").ticket_ids  # type: ignore[union-attr]


def test_digits_too_long_for_one_number_are_words_only() -> None:
    # no ticket's caller_key is longer than the column: a 21-digit query is no caller
    assert parse_search("1" * 21) == Search("1" * 21, ("1" * 21,))


# --- the page and the API ---------------------------------------------------------------------------------------
@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    for s in _site(tmp_path):
        # Given a caller who rang twice about one barbecue, and one other ticket; the second call is with 市场监管
        s.ledger.record_tickets([(TicketIn(id=tid, text=body, caller_phone=phone, address="滨海新区新北街道福州道100号",
                                           received_at=T0 + timedelta(days=i)), None, None, None)
                                 for i, (tid, body, phone) in enumerate([
                                     ("12345-A1", f"烧烤店油烟很大，请回电{CALLER}", "+86 138-1234-5678"),
                                     ("12345-A2", "还是那家烧烤店，油烟没有解决", CALLER),
                                     ("12345-B1", "小区门口占道经营", "13900001111")])])
        with s.ledger.session() as session:
            for tid, agency in [("12345-A2", "BH-SCJG"), ("12345-B1", "BH-CGW")]:
                tk = session.get(t.Ticket, tid)
                assert tk is not None
                tk.status, tk.current_agency = "dispatched", agency
                session.add(t.RoutingDecision(decision_key=f"{tid}#1", ticket_id=tid, attempt=1, decision="auto",
                                              agency=agency))
        yield s


def listed(html: str) -> list[str]:
    return re.findall(r'<td class="nowrap"><a href="/tickets/([^"]+)">', html)


def test_a_dispatcher_finds_a_caller_ringing_again_by_their_number_with_it_masked(site: Site) -> None:
    site.login("disp")
    page = site.client.get("/tickets", params={"q": "138 1234 5678"})
    assert page.status_code == 200 and listed(page.text) == ["12345-A2", "12345-A1"]
    assert CALLER not in page.text and "138****5678" in page.text  # the number typed is not echoed back either
    assert 'value="138 1234 5678"' in page.text  # the query stays in its box
    assert '<a href="/tickets">工单查询</a>' in page.text  # and every page's header links here


def test_a_ticket_number_typed_opens_that_ticket(site: Site) -> None:
    site.login("boss")
    r = site.client.get("/tickets", params={"q": "12345-b1"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/tickets/12345-B1"


def test_an_agency_finds_only_its_own_tickets_and_sees_its_caller_s_number(site: Site) -> None:
    site.login("scjg")
    page = site.client.get("/tickets", params={"q": CALLER}).text
    assert listed(page) == ["12345-A2"]  # A1 never came to it
    assert "+86" not in page and CALLER in page  # the handling agency sees the full number (as stored: A2's)
    assert listed(site.client.get("/tickets", params={"q": "占道经营"}).text) == []
    # another agency's ticket number is not found, nor redirected to
    r = site.client.get("/tickets", params={"q": "12345-B1"}, follow_redirects=False)
    assert r.status_code == 200 and listed(r.text) == []


def test_the_page_s_last_day_is_included_and_a_reversed_range_is_refused(site: Site) -> None:
    site.login("disp")
    day = lambda n: (T0 + timedelta(days=n)).date().isoformat()  # noqa: E731
    assert listed(site.client.get("/tickets", params={"since": day(1), "until": day(1)}).text) == ["12345-A2"]
    r = site.client.get("/tickets", params={"since": day(2), "until": day(1)})
    assert r.status_code == 400 and "早于「受理自」" in r.text
    r = site.client.get("/tickets", params={"q": "油" * 101})
    assert r.status_code == 400 and "查询内容过长" in r.text
    assert site.client.get("/tickets", params={"status": "nonsense"}).status_code == 400
    # the last day the date field takes (the API's exclusive until is a day past it), and the field named as shown
    for since in ("", "2099-12-31"):
        r = site.client.get("/tickets", params={"since": since, "until": "2099-12-31"})
        assert r.status_code == 200 and "2100" not in r.text
    r = site.client.get("/tickets", params={"since": "2026-02-30"})
    assert r.status_code == 400 and "「受理自」应为" in r.text and "since 应为" not in r.text


def test_the_page_goes_on_to_older_tickets(site: Site) -> None:
    site.ledger.record_tickets([(TicketIn(id=f"12345-P{i:03d}", text="路灯不亮", received_at=T0 - timedelta(hours=i)),
                                 None, None, None) for i in range(60)])
    site.login("disp")
    first = site.client.get("/tickets", params={"q": "路灯"}).text
    assert len(listed(first)) == 50
    following = re.search(r'<a href="(/tickets\?[^"]+)">下一页', first).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    rest = site.client.get(following).text
    assert len(listed(rest)) == 10 and not set(listed(first)) & set(listed(rest)) and "回到第一页" in rest


def test_the_api_searches_with_q_and_links_the_next_page_with_it(site: Site) -> None:
    r = site.api("GET", "/api/tickets", "disp", params={"q": "烧烤店", "limit": 1})
    assert r.status_code == 200 and [b["id"] for b in r.json()] == ["12345-A2"]
    assert "q=%E7%83%A7%E7%83%A4%E5%BA%97" in r.headers["Link"]
    nxt = re.match(r"<([^>]+)>", r.headers["Link"]).group(1)  # type: ignore[union-attr]
    assert [b["id"] for b in site.api("GET", nxt, "disp").json()] == ["12345-A1"]
    assert r.json()[0]["caller_phone"] == "138****5678"
    # an agency's list: what it handles now and what it returned, searched or not
    assert [b["id"] for b in site.api("GET", "/api/tickets", "scjg", params={"q": CALLER}).json()] == ["12345-A2"]
    bad = site.api("GET", "/api/tickets", "disp", params={"since": "2026-13-01"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_period"
    assert site.api("GET", "/api/tickets", "disp", params={"q": "a b c d e f"}).json()["error"] == "invalid_search"


def test_a_ticket_page_links_to_its_caller_s_other_tickets_without_their_number(site: Site) -> None:
    site.login("disp")
    page = site.client.get("/tickets/12345-A2").text
    link = re.search(r'<a id="same-caller" href="([^"]+)">另有 1 张工单', page).group(1)  # type: ignore[union-attr]
    assert link == "/tickets?caller_of=12345-A2"  # the ticket, not the number, in the address
    listing = site.client.get(link).text
    assert listed(listing) == ["12345-A2", "12345-A1"] and 'id="caller-of"' in listing
    assert 'name="caller_of" value="12345-A2"' in listing  # kept when the filters are refined
    assert listed(site.client.get(link + "&q=没有解决").text) == ["12345-A2"]
    # a ticket whose caller rang once links nowhere
    assert 'id="same-caller"' not in site.client.get("/tickets/12345-B1").text


def test_an_agency_sees_only_its_share_of_a_caller_s_history(site: Site) -> None:
    site.login("scjg")
    assert 'id="same-caller"' not in site.client.get("/tickets/12345-A2").text  # A1 never came to it
    assert listed(site.client.get("/tickets?caller_of=12345-A2").text) == ["12345-A2"]
    # and another agency's ticket is not found, as its page is not
    r = site.client.get("/tickets?caller_of=12345-B1")
    assert r.status_code == 404 and "未派给本单位" in r.text


def test_a_caller_s_ticket_once_dispatched_to_the_agency_is_counted_and_listed_alike(site: Site) -> None:
    # Given A1 was first dispatched to 市场监管, and a dispatcher moved it away (no return of its own)
    with site.ledger.session() as session:
        session.add(t.RoutingDecision(decision_key="12345-A1#0", ticket_id="12345-A1", attempt=0, decision="auto",
                                      agency="BH-SCJG"))
    site.login("scjg")
    # Then the agency's page of A2 counts it, and the list behind the link shows it
    assert re.search(r'id="same-caller"[^>]*>另有 1 张工单', site.client.get("/tickets/12345-A2").text)
    assert listed(site.client.get("/tickets?caller_of=12345-A2").text) == ["12345-A2", "12345-A1"]
    # while its word search lists only what it handles and returned
    assert listed(site.client.get("/tickets", params={"q": "烧烤店"}).text) == ["12345-A2"]


def test_a_masked_number_cannot_be_read_digit_by_digit_through_the_search(site: Site) -> None:
    # Given A1's text holds the caller's number, shown to a dispatcher as 138****5678
    site.login("disp")
    # When the dispatcher tries the hidden digits one by one; Then no guess is confirmed, right or wrong
    for guess in ("1381", "1382", "13812", "8123"):
        assert listed(site.client.get("/tickets", params={"q": f"烧烤店 {guess}"}).text) == [], guess
    # while what the page shows of the number is found as shown
    assert listed(site.client.get("/tickets", params={"q": "烧烤店 138"}).text) == ["12345-A1"]
    assert listed(site.client.get("/tickets", params={"q": "5678"}).text) == ["12345-A1"]
    # and the API alike
    assert site.api("GET", "/api/tickets", "boss", params={"q": "请回电 1381"}).json() == []


def test_the_handling_agency_finds_its_ticket_by_the_number_it_sees_whole(site: Site) -> None:
    with site.ledger.session() as session:  # A1 is now 市场监管's to handle
        tk = session.get(t.Ticket, "12345-A1")
        assert tk is not None
        tk.status, tk.current_agency = "dispatched", "BH-SCJG"
    site.login("scjg")
    assert listed(site.client.get("/tickets", params={"q": "回电 1381"}).text) == ["12345-A1"]


def test_only_those_who_see_the_number_whole_or_take_the_calls_find_a_caller_by_it(site: Site) -> None:
    # A dispatcher (the hotline's staff, who take the calls) finds the caller's two tickets by the number
    assert [b["id"] for b in site.api("GET", "/api/tickets", "disp", params={"q": CALLER}).json()] == \
        ["12345-A2", "12345-A1"]
    # A supervisor sees it masked everywhere: a match would confirm one of 10,000 guesses at 138****5678, so the
    # number is only a word, found where it shows (nowhere here: A1's text shows it masked)
    assert site.api("GET", "/api/tickets", "boss", params={"q": CALLER}).json() == []
    site.login("boss")
    assert listed(site.client.get("/tickets", params={"q": "138 1234 5678"}).text) == []
    # An agency finds the caller only among the tickets it handles, not one it was dispatched before and lost
    with site.ledger.session() as session:
        session.add(t.RoutingDecision(decision_key="12345-A1#0", ticket_id="12345-A1", attempt=0, decision="auto",
                                      agency="BH-SCJG"))
    assert [b["id"] for b in site.api("GET", "/api/tickets", "scjg", params={"q": CALLER}).json()] == ["12345-A2"]
    # whose ticket number still finds it
    assert [b["id"] for b in site.api("GET", "/api/tickets", "scjg", params={"q": "12345-A1"}).json()] == ["12345-A1"]
