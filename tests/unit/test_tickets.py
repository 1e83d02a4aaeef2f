"""Intake validation: every bad input becomes a Rejection with a reason, never an exception."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from models.tickets import Rejection, TicketIn, mask_phone, parse_ticket


def test_minimal_ticket_gets_defaults():
    t = parse_ticket(json.dumps({"id": "12345-001", "text": "路灯不亮"}).encode())
    assert isinstance(t, TicketIn)
    assert t.received_at is not None and t.received_at.utcoffset() is not None


def test_naive_received_at_is_shanghai_time():
    t = parse_ticket({"id": "A1", "text": "x", "received_at": "2025-09-28T09:30:00"})
    assert isinstance(t, TicketIn)
    assert t.received_at.isoformat() == "2025-09-28T09:30:00+08:00"


def test_numeric_id_and_enums():
    t = parse_ticket({"id": 20251001, "text": "停水了", "urgency": "水电气热", "request_type": "求助"})
    assert isinstance(t, TicketIn) and t.id == "20251001" and t.urgency == "水电气热"


@pytest.mark.parametrize("raw,reason", [
    (b"\xff\xfe", "not JSON"),
    (b"", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'"just a string"', "not a JSON object"),
    (b'{"text": "no id"}', "id: Field required"),
    (b'{"id": "A1"}', "text: Field required"),
    (b'{"id": "A1", "text": "   "}', "text:"),
    (b'{"id": "has space", "text": "x"}', "id: may contain only"),
    (b'{"id": "A1", "text": "x", "urgency": "urgent"}', "urgency:"),
    (b'{"id": "A1", "text": "x", "received_at": "yesterday"}', "received_at:"),
    (b'{"id": true, "text": "x"}', "id:"),
])
def test_bad_inputs_are_rejected_with_reason(raw, reason):
    r = parse_ticket(raw)
    assert isinstance(r, Rejection)
    assert reason in r.reason
    assert r.key


def test_huge_text_is_rejected_not_truncated():
    r = parse_ticket({"id": "A1", "text": "扰" * 50_000})
    assert isinstance(r, Rejection) and "text" in r.reason


def test_rejection_key_is_id_when_known_else_hash():
    assert parse_ticket(b'{"id": "K9"}').key == "K9"
    k = parse_ticket(b"garbage").key
    assert k.startswith("sha1:") and k == parse_ticket(b"garbage").key


def test_mask_phone():
    assert mask_phone("我的电话13912345678") == "我的电话139****5678"
    assert mask_phone("座机022-66881234") == "座机022-****1234"
    assert mask_phone("工单号20251001123456789") == "工单号20251001123456789"
    assert mask_phone(None) is None


@pytest.mark.parametrize("value,expected", [(True, True), ("是", True), ("复杂件", True), ("1", True), (1, True),
                                            ("否", False), ("普通", False), ("", False), (None, False),
                                            ("false", False)])
def test_complex_case_as_platforms_write_it(value, expected):
    t = parse_ticket(json.dumps({"id": "T1", "text": "情况复杂的拆迁补偿问题", "complex_case": value}))
    assert isinstance(t, TicketIn) and t.complex_case is expected
    assert parse_ticket(json.dumps({"id": "T1", "text": "x"})).complex_case is False  # type: ignore[union-attr]


def test_complex_case_that_says_neither_is_rejected_with_the_field():
    r = parse_ticket(json.dumps({"id": "T1", "text": "拆迁补偿", "complex_case": "也许"}))
    assert isinstance(r, Rejection) and "complex_case" in r.reason


@pytest.mark.parametrize("written,expected", [
    ("2025-03-01 08:05:00+08", "2025-03-01T08:05:00+08:00"),  # PostgreSQL's text output
    ("2025-03-01 08:05:00.5+0800", "2025-03-01T08:05:00.500000+08:00"),
    ("2025-03-01T08:05-05", "2025-03-01T08:05:00-05:00"),
    ("2025-03-01", "2025-03-01T00:00:00+08:00"),  # a date, not a date with an offset of -01
    ("2025-03-01T08:05:00+08:30", "2025-03-01T08:05:00+08:30"),
])
def test_received_at_offsets_as_exports_write_them(written, expected):
    t = parse_ticket(json.dumps({"id": "T1", "text": "路灯不亮", "received_at": written}))
    assert isinstance(t, TicketIn) and t.received_at == datetime.fromisoformat(expected)
    assert t.received_at.utcoffset() == datetime.fromisoformat(expected).utcoffset()


def test_unknown_fields_ignored():
    t = parse_ticket({"id": "A1", "text": "x", "extra": {"nested": 1}, "received_at": datetime(2025, 1, 1).isoformat()})
    assert isinstance(t, TicketIn)


@pytest.mark.parametrize(("raw", "said"), [
    ('{"text": "没有编号"}', "id：缺少此字段 / id: Field required"),
    ('{"id": "A 1", "text": "  "}', "id：只能由字母、数字和 _ . : - 组成（以字母或数字开头）；text：不能为空 / "),
    ('{"id": "A1", "text": "t", "urgency": "很急"}', "urgency：须为 紧急、水电气热、一般 之一 / urgency: Input should be"),
    ('{"id": "A1", "text": "t", "received_at": "1900-01-01T00:00:00"}', "received_at：不在 2000–2099 年之间 / "),
    ('{"id": "A1", "text": "t", "received_at": "yesterday"}', "received_at：不是有效的时间"),
])
def test_a_rejected_tickets_reason_reads_in_chinese_first(raw: str, said: str) -> None:
    # the hotline's staff read these in ingest's report, the console's 400 and the ledger's rejections;
    # the English after " / " stays for the platform's developers and the log
    rejected = parse_ticket(raw)
    assert isinstance(rejected, Rejection) and rejected.reason.startswith(said), rejected
