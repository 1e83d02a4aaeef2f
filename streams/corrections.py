"""Dispatchers' corrections as training data for the next ``hotline train``.

Every dispatch by a dispatcher is stored in the ledger as a training example labelled with the *agency*
chosen (``TrainingExample``). The classifier, though, usually learns *matters* (the responsibility list
then names the agency), so a correction becomes a matter label when one of the ticket's candidate matters
— the router's choice and alternatives, over all attempts — is owned by that agency at the ticket's place
and date. A correction that fits no candidate matter cannot be turned into a matter label and is skipped
(counted, so ``hotline train`` can say so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from models import ledger as t
from models.directory import Catalogue
from streams.db import Ledger


def candidates_of(messages: Iterable[Mapping[str, Any] | None]) -> list[tuple[str, str | None]]:
    """(matter, agency the router found for it) from routing messages, best first, each matter once."""
    out: dict[str, str | None] = {}
    for m in messages:
        if not m:
            continue
        ranked = [(m.get("matter"), m.get("agency"))] + [
            (a.get("matter"), a.get("agency")) for a in (m.get("alternatives") or []) if isinstance(a, Mapping)]
        for matter, agency in ranked:
            if isinstance(matter, str) and matter and matter not in out:
                out[matter] = agency if isinstance(agency, str) else None
    return list(out.items())


def correction_label(agency: str, wanted: str, candidates: list[tuple[str, str | None]], catalogue: Catalogue, *,
                     address: str | None, received_at: datetime, default_jurisdiction: str) -> str | None:
    """The label of kind ``wanted`` (agency | matter | domain) for a correction to ``agency``, or None."""
    if agency not in catalogue.agencies:
        return None
    if wanted == "agency":
        return agency
    for matter, routed_to in candidates:
        if matter not in catalogue.matters:
            continue
        owners = {routed_to} if routed_to else set()
        try:
            own = catalogue.place(matter, address or "", received_at, default_jurisdiction).ownership
            owners |= {own.agency.code, *(a.code for a in own.co_owners)}
        except LookupError:  # no owner in the list there: only the router's agency can match
            pass
        if agency in owners:
            return matter if wanted == "matter" else catalogue.matters[matter].domain
    return None


@dataclass
class Corrections:
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    skipped: int = 0


def load_corrections(ledger: Ledger, catalogue: Catalogue, wanted: str, default_jurisdiction: str) -> Corrections:
    """Every stored correction as (text, label of kind ``wanted``); the unusable ones counted as skipped."""
    out = Corrections()
    with ledger.session() as s:
        # in a fixed order: the hold-out split and the fit depend on it, and PostgreSQL returns rows in the
        # order they were last written (a re-dispatch to the same agency moved a row, and changed the model)
        rows = s.execute(select(t.TrainingExample, t.Ticket.address, t.Ticket.received_at)
                         .join(t.Ticket, t.Ticket.id == t.TrainingExample.ticket_id)
                         .order_by(t.TrainingExample.id)).all()
        messages: dict[str, list[Any]] = {}
        ids = [ex.ticket_id for ex, _, _ in rows]
        for i in range(0, len(ids), 500):
            for d in s.scalars(select(t.RoutingDecision).where(t.RoutingDecision.ticket_id.in_(ids[i:i + 500]))
                               .order_by(t.RoutingDecision.attempt)):
                messages.setdefault(d.ticket_id, []).append(d.message)
    for ex, address, received_at in rows:
        label: str | None = None
        if ex.label_kind == "agency":  # also when agencies are wanted: skips one the catalogue no longer has
            label = correction_label(ex.label, wanted, candidates_of(messages.get(ex.ticket_id, [])), catalogue,
                                     address=address, received_at=received_at,
                                     default_jurisdiction=default_jurisdiction)
        elif ex.label_kind == wanted:
            label = ex.label
        if label is None or not ex.text.strip():
            out.skipped += 1
            continue
        out.texts.append(ex.text)
        out.labels.append(label)
    return out
