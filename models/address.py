"""Free-text address -> jurisdiction and street (街镇), or an explicit "cannot".

Addresses in tickets are informal: "塘沽新港二号路", "泰达第三大街", "东丽湖恒大", "杨家泊镇某村".
The resolver looks for every known term (district names and aliases, street/town names and
their aliases, regular-expression patterns of typical place names, names of other districts)
and keeps only the longest hit where hits overlap, so "东丽湖街道" is one street hit rather than
"东丽" plus something. Then:

* one street found -> its jurisdiction, unless a district term contradicts it;
* no street -> the most specific jurisdiction named (经开区 over its parent 滨海新区);
* only other districts named, contradictory names, or nothing known -> no match, with a reason.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from models.domain import Jurisdiction, Street

# Other districts of Tianjin: an address naming only these lies outside our jurisdictions.
OTHER_TIANJIN_DISTRICTS: tuple[str, ...] = (
    "和平区",
    "河东区",
    "河西区",
    "南开区",
    "河北区",
    "红桥区",
    "西青区",
    "津南区",
    "北辰区",
    "武清区",
    "宝坻区",
    "宁河区",
    "静海区",
    "蓟州区",
    # short forms that name no place inside our jurisdictions
    "西青",
    "津南",
    "北辰",
    "武清",
    "宝坻",
    "宁河",
    "静海",
    "蓟州",
)

_SPACE = re.compile(r"\s+")

# Tianjin's districts, and the three merged into 滨海新区 in 2009 (addresses still name them): only before one of
# these (or 市辖区) is 天津/天津市 the city part of an address. Elsewhere 天津 is part of a name (天津大道,
# 天津港保税区, 天津滨海国际机场) and stripping it would merge or split places.
TIANJIN_DISTRICTS: tuple[str, ...] = (
    "滨海新区", "和平区", "河东区", "河西区", "南开区", "河北区", "红桥区", "东丽区", "西青区", "津南区", "北辰区",
    "武清区", "宝坻区", "宁河区", "静海区", "蓟州区", "塘沽区", "汉沽区", "大港区",
)
_CITY_PREFIX = re.compile("^天津市?(?:市辖区|(?=" + "|".join(TIANJIN_DISTRICTS) + "))")


def strip_city_prefix(text: str) -> str:
    """``text`` without a leading 天津市/天津 (and 市辖区) that precedes a district name; any other 天津 kept."""
    return _CITY_PREFIX.sub("", text, count=1)


@dataclass(frozen=True, slots=True)
class AddressMatch:
    """Where an address lies. ``method``: street | street_alias | jurisdiction | alias | pattern."""

    jurisdiction: str
    street: str | None  # street code
    method: str
    matched: str  # the text that decided it
    street_name: str | None = None


@dataclass(frozen=True, slots=True)
class AddressResolution:
    """A match, or None with the reason why the address could not be placed. ``doubtful``: not merely
    unknown, the address names a place outside our districts or places that contradict each other, so no
    default may be assumed for it (see ``classifier.decision.decide``)."""

    match: AddressMatch | None
    reason: str
    doubtful: bool = False

    @property
    def resolved(self) -> bool:
        return self.match is not None


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    text: str
    target: str  # jurisdiction code, street code, or an outside district name
    what: str  # "street", "street_alias", "jurisdiction", "alias", "pattern", "outside"


def normalize(text: str) -> str:
    """NFKC (full-width -> half-width), no whitespace, upper-case Latin, no leading 中国 or city prefix
    (:func:`strip_city_prefix`)."""
    t = _SPACE.sub("", unicodedata.normalize("NFKC", text or "")).upper()
    return strip_city_prefix(t.removeprefix("中国"))


def jurisdiction_term(name: str) -> str:
    """How the resolver reads a jurisdiction's official name: also written without its city (天津经济技术开发区
    as 经济技术开发区), which :func:`normalize` keeps because no district name follows it."""
    return normalize(name).removeprefix("天津")


class AddressResolver:
    """Built once from the jurisdictions (their aliases, patterns and streets)."""

    def __init__(
        self, jurisdictions: Iterable[Jurisdiction], outside: Iterable[str] = OTHER_TIANJIN_DISTRICTS
    ) -> None:
        self._jurisdictions = {j.code: j for j in jurisdictions if j.addressable}
        self._streets: dict[str, Street] = {}
        terms: dict[str, tuple[str, str]] = {}  # term -> (target, what)
        for j in self._jurisdictions.values():
            terms[jurisdiction_term(j.name)] = (j.code, "jurisdiction")
            for alias in j.aliases:
                terms.setdefault(normalize(alias), (j.code, "alias"))
            for s in j.streets:
                self._streets[s.code] = s
                terms[normalize(s.name)] = (s.code, "street")
                for alias in s.aliases:
                    terms.setdefault(normalize(alias), (s.code, "street_alias"))
        for name in outside:
            terms.setdefault(normalize(name), (name, "outside"))
        self._terms = terms
        # Longest terms first so that the regex alternation prefers them at the same position.
        ordered = sorted(terms, key=len, reverse=True)
        self._term_re = re.compile("|".join(re.escape(t) for t in ordered)) if ordered else None
        # Positions where a term can start at all: a ticket's text is hundreds of characters with a few
        # place names in it, and trying the alternation at every character was most of the resolver's
        # time. The regex engine finds the candidate first characters; the alternation runs only there.
        firsts = "".join(sorted({t[0] for t in ordered if t}))
        self._first_re = re.compile(f"[{re.escape(firsts)}]") if firsts and "" not in terms else None
        self._patterns = [(re.compile(p), j.code) for j in self._jurisdictions.values() for p in j.patterns]

    @property
    def streets(self) -> dict[str, Street]:
        return dict(self._streets)

    def _hits(self, text: str) -> list[_Hit]:
        hits: list[_Hit] = []
        if self._term_re is not None:
            # Overlapping search: try a match at every position where a term can start (the same hits
            # as trying every position), then drop hits inside longer ones.
            match = self._term_re.match
            starts = (f.start() for f in self._first_re.finditer(text)) if self._first_re else range(len(text))
            for pos in starts:
                m = match(text, pos)
                if m:
                    target, what = self._terms[m.group(0)]
                    hits.append(_Hit(m.start(), m.end(), m.group(0), target, what))
        for pattern, code in self._patterns:
            for m in pattern.finditer(text):
                hits.append(_Hit(m.start(), m.end(), m.group(0), code, "pattern"))
        kept = []
        for h in hits:
            inside_longer = any(
                o is not h and o.start <= h.start and h.end <= o.end and (o.end - o.start) > (h.end - h.start)
                for o in hits
            )
            if not inside_longer:
                kept.append(h)
        return kept

    def _ancestors(self, code: str) -> set[str]:
        seen = set()
        j = self._jurisdictions.get(code)
        while j is not None and j.parent and j.parent not in seen:
            seen.add(j.parent)
            j = self._jurisdictions.get(j.parent)
        return seen

    def _most_specific(self, codes: set[str]) -> str | None:
        """The one code of which all others are ancestors, or None if the codes disagree."""
        for c in codes:
            if codes - {c} <= self._ancestors(c):
                return c
        return None

    def resolve(self, text: str) -> AddressResolution:
        norm = normalize(text)
        if not norm:
            return AddressResolution(None, "地址为空")
        hits = self._hits(norm)
        street_hits = [h for h in hits if h.what in ("street", "street_alias")]
        place_hits = [h for h in hits if h.what in ("jurisdiction", "alias", "pattern")]
        outside = sorted({h.target for h in hits if h.what == "outside"})
        named = {h.target for h in place_hits}

        if outside and not street_hits:
            # "西青开发区" names another district plus a generic term of ours: do not guess.
            return AddressResolution(None, f"地址位于{'、'.join(outside)}，不属于本系统辖区", doubtful=True)
        if outside:
            # "西青区新港街道" contradicts itself as "东丽区新港街道" does: another district is no ancestor
            texts = "、".join(dict.fromkeys(h.text for h in street_hits))
            return AddressResolution(None, f"街镇“{texts}”与地名“{'、'.join(outside)}”所属辖区矛盾", doubtful=True)

        if street_hits:
            # A full name (XX街道/XX镇) outranks an alias when several streets are mentioned.
            full = {h.target for h in street_hits if h.what == "street"}
            candidates = full or {h.target for h in street_hits}
            if len(candidates) > 1:
                jurisdictions = {self._streets[c].jurisdiction for c in candidates}
                code = self._most_specific(jurisdictions | named)
                if code is None:
                    return AddressResolution(
                        None, f"地址同时指向多个辖区的街镇：{'、'.join(sorted(candidates))}", doubtful=True
                    )
                texts = "、".join(h.text for h in street_hits)
                return AddressResolution(
                    AddressMatch(code, None, "jurisdiction", texts),
                    f"提到多个街镇（{texts}），只确定到辖区",
                )
            street = self._streets[next(iter(candidates))]
            hit = next(h for h in street_hits if h.target == street.code)
            allowed = {street.jurisdiction} | self._ancestors(street.jurisdiction)
            conflicting = named - allowed
            if conflicting:
                names = "、".join(h.text for h in place_hits if h.target in conflicting)
                return AddressResolution(None, f"街镇“{hit.text}”与地名“{names}”所属辖区矛盾", doubtful=True)
            method = "street" if hit.what == "street" else "street_alias"
            return AddressResolution(
                AddressMatch(street.jurisdiction, street.code, method, hit.text, street.name),
                f"按街镇“{hit.text}”定位",
            )

        if named:
            code = self._most_specific(named)
            if code is None:
                texts = "、".join(h.text for h in place_hits)
                return AddressResolution(None, f"地址中的地名指向不同辖区：{texts}", doubtful=True)
            hit = max((h for h in place_hits if h.target == code), key=lambda h: h.end - h.start)
            return AddressResolution(
                AddressMatch(code, None, hit.what, hit.text),
                f"按地名“{hit.text}”定位到辖区，未能确定街镇",
            )

        return AddressResolution(None, "地址中没有可识别的区、街镇或地名")
