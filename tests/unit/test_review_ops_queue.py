"""``hotline queue`` as an agency uses it: a malformed message on the queue, Ctrl-C, --from-beginning."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

import streams.broker
import streams.cli.agency as agency_cli
from streams.cli import app
from tests.unit.test_cli_agency import fake_reader

runner = CliRunner()


def env(tmp_path: Path) -> dict[str, str]:
    return {"HOTLINE_DATA_DIR": str(tmp_path / "var"), "HOTLINE_KAFKA_BOOTSTRAP": "", "COLUMNS": "200"}


def message(value: Any, offset: int) -> SimpleNamespace:
    raw = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
    return SimpleNamespace(value=raw, topic="tickets.routed.BH-SCJG", partition=0, offset=offset)


GOOD = {"routing_id": "T-9#1", "ticket_id": "T-9", "attempt": 1, "text": "烧烤油烟", "matter_name": "露天烧烤"}


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(streams.broker, "client_bootstrap", lambda settings: "localhost:1")
    return monkeypatch


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_a_malformed_message_is_skipped_and_committed_not_a_crash(tmp_path: Path, no_broker: pytest.MonkeyPatch,
                                                                   extra: list[str]) -> None:
    """Anyone may write to a queue: a message whose routing id is a list (unhashable) crashed the reader before
    its commit, so every later `hotline queue` of that agency crashed on the same message."""
    bad = [message(b"not json", 0), message({"routing_id": ["x"], "ticket_id": "P1"}, 1),
           message({"routing_id": {"a": 1}}, 2), message([1, 2], 3), message({"routing_id": "T-8#2", "ticket_id": "T-8", "attempt": "2"}, 4)]
    reader, state = fake_reader([[*bad, message(GOOD, 5)]])
    no_broker.setattr(agency_cli, "QueueReader", reader)
    r = runner.invoke(app, ["queue", "BH-SCJG", *extra], env=env(tmp_path))
    assert r.exit_code == 0, r.output
    assert "T-9" in r.stdout and "T-8" in r.stdout  # a bad field is shown as it can be, not fatal
    assert r.output.count("skipped a message that is not a routed ticket") == 4
    assert state["committed"] == {0: 6}


def test_the_manual_queue_survives_alternatives_that_are_not_a_list_of_objects(tmp_path: Path,
                                                                              no_broker: pytest.MonkeyPatch) -> None:
    odd = [message({"routing_id": "M-1#1", "ticket_id": "M-1", "alternatives": ["BH-GA"]}, 0),
           message({"routing_id": "M-2#1", "ticket_id": "M-2", "alternatives": 5}, 1)]
    reader, state = fake_reader([odd])
    no_broker.setattr(agency_cli, "QueueReader", reader)
    r = runner.invoke(app, ["queue", "--manual"], env=env(tmp_path))
    assert r.exit_code == 0, r.output
    assert "M-1" in r.stdout and "M-2" in r.stdout and state["committed"] == {0: 2}


def test_ctrl_c_before_the_table_is_printed_commits_nothing(tmp_path: Path, no_broker: pytest.MonkeyPatch) -> None:
    """Without --follow the table is printed at the end: Ctrl-C while reading a long queue committed every ticket
    read so far, none of them shown, so the agency never saw them."""
    reader, state = fake_reader([[message(GOOD, 0)]], then=KeyboardInterrupt())
    no_broker.setattr(agency_cli, "QueueReader", reader)
    r = runner.invoke(app, ["queue", "BH-SCJG"], env=env(tmp_path))
    assert "T-9" not in r.stdout
    assert state["committed"] == {}
    assert "stay new" in r.output


def test_ctrl_c_after_printed_json_commits_what_was_printed(tmp_path: Path, no_broker: pytest.MonkeyPatch) -> None:
    reader, state = fake_reader([[message(GOOD, 0)]], then=KeyboardInterrupt())
    no_broker.setattr(agency_cli, "QueueReader", reader)
    r = runner.invoke(app, ["queue", "BH-SCJG", "--json"], env=env(tmp_path))
    assert json.loads(r.stdout)["routing_id"] == "T-9#1"
    assert state["committed"] == {0: 1}


class FakeConsumer:
    """kafka-python's KafkaConsumer, as far as QueueReader uses it: one partition, committed at 10."""

    def __init__(self) -> None:
        from kafka.structs import TopicPartition

        self.tp = TopicPartition("tickets.routed.BH-SCJG", 0)
        self.commits: list[dict[Any, Any]] = []

    def subscribe(self, topics: list[str]) -> None:
        pass

    def assignment(self) -> set[Any]:
        return {self.tp}

    def committed(self, tp: Any) -> int | None:
        return 10

    def seek_to_beginning(self, *tps: Any) -> None:
        pass

    def commit(self, offsets: dict[Any, Any]) -> None:
        self.commits.append(offsets)


def test_from_beginning_never_moves_the_group_position_back() -> None:
    """`--from-beginning --limit 1` committed offset 1 over the group's 10: the next plain reading showed nine
    already-seen tickets again as new."""
    reader = agency_cli.QueueReader.__new__(agency_cli.QueueReader)
    reader.topic, reader.group, reader.pending, reader.buffered, reader.floor = "t", "g", {}, [], {}
    reader.consumer = consumer = FakeConsumer()  # type: ignore[assignment]
    assert reader.join(from_beginning=True)
    reader.shown(SimpleNamespace(topic=consumer.tp.topic, partition=0, offset=0))
    reader.commit()
    assert consumer.commits[-1][consumer.tp].offset == 10
    reader.shown(SimpleNamespace(topic=consumer.tp.topic, partition=0, offset=14))
    reader.commit()
    assert consumer.commits[-1][consumer.tp].offset == 15  # past the old position: committed as read
