"""Plays a :class:`~streams.demo.scenario.Scenario` onto the topics, paced by the shared simulated clock.

Tickets go to ``tickets.received`` and actions to ``tickets.events`` (plain kafka-python, like
``hotline ingest`` and ``hotline act``; events are built by :func:`streams.cli.agency.build_event`, so they
pass the same checks). An action is sent only once the ledger shows the ticket where the script expects
it: routed (the router's own ``routed`` event recorded by the lifecycle, so our event cannot overtake it
on the partition), after the expected number of returns, in a status that allows the action. The acting
agency is the ticket's current one in the ledger — whoever the router chose.

A step that cannot be done yet is retried a little later; one still not possible after ``patience`` real
seconds is given up together with the rest of its ticket's story, and counted. Nothing here raises for a
slow worker or a broker hiccup: the demo goes on.
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from models import ledger as t
from models.clock import Clock
from models.directory import Catalogue
from models.events import routed_event_id
from streams.db import Ledger
from streams.demo.scenario import Act, Scenario, Step, Submit

log = logging.getLogger(__name__)

QUERY_CHUNK = 400  # ids per IN (...) query; SQLite allows far more, PostgreSQL is happy either way
ACTORS = {"dispatcher": "demo.调度员", "supervisor": "demo.督办员", "callcenter": "demo.回访员"}


@dataclass(frozen=True, slots=True)
class TicketView:
    """Where a ticket is, as far as the player needs to know (read from the ledger)."""

    status: str
    agency: str | None
    attempt: int
    returns: int  # accepted 退单 so far
    returned_by: tuple[str, ...]
    routed: bool  # the lifecycle has recorded the router's 'routed' event of the current attempt
    matter: str | None = None  # the matter the router recognised (its suggestion when it was not sure)
    address: str | None = None
    received_at: datetime | None = None


def ticket_views(ledger: Ledger, ids: list[str]) -> dict[str, TicketView]:
    """The ledger's view of the given tickets (those it does not know yet are absent)."""
    out: dict[str, TicketView] = {}
    for i in range(0, len(ids), QUERY_CHUNK):
        chunk = ids[i:i + QUERY_CHUNK]
        with ledger.session() as s:
            rows = s.execute(select(t.Ticket.id, t.Ticket.status, t.Ticket.current_agency, t.Ticket.attempt,
                                    t.Ticket.matter, t.Ticket.address, t.Ticket.received_at)
                             .where(t.Ticket.id.in_(chunk))).all()
            events = s.execute(select(t.TicketEvent.ticket_id, t.TicketEvent.type, t.TicketEvent.agency,
                                      t.TicketEvent.event_id)
                               .where(t.TicketEvent.ticket_id.in_(chunk), t.TicketEvent.accepted.is_(True),
                                      t.TicketEvent.type.in_(("returned", "routed")))).all()
        returned: dict[str, list[str]] = {}
        routed_ids: set[str] = set()
        for tid, kind, agency, event_id in events:
            if kind == "returned":
                returned.setdefault(tid, []).append(agency or "")
            else:
                routed_ids.add(event_id)
        for tid, status, agency, attempt, matter, address, received_at in rows:
            by = returned.get(tid, [])
            out[tid] = TicketView(status, agency, attempt or 0, len(by), tuple(a for a in by if a),
                                  routed_event_id(f"{tid}#{attempt}") in routed_ids, matter, address, received_at)
    return out


@dataclass(frozen=True, slots=True)
class Figures:
    """What the ledger says about the demo so far (the progress line)."""

    tickets: int = 0
    routed: int = 0  # tickets the router has decided at least once
    manual: int = 0  # waiting on the dispatchers' queue now
    returns: int = 0
    alerts: int = 0
    refused: int = 0  # events the lifecycle refused (should stay 0: the player waits for the right state)


def ledger_figures(ledger: Ledger) -> Figures:
    with ledger.session() as s:
        tickets = s.scalar(select(func.count()).select_from(t.Ticket)) or 0
        routed = s.scalar(select(func.count()).select_from(t.Ticket).where(t.Ticket.attempt >= 1)) or 0
        manual = s.scalar(select(func.count()).select_from(t.Ticket).where(t.Ticket.status == "manual")) or 0
        returns = s.scalar(select(func.count()).select_from(t.TicketEvent).where(
            t.TicketEvent.type == "returned", t.TicketEvent.accepted.is_(True))) or 0
        refused = s.scalar(select(func.count()).select_from(t.TicketEvent).where(
            t.TicketEvent.accepted.is_(False))) or 0
        alerts = s.scalar(select(func.count()).select_from(t.Alert)) or 0
    return Figures(tickets, routed, manual, returns, alerts, refused)


@dataclass
class PlayerStats:
    total: int = 0  # steps in the scenario
    submitted: int = 0
    acted: int = 0
    skipped: int = 0  # rescue steps that were not needed (the ticket was not on the manual queue)
    gave_up: int = 0  # steps (with the rest of their story) that never became possible
    send_errors: int = 0
    waiting: int = 0  # steps due but waiting for the worker
    dropped: int = 0  # later steps of the stories given up
    finished: bool = False
    sim_now: datetime | None = None

    @property
    def done(self) -> int:
        return self.submitted + self.acted + self.skipped

    @property
    def settled(self) -> int:
        """Steps no longer ahead of us (done or given up), for the progress bar."""
        return self.done + self.dropped


@dataclass(order=True)
class _Pending:
    at: datetime
    seq: int
    step: Step = field(compare=False)
    first_try: float | None = field(default=None, compare=False)  # monotonic time of the first attempt


class Player:
    """Plays the scenario's steps when the shared clock reaches them; see the module docstring."""

    def __init__(self, scenario: Scenario, *, bootstrap: str, ledger: Ledger, clock: Clock,
                 catalogue: Catalogue | None = None, stop: threading.Event | None = None, patience: float = 60.0,
                 retry: float = 0.3, producer: Any = None) -> None:
        self.scenario = scenario
        self.catalogue = catalogue
        self.bootstrap = bootstrap
        self.ledger = ledger
        self.clock = clock
        self.stop = stop or threading.Event()
        self.patience = patience
        self.retry = retry
        self._producer = producer
        self.stats = PlayerStats(total=len(scenario.steps))
        self._chains = {tid: list(steps) for tid, steps in scenario.chains().items()}
        self._next: dict[str, int] = {}
        self._heap: list[_Pending] = []
        self._seq = 0

    # --- pacing ---------------------------------------------------------------------------------------
    def _sim_delay(self, real_seconds: float) -> timedelta:
        return timedelta(seconds=real_seconds * self.clock.speed)

    def _real_seconds(self, simulated: timedelta) -> float:
        return simulated.total_seconds() / self.clock.speed

    def _push(self, step: Step, at: datetime, first_try: float | None = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, _Pending(at, self._seq, step, first_try))

    def _advance(self, ticket_id: str, now: datetime) -> None:
        """Queue the ticket's next step: never before its scripted time, never before the previous one."""
        i = self._next.get(ticket_id, 0)
        chain = self._chains[ticket_id]
        if i < len(chain):
            self._next[ticket_id] = i + 1
            self._push(chain[i], max(chain[i].at, now))

    def run(self, on_progress: Callable[[PlayerStats], None] | None = None) -> PlayerStats:
        """Play until every step is done or given up, or until ``stop`` is set. Never raises for I/O."""
        for tid in self._chains:
            self._advance(tid, self.scenario.origin)
        try:
            while not self.stop.is_set() and self._heap:
                now = self.clock.now()
                self.stats.sim_now = now
                due: list[_Pending] = []
                while self._heap and self._heap[0].at <= now:
                    due.append(heapq.heappop(self._heap))
                if due:
                    self._play(due, now)
                if on_progress is not None:
                    on_progress(self.stats)
                if self._heap:
                    # short sleeps: the stop flag is seen quickly and retries come round on time
                    wait = self._real_seconds(self._heap[0].at - self.clock.now())
                    self.stop.wait(min(max(wait, 0.0), 0.25))
            self.stats.finished = not self._heap
        finally:
            self.close()
        if on_progress is not None:
            on_progress(self.stats)
        return self.stats

    # --- one round ------------------------------------------------------------------------------------
    def _play(self, due: list[_Pending], now: datetime) -> None:
        acts = [p for p in due if isinstance(p.step, Act)]
        try:
            views = ticket_views(self.ledger, sorted({p.step.ticket_id for p in acts})) if acts else {}
        except Exception as exc:  # the ledger is busy or gone for a moment: try these again shortly
            log.warning("demo player: cannot read the ledger (%s); retrying", exc)
            for p in acts:
                self._later(p, now)
            due = [p for p in due if not isinstance(p.step, Act)]
            views = {}
        sent: list[tuple[_Pending, Any]] = []
        for p in due:
            step = p.step
            if isinstance(step, Submit):
                sent.append((p, self._send("tickets.received", step.ticket_id, step.ticket)))
                continue
            assert isinstance(step, Act)
            verdict, event = self._decide(step, views.get(step.ticket_id), now)
            if verdict == "wait":
                self._later(p, now)
            elif verdict == "skip":
                self.stats.skipped += 1
                self._advance(step.ticket_id, now)
            elif verdict == "drop":
                self._give_up(p, "the ticket is no longer where the script expects it")
            else:
                sent.append((p, self._send("tickets.events", step.ticket_id, event)))
        self._settle(sent, now)
        self.stats.waiting = sum(1 for p in self._heap if p.first_try is not None)

    def _decide(self, step: Act, view: TicketView | None, now: datetime) -> tuple[str, dict[str, Any] | None]:
        """("send", event) | ("wait", None) | ("skip", None) | ("drop", None) for one due action."""
        from streams.cli.agency import DEFAULT_ROLE, Action, build_event

        if view is None or not view.routed or view.status in ("received", "returned"):
            return "wait", None  # not routed yet, or a re-route after a return is on its way
        if view.returns < step.round:
            return "wait", None  # our return is not processed yet
        if view.returns > step.round:
            return "drop", None
        options = dict(step.options)
        agency: str | None = None
        if step.only_if_manual:
            if view.status != "manual":
                return "skip", None  # the router found an owner itself: nothing for the dispatcher
            target = self._dispatch_target(step, view)
            if target is None:
                return "drop", None
            options["to"] = target
        elif view.status not in step.needs:
            return "wait", None  # e.g. on the manual queue until the dispatcher's rescue lands
        action = Action(step.action)
        role = DEFAULT_ROLE[action].value
        if step.by_agency:
            if not view.agency:
                return "wait", None
            agency = view.agency
        actor = f"demo.{agency}" if agency else ACTORS.get(role, f"demo.{role}")
        try:
            event = build_event(step.ticket_id, action, actor=actor, role=role, agency=agency, options=options,
                                now=now)
        except ValueError as exc:  # a scripting mistake: say so, keep playing the rest
            log.error("demo step %s %s is not a valid action: %s", step.ticket_id, step.action, exc)
            return "drop", None
        return "send", event

    def _dispatch_target(self, step: Act, view: TicketView) -> str | None:
        """Whom a dispatcher assigns a ticket on the manual queue: the owner the 权责清单 names for the matter
        the router recognised, else the script's candidates (owner, street office), skipping agencies that
        returned it. When all of them did, the first is designated anyway (指定承办 binds)."""
        candidates = list(step.targets)
        if self.catalogue is not None and view.matter and view.address is not None and view.received_at:
            try:
                owner = self.catalogue.place(view.matter, view.address, view.received_at).ownership.agency.code
                candidates.insert(0, owner)
            except LookupError:  # no owner for that matter there: the script's candidates remain
                pass
        fresh = [a for a in candidates if a not in view.returned_by]
        return (fresh or candidates or [None])[0]

    def _later(self, p: _Pending, now: datetime) -> None:
        first = p.first_try if p.first_try is not None else time.monotonic()
        if time.monotonic() - first > self.patience:
            self._give_up(p, f"not possible within {self.patience:.0f}s")
            return
        self._push(p.step, now + self._sim_delay(self.retry), first)

    def _give_up(self, p: _Pending, why: str) -> None:
        step = p.step
        rest = len(self._chains[step.ticket_id]) - self._next.get(step.ticket_id, 0)
        self._next[step.ticket_id] = len(self._chains[step.ticket_id])
        self.stats.gave_up += 1
        self.stats.dropped += rest + 1  # the given-up step itself and what would have followed
        log.info("demo: gave up %s %s (%s) and %d later step(s)", step.ticket_id,
                 getattr(step, "action", "submit"), why, rest)

    # --- kafka ----------------------------------------------------------------------------------------
    def producer(self) -> Any:
        if self._producer is None:
            from kafka import KafkaProducer

            self._producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5,
                                           client_id="hotline-demo")
        return self._producer

    def _send(self, topic: str, key: str, value: dict[str, Any]) -> Any:
        try:
            return self.producer().send(topic, key=key.encode(), value=json.dumps(value, ensure_ascii=False).encode())
        except Exception as exc:  # KafkaError, or the producer cannot be built: retried by _settle
            return exc

    def _settle(self, sent: list[tuple[_Pending, Any]], now: datetime) -> None:
        """Wait for the broker's acknowledgements; what it did not take is tried again."""
        if not sent:
            return
        for p, future in sent:
            ok = False
            if not isinstance(future, Exception):
                try:
                    future.get(timeout=10)
                    ok = True
                except Exception as exc:
                    future = exc
            if ok:
                if isinstance(p.step, Submit):
                    self.stats.submitted += 1
                else:
                    self.stats.acted += 1
                self._advance(p.step.ticket_id, now)
            else:
                self.stats.send_errors += 1
                log.warning("demo: the broker did not take %s (%s); retrying", p.step.ticket_id, future)
                self._later(p, now)

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=3)
            except Exception as exc:  # closing after the broker went away: nothing left to deliver
                log.debug("demo producer close: %s", exc)
            self._producer = None
