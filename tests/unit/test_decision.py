"""The routing decision (classifier.decision.decide) on the shipped catalogue, with hand-made rankings.

No model: the ranking is what a model would return, so each test pins one rule of the decision —
thresholds, the responsibility list in force at the place and date, co-owners after a return.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from classifier.decision import AUTO, MANUAL, NONE_LABEL, UNROUTABLE, Decision, OwnerCache, decide
from config.catalogue import load_catalogue
from models.directory import Catalogue
from models.workcalendar import TZ

THRESHOLD = 0.5
JUNE, SEPTEMBER = datetime(2025, 6, 1, 10, 0, tzinfo=TZ), datetime(2025, 9, 1, 10, 0, tzinfo=TZ)
TEDA_ADDRESS = "天津经济技术开发区第三大街51号"
BH_ADDRESS = "天津市滨海新区中心北路100号"
XINGANG_ADDRESS = "天津市滨海新区塘沽新港街道新港三号路某小区"
SMOKE = "楼下饭店油烟直排，晚上家里全是油烟味"
ILLEGAL_BUILDING = "邻居在楼顶私搭乱建彩钢房"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def route(catalogue: Catalogue, ranking: list[tuple[str, float]], *, text: str = SMOKE,
          address: str | None = BH_ADDRESS, at: datetime = JUNE, **kw: Any) -> Decision:
    return decide(ranking, catalogue, text=text, address=address, received_at=at, threshold=THRESHOLD,
                  default_jurisdiction="BH", model_version="test-model", **kw)


# --- nothing to route -------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "   ", "！！！。。。", "？？", "123456"])
def test_empty_or_punctuation_only_text_is_unroutable(catalogue: Catalogue, text: str) -> None:
    d = route(catalogue, [("HB-001", 0.99)], text=text)
    assert d.decision == UNROUTABLE and d.agency is None
    assert "为空" in d.reason and d.model_version == "test-model"


def test_none_on_top_is_unroutable(catalogue: Catalogue) -> None:
    d = route(catalogue, [(NONE_LABEL, 0.85), ("HB-001", 0.1)], text="感谢城管队员及时处理，特此表扬")
    assert d.decision == UNROUTABLE and d.agency is None and d.confidence == 0.85


def test_a_weak_none_does_not_hide_the_next_matter(catalogue: Catalogue) -> None:
    d = route(catalogue, [(NONE_LABEL, 0.4), ("HB-001", 0.35)])
    assert d.decision == MANUAL and d.matter == "HB-001" and d.agency == "BH-STHJ"


def test_no_candidates_go_to_the_dispatchers(catalogue: Catalogue) -> None:
    assert route(catalogue, []).decision == MANUAL
    d = route(catalogue, [("NO-SUCH-MATTER", 0.9)])
    assert d.decision == MANUAL and d.agency is None


# --- confident and not ------------------------------------------------------------------------------
def test_a_confident_matter_is_routed_with_its_explanation(catalogue: Catalogue) -> None:
    ranking = [("HB-001", 0.86), ("HB-002", 0.06), ("CG-001", 0.04), ("SC-001", 0.02), ("JT-001", 0.01)]
    d = route(catalogue, ranking)
    assert d.decision == AUTO
    assert (d.matter, d.matter_name, d.domain) == ("HB-001", "餐饮油烟扰民", "环境保护")
    assert (d.agency, d.agency_kind, d.jurisdiction, d.address_resolved) == (
        "BH-STHJ", "ecology_environment", "BH", True)
    assert d.agency_name == catalogue.agency("BH-STHJ").name
    assert d.basis and d.responsibility_item and d.co_owners == ("BH-CGW",)
    # the routing's confidence is the agency's: HB-002 (noise) is the same bureau's matter here
    assert d.matter_confidence == 0.86 and d.confidence == pytest.approx(0.92)
    assert "餐饮油烟扰民" in d.reason and d.agency_name in d.reason
    # the alternatives are the next matters of *other* agencies (HB-002 is the chosen bureau's again)
    assert [a.matter for a in d.alternatives] == ["CG-001", "SC-001", "JT-001"]
    assert len({a.agency for a in d.alternatives} | {d.agency}) == 4
    for alt in d.alternatives:
        assert alt.agency in catalogue.agencies and alt.agency_kind and alt.matter_name
        assert alt.agency.startswith("BH-")  # the alternatives are owned in the same place


def test_without_three_other_agencies_the_alternatives_fill_up_with_the_best_remaining(
    catalogue: Catalogue,
) -> None:
    # Given a ranking whose runners-up are mostly the chosen bureau's own matters
    ranking = [("HB-001", 0.86), ("HB-002", 0.06), ("CG-001", 0.04), ("HB-003", 0.02)]
    d = route(catalogue, ranking)
    # Then the list is still three long, in rank order, with the one other agency in it
    assert [a.matter for a in d.alternatives] == ["HB-002", "CG-001", "HB-003"]
    # and the agency's confidence is unchanged by how far the alternatives were looked for
    assert d.confidence == pytest.approx(0.86 + 0.06 + 0.02)


def test_below_the_threshold_goes_to_manual_with_the_suggestion(catalogue: Catalogue) -> None:
    d = route(catalogue, [("HB-001", 0.42), ("CG-001", 0.3)])
    assert d.decision == MANUAL and d.confidence == 0.42
    assert d.agency == "BH-STHJ" and d.matter == "HB-001"  # the dispatcher starts from the best guess
    assert "低于阈值" in d.reason and "餐饮油烟扰民" in d.reason
    assert [a.matter for a in d.alternatives] == ["CG-001"] and d.alternatives[0].agency != "BH-STHJ"


def test_matters_of_one_agency_add_up_to_a_confident_routing(catalogue: Catalogue) -> None:
    # Given a model torn between two matters that the same bureau owns here, and a third owned elsewhere
    ranking = [("HB-001", 0.35), ("CG-001", 0.3), ("HB-002", 0.2)]
    # When deciding
    d = route(catalogue, ranking)
    # Then the agency is sure enough although neither matter is: 0.35 + 0.2
    assert d.decision == AUTO and d.agency == "BH-STHJ" and d.matter == "HB-001"
    assert d.confidence == pytest.approx(0.55) and d.matter_confidence == 0.35
    assert "合计" in d.reason and "0.35" in d.reason
    # and the same ranking elsewhere, where the bureaus split these matters differently, is judged there
    other = route(catalogue, ranking, address=TEDA_ADDRESS)
    assert other.confidence == pytest.approx(0.35 + sum(
        q for m, q in ranking[1:] if catalogue.owner(m, "TEDA", JUNE, None).agency.code == other.agency))


def test_the_threshold_itself_is_confident_enough(catalogue: Catalogue) -> None:
    assert route(catalogue, [("HB-001", THRESHOLD)]).decision == AUTO


# --- returns: exclusions and co-owners ---------------------------------------------------------------
def test_when_the_lead_owner_returned_it_the_co_owner_gets_it(catalogue: Catalogue) -> None:
    first = route(catalogue, [("HB-001", 0.9)], address=TEDA_ADDRESS)
    assert (first.agency, first.co_owners) == ("TEDA-STHJ", ("TEDA-CGJ",))
    d = route(catalogue, [("HB-001", 0.9)], address=TEDA_ADDRESS, exclude_agencies=["TEDA-STHJ"])
    assert d.decision == AUTO and d.agency == "TEDA-CGJ" and d.agency_kind == "urban_management"
    assert d.co_owners == ("TEDA-STHJ",) and d.basis == first.basis
    assert d.excluded_agencies == ("TEDA-STHJ",)


def test_when_every_owner_returned_it_a_dispatcher_decides(catalogue: Catalogue) -> None:
    d = route(catalogue, [("HB-001", 0.9)], address=TEDA_ADDRESS, exclude_agencies=["TEDA-CGJ", "TEDA-STHJ"])
    assert d.decision == MANUAL and d.agency is None
    assert "尚未退回" in d.reason and d.excluded_agencies == ("TEDA-CGJ", "TEDA-STHJ")
    assert [a.matter for a in d.alternatives] == ["HB-001"]


def test_an_excluded_owner_passes_the_ticket_to_the_next_matter(catalogue: Catalogue) -> None:
    owner = route(catalogue, [("SC-001", 0.8)]).agency
    assert owner is not None and owner != "BH-STHJ"
    d = route(catalogue, [("SC-001", 0.8), ("HB-001", 0.15)], exclude_agencies=[owner])
    assert d.matter == "HB-001" and d.agency == "BH-STHJ"
    assert d.decision == MANUAL  # its own confidence is low


# --- place and date -----------------------------------------------------------------------------------
def test_the_same_matter_goes_to_the_owner_of_the_place(catalogue: Catalogue) -> None:
    teda = route(catalogue, [("HB-001", 0.9)], address=TEDA_ADDRESS)
    bh = route(catalogue, [("HB-001", 0.9)], address=BH_ADDRESS)
    assert (teda.jurisdiction, teda.agency) == ("TEDA", "TEDA-STHJ")
    assert (bh.jurisdiction, bh.agency) == ("BH", "BH-STHJ")
    assert teda.agency_kind == bh.agency_kind == "ecology_environment"


def test_the_responsibility_list_in_force_on_the_received_date_decides(catalogue: Catalogue) -> None:
    ranking = [("CG-003", 0.9)]
    before = route(catalogue, ranking, text=ILLEGAL_BUILDING, address=XINGANG_ADDRESS, at=JUNE)
    after = route(catalogue, ranking, text=ILLEGAL_BUILDING, address=XINGANG_ADDRESS, at=SEPTEMBER)
    # 2025-08-25: 违法建设 taken back from the 街镇 by the district's 城市管理委员会 (responsibility/BH.yaml)
    assert before.street == after.street == "新港街道"
    assert (before.agency, before.agency_kind) == ("BH-JD-XG", "street_town")
    assert (after.agency, after.agency_kind) == ("BH-CGW", "urban_management")
    assert before.basis and after.basis


def test_a_place_named_only_in_the_text_is_used(catalogue: Catalogue) -> None:
    d = route(catalogue, [("CG-003", 0.9)], text="新港街道某小区楼顶私搭乱建彩钢房", address=None)
    assert d.address_resolved and d.jurisdiction == "BH" and d.street == "新港街道"
    assert d.agency == "BH-JD-XG" and "默认辖区" not in d.reason


def test_an_unresolvable_address_falls_back_to_the_text(catalogue: Catalogue) -> None:
    d = route(catalogue, [("HB-001", 0.9)], text="泰达MSD楼下餐馆油烟很大", address="某某路1号")
    assert d.address_resolved and d.jurisdiction == "TEDA" and d.agency == "TEDA-STHJ"


@pytest.mark.parametrize("address", [None, "", "火星路1号"])
def test_no_address_at_all_uses_the_default_jurisdiction_and_says_so(catalogue: Catalogue,
                                                                      address: str | None) -> None:
    d = route(catalogue, [("HB-001", 0.9)], text="饭店油烟太大了", address=address)
    assert d.decision == AUTO and not d.address_resolved
    assert (d.jurisdiction, d.street, d.agency) == ("BH", None, "BH-STHJ")
    assert "地址未能定位到辖区" in d.reason and "默认辖区BH" in d.reason
    assert (d.matter, d.domain, d.agency_kind) == ("HB-001", "环境保护", "ecology_environment")


def test_another_default_jurisdiction(catalogue: Catalogue) -> None:
    d = decide([("HB-001", 0.9)], catalogue, text="饭店油烟太大了", address=None, received_at=JUNE,
               threshold=THRESHOLD, default_jurisdiction="DL")
    assert (d.jurisdiction, d.agency, d.address_resolved) == ("DL", "DL-STHJ", False)


# --- models with other labels -----------------------------------------------------------------------------
def test_a_domain_model_only_names_the_domain(catalogue: Catalogue) -> None:
    d = route(catalogue, [("环境保护", 0.93), ("城乡建设", 0.05)], label_kind="domain")
    assert d.decision == MANUAL and d.domain == "环境保护" and d.agency is None and d.matter is None
    assert "一级分类" in d.reason and d.confidence == 0.93
    assert d.jurisdiction == "BH" and d.address_resolved


def test_an_agency_model_names_the_agency(catalogue: Catalogue) -> None:
    ranking = [("BH-SCJG", 0.7), ("NOT-AN-AGENCY", 0.12), ("BH-CGW", 0.1), ("BH-STHJ", 0.05),
               ("BH-ZJW", 0.02), ("BH-RSJ", 0.01)]
    d = route(catalogue, ranking, label_kind="agency")
    assert d.decision == AUTO and d.agency == "BH-SCJG" and d.agency_kind == "market_regulation"
    assert d.agency_name in d.reason and d.matter is None
    assert [a.agency for a in d.alternatives] == ["BH-CGW", "BH-STHJ", "BH-ZJW"]


def test_an_agency_model_respects_returns_and_the_threshold(catalogue: Catalogue) -> None:
    d = route(catalogue, [("BH-SCJG", 0.7), ("BH-CGW", 0.2)], label_kind="agency",
              exclude_agencies=["BH-SCJG"])
    assert d.decision == MANUAL and d.agency == "BH-CGW" and "低于阈值" in d.reason
    nothing = route(catalogue, [("BH-SCJG", 0.9)], label_kind="agency", exclude_agencies=["BH-SCJG"])
    assert nothing.decision == MANUAL and nothing.agency is None


def test_a_decision_serialises_to_plain_data(catalogue: Catalogue) -> None:
    d = route(catalogue, [("HB-001", 0.86), ("HB-002", 0.06)], exclude_agencies=["BH-CGW"])
    data = d.as_dict()
    assert data["alternatives"][0]["matter"] == "HB-002"
    assert data["co_owners"] == ["BH-CGW"] and data["excluded_agencies"] == ["BH-CGW"]


# --- the batch helpers of the router ---------------------------------------------------------------------
def test_an_owner_cache_answers_per_date_and_never_changes_a_decision(catalogue: Catalogue) -> None:
    owners = OwnerCache()
    ranking = [("CG-003", 0.9), ("ZJ-010", 0.05)]
    for _ in range(2):  # the second round is answered from the cache
        before = route(catalogue, ranking, text=ILLEGAL_BUILDING, address=XINGANG_ADDRESS, at=JUNE, owners=owners)
        after = route(catalogue, ranking, text=ILLEGAL_BUILDING, address=XINGANG_ADDRESS, at=SEPTEMBER,
                      owners=owners)
        # the 2025-08-25 take-back: the cache is keyed by time, so the street keeps June and loses September
        assert (before.agency, after.agency) == ("BH-JD-XG", "BH-CGW")
        plain = route(catalogue, ranking, text=ILLEGAL_BUILDING, address=XINGANG_ADDRESS, at=SEPTEMBER)
        assert after == plain


def test_a_full_owner_cache_starts_afresh_and_still_answers_right(catalogue: Catalogue) -> None:
    owners = OwnerCache(max_entries=2)
    ranking = [("CG-003", 0.9)]
    days = [datetime(2025, 6, d, 10, 0, tzinfo=TZ) for d in (1, 2, 3)] + [SEPTEMBER]
    for at in days:
        cached = route(catalogue, ranking, text=ILLEGAL_BUILDING, address=XINGANG_ADDRESS, at=at, owners=owners)
        assert cached == route(catalogue, ranking, text=ILLEGAL_BUILDING, address=XINGANG_ADDRESS, at=at)
        assert 1 <= len(owners) <= 2
    assert cached.agency == "BH-CGW"  # September's owner, not a stale June answer


def test_the_normalised_text_decides_whether_there_is_anything_to_route(catalogue: Catalogue) -> None:
    assert route(catalogue, [("HB-001", 0.9)], text="油烟", normalized="").decision == UNROUTABLE
    assert route(catalogue, [("HB-001", 0.9)], text="", normalized="油烟太大").decision == AUTO


@pytest.mark.parametrize(("address", "says"), [
    ("天津市西青区张家窝镇某路1号", "不属于本系统辖区"),  # another district of the city
    ("东丽区新港街道某小区", "矛盾"),  # 新港街道 is in 滨海新区, not 东丽区
])
def test_an_address_outside_our_districts_or_contradicting_itself_goes_to_a_dispatcher(
        catalogue: Catalogue, address: str, says: str) -> None:
    # Given a confident matter, and an address field that places the ticket elsewhere or nowhere consistent
    d = route(catalogue, [("HB-001", 0.95)], text="饭店油烟太大了", address=address)
    # Then no agency of the default district is sent what the caller placed elsewhere: a dispatcher decides,
    # told why, with the default district's owner as the suggestion
    assert d.decision == MANUAL and not d.address_resolved and says in d.reason
    assert (d.matter, d.agency) == ("HB-001", "BH-STHJ") and "转人工派单" in d.reason


def test_a_district_named_only_in_the_text_does_not_stop_the_dispatch(catalogue: Catalogue) -> None:
    d = route(catalogue, [("HB-001", 0.95)], text="我在西青区上班，家门口饭店油烟太大了", address="某某路1号")
    assert d.decision == AUTO and d.agency == "BH-STHJ"
