"""``hotline classify``'s input handling without a model: every bad line of ``--jsonl`` gets an error
line and the stream goes on (the lines waiting in its batch are not lost), and a bad ``--at`` is a
message with exit code 2. The router is a stand-in that records what it was asked."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from classifier.router import Router, RouteRequest
from streams.cli import app
from streams.cli.classify import _parse_time

runner = CliRunner()
OVERFLOWING = "9999-12-31T23:00:00-10:00"  # past datetime.max once converted to Shanghai time


class FakeRouter:
    def __init__(self) -> None:
        self.asked: list[RouteRequest] = []

    def route_many(self, requests: list[RouteRequest]) -> list[Any]:
        self.asked.extend(requests)
        return [SimpleNamespace(matter="GA-001", matter_name="噪声扰民", domain="环境保护", agency="BH-GA",
                                agency_name="公安", agency_kind="public_security", jurisdiction="BH", street=None,
                                address_resolved=False, confidence=0.9, decision="auto", reason="ok",
                                alternatives=[], basis=None, model_version="v")
                for _ in requests]

    def route(self, *args: Any) -> Any:
        raise AssertionError("a bad --at must not reach the router")


@pytest.fixture
def fake_router(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeRouter:
    router = FakeRouter()
    monkeypatch.setattr(Router, "load", classmethod(lambda cls, settings: router))
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "var"))
    return router


def _stream(lines: list[bytes], *extra: str) -> list[dict[str, Any]]:
    result = runner.invoke(app, ["classify", "--jsonl", *extra], input=b"\n".join(lines) + b"\n")
    assert result.exit_code == 0, result.output
    assert result.exception is None
    return [json.loads(x) for x in result.stdout_bytes.decode("utf-8").splitlines()]


def test_every_bad_line_gets_an_error_line_and_the_batch_survives(fake_router: FakeRouter) -> None:
    good = json.dumps({"id": "ok", "text": "楼下噪音扰民"}, ensure_ascii=False).encode()
    lines = [
        good,
        b"[" * 200_000,  # RecursionError in the JSON decoder
        b'{"id": "bad-byte", "text": "\xff\xfe"}',  # not UTF-8: was raised by the stdin loop itself
        json.dumps({"id": "late", "text": "噪音", "received_at": OVERFLOWING}).encode(),  # OverflowError
        json.dumps({"id": "early", "text": "噪音", "received_at": "1999-12-31T00:00:00"}).encode(),
        json.dumps({"id": "when", "text": "噪音", "received_at": "yesterday"}).encode(),
        b'{"id": 1' + b"9" * 5000 + b', "text": "x"}',  # int too long to convert: ValueError
        good,
    ]
    out = _stream(lines, "--batch", "100")
    assert len(out) == len(lines)
    assert out[0]["id"] == "ok" and "error" not in out[0] and out[-1]["id"] == "ok" and "error" not in out[-1]
    assert out[1] == {"id": None, "error": "line 2: not JSON (nested too deeply)"}
    assert out[2]["id"] is None and out[2]["error"].startswith("line 3: not UTF-8 text")
    assert out[3] == {"id": "late", "error": "line 4: 'received_at' is outside 2000–2099"}
    assert out[4] == {"id": "early", "error": "line 5: 'received_at' is outside 2000–2099"}
    assert out[5] == {"id": "when", "error": "line 6: 'received_at' is not an ISO 8601 time"}
    assert out[6]["error"].startswith("line 7: ")
    assert len(fake_router.asked) == 2


def test_a_lone_surrogate_comes_back_escaped_and_valid(fake_router: FakeRouter) -> None:
    # "\ud800" is valid JSON but has no UTF-8 form: writing it raised UnicodeEncodeError and lost the batch
    lines = ['{"id": "a\\ud800", "text": "\\udc00噪音"}'.encode(), b'{"id": "b", "text": "x"}']
    result = runner.invoke(app, ["classify", "--jsonl"], input=b"\n".join(lines) + b"\n")
    assert result.exit_code == 0, result.output
    raw = result.stdout_bytes.splitlines()
    assert len(raw) == 2 and b"\\ud800" in raw[0]
    out = [json.loads(x) for x in raw]
    assert out[0]["id"] == "a\ud800" and out[0]["matter"] == "GA-001" and out[1]["id"] == "b"
    assert fake_router.asked[0].text == "\udc00噪音"


def test_an_id_too_deep_to_write_back_is_an_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.cli.classify import _write_line  # new with the fix

    deep: list[Any] = []
    for _ in range(100_000):  # deeper than the JSON encoder goes
        deep = [deep]
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", out)
    _write_line(7, {"id": deep, "error": "line 7: 'text' must be a string"})
    _write_line(8, {"id": "b\ud800", "error": "line 8: 'text' must be a string"})
    out.flush()
    lines = [json.loads(x) for x in out.buffer.getvalue().splitlines()]  # type: ignore[attr-defined]
    assert lines == [{"id": None, "error": "line 7: the id cannot be written back (nested too deeply)"},
                     {"id": "b\ud800", "error": "line 8: 'text' must be a string"}]


def test_deeply_nested_ids_are_errors_not_the_end_of_the_stream(fake_router: FakeRouter) -> None:
    deep = b'{"id": ' + b"[" * 5000 + b"]" * 5000 + b', "text": "x"}'
    out = _stream([deep, b'{"id": "b", "text": "x"}'])
    assert len(out) == 2 and out[0]["error"] == "line 1: not JSON (nested too deeply)" and out[1]["id"] == "b"


def test_a_bom_on_the_first_line_and_crlf_are_accepted(fake_router: FakeRouter) -> None:
    out = _stream([b'\xef\xbb\xbf{"id": "a", "text": "x"}\r', b'{"id": "b", "text": "y"}\r'])
    assert [o["id"] for o in out] == ["a", "b"] and not any("error" in o for o in out)


def test_a_bad_at_is_a_message_and_exit_2(fake_router: FakeRouter) -> None:
    for at, said in ((OVERFLOWING, "is outside 2000–2099"), ("yesterday", "is not an ISO 8601 time")):
        result = runner.invoke(app, ["classify", "噪音扰民", "--at", at])
        assert result.exit_code == 2, result.output
        assert f"--at '{at}' {said}" in result.output and "Traceback" not in result.output
        assert not isinstance(result.exception, (OverflowError, ValueError))


def test_parse_time_is_shanghai_time_and_checks_before_converting() -> None:
    assert _parse_time(None) is None and _parse_time("") is None
    assert _parse_time("2025-03-01T08:00:00").isoformat() == "2025-03-01T08:00:00+08:00"
    assert _parse_time("2025-03-01T00:00:00Z").isoformat() == "2025-03-01T08:00:00+08:00"
    for bad in (OVERFLOWING, "0001-01-01T00:00:00+14:00", "2100-01-02T00:00:00"):
        with pytest.raises(ValueError, match="outside"):
            _parse_time(bad)
