"""The console's test world, shared by test_console.py and test_console_api_campaign.py: a real ledger with
four users (two agencies, a dispatcher, a supervisor) and their API tokens, three routed tickets (one per
agency and one on the manual queue) recorded the way the worker records them, and the app on a TestClient.
The ``world`` fixture itself is in tests/integration/conftest.py."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from classifier.decision import AUTO, MANUAL, Alternative, Decision
from config.catalogue import load_catalogue
from config.settings import Settings
from models.events import Alternative as EventAlternative
from models.events import RoutedTicket, TicketRouted
from models.tickets import Rejection, parse_ticket
from streams.console import create_app
from streams.console.accounts import add_user, issue_token
from streams.db import Ledger, make_engine
from streams.routing import decision_row, message_json

CATALOGUE = load_catalogue()
PHONE = "13812345678"
PASSWORD = "s3cret-pass"


@dataclass
class World:
    client: TestClient
    ledger: Ledger
    run: str
    tokens: dict[str, str]
    mine: str  # routed to BH-SCJG
    theirs: str  # routed to BH-STHJ
    manual: str  # on the dispatchers' queue
    settings: Settings

    def api(self, method: str, path: str, user: str | None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return self.client.request(method, path, headers=headers, **kwargs)


def seed(ledger: Ledger, ticket_id: str, text: str, decision: Decision) -> None:
    """Record a ticket and its first routing decision the way the worker's routing stage does."""
    ticket = parse_ticket({"id": ticket_id, "text": text, "address": "滨海新区新港街道", "caller_phone": PHONE,
                           "request_type": "投诉"})
    assert not isinstance(ticket, Rejection)
    ledger.record_ticket(ticket)
    d = decision
    data = message_json(RoutedTicket(  # the message the routing stage stores and publishes for attempt 1
        routing_id=f"{ticket_id}#1", ticket_id=ticket_id, attempt=1, decision=d.decision, reason=d.reason,
        received_at=ticket.received_at, routed_at=datetime.now(UTC), text=ticket.text, address=ticket.address,
        request_type=ticket.request_type, caller_phone=ticket.caller_phone, matter=d.matter,
        matter_name=d.matter_name, domain=d.domain, agency=d.agency, agency_name=d.agency_name,
        agency_kind=d.agency_kind, jurisdiction=d.jurisdiction, confidence=d.confidence, basis=d.basis,
        alternatives=[EventAlternative(matter=a.matter, agency=a.agency, agency_kind=a.agency_kind,
                                       confidence=a.confidence) for a in d.alternatives]))
    ledger.record_decisions([decision_row(data)])
    ledger.mark_published([data["routing_id"]])
    routed = TicketRouted(event_id=f"routed:{data['routing_id']}", ticket_id=ticket_id, type="routed", actor="router",
                          role="system", occurred_at=datetime.now(UTC), agency=data["agency"], attempt=1,
                          decision=data["decision"], matter=data["matter"], confidence=data["confidence"])
    ledger.record_event(event_id=routed.event_id, ticket_id=ticket_id, type="routed", actor="router",
                        agency=routed.agency, occurred_at=routed.occurred_at, accepted=True, reason=None,
                        payload=json.loads(routed.dumps()))


def auto(matter: str, agency: str) -> Decision:
    a = CATALOGUE.agencies[agency]
    return Decision(AUTO, "测试", 0.9, matter=matter, matter_name=CATALOGUE.matters[matter].name, agency=agency,
                    agency_name=a.name, agency_kind=a.kind, jurisdiction="BH", basis="《测试依据》第一条")


def login(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    client.cookies.clear()
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)  # type: ignore[union-attr]
    return client.post("/login", data={"username": username, "password": password, "csrf": csrf},
                       follow_redirects=False)


def csrf_of(client: TestClient, path: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)  # type: ignore[union-attr]


def make_world(database_url: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[World]:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, kafka_bootstrap=kafka_bootstrap)
    ledger = Ledger(make_engine(database_url))
    run = uuid.uuid4().hex[:8]
    for name, role, agency in [("scjg", "agency", "BH-SCJG"), ("sthj", "agency", "BH-STHJ"),
                               ("disp", "dispatcher", None), ("boss", "supervisor", None)]:
        add_user(ledger, name, role, PASSWORD, agency=agency, catalogue=CATALOGUE)
    tokens = {name: issue_token(ledger, name) for name in ("scjg", "sthj", "disp", "boss")}
    mine, theirs, manual = f"M{run}", f"T{run}", f"Q{run}"
    seed(ledger, mine, f"超市卖过期牛奶，来电人{PHONE}要求查处。", auto("SJ-002", "BH-SCJG"))
    seed(ledger, theirs, "化工厂夜间排放刺鼻废气。", auto("HB-005", "BH-STHJ"))
    seed(ledger, manual, "楼下烧烤店油烟直排。", Decision(
        MANUAL, "置信度低于阈值", 0.4, matter="HB-001", matter_name="餐饮油烟扰民", agency="BH-STHJ",
        alternatives=(Alternative("CG-002", "流动摊贩占路", "BH-CGW", "城管委", "urban_management", 0.2),)))
    client = TestClient(create_app(settings, ledger=ledger, catalogue=CATALOGUE))
    yield World(client, ledger, run, tokens, mine, theirs, manual, settings)
    client.close()
    ledger.dispose()


