"""``hotline act`` and ``hotline queue`` without a broker: event shapes, local refusals, agency codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from config.catalogue import load_catalogue
from models import ledger as t
from models.events import EVENT_CLASSES, parse_event
from models.tickets import SHANGHAI, Rejection, TicketIn
from streams.cli import app
from streams.cli.agency import DEFAULT_ROLE, EVENT_TYPE, Action, build_event, near_matches, queue_table

runner = CliRunner()


def env(tmp_path: Path) -> dict[str, str]:
    return {"HOTLINE_DATA_DIR": str(tmp_path / "var"), "HOTLINE_KAFKA_BOOTSTRAP": ""}


def fake_reader(batches: list[list[SimpleNamespace]], then: BaseException | None = None) -> tuple[type, dict]:
    """A QueueReader stand-in: yields ``batches`` (then raises ``then``); records what was committed."""
    state: dict[str, Any] = {"pending": {}, "committed": {}}

    class FakeReader:
        def __init__(self, *args: object) -> None:
            pass

        def topic_exists(self) -> bool:
            return True

        def join(self, **_: object) -> bool:
            return True

        def batches(self, **_: object) -> Iterator[list[SimpleNamespace]]:
            yield from batches
            if then is not None:
                raise then

        def shown(self, m: SimpleNamespace) -> None:
            state["pending"][m.partition] = m.offset + 1

        def commit(self) -> None:
            state["committed"].update(state["pending"])
            state["pending"].clear()

        def close(self) -> None:
            pass

    return FakeReader, state


COMPLETE = {
    Action.SIGN: {}, Action.RETURN: {"reason_code": "NOT_OUR_DUTY", "basis": "《某法》第三条"},
    Action.REASSIGN: {"to": "BH-SCJG"}, Action.EXTEND: {"days": 5, "explanation": "需现场核查"},
    Action.APPROVE_EXTENSION: {}, Action.DENY_EXTENSION: {"explanation": "理由不足"},
    Action.RESOLVE: {"reply": "已处理"}, Action.RATE: {"rating": "satisfied", "explanation": "很好"},
    Action.REOPEN: {}, Action.CLOSE: {},
}


@pytest.mark.parametrize("action", list(Action))

def test_every_action_builds_an_event_the_worker_accepts(action: Action) -> None:
    role = DEFAULT_ROLE[action].value
    agency = "BH-STHJ" if role == "agency" else None
    ev = build_event("T-1", action, actor="alice", role=role, agency=agency, options=COMPLETE[action],
                     now=datetime(2025, 3, 1, 9, tzinfo=SHANGHAI))
    assert ev["type"] == EVENT_TYPE[action] and ev["type"] in EVENT_CLASSES
    assert ev["occurred_at"] == "2025-03-01T09:00:00+08:00" and len(ev["event_id"]) == 36
    parsed = parse_event(json.dumps(ev, ensure_ascii=False))
    assert not isinstance(parsed, Rejection), parsed
    assert parsed.ticket_id == "T-1" and parsed.role == role


def test_fields_are_renamed_to_the_event_contract() -> None:
    ev = build_event("T-1", Action.REASSIGN, actor="d", role="dispatcher", options={"to": "BH-SCJG"})
    assert ev["target_agency"] == "BH-SCJG" and "to" not in ev
    ev = build_event("T-1", Action.RATE, actor="c", role="callcenter",
                     options={"rating": "unsatisfied", "explanation": "没人来"})
    assert ev["comment"] == "没人来" and ev["rating"] == "unsatisfied"


@pytest.mark.parametrize(("action", "options", "message"), [
    (Action.RETURN, {"basis": "x"}, "needs --reason-code"),
    (Action.RETURN, {"reason_code": "NOT_OUR_DUTY"}, "legal basis"),
    (Action.EXTEND, {"days": 3}, "needs an --explanation"),
    (Action.EXTEND, {"days": 40, "explanation": "x"}, "between 1 and 30"),
    (Action.RESOLVE, {}, "needs --reply"),
    (Action.REASSIGN, {}, "needs --to"),
    (Action.RATE, {}, "needs --rating"),
    (Action.SIGN, {"days": 3}, "--days does not apply to sign"),
])
def test_incomplete_actions_are_refused_locally(action: Action, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_event("T-1", action, actor="a", role=DEFAULT_ROLE[action].value, agency="BH-STHJ", options=options)


def test_agency_actions_need_the_acting_agency() -> None:
    with pytest.raises(ValueError, match="--agency"):
        build_event("T-1", Action.SIGN, actor="a", role="agency")


def test_near_matches_by_code_and_name() -> None:
    cat = load_catalogue()
    assert "BH-SCJG" in near_matches("BH-SCJ", cat)
    assert set(near_matches("市场监督", cat)) >= {"BH-SCJG", "DL-SCJG", "TEDA-SCJG"}


def test_act_cli_refuses_a_return_without_reason_and_dry_runs_a_good_one(tmp_path: Path) -> None:
    r = runner.invoke(app, ["act", "T-1", "return", "--agency", "BH-STHJ", "--basis", "x"], env=env(tmp_path))
    assert r.exit_code == 2 and "needs --reason-code" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["act", "T-1", "return", "--agency", "bh-sthj", "--reason-code", "OTHER_JURISDICTION",
                            "--explanation", "在东丽区", "--actor", "bob", "--dry-run"], env=env(tmp_path))
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)
    assert ev["agency"] == "BH-STHJ" and ev["reason_code"] == "OTHER_JURISDICTION" and ev["actor"] == "bob"
    r = runner.invoke(app, ["act", "T-1", "sign", "--agency", "BH-NOPE"], env=env(tmp_path))
    assert r.exit_code == 2 and "unknown --agency agency code" in r.output
    r = runner.invoke(app, ["act", "bad id!", "sign", "--agency", "BH-STHJ"], env=env(tmp_path))
    assert r.exit_code == 2 and "not a ticket id" in r.output


def test_act_without_a_broker_says_how_to_start_one(tmp_path: Path) -> None:
    r = runner.invoke(app, ["act", "T-1", "close"], env=env(tmp_path))
    assert r.exit_code == 1 and "no broker is running" in r.output and "Traceback" not in r.output


def test_queue_arguments_and_unknown_agency(tmp_path: Path) -> None:
    r = runner.invoke(app, ["queue"], env=env(tmp_path))
    assert r.exit_code == 2 and "--manual" in r.output
    assert "hotline queue BH-SCJG " in r.output  # the example is an agency that exists (it was BH-SCJ)
    r = runner.invoke(app, ["queue", "BH-STHJ", "--manual"], env=env(tmp_path))
    assert r.exit_code == 2
    r = runner.invoke(app, ["queue", "BH-SCJ"], env=env(tmp_path))
    assert r.exit_code == 2 and "did you mean" in r.output and "BH-SCJG" in r.output


def test_queue_table_shows_the_explanation() -> None:
    from rich.console import Console

    msg = {"ticket_id": "T-1", "attempt": 1, "received_at": "2025-03-01T01:00:00+00:00", "matter_name": "露天烧烤",
           "address": "滨海新区新港街道", "urgency": "一般", "confidence": 0.8123, "text": "烧烤油烟",
           "basis": "《大气污染防治法》第一百一十八条"}
    console = Console(width=200, record=True)
    console.print(queue_table([msg], manual=False, title="BH-JD-XG"))
    text = console.export_text()
    assert "2025-03-01 09:00" in text and "0.81" in text and "第一百一十八条" in text


def test_the_manual_queue_masks_callers_numbers_like_the_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    """`hotline queue --manual` (dispatchers) shows the caller's number masked, in the text too; an agency's own
    queue keeps it (the handling agency sees it in full, as in the console)."""

    import streams.broker
    import streams.cli.agency as agency_cli

    msg = {"routing_id": "T-1#1", "ticket_id": "T-1", "attempt": 1, "decision": "manual", "reason": "置信度低",
           "received_at": "2025-03-01T01:00:00+00:00", "routed_at": "2025-03-01T01:00:01+00:00",
           "title": "来电 13812345678", "text": "烧烤油烟扰民，请回电13812345678或０２２-６６２２３３４４",
           "caller_phone": "13812345678"}

    FakeReader, _ = fake_reader([[SimpleNamespace(value=json.dumps(msg, ensure_ascii=False).encode(), topic="t",
                                                  partition=0, offset=0)]])

    monkeypatch.setattr(agency_cli, "QueueReader", FakeReader)
    monkeypatch.setattr(streams.broker, "client_bootstrap", lambda settings: "localhost:1")
    for extra in ([], ["--json"]):
        r = runner.invoke(app, ["queue", "--manual", *extra], env={**env(tmp_path), "COLUMNS": "200"})
        assert r.exit_code == 0, r.output
        assert "138****5678" in r.stdout and "13812345678" not in r.stdout and "66223344" not in r.stdout
        # the landline in the text is written in full-width digits (as a Chinese IME types it): masked too
        assert "６６２２３３４４" not in r.stdout and "２２３３４４" not in r.stdout
    (shown,) = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert (shown["caller_phone"], shown["title"]) == ("138****5678", "来电 138****5678")
    assert shown["text"] == "烧烤油烟扰民，请回电138****5678或０２２-****３３４４"
    assert shown["routing_id"] == "T-1#1" and shown["reason"] == "置信度低"
    r = runner.invoke(app, ["queue", "BH-STHJ", "--json"], env=env(tmp_path))
    assert r.exit_code == 0 and json.loads(r.stdout)["text"] == msg["text"]  # the agency's queue: as published


# --- hotline act: event ids a retry keeps -----------------------------------------------------------------------


@pytest.fixture
def sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The events `hotline act` sends, through a stand-in producer (no broker)."""
    import kafka

    import streams.broker

    out: list[dict[str, Any]] = []

    class FakeProducer:
        def __init__(self, **_: object) -> None:
            pass

        def send(self, topic: str, key: bytes, value: bytes) -> Any:
            out.append(json.loads(value))
            return SimpleNamespace(get=lambda timeout: SimpleNamespace(partition=0, offset=len(out) - 1))

        def close(self, timeout: float) -> None:
            pass

    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)
    monkeypatch.setattr(streams.broker, "client_bootstrap", lambda settings: "localhost:1")
    return out


def ledger_env(tmp_path: Path) -> tuple[dict[str, str], Any]:
    """A migrated ledger that knows ticket T-1 (dispatched to BH-STHJ), and the environment pointing at it."""
    from streams.db import Ledger, make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    ledger = Ledger(make_engine(url))
    ledger.record_tickets([(TicketIn(id="T-1", text="油烟扰民" * 5, received_at=datetime(2026, 3, 2, 9, tzinfo=SHANGHAI)),
                            None, None, None)])
    return {**env(tmp_path), "HOTLINE_DATABASE_URL": url}, ledger


RETURN = ["act", "T-1", "return", "--agency", "BH-STHJ", "--actor", "clerk", "--reason-code", "NOT_OUR_DUTY",
          "--basis", "《某法》第三条"]


def test_act_run_twice_sends_the_same_event_and_another_intent_another(tmp_path: Path,
                                                                       sent: list[dict[str, Any]]) -> None:
    env_, ledger = ledger_env(tmp_path)
    # Given a clerk's return, sent, then run again after a timeout
    first, again = (runner.invoke(app, RETURN, env=env_) for _ in range(2))
    assert first.exit_code == again.exit_code == 0, first.output + again.output
    # Then both runs send the same event (the worker keeps one), and each prints its id
    assert sent[0]["event_id"] == sent[1]["event_id"] == first.stdout.strip() == again.stdout.strip()
    # And it is the id the console derives for the same intent: the same event whichever door it came through
    from streams.console.access import Principal
    from streams.console.service import intent_id, ticket_version

    with ledger.session() as s:
        version = ticket_version(s.get(t.Ticket, "T-1"))
    p = Principal(1, "clerk", "agency", "BH-STHJ", None)
    assert sent[0]["event_id"] == intent_id("T-1", Action.RETURN, p, {
        "reason_code": "NOT_OUR_DUTY", "basis": "《某法》第三条", "explanation": None}, version)
    # And another action, another field, another actor or an explicit key is another event
    for other in (["act", "T-1", "sign", "--agency", "BH-STHJ", "--actor", "clerk"], [*RETURN[:-1], "《某法》第四条"],
                  [*RETURN, "--explanation", "属东丽区"], [*RETURN[:6], "other", *RETURN[7:]],
                  [*RETURN, "--event-id", "clerk-42"]):
        assert runner.invoke(app, other, env=env_).exit_code == 0
    ids = [e["event_id"] for e in sent]
    assert len(ids) == 7 and len(set(ids[1:])) == 6 and ids[-1] == "clerk-42"
    # And once the ticket has moved on (a new dispatch, an accepted event), the same command is a new intent
    with ledger.session() as s:
        s.get(t.Ticket, "T-1").updated_at = datetime(2026, 3, 3, 9, tzinfo=SHANGHAI)  # type: ignore[union-attr]
    assert runner.invoke(app, RETURN, env=env_).exit_code == 0
    assert sent[-1]["event_id"] not in ids
    ledger.dispose()


def test_act_does_not_send_again_what_the_ledger_has(tmp_path: Path, sent: list[dict[str, Any]]) -> None:
    env_, ledger = ledger_env(tmp_path)
    r = runner.invoke(app, [*RETURN, "--event-id", "clerk-42"], env=env_)
    assert r.exit_code == 0 and r.stdout.strip() == "clerk-42" and len(sent) == 1
    # Given the worker recorded it (refused: the ticket was not this agency's)
    ledger.record_event(event_id="clerk-42", ticket_id="T-1", type="returned", actor="clerk", agency="BH-STHJ",
                        occurred_at=datetime(2026, 3, 2, 10, tzinfo=SHANGHAI), accepted=False,
                        reason="工单当前不由该单位承办 / not dispatched to BH-STHJ", payload=sent[0])
    # When the script runs again with its key
    r = runner.invoke(app, [*RETURN, "--event-id", "clerk-42"], env=env_)
    # Then nothing is sent, and it says what became of the first
    assert len(sent) == 1 and r.exit_code == 2 and "refused" in r.output and "not sent again" in r.output
    # And a key already used for another ticket's event is refused (the worker would drop the event as a duplicate)
    ledger.record_tickets([(TicketIn(id="T-2", text="油烟扰民" * 5, received_at=datetime(2026, 3, 2, 9, tzinfo=SHANGHAI)),
                            None, None, None)])
    r = runner.invoke(app, ["act", "T-2", "sign", "--agency", "BH-STHJ", "--event-id", "clerk-42"], env=env_)
    assert r.exit_code == 2 and "already the returned event of ticket T-1" in r.output and len(sent) == 1
    ledger.dispose()


def test_act_event_ids_without_a_ledger_and_bad_keys(tmp_path: Path) -> None:
    # Without a ledger to read the ticket's state from, each run has a random id, as before, and says so
    dry = [runner.invoke(app, ["act", "T-1", "sign", "--agency", "BH-STHJ", "--dry-run"], env=env(tmp_path))
           for _ in range(2)]
    assert all(r.exit_code == 0 and "--event-id" in r.output for r in dry)
    assert json.loads(dry[0].stdout)["event_id"] != json.loads(dry[1].stdout)["event_id"]
    # An explicit key is used as it is, and checked like every id
    r = runner.invoke(app, ["act", "T-1", "sign", "--agency", "BH-STHJ", "--dry-run", "--event-id", "a:1"],
                      env=env(tmp_path))
    assert r.exit_code == 0 and json.loads(r.stdout)["event_id"] == "a:1"
    for bad in ("两个", "a b", "-x", "x" * 81):
        r = runner.invoke(app, ["act", "T-1", "sign", "--agency", "BH-STHJ", "--event-id", bad], env=env(tmp_path))
        assert r.exit_code == 2 and "is not an event id" in r.output and "Traceback" not in r.output, r.output


def test_act_help_says_the_defaults() -> None:
    # rich reads "[default: ...]" in a help text as markup and drops it
    r = runner.invoke(app, ["act", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    text = " ".join(r.output.replace("│", " ").split())
    assert "who acts (default: your OS user name)" in text
    assert "Without it: derived from the action, its options, the actor and the ticket's state in the ledger" in text
