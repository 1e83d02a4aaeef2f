"""Address resolver: districts, aliases, streets, patterns, and the explicit "cannot"."""

from __future__ import annotations

import pytest

from config.catalogue import load_catalogue
from models.address import AddressResolver, normalize
from models.directory import Catalogue
from models.domain import Jurisdiction, Street


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue()


@pytest.mark.parametrize(
    ("text", "jurisdiction", "street", "method"),
    [
        ("天津市滨海新区杭州道街道某某里3号楼", "BH", "BH-HZD", "street"),
        ("滨海新区新港街道", "BH", "BH-XG", "street"),
        ("塘沽胡家园某村", "BH", "BH-HJY", "street_alias"),
        ("杨家泊镇东侧", "BH", "BH-YJB", "street"),
        ("大港中塘镇", "BH", "BH-ZT", "street"),
        ("汉沽寨上", "BH", "BH-ZS", "street_alias"),
        ("塘沽", "BH", None, "alias"),
        ("汉沽区某小区", "BH", None, "alias"),
        ("大港油田生活区", "BH", None, "alias"),
        ("中新生态城某路", "BH", None, "alias"),
        ("泰达", "TEDA", None, "alias"),
        ("开发区第三大街与黄海路交口", "TEDA", None, "pattern"),  # the longer term decides
        ("第十一大街某公司", "TEDA", None, "pattern"),
        ("滨海新区经济技术开发区第五大街", "TEDA", None, "jurisdiction"),  # the zone, not its parent
        ("滨海新区泰达街道", "TEDA", "TEDA-TD", "street"),
        ("东丽区张贵庄街道某小区", "DL", "DL-ZGZ", "street"),
        ("东丽湖某小区", "DL", "DL-DLH", "street_alias"),
        ("东丽开发区某厂", "DL", None, "alias"),  # not TEDA's "开发区"
        ("军粮城示范镇", "DL", "DL-JLC", "street_alias"),
        ("ＴＥＤＡ　第二大街", "TEDA", None, "alias"),  # full-width letters and spaces
    ],
)
def test_resolves(cat: Catalogue, text: str, jurisdiction: str, street: str | None, method: str) -> None:
    m = cat.resolve_address(text)
    assert m is not None, cat.explain_address(text).reason
    assert (m.jurisdiction, m.street, m.method) == (jurisdiction, street, method)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "为空"),
        ("某小区3号楼2门", "没有可识别"),
        ("和平区南京路", "和平区"),
        ("西青开发区某厂", "西青"),  # another district's 开发区 is not ours
        ("大沽南路", "没有可识别"),  # a road in 河西区, not 大沽街道
        ("东丽区新港街道", "矛盾"),
        ("东丽区和滨海新区交界处", "不同辖区"),
    ],
)
def test_cannot_resolve_says_why(cat: Catalogue, text: str, reason: str) -> None:
    assert cat.resolve_address(text) is None
    r = cat.explain_address(text)
    assert not r.resolved
    assert reason in r.reason


def test_two_streets_of_one_district_give_the_district_only(cat: Catalogue) -> None:
    r = cat.explain_address("新河街道和新北街道交界")
    assert r.match is not None
    assert (r.match.jurisdiction, r.match.street) == ("BH", None)
    assert "多个街镇" in r.reason


def test_streets_of_bh_are_the_published_ones(cat: Catalogue) -> None:
    bh = {s.name for s in cat.jurisdictions["BH"].streets}
    teda = {s.name for s in cat.jurisdictions["TEDA"].streets}
    assert len(bh | teda) == 21  # 21 街镇 of 滨海新区, 泰达街道 administered by 经开区
    assert {"塘沽街道", "新村街道", "新港街道", "寨上街道", "古林街道", "小王庄镇"} <= bh
    assert len(cat.jurisdictions["DL"].streets) == 11


def test_normalize() -> None:
    assert normalize(" 天津市 滨海新区 ") == "滨海新区"
    assert normalize("ｔｅｄａ") == "TEDA"


def test_resolver_on_minimal_data() -> None:
    parent = Jurisdiction(
        "AA", "甲区", "district", aliases=("甲",), streets=(Street("AA-1", "一号街道", "AA", "X"),)
    )
    child = Jurisdiction("BB", "乙园区", "zone", parent="AA", aliases=("乙园",), streets=())
    r = AddressResolver([parent, child], outside=("丙区",))
    assert r.resolve("甲区乙园区").match.jurisdiction == "BB"
    assert (
        r.resolve("乙园一号街道").match is None
    )  # the street belongs to the parent, the text names the zone
    assert r.resolve("甲区一号街道").match.street == "AA-1"
    assert r.resolve("丙区").reason.startswith("地址位于丙区")


def test_terms_are_found_wherever_they_start(cat: Catalogue) -> None:
    # the resolver tries its terms only where one can start; a long ticket with the place deep inside,
    # at the very end, or overlapping a shorter term must resolve as the full search did
    filler = "楼下饭店油烟太大，已经反映多次没有解决。" * 20
    assert cat.resolve_address(filler + "滨海新区新港街道").street == "BH-XG"
    assert cat.resolve_address(filler + "东丽湖街道" + filler).street == "DL-DLH"
    assert cat.resolve_address(filler + "塘沽").method == "alias"
    assert cat.resolve_address(filler) is None


def test_resolver_with_an_empty_term_still_searches_everywhere() -> None:
    # "天津市" normalises to nothing; such a term must not break the first-character shortcut
    j = Jurisdiction("AA", "甲区", "district", aliases=("天津市",), streets=(Street("AA-1", "一号街道", "AA", "X"),))
    r = AddressResolver([j], outside=())
    assert r.resolve("某路甲区一号街道").match.street == "AA-1"


@pytest.mark.parametrize("text", ["西青区新港街道", "河东区万新街", "北辰区小王庄某村"])
def test_another_district_with_one_of_our_streets_is_a_contradiction(cat: Catalogue, text: str) -> None:
    # refused like "东丽区新港街道": the address does not say which of the two it is
    r = cat.explain_address(text)
    assert r.match is None and "矛盾" in r.reason
