"""Ownership over time: delegation to 街镇 and the 2025 take-back, TEDA vs 滨海新区, co-owners."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from config.catalogue import build_catalogue, load_catalogue
from models.directory import Catalogue
from models.domain import STREET_HOLDER, Power, ResponsibilityItem
from models.ownership import NoOwner, segments
from tests.unit import domain_fixtures as fx


@pytest.fixture(scope="module")
def fixture_cat(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    data = fx.build(tmp_path_factory.mktemp("domain"))
    cat, problems = build_catalogue(data)
    assert [p for p in problems if p.severity == "error"] == []
    assert cat is not None
    return cat


@pytest.fixture(scope="module")
def shipped() -> Catalogue:
    return load_catalogue()


def test_delegated_power_goes_to_the_street_until_the_take_back(fixture_cat: Catalogue) -> None:
    before = fixture_cat.owner("TST-001", "BH", date(2025, 8, 24), street="BH-XG")
    assert before.agency.code == "BH-JD-XG"
    assert before.agency.kind == "street_town"
    assert before.item.holder == STREET_HOLDER
    assert before.item.effective_to == date(2025, 8, 24)
    assert before.note == "由属地街镇承办：新港街道"

    after = fixture_cat.owner("TST-001", "BH", date(2025, 8, 25), street="BH-XG")
    assert after.agency.code == "BH-CGW"
    assert after.item.effective_from == date(2025, 8, 25)
    assert after.item.effective_to is None
    assert after.basis == "《城市市容和环境卫生管理条例》第三十六条"


def test_delegated_power_without_street_goes_to_the_delegating_department(fixture_cat: Catalogue) -> None:
    o = fixture_cat.owner("TST-001", "BH", date(2024, 3, 1))
    assert o.agency.code == "BH-CGW"
    assert o.item.holder == STREET_HOLDER and o.item.delegated_by == "BH-CGW"
    assert "未能确定街镇" in o.note


def test_single_street_jurisdiction_needs_no_street(fixture_cat: Catalogue, tmp_path: Path) -> None:
    # 经开区 has one 街镇 (泰达街道): a STREET holder there is known without an address
    o = fixture_cat.owner("TST-001", "TEDA", date(2024, 1, 1))
    assert o.agency.code == "TEDA-CGJ"  # not delegated in TEDA at all
    data = fx.build(tmp_path)
    doc = fx.read(data / "responsibility" / "TEDA.yaml")
    doc["by_kind"]["urban_management"] = {"holder": "STREET", "delegated_by": "TEDA-CGJ"}
    fx.write(data / "responsibility" / "TEDA.yaml", doc)
    cat, _ = build_catalogue(data)
    assert cat.owner("TST-001", "TEDA", date(2024, 1, 1)).agency.code == "TEDA-JD-TD"


def test_datetime_is_judged_by_its_shanghai_date(fixture_cat: Catalogue) -> None:
    # 2025-08-24 17:00 UTC is already 2025-08-25 01:00 in Shanghai: after the take-back
    o = fixture_cat.owner("TST-001", "BH", datetime(2025, 8, 24, 17, 0, tzinfo=UTC), street="BH-XG")
    assert o.agency.code == "BH-CGW"


def test_teda_and_bh_own_the_same_matter_differently(fixture_cat: Catalogue) -> None:
    day = date(2024, 6, 1)
    assert fixture_cat.owner("TST-003", "BH", day).agency.code == "BH-SCJG"
    assert fixture_cat.owner("TST-003", "TEDA", day).agency.code == "TEDA-SCJG"
    assert fixture_cat.owner("TST-003", "DL", day).agency.code == "DL-SCJG"
    # street delegation is a 滨海新区 rule: TEDA's own 城市管理局 keeps the matter
    assert fixture_cat.owner("TST-001", "TEDA", day, street="TEDA-TD").agency.code == "TEDA-CGJ"


def test_teda_without_police_falls_back_to_the_bh_branch(fixture_cat: Catalogue) -> None:
    o = fixture_cat.owner("TST-004", "TEDA", date(2025, 1, 1))
    assert o.agency.code == "BH-GA"
    assert o.agency.jurisdiction == "BH"


def test_co_owned_matter_names_the_lead(fixture_cat: Catalogue) -> None:
    o = fixture_cat.owner("TST-002", "BH", date(2025, 1, 1))
    assert o.agency.code == "BH-STHJ"
    assert o.lead is True
    assert [a.code for a in o.co_owners] == ["BH-CGW"]
    assert len(o.items) == 2  # both powers of the matter, held by the lead
    assert o.basis == "《中华人民共和国大气污染防治法》第一百一十八条"
    # in 东丽区 there is no co-ownership in the fixture: the default holder alone
    d = fixture_cat.owner("TST-002", "DL", date(2025, 1, 1))
    assert (d.agency.code, d.lead, d.co_owners) == ("DL-STHJ", False, ())


def test_street_of_another_jurisdiction_is_ignored(fixture_cat: Catalogue) -> None:
    o = fixture_cat.owner("TST-001", "BH", date(2024, 1, 1), street="DL-ZGZ")
    assert o.agency.code == "BH-CGW" and o.street is None


def test_no_owner_raises(fixture_cat: Catalogue) -> None:
    with pytest.raises(NoOwner):
        fixture_cat.owner("TST-999", "BH", date(2024, 1, 1))
    with pytest.raises(NoOwner):
        fixture_cat.owner("TST-001", "XX", date(2024, 1, 1))
    with pytest.raises(NoOwner):
        fixture_cat.owner("TST-003", "BH", date(2022, 12, 31))  # before the list is in force


def test_place_uses_the_default_jurisdiction_for_unknown_addresses(fixture_cat: Catalogue) -> None:
    p = fixture_cat.place("TST-003", "某小区3号楼", date(2025, 1, 1), default_jurisdiction="DL")
    assert p.defaulted and p.jurisdiction == "DL" and p.ownership.agency.code == "DL-SCJG"
    p = fixture_cat.place("TST-001", "塘沽新港街道某号", date(2024, 1, 1))
    assert not p.defaulted and p.ownership.agency.code == "BH-JD-XG"


def test_segments_cut_at_every_change() -> None:
    power = Power("p", "行政处罚", "《某法》")
    a = ResponsibilityItem("a", "BH", "M", power, "X", date(2023, 1, 1), date(2024, 12, 31))
    b = ResponsibilityItem("b", "BH", "M", power, "Y", date(2024, 7, 1), None, lead=True)
    segs = segments([a, b])
    assert [(s.start, s.end, s.holders, s.lead_holder()) for s in segs] == [
        (date(2023, 1, 1), date(2024, 6, 30), ("X",), "X"),
        (date(2024, 7, 1), date(2024, 12, 31), ("X", "Y"), "Y"),
        (date(2025, 1, 1), None, ("Y",), "Y"),
    ]


# --- the shipped responsibility lists ---------------------------------------------------------
def test_shipped_take_back_of_illegal_construction(shipped: Catalogue) -> None:
    if "CG-003" not in shipped.matters:
        pytest.skip("matter CG-003 not in the shipped catalogue")
    assert shipped.owner("CG-003", "BH", date(2025, 8, 24), street="BH-DG").agency.code == "BH-JD-DG"
    assert shipped.owner("CG-003", "BH", date(2025, 8, 25), street="BH-DG").agency.code == "BH-CGW"


@pytest.mark.parametrize(
    ("matter", "jurisdiction", "agency", "co_owners"),
    [
        # 快递/邮政: the postal authority, not the transport bureau (kind postal, added with these matters)
        ("YZ-001", "BH", "TJ-YZJ", ()),
        ("YZ-002", "TEDA", "TJ-YZJ", ()),
        ("YZ-003", "DL", "TJ-YZJ", ()),
        # 住房公积金: the fund centre, not the 住建委 that holds the other housing matters
        ("ZJ-014", "BH", "BH-GJJ", ()),
        ("ZJ-014", "TEDA", "BH-GJJ", ()),
        ("ZJ-014", "DL", "TJ-GJJ", ()),
        ("ZJ-015", "DL", "DL-ZJW", ()),
        # 事业单位人事: 人社局 leads, the 区委编办 co-holds (编制); TEDA keeps its own 人社 body
        ("RS-015", "BH", "BH-RSJ", ("BH-BB",)),
        ("RS-015", "DL", "DL-RSJ", ("DL-BB",)),
        ("RS-015", "TEDA", "TEDA-RSJ", ()),
        ("RS-013", "BH", "BH-RSJ", ()),
        # teachers: the education bureau (TEDA falls back to 滨海新区教育体育局)
        ("JY-011", "TEDA", "BH-JTJ", ()),
        ("JY-010", "DL", "DL-JYJ", ()),
        ("WJ-011", "BH", "BH-WJW", ()),
    ],
)
def test_shipped_owners_of_the_gap_matters(
    shipped: Catalogue, matter: str, jurisdiction: str, agency: str, co_owners: tuple[str, ...]
) -> None:
    o = shipped.owner(matter, jurisdiction, date(2025, 9, 1))
    assert o.agency.code == agency
    assert tuple(a.code for a in o.co_owners) == co_owners
    assert o.lead == bool(co_owners)
    if matter.startswith("YZ-"):
        assert o.agency.kind == "postal" and o.matter.kind == "postal"
        assert o.matter.domain == "交通运输"  # the convention of the labelled messages (46 of 68)


def test_shipped_every_matter_has_one_owner_everywhere(shipped: Catalogue) -> None:
    for code in shipped.matters:
        for j in ("BH", "TEDA", "DL"):
            for day in (date(2023, 1, 1), date(2025, 8, 25), date(2027, 12, 31)):
                o = shipped.owner(code, j, day)
                assert o.agency.code in shipped.agencies


def test_owner_lookup_uses_the_index_built_once(shipped: Catalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    # fast = indexed: the responsibility items are cut into segments once, when the catalogue is built, and a
    # lookup only bisects them. Counted here, not timed (the time per call is the benchmarks' business).
    from models import ownership

    cuts: list[int] = []
    real_segments = ownership.segments
    monkeypatch.setattr(ownership, "segments", lambda items: cuts.append(1) or real_segments(items))
    codes = list(shipped.matters)
    owners = [shipped.owner(codes[n % len(codes)], ("BH", "TEDA", "DL")[n % 3], date(2025, 9, 1), street="BH-XG")
              for n in range(20_000)]
    assert cuts == [], f"{len(cuts)} lookups of 20,000 cut the responsibility items again"
    assert len(owners) == 20_000 and all(o.agency.code in shipped.agencies for o in owners)


def test_fixture_data_dir_is_independent(tmp_path: Path) -> None:
    data = fx.build(tmp_path)
    assert {p.name for p in (data / "matters").iterdir()} == {"fixtures.yaml"}
