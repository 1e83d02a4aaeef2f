"""Domain types of the router: jurisdictions, streets, agencies, matters, powers, responsibility items.

All types are frozen dataclasses so that a loaded catalogue can be shared between threads and
cached for the lifetime of a worker. The vocabularies (agency kinds, first-level domains, power
types, request types, urgencies) are closed tuples: data files are checked against them, and
outputs and evaluation use them as stable labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

# The agency kinds: the design's 24, then kinds added later, appended so that the order stays stable
# (outputs and evaluation index into it). ``postal`` (邮政管理: 快递 and 邮政普遍服务) was added when the
# catalogue got its 快递/邮政 matters: no other kind's bodies hold those powers.
AGENCY_KINDS: tuple[str, ...] = (
    "market_regulation",
    "ecology_environment",
    "urban_management",
    "human_resources",
    "housing_construction",
    "transport",
    "health",
    "emergency_management",
    "education",
    "culture_tourism",
    "civil_affairs",
    "public_security",
    "planning_resources",
    "water_affairs",
    "agriculture_rural",
    "commerce",
    "medical_security",
    "fire_rescue",
    "development_reform",
    "finance_tax",
    "sports",
    "street_town",
    "utility",
    "district_government",
    "postal",
)

# The 15 first-level domains (一级分类) of the dispatch catalogue.
DOMAINS: tuple[str, ...] = (
    "城乡建设",
    "环境保护",
    "交通运输",
    "教育文体",
    "劳动和社会保障",
    "商贸旅游",
    "卫生计生",
    "政法",
    "民政",
    "农村农业",
    "国土资源",
    "经济管理",
    "科技与信息产业",
    "党务政务",
    "纪检监察",
)

# Power types of a 权责清单 (the categories used by Chinese responsibility lists).
POWER_TYPES: tuple[str, ...] = (
    "行政许可",
    "行政处罚",
    "行政强制",
    "行政征收",
    "行政给付",
    "行政检查",
    "行政确认",
    "行政奖励",
    "行政裁决",
    "其他行政权力",
    "公共服务",
)

REQUEST_TYPES: tuple[str, ...] = ("咨询", "求助", "投诉", "举报", "建议")
URGENCIES: tuple[str, ...] = ("紧急", "水电气热", "一般")

JURISDICTION_LEVELS: tuple[str, ...] = ("district", "zone", "city")

# Holder placeholder meaning "the street office (街道办事处/镇政府) where the matter happens":
# delegated powers (街镇综合执法) belong to whichever 街镇 the ticket's address lies in.
STREET_HOLDER = "STREET"


@dataclass(frozen=True, slots=True)
class Street:
    """A 街道 or 镇 of a jurisdiction; its office is an agency of kind ``street_town``."""

    code: str
    name: str
    jurisdiction: str
    agency: str
    aliases: tuple[str, ...] = ()
    area: str = ""  # historic area (塘沽/汉沽/大港) for readers; not used for routing

    @property
    def is_town(self) -> bool:
        return self.name.endswith("镇")


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    """A district or functional zone with its own agencies (or the city level, not addressable)."""

    code: str
    name: str
    level: str
    parent: str | None = None
    aliases: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()  # regular expressions of place names typical of the jurisdiction
    streets: tuple[Street, ...] = ()
    note: str = ""

    @property
    def addressable(self) -> bool:
        """City-level bodies serve several districts; no ticket address resolves to the city itself."""
        return self.level != "city"


@dataclass(frozen=True, slots=True)
class Agency:
    """A body that receives tickets (承办单位)."""

    code: str
    name: str
    jurisdiction: str
    kind: str
    note: str = ""

    @property
    def queue(self) -> str:
        """The Kafka topic this agency consumes (a contract of the design)."""
        return f"tickets.routed.{self.code}"


@dataclass(frozen=True, slots=True)
class Power:
    """A power of a responsibility list as a matter names it: name, type and legal basis."""

    name: str
    type: str
    law: str
    article: str = ""

    @property
    def basis(self) -> str:
        """Legal basis as one string, e.g. 《中华人民共和国大气污染防治法》第一百一十八条."""
        return f"{self.law}{self.article}" if self.article else self.law


@dataclass(frozen=True, slots=True)
class Matter:
    """An entry of the dispatch catalogue (派单目录)."""

    code: str
    name: str
    domain: str
    kind: str
    description: str
    keywords: tuple[str, ...] = ()
    phrasings: tuple[str, ...] = ()
    details: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    powers: tuple[Power, ...] = ()
    source: str = ""  # file the matter was loaded from, for error messages


@dataclass(frozen=True, slots=True)
class ResponsibilityItem:
    """One power of one matter held by one body in one jurisdiction for a period (both ends inclusive).

    ``holder`` is an agency code or :data:`STREET_HOLDER` (delegated to the 街镇 of the address;
    ``delegated_by`` then names the department that delegated it and receives tickets whose
    street is unknown).
    """

    id: str
    jurisdiction: str
    matter: str
    power: Power
    holder: str
    effective_from: date
    effective_to: date | None = None
    lead: bool = False
    delegated_by: str | None = None
    note: str = ""
    source: str = ""

    def in_force(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)

    @property
    def basis(self) -> str:
        return self.power.basis


@dataclass(frozen=True, slots=True)
class Ownership:
    """The answer to "who must handle matter M at place P on date D"."""

    matter: Matter
    jurisdiction: str
    at: date
    agency: Agency
    item: ResponsibilityItem
    items: tuple[ResponsibilityItem, ...] = ()  # all items of the lead holder in force
    co_owners: tuple[Agency, ...] = ()  # other holders in force (the lead handles first: 首接负责)
    lead: bool = False  # True when several bodies hold the matter and ``agency`` is the designated lead
    street: Street | None = None
    note: str = ""

    @property
    def basis(self) -> str:
        """All legal bases of the lead holder's items, de-duplicated, in catalogue order."""
        seen: dict[str, None] = {}
        for item in self.items or (self.item,):
            seen.setdefault(item.basis, None)
        # "《X法》" adds nothing next to "《X法》第N条"
        cited = {b for b in seen if any(o != b and o.startswith(b) for o in seen)}
        return "；".join(b for b in seen if b not in cited)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view (CLI, routing explanations)."""
        return {
            "matter": self.matter.code,
            "matter_name": self.matter.name,
            "domain": self.matter.domain,
            "jurisdiction": self.jurisdiction,
            "at": self.at.isoformat(),
            "agency": self.agency.code,
            "agency_name": self.agency.name,
            "agency_kind": self.agency.kind,
            "queue": self.agency.queue,
            "street": self.street.name if self.street else None,
            "lead": self.lead,
            "co_owners": [a.code for a in self.co_owners],
            "item": {
                "id": self.item.id,
                "power": self.item.power.name,
                "type": self.item.power.type,
                "law": self.item.power.law,
                "article": self.item.power.article,
                "effective_from": self.item.effective_from.isoformat(),
                "effective_to": self.item.effective_to.isoformat() if self.item.effective_to else None,
                "delegated_by": self.item.delegated_by,
            },
            "basis": self.basis,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts of a loaded catalogue (``hotline catalogue stats``)."""

    jurisdictions: int
    streets: int
    agencies: int
    agency_kinds: int
    matters: int
    domains: int
    responsibility_items: int
    calendar_years: tuple[int, ...] = field(default_factory=tuple)
