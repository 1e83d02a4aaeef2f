"""The checker: the shipped data passes; broken files give file/field/reason, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from config.catalogue import CatalogueError, Problem, build_catalogue, check_catalogue, load_catalogue
from tests.unit import domain_fixtures as fx


def errors(data: Path) -> list[Problem]:
    return [p for p in check_catalogue(data) if p.severity == "error"]


def messages(data: Path) -> list[str]:
    return [str(p) for p in errors(data)]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return fx.build(tmp_path)


def edit(path: Path, change: Callable[[object], object | None]) -> None:
    doc = fx.read(path)
    result = change(doc)  # edits in place; a returned list replaces the whole document
    fx.write(path, result if isinstance(result, list) else doc)


def test_shipped_data_passes() -> None:
    problems = check_catalogue()
    assert [str(p) for p in problems if p.severity == "error"] == []
    cat = load_catalogue()
    s = cat.stats()
    assert s.jurisdictions == 3
    assert s.agency_kinds == 25  # the design's 24 plus postal (邮政管理)
    assert s.calendar_years == (2023, 2024, 2025, 2026)


def test_fixture_data_passes(data: Path) -> None:
    assert messages(data) == []


def test_broken_yaml_is_reported_with_its_line(data: Path) -> None:
    (data / "agencies.yaml").write_text("- {code: BH-X, name: [unclosed\n", encoding="utf-8")
    msgs = messages(data)
    assert any(m.startswith("agencies.yaml: line ") and "YAML 语法错误" in m for m in msgs), msgs
    with pytest.raises(CatalogueError) as exc:
        load_catalogue(data)
    assert "agencies.yaml" in str(exc.value)


def test_unknown_agency_in_responsibility(data: Path) -> None:
    def change(doc):
        doc["assignments"][1]["periods"][0]["holders"][1]["agency"] = "BH-NOPE"

    edit(data / "responsibility" / "BH.yaml", change)
    assert (
        "responsibility/BH.yaml: assignments[T-BH-2].periods[0].holders[1].holder: 未知单位 BH-NOPE"
        in messages(data)
    )


def test_unknown_matter_in_responsibility_is_dangling(data: Path) -> None:
    edit(
        data / "responsibility" / "BH.yaml",
        lambda doc: doc["assignments"][0].update(matters=["TST-001", "ZZ-404"]),
    )
    assert "responsibility/BH.yaml: assignments[T-BH-1].matters: 未知事项 ZZ-404" in messages(data)


def test_kind_without_agency_in_a_jurisdiction(data: Path) -> None:
    edit(data / "responsibility" / "TEDA.yaml", lambda doc: doc["by_kind"].pop("public_security"))
    msgs = messages(data)
    assert any(
        m.startswith("responsibility/TEDA.yaml: by_kind.public_security:")
        and "TST-004" in m
        and "无人承办" in m
        for m in msgs
    ), msgs


def test_holder_of_an_unrelated_jurisdiction(data: Path) -> None:
    edit(data / "responsibility" / "TEDA.yaml", lambda doc: doc["by_kind"].update(public_security="DL-GA"))
    assert (
        "responsibility/TEDA.yaml: by_kind.public_security.holder: 单位 DL-GA 属于 DL，不能在 TEDA 承办"
        in messages(data)
    )


def test_overlapping_periods(data: Path) -> None:
    def change(doc):
        doc["assignments"][0]["periods"][1]["from"] = "2025-08-01"

    edit(data / "responsibility" / "BH.yaml", change)
    msgs = messages(data)
    assert any("assignments[T-BH-1].periods" in m and "有效期重叠" in m for m in msgs), msgs


def test_co_owners_without_a_lead(data: Path) -> None:
    def change(doc):
        doc["assignments"][1]["periods"][0]["holders"][0]["lead"] = False

    edit(data / "responsibility" / "BH.yaml", change)
    msgs = messages(data)
    assert (
        "responsibility/BH.yaml: assignments[T-BH-2].periods[0].holders: 共同承办须有且只有一个牵头单位（lead: true，首接负责）"
        in msgs
    )
    # and the coverage check names the matter and the period
    assert any(
        m.startswith("responsibility/BH.yaml: TST-002: 2023-01-01~2027-12-31") and "无牵头单位" in m
        for m in msgs
    ), msgs


def test_gap_in_ownership_is_found(data: Path) -> None:
    # without a by_kind default, the delegation ending 2025-08-24 leaves TST-001 ownerless afterwards
    def change(doc):
        doc["by_kind"].pop("urban_management")
        doc["assignments"][0]["periods"].pop()

    edit(data / "responsibility" / "BH.yaml", change)
    assert "responsibility/BH.yaml: TST-001: 2025-08-25~2027-12-31：没有承办单位" in messages(data)


def test_list_starting_late_leaves_the_window_uncovered(data: Path) -> None:
    edit(data / "responsibility" / "DL.yaml", lambda doc: doc.update(effective_from="2024-01-01"))
    assert "responsibility/DL.yaml: TST-003: 2023-01-01~2023-12-31：没有承办单位" in messages(data)


def test_bad_dates(data: Path) -> None:
    edit(
        data / "responsibility" / "BH.yaml",
        lambda doc: doc["assignments"][0]["periods"][0].update({"from": "2025-13-01"}),
    )
    edit(
        data / "responsibility" / "DL.yaml",
        lambda doc: doc.update(
            assignments=[
                {
                    "id": "X",
                    "matters": ["TST-003"],
                    "periods": [{"from": "2025-05-01", "to": "2025-04-01", "holder": "DL-SCJG"}],
                }
            ]
        ),
    )
    msgs = messages(data)
    assert (
        "responsibility/BH.yaml: assignments[T-BH-1].periods[0].from: 日期无效：'2025-13-01'（应为 YYYY-MM-DD）"
        in msgs
    )
    assert (
        "responsibility/DL.yaml: assignments[X].periods[0].to: 结束日期 2025-04-01 早于开始日期 2025-05-01"
        in msgs
    )


def test_unknown_kind_and_domain_in_a_matter(data: Path) -> None:
    def change(doc):
        doc[2]["domain"] = "外星事务"
        doc[3]["kind"] = "space_force"

    edit(data / "matters" / "fixtures.yaml", change)
    msgs = messages(data)
    assert "matters/fixtures.yaml: [TST-003].domain: 未知一级分类 外星事务" in msgs
    assert "matters/fixtures.yaml: [TST-004].kind: 未知单位类型 space_force" in msgs


def test_matter_contract_fields(data: Path) -> None:
    def change(doc):
        doc[0]["phrasings"] = ["只有一条"]
        doc[1]["powers"] = []
        doc[2]["code"] = "bad-code"
        doc[3]["powers"][0]["type"] = "行政命令"

    edit(data / "matters" / "fixtures.yaml", change)
    msgs = messages(data)
    assert "matters/fixtures.yaml: [TST-001].phrasings: 至少需要 5 条，现有 1 条" in msgs
    assert "matters/fixtures.yaml: [TST-002].powers: 至少需要 1 项权责事项（权责清单由此关联）" in msgs
    assert "matters/fixtures.yaml: [bad-code].code: 事项代码格式应为 [A-Z]{2,4}-[0-9]{3}" in msgs
    assert "matters/fixtures.yaml: [TST-004].powers[0].type: 未知权力类型 行政命令" in msgs


def test_duplicate_matter_code_across_files(data: Path) -> None:
    fx.write(data / "matters" / "more.yaml", [fx.MATTERS[0]])
    assert "matters/more.yaml: [TST-001].code: 事项代码重复（已在 matters/fixtures.yaml 中定义）" in messages(
        data
    )


def test_unknown_agency_kind_and_missing_kinds(data: Path) -> None:
    def change(doc):
        doc[0]["kind"] = "ministry_of_magic"
        return [a for a in doc if a["kind"] != "sports"]

    edit(data / "agencies.yaml", change)
    msgs = messages(data)
    assert "agencies.yaml: [BH-ZFB].kind: 未知单位类型 ministry_of_magic" in msgs
    assert any(
        m.startswith("agencies.yaml: kind: 以下单位类型没有任何单位：") and "sports" in m for m in msgs
    ), msgs


def test_street_office_must_exist(data: Path) -> None:
    edit(data / "agencies.yaml", lambda doc: [a for a in doc if a["code"] != "DL-JD-HM"])
    assert "jurisdictions.yaml: [DL].streets[DL-HM].agency: 单位 DL-JD-HM 不在 agencies.yaml 中" in messages(
        data
    )


def test_calendar_errors(data: Path) -> None:
    def change(doc):
        doc["workdays"].append({"date": "2025-10-09", "for": "国庆节"})  # a Thursday

    edit(data / "calendar" / "2025.yaml", change)
    (data / "calendar" / "2024.yaml").write_text("year: 2023\nholidays: []\n", encoding="utf-8")
    msgs = messages(data)
    assert any(m.startswith("calendar/2025.yaml: workdays[5].date: 2025-10-09 是周一至周五") for m in msgs), (
        msgs
    )
    assert "calendar/2024.yaml: year: 年份 2023 与文件名 2024.yaml 不符" in msgs


def test_missing_calendar_year_is_a_warning(data: Path) -> None:
    (data / "calendar" / "2026.yaml").unlink()
    problems = check_catalogue(data)
    assert not [p for p in problems if p.severity == "error"]
    assert any(p.severity == "warning" and p.field == "2026.yaml" for p in problems)


def test_sla_without_catch_all(data: Path) -> None:
    def change(doc):
        doc["limits"]["sign"] = [{"urgency": "紧急", "minutes": 15}]
        doc["limits"]["handle"][0]["hours"] = -1

    edit(data / "sla.yaml", change)
    msgs = messages(data)
    assert any(
        m.startswith("sla.yaml: limits: 以下组合没有适用的时限") and "sign/咨询/一般" in m for m in msgs
    ), msgs
    assert "sla.yaml: limits.handle[0].hours: 应为正数，实为 -1" in msgs


def test_overdue_before_the_last_warning_is_an_error(data: Path) -> None:
    edit(data / "sla.yaml", lambda doc: doc.update(warning_fractions=[0.5, 0.75, 0.9], overdue_fraction=0.8))
    assert "sla.yaml: overdue_fraction: 应大于最后一次预警的比例 0.9，实为 0.8" in messages(data)


def test_late_returns_is_refuse_or_flag(data: Path) -> None:
    edit(data / "sla.yaml", lambda doc: doc.update(late_returns="reject"))
    assert any(m.startswith("sla.yaml: late_returns: 应为 refuse") for m in messages(data))


def test_wrong_shapes_do_not_crash(data: Path) -> None:
    (data / "jurisdictions.yaml").write_text("just a string\n", encoding="utf-8")
    (data / "responsibility" / "BH.yaml").write_text("- a\n- b\n", encoding="utf-8")
    (data / "matters" / "fixtures.yaml").write_text("- 42\n- {code: TST-009}\n", encoding="utf-8")
    (data / "sla.yaml").write_text("", encoding="utf-8")
    catalogue, problems = build_catalogue(data)  # must not raise
    msgs = [str(p) for p in problems]
    assert "jurisdictions.yaml: -: 应为辖区列表" in msgs
    assert any(m.startswith("responsibility/BH.yaml: -: 应为映射") for m in msgs), msgs
    assert any(m.startswith("matters/fixtures.yaml: [0]: 应为映射") for m in msgs), msgs
    assert "matters/fixtures.yaml: [TST-009].domain: 缺少必填项" in msgs


def test_missing_data_dir(tmp_path: Path) -> None:
    assert [p.reason for p in check_catalogue(tmp_path / "nowhere")] == ["数据目录不存在"]


def test_an_alias_shared_by_two_streets_of_one_jurisdiction(data: Path) -> None:
    # the resolver keeps the first street listed: every "杭州道" address would go to 塘沽街道
    def change(doc):
        street = next(s for j in doc for s in j.get("streets", []) if s["code"] == "BH-TG")
        street["aliases"] = [*street.get("aliases", []), "杭州道"]

    edit(data / "jurisdictions.yaml", change)
    assert "jurisdictions.yaml: [BH].aliases: 地名“杭州道”同时属于 BH-TG 和 BH-HZD" in messages(data)


def test_a_misspelt_period_key_is_an_error(data: Path) -> None:
    # "until" instead of "to" would make the exception open-ended, silently
    def change(doc):
        doc["assignments"].append({"id": "T-BH-9", "matters": ["TST-004"],
                                   "periods": [{"from": "2023-01-01", "until": "2024-12-31", "holder": "BH-ZFB"}]})

    edit(data / "responsibility" / "BH.yaml", change)
    msgs = messages(data)
    assert any(m.startswith("responsibility/BH.yaml: assignments[T-BH-9].periods[0]: 未知字段 until") for m in msgs), msgs
