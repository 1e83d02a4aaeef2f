"""The supervision core a stage drives: lifecycle events in, timer ticks in, alerts out. No I/O.

A faust stage (or a test) uses it like this::

    sup = Supervisor(catalogue, review_threshold=0.8)
    # for every *accepted, non-duplicate* lifecycle event, with the ticket's facts before it
    # (TicketFacts built from intake the first time) and the new TicketState from lifecycle.apply:
    facts, alerts = sup.on_event(before, event, outcome.state)   # send alerts, then store facts
    # every tick of the (possibly simulated) clock:
    tick = sup.tick(clock.now(), lookup=table_facts_of)          # send tick.alerts, store tick.updated
    # after a restart / on partition assignment, from the stored facts of those partitions:
    sup.rebuild(stored_facts)                                    # and sup.forget(ids) on revocation

Linking tickets with each other (重复件, 联合执法) is not the supervisor's job: the tickets to link arrive on
different partitions, so the stage publishes ``linking.link_facts(before, facts, event)`` keyed by linking
key and folds them with ``linking.link`` where that key lives.

The deadline index holds one entry per running deadline — its *next* checkpoint — and a due ticket is
re-evaluated from its facts (``progress`` says what was announced already), so checkpoints missed while a
worker was down are announced on the first tick and none twice. Send before storing: a crash in between
then re-sends alerts with the same alert keys (dropped by the ledger and consumers) instead of losing them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from models.directory import Catalogue
from models.supervision.alerts import Alert
from models.supervision.deadlines import Checkpoint, Deadline, checkpoints_due, deadlines, next_checkpoint
from models.supervision.facts import TicketFacts
from models.supervision.index import DeadlineIndex
from models.supervision.rules import deadline_alert, dispatch_alerts, return_alerts, sign_alerts


@dataclass(frozen=True, slots=True)
class Tick:
    alerts: list[Alert] = field(default_factory=list)
    updated: dict[str, TicketFacts] = field(default_factory=dict)  # facts whose progress moved: store them


class Supervisor:
    def __init__(self, catalogue: Catalogue, *, review_threshold: float = 0.8, default_jurisdiction: str = "BH",
                 index: DeadlineIndex | None = None) -> None:
        self.catalogue = catalogue
        self.review_threshold = review_threshold
        self.default_jurisdiction = default_jurisdiction
        self.index = index if index is not None else DeadlineIndex()

    # --- time ------------------------------------------------------------------------------
    def deadlines(self, facts: TicketFacts) -> list[Deadline]:
        return deadlines(facts, self.catalogue)

    def upcoming(self, facts: TicketFacts, running: list[Deadline] | None = None) -> list[Checkpoint]:
        """The next checkpoint still to announce of each running deadline."""
        out = []
        for d in running if running is not None else deadlines(facts, self.catalogue):
            cp = next_checkpoint(d, facts.progress_of(d.id), self.catalogue)
            if cp is not None:
                out.append(cp)
        return out

    def track(self, facts: TicketFacts, running: list[Deadline] | None = None) -> int:
        """(Re)schedule the next checkpoint of each running deadline; a ticket without clocks is dropped."""
        upcoming = self.upcoming(facts, running)
        if not upcoming:
            self.index.cancel(facts.ticket_id)
            return 0
        return self.index.schedule(facts.ticket_id, upcoming)

    def catch_up(self, facts: TicketFacts, now: datetime, running: list[Deadline] | None = None,
                 *, announce: bool = True) -> tuple[TicketFacts, list[Alert]]:
        """Alerts for every checkpoint due by ``now`` not announced yet; facts with the progress moved.

        ``announce=False`` only moves the progress: for taking over a backlog of open tickets (first
        deployment) without announcing checkpoints that passed before supervision existed.
        """
        alerts: list[Alert] = []
        progress = []
        for d in running if running is not None else deadlines(facts, self.catalogue):
            rank = facts.progress_of(d.id)
            for cp in checkpoints_due(d, rank, now, self.catalogue):
                if announce:
                    alerts.append(deadline_alert(facts, d, cp, self.catalogue))
                rank = cp.rank
            if rank >= 0:
                progress.append((d.id, rank))
        # Only running deadlines keep a progress entry: the facts stay small over a ticket's life.
        new = facts if tuple(progress) == facts.progress else replace(facts, progress=tuple(progress))
        return new, alerts

    def tick(self, now: datetime, lookup: Callable[[str], TicketFacts | None]) -> Tick:
        """Pop what is due by ``now``; for each due ticket announce its due checkpoints and reschedule."""
        result = Tick()
        for ticket_id in dict.fromkeys(d.ticket_id for d in self.index.pop_due(now)):
            facts = lookup(ticket_id)
            if facts is None:  # the ticket left this worker (rebalance) or was purged
                self.index.cancel(ticket_id)
                continue
            running = deadlines(facts, self.catalogue)  # computed once for both steps below
            new, alerts = self.catch_up(facts, now, running)
            result.alerts.extend(alerts)
            if new is not facts:
                result.updated[ticket_id] = new
            self.track(new, running)
        return result

    def rebuild(self, all_facts: Iterable[TicketFacts]) -> int:
        """After a restart or a partition assignment: schedule every stored ticket again."""
        return sum(self.track(f) > 0 for f in all_facts)

    def forget(self, ticket_ids: Iterable[str]) -> None:
        """Partitions revoked: their tickets' timers belong to another worker now."""
        for tid in ticket_ids:
            self.index.cancel(tid)

    # --- events ----------------------------------------------------------------------------
    def on_event(self, before: TicketFacts, event: Any, state: Any) -> tuple[TicketFacts, list[Alert]]:
        """One accepted lifecycle event: ``before`` = facts before it, ``state`` = the new TicketState.

        Returns the facts to store and the rule alerts about this ticket alone (returns, ping-pong,
        designation, 错派, review hints). Deadlines are rescheduled; their alerts come from ticks.
        """
        kind, alerts = event.type, []
        changes: dict[str, Any] = {}
        if kind == "returned":
            alerts += return_alerts(before, event, self.catalogue)
        elif kind == "signed":
            alerts += sign_alerts(before, event, self.catalogue, threshold=self.review_threshold)
        elif kind == "routed":
            alerts += dispatch_alerts(before, event, self.catalogue, default_jurisdiction=self.default_jurisdiction)
            if getattr(event, "matter", None):
                changes["matter"] = event.matter
            if getattr(event, "decided_by", "router") == "router" and event.agency:
                # only the classifier's own choices count as its prediction, not a dispatcher's
                changes["predicted_agency"] = event.agency
                changes["predicted_confidence"] = getattr(event, "confidence", None)
        after = before.with_state(state, **changes)
        self.track(after)
        return after, alerts
