"""HTTP views served by the worker's own web server (faust/aiohttp).

- ``GET /healthz``: liveness and readiness.
- ``POST /api/tickets``: HTTP intake; a JSON ticket is validated like every other door and put on
  ``tickets.received`` (202), or refused with the reasons (400) and recorded as a rejection.
- ``GET /api/tickets/{id}``: the ledger's view of one ticket (phone numbers masked).

The ``/api`` endpoints are unauthenticated for now: access control arrives with a later issue, so
until then the web server must only be reachable from trusted networks (it binds to
``HOTLINE_WORKER_WEB_HOST``, loopback by default).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from faust.web import Request, Response, View
from sqlalchemy import select, text

from models import ledger as t
from models.events import InputRejected
from models.tickets import Rejection, content_key, mask_phone, parse_ticket
from streams.app import app, invalid_topic
from streams.db import Ledger
from streams.intake import submit
from streams.wiring import services

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024
# Event payload fields worth showing in the ticket view (free text is phone-masked).
EVENT_DETAILS = ("reason_code", "basis", "explanation", "reply", "days", "target_agency", "rating", "comment",
                 "decision", "matter", "confidence", "attempt", "designation")


def _ping_ledger() -> None:
    with services().ledger.session() as s:
        s.execute(text("SELECT 1"))


@app.page("/healthz")
class Health(View):
    """Liveness and readiness: 200 when the worker runs and its ledger answers, else 503."""

    async def get(self, request: Request) -> Response:
        try:
            await _run_with_timeout()
        except Exception as exc:  # any failure = not ready; say why
            return self.json({"status": "unavailable", "ledger": str(exc).splitlines()[0]}, status=503)
        return self.json({"status": "ok"})


async def _run_with_timeout() -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    # Not services().db(): that one retries forever, a health check must answer promptly.
    await asyncio.wait_for(loop.run_in_executor(None, _ping_ledger), timeout=3)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The request body, or None when it is larger than ``limit`` (checked before reading it all)."""
    length = getattr(request, "content_length", None)
    if length is not None and length > limit:
        return None
    content = getattr(request, "content", None)  # aiohttp's stream: read in chunks, stop past the limit
    if content is None:
        body = await request.read()
        return body if len(body) <= limit else None
    chunks, size = [], 0
    async for chunk in content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@app.page("/api/tickets")
class Tickets(View):
    """HTTP intake (unauthenticated until access control lands; see the module docstring)."""

    async def post(self, request: Request) -> Response:
        body = await read_body(request)
        if body is None:
            return self.json({"error": "body too large", "limit_bytes": MAX_BODY_BYTES}, status=413)
        result = parse_ticket(body)
        if isinstance(result, Rejection):
            await _reject(result, body)
            return self.json({"error": "invalid ticket", "reasons": result.reason}, status=400)
        try:
            await submit(result)
        except Exception:  # the broker did not take it: the caller must retry, nothing was accepted
            log.exception("HTTP intake could not queue ticket %s", result.id)
            return self.json({"error": "could not queue the ticket; try again"}, status=503)
        return self.json({"id": result.id, "status": "accepted"}, status=202)


async def _reject(rejection: Rejection, body: bytes) -> None:
    """Record and publish a refused body; keyed by its content so a retried bad body counts once."""
    svc = services()
    await svc.db(svc.ledger.record_rejection, dedup_key=f"http:{content_key(body)}", key=rejection.key,
                 source="http", reason=rejection.reason, payload=rejection.payload)
    await invalid_topic.send(key=rejection.key, value=InputRejected(
        key=rejection.key, reason=rejection.reason, source="http", payload=rejection.payload,
        rejected_at=datetime.now(UTC)))


@app.page("/api/tickets/{ticket_id}")
class TicketView(View):
    """One ticket as the ledger knows it (unauthenticated until access control lands)."""

    async def get(self, request: Request, ticket_id: str) -> Response:
        svc = services()
        view = await svc.db(ticket_view, svc.ledger, ticket_id)
        if view is None:
            return self.json({"error": "unknown ticket", "id": ticket_id}, status=404)
        return self.json(view)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def ticket_view(ledger: Ledger, ticket_id: str) -> dict[str, Any] | None:
    """Status, current agency, attempt, routing decisions and events of one ticket; phones masked."""
    with ledger.session() as s:
        tk = s.get(t.Ticket, ticket_id)
        if tk is None:
            return None
        decisions = s.scalars(select(t.RoutingDecision).where(t.RoutingDecision.ticket_id == ticket_id)
                              .order_by(t.RoutingDecision.attempt)).all()
        events = s.scalars(select(t.TicketEvent).where(t.TicketEvent.ticket_id == ticket_id)
                           .order_by(t.TicketEvent.occurred_at, t.TicketEvent.recorded_at)).all()
        return {
            "id": tk.id, "status": tk.status, "current_agency": tk.current_agency, "attempt": tk.attempt,
            "received_at": _iso(tk.received_at), "text": mask_phone(tk.text), "title": mask_phone(tk.title),
            "address": tk.address, "channel": tk.channel, "request_type": tk.request_type, "urgency": tk.urgency,
            "caller_phone": mask_phone(tk.caller_phone), "jurisdiction": tk.jurisdiction, "matter": tk.matter,
            "updated_at": _iso(tk.updated_at),
            "decisions": [{
                "routing_id": d.decision_key, "attempt": d.attempt, "decision": d.decision, "matter": d.matter,
                "domain": d.domain, "agency": d.agency, "agency_kind": d.agency_kind,
                "jurisdiction": d.jurisdiction, "confidence": d.confidence, "basis": d.basis, "reason": d.reason,
                "alternatives": d.alternatives, "model_version": d.model_version, "decided_by": d.decided_by,
                "decided_at": _iso(d.decided_at), "queue": d.topic, "published_at": _iso(d.published_at),
            } for d in decisions],
            "events": [{
                "event_id": e.event_id, "type": e.type, "actor": e.actor, "agency": e.agency,
                "occurred_at": _iso(e.occurred_at), "accepted": e.accepted, "refused_because": e.reason,
                **{k: _masked(e.payload[k]) for k in EVENT_DETAILS if isinstance(e.payload, dict)
                   and e.payload.get(k) is not None},
            } for e in events],
        }


def _masked(value: Any) -> Any:
    return mask_phone(value) if isinstance(value, str) else json.loads(json.dumps(value, default=str))
