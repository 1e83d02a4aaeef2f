"""Linking tickets over time: repeated complaints (重复件) and joint-enforcement hints (联合执法).

Tickets that must be linked (one caller, one place) arrive on any partition of ``tickets.events``, so no
single worker sees them all. The stream layer therefore *repartitions*: for each routed ticket
:func:`link_facts` says which compact :class:`LinkFact` to publish, keyed by the linking key (a hash of
the caller's number; a hash of place + matter; the place or business id), and whoever owns that key's
partition folds the facts into that key's :class:`LinkState` with :func:`link`. Everything here is pure:
state in, state and alerts out; no clock of its own (time comes from the tickets), no I/O.

Idempotence: folding a fact whose ticket the state already holds changes nothing and raises nothing, and
an alert computed again after a crash (state not stored yet) has the same ``alert_key``, which the ledger
and consumers dedupe. A re-route with another matter moves the ticket between place + matter keys (a fact
that leaves the old key, one that joins the new one, both carrying the routing attempt); a key remembers
each ticket's latest move, so an older fact of that ticket, redelivered or replayed, changes nothing.
Bounded memory: a state keeps the tickets of one window and at most ``max_per_key`` of them; a state whose
newest ticket left the window is :meth:`LinkState.expired`.

:class:`LinkIndex` (and its two faces :class:`RepeatLinker`, :class:`JointEnforcementLinker`) applies the
same rules to an in-memory, LRU-bounded dict of states, for one process (tests, tools, benchmarks).
"""

from __future__ import annotations

import bisect
import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from models.address import strip_city_prefix
from models.supervision.alerts import INFO, JOINT_ENFORCEMENT, REPEATED_COMPLAINT, WARNING, Alert, alert_key
from models.tickets import phone_digits
from models.workcalendar import as_local

# runs of digits/latin, runs of Chinese; the rest goes. Chinese includes 〇 (一〇〇号 is not 一号) and the
# extension blocks of rarer characters village and street names use (㙟, 𬇙): dropped, they merged places.
_WORDS = re.compile(r"[0-9a-z]+|[\u3007\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U000323af]+")
_ZERO = str.maketrans({"○": "〇"})  # the circle typed for 〇 in 二○○号
_BUILDING = re.compile(r"(?<=[0-9])(?:栋|幢)")  # 3栋, 3幢 and 3号楼 are one building (3号 alone may be a door number)
_MASKED = re.compile(r"[*×●•]|[xX]{2}")  # 138****1234, 138＊＊＊＊1234 (NFKC: *), 138××××1234, 138xxxx1234
MIN_PLACE_KEY = 6  # shorter normalised addresses ("滨海新区") name an area, not a place

# Link kinds: the level of a 重复件 alert, or what a 联合执法 place key names.
CALLER, PLACE_MATTER = "caller", "place_matter"
BUSINESS, ADDRESS = "biz", "addr"


def normalise_phone(phone: str | None) -> str | None:
    """Digits of a caller's number without the country code; None when unknown or masked."""
    if not phone or _MASKED.search(unicodedata.normalize("NFKC", phone)):
        return None  # what is left of a masked number is a prefix and a suffix, shared by many callers
    # the same digits masking reads (models.tickets): full-width digits folded, +86 / 0086 / 86 dropped, a
    # landline's trunk 0 restored, so one caller is one key however the platform wrote the number
    digits = phone_digits(phone)
    return digits if len(digits) >= 7 else None


MAX_PHONE_DIGITS = 15  # E.164: no telephone number is longer


def phone_key(phone: str | None) -> str | None:
    """The caller's number as the ticket search finds it (``tickets.caller_key``): :func:`normalise_phone`, and
    None for more digits than any telephone number has (what a platform put in the field is not always one)."""
    key = normalise_phone(phone)
    return key if key is not None and len(key) <= MAX_PHONE_DIGITS else None


def normalise_place(text: str | None) -> str | None:
    """A comparable place key: NFKC, lower case, no punctuation or spaces (one "-" between two numbers), without
    the city prefix."""
    if not text:
        return None
    words = _WORDS.findall(_BUILDING.sub("号楼", unicodedata.normalize("NFKC", text).lower().translate(_ZERO)))
    # Two digit/latin runs in a row were split by punctuation or a space, which then tells numbers apart
    # (3-2-101 is not 32-1-01); anywhere else it is dropped.
    key = "".join("-" + w if i and words[i - 1].isascii() and w.isascii() else w for i, w in enumerate(words))
    key = strip_city_prefix(key)  # 天津市滨海新区… is 滨海新区…, but 天津大道 is not 大道
    return key if len(key) >= MIN_PLACE_KEY else None


def _digest(text: str, n: int = 16) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def place_id(key: str) -> str:
    """A short stable id for a place key (alert keys and topic keys carry no addresses)."""
    return "place-" + _digest(key, 12)


def caller_key(phone: str) -> str:
    """The linking key of a caller: a hash, so topic keys and table keys carry no phone number."""
    return "caller-" + _digest(phone)


def place_matter_key(place: str, matter: str) -> str:
    return "pm-" + _digest(f"{place}|{matter}")


# --- what is published ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LinkFact:
    """One ticket seen under one linking key (the message of the internal ``supervision.links`` topic)."""

    rule: str  # repeated_complaint | joint_enforcement
    kind: str  # caller | place_matter (重复件); biz | addr (联合执法)
    key: str  # the linking key: the linker's state is kept per key; for 联合执法 also the alert's subject
    ticket_id: str
    at: datetime  # received (重复件) or dispatched (联合执法)
    agency: str | None = None
    place: str | None = None  # 联合执法: the normalised place, shown to supervisors
    # 重复件 place + matter of a re-routed ticket whose matter changed: the routing attempt that moved it, and
    # whether it leaves this key (the old matter's) rather than joins it. 0 for a first routing's facts.
    attempt: int = 0
    left: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "kind": self.kind, "key": self.key, "ticket_id": self.ticket_id,
                "at": self.at.isoformat(), "agency": self.agency, "place": self.place, "attempt": self.attempt,
                "left": self.left}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LinkFact:
        at = d["at"]
        return cls(rule=d["rule"], kind=d["kind"], key=d["key"], ticket_id=d["ticket_id"],
                   at=as_local(datetime.fromisoformat(at) if isinstance(at, str) else at),
                   agency=d.get("agency"), place=d.get("place"), attempt=int(d.get("attempt") or 0),
                   left=bool(d.get("left")))


def repeat_facts(facts: Any) -> list[LinkFact]:
    """The 重复件 keys of a ticket (``ticket_id``, ``received_at``, ``caller_phone``, ``address``, ``matter``)."""
    out = []
    at, tid, agency = as_local(facts.received_at), facts.ticket_id, getattr(facts, "agency", None)
    if phone := normalise_phone(getattr(facts, "caller_phone", None)):
        out.append(LinkFact(REPEATED_COMPLAINT, CALLER, caller_key(phone), tid, at, agency))
    if key := _place_matter(facts):
        out.append(LinkFact(REPEATED_COMPLAINT, PLACE_MATTER, key, tid, at, agency))
    return out


def _place_matter(facts: Any) -> str | None:
    place, matter = normalise_place(getattr(facts, "address", None)), getattr(facts, "matter", None)
    return place_matter_key(place, matter) if place and matter else None


def moved_facts(before: Any, after: Any) -> list[LinkFact]:
    """The 重复件 facts of a re-routed ticket: none while its place + matter key stays; when a dispatcher's
    matter changed it, the ticket leaves the old key and joins the new one (the caller key stays)."""
    old, new = _place_matter(before), _place_matter(after)
    if old == new:
        return []
    at, tid, attempt = as_local(after.received_at), after.ticket_id, after.attempt
    out = []
    if old:
        out.append(LinkFact(REPEATED_COMPLAINT, PLACE_MATTER, old, tid, at, before.agency, attempt=attempt, left=True))
    if new:
        out.append(LinkFact(REPEATED_COMPLAINT, PLACE_MATTER, new, tid, at, after.agency, attempt=attempt))
    return out


def joint_fact(facts: Any, agency: str | None, at: datetime) -> LinkFact | None:
    """The 联合执法 key of a ticket sent to ``agency`` at ``at``: its business when named, else its address."""
    if not agency:
        return None
    business = normalise_place(getattr(facts, "business", None))
    kind, place = (BUSINESS, business) if business else (ADDRESS, normalise_place(getattr(facts, "address", None)))
    if not place:
        return None
    return LinkFact(JOINT_ENFORCEMENT, kind, place_id(f"{kind}:{place}"), facts.ticket_id, as_local(at), agency,
                    place)


def link_facts(before: Any, after: Any, event: Any) -> list[LinkFact]:
    """What one accepted lifecycle event contributes to the linkers (``before``/``after``: TicketFacts).

    A ticket's *first* routing links it with earlier complaints (a re-route is the same complaint, but one
    with another matter moves it to that matter's place + matter key); every dispatch to an agency counts
    for joint enforcement, with the ticket's latest agency.
    """
    if event.type != "routed":
        return []
    out = repeat_facts(after) if before.attempt == 0 else moved_facts(before, after)
    if after.agency and after.status == "dispatched":
        fact = joint_fact(after, after.agency, event.occurred_at)
        if fact is not None:
            out.append(fact)
    return out


# --- the state of one key, and the rules ------------------------------------------------------------------
Seen = tuple[datetime, str, str | None]  # (time, ticket, agency)
Moved = tuple[datetime, str, int]  # (time, ticket, attempt of its latest move into or out of the key)


@dataclass(frozen=True, slots=True)
class LinkRules:
    repeat_window: timedelta = timedelta(days=30)
    repeat_threshold: int = 3
    joint_window: timedelta = timedelta(days=14)
    joint_min_agencies: int = 2
    max_per_key: int = 64

    def window(self, rule: str) -> timedelta:
        return self.repeat_window if rule == REPEATED_COMPLAINT else self.joint_window


@dataclass(frozen=True, slots=True)
class LinkState:
    """The recent tickets of one linking key, in time order; ``episode_until``: 联合执法 suggested until then;
    ``moves``: the latest move of each re-routed ticket that joined or left this key (see :func:`_repeat`)."""

    rule: str
    seen: tuple[Seen, ...] = ()
    episode_until: datetime | None = None
    moves: tuple[Moved, ...] = ()

    def has(self, ticket_id: str, agency: str | None = None, *, any_agency: bool = True) -> bool:
        return any(t == ticket_id and (any_agency or a == agency) for _, t, a in self.seen)

    def moved(self, ticket_id: str) -> int:
        """The attempt of the ticket's latest move folded here; 0 when none."""
        return next((n for _, t, n in self.moves if t == ticket_id), 0)

    def expired(self, now: datetime, window: timedelta) -> bool:
        """Nothing in it can link with a ticket from ``now`` on (an episode never outlives its window)."""
        newest = max([*(at for at, _, _ in self.seen[-1:]), *(at for at, _, _ in self.moves)], default=None)
        return newest is None or newest < as_local(now) - window

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "seen": [[at.isoformat(), t, a] for at, t, a in self.seen],
                "episode_until": self.episode_until.isoformat() if self.episode_until else None,
                "moves": [[at.isoformat(), t, n] for at, t, n in self.moves]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LinkState:
        until = d.get("episode_until")
        return cls(rule=d["rule"], seen=tuple((datetime.fromisoformat(at), t, a) for at, t, a in d.get("seen") or ()),
                   episode_until=datetime.fromisoformat(until) if until else None,
                   moves=tuple((datetime.fromisoformat(at), t, int(n)) for at, t, n in d.get("moves") or ()))


def _within(seen: tuple[Seen, ...], since: datetime) -> list[Seen]:
    return [e for e in seen if e[0] >= since]


def _insert(seen: list[Seen], entry: Seen, max_per_key: int) -> tuple[Seen, ...]:
    """Keep time order (facts of one key may arrive out of order across partitions); drop the oldest first."""
    keys = [e[0] for e in seen]
    seen.insert(bisect.bisect_right(keys, entry[0]), entry)
    return tuple(seen[-max_per_key:])


def link(state: LinkState | None, fact: LinkFact, rules: LinkRules = LinkRules()) -> tuple[LinkState, list[Alert]]:
    """Fold one fact into its key's state: the new state and the alerts it raises (idempotent per ticket)."""
    if state is None:
        state = LinkState(fact.rule)
    if fact.rule == REPEATED_COMPLAINT:
        return _repeat(state, fact, rules)
    if fact.rule == JOINT_ENFORCEMENT:
        return _joint(state, fact, rules)
    raise ValueError(f"unknown linking rule {fact.rule!r}")


def _repeat(state: LinkState, fact: LinkFact, rules: LinkRules) -> tuple[LinkState, list[Alert]]:
    """重复件: the same caller, or the same address and matter, within the window; the ``threshold``-th
    ticket (and each one after it) raises an alert saying the problem is not being solved."""
    at, tid, window = as_local(fact.at), fact.ticket_id, rules.repeat_window
    if (last := state.moved(tid)) and fact.attempt <= last:
        # A fact older than the ticket's latest move here (a redelivered first routing after the ticket left,
        # an earlier move): folding it would bring back, or remove, what that move settled.
        return state, []
    moves = state.moves
    if fact.attempt:  # a re-route that changed the matter: remembered so that its older facts stay ignored
        kept = [m for m in moves if m[1] != tid and m[0] >= at - window]
        moves = (*kept, (at, tid, fact.attempt))[-rules.max_per_key:]
    if fact.left:
        return replace(state, seen=tuple(e for e in state.seen if e[1] != tid), moves=moves), []
    if state.has(tid):
        return replace(state, moves=moves), []  # redelivery or replay: counted already
    seen = _insert(_within(state.seen, at - window), (at, tid, fact.agency), rules.max_per_key)
    new = replace(state, seen=seen, moves=moves)
    # Every other ticket within the window either side: which of them raises follows processing order,
    # and tickets of one caller reach this key from several partitions in no guaranteed order.
    linked = [t for when, t, _a in seen if t != tid and abs(when - at) <= window]
    n = len(linked) + 1
    if n < rules.repeat_threshold:
        return new, []
    who = "同一来电人" if fact.kind == CALLER else "同一地点的同类诉求"
    return new, [Alert(
        alert_key(tid, REPEATED_COMPLAINT, fact.kind), REPEATED_COMPLAINT, fact.kind, WARNING, tid, fact.agency,
        None,
        f"工单{tid}是{window.days}天内{who}第{n}次反映（此前：{'、'.join(linked[-5:])}），问题可能未得到解决，请督办。",
        at, {"count": n, "linked": linked, "window_days": window.days, "kind": fact.kind},
    )]


def _joint(state: LinkState, fact: LinkFact, rules: LinkRules) -> tuple[LinkState, list[Alert]]:
    """联合执法: tickets about the same place or business within the window that went to
    ``joint_min_agencies`` or more agencies -> ONE suggestion per episode to coordinate a single visit."""
    at, tid, agency, window = as_local(fact.at), fact.ticket_id, fact.agency, rules.joint_window
    recent = _within(state.seen, at - window)
    if agency and not state.has(tid, agency, any_agency=False):
        # A re-dispatched ticket counts with its latest agency only (at its first dispatch time): one ticket
        # bouncing between two agencies is ping-pong, not two matters for a joint visit.
        first = next((when for when, t, _a in recent if t == tid), at)
        seen = _insert([e for e in recent if e[1] != tid], (first, tid, agency), rules.max_per_key)
    else:
        seen = tuple(recent)
    new = replace(state, seen=seen)
    tickets = list(dict.fromkeys(t for _, t, _a in seen))
    agencies = list(dict.fromkeys(a for _, _, a in seen if a))
    if len(agencies) < rules.joint_min_agencies or len(tickets) < 2:
        return new, []
    if state.episode_until is not None and at <= state.episode_until:
        return new, []  # this episode has its suggestion already
    start = seen[0][0]
    new = replace(new, episode_until=start + window)
    what = "经营主体" if fact.kind == BUSINESS else "地点"
    return new, [Alert(
        alert_key(fact.key, JOINT_ENFORCEMENT, f"{start:%Y%m%d}"), JOINT_ENFORCEMENT, "suggested", INFO, None, None,
        None,
        f"{window.days}天内同一{what}的{len(tickets)}件工单分派给了{len(agencies)}个单位，"
        f"建议联合执法、统一安排一次检查（进一次门、查多项事）。", at,
        {"place": fact.key, "place_key": fact.place, "tickets": tickets, "agencies": agencies,
         "window_days": window.days, "since": start.isoformat()},
    )]


# --- in-memory linkers (one process) ---------------------------------------------------------------------
class LinkIndex:
    """key -> LinkState, bounded in keys (the least recently touched key goes first)."""

    def __init__(self, rules: LinkRules, max_keys: int) -> None:
        self.rules, self.max_keys = rules, max_keys
        self._keys: dict[str, LinkState] = {}

    def observe(self, fact: LinkFact) -> list[Alert]:
        state = self._keys.pop(fact.key, None)
        new, alerts = link(state, fact, self.rules)
        self._keys[fact.key] = new  # re-inserted at the end: dict order is least recently touched first
        if len(self._keys) > self.max_keys:
            del self._keys[next(iter(self._keys))]
        return alerts

    def get(self, key: str) -> LinkState | None:
        return self._keys.get(key)

    def prune(self, now: datetime) -> int:
        """Drop keys whose newest ticket left the window; returns how many were dropped."""
        stale = [k for k, s in self._keys.items() if s.expired(now, self.rules.window(s.rule))]
        for k in stale:
            del self._keys[k]
        return len(stale)

    def __len__(self) -> int:
        return len(self._keys)


class RepeatLinker:
    """重复件 over an in-memory dict of states (see :func:`link`)."""

    def __init__(self, window: timedelta = timedelta(days=30), threshold: int = 3, *,
                 max_keys: int = 2_000_000, max_per_key: int = 64) -> None:
        self.threshold = threshold
        self.states = LinkIndex(LinkRules(repeat_window=window, repeat_threshold=threshold, max_per_key=max_per_key),
                              max_keys)

    @property
    def window(self) -> timedelta:
        return self.states.rules.repeat_window

    def observe(self, facts: Any) -> list[Alert]:
        """Link one ticket (``ticket_id``, ``received_at``, ``caller_phone``, ``address``, ``matter``)."""
        return [a for f in repeat_facts(facts) for a in self.states.observe(f)]

    def prune(self, now: datetime) -> int:
        return self.states.prune(now)

    def __len__(self) -> int:
        return len(self.states)


class JointEnforcementLinker:
    """联合执法 over an in-memory dict of states (see :func:`link`)."""

    def __init__(self, window: timedelta = timedelta(days=14), min_agencies: int = 2, *,
                 max_keys: int = 1_000_000, max_per_key: int = 64) -> None:
        self.min_agencies = min_agencies
        self.states = LinkIndex(LinkRules(joint_window=window, joint_min_agencies=min_agencies,
                                        max_per_key=max_per_key), max_keys)

    @property
    def window(self) -> timedelta:
        return self.states.rules.joint_window

    def observe(self, facts: Any, agency: str | None, at: datetime) -> list[Alert]:
        """A ticket went to ``agency`` at ``at``; a suggestion when its place now involves enough agencies."""
        fact = joint_fact(facts, agency, at)
        return self.states.observe(fact) if fact is not None else []

    def prune(self, now: datetime) -> int:
        return self.states.prune(now)

    def __len__(self) -> int:
        return len(self.states)
