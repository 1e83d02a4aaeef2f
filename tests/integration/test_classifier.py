"""The trained classifier through its public doors: Router, ``hotline classify``, artifacts on disk."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from classifier import model as mm
from classifier.router import Router, RouteRequest
from config.settings import Settings
from models.tickets import SHANGHAI
from streams.cli import app

pytestmark = pytest.mark.integration

BAD_TEXTS = {
    "empty": "",
    "punctuation": "。。。！！？？……，，",
    "huge": "楼下烧烤店油烟太大了，" * 5000,  # 55,000 characters
    "english": "The street lamp outside my building has been broken for two weeks.",
    "emoji": "😡😡😡🔥🔥🔥",
    "html": "<script>alert(1)</script><p>&nbsp;</p><br/>",
}


@pytest.fixture(scope="module")
def router(trained_model_dir: Path) -> Router:
    return Router.load(Settings(model_dir=trained_model_dir))


@pytest.mark.parametrize("name", sorted(BAD_TEXTS))
def test_bad_inputs_never_crash_and_never_auto_route(router, name):
    d = router.route(BAD_TEXTS[name])
    if name == "huge":  # a real complaint, pasted 5,000 times: read as the complaint it repeats, not refused
        once = router.route("楼下烧烤店油烟太大了，")
        assert (d.decision, d.matter, d.agency) == (once.decision, once.matter, once.agency) and d.reason
    elif name == "english":  # the catalogue and the corpus are Chinese: nothing to go by, a dispatcher decides
        assert d.decision == "manual" and d.reason
    else:
        assert d.decision == "unroutable" and d.reason


def test_same_text_two_dates_two_owners(router):
    text = "塘沽新港街道某小区门口有人私搭乱建，违章建筑越盖越大，在小区绿地上盖了两间彩钢房。"
    before = router.route(text, received_at=datetime(2025, 6, 1, 10, tzinfo=SHANGHAI))
    after = router.route(text, received_at=datetime(2025, 9, 1, 10, tzinfo=SHANGHAI))
    assert before.matter == after.matter == "CG-003"
    assert before.agency == "BH-JD-XG" and after.agency == "BH-CGW"  # the 2025-08-25 take-back
    assert before.basis and after.basis


def test_classify_jsonl_one_line_per_input_in_order(trained_model_dir):
    lines = [json.dumps({"id": "ok1", "text": "公司拖欠我三个月工资，老板一直躲着不见", "address": "东丽区华明街道"},
                        ensure_ascii=False),
             "not json at all",
             json.dumps({"id": "nontext", "text": 42}),
             json.dumps({"id": "huge", "text": "扰民" * 30_000}),
             json.dumps([1, 2]),
             *[json.dumps({"id": k, "text": v}, ensure_ascii=False) for k, v in BAD_TEXTS.items() if k != "huge"],
             json.dumps({"id": "ok2", "text": "路灯坏了两个星期了晚上一片漆黑", "received_at": "2025-02-01T09:00:00"},
                        ensure_ascii=False)]
    result = CliRunner().invoke(app, ["classify", "--jsonl"], input="\n".join(lines) + "\n",
                                env={"HOTLINE_MODEL_DIR": str(trained_model_dir)})
    assert result.exit_code == 0, result.output
    out = [json.loads(x) for x in result.stdout.strip().splitlines()]
    assert len(out) == len(lines)
    assert out[0]["id"] == "ok1" and out[-1]["id"] == "ok2"
    assert "error" in out[1] and "error" in out[2] and "error" in out[3] and "error" in out[4]
    for o in out:
        if "error" not in o:
            assert set(o) >= {"id", "matter", "domain", "agency", "agency_kind", "jurisdiction", "confidence",
                              "decision", "alternatives", "basis", "model_version"}
            assert o["decision"] in {"auto", "manual", "unroutable"}
    assert out[0]["agency_kind"] == "human_resources" and out[0]["jurisdiction"] == "DL"
    assert all("agency" in a and "confidence" in a for a in out[0]["alternatives"])


def test_classify_text_prints_a_readable_decision(trained_model_dir):
    result = CliRunner().invoke(app, ["classify", "小区楼下饭店油烟太大，熏得窗户都不敢开", "--address", "泰达街道"],
                                env={"HOTLINE_MODEL_DIR": str(trained_model_dir)})
    assert result.exit_code == 0, result.output
    assert "承办单位" in result.stdout and "置信度" in result.stdout


def test_metadata_records_what_the_model_is(trained_model_dir):
    meta = mm.read_metadata(trained_model_dir / mm.CURRENT)
    assert meta["format"] == mm.FORMAT and meta["corpus_hash"] and len(meta["labels"]) > 150
    assert {"scikit-learn", "jieba", "python"} <= set(meta["libraries"])
    assert meta["evaluation"]["accuracy"] > 0.8 and "per_class" in meta["evaluation"]


def _copy(trained_model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(trained_model_dir, target, symlinks=True)
    return target


def test_corrupt_model_is_refused_with_a_clear_message(trained_model_dir, tmp_path):
    models = _copy(trained_model_dir, tmp_path)
    model_file = models / mm.CURRENT / mm.MODEL_FILE
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(mm.ModelError, match="does not match its metadata"):
        mm.load(models)
    result = CliRunner().invoke(app, ["classify", "路灯不亮"], env={"HOTLINE_MODEL_DIR": str(models)})
    assert result.exit_code == 2 and "hotline train" in result.output


def test_foreign_or_missing_artifacts_are_refused(trained_model_dir, tmp_path):
    models = _copy(trained_model_dir, tmp_path)
    meta_path = models / mm.CURRENT / mm.META_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["format"] = "someone-else/1"
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(mm.ModelError, match="not a model made by"):
        mm.load(models)
    with pytest.raises(mm.ModelError, match="outside"):
        mm.load(models, version="../../etc")
    with pytest.raises(mm.ModelError, match="hotline train"):
        mm.load(tmp_path / "nothing-here")


def test_a_model_any_user_could_have_replaced_is_not_loaded(trained_model_dir, tmp_path):
    models = _copy(trained_model_dir, tmp_path)
    folder = (models / mm.CURRENT).resolve()
    folder.chmod(0o777)
    with pytest.raises(mm.ModelError, match="writable by every user"):
        mm.load(models)
    folder.chmod(0o755)
    (folder / mm.MODEL_FILE).chmod(0o666)
    with pytest.raises(mm.ModelError, match="chmod o-w"):
        mm.load(models)
    (folder / mm.MODEL_FILE).chmod(0o644)
    assert mm.load(models).labels


def test_with_a_signing_key_only_models_signed_with_it_are_loaded(trained_model_dir, tmp_path):
    # Given the team model saved again, signed with the deployment's key, beside an unsigned copy
    key = b"deployment-key-1"
    signed = tmp_path / "signed"
    mm.save(mm.load(trained_model_dir), signed, corpus_hash="0" * 16, evaluation={"accuracy": 0.9, "per": {1: 2}},
            signing_key=key)
    unsigned = _copy(trained_model_dir, tmp_path)
    # Then it loads with that key, and without one (nothing is checked then)
    assert mm.load(signed, signing_key=key).labels and mm.load(signed).labels
    # and is refused with another key; an unsigned model is refused once a key is set
    with pytest.raises(mm.ModelError, match="not signed with this deployment's key"):
        mm.load(signed, signing_key=b"someone-else")
    with pytest.raises(mm.ModelError, match="is not signed"):
        mm.load(unsigned, signing_key=key)
    # When someone without the key swaps the model and writes its hash into the metadata
    folder = (signed / mm.CURRENT).resolve()
    shutil.copy((unsigned / mm.CURRENT / mm.MODEL_FILE), folder / mm.MODEL_FILE)
    (folder / mm.MODEL_FILE).write_bytes((folder / mm.MODEL_FILE).read_bytes() + b"\0")
    meta = json.loads((folder / mm.META_FILE).read_text(encoding="utf-8"))
    meta["model_sha256"] = mm._sha256(folder / mm.MODEL_FILE)
    (folder / mm.META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    # Then the signature gives it away before anything is unpickled
    with pytest.raises(mm.ModelError, match="changed after signing"):
        mm.load(signed, signing_key=key)
    # and the worker's and the CLI's doors say so too
    env = {"HOTLINE_MODEL_DIR": str(signed), "HOTLINE_MODEL_SIGNING_KEY": key.decode()}
    result = CliRunner().invoke(app, ["classify", "路灯不亮"], env=env)
    assert result.exit_code == 2 and "HOTLINE_MODEL_SIGNING_KEY" in result.output
    assert key.decode() not in result.output


def test_an_artifact_of_the_previous_format_asks_for_a_rebuild(trained_model_dir, tmp_path):
    models = _copy(trained_model_dir, tmp_path)
    meta_path = models / mm.CURRENT / mm.META_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["format"] = mm.FORMAT_FAMILY + "1"
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(mm.ModelError, match="earlier version of `hotline train`"):
        mm.load(models)


def test_an_artifact_saved_with_joblib_still_loads_and_decides_the_same(trained_model_dir, tmp_path, router):
    # Given the team model as artifacts were saved before the Zstandard file: model.joblib, no model_file
    import joblib

    models = _copy(trained_model_dir, tmp_path)
    folder = (models / mm.CURRENT).resolve()
    joblib.dump(mm._read_payload(mm.MODEL_FILE, (folder / mm.MODEL_FILE).read_bytes()), folder / mm.JOBLIB_MODEL_FILE,
                compress=3)
    (folder / mm.MODEL_FILE).unlink()
    meta = json.loads((folder / mm.META_FILE).read_text(encoding="utf-8"))
    del meta["model_file"]
    meta["model_sha256"] = mm._sha256(folder / mm.JOBLIB_MODEL_FILE)
    (folder / mm.META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    # When it is loaded, Then it decides exactly as the artifact it was made from
    old = Router(mm.load(models), router.catalogue, router.settings)
    texts = ["楼下饭店油烟太大，熏得窗户都不敢开", "公司拖欠我三个月工资", "小区门口的路灯坏了一个星期"]
    assert [d.as_dict() for d in old.route_many([*map(RouteRequest, texts)])] == \
        [d.as_dict() for d in router.route_many([*map(RouteRequest, texts)])]
    # and a metadata file naming a file we do not write is refused before anything is unpickled
    meta["model_file"] = "../model.pickle"
    (folder / mm.META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(mm.ModelError, match="unknown model file"):
        mm.load(models)


@pytest.mark.parametrize("markup", ["&nbsp;" * 600, "<div>" * 700, "<style>" + "p{margin:0}" * 320 + "</style>"])
def test_a_long_pasted_web_form_is_read_after_its_markup(router, markup):
    # the first 3,000 characters that count are those left after normalising: a form's markup is dropped
    # first, so a complaint behind 3,600 characters of it is still read (it was "empty" before)
    plain = router.route("公司拖欠我三个月工资了，老板一直拖着不发，电话也不接")
    d = router.route(markup + "公司拖欠我三个月工资了，老板一直拖着不发，电话也不接")
    assert len(markup) > mm.MAX_CHARS
    assert d.decision != "unroutable" and (d.matter, d.agency) == (plain.matter, plain.agency)


def test_probabilities_priors_and_calibration(router):
    model = router.model
    texts = ["楼下饭店油烟太大，熏得窗户都不敢开", "想咨询一下区里有什么惠民政策", "公司拖欠我三个月工资"]
    proba = model.predict_proba(texts)
    assert np.allclose(proba.sum(axis=1), 1.0) and (proba >= 0).all()
    # catch-all matters are fallbacks, recorded with the model
    assert model.priors and all(v < 1 for v in model.priors.values()) and "QZ-001" in model.priors
    assert model.metadata["priors"] == model.priors
    assert model.metadata["calibration"] == model.calibration > 0
    # the calibration power keeps every ranking: only the confidence moves
    raw = model.predict_proba_normalized(mm.normalize_all(texts), calibrated=False)
    assert (np.argsort(-raw, axis=1)[:, :5] == np.argsort(-proba, axis=1)[:, :5]).all()
    tops = model.top(texts, k=3)
    assert [t[0][0] for t in tops] == [model.labels[i] for i in proba.argmax(axis=1)]
    assert all(a[1] >= b[1] for t in tops for a, b in zip(t, t[1:], strict=False))
    assert tops[0][0][0] == "HB-001" and tops[2][0][0] in {"RS-001", "RS-002"}


def test_fast_features_are_scikit_learns_to_the_bit(router):
    # classifier.features counts n-grams with numpy instead of CountVectorizer's loop: same matrix, exactly
    from classifier.features import FastFeatures

    model = router.model
    union = model.pipeline.named_steps["features"]
    texts = mm.normalize_all([
        *BAD_TEXTS.values(), "楼下饭店油烟太大，熏得窗户都不敢开", "公司拖欠我三个月工资", "ＡＢＣ 123 路灯", "a", "中",
    ])
    fast = FastFeatures(union)
    assert fast.enabled and all(counter is not None for _, counter in fast.blocks)
    got, expected = fast.transform(texts), union.transform(texts)
    assert fast.enabled  # the first batch is checked against scikit-learn; a difference switches it off
    got = fast.transform(texts[::-1])  # and once more after the check, on the fast path alone
    expected = union.transform(texts[::-1])
    assert type(got) is type(expected) and got.shape == expected.shape
    assert (got.indptr == expected.indptr).all() and (got.indices == expected.indices).all()
    assert np.array_equal(got.data, expected.data)


def test_decision_shortcuts_are_scikit_learns_to_the_bit(router):
    # svm_scores, row_normalized and Retrieval.scores skip scikit-learn's per-call input checks (half of
    # deciding one ticket): the arithmetic must stay exactly scikit-learn's
    import pickle

    from sklearn.preprocessing import normalize

    from classifier.features import row_normalized

    model = router.model
    texts = mm.normalize_all(["楼下饭店油烟太大，熏得窗户都不敢开", "公司拖欠我三个月工资", "路灯", *BAD_TEXTS.values()])
    for batch in (texts[:1], texts):
        X = model.features(batch)
        svm = model.pipeline.named_steps["clf"]
        assert np.array_equal(mm.svm_scores(svm, X), np.asarray(svm.decision_function(X), dtype=float))
        assert np.array_equal(row_normalized(X).data, normalize(X).data)
        assert np.array_equal(row_normalized(X, "l1").data, normalize(X, norm="l1").data)
        Y = X.copy()
        assert row_normalized(X) is not X and row_normalized(Y, copy=False) is Y
        expected = np.asarray((normalize(X) @ model.retrieval.matrix.T).todense())
        assert np.array_equal(model.retrieval.scores(X), expected)
    # the transposed copy the retrieval keeps is a cache, not part of a saved model
    assert "_transposed" in vars(model.retrieval)
    assert "_transposed" not in vars(pickle.loads(pickle.dumps(model.retrieval)))


def test_a_matter_model_is_scored_against_agency_codes_through_the_responsibility_list(router):
    # Given tickets labelled with the agency that handled them (as `hotline evaluate --data` accepts)
    from classifier.training import evaluate

    texts = ["小区门口的路灯坏了一个星期了", "楼下饭店油烟太大，熏得窗户都不敢开", "公司拖欠我三个月工资"]
    agencies = [router.route(t, address="滨海新区新港街道").agency for t in texts]
    assert all(agencies)
    # When the matter model is evaluated on them, Then each predicted matter counts through its owner there
    report = evaluate(router.model, texts, agencies, router.catalogue, threshold=0.5, label_kind="agency")
    assert report["accuracy"] == 1.0
    wrong = evaluate(router.model, texts, [*agencies[:2], agencies[0]], router.catalogue, threshold=0.5,
                     label_kind="agency")
    assert wrong["accuracy"] == round(2 / 3, 4)
