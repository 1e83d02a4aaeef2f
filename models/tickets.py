"""What a ticket is at intake, and the pure validation that turns untrusted bytes into one.

The hotline platform, ``hotline ingest`` and ``POST /api/tickets`` all pass through
:func:`parse_ticket`, so a ticket is judged by the same rules whatever door it came in by.
A rejected input yields a :class:`Rejection` whose ``reason`` a person can act on.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_TEXT_CHARS = 20_000
MAX_ID_CHARS = 64
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")


class RequestType(StrEnum):
    CONSULT = "咨询"
    HELP = "求助"
    COMPLAINT = "投诉"
    REPORT = "举报"
    SUGGESTION = "建议"


class Urgency(StrEnum):
    URGENT = "紧急"          # life or property at risk
    UTILITIES = "水电气热"    # water, power, gas, heating outages
    GENERAL = "一般"


class TicketIn(BaseModel):
    """A ticket as accepted by intake (all doors). Unknown fields are ignored, not fatal."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, use_enum_values=True)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    received_at: datetime | None = None
    address: str | None = Field(default=None, max_length=500)
    title: str | None = Field(default=None, max_length=500)
    channel: str | None = Field(default=None, max_length=40)
    request_type: RequestType | None = None
    urgency: Urgency | None = None
    caller_phone: str | None = Field(default=None, max_length=40)

    @field_validator("id", mode="before")
    @classmethod
    def _id_is_text(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)  # platforms often send numeric ids
        return v

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        if not ID_PATTERN.match(v):
            raise ValueError("may contain only letters, digits and _ . : - (and start with a letter or digit)")
        return v

    @field_validator("text")
    @classmethod
    def _text_has_content(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is blank")
        return v

    @field_validator("received_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return v
        if v.tzinfo is None:
            v = v.replace(tzinfo=SHANGHAI)  # the hotline's local time when no offset is given
        return plausible_time(v)

    @field_validator("request_type", "urgency", "address", "title", "channel", "caller_phone", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v


EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def plausible_time(v: datetime) -> datetime:
    """``v`` (aware) when a hotline could have stamped it; else ValueError. Deadlines are computed from
    these times, and year 9999 plus a few working days does not exist."""
    if not EARLIEST <= v <= LATEST:
        raise ValueError(f"is outside {EARLIEST.year}–{LATEST.year - 1}")
    return v


@dataclass(frozen=True)
class Rejection:
    """Why an input was not accepted; ``key`` is the ticket id when known, else a content hash."""

    key: str
    reason: str
    payload: str


def content_key(raw: bytes | str) -> str:
    data = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
    return "sha1:" + hashlib.sha1(data).hexdigest()


def _explain(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "ticket"
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{field}: {msg}")
    return "; ".join(parts)


def without_nul(value: Any) -> Any:
    """``value`` with NUL characters removed from every string in it (keys too).

    JSON allows ``\\u0000`` inside strings, PostgreSQL text and JSONB do not: one such character in a
    ticket would make every write of it fail. It carries no meaning in a citizen's message, so it goes.
    """
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value


def shown_payload(raw: bytes | str | dict[str, Any]) -> str:
    """The input as text for a rejection record: undecodable bytes and NULs replaced, never raising."""
    text = raw if isinstance(raw, str) else (
        raw.decode("utf-8", "replace") if isinstance(raw, bytes) else json.dumps(raw, ensure_ascii=False,
                                                                                   default=str))
    return text.replace("\x00", "\ufffd")


def parse_ticket(raw: bytes | str | dict[str, Any], *, now: datetime | None = None) -> TicketIn | Rejection:
    """Validate one input; never raises for bad input."""
    payload_text = shown_payload(raw)
    if isinstance(raw, dict):
        data: Any = without_nul(raw)
    else:
        try:
            data = without_nul(json.loads(raw))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return Rejection(content_key(raw), f"not JSON: {exc}", payload_text[:2000])
    if not isinstance(data, dict):
        return Rejection(content_key(payload_text), f"not a JSON object but {type(data).__name__}",
                         payload_text[:2000])
    key = str(data.get("id")) if isinstance(data.get("id"), str | int) and str(data.get("id")) else \
        content_key(payload_text)
    try:
        ticket = TicketIn.model_validate(data)
    except ValidationError as exc:
        return Rejection(key[:MAX_ID_CHARS + 8], _explain(exc), payload_text[:2000])
    if ticket.received_at is None:
        ticket.received_at = (now or datetime.now(UTC)).astimezone(SHANGHAI)
    return ticket


_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3}-?)\d{3,4}(\d{4})(?!\d)")


def mask_phone(text: str | None) -> str | None:
    """Mask mobile and landline numbers: 13812345678 -> 138****5678."""
    if text is None:
        return None
    text = _PHONE.sub(r"\1****\2", text)
    return _LANDLINE.sub(r"\1****\2", text)
