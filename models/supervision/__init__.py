"""Supervision (智能监督), the pure core: deadlines and checkpoints, the deadline index, alert rules, linkers.

* :mod:`.deadlines` — per-stage deadlines of a ticket from the SLA rules and the working-day calendar;
* :mod:`.index` — the heap of pending checkpoints (work per tick proportional to what is due);
* :mod:`.rules` — time, return, ping-pong, designation, 错派 and review-hint alerts;
* :mod:`.linking` — repeated complaints (重复件) and joint-enforcement suggestions (联合执法), per linking key;
* :mod:`.supervisor` — the facade a stage drives with lifecycle events and clock ticks.

No faust, no SQLAlchemy, no I/O: the streams layer wires it to topics and tables.
"""

from models.supervision.alerts import CRITICAL, INFO, RULE_NAMES, RULES, WARNING, Alert, alert_key
from models.supervision.deadlines import (
    Checkpoint,
    Deadline,
    checkpoints_after,
    checkpoints_due,
    deadlines,
    next_checkpoint,
    next_reminder,
    reminder,
    return_window,
)
from models.supervision.facts import TicketFacts
from models.supervision.index import DeadlineIndex, Due
from models.supervision.linking import (
    JointEnforcementLinker,
    LinkFact,
    LinkIndex,
    LinkRules,
    LinkState,
    RepeatLinker,
    link,
    link_facts,
    normalise_phone,
    normalise_place,
)
from models.supervision.rules import deadline_alert, dispatch_alerts, return_alerts, sign_alerts
from models.supervision.supervisor import Supervisor, Tick

__all__ = [
    "CRITICAL", "INFO", "RULE_NAMES", "RULES", "WARNING", "Alert", "Checkpoint", "Deadline", "DeadlineIndex", "Due",
    "JointEnforcementLinker", "LinkFact", "LinkIndex", "LinkRules", "LinkState", "RepeatLinker", "Supervisor",
    "Tick", "TicketFacts", "alert_key", "link", "link_facts",
    "checkpoints_after", "checkpoints_due", "deadline_alert", "deadlines", "dispatch_alerts", "next_checkpoint",
    "next_reminder", "normalise_phone", "normalise_place", "reminder", "return_alerts", "return_window",
    "sign_alerts",
]
