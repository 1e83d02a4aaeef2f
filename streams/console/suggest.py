"""The dispatcher's suggestions for a ticket: the classifier's best matters, each with the agency that owns
it for the ticket's place and date and the legal basis, as the responsibility list in force says (pure).

The routing decision stored with the ticket carries the ranked matters (the top one and its
alternatives), each with the agency the router found for it; the legal basis is looked up here in the
responsibility list in force for *this* ticket, also for the alternatives the router did not choose.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from models.directory import Catalogue
from models.workcalendar import as_local


@dataclass(frozen=True, slots=True)
class Suggestion:
    agency: str
    agency_name: str
    matter: str | None
    matter_name: str | None
    confidence: float | None
    basis: str | None
    excluded: bool = False  # this agency returned the ticket before: shown, but flagged


def _ranked(message: Mapping[str, Any]) -> list[tuple[str | None, str | None, float | None]]:
    """(matter, agency, confidence) in the router's order: its own choice, then the alternatives."""
    out: list[tuple[str | None, str | None, float | None]] = []
    if message.get("matter") or message.get("agency"):
        out.append((message.get("matter"), message.get("agency"), message.get("confidence")))
    for alt in message.get("alternatives") or []:
        if isinstance(alt, Mapping):
            out.append((alt.get("matter"), alt.get("agency"), alt.get("confidence")))
    return out


def _basis(catalogue: Catalogue, matter: str, agency: str, address: str | None, received_at: datetime,
           default_jurisdiction: str) -> tuple[str | None, str | None]:
    """(owner, legal basis) of ``matter`` at the ticket's place and date; the basis is ``agency``'s own
    items when it holds the matter there (lead or co-owner), else the owner's."""
    try:
        placement = catalogue.place(matter, address or "", received_at, default_jurisdiction)
    except LookupError:  # the list names no owner there
        return None, None
    own = placement.ownership
    if agency == own.agency.code:
        return own.agency.code, own.basis
    day = as_local(received_at).date()
    held = [i.basis for i in catalogue.items_for(matter, placement.jurisdiction)
            if i.holder == agency and i.in_force(day)]
    return own.agency.code, "；".join(dict.fromkeys(held)) if held else own.basis


def suggestions(message: Mapping[str, Any] | None, *, address: str | None, received_at: datetime,
                catalogue: Catalogue, default_jurisdiction: str, excluded: Collection[str] = (),
                n: int = 3) -> list[Suggestion]:
    """Up to ``n`` distinct agencies for the ticket, best first, from its stored routing message.

    The router's own agency for each matter is kept (it already skipped the agencies that returned the
    ticket, and follows co-owners and street delegations); without one, the list's owner is used."""
    out: list[Suggestion] = []
    seen: set[str] = set()
    for matter_code, agency_code, confidence in _ranked(message or {}):
        matter = catalogue.matters.get(matter_code or "")
        basis = None
        if matter is not None:
            owner, basis = _basis(catalogue, matter.code, agency_code or "", address, received_at,
                                  default_jurisdiction)
            agency_code = agency_code or owner
        if not agency_code or agency_code in seen or agency_code not in catalogue.agencies:
            continue
        seen.add(agency_code)
        out.append(Suggestion(agency=agency_code, agency_name=catalogue.agencies[agency_code].name,
                              matter=matter.code if matter else matter_code, matter_name=matter.name if matter
                              else None, confidence=confidence, basis=basis, excluded=agency_code in excluded))
        if len(out) == n:
            break
    return out
