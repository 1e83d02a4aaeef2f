"""The fitted feature union's ``transform``, computed faster and to the same bits.

Predicting spends most of its time turning texts into TF-IDF rows, and within that, scikit-learn's
``CountVectorizer._count_vocab`` walks every n-gram in Python: one slice (a new string), one vocabulary
lookup and one dictionary update per character and per character pair — for a ~370-character ticket
about 740 of each in the char block alone. Here the character blocks are counted with numpy instead:
each text becomes its code points, every n-gram one integer (ticket, first and second code point), a
batch's integers are counted with one ``np.unique`` and mapped to columns with one ``searchsorted``
into the vocabulary's codes. Word blocks (a callable analyzer) keep their analyzer, and our jieba one
segments the whole batch at once (``classifier.text.tokenize_normalized_many``); their counting moves
to the same vectorised path.

The count matrix is the one ``_count_vocab`` builds (same dtype, same sorted column order, so every
later floating-point operation runs in the same order). The TF-IDF weighting is then
``TfidfTransformer.transform``'s own three array operations (log, times idf, row norm), without its
per-call input checks, which cost more than the arithmetic for a batch of one ticket; the union's own
``_hstack`` finishes the job. These rely on private scikit-learn names and behaviour, so nothing is
assumed: a vectorizer whose settings this does not reproduce keeps scikit-learn's path, and the first
batch is computed both ways and compared exactly — on any difference (a scikit-learn release that
counts otherwise) the fast path is switched off for good with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer
from sklearn.pipeline import FeatureUnion
from sklearn.preprocessing import normalize
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l1, inplace_csr_row_normalize_l2

from classifier import text as textmod

try:  # scikit-learn >= 1.8: count matrices follow the configured sparse interface (sparray or spmatrix)
    from sklearn.utils._sparse import _align_api_if_sparse
except ImportError:  # earlier releases: _count_vocab builds a csr_matrix
    def _align_api_if_sparse(X: Any) -> Any:
        return sp.csr_matrix(X)

log = logging.getLogger(__name__)

class _CharCounter:
    """Counts of character 1- and/or 2-grams of a fitted ``analyzer="char"`` vectorizer."""

    def __init__(self, vec: TfidfVectorizer) -> None:
        lo, hi = vec.ngram_range
        self.unigrams, self.bigrams = lo <= 1 <= hi, lo <= 2 <= hi
        self.preprocess = vec.build_preprocessor()
        self.decode = vec.decode
        self.white_spaces = vec._white_spaces  # what _char_ngrams collapses first
        self.n_features = len(vec.vocabulary_)
        terms = list(vec.vocabulary_.items())
        codes = np.array([_code(t) for t, _ in terms], dtype=np.int64)
        order = np.argsort(codes, kind="stable")
        self.codes = codes[order]
        self.columns = np.array([c for _, c in terms], dtype=np.int64)[order]
        # scikit-learn numbers a fitted vocabulary in string order, which is the codes' order: then the
        # (row, code) order of the counted pairs is already the (row, column) order CSR wants
        self.columns_in_code_order = bool(np.all(np.diff(self.columns) > 0))

    @staticmethod
    def supports(vec: Any) -> bool:
        lo, hi = getattr(vec, "ngram_range", (0, 0))
        return (isinstance(vec, TfidfVectorizer) and vec.analyzer == "char" and 1 <= lo <= hi <= 2
                and not vec.binary and vec.input == "content" and hasattr(vec, "_white_spaces")
                and all(1 <= len(t) <= 2 for t in vec.vocabulary_))

    def count(self, docs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, column, count) of the batch's in-vocabulary n-grams, sorted by row then column."""
        texts = [self.white_spaces.sub(" ", self.preprocess(self.decode(d))) for d in docs]
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        cps = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)
        rows_of = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        keys = []
        if self.unigrams:
            keys.append(rows_of << _ROW_SHIFT | cps << _SHIFT)
        if self.bigrams and len(cps) > 1:
            same_doc = rows_of[1:] == rows_of[:-1]  # no pair across two tickets
            keys.append((rows_of[:-1] << _ROW_SHIFT | cps[:-1] << _SHIFT | (cps[1:] + 1))[same_doc])
        key, counts = np.unique(np.concatenate(keys) if keys else np.empty(0, np.int64), return_counts=True)
        rows, codes = key >> _ROW_SHIFT, key & _CODE_MASK
        if not len(self.codes):
            return rows[:0], rows[:0], counts[:0]
        at = np.searchsorted(self.codes, codes)  # sorted within each row: numpy's search stays local
        np.minimum(at, len(self.codes) - 1, out=at)
        known = self.codes[at] == codes
        rows, columns, counts = rows[known], self.columns[at[known]], counts[known]
        if not self.columns_in_code_order:
            order = np.lexsort((columns, rows))
            rows, columns, counts = rows[order], columns[order], counts[order]
        return rows, columns, counts


class _WordCounter:
    """Counts of the tokens of a vectorizer with its own analyzer (the jieba words)."""

    def __init__(self, vec: TfidfVectorizer) -> None:
        self.analyze: Callable[[Any], list[str]] = vec.build_analyzer()
        self.decode = vec.decode
        # our jieba tokenizer takes a whole batch (its segmenter looked up once, not per text)
        self.analyze_many = textmod.tokenize_normalized_many if vec.analyzer is textmod.tokenize_normalized else None
        self.vocabulary_get = vec.vocabulary_.get
        self.n_features = len(vec.vocabulary_)

    @staticmethod
    def supports(vec: Any) -> bool:
        return isinstance(vec, TfidfVectorizer) and callable(vec.analyzer) and not vec.binary

    def count(self, docs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, column, count) of the batch's in-vocabulary tokens, sorted by row then column."""
        if self.analyze_many is not None:
            tokenized = self.analyze_many([self.decode(d) for d in docs])
        else:
            tokenized = [self.analyze(d) for d in docs]
        columns: list[int] = []
        lengths = []
        for tokens in tokenized:
            before = len(columns)
            columns.extend(map(self.vocabulary_get, tokens, repeat(-1)))  # -1: not in the vocabulary
            lengths.append(len(columns) - before)
        col = np.array(columns, dtype=np.int64)
        row = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
        known = col >= 0
        key, counts = np.unique(row[known] * self.n_features + col[known], return_counts=True)
        rows = key // self.n_features
        return rows, key - rows * self.n_features, counts


# A character n-gram as one integer that sorts like the string: the first code point, then 0 for a
# unigram or the second code point + 1 (code points are < 2**21). With the row above it, one sort of
# the integers orders a batch's n-grams by ticket, then as scikit-learn numbers its columns.
_SHIFT = 22
_ROW_SHIFT = 2 * _SHIFT
_CODE_MASK = (1 << _ROW_SHIFT) - 1
_MAX_ROWS = 1 << (63 - _ROW_SHIFT)


def _code(term: str) -> int:
    return ord(term[0]) << _SHIFT | (ord(term[1]) + 1 if len(term) == 2 else 0)


def _counts(counted: tuple[np.ndarray, np.ndarray, np.ndarray], n_docs: int, n_features: int,
            dtype: Any) -> sp.csr_array:
    """The CSR count matrix ``_count_vocab`` would build (columns sorted within each row)."""
    rows, columns, counts = counted
    indptr = np.searchsorted(rows, np.arange(n_docs + 1)).astype(np.int32)
    X = sp.csr_array((counts.astype(dtype), columns.astype(np.int32), indptr), shape=(n_docs, n_features))
    X.has_sorted_indices = True
    return X


def _float_csr(X: Any) -> bool:
    """Whether the shortcuts below apply: they work on a float CSR matrix's arrays directly."""
    return sp.issparse(X) and X.format == "csr" and X.dtype in (np.float64, np.float32)


def _tfidf(tfidf: TfidfTransformer, X: Any) -> Any:
    """``tfidf.transform(X, copy=False)`` for a fresh float CSR count matrix of ours: the same operations
    in the same order (so the same bits), without the input validation that is most of a small batch's cost."""
    if not _float_csr(X):
        return tfidf.transform(X, copy=False)
    if tfidf.sublinear_tf:
        np.log(X.data, X.data)
        X.data += 1.0
    if hasattr(tfidf, "idf_"):
        X.data *= tfidf.idf_[X.indices]
    return row_normalized(X, tfidf.norm, copy=False)


def row_normalized(X: Any, norm: str | None = "l2", *, copy: bool = True) -> Any:
    """``sklearn.preprocessing.normalize(X, norm, copy=copy)``; for a float CSR matrix straight to its
    compiled in-place kernels (the same ones ``normalize`` ends in), skipping the per-call input checks."""
    if norm is None:
        return X.copy() if copy else X
    if not _float_csr(X) or norm not in ("l1", "l2"):
        return normalize(X, norm=norm, copy=copy)
    if copy:
        X = X.copy()
    (inplace_csr_row_normalize_l2 if norm == "l2" else inplace_csr_row_normalize_l1)(X)
    return X


class FastFeatures:
    """``union.transform(docs)`` for a fitted union of TF-IDF vectorizers, bit for bit, faster."""

    def __init__(self, union: FeatureUnion) -> None:
        self.union = union
        self.blocks: list[tuple[TfidfVectorizer, _CharCounter | _WordCounter | None]] = []
        usable = union.transformer_weights is None and hasattr(union, "_hstack")
        for _, vec in union.transformer_list:
            usable = usable and hasattr(vec, "_tfidf")
            counter = (_CharCounter(vec) if _CharCounter.supports(vec)
                       else _WordCounter(vec) if _WordCounter.supports(vec) else None)
            self.blocks.append((vec, counter))
        self.enabled = usable
        self.verified = False

    def transform(self, docs: Sequence[Any]) -> Any:
        if not self.enabled or not docs or len(docs) > _MAX_ROWS:
            return self.union.transform(docs)
        Xs = []
        for vec, counter in self.blocks:
            if counter is None:
                Xs.append(vec.transform(docs))
                continue
            counts = _align_api_if_sparse(_counts(counter.count(docs), len(docs), counter.n_features, vec.dtype))
            Xs.append(_tfidf(vec._tfidf, counts))
        X = self.union._hstack(Xs)
        return X if self.verified else self._verify(docs, X)

    def _verify(self, docs: Sequence[Any], X: Any) -> Any:
        """Compare with scikit-learn's own transform once; on any difference use scikit-learn from now on."""
        expected = self.union.transform(docs)
        same = (type(X) is type(expected) and X.shape == expected.shape and X.dtype == expected.dtype
                and np.array_equal(X.indptr, expected.indptr) and np.array_equal(X.indices, expected.indices)
                and np.array_equal(X.data, expected.data))
        if not same:
            log.warning("fast TF-IDF features differ from scikit-learn's; using scikit-learn's transform")
            self.enabled = False
        self.verified = True
        return expected
