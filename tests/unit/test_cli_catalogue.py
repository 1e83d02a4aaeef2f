"""The ``catalogue`` and ``sla`` command groups through the real Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streams.cli import app
from tests.unit import domain_fixtures as fx

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_check_passes_on_shipped_data() -> None:
    r = run("catalogue", "check")
    assert r.exit_code == 0, r.output
    assert "ok:" in r.stdout


def test_check_fails_with_messages_not_tracebacks(tmp_path: Path) -> None:
    data = fx.build(tmp_path)
    (data / "responsibility" / "DL.yaml").write_text(
        "jurisdiction: DL\nby_kind: {market_regulation: [\n", encoding="utf-8"
    )
    doc = fx.read(data / "responsibility" / "BH.yaml")
    doc["by_kind"]["market_regulation"] = "BH-GHOST"
    fx.write(data / "responsibility" / "BH.yaml", doc)
    r = run("catalogue", "check", "--data-dir", str(data))
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    assert "responsibility/DL.yaml: line 3" in r.output
    assert "responsibility/BH.yaml: by_kind.market_regulation.holder: 未知单位 BH-GHOST" in r.output


def test_stats_json() -> None:
    r = run("catalogue", "stats", "--json")
    assert r.exit_code == 0, r.output
    figures = json.loads(r.stdout)
    for key in (
        "jurisdictions",
        "agencies",
        "agency_kinds",
        "matters",
        "responsibility_items",
        "calendar_years",
    ):
        assert key in figures
    assert figures["jurisdictions"] == 3 and figures["agency_kinds"] == 25
    assert figures["calendar_years"] == [2023, 2024, 2025, 2026]


def test_owner_prints_agency_item_and_basis(tmp_path: Path) -> None:
    data = fx.build(tmp_path)
    r = run(
        "catalogue",
        "owner",
        "TST-001",
        "--where",
        "滨海新区新港街道某里",
        "--at",
        "2025-08-24",
        "--data-dir",
        str(data),
    )
    assert r.exit_code == 0, r.output
    assert "BH-JD-XG" in r.stdout and "《城市市容和环境卫生管理条例》第三十六条" in r.stdout
    r = run(
        "catalogue",
        "owner",
        "TST-001",
        "--where",
        "滨海新区新港街道某里",
        "--at",
        "2025-08-25",
        "--json",
        "--data-dir",
        str(data),
    )
    out = json.loads(r.stdout)
    assert out["agency"] == "BH-CGW" and out["item"]["type"] == "行政处罚" and out["address"]["resolved"]


def test_owner_unknown_address_uses_default_jurisdiction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_DEFAULT_JURISDICTION", "DL")
    data = fx.build(tmp_path)
    r = run(
        "catalogue",
        "owner",
        "TST-003",
        "--where",
        "某小区",
        "--at",
        "2025-01-02",
        "--json",
        "--data-dir",
        str(data),
    )
    out = json.loads(r.stdout)
    assert out["jurisdiction"] == "DL" and out["agency"] == "DL-SCJG" and out["address"]["defaulted"]


def test_owner_unknown_matter(tmp_path: Path) -> None:
    r = run("catalogue", "owner", "ZZ-404", "--where", "塘沽", "--data-dir", str(fx.build(tmp_path)))
    assert r.exit_code == 1 and "unknown matter" in r.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--from", "2025-09-26T10:00:00", "--working-days", "3"), "2025-09-30T10:00:00+08:00"),
        (("--from", "2024-02-08T09:30", "--working-days", "2"), "2024-02-18T09:30:00+08:00"),
        (("--from", "2025-09-30T02:00:00Z", "--working-days", "1"), "2025-10-09T10:00:00+08:00"),
        (("--from", "2025-09-30T22:00:00+08:00", "--hours", "24"), "2025-10-01T22:00:00+08:00"),
        (("--from", "2025-09-30T22:00:00", "--hours", "0.5"), "2025-09-30T22:30:00+08:00"),
    ],
)
def test_sla_deadline(args: tuple[str, ...], expected: str) -> None:
    r = run("sla", "deadline", *args)
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == expected


def test_sla_deadline_needs_exactly_one_clock() -> None:
    assert run("sla", "deadline", "--from", "2025-01-01T00:00").exit_code == 2
    assert (
        run("sla", "deadline", "--from", "2025-01-01", "--hours", "1", "--working-days", "1").exit_code == 2
    )
    r = run("sla", "deadline", "--from", "yesterday", "--hours", "1")
    assert r.exit_code == 2 and "ISO 8601" in r.output
