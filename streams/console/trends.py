"""Supervisors' trends (pure): volumes and on-time rates per day, and hot-spot matters per week.

The district reports single out three recurring hot spots — 教育培训 (schools, tutoring and training),
劳动保障 (wages, contracts, social insurance) and 餐饮油烟 (restaurant fumes) — so each is counted as its
own group, by the catalogue's own fields, next to the busiest matters of the period.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from models.directory import Catalogue
from models.domain import Matter
from models.supervision.figures import Stage, tally
from models.workcalendar import as_local

FOCUS_GROUPS: dict[str, Callable[[Matter], bool]] = {
    "教育培训": lambda m: m.kind == "education" or "培训" in m.name,
    "劳动保障": lambda m: m.kind == "human_resources",
    "餐饮油烟": lambda m: "油烟" in m.name,
}


def focus_groups(matter: Matter | None) -> list[str]:
    return [name for name, test in FOCUS_GROUPS.items() if matter is not None and test(matter)]


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def hotspot_weeks(today: date, weeks: int) -> list[date]:
    """The Mondays of the ``weeks`` weeks shown, oldest first, the current week last."""
    return [week_start(today) - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]


def last_days(today: date, days: int) -> list[date]:
    """The ``days`` calendar days ending today, oldest first."""
    return [today - timedelta(days=days - 1 - i) for i in range(days)]


@dataclass(frozen=True, slots=True)
class WeeklyHotspots:
    weeks: list[date]  # Mondays, oldest first
    focus: dict[str, list[int]]  # group -> count per week
    top: list[tuple[str, str, list[int], int]]  # (matter code, name, count per week, total), busiest first


def weekly_hotspots(counts: Iterable[tuple[date, str | None, int]], catalogue: Catalogue, *, today: date,
                    weeks: int = 8, top: int = 6) -> WeeklyHotspots:
    """Tickets per week (by received time, Monday-based) for the focus groups and the ``top`` matters.

    ``counts`` are (Monday of the week received, matter code, tickets); weeks not shown are ignored."""
    mondays = hotspot_weeks(today, weeks)
    index = {m: i for i, m in enumerate(mondays)}
    focus = {name: [0] * weeks for name in FOCUS_GROUPS}
    per_matter: dict[str, list[int]] = {}
    for monday, code, n in counts:
        i = index.get(monday)
        if i is None or not code:
            continue
        per_matter.setdefault(code, [0] * weeks)[i] += n
        for group in focus_groups(catalogue.matters.get(code)):
            focus[group][i] += n
    busiest = sorted(per_matter.items(), key=lambda kv: (-sum(kv[1]), kv[0]))[:top]
    return WeeklyHotspots(mondays, focus, [(code, catalogue.matters[code].name if code in catalogue.matters
                                            else code, counts, sum(counts)) for code, counts in busiest])


@dataclass(frozen=True, slots=True)
class DailySeries:
    days: list[date]
    received: list[int]
    dispatched: list[int]
    sign_on_time: list[float | None]  # share of decided sign-for stages that were on time, all agencies
    resolution_on_time: list[float | None]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def daily_series(received: Mapping[date, int], stages: Iterable[Stage], *, now: datetime,
                 days: int = 14) -> DailySeries:
    """Per day over the last ``days`` days (Asia/Shanghai): tickets received (``received``: per day), dispatches,
    and the on-time rates of the stages whose dispatch fell on that day (the same definitions as the per-agency
    figures)."""
    dates = last_days(as_local(now).date(), days)
    by_day: dict[date, list[Stage]] = {d: [] for d in dates}
    for st in stages:  # a stage counts on the day of its dispatch
        if (day := as_local(st.anchor).date()) in by_day:
            by_day[day].append(st)
    dispatched, sign, resolution = [], [], []
    for d in dates:
        figs = tally(by_day[d]).values()
        dispatched.append(sum(f.dispatched for f in figs))
        sign.append(_rate(sum(f.signed_on_time for f in figs), sum(f.signed_on_time + f.signed_late for f in figs)))
        resolution.append(_rate(sum(f.resolved_on_time for f in figs),
                                sum(f.resolved_on_time + f.resolved_late for f in figs)))
    return DailySeries(dates, [received.get(d, 0) for d in dates], dispatched, sign, resolution)
