"""Linking tickets over time: repeated complaints (重复件) and joint-enforcement hints (联合执法).

Both linkers are pure in-memory structures with explicit inputs (no clock of their own: time comes from
the tickets) and bounded memory: per key a deque of recent tickets pruned by the time window, at most
``max_per_key`` entries per key and ``max_keys`` keys (the least recently touched key goes first).
Observing the same ticket twice is a no-op, so a stage may replay the last window of tickets after a
restart to rebuild them; alerts replayed that way carry the same keys and are dropped downstream.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from models.supervision.alerts import INFO, JOINT_ENFORCEMENT, REPEATED_COMPLAINT, WARNING, Alert, alert_key
from models.workcalendar import as_local

_NOT_WORD = re.compile(r"[^0-9a-z\u4e00-\u9fff]+")
_CITY_PREFIX = re.compile(r"^(天津市|天津)")
MIN_PLACE_KEY = 6  # shorter normalised addresses ("滨海新区") name an area, not a place


def normalise_phone(phone: str | None) -> str | None:
    """Digits of a caller's number without the country code; None when unknown or masked."""
    if not phone or "*" in phone:
        return None
    digits = re.sub(r"\D", "", phone)
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits if len(digits) >= 7 else None


def normalise_place(text: str | None) -> str | None:
    """A comparable place key: NFKC, lower case, no punctuation or spaces, without the city prefix."""
    if not text:
        return None
    key = _NOT_WORD.sub("", unicodedata.normalize("NFKC", text).lower())
    key = _CITY_PREFIX.sub("", key)
    return key if len(key) >= MIN_PLACE_KEY else None


def place_id(key: str) -> str:
    """A short stable id for a place key (alert keys and topic keys carry no addresses)."""
    return "place-" + hashlib.sha1(key.encode()).hexdigest()[:12]


@dataclass(slots=True)
class _Recent:
    seen: deque[tuple[datetime, str, str | None]] = field(default_factory=deque)  # (time, ticket, agency)
    episode_until: datetime | None = None  # joint enforcement: one suggestion per episode


class _WindowedKeys:
    """key -> recent (time, ticket, agency), pruned by a window, bounded in keys and per key."""

    def __init__(self, window: timedelta, max_keys: int, max_per_key: int) -> None:
        self.window, self.max_keys, self.max_per_key = window, max_keys, max_per_key
        self._keys: dict[str, _Recent] = {}

    def touch(self, key: str, at: datetime) -> _Recent:
        recent = self._keys.pop(key, None) or _Recent()
        self._keys[key] = recent  # re-inserted at the end: dict order is least recently touched first
        while recent.seen and recent.seen[0][0] < at - self.window:
            recent.seen.popleft()
        if len(self._keys) > self.max_keys:
            del self._keys[next(iter(self._keys))]
        return recent

    def add(self, recent: _Recent, at: datetime, ticket_id: str, agency: str | None) -> None:
        recent.seen.append((at, ticket_id, agency))
        while len(recent.seen) > self.max_per_key:
            recent.seen.popleft()

    def prune(self, now: datetime) -> int:
        """Drop keys whose newest ticket left the window; returns how many keys were dropped."""
        cutoff = as_local(now) - self.window
        stale = [k for k, r in self._keys.items() if not r.seen or r.seen[-1][0] < cutoff]
        for k in stale:
            del self._keys[k]
        return len(stale)

    def __len__(self) -> int:
        return len(self._keys)


class RepeatLinker:
    """重复件: the same caller, or the same address and matter, within ``window``; the ``threshold``-th
    ticket (and each one after it) raises an alert saying the problem is not being solved."""

    def __init__(self, window: timedelta = timedelta(days=30), threshold: int = 3, *,
                 max_keys: int = 2_000_000, max_per_key: int = 64) -> None:
        self.threshold = threshold
        self._keys = _WindowedKeys(window, max_keys, max_per_key)

    @property
    def window(self) -> timedelta:
        return self._keys.window

    def keys_of(self, facts: Any) -> list[tuple[str, str]]:
        out = []
        if phone := normalise_phone(getattr(facts, "caller_phone", None)):
            out.append(("caller", f"caller:{phone}"))
        place, matter = normalise_place(getattr(facts, "address", None)), getattr(facts, "matter", None)
        if place and matter:
            out.append(("place_matter", f"place:{place}|{matter}"))
        return out

    def observe(self, facts: Any) -> list[Alert]:
        """Link one ticket (``ticket_id``, ``received_at``, ``caller_phone``, ``address``, ``matter``)."""
        at, tid, alerts = as_local(facts.received_at), facts.ticket_id, []
        for kind, key in self.keys_of(facts):
            recent = self._keys.touch(key, at)
            if any(t == tid for _, t, _a in recent.seen):
                continue  # redelivery or replay: counted already
            self._keys.add(recent, at, tid, getattr(facts, "agency", None))
            linked = [t for when, t, _a in recent.seen if when >= at - self.window and t != tid]
            n = len(linked) + 1
            if n < self.threshold:
                continue
            who = "同一来电人" if kind == "caller" else "同一地点的同类诉求"
            alerts.append(Alert(
                alert_key(tid, REPEATED_COMPLAINT, kind), REPEATED_COMPLAINT, kind, WARNING, tid,
                getattr(facts, "agency", None), None,
                f"工单{tid}是{self.window.days}天内{who}第{n}次反映（此前：{'、'.join(linked[-5:])}），"
                f"问题可能未得到解决，请督办。", at,
                {"count": n, "linked": linked, "window_days": self.window.days, "kind": kind},
            ))
        return alerts

    def prune(self, now: datetime) -> int:
        return self._keys.prune(now)

    def __len__(self) -> int:
        return len(self._keys)


class JointEnforcementLinker:
    """联合执法: tickets about the same place or business within ``window`` that went to ``min_agencies``
    or more agencies -> ONE suggestion per episode to coordinate a single visit (进一次门、查多项事)."""

    def __init__(self, window: timedelta = timedelta(days=14), min_agencies: int = 2, *,
                 max_keys: int = 1_000_000, max_per_key: int = 64) -> None:
        self.min_agencies = min_agencies
        self._keys = _WindowedKeys(window, max_keys, max_per_key)

    @property
    def window(self) -> timedelta:
        return self._keys.window

    @staticmethod
    def place_key(facts: Any) -> str | None:
        business = normalise_place(getattr(facts, "business", None))
        if business:
            return f"biz:{business}"
        place = normalise_place(getattr(facts, "address", None))
        return f"addr:{place}" if place else None

    def observe(self, facts: Any, agency: str | None, at: datetime) -> list[Alert]:
        """A ticket went to ``agency`` at ``at``; a suggestion when its place now involves enough agencies."""
        key = self.place_key(facts)
        if not key or not agency:
            return []
        at, tid = as_local(at), facts.ticket_id
        recent = self._keys.touch(key, at)
        if not any(t == tid and a == agency for _, t, a in recent.seen):
            # A re-dispatched ticket counts with its latest agency only: one ticket bouncing between two
            # agencies is ping-pong, not two matters for a joint visit.
            first = next((when for when, t, _a in recent.seen if t == tid), at)
            recent.seen = deque(e for e in recent.seen if e[1] != tid)
            self._keys.add(recent, first, tid, agency)
            recent.seen = deque(sorted(recent.seen, key=lambda e: e[0]))
        tickets = list(dict.fromkeys(t for _, t, _a in recent.seen))
        agencies = list(dict.fromkeys(a for _, _, a in recent.seen if a))
        if len(agencies) < self.min_agencies or len(tickets) < 2:
            return []
        if recent.episode_until is not None and at <= recent.episode_until:
            return []  # this episode has its suggestion already
        start = recent.seen[0][0]
        recent.episode_until = start + self.window
        subject = place_id(key)
        return [Alert(
            alert_key(subject, JOINT_ENFORCEMENT, f"{start:%Y%m%d}"), JOINT_ENFORCEMENT, "suggested", INFO, None, None,
            None,
            f"{self.window.days}天内同一{'经营主体' if key.startswith('biz:') else '地点'}的{len(tickets)}件工单"
            f"分派给了{len(agencies)}个单位，建议联合执法、统一安排一次检查（进一次门、查多项事）。", at,
            {"place": subject, "place_key": key.split(":", 1)[1], "tickets": tickets, "agencies": agencies,
             "window_days": self.window.days, "since": start.isoformat()},
        )]

    def prune(self, now: datetime) -> int:
        return self._keys.prune(now)

    def __len__(self) -> int:
        return len(self._keys)
