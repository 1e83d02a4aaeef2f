"""``hotline ingest``'s JSONL reader on input nested too deeply for the decoder or for the checks after
it: a rejected row with a reason, never a crash of the import."""

from __future__ import annotations

import io

from models.tickets import Rejection
from streams.cli.ingest import ColumnMap, check_row, read_jsonl


def test_a_line_too_deep_for_the_decoder_is_a_rejected_row() -> None:
    stream = io.StringIO('{"id": "A1", "text": "噪音"}\n' + "[" * 200_000 + '\n{"id": "A2", "text": "油烟"}\n')
    records = list(read_jsonl(stream))
    assert [r.row for r in records] == [1, 2, 3]
    assert records[1].values is None and records[1].error == "not JSON: nested too deeply"
    rejected = check_row(records[1], ColumnMap())
    assert isinstance(rejected, Rejection) and rejected.reason == "not JSON: nested too deeply"
    assert len(rejected.payload) <= 2000 and rejected.key.startswith("sha1:")
    assert records[2].values == {"id": "A2", "text": "油烟"}


def test_a_value_the_decoder_reads_but_the_checks_cannot_walk_is_a_rejected_row() -> None:
    depth = 700  # within the decoder's limit, beyond what the recursive checks after it survive
    line = '{"id": "A1", "text": "噪音", "address": ' + "[" * depth + "]" * depth + "}\n"
    (record,) = read_jsonl(io.StringIO(line))
    assert record.values is not None
    assert isinstance(check_row(record, ColumnMap()), Rejection)  # an address is no list, however deep
