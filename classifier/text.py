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

import hashlib
import html
import logging
import math
import os
import re
import tempfile
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

import jieba
import numpy as np

jieba.setLogLevel(logging.WARNING)
log = logging.getLogger(__name__)

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
_words_generation = 0  # bumped whenever configure() adds a word: the segmentation dictionary is then rebuilt
_taught: set[str] = set()  # words given to jieba itself (its add_word adds to its total at every call)
_places: tuple[str, ...] = ()
_place_re: re.Pattern[str] | None = None


def configure(user_words: Iterable[str] = (), place_names: Iterable[str] = ()) -> None:
    """Teach the tokenizer the catalogue's terms and register place names to mask (idempotent, thread-safe).

    The words reach the segmentation dictionary when it is next needed (:func:`_word_dictionary`), from
    its cache when one was built for the same words before: jieba itself is not even loaded then.
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


def teach_jieba() -> None:
    """Give jieba's own dictionary the configured words, as its ``add_word`` (each word once)."""
    with _lock:
        _teach_jieba_locked()


def _teach_jieba_locked() -> None:
    jieba.dt.check_initialized()
    for word in sorted(_user_words - _taught):
        jieba.dt.add_word(word, freq=20000)
        _taught.add(word)


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
    """:func:`tokenize_normalized` of each text, segmented as one batch (~1.5x faster than one by one)."""
    keep = _keep
    return [[w for w in words if keep[w]] for words in _cut_many(texts)]


# --- jieba without HMM, vectorised -------------------------------------------------------------------
# A dictionary entry of up to three characters as one integer: (code point + 1) of each character in
# 21-bit fields, first character highest (code points are < 2**21, so 0 means "no character").
_F1, _F2 = 42, 21
_ABSENT = 2.0  # looked-up value of a string that is not in jieba's prefix dictionary
_PREFIX_ONLY = 1.0  # value of a dictionary prefix that is no word itself (log-probabilities are < 0)
_NEG = float("-inf")  # "not a candidate word" in the route's arrays
_FIELD = (1 << _F2) - 1
_PYTHON_TAIL = 16  # open questions left to the dict rather than to another numpy round (_Dictionary.lookup)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: spreads the codes over the table's slots
# the characters of jieba.re_han_default ([\u4E00-\u9FD5a-zA-Z0-9+#&._%-]) below U+0080, and which of
# them are jieba.re_eng ([a-zA-Z0-9]: single ones are joined into one token)
_HAN_ASCII = np.zeros(129, dtype=bool)  # index 128: every code point >= 128
_ENG_ASCII = np.zeros(129, dtype=bool)
for _c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789":
    _HAN_ASCII[ord(_c)] = _ENG_ASCII[ord(_c)] = True
for _c in "+#&._%-":
    _HAN_ASCII[ord(_c)] = True


class _Dictionary:
    """jieba's prefix dictionary, its entries of up to three characters as integer codes in a hash table.

    Looking up every character, pair and triple of a batch of tickets is then a handful of numpy
    operations instead of ~1,000 string slices (each a new string object) and lookups in a
    500,000-entry dict per ticket. Longer entries (a few per cent of positions reach them) are looked
    up in a dict of their own. Built in ~1 s from jieba's dictionary, again whenever :func:`configure`
    adds words, and cached on disk (:func:`_word_dictionary`); ~15 MB.
    """

    def __init__(self, freq: dict[str, int], total: int) -> None:
        self._set_total(total)
        # longer entries (a few per cent of positions reach them) are asked of a dict of their own
        self.long = {w: f for w, f in freq.items() if len(w) > 3}
        self.freq_get = self.long.get  # ``FREQ.get`` for them: the route asks it of no shorter entry
        entries = [(w, f) for w, f in freq.items() if 1 <= len(w) <= 3]
        padded = "".join(w.ljust(3, "\0") for w, _ in entries).encode("utf-32-le", "surrogatepass")
        cps = np.frombuffer(padded, dtype="<u4").astype(np.int64).reshape(-1, 3)
        lengths = np.fromiter((len(w) for w, _ in entries), dtype=np.int64, count=len(entries))
        present = np.arange(3) < lengths[:, None]
        fields = np.where(present, cps + 1, 0)
        codes = fields[:, 0] << _F1 | fields[:, 1] << _F2 | fields[:, 2]
        values = np.fromiter((self.logp(f) if f else _PREFIX_ONLY for _, f in entries), dtype=float,
                             count=len(entries))
        self.values = np.append(values, _ABSENT)  # the last one answers "not found"
        self._build_table(codes)

    def _set_total(self, total: int) -> None:
        self.total = total
        self.logtotal = math.log(total)
        self.fallback = math.log(1) - self.logtotal  # an unknown character, as jieba scores it
        self._logp: dict[int, float] = {}

    def save(self, path: Path) -> None:
        """Write the table to ``path`` (numpy arrays only, so loading it runs no code), atomically."""
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, keys=self._keys, where=self._where, values=self.values,
                         total=np.array(self.total, dtype=np.int64),
                         long_words=np.array("\n".join(self.long)),
                         long_freqs=np.fromiter(self.long.values(), dtype=np.int64, count=len(self.long)))
                fh.flush()
                os.fsync(fh.fileno())  # a crash must leave the old file or the whole new one, never a stub
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> _Dictionary:
        """The table :meth:`save` wrote; raises (``ValueError``, ``OSError``, ``BadZipFile`` ...) when it is not one."""
        with np.load(path, allow_pickle=False) as z:
            keys, where, values = z["keys"], z["where"], z["values"]
            total, words, freqs = int(z["total"]), str(z["long_words"]), z["long_freqs"].tolist()
        bits = len(keys).bit_length() - 1
        if (len(keys) != 1 << bits or where.shape != keys.shape or keys.dtype != np.int64
                or where.dtype != np.int32 or values.dtype != np.float64 or total <= 0):
            raise ValueError(f"{path} is not a segmentation dictionary")
        long_words = words.split("\n") if words else []
        if len(long_words) != len(freqs) or int(where.max(initial=0)) >= len(values):
            raise ValueError(f"{path} is not a segmentation dictionary")
        d = cls.__new__(cls)
        d._set_total(total)
        d.long = dict(zip(long_words, freqs, strict=True))
        d.freq_get = d.long.get
        d.values, d._keys, d._where = values, keys, where
        d._set_size(bits)
        return d

    def _build_table(self, codes: np.ndarray) -> None:
        """An open-addressing hash table of the codes (linear probing, at most ~40% full).

        A sorted array and ``searchsorted`` cost ~20 cache misses per question on 400,000 entries,
        most of the lookup time (measured); here a question reads one slot, sometimes the next few.
        """
        bits = max(10, int(len(codes) * 2.5).bit_length())
        self._set_size(bits)
        keys = np.zeros(1 << bits, dtype=np.int64)  # 0: empty (no code is 0)
        where = np.full(1 << bits, len(codes), dtype=np.int32)  # index into values
        slot = self._home(codes)
        pending = np.arange(len(codes))
        while len(pending):  # place what lands on a free slot; the rest moves one slot on
            free = keys[slot] == 0
            first = np.zeros(len(pending), dtype=bool)
            _, winners = np.unique(slot[free], return_index=True)  # one key per free slot per round
            first[np.flatnonzero(free)[winners]] = True
            keys[slot[first]] = codes[pending[first]]
            where[slot[first]] = pending[first]
            pending, slot = pending[~first], (slot[~first] + 1) & self._mask
        self._keys, self._where = keys, where

    def _set_size(self, bits: int) -> None:
        """The hashing of a table of ``2**bits`` slots, as built and as loaded."""
        self._shift = np.uint64(64 - bits)
        self._mask = (1 << bits) - 1

    def _home(self, codes: np.ndarray) -> np.ndarray:
        return ((codes.astype(np.uint64) * _GOLDEN) >> self._shift).astype(np.int64)

    def logp(self, freq: int) -> float:
        """log(freq / total), computed as jieba computes it (the route compares sums of these)."""
        try:
            return self._logp[freq]
        except KeyError:
            lp = self._logp[freq] = math.log(freq) - self.logtotal
            return lp

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """The value of each code: a log-probability, ``_PREFIX_ONLY`` or ``_ABSENT``."""
        found = np.full(len(codes), len(self.values) - 1, dtype=np.int64)
        todo, slot, want = np.arange(len(codes)), self._home(codes), codes
        while len(todo) > _PYTHON_TAIL:
            seen = self._keys[slot]
            hit = seen == want
            found[todo[hit]] = self._where[slot[hit]]
            # linear probing puts a key before the first empty slot after its home: an empty slot
            # means "absent", another key "look one slot further" (a quarter of the questions)
            further = ~hit & (seen != 0)
            todo, slot, want = todo[further], (slot[further] + 1) & self._mask, want[further]
        values = self.values[found]
        # the last few open questions (probe chains have a long tail, and each round costs numpy's
        # per-call overhead, which matters for one short text) follow their chains in Python
        keys, where, mask = self._keys, self._where, self._mask
        for i, code, s in zip(todo.tolist(), want.tolist(), slot.tolist(), strict=True):
            while (seen := keys.item(s)) != code and seen != 0:
                s = (s + 1) & mask
            values[i] = self.values[where.item(s)] if seen else _ABSENT
        return values


_dictionary: dict[int, _Dictionary] = {}
_CACHE_FORMAT = "hotline-words/1"  # change when _Dictionary's arrays change meaning


def _cache_dir() -> Path | None:
    """A directory only this user can write: the one set as ``jieba.dt.tmp_dir``, or ``hotline-router-<uid>``
    in the temp directory (created 0700). jieba's own cache goes there too when we load its dictionary, so
    neither cache is read from a place another user could have planted it. None: no usable directory."""
    if jieba.dt.tmp_dir:
        return Path(jieba.dt.tmp_dir)
    path = Path(tempfile.gettempdir()) / f"hotline-router-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = path.lstat()
    except OSError as exc:
        log.warning("no private cache directory at %s (%s): the segmentation table is built every time", path, exc)
        return None
    if not path.is_dir() or path.is_symlink() or st.st_uid != os.getuid() or st.st_mode & 0o022:
        log.warning("%s is not a directory only this user can write: the segmentation table is built every "
                    "time", path)
        return None
    jieba.dt.tmp_dir = str(path)
    return path


def _cache_key(words: list[str]) -> str:
    """Everything the table is made of: jieba's version, its dictionary file, the added words."""
    dict_file = Path(jieba.__file__).with_name("dict.txt") if jieba.dt.dictionary is None \
        else Path(jieba.dt.dictionary)
    st = dict_file.stat()
    h = hashlib.sha256(f"{_CACHE_FORMAT}\n{jieba.__version__}\n{dict_file}\n{st.st_size}\n{st.st_mtime_ns}\n"
                       .encode())
    h.update("\n".join(words).encode())
    return h.hexdigest()[:24]


_CACHE_KEEP = 4  # tables kept (one per word set: a catalogue edit makes a new one), ~18 MB each


def _word_dictionary() -> _Dictionary:
    """The segmentation table for jieba's dictionary and the configured words, built once per word set.

    Building it needs jieba's 500,000-entry dictionary (~2 s to load) and ~1 s more; a process that
    finds it cached (:func:`_cache_dir`; a worker, a CLI command, after the first since the words changed)
    takes ~0.1 s.
    """
    found = _dictionary.get(_words_generation)
    if found is None:
        with _lock:
            generation = _words_generation
            found = _dictionary.get(generation)
            if found is None:
                found = _cached_or_built(sorted(_user_words))
                _dictionary.clear()
                _dictionary[generation] = found
    return found


def _cached_or_built(words: list[str]) -> _Dictionary:
    folder = _cache_dir()
    path = folder / f"hotline-words.{_cache_key(words)}.npz" if folder else None
    if path is not None:
        try:
            if path.stat().st_uid == os.getuid():  # never a table someone else could have written
                return _Dictionary.load(path)
        except FileNotFoundError:
            pass
        except Exception as exc:  # truncated, damaged, not ours: whatever np.load raises, rebuild it
            log.warning("segmentation cache %s unusable (%r); rebuilding it", path, exc)
    _teach_jieba_locked()
    built = _Dictionary(jieba.dt.FREQ, jieba.dt.total)
    if path is not None:
        try:
            built.save(path)
            _prune(path)
        except OSError as exc:  # a read-only or full disk: the next process builds it again, no worse
            log.warning("segmentation cache %s not written (%s)", path, exc)
    return built


def _prune(keep: Path) -> None:
    """Remove all but the newest few tables (each catalogue edit leaves one behind)."""
    tables = sorted(keep.parent.glob("hotline-words.*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in tables[_CACHE_KEEP:]:
        if old != keep:
            old.unlink(missing_ok=True)


def _cut(sentence: str) -> list[str]:
    """``jieba.lcut(sentence, HMM=False)``, token for token (see :func:`_cut_many`)."""
    return _cut_many([sentence])[0]


def _cut_many(sentences: Sequence[str]) -> list[list[str]]:
    """``jieba.lcut(s, HMM=False)`` of each sentence, token for token, in about a quarter of its time.

    HMM off: ~30% faster on real-length tickets, and unknown words still reach the char n-grams. The
    same maximum-probability route over jieba's prefix dictionary (``jieba.dt.FREQ``/``total`` after
    ``add_word`` of each word :func:`configure` was given) in one backward pass; ties go to the longer word and runs of
    single Latin letters/digits are joined, as jieba does. Punctuation and spaces come out as single
    characters (jieba's own splitting differs only in tokens that :func:`tokenize_normalized` drops).

    What makes it fast: every dictionary question a route can ask of the first three characters at
    each position is answered for the whole batch at once with numpy (see :class:`_Dictionary`; per
    text, numpy's per-call overhead would eat the gain), so the Python loop only adds and compares up
    to three numbers per character.
    """
    text = "".join(sentences)
    n = len(text)
    if not n:
        return [[] for _ in sentences]
    d = _word_dictionary()
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
    ends = np.cumsum(lengths).tolist()
    sid = np.repeat(np.arange(len(sentences)), lengths)
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)
    ascii_ix = np.minimum(cps, 128)
    han = ((cps >= 0x4E00) & (cps <= 0x9FD5)) | _HAN_ASCII[ascii_ix]
    # the questions at each position: that character, with the next, with the next two (one block only)
    pair = np.zeros(n, dtype=bool)
    pair[:-1] = han[:-1] & han[1:] & (sid[:-1] == sid[1:])
    triple = np.zeros(n, dtype=bool)
    triple[:-2] = pair[:-2] & pair[1:-1]
    f0 = (cps + 1) << _F1
    f1 = np.zeros(n, dtype=np.int64)
    f1[:-1] = (cps[1:] + 1) << _F2
    f2 = np.zeros(n, dtype=np.int64)
    f2[:-2] = cps[2:] + 1
    values = d.lookup(np.concatenate([f0, f0 | f1, f0 | f1 | f2])).reshape(3, n)
    # a length counts only while every shorter prefix is in the dictionary (jieba stops at the first miss)
    alive1 = han & (values[0] != _ABSENT)
    alive2 = alive1 & pair & (values[1] != _ABSENT)
    alive3 = alive2 & triple & (values[2] != _ABSENT)
    word1, word2, word3 = alive1 & (values[0] < 0), alive2 & (values[1] < 0), alive3 & (values[2] < 0)
    # no word at all starts here (and no longer one can): the character alone, scored as unknown
    alone = ~(word1 | word2 | word3 | alive3)
    one = np.where(word1, values[0], np.where(alone, d.fallback, _NEG)).tolist()
    choice = (word2 | word3 | alive3).tolist()
    two = np.where(word2, values[1], _NEG).tolist()
    three = np.where(word3, values[2], _NEG).tolist()
    longer = alive3.tolist()
    eng_mask = _ENG_ASCII[ascii_ix]
    eng = eng_mask.tolist()
    # segments: runs of block / non-block characters, cut where a sentence ends
    change = np.ones(n, dtype=bool)
    change[1:] = (han[1:] != han[:-1]) | (sid[1:] != sid[:-1])
    starts = np.flatnonzero(change)
    edges = [*starts.tolist(), n]
    blocks = han[starts].tolist()
    mixed = np.logical_or.reduceat(eng_mask, starts).tolist()

    freq_get, logp, fallback, neg = d.freq_get, d.logp, d.fallback, _NEG
    score = [0.0] * (n + 1)
    length = [1] * n
    result: list[list[str]] = []
    out: list[str] = []
    sentence = 0
    for block_no, (start, end, block) in enumerate(zip(edges[:-1], edges[1:], blocks, strict=True)):
        while start >= ends[sentence]:
            result.append(out)
            out = []
            sentence += 1
        if not block:
            out.extend(text[start:end])
            continue
        s1 = s2 = s3 = 0.0  # score[k + 1], score[k + 2], score[k + 3]
        for k in range(end - 1, start - 1, -1):
            best = one[k] + s1
            wl = 1
            if choice[k]:  # more than the character alone (under half of the positions)
                if two[k] != neg:
                    s = two[k] + s2
                    if s >= best:
                        best, wl = s, 2
                if three[k] != neg:
                    s = three[k] + s3
                    if s >= best:
                        best, wl = s, 3
                if longer[k]:  # a dictionary entry of 3 characters starts here: 4 and more may too
                    i = k + 4
                    while i <= end:
                        f = freq_get(text[k:i])
                        if f is None:
                            break
                        if f:
                            s = logp(f) + score[i]
                            if s >= best:
                                best, wl = s, i - k
                        i += 1
                    if best == neg:
                        best, wl = fallback + s1, 1
            score[k] = best
            length[k] = wl
            s3, s2, s1 = s2, s1, best
        x = start
        if mixed[block_no]:  # Latin letters or digits in the block: single ones are joined
            buf = ""
            while x < end:
                wl = length[x]
                if wl == 1 and eng[x]:
                    buf += text[x]
                else:
                    if buf:
                        out.append(buf)
                        buf = ""
                    out.append(text[x:x + wl])
                x += wl
            if buf:
                out.append(buf)
        else:
            while x < end:
                y = x + length[x]
                out.append(text[x:y])
                x = y
    while len(result) < len(sentences):
        result.append(out)
        out = []
    return result


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
