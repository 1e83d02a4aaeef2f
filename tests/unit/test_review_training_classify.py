"""``hotline classify --jsonl`` writes strict JSON: an input line with NaN or Infinity (Python's extensions,
which its json module reads) gets an error line instead of an echo that jq or JavaScript cannot read."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from classifier.router import Router, RouteRequest
from streams.cli import app


class FakeRouter:
    def route_many(self, requests: list[RouteRequest]) -> list[Any]:
        return [SimpleNamespace(matter="GA-001", matter_name="噪声扰民", domain="环境保护", agency="BH-GA",
                                agency_name="公安", agency_kind="public_security", jurisdiction="BH", street=None,
                                address_resolved=False, confidence=0.9, decision="auto", reason="ok",
                                alternatives=[], basis=None, model_version="v")
                for _ in requests]


@pytest.fixture(autouse=True)
def fake_router(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(Router, "load", classmethod(lambda cls, settings: FakeRouter()))
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "var"))


def test_nan_and_infinite_ids_get_error_lines_and_every_line_is_strict_json() -> None:
    lines = [b'{"id": NaN, "text": "x"}', b'{"id": 1e999, "text": "x"}', b'{"id": [-Infinity], "text": "x"}',
             b'{"id": 1.5, "text": "x"}']
    result = CliRunner().invoke(app, ["classify", "--jsonl"], input=b"\n".join(lines) + b"\n")
    assert result.exit_code == 0, result.output

    def strict(token: str) -> Any:
        raise AssertionError(f"{token} in the output")

    out = [json.loads(x, parse_constant=strict) for x in result.stdout_bytes.decode("utf-8").splitlines()]
    assert [o["id"] for o in out] == [None, None, None, 1.5]
    assert out[0]["error"] == "line 1: not JSON (NaN is not a JSON number)"
    assert out[1]["error"] == "line 2: 1e999 is too large a number"
    assert out[2]["error"] == "line 3: not JSON (-Infinity is not a JSON number)"
    assert out[3]["matter"] == "GA-001"
