"""``hotline ingest`` on an operator's files: an id used twice in one file, a GBK export with quoted newlines."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from models.tickets import Rejection, TicketIn
from streams.cli.ingest import ColumnMap, _records, _run, open_input


class FakeSink:
    def __init__(self) -> None:
        self.failed: list[str] = []
        self.tickets: list[TicketIn] = []
        self.rejections: list[tuple[int, Rejection]] = []

    def ticket(self, ticket: TicketIn) -> None:
        self.tickets.append(ticket)

    def rejection(self, row: int, rejection: Rejection) -> None:
        self.rejections.append((row, rejection))

    def flush(self) -> None:
        pass


def run(stream: Any, form: str, columns: ColumnMap) -> tuple[Any, FakeSink]:
    sink = FakeSink()
    return _run(_records(stream, form, columns), columns, sink, None, None, None, None), sink  # type: ignore[arg-type]


def test_a_ticket_id_used_twice_in_one_file_is_rejected_not_silently_lost() -> None:
    """The router keeps the first ticket of an id: the second row was counted as sent, exit 0, and never routed."""
    data = ('{"id": "A1", "text": "小区门口烧烤油烟"}\n{"id": "A2", "text": "噪音扰民"}\n'
            '{"id": "A1", "text": "饭店占道经营"}\n{"text": "路灯不亮"}\n{"text": "路灯不亮"}\n')
    outcome, sink = run(io.StringIO(data), "jsonl", ColumnMap())
    assert [t.id for t in sink.tickets][:2] == ["A1", "A2"] and outcome.sent == 3
    assert [row for row, _ in outcome.rejected] == [3, 5]
    (row, rejection), _ = sink.rejections
    assert row == 3 and rejection.key == "A1" and "row 1" in rejection.reason and "饭店占道经营" in rejection.payload


def test_a_gbk_excel_export_with_quoted_newlines_keeps_its_rows(tmp_path: Path) -> None:
    rows = ["工单编号,诉求内容", 'G1,"烧烤油烟很大，\r\n晚上十点还在营业"', 'G1,"他说：""噪音太大"""', "G2,路灯不亮"]
    f = tmp_path / "export.csv"
    f.write_bytes(("\r\n".join(rows) + "\r\n").encode("gbk"))
    stream, _, _ = open_input(str(f), "gbk")
    columns = ColumnMap.from_flags({"id": "工单编号", "text": "诉求内容"})
    with stream:
        outcome, sink = run(stream, "csv", columns)
    assert [(t.id, t.text) for t in sink.tickets] == [("G1", "烧烤油烟很大，\r\n晚上十点还在营业"), ("G2", "路灯不亮")]
    assert [row for row, _ in outcome.rejected] == [4]


def test_ctrl_c_during_a_replay_still_says_what_was_sent(capsys: Any) -> None:
    """Ctrl-C ended `hotline ingest` with exit 130 and not a word: the operator did not know what had gone."""
    from streams.cli.ingest import _summarise

    def records() -> Any:
        yield from _records(io.StringIO('{"id": "A1", "text": "小区门口烧烤油烟"}\n{"id": "A2", "text": ""}\n'),
                            "jsonl", ColumnMap())
        raise KeyboardInterrupt

    sink = FakeSink()
    try:
        outcome = _run(records(), ColumnMap(), sink, None, None, None, None)  # type: ignore[arg-type]
    except KeyboardInterrupt:  # (not left to reach pytest, which would stop the whole session)
        pytest.fail("Ctrl-C went past the summary")
    code = _summarise(outcome, "-")
    said = " ".join(capsys.readouterr().err.split())
    assert code == 130 and [t.id for t in sink.tickets] == ["A1"]
    assert "1 ticket(s) from stdin sent to tickets.received" in said
    assert "interrupted (Ctrl-C) after 2 record(s)" in said and "1 row(s) rejected" in said
