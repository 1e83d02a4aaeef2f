"""What supervision knows about one ticket: its lifecycle state plus the intake facts rules need.

``TicketState`` (``models.lifecycle``) has the status and times; deadlines also need the request type,
urgency and received time, and the misrouting and linking rules need the matter, address, caller and the
classifier's own choice. :class:`TicketFacts` carries both, plus ``progress`` — per running deadline, the
rank of the last checkpoint announced — which is what makes time alerts exactly-once across restarts
when the stage keeps the facts in a table with a changelog.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from models.lifecycle import dispatches_before_counted
from models.workcalendar import as_local

_LIFECYCLE_FIELDS = ("status", "agency", "attempt", "returns", "dispatches", "returned_by", "designation",
                     "dispatched_at", "signed_at", "handling_started_at", "resolved_at", "closed_at",
                     "extension_days_granted", "reopen_count")
_TIMES = ("received_at", "dispatched_at", "signed_at", "handling_started_at", "resolved_at", "closed_at")


def same_lifecycle(facts: Mapping[str, Any], state: Mapping[str, Any]) -> bool:
    """Whether stored facts already hold the stored lifecycle state's fields (both as ``to_dict`` wrote them):
    the usual case, told without decoding either."""
    return all(facts.get(name) == state.get(name) for name in _LIFECYCLE_FIELDS)


@dataclass(frozen=True, slots=True)
class TicketFacts:
    ticket_id: str
    received_at: datetime
    # from intake / routing
    request_type: str | None = None
    urgency: str | None = "一般"
    complex_case: bool = False
    matter: str | None = None
    address: str | None = None
    business: str | None = None  # a named shop or company, when known (joint enforcement keys on it)
    caller_phone: str | None = None
    predicted_agency: str | None = None  # the classifier's own choice (router decisions only)
    predicted_confidence: float | None = None
    # from the lifecycle state
    status: str = "received"
    agency: str | None = None
    attempt: int = 0
    returns: int = 0  # dispatches returned (退单): what designation counts, not attempts (manual ones included)
    dispatches: int = 0  # routings to an agency's queue: the N of 第N次派发 in alerts (attempts count the manual queue)
    returned_by: tuple[str, ...] = ()
    designation: bool = False
    dispatched_at: datetime | None = None
    signed_at: datetime | None = None
    handling_started_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    extension_days_granted: int = 0
    reopen_count: int = 0
    # supervision's own memory: deadline id -> rank of the last checkpoint announced
    progress: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_state(cls, state: Any, *, received_at: datetime, **intake: Any) -> TicketFacts:
        """Facts from a ``TicketState`` (or any object with its attributes) plus intake facts."""
        base = cls(ticket_id=state.ticket_id, received_at=as_local(received_at), **intake)
        return base.with_state(state)

    def with_state(self, state: Any, **changes: Any) -> TicketFacts:
        """The same ticket after a lifecycle change: lifecycle fields from ``state``, the rest kept."""
        values = {name: getattr(state, name) for name in _LIFECYCLE_FIELDS if hasattr(state, name)}
        if "returned_by" in values:
            values["returned_by"] = tuple(values["returned_by"])
        values.update(changes)
        if not values.keys() <= _FIELD_SET:
            return replace(self, **values)  # says which field is unknown
        # dataclasses.replace without the trip through the frozen class's __init__ (40% faster; no __post_init__
        # to skip): a worker does this for every event it observes, a report for every event it replays
        new = object.__new__(TicketFacts)
        for name in _FIELD_NAMES:
            _set(new, name, values[name] if name in values else getattr(self, name))
        return new

    def progress_of(self, deadline_id: str) -> int:
        for key, rank in self.progress:
            if key == deadline_id:
                return rank
        return -1

    def to_dict(self) -> dict[str, Any]:
        # a flat copy: dataclasses.asdict deep-copies field by field, a visible cost on a busy worker
        d = {name: getattr(self, name) for name in _FIELD_NAMES}
        for name in _TIMES:
            if d[name] is not None:
                d[name] = d[name].isoformat()
        d["returned_by"] = list(self.returned_by)
        d["progress"] = [list(p) for p in self.progress]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TicketFacts:
        kwargs = {k: v for k, v in d.items() if k in _FIELD_SET}
        for name in _TIMES:
            if isinstance(kwargs.get(name), str):
                kwargs[name] = datetime.fromisoformat(kwargs[name])
        kwargs["returned_by"] = tuple(kwargs.get("returned_by") or ())
        if "returns" not in kwargs:  # facts stored before returns were counted: one per listed agency
            kwargs["returns"] = len(kwargs["returned_by"])
        if "dispatches" not in kwargs:  # stored before dispatches were counted (as TicketState.from_dict)
            kwargs["dispatches"] = dispatches_before_counted(kwargs["returns"], kwargs.get("agency"))
        kwargs["progress"] = tuple((str(k), int(r)) for k, r in kwargs.get("progress") or ())
        return cls(**kwargs)


_FIELD_NAMES = tuple(f.name for f in fields(TicketFacts))
_FIELD_SET = frozenset(_FIELD_NAMES)
_set = object.__setattr__  # a frozen class's fields are set past its own __setattr__
