"""The matter classifier: a scikit-learn pipeline, trained, evaluated, saved and loaded as a versioned artifact.

Features (each text normalised once): jieba word unigrams, character uni+bigrams (robust to typos and
words jieba does not know) and character bigrams of the opening 60 characters (the caller's title),
TF-IDF weighted, into one linear SVM. Its decision values become probabilities through a softmax
(``svm_temperature``). A retrieval score is blended in so that labels with few training examples are
still found: the cosine similarity, *in the same feature space*, of the ticket to each label's catalogue
text (description, phrasings, keywords) — free at predict time, since the features are computed anyway.
Catch-all labels (generic policy questions, suggestions, complaints about officials' work style) get a
prior below 1 (``priors``): they take a ticket only when no specific matter claims it. Finally one
power ``calibration`` (fitted on the training hold-out, see ``classifier.training.train``) sharpens
or flattens every row without changing its ranking, so the confidence means what the threshold assumes.

A model of few labels (a user's history labelled by domain or agency, ``NBSVM_MAX_LABELS``) also gets a
second linear model, an NB-SVM (:class:`NBSVM`), and a logistic regression that turns both models'
decision values into probabilities (``stacker``), fitted on their out-of-fold values over an inner
5-fold split of the training texts. On the real letters' seven domains, 15 folds: SVM alone 0.906, the
two averaged 0.913, stacked 0.917 (121 letters fixed, 86 broken; benchmarks/README.md). On the 200
matters of the team corpus the NB-SVM cost 22 s of training and lowered cold-start accuracy (0.820 ->
0.815 blended, 0.793 alone), so matter models go without both.

Chosen by measurement on the real messages (``benchmarks/classifier_cold_start.py``,
``benchmarks/classifier_own_history.py``): the sigmoid-calibrated SVM of the previous version ranked
worse than its own raw decision values on real letters (0.691 vs 0.702 domain accuracy), its
calibration folds doubled the fit time, and the separate char 2-3 retrieval vectoriser cost a fifth of
predict time while scoring worse (0.655 alone) than retrieval in the classifier's feature space (0.704).

An artifact is a folder ``<model_dir>/<version>/`` with ``model.pkl.zst`` (the fitted parts, pickled and
compressed with Zstandard) and ``metadata.json`` (library versions, corpus hash, labels, evaluation report,
the model file's name and SHA-256). Artifacts saved with joblib (``model.joblib``) load as before.
``<model_dir>/current`` points at the version in use. Only files whose hash matches their metadata
and whose metadata carries our format marker are ever unpickled. With a signing key (settings:
``model_signing_key``) the metadata also carries an HMAC-SHA256 of itself, model hash included, and only
models whose signature matches the key are loaded: the hash proves a file intact, the signature that whoever
wrote it held the deployment's key.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import pickle
import platform
import re
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import zstandard
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import LinearSVC
from sklearn.utils.extmath import safe_sparse_dot

from classifier import text as textmod
from classifier.features import FastFeatures, row_normalized

log = logging.getLogger(__name__)

# /2: LinearSVC + softmax, retrieval in feature space, priors, calibration power (/1 had a calibrated SVM)
FORMAT = "hotline-router/matter-model/2"
FORMAT_FAMILY = "hotline-router/matter-model/"
# Pickle protocol 5 in Zstandard, level 1: loads in 0.4 s where joblib's compressed file took 1.1-1.5 s (its
# unpickler runs in Python), saves in 0.5 s instead of ~5, and is no larger (52 against 53 MB).
MODEL_FILE = "model.pkl.zst"
JOBLIB_MODEL_FILE = "model.joblib"  # what artifacts saved before the change hold; still loaded
_ZSTD_LEVEL = 1
META_FILE = "metadata.json"
_VERSION_NAME = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")  # a folder :func:`save` made: stamp and corpus hash
CURRENT = "current"
NONE_LABEL = "NONE"  # "not routable": praise, chatter, questions answered at intake
MAX_CHARS = 3000  # the first 3,000 normalised characters decide; longer texts are mostly repetition
# What is normalised at most. The cut comes after normalising: markup and entities pasted from a web form
# shrink to nothing there, and a cut before it left some long complaints with no text at all ("empty").
RAW_CHARS = 4 * MAX_CHARS
HEAD_CHARS = 60  # the opening that gets its own feature block (see ``head``)
# Softmax temperatures of the SVM's decision values and of the retrieval cosines, and the retrieval's
# share of the blend: measured together on the real letters (cold start 0.731 SVM alone -> 0.741).
SVM_TEMPERATURE = 5.0
RETRIEVAL_TEMPERATURE = 20.0
RETRIEVAL_WEIGHT = 0.5
NBSVM_MAX_LABELS = 40  # one binary SVM per label: cheap for a few domains or agencies, see the docstring
STACK_FOLDS = 5  # inner folds of the stacker's training values; a label needs this many examples


class ModelError(RuntimeError):
    """A model artifact is missing, corrupt, or not ours."""


SIGNATURE = "signature"  # the metadata field holding "hmac-sha256:<hex>"
_SIGNED_WITH = "hmac-sha256:"


def _signature(meta: Mapping[str, Any], key: bytes) -> str:
    """The HMAC of the metadata without its signature, as canonical JSON (sorted keys, no spaces)."""
    body = {k: v for k, v in meta.items() if k != SIGNATURE}
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return _SIGNED_WITH + hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def verify_signature(meta: Mapping[str, Any], key: bytes | None, where: Path) -> None:
    """Refuse metadata not signed with ``key`` (nothing is checked without a key). Raises ModelError."""
    if not key:
        return
    found = meta.get(SIGNATURE)
    if not isinstance(found, str) or not found.startswith(_SIGNED_WITH):
        raise ModelError(f"model {meta.get('version', where)} in {where} is not signed, and a signing key is set "
                         "(HOTLINE_MODEL_SIGNING_KEY): only models trained with that key are loaded; run "
                         "`hotline train` with it")
    if not hmac.compare_digest(found, _signature(meta, key)):
        raise ModelError(f"model {meta.get('version', where)} in {where} is not signed with this deployment's key "
                         "(HOTLINE_MODEL_SIGNING_KEY), or its metadata was changed after signing: it is not "
                         "loaded (loading a model runs its code); run `hotline train` with the key")


def normalize_all(texts: Sequence[str]) -> list[str]:
    """The pipeline's first step: normalise each text once, then cut it to ``MAX_CHARS``; every feature
    block reads the result."""
    return [textmod.normalize(t[:RAW_CHARS])[:MAX_CHARS] for t in texts]


def head(text: str) -> str:
    """The opening of a normalised ticket: the caller's title or first sentence, weighted once more."""
    return text[:HEAD_CHARS]


def build_pipeline(*, C: float = 0.5) -> Pipeline:
    features = FeatureUnion([
        ("words", TfidfVectorizer(analyzer=textmod.tokenize_normalized, sublinear_tf=True)),
        ("chars", TfidfVectorizer(analyzer="char", ngram_range=(1, 2), min_df=2, lowercase=False,
                                  sublinear_tf=True)),
        ("head", TfidfVectorizer(preprocessor=head, analyzer="char", ngram_range=(2, 2), min_df=2,
                                 lowercase=False, sublinear_tf=True)),
    ])
    clf = LinearSVC(C=C, random_state=0)  # seeded: the same corpus gives the same model
    return Pipeline([("normalize", FunctionTransformer(normalize_all)), ("features", features), ("clf", clf)])


class NBSVM(ClassifierMixin, BaseEstimator):
    """Wang & Manning's NB-SVM: per label, a binary linear SVM on the features scaled by that label's
    naive-Bayes log-count ratio, so words that separate the label weigh more before the margin is fitted.

    Each label's scaling folds into its weights after fitting, so predicting is one sparse product,
    like the plain SVM.
    """

    def __init__(self, C: float = 1.0, alpha: float = 1.0) -> None:
        self.C = C
        self.alpha = alpha  # additive smoothing of the feature counts

    def fit(self, X: Any, y: Sequence[str]) -> NBSVM:
        labels = np.asarray(y)
        self.classes_ = np.unique(labels)
        present = sparse.csr_matrix(X, copy=True)
        present.data[:] = 1.0
        coefs, intercepts = [], []
        for label in self.classes_:
            pos = labels == label
            p = self.alpha + np.asarray(present[pos].sum(axis=0)).ravel()
            q = self.alpha + np.asarray(present[~pos].sum(axis=0)).ravel()
            ratio = np.log((p / p.sum()) / (q / q.sum()))
            svm = LinearSVC(C=self.C, random_state=0).fit(X @ sparse.diags(ratio), pos.astype(int))
            coefs.append(svm.coef_[0] * ratio)
            intercepts.append(svm.intercept_[0])
        self.coef_ = np.vstack(coefs)
        self.intercept_ = np.array(intercepts)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        return np.asarray(X @ self.coef_.T) + self.intercept_


def svm_scores(svm: Any, X: Any) -> np.ndarray:
    """A linear SVM's decision values, one column per label (also for two labels, where scikit-learn
    returns only the second label's)."""
    if isinstance(svm, LinearSVC) and sparse.issparse(X) and X.format == "csr" and X.shape[1] == svm.coef_.shape[1]:
        # LinearClassifierMixin.decision_function's arithmetic without its per-call input checks, which
        # weigh on a batch of one ticket; the same product and sum, so the same bits
        scores = safe_sparse_dot(X, svm.coef_.T, dense_output=True) + svm.intercept_
        scores = np.asarray(scores.reshape(-1) if scores.shape[1] == 1 else scores, dtype=float)
    else:
        scores = np.asarray(svm.decision_function(X), dtype=float)
    return np.column_stack([-scores, scores]) if scores.ndim == 1 else scores


def fit_stacker(svm: Any, X: Any, labels: Sequence[str], classes: list[str]) -> LogisticRegression | None:
    """The logistic regression that combines the SVM's and the NB-SVM's decision values, trained on values
    neither model saw its text for (an inner stratified split), so it learns how far to trust each; None
    when a label has fewer than ``STACK_FOLDS`` examples (the two are then averaged)."""
    y = np.asarray([str(lb) for lb in labels])
    if min(Counter(y.tolist()).values()) < STACK_FOLDS:
        return None
    values = np.zeros((len(y), 2 * len(classes)))
    for train, held in StratifiedKFold(STACK_FOLDS, shuffle=True, random_state=0).split(np.zeros(len(y)), y):
        inner_svm = clone(svm).fit(X[train], y[train])
        inner_nb = NBSVM(C=1.0).fit(X[train], y[train])
        values[held] = np.hstack([svm_scores(inner_svm, X[held]), inner_nb.decision_function(X[held])])
    stacker = LogisticRegression(C=1.0, max_iter=3000).fit(values, y)
    if [str(c) for c in stacker.classes_] != classes:  # same sorted labels as the pipeline, by construction
        raise ModelError("stacker labels differ from the classifier's")
    return stacker


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = scores * temperature
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


@dataclass
class Retrieval:
    """Each label's catalogue text as an L2-normalised row in the classifier's own feature space."""

    matrix: Any  # sparse (n_labels, n_features), rows in the order of the classifier's labels

    @classmethod
    def fit(cls, features: FeatureUnion, labels: Sequence[str], label_texts: Mapping[str, str]) -> Retrieval:
        # labels without a catalogue text (NONE) get an empty row: cosine 0 with every ticket
        return cls(row_normalized(features.transform(normalize_all([label_texts.get(lb, "") for lb in labels]))))

    def scores(self, features: Any) -> np.ndarray:
        """Cosine similarity of each ticket (rows of the feature matrix) to each label."""
        # the transpose as CSR once per process: the product converted it on every call (models pickled
        # before this have no cached copy, hence getattr)
        transposed = getattr(self, "_transposed", None)
        if transposed is None:
            transposed = self._transposed = self.matrix.T.tocsr()
        return np.asarray((row_normalized(features) @ transposed).todense())

    def __getstate__(self) -> dict[str, Any]:  # the cache is derived: not part of the saved artifact
        return {k: v for k, v in self.__dict__.items() if k != "_transposed"}


@dataclass
class MatterModel:
    """A fitted classifier plus its metadata; ``predict_proba`` blends in catalogue retrieval."""

    pipeline: Pipeline
    retrieval: Retrieval | None
    nbsvm: NBSVM | None = None  # fitted on the pipeline's features; combined with the SVM when present
    stacker: LogisticRegression | None = None  # SVM and NB-SVM decision values -> probabilities
    metadata: dict[str, Any] = field(default_factory=dict)
    retrieval_weight: float = 0.0
    retrieval_temperature: float = RETRIEVAL_TEMPERATURE
    svm_temperature: float = SVM_TEMPERATURE
    priors: dict[str, float] = field(default_factory=dict)  # label -> multiplier (absent: 1)
    calibration: float = 1.0  # power applied to each row, then renormalised

    def __post_init__(self) -> None:
        self._prior_vector: np.ndarray | None = None
        self._fast_features: FastFeatures | None = None

    def features(self, normalized: Sequence[str]) -> Any:
        """The feature union's TF-IDF rows for normalised texts (``classifier.features``: same bits, faster)."""
        if self._fast_features is None:
            self._fast_features = FastFeatures(self.pipeline.named_steps["features"])
        return self._fast_features.transform(normalized)

    @property
    def labels(self) -> list[str]:
        return [str(c) for c in self.pipeline.classes_]

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", "unversioned"))

    @property
    def label_kind(self) -> str:
        return str(self.metadata.get("label_kind", "matter"))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_proba_normalized(normalize_all(texts))

    def predict_proba_normalized(self, normalized: Sequence[str], *, calibrated: bool = True) -> np.ndarray:
        """:meth:`predict_proba` for texts already passed through :func:`normalize_all`.

        ``calibrated=False`` leaves out the calibration power (used while fitting it).
        """
        X = self.features(normalized)
        scores = svm_scores(self.pipeline.named_steps["clf"], X)
        if self.nbsvm is not None and self.stacker is not None:
            proba = self.stacker.predict_proba(np.hstack([scores, self.nbsvm.decision_function(X)]))
        else:
            proba = softmax(scores, self.svm_temperature)
            if self.nbsvm is not None:  # a model saved before the stacker: the two averaged
                proba += softmax(self.nbsvm.decision_function(X), self.svm_temperature)
                proba /= 2
        if self.retrieval is not None and self.retrieval_weight > 0:
            sims = softmax(self.retrieval.scores(X), self.retrieval_temperature)
            proba = (1 - self.retrieval_weight) * proba + self.retrieval_weight * sims
        if self.priors:
            proba *= self._priors()
        if calibrated and self.calibration != 1.0:
            np.power(proba, self.calibration, out=proba)
        proba /= proba.sum(axis=1, keepdims=True)
        return proba

    def _priors(self) -> np.ndarray:
        if self._prior_vector is None:
            self._prior_vector = np.array([self.priors.get(lb, 1.0) for lb in self.labels])
        return self._prior_vector

    def top(self, texts: Sequence[str], k: int = 4) -> list[list[tuple[str, float]]]:
        return self.top_normalized(normalize_all(texts), k)

    def top_normalized(self, normalized: Sequence[str], k: int = 4) -> list[list[tuple[str, float]]]:
        """The ``k`` best labels with their probabilities, for texts already normalised."""
        proba = self.predict_proba_normalized(normalized)
        labels = self.labels
        k = min(k, proba.shape[1])
        part = np.argpartition(-proba, k - 1, axis=1)[:, :k]  # the k best unsorted, then sort only those
        out = []
        for row, idx in zip(proba, part, strict=True):
            best = idx[np.argsort(-row[idx], kind="stable")]
            out.append([(labels[j], float(row[j])) for j in best])
        return out


def fit(texts: Sequence[str], labels: Sequence[str], *, label_texts: Mapping[str, str] | None = None,
        retrieval_weight: float = 0.0, C: float = 0.5, priors: Mapping[str, float] | None = None,
        nbsvm: bool | None = None) -> MatterModel:
    """Fit the pipeline; with ``label_texts`` also the retrieval rows of those labels.

    ``nbsvm``: add the NB-SVM; by default when there are at most ``NBSVM_MAX_LABELS`` labels.
    """
    pipeline = build_pipeline(C=C)
    pipeline.fit(list(texts), list(labels))
    classes = [str(c) for c in pipeline.classes_]
    retrieval = Retrieval.fit(pipeline.named_steps["features"], classes, label_texts) if label_texts else None
    known = {lb: float(v) for lb, v in (priors or {}).items() if lb in set(classes)}
    model = MatterModel(pipeline, retrieval, retrieval_weight=retrieval_weight if retrieval else 0.0,
                        priors=known)
    if (len(classes) <= NBSVM_MAX_LABELS) if nbsvm is None else nbsvm:
        # the pipeline's fitted features, computed again: FeatureUnion.fit does not keep its output
        X = model.features(normalize_all(texts))
        model.nbsvm = NBSVM(C=1.0).fit(X, [str(lb) for lb in labels])
        model.stacker = fit_stacker(pipeline.named_steps["clf"], X, labels, classes)
    return model


def fit_calibration(model: MatterModel, texts: Sequence[str], labels: Sequence[str]) -> float:
    """The power ``c`` for which ``p**c`` (renormalised) has the least log-loss on held-out texts.

    One parameter, so a few hundred hold-out tickets fix it; it keeps every ranking, so accuracy is
    untouched and only the meaning of the confidence (and so the auto/manual split) changes.
    """
    proba = model.predict_proba_normalized(normalize_all(texts), calibrated=False)
    index = {lb: i for i, lb in enumerate(model.labels)}
    rows = [(n, index[lb]) for n, lb in enumerate(labels) if lb in index]
    if not rows:
        return 1.0
    logp = np.log(np.clip(proba[[r for r, _ in rows]], 1e-12, None))
    gold = np.array([c for _, c in rows])
    best, best_loss = 1.0, np.inf
    for c in np.arange(0.25, 4.01, 0.05):
        z = logp * c
        z -= z.max(axis=1, keepdims=True)
        loss = float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(gold)), gold]))
        if loss < best_loss:
            best, best_loss = float(round(c, 2)), loss
    return best


def library_versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for dist in ("scikit-learn", "jieba", "rjieba", "numpy", "scipy", "joblib"):
        try:
            out[dist] = version(dist)
        except Exception:  # a missing dist is recorded, not fatal
            out[dist] = "unknown"
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(model: MatterModel, model_dir: Path, *, corpus_hash: str, evaluation: dict[str, Any],
         extra: dict[str, Any] | None = None, make_current: bool = True, signing_key: bytes | None = None) -> Path:
    """Write a new versioned artifact, signed when a key is given, and (by default) point ``current`` at it."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    version = f"{stamp}-{corpus_hash[:8]}"
    folder = model_dir / version
    folder.mkdir(parents=True, exist_ok=False)
    model.metadata = {
        "format": FORMAT, "version": version, "created_at": datetime.now(UTC).isoformat(),
        "corpus_hash": corpus_hash, "labels": model.labels, "label_kind": model.metadata.get("label_kind",
                                                                                          "matter"),
        "libraries": library_versions(), "retrieval_weight": model.retrieval_weight,
        "retrieval_temperature": model.retrieval_temperature, "svm_temperature": model.svm_temperature,
        "priors": model.priors, "calibration": model.calibration, "nbsvm": model.nbsvm is not None,
        "stacker": model.stacker is not None,
        "user_words": textmod.user_words(), "place_names": textmod.place_names(),
        "evaluation": evaluation, **(extra or {}),
    }
    payload = {"pipeline": model.pipeline, "retrieval": model.retrieval, "nbsvm": model.nbsvm,
               "stacker": model.stacker}
    with open(folder / MODEL_FILE, "wb") as fh, zstandard.ZstdCompressor(level=_ZSTD_LEVEL).stream_writer(fh) as out:
        pickle.dump(payload, out, protocol=5)
    meta = dict(model.metadata, model_file=MODEL_FILE, model_sha256=_sha256(folder / MODEL_FILE))
    if signing_key:  # signed as it will be read back (JSON turns tuples into lists, int keys into strings)
        meta = json.loads(json.dumps(meta, ensure_ascii=False))
        meta[SIGNATURE] = _signature(meta, signing_key)
    (folder / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    if make_current:
        point_current(model_dir, version)
    return folder


def point_current(model_dir: Path, version: str) -> None:
    link = model_dir / CURRENT
    tmp = model_dir / f".{CURRENT}.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(version)
    os.replace(tmp, link)  # atomic swap: a reader sees the old or the new version, never neither


def read_metadata(folder: Path) -> dict[str, Any]:
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise ModelError(f"no model metadata at {meta_path}; run `hotline train`")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelError(f"model metadata {meta_path} is unreadable ({exc}); run `hotline train`") from None
    if not isinstance(meta, dict):  # valid JSON, but [] or "x" has no format to ask for
        raise ModelError(f"{meta_path} is not a model made by `hotline train` (a JSON {type(meta).__name__}, "
                         "not an object); run `hotline train`")
    if str(meta.get("format", "")).startswith(FORMAT_FAMILY) and meta["format"] != FORMAT:
        raise ModelError(f"{meta_path} was made by an earlier version of `hotline train` (format "
                         f"{meta['format']!r}, this version reads {FORMAT!r}); run `hotline train` to rebuild it")
    if meta.get("format") != FORMAT:
        raise ModelError(f"{meta_path} is not a model made by `hotline train` (format {meta.get('format')!r})")
    return meta


def load(model_dir: Path, version: str = CURRENT, *, signing_key: bytes | None = None) -> MatterModel:
    """Load an artifact after checking it is ours (signed with ``signing_key``, when given) and intact; never
    unpickles anything else."""
    folder = (model_dir / version).resolve()
    if not folder.is_relative_to(model_dir.resolve()):
        raise ModelError(f"model version {version!r} points outside {model_dir}")
    meta = read_metadata(folder)
    verify_signature(meta, signing_key, folder)  # the signature covers model_sha256, checked below
    model_name = meta.get("model_file", JOBLIB_MODEL_FILE)
    if model_name not in (MODEL_FILE, JOBLIB_MODEL_FILE):
        raise ModelError(f"{folder / META_FILE} names an unknown model file {model_name!r}; run `hotline train`")
    model_path = folder / model_name
    if not model_path.is_file():
        raise ModelError(f"model file {model_path} is missing; run `hotline train`")
    _refuse_writable_by_all(model_dir, folder, folder / META_FILE, model_path)
    data = model_path.read_bytes()  # hashed and unpickled from the same bytes: no swap in between
    if hashlib.sha256(data).hexdigest() != meta.get("model_sha256"):
        raise ModelError(f"model file {model_path} does not match its metadata (corrupt or replaced); "
                         "run `hotline train` to rebuild it")
    started = time.perf_counter()
    try:
        payload = _read_payload(model_name, data)
        pipeline, retrieval, nbsvm = payload["pipeline"], payload["retrieval"], payload.get("nbsvm")
        stacker = payload.get("stacker")  # absent from models saved before it: NB-SVM and SVM averaged
    except Exception as exc:  # hash matched but unpickling failed: incompatible libraries
        raise ModelError(f"model {meta['version']} cannot be loaded with these libraries ({exc}); "
                         f"it was built with {meta.get('libraries')}; run `hotline train`") from None
    textmod.configure(meta.get("user_words", ()), meta.get("place_names", ()))
    model = MatterModel(pipeline, retrieval, nbsvm, stacker, metadata=meta, retrieval_weight=float(meta.get("retrieval_weight", 0)),
                        retrieval_temperature=float(meta.get("retrieval_temperature", RETRIEVAL_TEMPERATURE)),
                        svm_temperature=float(meta.get("svm_temperature", SVM_TEMPERATURE)),
                        priors={str(k): float(v) for k, v in (meta.get("priors") or {}).items()},
                        calibration=float(meta.get("calibration", 1.0)))
    log.info("loaded model %s (%d labels) in %.2fs", model.version, len(model.labels),
             time.perf_counter() - started)
    return model


def _refuse_writable_by_all(*paths: Path) -> None:
    """The hash beside a model proves it intact, not ours: whoever can write the folder can write both, and
    unpickling runs code. A model any user of the machine could have replaced is not loaded."""
    for path in paths:
        if path.stat().st_mode & 0o002:
            raise ModelError(f"{path} is writable by every user of this machine, so anyone could have replaced "
                             f"the model (and loading a model runs its code): `chmod o-w {path}`, and keep models "
                             "where only the service's own users can write")


def _read_payload(name: str, data: bytes) -> dict[str, Any]:
    if name == JOBLIB_MODEL_FILE:
        return joblib.load(io.BytesIO(data))  # type: ignore[no-any-return]
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as src:
        return pickle.load(src)  # type: ignore[no-any-return]


def remove_old_versions(model_dir: Path, keep: int = 3) -> None:
    """Keep the newest ``keep`` versions besides the current one.

    Only folders named as :func:`save` names them (``20250301T080500Z-1a2b3c4d``) and holding our metadata
    count as versions: the model directory may hold other things (a cache, an operator's archive)."""
    current = (model_dir / CURRENT).resolve() if (model_dir / CURRENT).exists() else None
    versions = sorted((p for p in model_dir.iterdir() if _VERSION_NAME.fullmatch(p.name) and p.is_dir()
                       and not p.is_symlink() and (p / META_FILE).is_file()), reverse=True)
    for old in versions[keep:]:
        if old.resolve() != current:
            shutil.rmtree(old, ignore_errors=True)
