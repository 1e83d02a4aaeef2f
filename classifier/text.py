"""Text normalisation and the jieba tokenizer used by every model.

``tokenize`` is a module-level function so fitted scikit-learn pipelines pickle by reference to it.
Choices made deliberately:

- NFKC folds full-width letters, digits and punctuation to half-width (ＡＢＣ１２３，-> ABC123,).
- HTML tags and entities from web forms are dropped (script/style blocks whole); whitespace collapses.
- Phone numbers, masked (138****1234, *****) or not, become the token ``电话号码``: the digits say
  nothing about the matter, but "the caller left a number" is common to all and so is harmless.
- Other digit runs become ``0`` (lengths kept short): dates, house numbers and amounts vary endlessly;
  their presence ("3个月", "2000元") matters, their value does not.
- Place names (anonymised ``A3区``/``B9市`` style, and our jurisdictions' streets) become ``某地``: the
  matter of a ticket must not be learnt from where the generator or a district happened to put it.
"""

from __future__ import annotations

import html
import logging
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

import jieba
import rjieba

jieba.setLogLevel(logging.WARNING)

PHONE_TOKEN = "电话号码"
PLACE_TOKEN = "某地"

_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]{0,200}>")
_PHONE = re.compile(r"(?<!\d)(?:1[3-9]\d[\d*＊]{8}|0\d{2,3}-?[\d*]{7,8}|\*{4,}\d{0,4})(?!\d)")
_ANON_PLACE = re.compile(r"(?<![A-Za-z])[A-Z]{1,2}\d{0,3}(?:省|市|区|县|镇|乡|街道|村)")
_DIGITS = re.compile(r"\d+(?:\.\d+)?")
_SPACE = re.compile(r"\s+")
_KEEP = re.compile(r"[\u4e00-\u9fffA-Za-z0-9]")

_STOP = frozenset("""
的 了 和 是 在 我 我们 你 你们 他 她 它 他们 这 那 这个 那个 就 都 也 还 又 而 及 与 或 啊 吧 呢 吗 嘛 呀 哦 么 着 过
一个 一下 一些 有 没有 被 把 让 给 对 从 到 为 为了 因为 所以 但是 但 如果 已经 现在 什么 怎么 这样 那样 请 您 您好
你好 谢谢 麻烦 希望 相关 部门 有关 问题 情况 反映 要求 能 能够 可以 是否 进行 一直 非常 很 太 再 又 其 该 此
""".split())

_lock = threading.Lock()
_user_words: set[str] = set()
_words_generation = 0  # bumped whenever configure() adds a word: the segmenter is then rebuilt
_places: tuple[str, ...] = ()
_place_re: re.Pattern[str] | None = None


def configure(user_words: Iterable[str] = (), place_names: Iterable[str] = ()) -> None:
    """Teach the tokenizer the catalogue's terms and register place names to mask (idempotent, thread-safe).

    The words reach the segmenter when it is next needed (:func:`_segmenter`).
    """
    global _places, _place_re, _words_generation
    with _lock:
        before = len(_user_words)
        _user_words.update(terms(user_words))
        if len(_user_words) != before:
            _words_generation += 1
        # longest first (the alternation takes the first that matches), then by name: a model's metadata
        # lists them in the same order at every training (set order varied between runs)
        names = sorted({p for p in place_names if len(p) >= 2} | set(_places), key=lambda p: (-len(p), p))
        if tuple(names) != _places:
            _places = tuple(names)
            _place_re = re.compile("|".join(re.escape(p) for p in _places)) if _places else None


def terms(words: Iterable[str]) -> set[str]:
    """The words :func:`configure` keeps of ``words``: normalised, of 2 to 12 characters."""
    return {w for w in (normalize_basic(word).strip() for word in words) if 2 <= len(w) <= 12}


def user_words() -> list[str]:
    return sorted(_user_words)


def place_names() -> list[str]:
    return list(_places)


def normalize_basic(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    return html.unescape(text)


def normalize(text: str) -> str:
    """The canonical form every model sees (see the module docstring for each choice)."""
    text = normalize_basic(text)
    text = _SCRIPT.sub(" ", text)  # pasted web forms: code is never the citizen's words
    text = _TAG.sub(" ", text)
    text = _PHONE.sub(PHONE_TOKEN, text)
    text = _ANON_PLACE.sub(PLACE_TOKEN, text)
    if _place_re is not None:
        text = _place_re.sub(PLACE_TOKEN, text)
    text = _DIGITS.sub("0", text)
    return _SPACE.sub(" ", text).strip()


def tokenize(text: str) -> list[str]:
    """Words for the word-level TF-IDF: jieba on the normalised text, without stop words and punctuation."""
    return tokenize_normalized(normalize(text))


class _Keep(dict[str, bool]):
    """Token -> kept by :func:`tokenize_normalized` (not a stop word, has a CJK character, letter or digit),
    decided once per distinct token: the regular expression per token cost ~10% of tokenising."""

    def __missing__(self, word: str) -> bool:
        if len(self) > 500_000:  # distinct tokens are bounded in practice; this bounds them anyway
            self.clear()
        kept = self[word] = word not in _STOP and _KEEP.search(word) is not None
        return kept


_keep = _Keep()


def tokenize_normalized(text: str) -> list[str]:
    """:func:`tokenize` for a text that is already the output of :func:`normalize` (normalise once, use twice)."""
    keep = _keep
    return [w for w in _cut(text) if keep[w]]


def tokenize_normalized_many(texts: Sequence[str]) -> list[list[str]]:
    """:func:`tokenize_normalized` of each text (the segmenter looked up once for the batch)."""
    keep = _keep
    return [[w for w in words if keep[w]] for words in _cut_many(texts)]


# --- segmentation: jieba's route without HMM, computed by jieba-rs ----------------------------------
# rjieba binds jieba-rs, a Rust port of jieba that ships jieba's own dictionary and finds the same
# maximum-probability route: ~0.04 ms per real ticket against ~0.4 for the numpy version this replaced
# (itself 4x faster than jieba's Python). The words configure() adds get jieba's user-word frequency.
USER_WORD_FREQ = 20_000
# jieba's add_word adds a word's frequency to its total even when the word was already in the dictionary
# (so its old frequency stays counted); jieba-rs replaces it. Routes compare log(freq / total), so a
# segmentation of jieba's needs the same total: this entry carries the difference. Its characters are
# private-use ones, outside the blocks segmentation looks words up in, so it is never a token.
_TOTAL_FILLER = "\ue000\ue001"
_segmenters: dict[int, rjieba.Jieba] = {}


def _segmenter() -> rjieba.Jieba:
    """jieba's dictionary with the configured words, built once per word set (~0.3 s)."""
    found = _segmenters.get(_words_generation)
    if found is None:
        with _lock:
            generation = _words_generation
            found = _segmenters.get(generation)
            if found is None:
                found = _build_segmenter(sorted(_user_words))
                _segmenters.clear()
                _segmenters[generation] = found
    return found


def _build_segmenter(words: list[str]) -> rjieba.Jieba:
    segmenter = rjieba.Jieba()
    replaced = _dictionary_frequency({w for w in words if segmenter.has_word(w)})
    for word in words:
        segmenter.add_word(word, USER_WORD_FREQ, None)
    if replaced:
        segmenter.add_word(_TOTAL_FILLER, replaced, None)
    return segmenter


def _dictionary_frequency(words: set[str]) -> int:
    """The sum of the frequencies jieba's dictionary file gives ``words`` (those already in it before configure())."""
    if not words:
        return 0
    total = 0
    with open(Path(jieba.__file__).with_name("dict.txt"), encoding="utf-8") as fh:
        for line in fh:
            word, freq = line.split(" ", 2)[:2]
            if word in words:
                total += int(freq)
    return total


def _cut(sentence: str) -> list[str]:
    """``jieba.lcut(sentence, HMM=False)``, token for token. HMM off: words jieba's dictionary does not know still
    reach the character n-grams, and its guesses did not help (benchmarks/README.md, session 28)."""
    return _segmenter().cut(sentence, False)


def _cut_many(sentences: Sequence[str]) -> list[list[str]]:
    """:func:`_cut` of each sentence, the segmenter looked up once."""
    cut = _segmenter().cut
    return [cut(s, False) for s in sentences]


def has_content(text: str) -> bool:
    """True when the text holds at least two CJK characters or Latin letters after normalisation."""
    return has_content_normalized(normalize(text))


def has_content_normalized(text: str) -> bool:
    """:func:`has_content` for a text that is already the output of :func:`normalize`."""
    kept = 0
    for _ in _KEEP.finditer(text):  # stop at the second hit: tickets run to thousands of characters
        kept += 1
        if kept >= 2:
            return True
    return False
