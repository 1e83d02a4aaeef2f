"""The ticket search (工单查询): what a person typed, read as the ledger query it means.

The commonest question at a hotline is a caller ringing again: "what became of my complaint?". The operator types
what the caller gives: a ticket number, their phone number (in whatever notation), or a few words of the
complaint or its address. One box takes all three:

* the whole query is also tried as a ticket number (exact, upper or lower case as typed or upper-cased);
* a query that is a phone number and nothing else (7 or more digits; +86, spaces, dashes, full-width digits
  allowed) also finds the tickets of that caller, by the digits the supervision linker compares
  (``tickets.caller_key``);
* otherwise, or besides, every word (split at spaces) must appear in the ticket's number, title, text or address.

Pure: the console's queries turn a :class:`Search` into SQL (``streams.console.queries.list_tickets``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from models.supervision.linking import phone_key
from models.tickets import MIN_PHONE_DIGITS

MAX_QUERY_CHARS = 100
MAX_WORDS = 5


class BadSearch(ValueError):
    """A query that cannot be searched for, with the reason in Chinese."""


@dataclass(frozen=True, slots=True)
class Search:
    text: str  # as typed, spaces collapsed: tried as a ticket number
    words: tuple[str, ...]  # each must appear in the number, title, text or address
    caller_key: str | None = None  # when the query is a phone number: its digits (models.supervision.linking)


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
