"""``hotline train`` / ``hotline evaluate`` on small or odd label sets, and dispatcher corrections as training
data: a refusal that says why (exit 2), never a traceback, and never a report that scores right answers as
wrong."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from classifier import model as mm
from classifier import text as textmod
from classifier.training import Dataset, TrainingDataError, evaluate, train
from config.catalogue import load_catalogue
from models import ledger as t
from streams.cli import app
from streams.corrections import load_corrections
from streams.db import Ledger, make_engine, upgrade

SMOKE = "饭店油烟扰民，晚上排风机噪音也很大第{}次"
BENEFIT = "申请低保被拒绝，想问一下怎么复核第{}次"


@pytest.fixture(autouse=True)
def own_text_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training teaches the tokenizer the catalogue's terms (process-wide): undone after each test, so the
    tests of the tokenizer's own words still see their words as new."""
    monkeypatch.setattr(textmod, "_user_words", set(textmod._user_words))
    monkeypatch.setattr(textmod, "_words_generation", textmod._words_generation)
    monkeypatch.setattr(textmod, "_segmenters", dict(textmod._segmenters))
    monkeypatch.setattr(textmod, "_places", textmod._places)
    monkeypatch.setattr(textmod, "_place_re", textmod._place_re)


@pytest.fixture(scope="module")
def catalogue():  # type: ignore[no-untyped-def]
    return load_catalogue()


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def test_a_single_label_is_refused_with_a_reason(tmp_path: Path, catalogue) -> None:  # type: ignore[no-untyped-def]
    ds = Dataset([SMOKE.format(i) for i in range(12)], ["环境保护"] * 12, "domain", "one.csv")
    with pytest.raises(TrainingDataError, match="every example has the label '环境保护'"):
        train(ds, catalogue, tmp_path / "models", threshold=0.5)
    path = _csv(tmp_path / "one.csv", list(zip(ds.texts, ds.labels, strict=True)))
    env = {"HOTLINE_MODEL_DIR": str(tmp_path / "models"), "HOTLINE_DATA_DIR": str(tmp_path / "var")}
    result = CliRunner().invoke(app, ["train", "--data", str(path), "--no-corrections"], env=env)
    assert result.exit_code == 2, result.output
    assert "cannot train" in result.output and "at least two labels" in "".join(result.output.split("\n"))


def test_more_labels_than_hold_out_rows_trains_unstratified(tmp_path: Path, catalogue) -> None:  # type: ignore[no-untyped-def]
    # 10 rows of 5 domains, 2 each: a 20% hold-out has 2 rows, fewer than the labels
    domains = ["环境保护", "民政", "政法", "城乡建设", "交通运输"]
    ds = Dataset([f"{d}方面的问题反映第{i}次，请尽快处理" for d in domains for i in range(2)],
                 [d for d in domains for _ in range(2)], "domain", "small.csv")
    path, report = train(ds, catalogue, tmp_path / "models", threshold=0.5)
    assert (path / mm.META_FILE).is_file() and report["n"] == 2


def test_a_rare_label_all_in_the_hold_out_is_refused_with_a_reason(tmp_path: Path, catalogue) -> None:  # type: ignore[no-untyped-def]
    # the one 民政 row lands in the unstratified hold-out (seed 12345): the fit would see one label only
    ds = Dataset([BENEFIT.format(0)] + [SMOKE.format(i) for i in range(10)], ["民政"] + ["环境保护"] * 10,
                 "domain", "rare.csv")
    with pytest.raises(TrainingDataError, match="too few examples per label"):
        train(ds, catalogue, tmp_path / "models", threshold=0.5)


def test_an_error_naming_a_label_in_brackets_is_printed_not_taken_for_markup(tmp_path: Path) -> None:
    path = _csv(tmp_path / "brackets.csv", [(SMOKE.format(i), "[/城建]") for i in range(12)])
    env = {"HOTLINE_MODEL_DIR": str(tmp_path / "models"), "HOTLINE_DATA_DIR": str(tmp_path / "var")}
    result = CliRunner().invoke(app, ["train", "--data", str(path), "--no-corrections"], env=env)
    assert result.exit_code == 2, result.output
    assert "[/城建]" in result.output


@pytest.fixture(scope="module")
def domain_model(catalogue):  # type: ignore[no-untyped-def]
    texts = [SMOKE.format(i) for i in range(8)] + [BENEFIT.format(i) for i in range(8)]
    model = mm.fit(texts, ["环境保护"] * 8 + ["民政"] * 8, nbsvm=False)
    model.metadata["label_kind"] = "domain"
    return model


def test_a_domain_model_is_scored_on_the_domains_of_matter_labels(domain_model, catalogue) -> None:  # type: ignore[no-untyped-def]
    smoke = next(c for c, m in catalogue.matters.items() if m.domain == "环境保护")
    benefit = next(c for c, m in catalogue.matters.items() if m.domain == "民政")
    texts = [SMOKE.format(99), BENEFIT.format(99)]
    report = evaluate(domain_model, texts, [smoke, benefit], catalogue, threshold=0.5, label_kind="matter")
    assert report["accuracy"] == 1.0 and report["label_kind"] == "domain"
    assert set(report["per_class"]) == {"环境保护", "民政"}


def test_a_domain_model_is_not_scored_on_agency_codes(domain_model, catalogue) -> None:  # type: ignore[no-untyped-def]
    agency = next(iter(catalogue.agencies))
    with pytest.raises(TrainingDataError, match="the model names domains and these labels are agency codes"):
        evaluate(domain_model, [SMOKE.format(1)], [agency], catalogue, threshold=0.5, label_kind="agency")


def test_a_correction_to_an_agency_the_catalogue_dropped_is_skipped(tmp_path: Path, catalogue) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    ledger = Ledger(make_engine(url))
    kept = next(iter(catalogue.agencies))
    at = datetime(2025, 3, 1, tzinfo=UTC)
    with ledger.session() as s:
        for n, agency in enumerate([kept, "GONE-AGENCY"]):
            s.add(t.Ticket(id=f"T{n}", received_at=at, text=SMOKE.format(n)))
            s.add(t.TrainingExample(ticket_id=f"T{n}", text=SMOKE.format(n), label=agency, label_kind="agency",
                                    created_by="disp"))
    try:
        found = load_corrections(ledger, catalogue, "agency", "BH")
    finally:
        ledger.dispose()
    assert found.labels == [kept] and found.skipped == 1


def test_corrections_come_in_the_same_order_after_a_row_is_rewritten(database_url: str, catalogue) -> None:  # type: ignore[no-untyped-def]
    # PostgreSQL writes an updated row anew: without an ORDER BY it came back last, so the same corrections
    # (same corpus hash) gave another hold-out split and another model
    from sqlalchemy import update

    ledger = Ledger(make_engine(database_url))
    agencies = list(catalogue.agencies)[:2]
    at = datetime(2025, 3, 1, tzinfo=UTC)
    try:
        with ledger.session() as s:
            s.add_all([t.Ticket(id=f"T{n:02d}", received_at=at, text=SMOKE.format(n)) for n in range(20)])
            s.flush()
            s.add_all([t.TrainingExample(ticket_id=f"T{n:02d}", text=SMOKE.format(n), label=agencies[n % 2],
                                         label_kind="agency", created_by="disp") for n in range(20)])
        before = load_corrections(ledger, catalogue, "agency", "BH")
        with ledger.session() as s:  # a re-dispatch to the same agency: only who and when change
            s.execute(update(t.TrainingExample).where(t.TrainingExample.ticket_id == "T00").values(created_by="boss"))
        after = load_corrections(ledger, catalogue, "agency", "BH")
    finally:
        ledger.dispose()
    assert after.texts == before.texts == [SMOKE.format(n) for n in range(20)]
