"""The shape of a supervision finding and its identity.

``alert_key = f"{subject}:{rule}:{level}"`` — the subject is the ticket id, or the agency code (or a place
key) for findings about no single ticket. The key is what makes alerts exactly-once downstream: the topic
consumer and the ledger dedupe on it. Deadline alerts put the deadline's cycle in the level part of the key
(``warn_50@1``), so a reopened ticket or a new dispatch gets fresh alerts while ``Alert.level`` stays the
plain level (``warn_50``) for counting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

INFO, WARNING, CRITICAL = "info", "warning", "critical"

# Rules (stable vocabulary for topics, ledger and reports).
SIGN_DEADLINE = "sign_deadline"
HANDLE_DEADLINE = "handle_deadline"
RETURNED = "returned"
PING_PONG = "ping_pong"
DESIGNATION = "designation"
MISDISPATCH = "misdispatch"
REVIEW_HINT = "review_hint"
REPEATED_COMPLAINT = "repeated_complaint"
JOINT_ENFORCEMENT = "joint_enforcement"
RULES = (SIGN_DEADLINE, HANDLE_DEADLINE, RETURNED, PING_PONG, DESIGNATION, MISDISPATCH, REVIEW_HINT,
         REPEATED_COMPLAINT, JOINT_ENFORCEMENT)
# What supervisors read for each rule (the console, the daily digest)
RULE_NAMES = {
    SIGN_DEADLINE: "签收时限", HANDLE_DEADLINE: "办理时限", RETURNED: "退单", PING_PONG: "来回推诿",
    DESIGNATION: "需指定承办", MISDISPATCH: "疑似错派", REVIEW_HINT: "复核提示",
    REPEATED_COMPLAINT: "重复投诉", JOINT_ENFORCEMENT: "联合执法",
}


def alert_key(subject: str, rule: str, level: str) -> str:
    return f"{subject}:{rule}:{level}"


@dataclass(frozen=True, slots=True)
class Alert:
    alert_key: str
    rule: str
    level: str
    severity: str  # info | warning | critical
    ticket_id: str | None
    agency: str | None
    deadline: datetime | None
    message_zh: str  # one Chinese sentence for the supervisor
    at: datetime  # when the finding became true (checkpoint time or event time)
    details: Mapping[str, Any] = field(default_factory=dict)

    def record_fields(self) -> dict[str, Any]:
        """Keyword arguments for ``models.events.AlertRaised`` (``raised_at`` = when it became true)."""
        return {"alert_key": self.alert_key, "rule": self.rule, "level": self.level, "severity": self.severity,
                "message": self.message_zh, "raised_at": self.at, "details": dict(self.details),
                "ticket_id": self.ticket_id, "agency": self.agency, "deadline": self.deadline}
