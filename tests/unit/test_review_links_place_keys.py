"""Place keys and the address resolver drop only the administrative 天津 prefix, keep every Chinese character
of a name, and read one building the same however its number is written."""

from __future__ import annotations

import pytest

from config.catalogue import load_catalogue
from models.address import normalize
from models.directory import Catalogue
from models.supervision import normalise_place


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue()


@pytest.mark.parametrize("text", ["天津市滨海新区解放路100号", "天津滨海新区解放路100号", "天津市市辖区滨海新区解放路100号",
                                  "天津市 滨海新区 解放路１００号。"])
def test_the_city_before_a_district_is_dropped(text: str) -> None:
    assert normalise_place(text) == normalise_place("滨海新区解放路100号") == "滨海新区解放路100号"
    assert normalize(text).startswith("滨海新区")


@pytest.mark.parametrize(("named", "other"), [("天津大道100号", "大道100号"), ("天津港保税区海滨九路1号", "港保税区海滨九路1号"),
                                              ("天津市第一中心医院门诊楼", "第一中心医院门诊楼")])
def test_tianjin_inside_a_name_is_kept(named: str, other: str) -> None:
    assert normalise_place(named) == named and normalise_place(named) != normalise_place(other)
    assert normalize(named) == named


def test_an_alias_with_tianjin_in_it_does_not_shrink_to_a_bare_short_form(cat: Catalogue) -> None:
    # 滨海新区's alias 天津滨海 read as "滨海": any 滨海 (the airport lies in 东丽区) was 滨海新区
    assert cat.resolve_address("滨海中学") is None
    assert cat.resolve_address("东丽区滨海国际机场").jurisdiction == "DL"
    assert cat.resolve_address("天津滨海某小区").jurisdiction == "BH"
    assert cat.resolve_address("天津港保税区海滨九路").jurisdiction == "BH"
    assert cat.resolve_address("天津经济技术开发区第三大街").jurisdiction == "TEDA"


def test_no_chinese_character_of_a_name_is_dropped() -> None:
    assert normalise_place("滨海新区解放路一〇〇号") != normalise_place("滨海新区解放路一号")
    assert normalise_place("滨海新区解放路二○○号") == normalise_place("滨海新区解放路二〇〇号") == "滨海新区解放路二〇〇号"
    assert normalise_place("滨海新区㙟子村1号") != normalise_place("滨海新区子村1号")
    assert normalise_place("滨海新区𬇙河路1号") == "滨海新区𬇙河路1号"


def test_one_building_is_one_key_whatever_it_is_called() -> None:
    assert normalise_place("滨海新区金街小区3栋2单元101") == normalise_place("滨海新区金街小区3幢2单元101") \
        == normalise_place("滨海新区金街小区３号楼２单元101") == "滨海新区金街小区3号楼2单元101"
    assert normalise_place("滨海新区金街小区3号") != normalise_place("滨海新区金街小区3号楼")  # a door number
