"""Tests of the training corpus (classifier/corpus.py): determinism, size, lengths, labels, provenance."""

from __future__ import annotations

import csv
import os
import statistics
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from classifier.corpus import (
    MAX_LEN,
    MIN_LEN,
    NONE_LABEL,
    Example,
    build_corpus,
    catalogue_matters,
    corpus_hash,
    load_handwritten,
    read_jsonl,
    write_jsonl,
)

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
WINDOW = 20  # no window of this many characters may be shared with citizen data


@pytest.fixture(scope="module")
def matters() -> list:
    return catalogue_matters()


@pytest.fixture(scope="module")
def corpus(matters: list) -> list[Example]:
    return build_corpus(matters)


def test_build_is_deterministic(matters: list, corpus: list[Example]) -> None:
    # (its time is part of training's, which benchmarks/classifier_speed.py prints)
    again = build_corpus(list(reversed(matters)))  # input order must not matter
    assert again == corpus
    assert corpus_hash(again) == corpus_hash(corpus)
    assert corpus_hash(build_corpus(matters, seed=7)) != corpus_hash(corpus)


def test_hash_is_stable_across_processes(corpus: list[Example]) -> None:
    # a fresh interpreter with another PYTHONHASHSEED must produce the same corpus
    code = (
        "from classifier.corpus import build_corpus, catalogue_matters, corpus_hash;"
        "print(corpus_hash(build_corpus(catalogue_matters())))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "4242"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == corpus_hash(corpus)


def test_hash_ignores_order_and_source() -> None:
    a = [
        Example("甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉", "CG-001", "generated"),
        Example("x" * 25, "NONE", "handwritten"),
    ]
    b = [Example(a[1].text, a[1].matter, "generated"), Example(a[0].text, a[0].matter, "catalogue")]
    assert corpus_hash(a) == corpus_hash(b)
    assert corpus_hash(a) != corpus_hash([a[0]])


def test_at_least_30_distinct_texts_per_matter(matters: list, corpus: list[Example]) -> None:
    per: dict[str, set[str]] = defaultdict(set)
    for ex in corpus:
        per[ex.matter].add(ex.text)
    for m in matters:
        assert len(per[m.code]) >= 30, m.code
        assert len(per[m.code]) >= 40, m.code  # the default per_matter
    assert len(per[NONE_LABEL]) >= 30


def test_all_sources_present_and_catalogue_examples_kept(matters: list, corpus: list[Example]) -> None:
    texts = {ex.text for ex in corpus}
    assert {ex.source for ex in corpus} == {"generated", "handwritten", "catalogue"}
    for m in matters:
        assert all(e.strip() in texts for e in m.examples), m.code


def test_lengths_in_range_with_a_spread(corpus: list[Example]) -> None:
    generated = [len(ex.text) for ex in corpus if ex.source == "generated"]
    assert all(MIN_LEN <= n <= MAX_LEN for n in generated)
    assert all(MIN_LEN <= len(ex.text) <= MAX_LEN for ex in corpus)
    share_short = sum(n < 40 for n in generated) / len(generated)
    share_long = sum(n > 300 for n in generated) / len(generated)
    assert share_short > 0.05
    assert share_long > 0.05
    assert max(generated) > 450
    assert 60 <= statistics.median(generated) <= 200


def test_labels_known_and_unique_per_text(matters: list, corpus: list[Example]) -> None:
    codes = {m.code for m in matters} | {NONE_LABEL}
    assert {ex.matter for ex in corpus} <= codes
    texts = Counter(ex.text for ex in corpus)
    assert texts.most_common(1)[0][1] == 1  # no text twice, so never under two labels


def test_handwritten_covers_every_matter(matters: list) -> None:
    hand = load_handwritten()
    counts = Counter(ex.matter for ex in hand)
    missing = [m.code for m in matters if counts[m.code] < 2]
    assert not missing, f"matters with fewer than 2 hand-written tickets: {missing}"
    assert counts[NONE_LABEL] >= 30
    codes = {m.code for m in matters} | {NONE_LABEL}
    assert set(counts) <= codes, set(counts) - codes


def test_generated_tickets_vary(corpus: list[Example]) -> None:
    generated = [ex.text for ex in corpus if ex.source == "generated"]
    joined = "\n".join(generated)
    # markers of the different styles the brief asks for
    for marker in ("市民来电反映", "诉求", "您好", "另外", "****", "小区", "县", "谢谢", "！"):
        assert marker in joined, marker
    assert any(ex.startswith(("尊敬的", "关于")) or "：您好" in ex for ex in generated)


def test_subset_of_matters(matters: list) -> None:
    few = matters[:3]
    corpus = build_corpus(few, per_matter=35)
    labels = {ex.matter for ex in corpus}
    assert labels == {m.code for m in few} | {NONE_LABEL}
    for m in few:
        assert sum(ex.matter == m.code for ex in corpus) >= 35


def test_jsonl_roundtrip(tmp_path: Path, corpus: list[Example]) -> None:
    path = tmp_path / "corpus.jsonl"
    write_jsonl(corpus[:50], path)
    assert read_jsonl(path) == corpus[:50]


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not present")
def test_nothing_copied_from_shared_data(corpus: list[Example]) -> None:
    """No 20-character window of the corpus occurs in the citizen messages of ../shared/data.

    Any common 20-character substring contains a 10-character block of the csv text that starts at a
    multiple of 10, so the csv is probed only at those offsets against all 10-character shingles of
    the corpus; the few candidates are then checked exactly against the 20-character shingles.
    """
    half = WINDOW // 2
    shingles20: set[str] = set()
    shingles10: set[str] = set()
    for ex in corpus:
        t = ex.text
        shingles20.update(t[i : i + WINDOW] for i in range(len(t) - WINDOW + 1))
        shingles10.update(t[i : i + half] for i in range(len(t) - half + 1))
    csv.field_size_limit(1 << 30)
    hits: list[str] = []
    files = sorted(SHARED_DATA.glob("*.csv"))
    assert files
    for path in files:
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    for start in range(0, len(cell) - half + 1, half):
                        if cell[start : start + half] not in shingles10:
                            continue
                        lo = max(0, start + half - WINDOW)
                        for j in range(lo, min(start, len(cell) - WINDOW) + 1):
                            if cell[j : j + WINDOW] in shingles20:
                                hits.append(cell[j : j + WINDOW])
    assert not hits, f"{len(hits)} shared windows, e.g. {sorted(set(hits))[:5]}"
