"""Text normalisation and the jieba tokenizer used by every model.

``tokenize`` is a module-level function so fitted scikit-learn pipelines pickle by reference to it.
Choices made deliberately:

- NFKC folds full-width letters, digits and punctuation to half-width (ＡＢＣ１２３，-> ABC123,).
- HTML tags and entities from web forms are dropped; whitespace runs collapse to one space.
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
from collections.abc import Iterable

import jieba

jieba.setLogLevel(logging.WARNING)

PHONE_TOKEN = "电话号码"
PLACE_TOKEN = "某地"

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
_places: tuple[str, ...] = ()
_place_re: re.Pattern[str] | None = None


def configure(user_words: Iterable[str] = (), place_names: Iterable[str] = ()) -> None:
    """Teach jieba the catalogue's terms and register place names to mask (idempotent, thread-safe)."""
    global _places, _place_re
    with _lock:
        for word in user_words:
            word = normalize_basic(word).strip()
            if 2 <= len(word) <= 12 and word not in _user_words:
                jieba.add_word(word, freq=20000)
                _user_words.add(word)
        names = sorted({p for p in place_names if len(p) >= 2} | set(_places), key=len, reverse=True)
        if tuple(names) != _places:
            _places = tuple(names)
            _place_re = re.compile("|".join(re.escape(p) for p in _places)) if _places else None


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
    text = _TAG.sub(" ", text)
    text = _PHONE.sub(PHONE_TOKEN, text)
    text = _ANON_PLACE.sub(PLACE_TOKEN, text)
    if _place_re is not None:
        text = _place_re.sub(PLACE_TOKEN, text)
    text = _DIGITS.sub("0", text)
    return _SPACE.sub(" ", text).strip()


def tokenize(text: str) -> list[str]:
    """Words for the word-level TF-IDF: jieba on the normalised text, without stop words and punctuation."""
    # HMM off: ~30% faster on real-length tickets, and unknown words still reach the char n-grams.
    return [w for w in jieba.lcut(normalize(text), HMM=False) if w not in _STOP and _KEEP.search(w)]


def has_content(text: str) -> bool:
    """True when the text holds at least two CJK characters or Latin letters after normalisation."""
    return len(_KEEP.findall(normalize(text))) >= 2
