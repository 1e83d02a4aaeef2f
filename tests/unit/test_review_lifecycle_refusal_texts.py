"""The lifecycle's refusal reasons reach Chinese-speaking users: the console shows them in a ticket's timeline and
tells the user who acted ("您对工单 … 的「派单」未被系统受理：<reason>"). Each reads in Chinese first, in the
console's words for statuses and actions, with the English after " / " for logs and operators. The same for the
event checks (models.events) whose rejections the console answers with (400)."""

from __future__ import annotations

import ast
import inspect
import re
import sys
from datetime import timedelta
from typing import Any

import pytest

import models.lifecycle as lifecycle
from models.events import parse_event
from models.lifecycle import EVENT_NAMES, STATUS_NAMES, Refusal, Status, apply
from models.tickets import Rejection
from tests.unit.test_lifecycle import (
    ILLEGAL,
    KNOWN,
    A,
    B,
    Clock,
    by,
    by_agency,
    event_json,
    returned,
    routed,
    run,
    signed_state,
)

CJK = re.compile(r"[\u4e00-\u9fff「]")  # a Chinese character, or 「 opening an action's name


def _refusal_sites() -> set[int]:
    """The lines of models/lifecycle.py that build a Refusal."""
    tree = ast.parse(inspect.getsource(lifecycle))
    return {n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "Refusal"}


def _more_cases() -> dict[str, tuple[Any, Any]]:
    """Refusal branches ILLEGAL (tests/unit/test_lifecycle.py) does not reach: (state, event, apply's kwargs)."""
    c = Clock()
    cases: dict[str, tuple[Any, Any]] = {}
    state = signed_state(c)
    closes = c.now  # the return comes a minute after its window closed
    cases["late return"] = (state, returned(c), {"return_closes": closes})
    cases["reassign by an agency"] = (state, by(c, "reassigned", "agency", agency=A, target_agency=B), {})
    cases["reassign to an unknown agency"] = (state, by(c, "reassigned", "dispatcher", target_agency="TJ-X"), {})
    cases["reassign to the handler"] = (state, by(c, "reassigned", "dispatcher", target_agency=A), {})
    manual = run(c, routed(c, None, decision="manual"), by(c, "reassigned", "dispatcher", target_agency=A))
    cases["reassign while a dispatch is pending"] = (manual, by(c, "reassigned", "dispatcher", target_agency=B), {})
    rerouting = run(c, routed(c, A), returned(c, A))
    cases["reassign while re-routing"] = (rerouting, by(c, "reassigned", "dispatcher", target_agency=B), {})
    dispatched = run(c, routed(c, A))
    ahead = by_agency(c, "signed")  # an hour ahead of the stage's clock
    cases["stamped in the future"] = (dispatched, ahead, {"now": ahead.occurred_at - timedelta(hours=1),
                                                          "max_skew": timedelta(minutes=5)})
    early = by_agency(Clock(), "signed", event_id="early")  # T0 + 1 minute, long before the dispatch
    cases["stamped before the previous step"] = (dispatched, early, {"now": c.now, "max_skew": timedelta(minutes=5)})
    return cases


def _all_refusals(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], set[int]]:
    """Every case's refusal reason, and the lines of models/lifecycle.py that built them."""
    built: set[int] = set()

    def recording(reason: str) -> Refusal:
        built.add(sys._getframe(1).f_lineno)
        return Refusal(reason)

    monkeypatch.setattr(lifecycle, "Refusal", recording)
    reasons: dict[str, str] = {}
    for case, (build, _) in ILLEGAL.items():
        state, event = build(Clock())
        reasons[case] = _refused(apply(state, event, known_agencies=KNOWN), case)
    for case, (state, event, kwargs) in _more_cases().items():
        reasons[case] = _refused(apply(state, event, known_agencies=KNOWN, **kwargs), case)
    return reasons, built


def _refused(outcome: Any, case: str) -> str:
    assert isinstance(outcome, Refusal), f"{case}: accepted -> {outcome}"
    return outcome.reason


def test_every_refusal_of_the_lifecycle_is_driven_here(monkeypatch: pytest.MonkeyPatch) -> None:
    # a new refusal in models/lifecycle.py needs a case here (and Chinese words)
    _, built = _all_refusals(monkeypatch)
    assert built == _refusal_sites()


def test_every_refusal_reads_in_chinese_first_with_the_english_after(monkeypatch: pytest.MonkeyPatch) -> None:
    reasons, _ = _all_refusals(monkeypatch)
    for case, reason in reasons.items():
        zh, sep, en = reason.partition(" / ")
        assert CJK.match(zh), f"{case}: {reason!r} does not start with Chinese"
        assert sep and re.search(r"[A-Za-z]{3}", en), f"{case}: {reason!r} has no English after ' / '"
        # statuses are named as the console names them, not by their values
        assert not re.search(rf"\b({'|'.join(Status)})\b", zh), f"{case}: {zh!r}"


def test_a_refused_action_names_the_status_and_the_action_as_the_console_does(monkeypatch: pytest.MonkeyPatch
                                                                              ) -> None:
    reasons, _ = _all_refusals(monkeypatch)
    zh = reasons["sign twice"].partition(" / ")[0]
    assert f"「{STATUS_NAMES[Status.SIGNED]}」" in zh and f"「{EVENT_NAMES['signed']}」" in zh
    assert "「待签收」" in zh  # where it is allowed
    # routed to the manual queue first (attempt 1): the pending dispatch is its first to an agency, the ticket's
    # second routing; a re-routing after a return may go to the manual queue, so it is counted among routings
    assert reasons["reassign while a dispatch is pending"].startswith("工单的第 1 次派发（派往 BH-SCJG）尚未完成")
    assert reasons["reassign while re-routing"].startswith("工单的第 2 次分拨（退单后重新分拨）尚未完成")
    assert reasons["late return"].startswith("退单时限已过（9月26日09:")


@pytest.mark.parametrize("fields", [
    {"event_id": ""}, {"type": "escalated"}, {"role": "mayor"}, {"days": "3"}, {"days": -3},
    {"explanation": "长" * 10_001}, {"actor": "x" * 200}, {"agency": 7}, {"occurred_at": "yesterday"},
])
def test_a_rejected_event_the_console_could_send_reads_in_chinese_first(fields: dict[str, Any]) -> None:
    # the console checks its event with parse_event before sending it, and answers 400 with the reason
    result = parse_event(event_json(**fields))
    assert isinstance(result, Rejection)
    zh, sep, en = result.reason.partition(" / ")
    assert CJK.search(zh[:12]) and sep and en, result.reason
