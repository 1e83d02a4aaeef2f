"""Who must handle matter M in jurisdiction J on date D: the responsibility list over time.

Responsibility items carry validity periods; lists change (powers delegated to 街镇, taken back
in 2025), so ownership is a function of the date. The index cuts each (matter, jurisdiction)
timeline into segments at every change and pre-computes the owner of each segment, so a lookup
is a dictionary access plus a binary search — the router calls it for every ticket.

Rules:
* one holder in force -> that holder;
* several holders in force -> the one whose items are marked ``lead`` handles first (首接负责),
  the others are reported as co-owners; no lead, or two leads, is a data error (see ``problems``);
* holder ``STREET`` -> the office of the ticket's 街镇; when the street is unknown the delegating
  department receives the ticket and forwards it (its queue is the known one).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from models.domain import STREET_HOLDER, Agency, Matter, Ownership, ResponsibilityItem, Street
from models.workcalendar import local_date

_DAY = timedelta(days=1)


class NoOwner(LookupError):
    """No responsibility item names a holder for this matter, place and date."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A maximal period in which the same items are in force (``end`` None = open-ended)."""

    start: date
    end: date | None
    items: tuple[ResponsibilityItem, ...]

    @property
    def holders(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.holder for i in self.items))

    @property
    def leads(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.holder for i in self.items if i.lead))

    def lead_holder(self) -> str | None:
        """The holder that handles first, or None when the segment is ambiguous or empty."""
        holders = self.holders
        if len(holders) == 1:
            return holders[0]
        leads = self.leads
        return leads[0] if len(leads) == 1 else None


def segments(items: Iterable[ResponsibilityItem]) -> list[Segment]:
    """Cut the items of one (matter, jurisdiction) into segments; periods with nothing in force
    appear as segments with no items so that callers can report gaps."""
    items = list(items)
    if not items:
        return []
    cuts = {i.effective_from for i in items}
    cuts |= {i.effective_to + _DAY for i in items if i.effective_to is not None}
    ordered = sorted(cuts)
    out: list[Segment] = []
    for n, start in enumerate(ordered):
        end = ordered[n + 1] - _DAY if n + 1 < len(ordered) else None
        in_force = tuple(i for i in items if i.in_force(start))
        if out and out[-1].items == in_force:
            out[-1] = Segment(out[-1].start, end, in_force)
        else:
            out.append(Segment(start, end, in_force))
    return out


@dataclass(frozen=True, slots=True)
class CoverageProblem:
    """A period of the check window in which a matter has no owner or no unambiguous lead."""

    jurisdiction: str
    matter: str
    start: date
    end: date
    reason: str


def coverage_problems(
    items_by_key: Mapping[tuple[str, str], Iterable[ResponsibilityItem]],
    matters: Iterable[str],
    jurisdictions: Iterable[str],
    window: tuple[date, date],
) -> list[CoverageProblem]:
    """Every (jurisdiction, matter, period) in the window without exactly one owner."""
    lo, hi = window
    out: list[CoverageProblem] = []
    for j in jurisdictions:
        for m in matters:
            segs = segments(items_by_key.get((m, j), ()))
            if not segs or segs[0].start > lo:
                first = segs[0].start - _DAY if segs else hi
                out.append(CoverageProblem(j, m, lo, min(first, hi), "没有承办单位"))
            for s in segs:
                s_end = s.end or hi
                if s_end < lo or s.start > hi:
                    continue
                period = (max(s.start, lo), min(s_end, hi))
                if not s.items:
                    out.append(CoverageProblem(j, m, *period, "没有承办单位"))
                elif s.lead_holder() is None:
                    leads = s.leads
                    why = "多个牵头单位" if len(leads) > 1 else "无牵头单位"
                    out.append(
                        CoverageProblem(
                            j, m, *period, f"{'、'.join(s.holders)} 共同承办但{why}（首接负责须唯一）"
                        )
                    )
    return out


class OwnershipIndex:
    """Owner lookup by (matter, jurisdiction, date) in O(log segments)."""

    def __init__(
        self,
        items: Iterable[ResponsibilityItem],
        matters: Mapping[str, Matter],
        agencies: Mapping[str, Agency],
        streets: Mapping[str, Street],
    ) -> None:
        self._matters = matters
        self._agencies = agencies
        self._streets = streets
        by_jurisdiction: dict[str, list[Street]] = defaultdict(list)
        for st in streets.values():
            by_jurisdiction[st.jurisdiction].append(st)
        # a jurisdiction with a single 街镇 (经开区: 泰达街道) needs no address to know it
        self._only_street = {j: sts[0] for j, sts in by_jurisdiction.items() if len(sts) == 1}
        grouped: dict[tuple[str, str], list[ResponsibilityItem]] = defaultdict(list)
        for item in items:
            grouped[(item.matter, item.jurisdiction)].append(item)
        self._items = dict(grouped)
        self._segments: dict[tuple[str, str], list[Segment]] = {}
        self._starts: dict[tuple[str, str], list[date]] = {}
        for key, its in grouped.items():
            segs = segments(its)
            self._segments[key] = segs
            self._starts[key] = [s.start for s in segs]

    @property
    def items_by_key(self) -> Mapping[tuple[str, str], list[ResponsibilityItem]]:
        return self._items

    def items(self, matter: str, jurisdiction: str) -> list[ResponsibilityItem]:
        return list(self._items.get((matter, jurisdiction), ()))

    def segment(self, matter: str, jurisdiction: str, day: date) -> Segment | None:
        key = (matter, jurisdiction)
        starts = self._starts.get(key)
        if not starts:
            return None
        n = bisect.bisect_right(starts, day) - 1
        if n < 0:
            return None
        seg = self._segments[key][n]
        return seg if seg.end is None or day <= seg.end else None

    def owner(
        self,
        matter: str,
        jurisdiction: str,
        at: date | datetime,
        street: Street | None = None,
    ) -> Ownership:
        """The owner in force; raises NoOwner (a LookupError) when the list names none."""
        day = local_date(at)
        m = self._matters.get(matter)
        if m is None:
            raise NoOwner(f"未知事项 {matter}")
        seg = self.segment(matter, jurisdiction, day)
        if seg is None or not seg.items:
            raise NoOwner(f"{jurisdiction} 在 {day} 没有事项 {matter} 的承办单位")
        lead = seg.lead_holder()
        if lead is None:
            raise NoOwner(f"{jurisdiction} 在 {day} 事项 {matter} 有多个承办单位但牵头单位不唯一")
        lead_items = tuple(i for i in seg.items if i.holder == lead)
        item = lead_items[0]
        note = ""
        if street is not None and street.jurisdiction != jurisdiction:
            street = None  # a street of another jurisdiction tells nothing here
        if lead == STREET_HOLDER:
            street = street or self._only_street.get(jurisdiction)
            if street is not None:
                agency = self._agencies[street.agency]
                note = f"由属地街镇承办：{street.name}"
            else:
                agency = self._agencies[item.delegated_by or ""]
                note = f"由属地街镇承办，但未能确定街镇：{agency.name}接收后转属地街镇"
        else:
            agency = self._agencies[lead]
        # the body that receives it is no co-owner of itself (a STREET lead's delegating department may co-own)
        co_owners = tuple(self._agencies[h] for h in seg.holders if h not in (lead, STREET_HOLDER, agency.code))
        return Ownership(
            matter=m,
            jurisdiction=jurisdiction,
            at=day,
            agency=agency,
            item=item,
            items=lead_items,
            co_owners=co_owners,
            lead=len(seg.holders) > 1,
            street=street,
            note=note,
        )
