"""``hotline train --data`` / ``hotline evaluate --data`` on files as districts export them: another
encoding, a huge cell, a BOM, a line nested too deeply. Each is read, or refused with a TrainingDataError
naming the file and line and what to do (the CLI prints it and exits 2), never a traceback."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from classifier import training
from classifier.training import TrainingDataError, read_labelled
from config.catalogue import load_catalogue
from streams.cli import app

ROWS = [(f"饭店油烟扰民问题第{i}次", "环境保护") for i in range(12)]


@pytest.fixture(scope="module")
def catalogue():  # type: ignore[no-untyped-def]
    return load_catalogue()


def _csv(path: Path, rows: list[tuple[str, str]], encoding: str = "utf-8") -> Path:
    with open(path, "w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def test_a_gbk_csv_names_the_line_and_the_way_out(tmp_path: Path, catalogue) -> None:  # type: ignore[no-untyped-def]
    path = _csv(tmp_path / "gbk.csv", ROWS, encoding="gbk")
    with pytest.raises(TrainingDataError) as err:
        read_labelled(path, "text", "label", catalogue)
    assert str(err.value).startswith(f"{path}:2: not utf-8 text") and "--encoding (e.g. gbk)" in str(err.value)
    ds = read_labelled(path, "text", "label", catalogue, encoding="gbk")
    assert ds.texts[0] == ROWS[0][0] and ds.label_kind == "domain"
    with pytest.raises(TrainingDataError, match="unknown --encoding 'no-such-codec'"):
        read_labelled(path, "text", "label", catalogue, encoding="no-such-codec")


def test_the_line_of_a_bad_byte_counts_lines_before_it(tmp_path: Path, catalogue) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "late.jsonl"
    good = "".join(json.dumps({"text": t, "label": lb}, ensure_ascii=False) + "\n" for t, lb in ROWS)
    path.write_bytes(good.encode() + b'{"text": "\xb2\xbb", "label": "x"}\n')
    with pytest.raises(TrainingDataError, match=rf"^{path}:13: not utf-8 text"):
        read_labelled(path, "text", "label", catalogue)


def test_a_cell_over_csvs_default_limit_is_read(tmp_path: Path, catalogue) -> None:  # type: ignore[no-untyped-def]
    before = csv.field_size_limit()
    path = _csv(tmp_path / "big.csv", [*ROWS, ("油烟" * 100_000, "环境保护")])
    ds = read_labelled(path, "text", "label", catalogue)
    assert len(ds.texts) == 13 and len(ds.texts[-1]) == 200_000
    assert csv.field_size_limit() == before  # a process-wide setting: left as it was


def test_a_cell_over_our_limit_names_the_line(tmp_path: Path, catalogue, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(training, "MAX_CELL_CHARS", 1000)
    path = _csv(tmp_path / "big.csv", [*ROWS[:3], ("油烟" * 1000, "环境保护"), *ROWS[3:]])
    with pytest.raises(TrainingDataError, match=rf"^{path}:5: unreadable CSV \(field larger than field limit"):
        read_labelled(path, "text", "label", catalogue)
    # a cell with line breaks before it: the line is the file's, not the row's
    path = _csv(tmp_path / "big2.csv", [("第一行\n第二行\n第三行", "环境保护"), ("油烟" * 1000, "环境保护"), *ROWS])
    with pytest.raises(TrainingDataError, match=rf"^{path}:5: unreadable CSV"):
        read_labelled(path, "text", "label", catalogue)


def test_a_jsonl_with_a_bom_reads_like_a_csv_with_one(tmp_path: Path, catalogue) -> None:  # type: ignore[no-untyped-def]
    lines = "".join(json.dumps({"text": t, "label": lb}, ensure_ascii=False) + "\n" for t, lb in ROWS)
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + lines.encode())
    assert len(read_labelled(path, "text", "label", catalogue).texts) == 12
    assert len(read_labelled(path, "text", "label", catalogue, encoding="utf-8").texts) == 12


def test_a_jsonl_line_nested_too_deeply_names_the_line(tmp_path: Path, catalogue) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "deep.jsonl"
    path.write_text('{"text": "x", "label": "y"}\n' + "[" * 200_000 + "\n", encoding="utf-8")
    with pytest.raises(TrainingDataError, match=rf"^{path}:2: not JSON \(nested too deeply\)"):
        read_labelled(path, "text", "label", catalogue)


def test_train_and_evaluate_take_encoding_and_exit_2_on_a_wrong_one(tmp_path: Path) -> None:
    path = _csv(tmp_path / "gbk.csv", ROWS, encoding="gbk")
    env = {"HOTLINE_MODEL_DIR": str(tmp_path / "models"), "HOTLINE_DATA_DIR": str(tmp_path / "var")}
    result = CliRunner().invoke(app, ["train", "--data", str(path), "--no-corrections"], env=env)
    assert result.exit_code == 2, result.output
    said = "".join(result.output.split())  # the console wraps long paths wherever it likes
    assert "cannottrain:" in said and ":2:notutf-8text" in said and "--encoding" in said
    assert not (tmp_path / "models").exists()
    result = CliRunner().invoke(app, ["train", "--help"])
    assert "--encoding" in result.output
    result = CliRunner().invoke(app, ["evaluate", "--help"])
    assert "--encoding" in result.output
