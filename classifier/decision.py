"""The routing decision: from the model's ranked labels to the agency that must handle the ticket.

Pure: takes the ranking, the catalogue and the ticket's place and time; no model, no I/O. The owner
comes from the responsibility list in force at the ticket's received time for the resolved address
(or the default jurisdiction, said so). Below the confidence threshold the ticket goes to the manual
queue with the same explanation, so the dispatcher starts from the best guess.

The confidence of a routing is the agency's, not the matter's: the probabilities of all candidate
matters that the chosen agency owns for this place and date, summed. A letter the model cannot place
between "公共体育场馆" and "公共文化设施" goes to the same culture bureau either way. Measured on the real
letters (``benchmarks/classifier_cold_start.py``): at threshold 0.5 the auto share rose from 0.68 to
0.74 with the precision of auto decisions unchanged (0.874 -> 0.877).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from classifier.text import has_content, has_content_normalized
from models.directory import Catalogue
from models.ownership import NoOwner
from models.workcalendar import local_date

NONE_LABEL = "NONE"
AUTO, MANUAL, UNROUTABLE = "auto", "manual", "unroutable"


@dataclass(frozen=True)
class Alternative:
    matter: str
    matter_name: str
    agency: str | None
    agency_name: str | None
    agency_kind: str | None
    confidence: float
    basis: str | None = None


@dataclass(frozen=True)
class Decision:
    decision: str  # auto | manual | unroutable
    reason: str
    confidence: float  # of the routing: the chosen agency's candidate matters together
    matter: str | None = None
    matter_confidence: float | None = None  # of the matter alone
    matter_name: str | None = None
    domain: str | None = None
    agency: str | None = None
    agency_name: str | None = None
    agency_kind: str | None = None
    jurisdiction: str | None = None
    street: str | None = None
    address_resolved: bool = False
    basis: str | None = None
    responsibility_item: str | None = None
    co_owners: tuple[str, ...] = ()
    alternatives: tuple[Alternative, ...] = ()
    model_version: str | None = None
    excluded_agencies: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["alternatives"] = [asdict(a) for a in self.alternatives]
        d["co_owners"] = list(self.co_owners)
        d["excluded_agencies"] = list(self.excluded_agencies)
        return d


@dataclass(frozen=True)
class _Owner:
    agency: str
    name: str
    kind: str
    basis: str
    item: str
    co_owners: tuple[str, ...]


# What a decision shows besides its choice: the next-best matters, preferably of as many other agencies.
ALTERNATIVES = 3


def decide(
    ranking: Sequence[tuple[str, float]],
    catalogue: Catalogue,
    *,
    text: str,
    address: str | None,
    received_at: datetime,
    threshold: float,
    default_jurisdiction: str,
    model_version: str | None = None,
    exclude_agencies: Iterable[str] = (),
    label_kind: str = "matter",
    normalized: str | None = None,
    owners: OwnerCache | None = None,
) -> Decision:
    """Decide where one ticket goes. ``ranking`` is the model's labels, best first, with probabilities.

    ``normalized``: ``classifier.text.normalize(text)`` when the caller has it already (the router
    normalised the batch for the model; normalising again cost ~5% of routing time). ``owners``: a
    cache of responsibility-list lookups shared by the tickets of one batch (see :class:`OwnerCache`).
    """
    excluded = tuple(sorted(set(exclude_agencies)))
    common = {"model_version": model_version, "excluded_agencies": excluded}
    if not (has_content_normalized(normalized) if normalized is not None else has_content(text)):
        return Decision(UNROUTABLE, "工单内容为空或没有可识别的文字", 0.0, **common)
    if not ranking:
        return Decision(MANUAL, "模型没有给出任何候选", 0.0, **common)

    # An empty address field resolves to nothing: skip the resolver's call for it.
    given = catalogue.explain_address(address) if address and address.strip() else None
    match = given.match if given is not None else None
    # An address field naming another district, or places that contradict each other, is no unknown address:
    # the default jurisdiction's agency would be a guess against what the caller said. A dispatcher decides
    # (the suggestion below still names the default's owner). A place only in the text is no such statement.
    doubt = given.reason if given is not None and given.doubtful else None
    if match is None and doubt is None:  # callers often say where in the text itself ("塘沽新港街道某小区门口…")
        match = catalogue.explain_address(text[:500]).match
    jurisdiction = match.jurisdiction if match else default_jurisdiction
    street = match.street if match else None
    place = {"jurisdiction": jurisdiction, "street": match.street_name if match else None,
             "address_resolved": match is not None}
    where = "" if match else (f"（{doubt}，需人工确认辖区；建议按默认辖区{jurisdiction}）" if doubt
                              else f"（地址未能定位到辖区，按默认辖区{jurisdiction}处理）")

    if label_kind == "domain":
        label, p = ranking[0]
        return Decision(MANUAL, f"当前模型只识别一级分类“{label}”，需人工确定承办单位{where}", p,
                        domain=label, **place, **common)
    if label_kind == "agency":
        return _by_agency(ranking, catalogue, threshold, where, place, common, excluded)

    top_label, top_p = ranking[0]
    if top_label == NONE_LABEL and top_p >= threshold:
        return Decision(UNROUTABLE, "表扬、感谢或已在受理环节答复的咨询，无需派单", top_p, **place, **common)

    candidates: list[tuple[str, float, _Owner | None]] = []
    first_taken: int | None = None  # index of the first candidate whose owner has not returned the ticket
    agencies: set[str] = set()
    for label, p in ranking:
        if label == NONE_LABEL or label not in catalogue.matters:
            continue
        owner = (owners.get(catalogue, label, jurisdiction, received_at, street) if owners is not None
                 else _owner(catalogue, label, jurisdiction, received_at, street))
        if owner is not None and owner.agency in excluded:
            # the lead returned it: a co-owner of the same matter (首接负责 passes on) comes first
            owner = next((_co_owner(catalogue, owner, code) for code in owner.co_owners if code not in excluded),
                         owner)
        candidates.append((label, p, owner))
        if owner is not None:
            agencies.add(owner.agency)
            if first_taken is None and owner.agency not in excluded:
                first_taken = len(candidates) - 1
        # Owners are looked up lazily: a decision shows its choice and ALTERNATIVES more matters, preferably
        # of as many other agencies (what a dispatcher chooses between), so it reads on while they repeat.
        if first_taken is not None and len(candidates) > first_taken + ALTERNATIVES and len(agencies) > ALTERNATIVES:
            break

    # The first candidate whose owner has not already returned the ticket is the one we send it to.
    if first_taken is None:
        return Decision(MANUAL, "没有找到尚未退回的、依权责清单有管辖权的单位，需人工指定" + where,
                        candidates[0][1] if candidates else 0.0, alternatives=_alts(catalogue, candidates, None),
                        **place, **common)
    label, matter_p, owner = candidates[first_taken]
    assert owner is not None
    matter = catalogue.matter(label)
    # the agency's confidence sums its matters among the choice and the next ALTERNATIVES, as measured
    window = candidates[:first_taken + 1 + ALTERNATIVES]
    p = min(1.0, matter_p + sum(q for lb, q, o in window
                                if lb != label and o is not None and o.agency == owner.agency))
    said = f"置信度{p:.2f}" if p - matter_p < 0.005 else f"置信度{p:.2f}（该单位承办的候选事项合计，本事项{matter_p:.2f}）"
    if p >= threshold and doubt is not None:
        decision, reason = MANUAL, f"{doubt}，转人工派单；建议“{matter.name}”（{said}）→{owner.name}（按默认辖区{jurisdiction}）"
    elif p >= threshold:
        decision, reason = AUTO, f"识别为“{matter.name}”，{said}，依权责清单派至{owner.name}{where}"
    else:
        decision, reason = MANUAL, f"{said}低于阈值{threshold:.2f}，转人工派单；建议“{matter.name}”→{owner.name}{where}"
    return Decision(
        decision, reason, p, matter=label, matter_confidence=round(matter_p, 4), matter_name=matter.name,
        domain=matter.domain, agency=owner.agency,
        agency_name=owner.name, agency_kind=owner.kind, basis=owner.basis, responsibility_item=owner.item,
        co_owners=owner.co_owners, alternatives=_alts(catalogue, candidates, label, owner.agency), **place,
        **common,
    )


class OwnerCache:
    """Responsibility-list answers memoised per (matter, jurisdiction, street, Shanghai day).

    The list in force changes by the day, and most tickets name no street, so the same question recurs:
    each lookup walks the ownership index, joins the legal bases and builds an ``_Owner`` (keyed by the
    exact received time, as before, it missed for nearly every ticket: 7% of a busy worker's CPU; kept for
    one batch only, the first tickets of every batch still missed: 2-3%). A router keeps one for its
    lifetime, as its catalogue is fixed; one cache must serve one catalogue only. At ``max_entries`` it
    starts afresh, which bounds it without an LRU's bookkeeping on every hit.
    """

    def __init__(self, max_entries: int = 50_000) -> None:
        self._memo: dict[tuple[str, str, date, str | None], _Owner | None] = {}
        self._max = max_entries

    def get(self, catalogue: Catalogue, matter: str, jurisdiction: str, at: datetime, street: Any) -> _Owner | None:
        key = (matter, jurisdiction, local_date(at),
               street if street is None or isinstance(street, str) else street.code)
        try:
            return self._memo[key]
        except KeyError:
            if len(self._memo) >= self._max:
                self._memo = {}
            found = self._memo[key] = _owner(catalogue, matter, jurisdiction, at, street)
            return found

    def __len__(self) -> int:
        return len(self._memo)


def _owner(catalogue: Catalogue, matter: str, jurisdiction: str, at: datetime, street: Any) -> _Owner | None:
    try:
        o = catalogue.owner(matter, jurisdiction, at, street)
    except NoOwner:
        return None
    return _Owner(o.agency.code, o.agency.name, o.agency.kind, o.basis, o.item.id,
                  tuple(a.code for a in o.co_owners))


def _co_owner(catalogue: Catalogue, lead: _Owner, code: str) -> _Owner:
    agency = catalogue.agency(code)
    others = tuple(c for c in (lead.agency, *lead.co_owners) if c != code)
    return _Owner(agency.code, agency.name, agency.kind, lead.basis, lead.item, others)


def _alts(catalogue: Catalogue, candidates: list[tuple[str, float, _Owner | None]],
          chosen: str | None, chosen_agency: str | None = None, k: int = ALTERNATIVES) -> tuple[Alternative, ...]:
    """Up to ``k`` next-best matters in ranking order: first the best of each agency other than the chosen
    one (the dispatcher's real choices), then, if those are fewer than ``k``, the best of the rest."""
    seen: set[str | None] = {chosen_agency}
    firsts, others = [], []
    for n, (label, _, owner) in enumerate(candidates):
        if label == chosen:
            continue
        agency = owner.agency if owner is not None else None
        (firsts if agency is not None and agency not in seen else others).append(n)
        seen.add(agency)
    out = []
    for n in sorted(firsts[:k] + others[:max(0, k - len(firsts))]):
        label, p, owner = candidates[n]
        m = catalogue.matter(label)
        out.append(Alternative(label, m.name, owner.agency if owner else None, owner.name if owner else None,
                               owner.kind if owner else None, round(p, 4), owner.basis if owner else None))
    return tuple(out)


def _by_agency(ranking: Sequence[tuple[str, float]], catalogue: Catalogue, threshold: float, where: str,
               place: dict[str, Any], common: dict[str, Any], excluded: tuple[str, ...]) -> Decision:
    """Models trained on a user's history labelled by agency code: the agency is the prediction itself."""
    ranked = [(a, p) for a, p in ranking if a in catalogue.agencies and a not in excluded]
    if not ranked:
        return Decision(MANUAL, "模型给出的单位均不在目录中或已退回" + where, 0.0, **place, **common)
    code, p = ranked[0]
    agency = catalogue.agency(code)
    alts = tuple(Alternative("", "", a, catalogue.agency(a).name, catalogue.agency(a).kind, round(q, 4))
                 for a, q in ranked[1:4])
    decision = AUTO if p >= threshold else MANUAL
    reason = f"按历史派单模型派至{agency.name}（置信度{p:.2f}）{where}" if decision == AUTO else \
        f"置信度{p:.2f}低于阈值{threshold:.2f}，转人工派单；建议{agency.name}{where}"
    return Decision(decision, reason, p, agency=code, agency_name=agency.name, agency_kind=agency.kind,
                    alternatives=alts, **place, **common)
