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
import math
import re
import threading
import unicodedata
from collections.abc import Iterable

import jieba

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
_JIEBA_HAN = jieba.re_han_default  # the blocks jieba segments; the rest it emits char by char
_JIEBA_ENG = jieba.re_eng

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


def tokenize_normalized(text: str) -> list[str]:
    """:func:`tokenize` for a text that is already the output of :func:`normalize` (normalise once, use twice)."""
    return [w for w in _cut(text) if w not in _STOP and _KEEP.search(w)]


_PREFIX_ONLY = 1.0  # memo value of a dictionary prefix that is no word itself (log-probabilities are < 0)
_cut_state: dict[str, object] = {"key": None, "memo": {}, "logtotal": 0.0}


def _cut(sentence: str) -> list[str]:
    """``jieba.lcut(sentence, HMM=False)``, token for token, in about 60% of the time.

    HMM off: ~30% faster on real-length tickets, and unknown words still reach the char n-grams. The
    same maximum-probability route over jieba's prefix dictionary (``jieba.dt.FREQ``/``total``, so words
    added by :func:`configure` count), computed in one backward pass with the log-probabilities memoised;
    ties go to the longer word and runs of single Latin letters/digits are joined, as jieba does.
    Punctuation and spaces come out as single characters (jieba's own splitting differs only in tokens
    that :func:`tokenize_normalized` drops anyway).
    """
    dt = jieba.dt
    dt.check_initialized()
    freq = dt.FREQ
    key = (id(freq), dt.total)
    memo: dict[str, float | None] = _cut_state["memo"]  # type: ignore[assignment]
    if _cut_state["key"] != key or len(memo) > 1_000_000:
        memo = {}
        _cut_state.update(key=key, memo=memo, logtotal=math.log(dt.total))
    logtotal: float = _cut_state["logtotal"]  # type: ignore[assignment]
    get, log = memo.get, math.log
    out: list[str] = []
    for blk in _JIEBA_HAN.split(sentence):
        if not blk:
            continue
        if not _JIEBA_HAN.match(blk):
            out.extend(blk)
            continue
        n = len(blk)
        score = [0.0] * (n + 1)
        end = [0] * n
        for k in range(n - 1, -1, -1):
            best: float | None = None
            best_end = k
            i = k + 1
            frag = blk[k]
            while True:
                lp = get(frag, 0)
                if lp == 0:  # not memoised yet
                    f = freq.get(frag)
                    lp = memo[frag] = None if f is None else (log(f) - logtotal if f else _PREFIX_ONLY)
                if lp is None:  # no dictionary word starts with frag
                    break
                if lp < 0:
                    s = lp + score[i]
                    if best is None or s >= best:
                        best, best_end = s, i - 1
                if i >= n:
                    break
                i += 1
                frag = blk[k:i]
            if best is None:
                best = log(freq.get(blk[k]) or 1) - logtotal + score[k + 1]
            score[k] = best
            end[k] = best_end
        x, buf = 0, ""
        while x < n:
            y = end[x] + 1
            word = blk[x:y]
            if y - x == 1 and _JIEBA_ENG.match(word):
                buf += word
            else:
                if buf:
                    out.append(buf)
                    buf = ""
                out.append(word)
            x = y
        if buf:
            out.append(buf)
    return out


def has_content(text: str) -> bool:
    """True when the text holds at least two CJK characters or Latin letters after normalisation."""
    return len(_KEEP.findall(normalize(text))) >= 2
