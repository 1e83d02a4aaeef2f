"""The ticket search (工单查询): what a person typed, read as the ledger query it means.

The commonest question at a hotline is a caller ringing again: "what became of my complaint?". The operator types
what the caller gives: a ticket number, their phone number (in whatever notation), or a few words of the
complaint or its address. One box takes all three:

* the whole query is also tried as a ticket number (exact, upper or lower case as typed or upper-cased);
* a query that is a phone number and nothing else (7 or more digits; +86, spaces, dashes, full-width digits
  allowed) also finds the tickets of that caller, by the digits the supervision linker compares
  (``tickets.caller_key``);
* otherwise, or besides, every word (split at spaces) must appear in the ticket's number, title, text or address,
  written in half-width or full-width characters (:func:`forms`: a Chinese input method in its full-width mode
  types ６栋 and Ａ座, and some citizens' messages are written so).

A number search that finds no caller tells a user who sees callers' numbers masked that a guess at the hidden
digits of 138****5678 was wrong; :class:`NumberSearchThrottle` bounds how many such searches a user makes.

Pure: the console's queries turn a :class:`Search` into SQL (``streams.console.queries.list_tickets``).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from models.supervision.linking import phone_key
from models.tickets import MIN_PHONE_DIGITS
from streams.console.accounts import CountsFactory, address_key, in_memory

MAX_QUERY_CHARS = 100
MAX_WORDS = 5
DAY_S = 24 * 3600


class BadSearch(ValueError):
    """A query that cannot be searched for, with the reason in Chinese."""


# Full-width ASCII (U+FF01-FF5E) and the ideographic space, against their half-width forms
_TO_HALF = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_TO_FULL = {c - 0xFEE0: c for c in range(0xFF01, 0xFF5F)}


def half_width(text: str) -> str:
    """``text`` with full-width letters, digits and punctuation as their ASCII forms (ＡＢ１２－３ -> AB12-3)."""
    return text.translate(_TO_HALF)


def forms(word: str) -> tuple[str, ...]:
    """The ways a ticket may write ``word``: as typed, with its ASCII characters all half-width, or all full-width
    (in either case, since LIKE folds the case of ASCII letters only). A word without ASCII characters has one
    form. A ticket that mixes both widths within one word (６-8号) is found only by the word typed so."""
    half = half_width(word)
    full = [w.translate(_TO_FULL) for w in (half, half.lower(), half.upper())]
    return tuple(dict.fromkeys([word, half, *full]))


def folded(text: str) -> str:
    """What two spellings of one word share: half-width, lower case (for comparisons done in Python)."""
    return half_width(text).lower()


@dataclass(frozen=True, slots=True)
class Search:
    text: str  # as typed, spaces collapsed: tried as a ticket number
    words: tuple[str, ...]  # each must appear in the number, title, text or address
    caller_key: str | None = None  # when the query is a phone number: its digits (models.supervision.linking)

    @property
    def ticket_ids(self) -> set[str]:
        """The ticket numbers the query may be: as typed, or upper-cased (people type 12345-bh... in lower case),
        in half-width characters too."""
        return {self.text, self.text.upper(), half_width(self.text), half_width(self.text).upper()}

    @property
    def word_forms(self) -> tuple[tuple[str, ...], ...]:
        """Each word's :func:`forms`: a ticket holds the word when it holds one of them."""
        return tuple(forms(w) for w in self.words)


def parse_search(query: str | None) -> Search | None:
    """The search ``query`` means; None for an empty one (no search: the plain list). Raises :class:`BadSearch`
    for one too long to be a person's query, or with control characters in it."""
    text = " ".join((query or "").split())
    if not text:
        return None
    if len(text) > MAX_QUERY_CHARS:
        raise BadSearch(f"查询内容过长（{len(text)} 字）：请输入工单编号、来电号码或不超过 {MAX_QUERY_CHARS} 字的关键词。")
    if any(unicodedata.category(c) == "Cc" for c in text):  # NUL and the like: PostgreSQL refuses NUL (a 500)
        raise BadSearch("查询内容含有控制字符：请只输入工单编号、来电号码或关键词。")
    folded = unicodedata.normalize("NFKC", text)
    if _phone_shaped(folded):
        return Search(text, (text,), phone_key(folded))
    words = tuple(dict.fromkeys(text.split(" ")))
    if len(words) > MAX_WORDS:
        raise BadSearch(f"关键词过多（{len(words)} 个）：至多 {MAX_WORDS} 个，以空格分隔。")
    return Search(text, words)


def _phone_shaped(text: str) -> bool:
    """A number as people type one (digits, spaces, dashes, dots, parentheses, a leading +) with 7+ digits."""
    body = text.removeprefix("+")
    return all(c.isdigit() or c in " -.()" for c in body) and sum(c.isdigit() for c in body) >= MIN_PHONE_DIGITS


def number_found(search: Search, rows: Iterable[Any]) -> bool:
    """Whether a search by number found what it was for: the ticket of that number, or a ticket of the caller with
    that number (``rows``: what ``queries.list_tickets`` returned). Tickets found by the number as a word, where it
    shows, do not count: a ticket made with a guess in its address must not hide that the guess found no caller."""
    numbers = search.ticket_ids
    return any(tk.id in numbers or tk.caller_key == search.caller_key for tk in rows)


class NumberSearchThrottle:
    """Searches by a caller's number that found nothing (:func:`number_found`), counted per user and per client
    address as failed log-ins are (in the ledger, :class:`~streams.console.accounts.LedgerFailureCounts`, as the
    console counts them; by default in this process's memory): each
    told a user who sees the number masked that a guess at its 4 hidden digits was wrong, and 10,000 guesses
    read it. After ``misses`` within ``window_s`` a user's number searches are refused for ``window_s``; after
    ``misses_per_day`` within a day, for a day (with the defaults, a script kept just under the first limit would
    still try some 2,800 numbers a day; this makes it 200); after ``address_misses`` within ``window_s`` from one
    address, whoever the users, that address's are (one person with colleagues' log-ins). A search that finds
    someone is not counted and resets nothing: a dispatcher looking up callers who rang before is the normal use,
    and a guess that hits ends the guessing anyway."""

    def __init__(self, *, misses: int = 20, window_s: float = 600, misses_per_day: int = 200,
                 address_misses: int = 60, clock: Callable[[], float] = time.monotonic,
                 counts: CountsFactory | None = None) -> None:
        counts = counts or in_memory(clock=clock)
        self._by_user = [counts("number_user", misses, window_s, window_s),
                         counts("number_user_day", misses_per_day, DAY_S, DAY_S)]
        self._by_address = counts("number_address", address_misses, window_s, window_s)

    def retry_after(self, user_id: int, address: str | None) -> int:
        """Seconds until the user may search by number again from ``address``; 0 when now."""
        return max(*(c.retry_after(user_id) for c in self._by_user), self._by_address.retry_after(address_key(address)))

    def missed(self, user_id: int, address: str | None) -> int:
        """Count a number search that found nothing; the seconds of the refusal it started, or 0."""
        return max(*(c.failed(user_id) for c in self._by_user), self._by_address.failed(address_key(address)))
