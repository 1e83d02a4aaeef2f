"""Training and evaluation: the team corpus by default, or a user's own historical tickets.

A user's file is CSV or JSONL with a text column and a label column; the label is a matter code, a
first-level domain, or an agency code, detected from the values (the model then predicts that kind
of label, and the routing decision uses it accordingly).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, f1_score
from sklearn.model_selection import train_test_split

from classifier import model as mm
from classifier import text as textmod
from models.directory import Catalogue
from models.domain import DOMAINS
from models.tickets import SHANGHAI

log = logging.getLogger(__name__)
SEED = 12345
# Catch-all matters of the catalogue: a policy question no single department owns, a suggestion on
# the government's work, a complaint about officials' work style. Every long letter to an official
# reads a little like them ("政策", "建议", "反映多次无人处理"), so with an even prior they drew real
# letters away from the specific matter (on the real messages: 59 labour/social-security letters went
# to 党务政务). A prior of 0.3 makes them the fallback they are; it was not tuned finer than that
# (0.5 / 0.3 / 0.1 gave +0.011 / +0.019 / +0.029 domain accuracy on the real messages) so as not to fit
# the benchmark: the dispatcher still sees them among the alternatives.
GENERIC_MATTERS = {"QZ-001": 0.3, "QZ-003": 0.3, "QZ-005": 0.3}


class TrainingDataError(ValueError):
    """The training or evaluation file cannot be used; the message says why."""


@dataclass(frozen=True)
class Dataset:
    texts: list[str]
    labels: list[str]
    label_kind: str  # matter | domain | agency
    source: str

    @property
    def hash(self) -> str:
        h = hashlib.sha256()
        for t, lb in sorted(zip(self.texts, self.labels, strict=True)):
            h.update(f"{lb}\t{t}\n".encode())
        return h.hexdigest()


def catalogue_terms(catalogue: Catalogue) -> tuple[list[str], list[str]]:
    """The catalogue's terms (matter names and keywords: kept whole by the tokenizer) and our place names."""
    words: list[str] = []
    for m in catalogue.matters.values():
        words.extend(m.keywords)
        words.append(m.name)
    places: list[str] = []
    for j in catalogue.jurisdictions.values():
        places.extend([j.name, *j.aliases])
        for s in j.streets:
            places.extend([s.name, *s.aliases])
    return words, places


def configure_text(catalogue: Catalogue) -> None:
    """Teach the tokenizer the catalogue's terms and our place names (before fitting)."""
    textmod.configure(*catalogue_terms(catalogue))


def label_texts(catalogue: Catalogue) -> dict[str, str]:
    """What the catalogue says of each matter: the text retrieval compares tickets with."""
    return {code: "。".join([m.name, m.description, *m.keywords, *m.phrasings])
            for code, m in catalogue.matters.items()}


def team_dataset(catalogue: Catalogue, per_matter: int = 40) -> Dataset:
    from classifier.corpus import build_corpus

    examples = build_corpus(catalogue.matters.values(), per_matter=per_matter, seed=SEED)
    return Dataset([e.text for e in examples], [e.matter for e in examples], "matter", "team corpus")


def detect_label_kind(labels: Iterable[str], catalogue: Catalogue) -> str:
    values = set(labels)
    kinds = {
        "matter": set(catalogue.matters) | {mm.NONE_LABEL},
        "domain": set(DOMAINS),
        "agency": set(catalogue.agencies),
    }
    for kind, known in kinds.items():
        if values and values <= known:
            return kind
    best = max(kinds, key=lambda k: len(values & kinds[k]))
    unknown = sorted(values - kinds[best])[:8]
    raise TrainingDataError(
        f"labels are neither all matter codes, all domains, nor all agency codes; closest is {best}, "
        f"but these are unknown: {', '.join(unknown)}")


# A cell may hold a whole letter with its attachments pasted in; csv's default limit (131,072 characters)
# made such a file unreadable. The model reads the first few thousand characters of a text anyway.
MAX_CELL_CHARS = 1 << 24


def read_labelled(path: Path, text_col: str, label_col: str, catalogue: Catalogue, *,
                  encoding: str = "utf-8-sig") -> Dataset:
    """Read CSV or JSONL (by extension; ``-`` not supported here) into a dataset, skipping empty rows."""
    if not path.is_file():
        raise TrainingDataError(f"{path}: no such file")
    content = _decoded(path, encoding).removeprefix("\ufeff")  # a BOM, also when --encoding utf-8
    rows: list[dict[str, Any]] = []
    if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        for n, line in enumerate(io.StringIO(content), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TrainingDataError(f"{path}:{n}: not JSON ({exc})") from None
            except RecursionError:
                raise TrainingDataError(f"{path}:{n}: not JSON (nested too deeply)") from None
            if not isinstance(obj, dict):
                raise TrainingDataError(f"{path}:{n}: not a JSON object")
            rows.append(obj)
    else:
        reader = csv.DictReader(io.StringIO(content, newline=""))
        limit = csv.field_size_limit(MAX_CELL_CHARS)
        try:
            missing = [c for c in (text_col, label_col) if c not in (reader.fieldnames or [])]
            if missing:
                raise TrainingDataError(f"{path}: no column(s) {', '.join(missing)}; "
                                        f"columns are {', '.join(reader.fieldnames or [])}")
            rows = list(reader)
        except csv.Error as exc:
            # the csv reader's own count: DictReader's lags a row behind and misses a row's inner line breaks
            raise TrainingDataError(f"{path}:{reader.reader.line_num}: unreadable CSV ({exc}); check the quoting "
                                    "of that line") from None
        finally:
            csv.field_size_limit(limit)  # a process-wide setting: leave it as found
    texts, labels = [], []
    for row in rows:
        t, lb = row.get(text_col), row.get(label_col)
        if isinstance(t, str) and t.strip() and lb is not None and str(lb).strip():
            texts.append(t)
            labels.append(str(lb).strip())
    if len(texts) < 10:
        raise TrainingDataError(f"{path}: only {len(texts)} usable rows with {text_col!r} and {label_col!r}")
    return Dataset(texts, labels, detect_label_kind(labels, catalogue), str(path))


def _decoded(path: Path, encoding: str) -> str:
    """The file's text; a wrong encoding is a TrainingDataError naming the line, not a traceback."""
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except LookupError:
        raise TrainingDataError(f"unknown --encoding {encoding!r}") from None
    except UnicodeDecodeError as exc:
        line = data[:exc.start].decode(encoding, errors="replace").count("\n") + 1
        raise TrainingDataError(f"{path}:{line}: not {exc.encoding} text ({exc.reason}); pass --encoding "
                                "(e.g. gbk) or save the file as UTF-8") from None


def fit_dataset(ds: Dataset, catalogue: Catalogue, *,
                retrieval_weight: float = mm.RETRIEVAL_WEIGHT) -> mm.MatterModel:
    matters = ds.label_kind == "matter"
    texts_for_labels = label_texts(catalogue) if matters else None
    model = mm.fit(ds.texts, ds.labels, label_texts=texts_for_labels,
                   retrieval_weight=retrieval_weight if texts_for_labels else 0.0,
                   priors=GENERIC_MATTERS if matters else None)
    model.metadata["label_kind"] = ds.label_kind
    return model


@dataclass(frozen=True)
class HoldOut:
    """The hold-out half of :func:`train`: fit on the 80%, calibrate and evaluate on the 20%."""

    train: Dataset
    texts: list[str]
    labels: list[str]
    catalogue: Catalogue
    threshold: float
    retrieval_weight: float

    def run(self) -> tuple[float, dict[str, Any]]:
        held = fit_dataset(self.train, self.catalogue, retrieval_weight=self.retrieval_weight)
        calibration = mm.fit_calibration(held, self.texts, self.labels)
        held.calibration = calibration
        return calibration, evaluate(held, self.texts, self.labels, self.catalogue, threshold=self.threshold)


_forked: HoldOut | None = None  # handed to the forked child by inheritance, not by pickling


def _run_forked() -> tuple[float, dict[str, Any]]:
    assert _forked is not None
    return _forked.run()


def run_beside(part: HoldOut, main: Callable[[], mm.MatterModel]) -> tuple[mm.MatterModel, float, dict[str, Any]]:
    """Run the hold-out part in a forked child while this process fits the final model: the two fits are
    independent, so on two cores training takes the time of the longer one. Where fork is missing or
    there is one core, they run one after the other; the results are the same either way."""
    global _forked
    if os.cpu_count() == 1 or "fork" not in multiprocessing.get_all_start_methods():
        calibration, report = part.run()
        return main(), calibration, report
    _forked = part
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
            future = pool.submit(_run_forked)
            final = main()
            calibration, report = future.result()
    finally:
        _forked = None
    return final, calibration, report


def train(ds: Dataset, catalogue: Catalogue, model_dir: Path, *, threshold: float,
          holdout: float = 0.2, retrieval_weight: float = mm.RETRIEVAL_WEIGHT,
          signing_key: bytes | None = None) -> tuple[Path, dict[str, Any]]:
    """Fit on 80%, calibrate the confidence on the other 20% and evaluate there; fit on everything (both
    at once, see :func:`run_beside`), keep that calibration, and save a new version (signed with
    ``signing_key`` when given)."""
    configure_text(catalogue)
    started = time.perf_counter()
    counts = Counter(ds.labels)
    if len(counts) < 2:
        raise TrainingDataError(f"{ds.source}: every example has the label {ds.labels[0]!r}; a classifier "
                                "needs examples of at least two labels")
    # stratified only where every label fits in both parts: a small file with many labels has fewer
    # hold-out rows than labels, which train_test_split refuses with a traceback
    n_held = math.ceil(holdout * len(ds.labels))
    stratify = ds.labels if min(counts.values()) >= 2 and n_held >= len(counts) else None
    tr_x, te_x, tr_y, te_y = train_test_split(ds.texts, ds.labels, test_size=holdout, random_state=SEED,
                                              stratify=stratify)
    if len(set(tr_y)) < 2:  # unstratified, the few examples of the other labels all fell in the hold-out
        raise TrainingDataError(f"{ds.source}: too few examples per label to hold {holdout:.0%} out for the "
                                f"evaluation ({dict(counts.most_common(5))}); "
                                "add examples of the rarer labels")
    part = HoldOut(Dataset(tr_x, tr_y, ds.label_kind, ds.source), list(te_x), list(te_y), catalogue, threshold,
                   retrieval_weight)
    final, calibration, report = run_beside(
        part, lambda: fit_dataset(ds, catalogue, retrieval_weight=retrieval_weight))
    report["holdout_share"] = holdout
    report["calibration"] = calibration
    # The power fitted on the 80% model's hold-out: the final model sees 25% more data, so it is if
    # anything slightly more sure of itself; the threshold errs on the side of the manual queue then.
    final.calibration = calibration
    seconds = time.perf_counter() - started
    path = mm.save(final, model_dir, corpus_hash=ds.hash, evaluation=report,
                   extra={"source": ds.source, "examples": len(ds.texts), "train_seconds": round(seconds, 1),
                          "threshold_at_training": threshold}, signing_key=signing_key)
    mm.remove_old_versions(model_dir)
    return path, report


def predicted_in(kind: str, label: str, catalogue: Catalogue, model_kind: str) -> str:
    """Map a model's label to the evaluation data's kind (a matter model scored against domains ...)."""
    if kind == model_kind or label == mm.NONE_LABEL:
        return label
    if model_kind == "matter":
        m = catalogue.matters.get(label)
        if m is None:
            return label
        if kind == "domain":
            return m.domain
        if kind == "agency_kind":
            return m.kind
    return label


def owner_code(matter: str, jurisdiction: str, at: date, catalogue: Catalogue) -> str:
    """The code of the agency that owns ``matter`` there and then; the matter code itself when none does."""
    try:
        return catalogue.owner(matter, jurisdiction, at).agency.code
    except LookupError:  # NONE, or a matter the list gives nobody there: never equal to an agency code
        return matter


def evaluate(model: mm.MatterModel, texts: Sequence[str], labels: Sequence[str], catalogue: Catalogue, *,
             threshold: float, label_kind: str | None = None, curve: Iterable[float] = ()) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class report, top confusions, and precision/coverage at the threshold.

    ``curve``: more thresholds to report precision and auto share for, from the same prediction pass.
    """
    kind = label_kind or model.label_kind
    gold = list(labels)
    if model.label_kind == "domain" and kind == "matter":
        # a domain model scored on matter codes: each matter names its domain (NONE stays, and counts wrong)
        gold = [catalogue.matters[g].domain if g in catalogue.matters else g for g in gold]
        kind = "domain"
    elif kind != model.label_kind and model.label_kind != "matter":
        # no way from a domain or an agency to the other kinds: every prediction would count as wrong
        said = {"matter": "matter codes", "domain": "domains", "agency": "agency codes"}
        names, given = said.get(model.label_kind, model.label_kind), said.get(kind, kind)
        raise TrainingDataError(f"the model names {names} and these labels are {given}: "
                                f"evaluate it on {names}")
    proba = model.predict_proba(list(texts))
    idx = np.argmax(proba, axis=1)
    conf = proba[np.arange(len(texts)), idx]
    if kind == "agency" and model.label_kind == "matter":
        # an agency is the owner the responsibility list names for the matter, in the gold agency's own
        # jurisdiction (the files carry no address) and as in force today
        today = datetime.now(UTC).astimezone(SHANGHAI).date()
        pred = [owner_code(model.labels[i], catalogue.agencies[g].jurisdiction, today, catalogue)
                for i, g in zip(idx, gold, strict=True)]
    else:
        pred = [predicted_in(kind, model.labels[i], catalogue, model.label_kind) for i in idx]
    correct = np.array([p == g for p, g in zip(pred, gold, strict=True)])
    at_threshold = _operating_point(conf, correct, threshold)
    pairs = Counter((g, p) for g, p in zip(gold, pred, strict=True) if g != p)
    per_class = classification_report(gold, pred, output_dict=True, zero_division=0)
    return {
        "n": len(gold),
        "label_kind": kind,
        "accuracy": round(float(accuracy_score(gold, pred)), 4),
        "macro_f1": round(float(f1_score(gold, pred, average="macro", zero_division=0)), 4),
        "threshold": threshold,
        "auto_share": round(at_threshold["auto_share"], 4),
        "auto_precision": None if np.isnan(at_threshold["precision"]) else round(at_threshold["precision"], 4),
        "confusions": [{"gold": g, "predicted": p, "count": c} for (g, p), c in pairs.most_common(10)],
        "per_class": {k: {m: round(float(v), 4) for m, v in d.items()} for k, d in per_class.items()
                      if isinstance(d, dict) and k not in {"macro avg", "weighted avg"}},
        "curve": [_operating_point(conf, correct, th) for th in curve],
    }


def _operating_point(conf: np.ndarray, correct: np.ndarray, threshold: float) -> dict[str, float]:
    """The share decided "auto" at ``threshold`` and the precision of those decisions (nan when none)."""
    auto = conf >= threshold
    return {"threshold": round(threshold, 3), "auto_share": float(auto.mean()),
            "precision": float(correct[auto].mean()) if auto.any() else float("nan")}
