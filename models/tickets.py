"""What a ticket is at intake, and the pure validation that turns untrusted bytes into one.

The hotline platform, ``hotline ingest`` and ``POST /api/tickets`` all pass through
:func:`parse_ticket`, so a ticket is judged by the same rules whatever door it came in by.
A rejected input yields a :class:`Rejection` whose ``reason`` a person can act on.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import String

from models.ledger import Base, Ticket
from models.workcalendar import as_local, span_zh


def column_chars(table: type[Base]) -> dict[str, int]:
    """The character limit of each VARCHAR column of a ledger table (``Text`` has none), by column name.

    Validation takes its limits from here so that it cannot drift from the schema: on PostgreSQL one
    overlong value fails the write of its whole batch (DataError), where a rejection dead-letters only it.
    """
    return {c.name: c.type.length for c in table.__table__.columns
            if isinstance(c.type, String) and c.type.length is not None}


TICKET_CHARS = column_chars(Ticket)
SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_TEXT_CHARS = 20_000
MAX_ID_CHARS = TICKET_CHARS["id"]
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
    address: str | None = Field(default=None, max_length=TICKET_CHARS["address"])
    title: str | None = Field(default=None, max_length=TICKET_CHARS["title"])
    channel: str | None = Field(default=None, max_length=TICKET_CHARS["channel"])
    request_type: RequestType | None = None
    urgency: Urgency | None = None
    caller_phone: str | None = Field(default=None, max_length=TICKET_CHARS["caller_phone"])
    # 复杂件, as the hotline judged it at intake: longer time limits (sla.yaml's complex rules, e.g. 2 working
    # days to return, 15 to handle). Nothing else can tell; the router never guesses it.
    complex_case: bool = False

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

    @field_validator("received_at", mode="before")
    @classmethod
    def _offset_with_colon(cls, v: Any) -> Any:
        # PostgreSQL's text output and many exports write the offset as +08 or +0800, which ISO 8601 parsers
        # other than the standard library's refuse: "2025-03-01 08:05:00+08"
        if isinstance(v, str) and (m := _SHORT_OFFSET.search(v.strip())):
            return f"{v.strip()[:m.start(1)]}{m[1]}:{m[2] or '00'}"
        return v

    @field_validator("received_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return v
        if v.tzinfo is None:
            v = v.replace(tzinfo=SHANGHAI)  # the hotline's local time when no offset is given
        return plausible_time(v)

    @field_validator("complex_case", mode="before")
    @classmethod
    def _complex_as_written(cls, v: Any) -> Any:
        # what a platform's export or a CSV says, besides JSON's true/false and pydantic's 1/0, yes/no
        if v is None or (isinstance(v, str) and not v.strip()):
            return False
        if isinstance(v, str):
            return COMPLEX_WORDS.get(v.strip(), v)
        return v

    @field_validator("request_type", "urgency", "address", "title", "channel", "caller_phone", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v


_SHORT_OFFSET = re.compile(r"(?<=\d:\d\d)(?::\d\d(?:\.\d+)?)?([+-]\d{2})(\d{2})?$")  # 08:05[:00[.1]]+08 / +0800
COMPLEX_WORDS = {"是": True, "复杂": True, "复杂件": True, "否": False, "普通": False, "一般": False, "普通件": False}
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def plausible_time(v: datetime) -> datetime:
    """``v`` (aware) when a hotline could have stamped it; else ValueError. Deadlines are computed from
    these times, and year 9999 plus a few working days does not exist."""
    if not EARLIEST <= v <= LATEST:
        raise ValueError(f"is outside {EARLIEST.year}–{LATEST.year - 1}")
    return v


def received_in_future(received_at: datetime, now: datetime, max_skew: timedelta) -> str | None:
    """Why ``received_at`` cannot be when the hotline received the ticket, or None: it is later than ``now`` by
    more than ``max_skew`` (a platform's wrong clock, "2027" typed for "2026"). Its deadlines would run from a
    time to come, so it could never be overdue, and the supervisors' charts would count it on a future day.
    A stamp ahead by no more than ``max_skew`` is a clock slightly ahead of ours: accepted as it is."""
    if received_at <= now + max_skew:
        return None
    at, current = as_local(received_at), as_local(now)
    return (f"received_at：受理时间晚于当前时间（受理时间 {at:%Y-%m-%d %H:%M}，当前 {current:%Y-%m-%d %H:%M}，"
            f"允许误差 {span_zh(max_skew)}），请核对年份和平台的系统时间 / received_at: {at.isoformat()} is later "
            f"than now ({current.isoformat()}) by more than the allowed clock skew "
            f"({max_skew.total_seconds():g} s)")


def hotline_time(moment: datetime) -> datetime:
    """``moment`` as the hotline means it, in Asia/Shanghai: a naive time is Shanghai wall-clock time;
    ValueError when no hotline could have stamped it (:func:`plausible_time`). Checked before converting:
    year 9999 at -10:00 is past datetime.max in Shanghai (OverflowError)."""
    return as_local(plausible_time(moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)))


@dataclass(frozen=True)
class Rejection:
    """Why an input was not accepted; ``key`` is the ticket id when known, else a content hash."""

    key: str
    reason: str
    payload: str


def content_key(raw: bytes | str) -> str:
    data = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
    return "sha1:" + hashlib.sha1(data).hexdigest()


# What each check says to the hotline staff who read a rejection (ingest's report, the console's 400, the
# rejections recorded in the ledger), by pydantic's error type and by our validators' own messages
_SAID_BY_TYPE = {
    "missing": "缺少此字段", "string_type": "须为文本", "bool_parsing": "须为是/否（true/false）",
    "bool_type": "须为是/否（true/false）", "datetime_parsing": "不是有效的时间（ISO 8601，如 2026-12-04T09:30:00+08:00）",
    "datetime_from_date_parsing": "不是有效的时间（ISO 8601，如 2026-12-04T09:30:00+08:00）",
    "datetime_type": "不是有效的时间（ISO 8601，如 2026-12-04T09:30:00+08:00）", "model_type": "须为 JSON 对象",
    "dict_type": "须为 JSON 对象",
}
_SAID_BY_MESSAGE = {
    "is blank": "不能只有空白",
    "may contain only letters, digits and _ . : - (and start with a letter or digit)":
        "只能由字母、数字和 _ . : - 组成（以字母或数字开头）",
    f"is outside {EARLIEST.year}–{LATEST.year - 1}": f"不在 {EARLIEST.year}–{LATEST.year - 1} 年之间",
}


def _said_in_chinese(e: Any) -> str:
    kind, ctx = e["type"], e.get("ctx") or {}
    if kind == "string_too_short":
        return "不能为空" if ctx.get("min_length") == 1 else f"至少 {ctx.get('min_length')} 个字符"
    if kind == "string_too_long":
        return f"超长（最多 {ctx.get('max_length')} 个字符）"
    if kind == "enum":
        listed = str(ctx.get("expected", "")).replace("'", "").replace(" or ", "、").replace(", ", "、")
        return f"须为 {listed} 之一"
    if kind == "value_error":
        return _SAID_BY_MESSAGE.get(e["msg"].removeprefix("Value error, "), "取值无效")
    return _SAID_BY_TYPE.get(kind, "取值无效")


def _explain(err: ValidationError) -> str:
    """Each wrong field in Chinese, then pydantic's English after " / " (for the platform's developers and the
    log): "text：缺少此字段 / text: Field required". Starts with the field's name, as it always has."""
    said, english = [], []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "ticket"
        said.append(f"{field}：{_said_in_chinese(e)}")
        english.append(f"{field}: {e['msg'].removeprefix('Value error, ')}")
    return f"{'；'.join(said)} / {'; '.join(english)}"


# A lone UTF-16 surrogate: "\ud800" is valid JSON, but the string has no UTF-8 form, so neither the ledger
# (SQLite, PostgreSQL) nor a Kafka key can hold it
_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(value: Any) -> Any:
    """``value`` with every string in it (keys too) storable: NULs removed, lone surrogates replaced.

    JSON allows ``\\u0000`` and a lone ``\\ud800`` inside strings; PostgreSQL text and JSONB refuse the first,
    and the second has no UTF-8 form at all (neither ledger nor topic can hold it): one such character in a
    message would make every write of it, and of its batch, fail. Neither carries meaning in a citizen's
    message, so a NUL goes and a surrogate becomes U+FFFD (the ticket is kept, with a visible mark).
    """
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value.replace("\x00", "")) if not value.isascii() or "\x00" in value \
            else value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def storable_text(value: str) -> str:
    """``value`` with NULs and lone surrogates replaced (U+FFFD): storable in the ledger and on a topic."""
    return _SURROGATE.sub("\ufffd", value.replace("\x00", "\ufffd"))


def shown_payload(raw: bytes | str | dict[str, Any]) -> str:
    """The input as text for a rejection record: undecodable bytes, NULs and lone surrogates replaced, never
    raising."""
    try:
        text = raw if isinstance(raw, str) else (
            raw.decode("utf-8", "replace") if isinstance(raw, bytes) else json.dumps(raw, ensure_ascii=False,
                                                                                       default=str))
    except RecursionError:  # a value nested hundreds deep: too deep to write out, and nothing to read in it
        return "(a JSON value nested too deeply to show)"
    except ValueError:  # an int of more than 4300 digits has no decimal form (sys.get_int_max_str_digits)
        return "(a JSON value with a number too long to show)"
    return storable_text(text)


def _rejection_key(data: dict[str, Any], payload_text: str) -> str:
    """The ticket's id as the rejection's key when it has a usable one (a string or an int), else the content
    hash; storable whatever was sent (a lone surrogate in an id failed the write of the whole batch)."""
    v = data.get("id")
    if isinstance(v, str) and v:
        return storable_text(v)[:MAX_ID_CHARS + 8]
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() <= 256:  # str() of a huge int raises
        return str(v)[:MAX_ID_CHARS + 8]
    return content_key(payload_text)


def parse_ticket(raw: bytes | str | dict[str, Any], *, now: datetime | None = None,
                 max_skew: timedelta | None = None) -> TicketIn | Rejection:
    """Validate one input; never raises for bad input. ``now`` stamps a ticket that has no ``received_at``
    (default: the wall clock); with ``max_skew`` too, a ``received_at`` later than ``now`` + ``max_skew`` is
    rejected (:func:`received_in_future`). Without them no "now" is at hand (tests, tools reading old files)."""
    payload_text = shown_payload(raw)
    try:
        data: Any = storable(raw if isinstance(raw, dict) else json.loads(raw))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Rejection(content_key(raw), f"not JSON: {exc}", payload_text[:2000])
    except RecursionError:  # [[[[...]]]] thousands deep: one bad message must not fail its whole batch
        reason = "a value is nested too deeply" if isinstance(raw, dict) else "not JSON: nested too deeply"
        return Rejection(content_key(payload_text), reason, payload_text[:2000])
    except ValueError as exc:  # json raises a bare ValueError for an int of more than 4300 digits: as above
        return Rejection(content_key(payload_text), f"not usable JSON: {exc}", payload_text[:2000])
    if not isinstance(data, dict):
        return Rejection(content_key(payload_text), f"not a JSON object but {type(data).__name__}",
                         payload_text[:2000])
    key = _rejection_key(data, payload_text)
    try:
        ticket = TicketIn.model_validate(data)
    except ValidationError as exc:
        return Rejection(key, _explain(exc), payload_text[:2000])
    if ticket.received_at is None:
        ticket.received_at = (now or datetime.now(UTC)).astimezone(SHANGHAI)
    elif now is not None and max_skew is not None and (reason := received_in_future(ticket.received_at, now,
                                                                                      max_skew)):
        return Rejection(key, reason, payload_text[:2000])
    return ticket


# In free text: a mobile or landline number, optionally with a country code (+86, 0086, 86), an area code in
# parentheses, and single spaces or dashes between the groups. Only the middle digits are masked, and a number
# glued to more digits (a work-order number, an amount) is left alone.
_PHONE = re.compile(r"(?<!\d)((?:(?:\+|00)86[ -]?|86)?1[3-9]\d[ -]?)\d{4}([ -]?\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)((?:(?:\+|00)86[ -]?\(?0?|\(0|0)\d{2,3}\)?[ -]?)\d{3,4}([ -]?\d{4})(?!\d)")
# A value that is nothing but a number as people type one: digits, spaces, dashes, dots, parentheses, a "+".
_NUMBER_SHAPED = re.compile(r"\+?[\d\s().\-]+")
MIN_PHONE_DIGITS = 7  # as models.supervision.linking.normalise_phone: fewer digits are no phone number


def phone_digits(number: str) -> str:
    """The digits of a number-shaped value (full-width ones folded) without the country code (+86, 0086; or
    86 before an 11-digit number), with a landline's trunk 0 restored after "+86"."""
    number = unicodedata.normalize("NFKC", number)
    digits = re.sub(r"\D", "", number)
    if digits.startswith("0086") or (number.lstrip().startswith("+") and digits.startswith("86")):
        digits = digits.removeprefix("00")[2:]
        if digits and digits[0] not in "01":  # +86 22 2580 1234 is 022-25801234 at home
            digits = "0" + digits
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits


def _mask_number(number: str) -> str:
    """A number-shaped value in a normalised, masked form: 138****5678, 022-****1234, else ****1234."""
    digits = phone_digits(number)
    if number.startswith("+") and not number.removeprefix("+").lstrip().startswith("86"):
        return f"****{digits[-4:]}"  # a foreign number: not to be shown in a Chinese number's shape
    if len(digits) == 11 and re.match(r"1[3-9]", digits):
        return f"{digits[:3]}****{digits[-4:]}"
    if digits.startswith("0") and 10 <= len(digits) <= 12:
        area = 3 if digits[1] in "12" else 4  # 010, 02x; else 0xxx
        if 7 <= len(digits) - area <= 8:
            return f"{digits[:area]}-****{digits[-4:]}"
    return f"****{digits[-4:]}"  # a local landline without area code, an extension, a foreign number ...


def _number_shaped(text: str) -> str | None:
    """``text`` (NFKC: full-width digits too) when it is a number of 7+ digits and nothing else."""
    shaped = unicodedata.normalize("NFKC", text).strip()
    if _NUMBER_SHAPED.fullmatch(shaped) and sum(c.isdigit() for c in shaped) >= MIN_PHONE_DIGITS:
        return shaped
    return None


def mask_phone(text: str | None) -> str | None:
    """Mask mobile and landline numbers: 13812345678 -> 138****5678.

    A value that is only a number (a caller_phone field, in whatever notation) is normalised and masked
    whole; in free text, the numbers in it are masked in place.
    """
    if text is None:
        return None
    if (shaped := _number_shaped(text)) is not None:
        return _mask_number(shaped)
    return _mask_in_text(_LANDLINE, _mask_in_text(_PHONE, text))


# Full-width digits and separators, as a Chinese IME types them, folded one character for one, so that a
# match found in the folded text has the same positions in the text as written.
_FULL_WIDTH = str.maketrans("０１２３４５６７８９＋－（）\u3000", "0123456789+-() ")


def _mask_in_text(pattern: re.Pattern[str], text: str) -> str:
    """The middle digits of each ``pattern`` match (between its groups 1 and 2) replaced by ****; matched on
    the text with full-width digits folded, the rest left as written."""
    out, last = [], 0
    for m in pattern.finditer(text.translate(_FULL_WIDTH)):
        out += [text[last:m.end(1)], "****"]
        last = m.start(2)
    return "".join(out) + text[last:]


def mask_caller_phone(phone: str | None) -> str | None:
    """The caller_phone field as shown to anyone but the handling agency: never a full number.

    Like :func:`mask_phone`, and conservative with what is not a phone number at all: a value with 7 or more
    digits shows only its last four, whatever else is in it ("张先生 分机12345678" -> "张先生 分机****5678").
    """
    if phone is None:
        return None
    return _NUMBER_RUN.sub(_hide_long_run, mask_phone(phone) or "")  # what mask_phone left of 7+ digits


# The free-text fields of a ticket a caller may write a number into.
TICKET_TEXT_FIELDS = ("title", "text")


def shown_text(value: Any, *, reveal: bool) -> Any:
    """Free text (a ticket's text, a note of an event) as shown to a user: the phone numbers in it masked unless
    ``reveal`` (the handling agency); anything but a string as it is."""
    return mask_phone(value) if isinstance(value, str) and not reveal else value


def shown_ticket(ticket: Mapping[str, Any], *, reveal: bool) -> dict[str, Any]:
    """A ticket's fields (a dict, or a queue message) as shown to a user: only the handling agency (``reveal``)
    sees the caller's full number; for everyone else ``caller_phone`` goes through :func:`mask_caller_phone`
    and the numbers written in the title and text are masked. Other fields, and non-string values, as given.
    The one rule for the console's pages and API and the dispatchers' queue."""
    out = dict(ticket)
    if reveal:
        return out
    for name in TICKET_TEXT_FIELDS:
        if name in out:
            out[name] = shown_text(out[name], reveal=False)
    if isinstance(out.get("caller_phone"), str):
        out["caller_phone"] = mask_caller_phone(out["caller_phone"])
    return out


_NUMBER_RUN = re.compile(r"\d[\d\s().\-]*\d")  # digits, maybe with separators: one number, as written


def _hide_long_run(m: re.Match[str]) -> str:
    """A run of 7+ digits that free-text masking left whole, with all but its last four digits hidden."""
    run = m.group()
    digits = [i for i, c in enumerate(run) if c.isdigit()]
    if len(digits) < MIN_PHONE_DIGITS:
        return run
    hidden = set(digits[:-4])
    return "".join("*" if i in hidden else c for i, c in enumerate(run))
