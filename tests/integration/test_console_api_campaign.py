"""Bad-input campaign over the HTTP API (hypothesis), against a real ledger and the session's broker.

Whatever a client sends — any JSON or bytes as a ticket, any action body, any token or none — the API
answers with a 2xx or a 4xx that says why, never a 500; a refused ticket is recorded with its reason;
nobody without the right token gets in, and only the handling agency ever sees the caller's number.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from models import ledger as t
from tests.integration.console_world import PHONE, World
from tests.unit.test_bad_input_properties import json_values, tickets

pytestmark = pytest.mark.integration

CAMPAIGN = settings(max_examples=40, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ACTIONS = ["sign", "return", "extend", "resolve", "reassign", "close", "rate", "reopen", "approve-extension",
           "deny-extension", "delete", "", None]
USERS = ["scjg", "sthj", "disp", "boss", None, "forged"]


def _headers(world: World, user: str | None) -> dict[str, str]:
    if user is None:
        return {}
    if user == "forged":
        return {"Authorization": "Bearer not-a-token-" + world.run}
    return {"Authorization": f"Bearer {world.tokens[user]}"}


def _rejections(world: World) -> int:
    with world.ledger.session() as s:
        return s.scalar(select(func.count()).select_from(t.RejectedInput).where(t.RejectedInput.source == "http"))


def _explains(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code != 500 and response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert body and (body.get("error") or body.get("detail") or body.get("reasons")), body


@CAMPAIGN
@given(body=(json_values | tickets).map(lambda v: json.dumps(v, ensure_ascii=False).encode()) | st.binary(max_size=300))
def test_any_ticket_body_is_accepted_or_refused_with_reasons_and_recorded(world: World, body: bytes) -> None:
    before = _rejections(world)
    r = world.client.post("/api/tickets", content=body, headers={**_headers(world, "disp"),
                                                                 "Content-Type": "application/json"})
    _explains(r)
    assert r.status_code in (202, 400, 413, 422), r.text
    if r.status_code == 400:  # recorded with its reasons (a body refused before is recorded once)
        assert r.json()["reasons"] and _rejections(world) >= max(before, 1)


@CAMPAIGN
@given(user=st.sampled_from(USERS), which=st.sampled_from(["mine", "theirs", "manual", "nope"]),
       action=st.sampled_from(ACTIONS),
       extra=st.fixed_dictionaries({}, optional={
           "reason_code": st.sampled_from(["NOT_OUR_DUTY", "WRONG_PLACE", "??", ""]) | json_values,
           "basis": st.text(max_size=30) | json_values, "explanation": st.text(max_size=30),
           "days": st.integers(-3, 40) | json_values, "to": st.sampled_from(["BH-CGW", "BH-STHJ", "NOPE", ""]),
           "rating": st.sampled_from(["satisfied", "unsatisfied", "meh"])}))
def test_any_action_by_anyone_is_checked_never_a_500(world: World, user: str | None, which: str,
                                                     action: str | None, extra: dict) -> None:
    ticket = {"mine": world.mine, "theirs": world.theirs, "manual": world.manual, "nope": "NOPE-1"}[which]
    r = world.client.post(f"/api/tickets/{ticket}/actions", json={"action": action, **extra},
                          headers=_headers(world, user))
    _explains(r)
    if user in (None, "forged"):
        assert r.status_code == 401, r.text
    elif user == "scjg" and which in ("theirs", "manual"):
        assert r.status_code in (400, 403, 404), r.text  # a bad body, or refused: never acted on
    if r.status_code == 202:
        assert r.json()["ticket_id"] == ticket


@CAMPAIGN
@given(user=st.sampled_from(USERS), path=st.sampled_from(["/api/me", "/api/tickets", "/api/alerts", "/api/figures",
                                                          "/api/tickets/{mine}", "/api/tickets/{theirs}",
                                                          "/api/tickets/{manual}"]),
       junk=st.text(max_size=20))
def test_reads_need_a_token_and_only_the_handler_sees_the_number(world: World, user: str | None, path: str,
                                                                 junk: str) -> None:
    url = path.format(mine=world.mine, theirs=world.theirs, manual=world.manual)
    # junk also as the list's paging cursor: a 400 with the reason, never a 500
    params = ({"q": junk} | ({"before": junk} if url == "/api/tickets" else {})) if junk else None
    r = world.client.get(url, headers=_headers(world, user), params=params)
    _explains(r)
    if user in (None, "forged"):
        assert r.status_code == 401
        return
    if user == "scjg" and url.endswith((world.theirs, world.manual)):
        assert r.status_code in (403, 404)
    if r.status_code == 200 and PHONE in r.text:  # every seeded ticket has that caller
        handler = {world.mine: "scjg", world.theirs: "sthj"}
        if url.startswith("/api/tickets/"):
            assert user == handler.get(url.rsplit("/", 1)[1]), f"{user} saw the caller's number at {url}"
        else:  # a list: only an agency that handles one of the tickets in it
            assert user in ("scjg", "sthj"), f"{user} saw the caller's number at {url}"
