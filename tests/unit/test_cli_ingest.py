"""``hotline ingest`` without a broker: formats, column mapping, generated ids, row reasons, pacing,
and the unusable-input exits (code 2, a message, no traceback)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.tickets import ID_PATTERN, Rejection, TicketIn
from streams.cli import app
from streams.cli.ingest import (
    ColumnMap,
    Record,
    TokenBucket,
    UnusableInput,
    check_row,
    detect_format,
    generated_id,
    normalise_time,
    read_csv,
    read_jsonl,
)

runner = CliRunner()


def no_broker_env(tmp_path: Path) -> dict[str, str]:
    # an empty data dir: no announced embedded broker, so any broker contact would fail loudly
    return {"HOTLINE_DATA_DIR": str(tmp_path / "var"), "HOTLINE_KAFKA_BOOTSTRAP": ""}


# --- formats ------------------------------------------------------------------------------------


def test_format_from_extension_flag_and_stdin() -> None:
    assert detect_format("a/b.CSV", None) == "csv"
    assert detect_format("x.jsonl", None) == "jsonl" and detect_format("x.ndjson", None) == "jsonl"
    assert detect_format("-", None) == "jsonl"
    assert detect_format("-", "csv") == "csv"
    assert detect_format("export.txt", "csv") == "csv"
    with pytest.raises(UnusableInput, match="--format"):
        detect_format("export.txt", None)
    with pytest.raises(UnusableInput, match="unknown --format"):
        detect_format("x.csv", "xml")


# --- reading ------------------------------------------------------------------------------------


def test_read_csv_rows_are_line_numbers_and_blank_lines_are_skipped() -> None:
    data = "工单号,内容\nA1,噪音扰民\n\nA2,\"多行\n内容\"\nA3,x,extra\n"
    header, records = read_csv(io.StringIO(data))
    rows = list(records)
    assert header == ["工单号", "内容"]
    assert [(r.row, r.values) for r in rows[:2]] == [(2, {"工单号": "A1", "内容": "噪音扰民"}),
                                                     (5, {"工单号": "A2", "内容": "多行\n内容"})]
    assert rows[2].row == 6 and rows[2].values is None and "3 cells but the header has 2" in (rows[2].error or "")


def test_read_csv_header_ignores_a_bom_read_as_text() -> None:
    # --encoding utf-8 on an Excel "CSV UTF-8" export: the id column must still be the id column, or every
    # ticket would get a generated id and be routed a second time beside the platform's copy
    header, records = read_csv(io.StringIO("\ufeffid,text\nT-1,噪音扰民\n"))
    assert header == ["id", "text"]
    ticket = check_row(next(records), ColumnMap())
    assert isinstance(ticket, TicketIn) and ticket.id == "T-1"


def test_read_jsonl_ignores_a_bom_read_as_text() -> None:
    (first, second) = read_jsonl(io.StringIO('\ufeff{"id": "T-1", "text": "噪音扰民"}\n{"id": "T-2", "text": "\ufeff"}\n'))
    assert first.values == {"id": "T-1", "text": "噪音扰民"}
    assert second.values == {"id": "T-2", "text": "\ufeff"}  # only the file's first characters are a BOM


def test_read_csv_without_header_is_unusable() -> None:
    with pytest.raises(UnusableInput, match="empty"):
        read_csv(io.StringIO(""))


def test_read_jsonl_reports_bad_lines_with_their_number() -> None:
    data = '{"id": "J1", "text": "a"}\n\nnot json\n[1, 2]\n{"id": "J2", "text": "b"}\n'
    rows = list(read_jsonl(io.StringIO(data)))
    assert [r.row for r in rows] == [1, 3, 4, 5]
    assert rows[1].values is None and rows[1].error.startswith("not JSON")
    assert rows[2].error == "not a JSON object but list"
    assert rows[3].values == {"id": "J2", "text": "b"}


# --- mapping ------------------------------------------------------------------------------------


def test_column_flags_map_onto_ticket_fields() -> None:
    cols = ColumnMap.from_flags({"id": "工单号", "text": "内容", "address": "地址", "received_at": "受理时间",
                                 "caller_phone": "电话"})
    ticket = cols.to_ticket({"工单号": "A1", "内容": " 油烟扰民 ", "地址": "滨海新区新港街道",
                             "受理时间": "2025/3/1 8:05", "电话": "", "备注": "ignored"})
    assert ticket == {"id": "A1", "text": "油烟扰民", "address": "滨海新区新港街道",
                      "received_at": "2025-03-01T08:05:00"}
    result = parse(cols, {"工单号": "A1", "内容": "油烟扰民", "受理时间": "2025/3/1 8:05"})
    assert isinstance(result, TicketIn) and result.received_at.isoformat() == "2025-03-01T08:05:00+08:00"


def test_header_must_hold_text_and_every_named_column() -> None:
    ColumnMap.from_flags({}).check_header(["id", "text"])
    ColumnMap.from_flags({}).check_header(["text"])  # no id column: ids are generated
    with pytest.raises(UnusableInput, match="'text' \\(for text\\).*columns found: id, body"):
        ColumnMap.from_flags({}).check_header(["id", "body"])
    with pytest.raises(UnusableInput, match="'单号' \\(for id\\)"):
        ColumnMap.from_flags({"id": "单号", "text": "body"}).check_header(["id", "body"])


def test_generated_ids_are_deterministic_and_valid() -> None:
    cols = ColumnMap.from_flags({}, id_prefix="HIST-")
    a = cols.to_ticket({"text": "路灯坏了", "address": "东丽区"})
    again = cols.to_ticket({"text": "路灯坏了", "address": "东丽区"})
    other = cols.to_ticket({"text": "路灯坏了", "address": "滨海新区"})
    assert a["id"] == again["id"] != other["id"]
    assert a["id"].startswith("HIST-h") and ID_PATTERN.match(a["id"])
    assert generated_id({"text": "x"}) == generated_id({"text": "x", "id": "ignored"})


def test_prefix_applies_to_given_ids_and_numeric_ids_become_text() -> None:
    assert ColumnMap.from_flags({}, "P-").to_ticket({"id": 42, "text": "x"})["id"] == "P-42"
    assert ColumnMap.from_flags({}).to_ticket({"id": 42, "text": "x"})["id"] == "42"


def test_bad_rows_get_reasons_and_keep_the_original_row() -> None:
    cols = ColumnMap.from_flags({})
    blank = check_row(Record(3, {"id": "A2", "text": "  "}, '{"id": "A2"}'), cols)
    assert isinstance(blank, Rejection) and blank.key == "A2" and "text" in blank.reason
    assert blank.payload == '{"id": "A2"}'
    bad_type = check_row(Record(4, {"id": "A3", "text": "x", "request_type": "抱怨"}, "raw"), cols)
    assert isinstance(bad_type, Rejection) and "request_type" in bad_type.reason
    bad_time = check_row(Record(5, {"id": "A4", "text": "x", "received_at": "yesterday"}, "raw"), cols)
    assert isinstance(bad_time, Rejection) and "received_at" in bad_time.reason
    unreadable = check_row(Record(6, None, "not json", "not JSON: ..."), cols)
    assert isinstance(unreadable, Rejection) and unreadable.reason == "not JSON: ..."
    named_id_missing = check_row(Record(7, {"text": "x"}, "raw"), ColumnMap.from_flags({"id": "单号"}))
    assert isinstance(named_id_missing, Rejection) and "id" in named_id_missing.reason


def test_normalise_time_only_touches_dates_it_understands() -> None:
    assert normalise_time("2025/3/1") == "2025-03-01"
    assert normalise_time("2025-03-01 08:05:09+08:00") == "2025-03-01T08:05:09+08:00"
    assert normalise_time("yesterday") == "yesterday"


def parse(cols: ColumnMap, values: dict[str, str]) -> TicketIn | Rejection:
    return check_row(Record(2, values, json.dumps(values, ensure_ascii=False)), cols)


# --- pacing -------------------------------------------------------------------------------------


def test_token_bucket_sleeps_instead_of_spinning() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(5, clock=lambda: now[0], sleep=sleep)
    for _ in range(15):
        bucket.take()
    # a burst of 5 at once, then one every 0.2 s: 10 more take 2 s of sleeping, in 10 sleeps
    assert len(slept) == 10 and sum(slept) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        TokenBucket(0)


# --- unusable input through the CLI -------------------------------------------------------------


def test_missing_file_exits_2_with_a_message(tmp_path: Path) -> None:
    r = runner.invoke(app, ["ingest", str(tmp_path / "nope.csv")], env=no_broker_env(tmp_path))
    assert r.exit_code == 2
    assert "no such file" in r.output and "Traceback" not in r.output


def test_missing_text_column_exits_2_before_any_broker(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("id,body\nA1,噪音\n", encoding="utf-8")
    r = runner.invoke(app, ["ingest", str(f)], env=no_broker_env(tmp_path))
    assert r.exit_code == 2, r.output
    assert "no column 'text'" in r.output and "--text-col" in r.output
    j = tmp_path / "t.jsonl"
    j.write_text('{"id": "A1", "body": "x"}\n', encoding="utf-8")
    r = runner.invoke(app, ["ingest", str(j)], env=no_broker_env(tmp_path))
    assert r.exit_code == 2 and "first record has no 'text' key" in r.output


def test_wrong_encoding_and_unknown_extension_exit_2(tmp_path: Path) -> None:
    f = tmp_path / "gbk.csv"
    f.write_bytes("编号,内容\nA1,噪音\n".encode("gbk"))
    r = runner.invoke(app, ["ingest", str(f)], env=no_broker_env(tmp_path))
    assert r.exit_code == 2 and "--encoding" in r.output, r.output
    txt = tmp_path / "t.txt"
    txt.write_text("text\nx\n", encoding="utf-8")
    r = runner.invoke(app, ["ingest", str(txt)], env=no_broker_env(tmp_path))
    assert r.exit_code == 2 and "--format" in r.output
    r = runner.invoke(app, ["ingest", str(f), "--encoding", "no-such-codec"], env=no_broker_env(tmp_path))
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_empty_stdin_is_unusable_and_no_broker_is_a_clear_message(tmp_path: Path) -> None:
    r = runner.invoke(app, ["ingest", "-"], input="", env=no_broker_env(tmp_path))
    assert r.exit_code == 2 and "no records" in r.output
    r = runner.invoke(app, ["ingest", "-"], input='{"id": "A1", "text": "x"}\n', env=no_broker_env(tmp_path))
    assert r.exit_code == 3 and "no broker is running" in r.output and "Traceback" not in r.output
