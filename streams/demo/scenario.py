"""The demo's week as data: a seeded, deterministic timeline of tickets and of what happens to them.

:func:`build_scenario` returns a :class:`Scenario`: every step is either a :class:`Submit` (a
``TicketIn``-compatible ticket put on ``tickets.received`` at its simulated time) or an :class:`Act` (a
lifecycle action on ``tickets.events``). Actions are stated the way people live them — "the agency
the ticket was routed to signs it", "after one return, whoever has it now resolves it" — not by agency
code: the router decides the agency at run time, and the player reads it from the ledger
(:mod:`streams.demo.player`). ``round`` counts the returns that must have happened before an action.

Storylines, mixed over ~300 tickets in 滨海新区 (BH), 经开区 (TEDA) and 东丽区 (DL):

* resolved: signed, resolved, rated satisfied, closed (most tickets);
* unsatisfied: rated unsatisfied, reopened, resolved again, closed;
* returned / bounced: 退单 with reason and legal basis once (or twice), re-routed, handled by the next;
* extended: an extension requested and approved (or denied) by a supervisor;
* unsigned / stalled: nobody signs, or nobody resolves — left to go overdue;
* rescue: whenever a ticket lands on the dispatchers' manual queue, a dispatcher assigns it to the owner
  the 权责清单 names (or the street office when that owner already returned it);
* fixed cases: one caller three times (重复件), one address and matter three times, one restaurant
  reported to three agencies within days (联合执法), urgent and utility tickets with short limits.

Pure: no broker, no database, no clock; only the catalogue (places, matters, owners, calendar).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from models.directory import Catalogue
from models.domain import Matter
from models.ownership import NoOwner
from models.supervision.linking import normalise_place
from models.workcalendar import TZ, WorkCalendar, as_local
from streams.demo import texts

DEFAULT_SEED = 12345
DEFAULT_TICKETS = 300
WEEK = timedelta(days=7)
OFFICE_OPEN, OFFICE_CLOSE = time(8, 30), time(17, 30)
# Tickets per day of the week, Monday first (hotlines are busiest on Mondays, quiet at weekends).
DAY_SHARES = (68, 60, 54, 50, 44, 14, 10)
# Tickets per hour of the day (the hotline answers 24x7; most calls come in office hours).
HOUR_WEIGHTS = (0.3, 0.2, 0.2, 0.2, 0.2, 0.3, 0.6, 1, 4, 8, 9, 7, 3, 4, 7, 8, 7, 5, 4, 4, 3, 2, 1, 0.5)
JURISDICTION_SHARES = {"BH": 0.55, "TEDA": 0.15, "DL": 0.30}
# How often each agency kind's matters come up (the rest weigh 1): citizens mostly call about their street,
# their building, shops and noise.
KIND_WEIGHTS = {
    "urban_management": 14, "market_regulation": 12, "housing_construction": 12, "ecology_environment": 8,
    "human_resources": 8, "public_security": 6, "utility": 5, "transport": 5, "health": 4, "education": 4,
    "street_town": 3, "civil_affairs": 3, "fire_rescue": 3, "water_affairs": 3,
}
STORYLINES = (  # (name, share of the random tickets)
    ("resolved", 0.54), ("unsatisfied", 0.05), ("returned", 0.10), ("extended", 0.07),
    ("unsigned", 0.06), ("stalled", 0.08), ("in_progress", 0.10),
)
CONSULT_MARKS = ("咨询", "办理", "申领", "政策", "登记", "备案", "补贴", "入学", "落户", "待遇", "报销")
CHANNELS = (("电话", 70), ("网站", 14), ("微信", 11), ("APP", 5))

# What the ledger must show before an action can be sent (the worker has processed what came before).
NEEDS: dict[str, frozenset[str]] = {
    "sign": frozenset({"dispatched"}), "return": frozenset({"dispatched", "signed"}),
    "extend": frozenset({"signed"}), "approve-extension": frozenset({"signed"}),
    "deny-extension": frozenset({"signed"}), "resolve": frozenset({"signed"}),
    "rate": frozenset({"resolved"}), "reopen": frozenset({"resolved"}), "close": frozenset({"resolved"}),
    "reassign": frozenset({"manual"}),
}
AGENCY_ACTIONS = frozenset({"sign", "return", "extend", "resolve"})
RESCUE_AFTER = timedelta(minutes=5)  # a dispatcher picks a ticket off the manual queue within minutes


@dataclass(frozen=True, slots=True)
class Submit:
    """Put ``ticket`` (TicketIn-compatible JSON) on ``tickets.received`` at simulated time ``at``."""

    at: datetime
    ticket_id: str
    ticket: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Act:
    """A lifecycle action (an ``hotline act`` action name) on a ticket at simulated time ``at`` or later.

    ``round``: how many returns (退单) the ticket must have had; agency actions are done by the agency
    the ticket is with at that point. ``only_if_manual``: a dispatcher's rescue, a no-op unless the
    ticket waits on the manual queue; the player then assigns it to the owner of the matter the router
    recognised, else to the first of ``targets`` (the scripted owner, the street office) not among the
    agencies that returned it.
    """

    at: datetime
    ticket_id: str
    action: str
    round: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    only_if_manual: bool = False
    targets: tuple[str, ...] = ()

    @property
    def needs(self) -> frozenset[str]:
        return NEEDS[self.action]

    @property
    def by_agency(self) -> bool:
        return self.action in AGENCY_ACTIONS


Step = Submit | Act


@dataclass(frozen=True, slots=True)
class DemoTicket:
    """What the script means a ticket to be (for tests and the summary); the router decides for itself."""

    id: str
    received_at: datetime
    jurisdiction: str
    street: str | None
    address: str
    matter: str
    owner: str  # the agency the 权责清单 names for matter, place and date
    storyline: str
    caller_phone: str
    urgency: str
    request_type: str


@dataclass(frozen=True)
class Scenario:
    origin: datetime
    steps: tuple[Step, ...]  # ordered by time; a ticket's own steps keep their order
    tickets: dict[str, DemoTicket]

    @property
    def end(self) -> datetime:
        return self.steps[-1].at if self.steps else self.origin

    def chains(self) -> dict[str, list[Step]]:
        """Each ticket's steps in order: its submission first."""
        out: dict[str, list[Step]] = {}
        for step in self.steps:
            out.setdefault(step.ticket_id, []).append(step)
        return out

    def first(self, n: int) -> Scenario:
        """The first ``n`` tickets received, with all their steps (a short demo for tests)."""
        chosen = {s.ticket_id for s in self.steps if isinstance(s, Submit)}
        chosen = set(sorted(chosen, key=lambda tid: self.tickets[tid].received_at)[:n])
        return Scenario(self.origin, tuple(s for s in self.steps if s.ticket_id in chosen),
                        {k: v for k, v in self.tickets.items() if k in chosen})

    def counts(self) -> dict[str, Counter[str]]:
        """Tickets per jurisdiction and per storyline, actions per name (for the summary and tests)."""
        return {"jurisdiction": Counter(t.jurisdiction for t in self.tickets.values()),
                "storyline": Counter(t.storyline for t in self.tickets.values()),
                "action": Counter(s.action for s in self.steps if isinstance(s, Act))}


# --- time -----------------------------------------------------------------------------------------------
def demo_origin(calendar: WorkCalendar, today: date, *, weeks_back: int = 12) -> datetime:
    """Monday 08:30 of the latest full week before ``today`` with no holiday and no 调休 working day.

    A plain week keeps the demo's deadlines easy to follow (Saturday and Sunday are rest days, every
    weekday counts). Weeks whose year the calendar does not know are skipped too; if none qualifies,
    the latest Monday before today is used.
    """
    monday = today - timedelta(days=today.weekday() + 7)  # the Monday of last week: that week is over
    for k in range(weeks_back):
        start = monday - timedelta(weeks=k)
        days = [start + timedelta(days=i) for i in range(7)]
        known = all(calendar.has_year(d.year) for d in days)
        plain = all(calendar.is_working_day(d) == (d.weekday() < 5) for d in days)
        if known and plain:
            return datetime.combine(start, OFFICE_OPEN, tzinfo=TZ)
    return datetime.combine(monday, OFFICE_OPEN, tzinfo=TZ)


def office_after(calendar: WorkCalendar, start: datetime, minutes: float) -> datetime:
    """``minutes`` of office time (08:30-17:30 on working days) after ``start``: when agencies act."""
    moment = as_local(start)
    left = timedelta(minutes=minutes)
    while True:
        day = moment.date()
        opens = datetime.combine(day, OFFICE_OPEN, tzinfo=TZ)
        closes = datetime.combine(day, OFFICE_CLOSE, tzinfo=TZ)
        if calendar.is_working_day(day) and moment < closes:
            moment = max(moment, opens)
            if moment + left <= closes:
                return moment + left
            left -= closes - moment
        moment = datetime.combine(day + timedelta(days=1), OFFICE_OPEN, tzinfo=TZ)


# --- the generator ----------------------------------------------------------------------------------------
class _Writer:
    """Builds tickets and their steps with one seeded RNG (processing order fixed: deterministic)."""

    def __init__(self, catalogue: Catalogue, origin: datetime, seed: int) -> None:
        self.cat = catalogue
        self.cal = catalogue.calendar
        self.origin = as_local(origin)
        self.end = self.origin + WEEK
        self.rng = random.Random(seed)
        self.phones: set[str] = set()
        self.tickets: list[DemoTicket] = []
        self.steps: list[Step] = []
        self.payloads: dict[str, dict[str, Any]] = {}
        self.last: dict[str, datetime] = {}  # each ticket's latest step time
        # places used so far (as the supervision compares them), the scripted ones reserved up front
        self.places: set[str | None] = {normalise_place(a) for a in (
            *texts.REPEAT_CALLER_ADDRESSES, texts.REPEAT_PLACE_ADDRESS, texts.JOINT_ADDRESS)}
        matters = sorted(catalogue.matters.values(), key=lambda m: m.code)
        self.matters = matters
        self.matter_weights = [KIND_WEIGHTS.get(m.kind, 1) for m in matters]
        self.streets = {j: sorted(catalogue.jurisdictions[j].streets, key=lambda s: s.code)
                        for j in texts.ESTATES}

    # --- pieces ---------------------------------------------------------------------------------------
    def phone(self) -> str:
        while True:
            number = f"1{self.rng.choice('35789')}{self.rng.randrange(10**9):09d}"
            if number not in self.phones:
                self.phones.add(number)
                return number

    def place(self, jurisdiction: str) -> tuple[str, str, str, str]:
        """(address, street code, estate, spot) in the jurisdiction, written the ways people write them."""
        rng = self.rng
        while True:
            street = rng.choice(self.streets[jurisdiction])
            estate = rng.choice(texts.ESTATES[jurisdiction][street.name])
            spot = rng.choice(texts.SPOTS)
            door = rng.choice(texts.BUILDINGS).format(n=rng.randint(1, 36), m=rng.randint(1, 6))
            prefix = rng.choice(texts.DISTRICT_PREFIXES[jurisdiction])
            if jurisdiction == "TEDA" and rng.random() < 0.5:
                address = f"{prefix}{rng.choice(texts.TEDA_AVENUES)}{estate}{door}{spot}"
            else:
                address = f"{prefix}{street.name}{estate}{door}{spot}"
            key = normalise_place(address)
            if key not in self.places:
                self.places.add(key)
                return address, street.code, estate, spot

    def request_type(self, matter: Matter) -> str:
        if matter.code == "QZ-003":
            return "建议"
        if any(mark in matter.name for mark in CONSULT_MARKS):
            return self.rng.choice(("咨询", "咨询", "求助"))
        if "举报" in matter.name:
            return "举报"
        return "投诉" if self.rng.random() < 0.82 else ("举报" if self.rng.random() < 0.6 else "求助")

    def channel(self) -> str:
        names, weights = zip(*CHANNELS, strict=True)
        return self.rng.choices(names, weights)[0]

    def body(self, matter: Matter, estate: str, spot: str, channel: str, request_type: str) -> str:
        """A colloquial ticket text around one of the matter's phrasings and details."""
        rng = self.rng
        phrasing = rng.choice(matter.phrasings or (matter.description,))
        detail = rng.choice(matter.details) if matter.details else ""
        where = rng.choice(texts.WHERE).format(estate=estate, spot=spot)
        if request_type == "咨询":
            return f"{rng.choice(texts.OPENINGS_CALL)}{phrasing}，{rng.choice(texts.CONSULT_ASKS)}"
        if channel == "电话":
            tail = f"{detail}。" if detail else ""
            return (f"{rng.choice(texts.OPENINGS_CALL)}{where}{rng.choice(texts.EMOTIONS)}{phrasing}，"
                    f"{tail}{rng.choice(texts.DEMANDS)}")
        opening = rng.choice(texts.OPENINGS_WEB).format(estate=estate)
        middle = f"，{detail}" if detail else ""
        return f"{opening}{where}{phrasing}{middle}。{rng.choice(texts.DEMANDS)}"

    def owner(self, matter: str, address: str, at: datetime) -> str | None:
        try:
            return self.cat.place(matter, address, at).ownership.agency.code
        except NoOwner:
            return None

    def street_office(self, address: str) -> str | None:
        """The 街镇 office of the address; for a zone with a single street (经开区) that one."""
        match = self.cat.resolve_address(address)
        if match is None:
            return None
        streets = self.cat.jurisdictions[match.jurisdiction].streets
        street = self.cat.street(match.street) if match.street else (streets[0] if len(streets) == 1 else None)
        return street.agency if street else None

    def received_times(self, n: int) -> list[datetime]:
        """``n`` arrival times over the week, Monday from 08:31 (the demo's clock starts at 08:30)."""
        total = sum(DAY_SHARES)
        per_day = [n * s // total for s in DAY_SHARES]
        for i in range(n - sum(per_day)):
            per_day[i % 7] += 1
        out = []
        for day, count in enumerate(per_day):
            base = self.origin.replace(hour=0, minute=0) + timedelta(days=day)
            for _ in range(count):
                while True:
                    hour = self.rng.choices(range(24), HOUR_WEIGHTS)[0]
                    at = base + timedelta(hours=hour, minutes=self.rng.randrange(60), seconds=self.rng.randrange(60))
                    if at > self.origin:
                        break
                out.append(at)
        return sorted(out)

    # --- tickets --------------------------------------------------------------------------------------
    def ticket(self, at: datetime, *, jurisdiction: str, matter: Matter, address: str, text: str,
               storyline: str, phone: str | None = None, urgency: str = "一般",
               request_type: str | None = None, channel: str | None = None) -> DemoTicket | None:
        owner = self.owner(matter.code, address, at)
        if owner is None:
            return None
        match = self.cat.resolve_address(address)
        tid = f"D{self.origin:%y%m%d}-{len(self.tickets) + 1:03d}"
        ticket = DemoTicket(tid, at, jurisdiction, match.street if match else None, address, matter.code, owner,
                            storyline, phone or self.phone(), urgency,
                            request_type or self.request_type(matter))
        self.tickets.append(ticket)
        self.payloads[tid] = {
            "id": tid, "text": text, "address": address, "received_at": at.isoformat(),
            "channel": channel or self.channel(), "request_type": ticket.request_type,
            "urgency": urgency, "caller_phone": ticket.caller_phone,
        }
        return ticket

    def random_ticket(self, at: datetime, storyline: str) -> DemoTicket:
        while True:
            jurisdiction = self.rng.choices(list(JURISDICTION_SHARES), list(JURISDICTION_SHARES.values()))[0]
            matter = self.rng.choices(self.matters, self.matter_weights)[0]
            if matter.kind == "utility" or not matter.phrasings:
                continue  # utility tickets come from the hand-written ones, with their urgency
            address, _street, estate, spot = self.place(jurisdiction)
            channel = self.channel()
            request_type = self.request_type(matter)
            text = self.body(matter, estate, spot, channel, request_type)
            if storyline == "stalled" and request_type not in ("咨询", "求助"):
                request_type = "求助"  # a 3-working-day limit: overdue within the demo's week
            made = self.ticket(at, jurisdiction=jurisdiction, matter=matter, address=address, text=text,
                               storyline=storyline, request_type=request_type, channel=channel)
            if made is not None:
                return made

    # --- what happens to them ------------------------------------------------------------------------------
    def after_last(self, ticket: DemoTicket, at: datetime) -> datetime:
        """A ticket's steps are strictly later than the one before, so time order is story order."""
        last = self.last.get(ticket.id)
        at = at if last is None or at > last else last + timedelta(seconds=1)
        self.last[ticket.id] = at
        return at

    def act(self, at: datetime, ticket: DemoTicket, action: str, round_: int = 0, **options: Any) -> datetime:
        at = self.after_last(ticket, at)
        self.steps.append(Act(at, ticket.id, action, round_, {k: v for k, v in options.items() if v is not None}))
        return at

    def rescue(self, at: datetime, ticket: DemoTicket, round_: int) -> None:
        """A dispatcher watches the manual queue: assigns the ticket if it lands there."""
        targets = tuple(dict.fromkeys(a for a in (ticket.owner, self.street_office(ticket.address)) if a))
        self.steps.append(Act(self.after_last(ticket, at + RESCUE_AFTER), ticket.id, "reassign", round_,
                              {"explanation": "调度员人工派单：按权责清单指定承办单位"}, only_if_manual=True,
                              targets=targets))

    def agency_delay(self, at: datetime, ticket: DemoTicket, low: float, high: float) -> datetime:
        """When the agency gets to it: urgent and utility tickets on the 24x7 clock, the rest in office hours."""
        minutes = self.rng.uniform(low, high)
        if ticket.urgency == "紧急":
            return at + timedelta(minutes=minutes / 12)
        if ticket.urgency == "水电气热":
            return at + timedelta(minutes=minutes / 4)
        return office_after(self.cal, at, minutes)

    def story(self, ticket: DemoTicket) -> None:
        at = ticket.received_at
        self.steps.append(Submit(self.after_last(ticket, at), ticket.id, self.payloads[ticket.id]))
        self.rescue(at, ticket, 0)
        kind = ticket.storyline
        if kind == "unsigned":
            return
        round_ = 0
        for _ in range({"returned": 1, "bounced": 2}.get(kind, 0)):
            at = self.agency_delay(at, ticket, 30, 240)
            reason, basis, explanation = self.rng.choice(texts.RETURNS)
            matter = self.cat.matter(ticket.matter)
            law = matter.powers[0].basis if matter.powers else "《中华人民共和国行政许可法》"
            basis = basis.format(law=law, jurisdiction=self.cat.jurisdictions[ticket.jurisdiction].name)
            self.act(at, ticket, "return", round_, reason_code=reason, basis=basis, explanation=explanation)
            round_ += 1
            self.rescue(at, ticket, round_)
        at = self.act(self.agency_delay(at, ticket, 10, 120), ticket, "sign", round_)
        if kind == "stalled":
            return
        if kind == "extended":
            at = self.act(self.agency_delay(at, ticket, 60, 480), ticket, "extend", round_,
                          days=self.rng.choice((3, 5, 7)), explanation=self.rng.choice(texts.EXTENSIONS))
            decision = "approve-extension" if self.rng.random() < 0.75 else "deny-extension"
            at = self.act(office_after(self.cal, at, self.rng.uniform(20, 180)), ticket, decision, round_,
                          explanation="同意延期，请按期办结" if decision == "approve-extension" else "理由不充分，请按原时限办结")
        if kind == "in_progress":
            return  # signed, being handled past the end of the week (no alert: the limit is not reached)
        at = self.resolve(at, ticket, round_)
        if kind == "unsatisfied":
            at = self.act(at + timedelta(hours=self.rng.uniform(2, 8)), ticket, "rate", round_,
                          rating="unsatisfied", explanation=self.rng.choice(texts.UNSATISFIED))
            at = self.act(at + timedelta(minutes=15), ticket, "reopen", round_, explanation=texts.REOPEN)
            at = self.resolve(at, ticket, round_)
        at = self.act(at + timedelta(hours=self.rng.uniform(1, 8)), ticket, "rate", round_, rating="satisfied")
        self.act(at + timedelta(minutes=self.rng.uniform(10, 60)), ticket, "close", round_, explanation=texts.CLOSE)

    def resolve(self, at: datetime, ticket: DemoTicket, round_: int) -> datetime:
        return self.act(self.agency_delay(at, ticket, 120, 1500), ticket, "resolve", round_,
                        reply=self.rng.choice(texts.REPLIES))

    # --- the fixed cases --------------------------------------------------------------------------------------
    def day(self, n: int, hh: int, mm: int) -> datetime:
        return self.origin.replace(hour=hh, minute=mm) + timedelta(days=n)

    def fixed(self) -> list[DemoTicket]:
        m = self.cat.matter
        made: list[DemoTicket | None] = []
        phone = self.phone()
        for (d, hh, mm), text, address in zip([(0, 9, 40), (2, 10, 15), (4, 15, 20)], texts.REPEAT_CALLER,
                                              texts.REPEAT_CALLER_ADDRESSES, strict=True):
            made.append(self.ticket(self.day(d, hh, mm), jurisdiction="DL", matter=m("RS-001"),
                                    address=address, text=text, storyline="repeat_caller",
                                    phone=phone, request_type="求助", channel="电话"))
        for (d, hh, mm), text in zip([(0, 20, 30), (1, 21, 10), (2, 19, 45)], texts.REPEAT_PLACE, strict=True):
            made.append(self.ticket(self.day(d, hh, mm), jurisdiction="BH", matter=m("HB-001"),
                                    address=texts.REPEAT_PLACE_ADDRESS, text=text, storyline="repeat_place",
                                    request_type="投诉"))
        for (d, hh, mm), (code, text) in zip([(1, 12, 30), (1, 19, 5), (2, 21, 30)],
                                             zip(("SJ-001", "CG-001", "XF-001"), texts.JOINT_PLACE, strict=True),
                                             strict=True):
            made.append(self.ticket(self.day(d, hh, mm), jurisdiction="TEDA", matter=m(code),
                                    address=texts.JOINT_ADDRESS, text=text, storyline="joint", request_type="投诉"))
        urgent_at = [(0, 8, 50), (1, 7, 50), (3, 21, 0)]
        for (d, hh, mm), (code, text) in zip(urgent_at, texts.URGENT, strict=True):
            jurisdiction = ("BH", "DL", "TEDA")[len(made) % 3]
            address, *_ = self.place(jurisdiction)
            made.append(self.ticket(self.day(d, hh, mm), jurisdiction=jurisdiction, matter=m(code), address=address,
                                    text=text, storyline="urgent", urgency="紧急", request_type="求助",
                                    channel="电话"))
        utility_at = [(0, 9, 5), (0, 10, 30), (1, 8, 40), (2, 16, 20), (3, 7, 30)]
        for (d, hh, mm), (code, text) in zip(utility_at, texts.UTILITIES, strict=True):
            jurisdiction = ("BH", "DL", "BH", "TEDA", "DL")[len(made) % 5]
            address, *_ = self.place(jurisdiction)
            made.append(self.ticket(self.day(d, hh, mm), jurisdiction=jurisdiction, matter=m(code), address=address,
                                    text=text, storyline="utility", urgency="水电气热", request_type="求助"))
        address, *_ = self.place("BH")
        made.append(self.ticket(self.day(0, 10, 20), jurisdiction="BH", matter=m("CG-009"), address=address,
                                text=texts.BOUNCED, storyline="bounced", request_type="投诉"))
        return [t for t in made if t is not None]


def build_scenario(catalogue: Catalogue, origin: datetime, *, seed: int = DEFAULT_SEED,
                   tickets: int = DEFAULT_TICKETS) -> Scenario:
    """The demo's week starting at ``origin``: about ``tickets`` tickets and their actions, by ``seed``."""
    w = _Writer(catalogue, origin, seed)
    fixed = w.fixed()
    random_count = max(0, tickets - len(fixed))
    names, shares = zip(*STORYLINES, strict=True)
    for at in w.received_times(random_count):
        w.random_ticket(at, w.rng.choices(names, shares)[0])
    for ticket in w.tickets:
        story = {"repeat_caller": "resolved", "repeat_place": "resolved", "joint": "resolved",
                 "urgent": "resolved", "utility": "resolved"}
        w.story(replace(ticket, storyline=story.get(ticket.storyline, ticket.storyline)))
    # Renumber by arrival so ids read in time order; stable sort keeps a ticket's own steps in order.
    order = sorted(w.tickets, key=lambda t: (t.received_at, t.id))
    new_id = {t.id: f"D{w.origin:%y%m%d}-{i:03d}" for i, t in enumerate(order, start=1)}
    steps = sorted((_renamed(s, new_id) for s in w.steps if s.at < w.end), key=lambda s: s.at)
    return Scenario(w.origin, tuple(steps), {new_id[t.id]: replace(t, id=new_id[t.id]) for t in order})


def _renamed(step: Step, new_id: dict[str, str]) -> Step:
    tid = new_id[step.ticket_id]
    if isinstance(step, Submit):
        return Submit(step.at, tid, {**step.ticket, "id": tid})
    return replace(step, ticket_id=tid)


def describe(scenario: Scenario) -> str:
    """One line for the console: how many tickets, where, and what will happen to them."""
    c = scenario.counts()
    where = "、".join(f"{k} {v}" for k, v in sorted(c["jurisdiction"].items()))
    acts = c["action"]
    done = sum(n for name, n in acts.items() if name != "reassign")  # reassign: only if a ticket goes manual
    return (f"{len(scenario.tickets)} tickets ({where}), {done} actions: {acts['return']} returns, "
            f"{acts['extend']} extensions, {acts['resolve']} resolutions, {acts['reopen']} reopened, "
            f"{sum(1 for t in scenario.tickets.values() if t.storyline in ('unsigned', 'stalled'))} left to go overdue")
