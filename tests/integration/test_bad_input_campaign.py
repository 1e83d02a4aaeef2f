"""Bad-input campaign through a real worker: hypothesis draws a batch of malformed and nearly-right
tickets and lifecycle events, they go through the embedded broker, and the ledger must show that

- the worker never crashed and never hit an internal error (no traceback, no "internal error" record);
- every rejected input is recorded with its reason (the same reason the pure parser gives);
- nothing was half-written: a rejected ticket has no ticket row, an accepted one has exactly one
  routing decision; every well-formed event is in the ledger as accepted or refused, with the reason.
"""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from models import ledger as t
from models.events import parse_event
from models.tickets import Rejection, parse_ticket
from streams.app import TICKETS_EVENTS, TICKETS_RECEIVED
from streams.db import Ledger, make_engine, upgrade
from tests.conftest import wait_until
from tests.integration.flow import produce
from tests.unit.test_bad_input_properties import events, json_values, tickets

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN = uuid.uuid4().hex[:6]


def _ticket_inputs(values: list[object], raws: list[bytes]) -> list[bytes]:
    out = []
    for i, v in enumerate(values):
        if isinstance(v, dict) and isinstance(v.get("id"), str):
            v = {**v, "id": f"B{RUN}-{i}-{v['id']}"[:64]}  # ids of this run only
        out.append(json.dumps(v, ensure_ascii=False).encode())
    return out + raws


def _rows(ledger: Ledger, model, *where):  # type: ignore[no-untyped-def]
    with ledger.session() as s:
        return list(s.scalars(select(model).where(*where)))


@settings(max_examples=1, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(st.lists(tickets | json_values, min_size=60, max_size=60),
       st.lists(st.binary(max_size=200), min_size=10, max_size=10),
       st.lists(events, min_size=60, max_size=60))
def test_a_worker_takes_a_hypothesis_batch_of_bad_input_without_crashing_or_losing_any(
        kafka_bootstrap, start_worker, tmp_path_factory, ticket_values, ticket_raws, event_values):
    url = f"sqlite:///{tmp_path_factory.mktemp('campaign') / 'ledger.sqlite3'}"
    upgrade(url)
    ledger = Ledger(make_engine(url))
    raws = _ticket_inputs(ticket_values, ticket_raws)
    parsed = [parse_ticket(r) for r in raws]
    good = {p.id for p in parsed if not isinstance(p, Rejection)}
    bad_ticket_keys = {p.key[:80] for p in parsed if isinstance(p, Rejection)}
    # events aim at this run's good tickets (so the state machine sees real ones) and at unknown ones
    targets = sorted(good) or ["T-none"]
    event_raws = []
    for i, e in enumerate(event_values):
        if isinstance(e.get("ticket_id"), str):
            e = {**e, "ticket_id": targets[i % len(targets)] if i % 3 else f"B{RUN}-unknown-{i}"}
        event_raws.append(json.dumps(e, ensure_ascii=False).encode())
    parsed_events = [parse_event(r) for r in event_raws]
    bad_event_keys = {p.key[:80] for p in parsed_events if isinstance(p, Rejection)}
    good_event_ids = {p.event_id for p in parsed_events if not isinstance(p, Rejection)}

    worker = start_worker(url)
    worker.wait_ready()
    produce(kafka_bootstrap, TICKETS_RECEIVED, [(f"B{RUN}-{i}", r) for i, r in enumerate(raws)])
    produce(kafka_bootstrap, TICKETS_EVENTS, [(str(json.loads(r).get("ticket_id", "x")) if r.startswith(b"{")
                                               else "x", r) for r in event_raws])

    def settled() -> bool:
        rejected = {r.key for r in ledger.rejections(2000)}
        recorded = {e.event_id for e in _rows(ledger, t.TicketEvent)}
        routed = {d.ticket_id for d in _rows(ledger, t.RoutingDecision) if d.published_at is not None}
        return (bad_ticket_keys | bad_event_keys) <= rejected and good <= routed and good_event_ids <= recorded

    assert wait_until(settled, timeout=120, interval=1), worker.log()[-4000:]
    log = worker.log()
    assert worker.proc.poll() is None and "Traceback" not in log, log[-4000:]
    rejections = ledger.rejections(2000)
    assert all(r.reason.strip() for r in rejections)
    assert not [r for r in rejections if "internal error" in r.reason], "a stage failed on some input"
    # no partial writes: rejected tickets left no ticket row; accepted ones have one first decision each
    ticket_ids = {tk.id for tk in _rows(ledger, t.Ticket)}
    assert ticket_ids >= good
    assert not ({p.key for p in parsed if isinstance(p, Rejection)} & ticket_ids - good)
    firsts = [d for d in _rows(ledger, t.RoutingDecision) if d.attempt == 1]
    assert len(firsts) == len({d.ticket_id for d in firsts})
    # refused events carry the state machine's reason
    for e in _rows(ledger, t.TicketEvent, t.TicketEvent.accepted.is_(False)):
        assert e.reason and e.reason.strip()
    worker.stop()
    ledger.dispose()
