"""One masking rule (models.tickets.shown_ticket) for the API's list, the API's ticket, and the dispatchers'
queue: only the handling agency sees the caller's number, everyone else sees it masked, also in the text."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config.catalogue import load_catalogue
from config.settings import Settings
from models import ledger as t
from models.tickets import mask_caller_phone, mask_phone, shown_text, shown_ticket
from streams.cli.agency import masked_for_dispatchers
from streams.console import create_app
from streams.console.accounts import add_user, issue_token
from streams.db import Ledger, make_engine, upgrade
from tests.unit.test_console_views import RecordingPublisher

TICKET = {"title": "噪音 13812345678", "text": "请回电１３８１２３４５６７８或022-25801234", "caller_phone": "+86 138-1234-5678",
          "address": "新港街道"}


def test_shown_ticket_masks_the_number_everywhere_for_all_but_the_handler() -> None:
    hidden = shown_ticket(TICKET, reveal=False)
    assert hidden == {**TICKET, "title": mask_phone(TICKET["title"]), "text": mask_phone(TICKET["text"]),
                      "caller_phone": mask_caller_phone(TICKET["caller_phone"])}
    assert hidden["caller_phone"] == "138****5678" and "022-****1234" in hidden["text"]
    assert shown_ticket(TICKET, reveal=True) == TICKET
    assert shown_ticket({"text": None, "caller_phone": None}, reveal=False) == {"text": None, "caller_phone": None}
    assert shown_text(7, reveal=False) == 7 and shown_text("13812345678", reveal=False) == "138****5678"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Any]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    ledger = Ledger(make_engine(url))
    catalogue = load_catalogue()
    for name, role, agency in [("scjg", "agency", "BH-SCJG"), ("disp", "dispatcher", None)]:
        add_user(ledger, name, role, "s3cret-pass", agency=agency, catalogue=catalogue)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    with ledger.session() as s:
        s.add(t.Ticket(id="T1", received_at=now, text=TICKET["text"], title=TICKET["title"],
                       caller_phone=TICKET["caller_phone"], address=TICKET["address"], status="dispatched",
                       current_agency="BH-SCJG", attempt=1, first_seen_at=now, updated_at=now))
    app = create_app(Settings(data_dir=tmp_path / "data", database_url=url), ledger=ledger, catalogue=catalogue,
                     publisher=RecordingPublisher())  # type: ignore[arg-type]
    tokens = {n: issue_token(ledger, n) for n in ("scjg", "disp")}
    with TestClient(app) as client:
        yield lambda path, user: client.get(path, headers={"Authorization": f"Bearer {tokens[user]}"}).json()
    ledger.dispose()


def test_the_list_the_ticket_and_the_manual_queue_show_the_same(api: Any) -> None:
    fields = ("title", "text", "caller_phone")
    for user, reveal in (("scjg", True), ("disp", False)):
        expected = {k: v for k, v in shown_ticket(TICKET, reveal=reveal).items() if k in fields}
        [listed] = api("/api/tickets", user)
        assert {k: listed[k] for k in fields} == expected
        assert {k: api("/api/tickets/T1", user)[k] for k in fields} == expected
    assert {k: masked_for_dispatchers(TICKET)[k] for k in fields} == {
        k: v for k, v in shown_ticket(TICKET, reveal=False).items() if k in fields}
