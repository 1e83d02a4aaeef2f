"""``hotline train --data`` / ``hotline evaluate --data``: a district trains on its own labelled history.

The history here is written by us: team-corpus tickets of a handful of matters, labelled by their
first-level domain, as a district's old system would have labelled them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from classifier import model as mm
from classifier.corpus import build_corpus
from config.catalogue import load_catalogue
from streams.cli import app

pytestmark = pytest.mark.integration

# two matters from each of four domains, so every domain has words of its own and a neighbour
MATTERS = ["HB-001", "HB-003", "RS-001", "RS-002", "JY-004", "JY-012", "JT-007", "GH-002"]


def _history(path: Path, seed: int) -> list[str]:
    catalogue = load_catalogue()
    examples = build_corpus([catalogue.matters[c] for c in MATTERS], per_matter=25, seed=seed)
    rows = [{"标题内容": e.text, "一级分类": catalogue.matters[e.matter].domain}
            for e in examples if e.matter in MATTERS]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["标题内容", "一级分类"])
        writer.writeheader()
        writer.writerows(rows)
    return sorted({r["一级分类"] for r in rows})


def _unwrapped(output: str) -> str:
    return " ".join(output.split())  # rich wraps long lines at the terminal width


@pytest.fixture(scope="module")
def own_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    # Given a domain-labelled history in a CSV with the district's own column names
    folder = tmp_path_factory.mktemp("own-history")
    history = folder / "history.csv"
    domains = _history(history, seed=1)
    # When it is trained on
    result = CliRunner().invoke(app, ["train", "--data", str(history), "--text-col", "标题内容",
                                      "--label-col", "一级分类", "--no-corrections"],
                                env={"HOTLINE_MODEL_DIR": str(folder / "models")})
    assert result.exit_code == 0, result.output
    assert "labels are first-level domains" in _unwrapped(result.output)  # the mode is said
    return folder / "models", folder, domains


def test_a_domain_history_trains_a_domain_model_with_its_nbsvm_and_stacker(own_model):
    models, _, domains = own_model
    meta = mm.read_metadata(models / mm.CURRENT)
    assert meta["label_kind"] == "domain" and sorted(meta["labels"]) == domains
    assert meta["nbsvm"] is True and meta["stacker"] is True and meta["examples"] > 100
    model = mm.load(models)
    assert model.nbsvm is not None and list(model.nbsvm.classes_) == model.labels
    assert model.stacker is not None and [str(c) for c in model.stacker.classes_] == model.labels
    # each part takes part: the stacked, averaged and SVM-only probabilities all differ, and all three rank
    # the obvious case right
    text = ["楼下饭店油烟太大，熏得窗户都不敢开，晚上还有噪音"]
    stacked = model.predict_proba(text)
    stacker, model.stacker = model.stacker, None
    averaged = model.predict_proba(text)
    nbsvm, model.nbsvm = model.nbsvm, None
    svm_only = model.predict_proba(text)
    model.nbsvm, model.stacker = nbsvm, stacker
    assert not np.allclose(stacked, averaged, rtol=1e-3, atol=0)
    assert not np.allclose(averaged, svm_only, rtol=1e-3, atol=0)
    for proba in (stacked, averaged, svm_only):
        assert model.labels[int(proba.argmax())] == "环境保护"
        assert abs(float(proba.sum()) - 1) < 1e-9


def test_labels_with_too_few_examples_for_the_inner_folds_are_averaged_not_stacked():
    # Given a history where one label has fewer examples than the stacker's inner folds
    catalogue = load_catalogue()
    examples = build_corpus([catalogue.matters[c] for c in ("HB-001", "RS-001")], per_matter=20, seed=3)
    texts = [e.text for e in examples if e.matter == "HB-001"] + [e.text for e in examples if e.matter == "RS-001"][:4]
    labels = ["环境保护"] * (len(texts) - 4) + ["劳动和社会保障"] * 4
    # When it is fitted, Then the NB-SVM is there but no stacker, and the two are averaged
    model = mm.fit(texts, labels)
    assert model.nbsvm is not None and model.stacker is None
    assert model.predict_proba(["工地老板拖欠农民工工资不给"]).shape == (1, 2)


def test_the_nbsvm_folds_its_scaling_into_its_weights():
    # one sparse product at predict time must equal a binary SVM on the scaled features, label by label
    from scipy import sparse
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(0)
    X = sparse.random(60, 30, density=0.3, random_state=1, format="csr")
    y = np.array(["a", "b", "c"])[rng.integers(0, 3, 60)]
    nb = mm.NBSVM(C=1.0).fit(X, y)
    present = (X > 0).astype(float)
    for k, label in enumerate(nb.classes_):
        pos = y == label
        p = 1 + np.asarray(present[pos].sum(axis=0)).ravel()
        q = 1 + np.asarray(present[~pos].sum(axis=0)).ravel()
        scale = sparse.diags(np.log((p / p.sum()) / (q / q.sum())))
        svm = LinearSVC(C=1.0, random_state=0).fit(X @ scale, pos.astype(int))
        assert np.allclose(nb.decision_function(X)[:, k], svm.decision_function(X @ scale))


def test_a_matter_model_goes_without_the_nbsvm(trained_model_dir):
    model = mm.load(trained_model_dir)
    assert model.nbsvm is None and model.metadata["nbsvm"] is False and len(model.labels) > mm.NBSVM_MAX_LABELS


def test_evaluate_reports_on_a_fresh_history(own_model):
    models, folder, domains = own_model
    fresh = folder / "fresh.csv"
    _history(fresh, seed=2)  # other generated tickets of the same matters
    result = CliRunner().invoke(app, ["evaluate", "--data", str(fresh), "--text-col", "标题内容",
                                      "--label-col", "一级分类", "--json"],
                                env={"HOTLINE_MODEL_DIR": str(models)})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["label_kind"] == "domain" and set(report["per_class"]) == set(domains)
    assert report["accuracy"] > 0.85 and report["n"] > 100
    assert {"auto_share", "auto_precision", "confusions", "macro_f1"} <= set(report)


def test_a_history_without_the_named_column_is_refused_clearly(tmp_path):
    history = tmp_path / "history.csv"
    _history(history, seed=1)
    result = CliRunner().invoke(app, ["train", "--data", str(history), "--no-corrections"],
                                env={"HOTLINE_MODEL_DIR": str(tmp_path / "models")})
    assert result.exit_code == 2
    said = _unwrapped(result.output)
    assert "cannot train" in said and "no column(s) text" in said and "标题内容" in said
    assert not (tmp_path / "models").exists()
