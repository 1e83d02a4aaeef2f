"""Supervision rules as pure functions: one lifecycle fact in, zero or more :class:`Alert` out.

* time — :func:`deadline_alert` turns a due checkpoint into a warning, overdue, 催办 or 通报 alert;
* misrouting — :func:`return_alerts` (退单 with its reason, late returns, ping-pong, designation),
  :func:`dispatch_alerts` (错派 against the responsibility list in force, sending a ticket back to an
  agency that returned it), :func:`sign_alerts` (an agency signs what the classifier confidently gave to
  another one: a review hint).

Each function sees the ticket's facts *before* the event, so the answers do not depend on how the
lifecycle stage ordered its writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models.directory import Catalogue
from models.lifecycle import RETURN_REASONS
from models.supervision.alerts import (
    CRITICAL,
    DESIGNATION,
    HANDLE_DEADLINE,
    INFO,
    MISDISPATCH,
    PING_PONG,
    RETURNED,
    REVIEW_HINT,
    SIGN_DEADLINE,
    WARNING,
    Alert,
    alert_key,
)
from models.supervision.deadlines import (
    CENSURE,
    OVERDUE,
    REMINDER,
    STAGE_NAMES_ZH,
    Checkpoint,
    Deadline,
    return_window,
)
from models.supervision.facts import TicketFacts
from models.workcalendar import as_local

DEADLINE_RULES = {"sign": SIGN_DEADLINE, "handle": HANDLE_DEADLINE}
_DONE_ZH = {"sign": "签收", "handle": "办结"}


def when_zh(moment: datetime) -> str:
    m = as_local(moment)
    return f"{m.month}月{m.day}日{m:%H:%M}"


def agency_name(catalogue: Catalogue, code: str | None) -> str:
    if not code:
        return "（未指定单位）"
    agency = catalogue.agencies.get(code)
    return agency.name if agency else code


def _names(catalogue: Catalogue, codes: tuple[str, ...] | list[str]) -> str:
    return "、".join(agency_name(catalogue, c) for c in codes)


# --- time ---------------------------------------------------------------------------------------
def deadline_alert(facts: TicketFacts, deadline: Deadline, checkpoint: Checkpoint, catalogue: Catalogue) -> Alert:
    """The alert for one due checkpoint of one deadline."""
    rule = DEADLINE_RULES[deadline.stage]
    tid, stage_zh, done = facts.ticket_id, STAGE_NAMES_ZH[deadline.stage], _DONE_ZH[deadline.stage]
    name, due, limit = agency_name(catalogue, facts.agency), when_zh(deadline.due), deadline.limit.describe()
    level = checkpoint.level
    if level.startswith("warn_"):
        pct = level.removeprefix("warn_")
        severity = INFO if checkpoint.rank == 0 else WARNING
        message = f"工单{tid}的{stage_zh}时限（{limit}）已用去{pct}%，{name}须于{due}前{done}。"
    elif level == OVERDUE:
        severity = CRITICAL
        message = f"工单{tid}已超过{stage_zh}时限（{limit}，截止{due}），{name}仍未{done}。"
    elif level == CENSURE:
        severity = CRITICAL
        days = catalogue.sla.censure_after_working_days
        message = f"工单{tid}{stage_zh}逾期已满{days}个工作日仍未{done}，{name}列入通报名单。"
    else:  # reminder_<n>
        n = int(level.removeprefix(f"{REMINDER}_"))
        severity = CRITICAL
        days = n * catalogue.sla.reminder_every_working_days
        message = f"工单{tid}{stage_zh}已逾期{days}个工作日仍未{done}，向{name}发出第{n}次催办。"
    details: dict[str, Any] = {
        "stage": deadline.stage, "cycle": deadline.cycle, "start": deadline.start.isoformat(),
        "limit": limit, "clock": deadline.limit.clock, "source": deadline.limit.source,
        "checkpoint_at": checkpoint.at.isoformat(), "extension_days": deadline.extension_days,
    }
    return Alert(alert_key(tid, rule, f"{level}@{deadline.cycle}"), rule, level, severity, tid, facts.agency,
                 deadline.due, message, checkpoint.at, details)


# --- misrouting -----------------------------------------------------------------------------------
def return_alerts(before: TicketFacts, event: Any, catalogue: Catalogue) -> list[Alert]:
    """退单: always reported with its reason (flagged ``late`` after the window); a second return is
    ping-pong; a return on the last dispatch attempt needs the hotline to designate a handler."""
    tid, at, agency, attempt = before.ticket_id, as_local(event.occurred_at), event.agency, before.attempt
    code = getattr(event, "reason_code", "") or ""
    reason = RETURN_REASONS.get(code, code or "未说明")
    window = return_window(before, catalogue)
    late = window is not None and at > window.due
    name = agency_name(catalogue, agency)
    tail = f"，且已超过退单时限（应于{when_zh(window.due)}前退单），按规定应予办理" if late and window else ""
    # the dispatch returned, counted as a clerk does: routings to the manual queue are no dispatch (``attempt``,
    # in the key and details, counts them)
    dispatch = max(before.dispatches, 1)
    alerts = [Alert(
        alert_key(tid, RETURNED, f"a{attempt}"), RETURNED, "late" if late else "in_time", WARNING if late else INFO,
        tid, agency, window.due if window else None,
        f"工单{tid}被{name}退单（第{dispatch}次派发），理由：{reason}{tail}。", at,
        {"attempt": attempt, "reason_code": code, "reason": reason, "basis": getattr(event, "basis", None),
         "explanation": getattr(event, "explanation", None), "late": late},
    )]
    returners = tuple(dict.fromkeys((*before.returned_by, agency or "")))
    # dispatches returned, this one included (one agency may return twice: A, B, A); routings to the manual
    # queue are no dispatch. The lifecycle designates on the same count.
    returns = before.returns + 1
    if before.returned_by:  # this is the second (or later) return of the same ticket
        alerts.append(Alert(
            alert_key(tid, PING_PONG, f"returns@{attempt}"), PING_PONG, "returns", WARNING, tid, agency, None,
            f"工单{tid}已被退单{returns}次（{_names(catalogue, returners)}），"
            f"在单位间来回推诿，请协调明确承办单位。", at,
            {"attempt": attempt, "returned_by": list(returners),
             "same_agency_again": agency in before.returned_by},
        ))
    if returns >= catalogue.sla.max_dispatch_attempts:
        # keyed per attempt: a designated handler that returns it too makes the lifecycle designate again
        alerts.append(Alert(
            alert_key(tid, DESIGNATION, f"required@{attempt}"), DESIGNATION, "required", CRITICAL, tid, agency, None,
            f"工单{tid}经{returns}次派发均被退回（{_names(catalogue, returners)}），需热线指定承办单位，请督办。",
            at, {"attempts": returns, "returned_by": list(returners)},
        ))
    return alerts


def dispatch_alerts(before: TicketFacts, event: Any, catalogue: Catalogue, *,
                    default_jurisdiction: str = "BH") -> list[Alert]:
    """A dispatch (``routed`` with an agency): 错派 against the responsibility list in force for the
    ticket's place on its received date, and ping-pong when it goes back to an agency that returned it."""
    agency = event.agency
    if not agency or getattr(event, "decision", "auto") != "auto":
        return []
    tid, at, attempt = before.ticket_id, as_local(event.occurred_at), int(getattr(event, "attempt", 0) or 0)
    name, alerts = agency_name(catalogue, agency), []
    if agency in before.returned_by:
        dispatch = before.dispatches + 1  # this one: the ticket's dispatches to agencies, not its attempts
        alerts.append(Alert(
            alert_key(tid, PING_PONG, f"back_to_{agency}@{attempt}"), PING_PONG, "back_to_returner", WARNING,
            tid, agency, None, f"工单{tid}被再次派给此前已退单的{name}（第{dispatch}次派发），存在来回推诿风险。", at,
            {"attempt": attempt, "returned_by": list(before.returned_by)},
        ))
    matter = getattr(event, "matter", None) or before.matter
    designated = before.designation or bool(getattr(event, "designation", False))
    if matter and not designated:  # a designation overrides the list on purpose
        try:
            placement = catalogue.place(matter, before.address or "", before.received_at, default_jurisdiction)
        except LookupError:  # unknown matter or no owner in the list: nothing to contradict
            placement = None
        if placement is not None:
            own = placement.ownership
            allowed = (own.agency.code, *(a.code for a in own.co_owners))
            if agency not in allowed:
                j = catalogue.jurisdictions.get(placement.jurisdiction)
                alerts.append(Alert(
                    alert_key(tid, MISDISPATCH, f"a{attempt}"), MISDISPATCH, "contradicts_list", WARNING, tid, agency,
                    None,
                    f"工单{tid}被派给{name}，但按{j.name if j else placement.jurisdiction}"
                    f"{own.at.isoformat()}施行的权责清单，“{own.matter.name}”应由{own.agency.name}承办。", at,
                    {"attempt": attempt, "matter": matter, "owner": own.agency.code,
                     "co_owners": [a.code for a in own.co_owners], "basis": own.basis, "item": own.item.id,
                     "jurisdiction": placement.jurisdiction, "address_resolved": not placement.defaulted,
                     "decided_by": getattr(event, "decided_by", None)},
                ))
    return alerts


def sign_alerts(before: TicketFacts, event: Any, catalogue: Catalogue, *, threshold: float) -> list[Alert]:
    """Review hint: the signing agency is not the one the classifier chose with confidence >= threshold."""
    predicted, confidence = before.predicted_agency, before.predicted_confidence
    if not predicted or confidence is None or confidence < threshold or event.agency == predicted:
        return []
    if predicted in before.returned_by or before.designation:
        return []  # the predicted agency refused it with a legal basis, or the hotline designated on purpose
    tid, at, attempt = before.ticket_id, as_local(event.occurred_at), before.attempt
    return [Alert(
        alert_key(tid, REVIEW_HINT, f"a{attempt}"), REVIEW_HINT, "signed_by_other", INFO, tid, event.agency, None,
        f"{agency_name(catalogue, event.agency)}签收了工单{tid}，但分类器以{confidence:.0%}的置信度判断应由"
        f"{agency_name(catalogue, predicted)}承办，建议复核派单。", at,
        {"attempt": attempt, "predicted_agency": predicted, "confidence": confidence},
    )]
