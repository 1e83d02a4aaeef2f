"""Helpers for flow tests: realistic tickets, producing them, and reading every queue back."""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy import select

from classifier.corpus import build_corpus
from config.catalogue import load_catalogue
from models import ledger as t
from streams.db import Ledger

ADDRESSES = ["滨海新区新港街道幸福里小区", "塘沽杭州道街道某小区", "泰达街道第三大街", "东丽区华明街道某村",
             "汉沽寨上街道", "大港海滨街道", "东丽区万新街道某小区3号楼", "", "经开区某工业园"]


def realistic_tickets(n: int, prefix: str, seed: int = 4242) -> list[dict[str, Any]]:
    """n tickets across matters, generated with another seed than the model's training corpus."""
    rnd = random.Random(seed)
    corpus = [e for e in build_corpus(load_catalogue().matters.values(), per_matter=32, seed=seed)
              if e.source == "generated"]
    rnd.shuffle(corpus)
    out = []
    for i, ex in enumerate(corpus[:n]):
        out.append({"id": f"{prefix}-{i:04d}", "text": ex.text, "address": rnd.choice(ADDRESSES),
                    "received_at": datetime(2025, 10, 20, 9, tzinfo=UTC).isoformat(),
                    "request_type": rnd.choice(["投诉", "求助", "举报", "咨询"]),
                    "caller_phone": f"139{rnd.randrange(10**8):08d}", "_matter": ex.matter})
    return out


def produce(bootstrap: str, topic: str, items: list[tuple[str, dict[str, Any] | bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    for key, value in items:
        raw = value if isinstance(value, bytes) else json.dumps(
            {k: v for k, v in value.items() if not k.startswith("_")}, ensure_ascii=False).encode()
        producer.send(topic, key=key.encode(), value=raw)
    producer.flush()
    producer.close()


def event(ticket_id: str, type_: str, role: str, agency: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "ticket_id": ticket_id, "type": type_, "actor": f"test-{role}",
            "role": role, "agency": agency, "occurred_at": datetime.now(UTC).isoformat(), **fields}


def read_queues(bootstrap: str, prefix: str, timeout_ms: int = 4000) -> dict[str, list[tuple[str, dict]]]:
    """ticket id -> [(topic, message)] for every routed/manual message of this run, read with kafka-python."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=timeout_ms, enable_auto_commit=False)
    consumer.subscribe(pattern=r"^tickets\.(routed\..+|manual)$")
    found: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for m in consumer:
        key = (m.key or b"").decode()
        if key.startswith(prefix):
            found[key].append((m.topic, json.loads(m.value)))
    consumer.close()
    return found


def decisions(ledger: Ledger, prefix: str) -> list[t.RoutingDecision]:
    with ledger.session() as s:
        return list(s.scalars(select(t.RoutingDecision).where(t.RoutingDecision.ticket_id.like(f"{prefix}-%"))))


def published(ledger: Ledger, prefix: str) -> int:
    return sum(1 for d in decisions(ledger, prefix) if d.published_at is not None)


def unrouted_report(ledger: Ledger, bootstrap: str, group: str, tickets: list[dict[str, Any]]) -> str:
    """For a failing test: each ticket without a published decision, where it is in the ledger (recorded at
    which offset, decided or not), and the consumer group's committed offsets: enough to tell a commit
    ahead of the work from a consumer that never fetched."""
    from kafka import KafkaAdminClient

    ids = [tk["id"] for tk in tickets]
    with ledger.session() as s:
        rows = {r.id: r for r in s.scalars(select(t.Ticket).where(t.Ticket.id.in_(ids)))}
        decided = {d.ticket_id: d for d in s.scalars(select(t.RoutingDecision).where(
            t.RoutingDecision.ticket_id.in_(ids)))}
        audits = {a.partition: (a.audited_to, a.recovered) for a in s.scalars(select(t.OffsetAudit))}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        committed = {tp.partition: m.offset for tp, m in admin.list_group_offsets({group: None})[group].items()
                     if tp.topic == "tickets.received"}
    finally:
        admin.close()
    lines = [f"committed {sorted(committed.items())}; audited (to, recovered) {sorted(audits.items())}"]
    for tid in ids:
        d = decided.get(tid)
        if d is not None and d.published_at is not None:
            continue
        row = rows.get(tid)
        where = f"recorded at [{row.source_partition}]@{row.source_offset}" if row else "not recorded"
        lines.append(f"{tid}: {where}, {'decided, unpublished' if d else 'no decision'}")
    return "\n".join(lines[:60])
