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


@pytest.mark.parametrize(
    "args",
    [
        ("catalogue", "owner", "TST-001", "--where", "塘沽街道", "--at", "9999-12-31T23:00:00-10:00"),
        ("catalogue", "owner", "TST-001", "--where", "塘沽街道", "--at", "0001-01-01T01:00:00+14:00"),
        ("sla", "deadline", "--from", "9999-12-30", "--working-days", "5"),
        ("sla", "deadline", "--from", "2025-01-01", "--hours", "1e308"),
        ("sla", "deadline", "--from", "2025-01-01", "--hours", "inf"),
    ],
)
def test_out_of_range_times_are_messages_not_tracebacks(args: tuple[str, ...], tmp_path: Path) -> None:
    extra = ("--data-dir", str(fx.build(tmp_path))) if args[0] == "catalogue" else ()
    r = run(*args, *extra)
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)


def test_owner_does_not_list_the_receiving_body_as_its_own_co_owner(tmp_path: Path) -> None:
    # STREET leads with its delegating department as co-owner; street unknown -> that department receives it
    data = fx.build(tmp_path)
    doc = fx.read(data / "responsibility" / "BH.yaml")
    doc["assignments"].append({"id": "T-BH-9", "matters": ["TST-004"], "periods": [
        {"from": "2023-01-01", "holders": [{"holder": "STREET", "delegated_by": "BH-GA", "lead": True},
                                           {"agency": "BH-GA"}]}]})
    fx.write(data / "responsibility" / "BH.yaml", doc)
    r = run("catalogue", "owner", "TST-004", "--where", "滨海新区", "--at", "2025-01-02", "--json",
            "--data-dir", str(data))
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["agency"] == "BH-GA" and out["co_owners"] == []
