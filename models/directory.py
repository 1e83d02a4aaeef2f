"""The catalogue: everything the router knows about places, bodies, matters, duties and time.

One immutable object built by ``config.catalogue.load_catalogue`` and shared by all stages. It
indexes at construction so that per-ticket questions (where is this address, who owns this
matter there today, when is it due) cost a dictionary lookup or a binary search.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from models.address import AddressMatch, AddressResolution, AddressResolver
from models.domain import (
    Agency,
    Jurisdiction,
    Matter,
    Ownership,
    ResponsibilityItem,
    Stats,
    Street,
)
from models.ownership import NoOwner, OwnershipIndex
from models.sla import Schedule, SlaRules, TimeLimit
from models.workcalendar import WorkCalendar


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a ticket belongs and who owns its matter there (the routing answer)."""

    address: AddressResolution
    jurisdiction: str
    ownership: Ownership
    defaulted: bool  # True when the address did not resolve and the default jurisdiction was used


class Catalogue:
    """Jurisdictions, agencies, matters, the responsibility list, SLA rules and the calendar."""

    def __init__(
        self,
        jurisdictions: Mapping[str, Jurisdiction],
        agencies: Mapping[str, Agency],
        matters: Mapping[str, Matter],
        items: tuple[ResponsibilityItem, ...],
        sla: SlaRules,
        calendar: WorkCalendar,
        source: str = "",
    ) -> None:
        self.jurisdictions = dict(jurisdictions)
        self.agencies = dict(agencies)
        self.matters = dict(matters)
        self.items = tuple(items)
        self.sla = sla
        self.calendar = calendar
        self.source = source
        self.streets: dict[str, Street] = {s.code: s for j in self.jurisdictions.values() for s in j.streets}
        by_jurisdiction: dict[str, list[Agency]] = defaultdict(list)
        for a in self.agencies.values():
            by_jurisdiction[a.jurisdiction].append(a)
        self._agencies_by_jurisdiction = {k: tuple(v) for k, v in by_jurisdiction.items()}
        self._index = OwnershipIndex(self.items, self.matters, self.agencies, self.streets)
        self._resolver = AddressResolver(self.jurisdictions.values())

    # --- places ----------------------------------------------------------------------------
    def resolve_address(self, text: str) -> AddressMatch | None:
        return self._resolver.resolve(text).match

    def explain_address(self, text: str) -> AddressResolution:
        """Like resolve_address, with the reason (also when it cannot place the address)."""
        return self._resolver.resolve(text)

    def street(self, code: str) -> Street | None:
        return self.streets.get(code)

    # --- bodies ----------------------------------------------------------------------------
    def agency(self, code: str) -> Agency:
        return self.agencies[code]

    def agencies_of(self, jurisdiction: str, kind: str | None = None) -> tuple[Agency, ...]:
        found = self._agencies_by_jurisdiction.get(jurisdiction, ())
        return tuple(a for a in found if kind is None or a.kind == kind)

    # --- duties ----------------------------------------------------------------------------
    def matter(self, code: str) -> Matter:
        return self.matters[code]

    def items_for(self, matter: str, jurisdiction: str) -> list[ResponsibilityItem]:
        return self._index.items(matter, jurisdiction)

    def owner(
        self,
        matter_code: str,
        jurisdiction_code: str,
        at: date | datetime,
        street: str | Street | None = None,
    ) -> Ownership:
        """Owner in force at ``at`` (a Shanghai date or any aware/naive datetime).

        Raises ``NoOwner`` (a LookupError) for unknown matters or when the list names no owner.
        """
        st = self.streets.get(street) if isinstance(street, str) else street
        return self._index.owner(matter_code, jurisdiction_code, at, st)

    def place(
        self, matter_code: str, address: str, at: date | datetime, default_jurisdiction: str = "BH"
    ) -> Placement:
        """Resolve the address, then find the owner there (default jurisdiction if unresolved)."""
        resolution = self._resolver.resolve(address)
        if resolution.match is None:
            ownership = self.owner(matter_code, default_jurisdiction, at)
            return Placement(resolution, default_jurisdiction, ownership, True)
        m = resolution.match
        ownership = self.owner(matter_code, m.jurisdiction, at, m.street)
        return Placement(resolution, m.jurisdiction, ownership, False)

    # --- time ------------------------------------------------------------------------------
    def deadline_working_days(self, start: datetime, n: int) -> datetime:
        return self.calendar.deadline_working_days(start, n)

    def deadline_hours(self, start: datetime, hours: float) -> datetime:
        return self.calendar.deadline_hours(start, hours)

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        return self.calendar.working_time_between(start, end)

    def time_limit(
        self,
        stage: str,
        request_type: str | None = None,
        urgency: str | None = "一般",
        complex_case: bool = False,
    ) -> TimeLimit:
        return self.sla.limit(stage, request_type, urgency, complex_case)

    def schedule(
        self,
        stage: str,
        start: datetime,
        request_type: str | None = None,
        urgency: str | None = "一般",
        complex_case: bool = False,
    ) -> Schedule:
        return self.sla.schedule(stage, start, self.calendar, request_type, urgency, complex_case)

    # --- figures ---------------------------------------------------------------------------
    def stats(self) -> Stats:
        addressable = [j for j in self.jurisdictions.values() if j.addressable]
        return Stats(
            jurisdictions=len(addressable),
            streets=sum(len(j.streets) for j in addressable),
            agencies=len(self.agencies),
            agency_kinds=len({a.kind for a in self.agencies.values()}),
            matters=len(self.matters),
            domains=len({m.domain for m in self.matters.values()}),
            responsibility_items=len(self.items),
            calendar_years=self.calendar.years,
        )


__all__ = ["Catalogue", "NoOwner", "Placement"]
