"""Normalisation and the jieba tokenizer: each deliberate choice of classifier/text.py, pinned."""

from __future__ import annotations

import pickle

import pytest

from classifier import text as textmod
from classifier.text import PHONE_TOKEN, PLACE_TOKEN, has_content, has_content_normalized, normalize, tokenize


@pytest.fixture(autouse=True)
def _catalogue_terms():
    textmod.configure(["油烟净化器", "拖欠工资", "占道经营"], ["新港街道", "塘沽"])


@pytest.mark.parametrize("raw,expected", [
    ("ＡＢＣ１２３，！", "ABC0,!"),                       # full-width folded to half-width, digits -> 0
    ("<p>路灯&nbsp;不亮</p>", "路灯 不亮"),                 # HTML tags and entities removed
    ("<script>alert(1)</script>路灯", "路灯"),              # script blocks removed whole
    ("  路灯\n\n\t不亮  ", "路灯 不亮"),                    # whitespace collapsed
    ("电话13812345678", f"电话{PHONE_TOKEN}"),              # phone numbers, plain ...
    ("电话138****1234", f"电话{PHONE_TOKEN}"),              # ... masked ...
    ("留个电话*****", f"留个电话{PHONE_TOKEN}"),            # ... or fully masked
    ("座机022-25801234", f"座机{PHONE_TOKEN}"),
    ("A3区B9市的路灯", f"{PLACE_TOKEN}{PLACE_TOKEN}的路灯"),  # anonymised place names
    ("塘沽新港街道的路灯", f"{PLACE_TOKEN}{PLACE_TOKEN}的路灯"),  # our own place names
    ("欠了3个月共2000.5元", "欠了0个月共0元"),
])
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_catalogue_terms_stay_whole_and_stop_words_go():
    tokens = tokenize("您好，楼下饭店的油烟净化器一直不开，还有人占道经营，老板拖欠工资！")
    assert {"油烟净化器", "占道经营", "拖欠工资"} <= set(tokens)
    assert not {"您好", "的", "，", "！"} & set(tokens)


@pytest.mark.parametrize("text", ["", "   ", "！！！？？。。", "😡😡😡", "<br><br/>", "123456"])
def test_no_content(text):
    assert not has_content(text)
    assert tokenize(text) == [] or all(t in {"0", PHONE_TOKEN} for t in tokenize(text))


@pytest.mark.parametrize("text", ["路灯不亮", "street lamp broken", "油烟😡太大"])
def test_content(text):
    assert has_content(text)


def test_long_text_is_fine():
    assert len(tokenize("楼下烧烤店油烟扰民。" * 5000)) > 1000


def test_tokenizer_pickles_by_reference():
    # fitted pipelines hold a reference to the module-level function, not a copy of jieba
    assert pickle.loads(pickle.dumps(tokenize)) is tokenize


def test_configure_is_idempotent():
    before = textmod.user_words()
    textmod.configure(["油烟净化器"], ["塘沽"])
    assert textmod.user_words() == before


@pytest.mark.parametrize("text", ["", "   ", "！！！？？。。", "😡😡😡", "123456", "路灯不亮", "a", "ab", "油烟😡太大"])
def test_has_content_normalized_agrees_with_has_content(text):
    # the router passes the text it normalised for the model; the answer must not depend on the door
    assert has_content_normalized(normalize(text)) == has_content(text)


SEGMENTATION_TEXTS = [
    "", "a", "中", "路灯不亮", "中华人民共和国中央人民政府", "北京大学生前来应聘", "ab0中文0测试x.y+z#1&2_3%4-5",
    "楼下饭店的油烟净化器一直不开,还有人占道经营!", "QQ号码和T恤", "鿖鿗鿿龥", "中 国", "0个月0元", "+#&",
    "商户在人行道上占道经营,油烟净化器不开,拖欠工资三个月,老板电话号码关机。" * 3,
]


def test_segmentation_is_jiebas_without_hmm():
    # classifier.text segments with its own vectorised route search: it must give jieba's tokens
    import jieba

    textmod.teach_jieba()  # the words configure() was given, which jieba itself only hears of on request
    for text in SEGMENTATION_TEXTS:
        expected = [w for w in jieba.lcut(text, HMM=False) if w not in textmod._STOP and textmod._KEEP.search(w)]
        assert textmod.tokenize_normalized(text) == expected, text


def test_a_batch_segments_as_its_texts_one_by_one():
    # a batch is one long array: no word may run from one text into the next, empty texts included
    batch = ["中华", "人民共和国", "", *SEGMENTATION_TEXTS, "路灯", ""]
    assert textmod.tokenize_normalized_many(batch) == [textmod.tokenize_normalized(t) for t in batch]
    assert textmod.tokenize_normalized_many([]) == []
    assert textmod.tokenize_normalized_many(["", ""]) == [[], []]


@pytest.fixture
def own_words(tmp_path, monkeypatch):
    """The tokenizer's words, jieba's dictionary and the table cache of this test only, undone after it."""
    import jieba

    monkeypatch.setattr(jieba, "dt", jieba.Tokenizer())
    monkeypatch.setattr(jieba.dt, "tmp_dir", str(tmp_path))
    monkeypatch.setattr(textmod, "_user_words", set(textmod._user_words))
    monkeypatch.setattr(textmod, "_taught", set())
    monkeypatch.setattr(textmod, "_words_generation", textmod._words_generation)
    monkeypatch.setattr(textmod, "_dictionary", {})
    return tmp_path


def test_segmentation_table_cached_on_disk_segments_the_same(own_words):
    # Given a table built from jieba's dictionary and cached in an empty temp dir
    import jieba

    built = textmod.tokenize_normalized_many(SEGMENTATION_TEXTS)
    cached = list(own_words.glob("hotline-words.*.npz"))
    assert len(cached) == 1
    # When another process (here: an emptied memory cache) loads it from disk
    textmod._dictionary.clear()
    loaded = textmod._word_dictionary()
    # Then it is the file's table, and every text segments exactly as with the one built from jieba
    assert loaded.long and loaded.total == jieba.dt.total
    assert textmod.tokenize_normalized_many(SEGMENTATION_TEXTS) == built
    assert [textmod.tokenize_normalized(t) for t in SEGMENTATION_TEXTS] == built


def test_segmentation_cache_is_per_word_set_and_a_bad_one_is_rebuilt(own_words, caplog):
    textmod.tokenize_normalized("路灯不亮")
    first = set(own_words.glob("hotline-words.*.npz"))
    # a new word is a new table, cached under another name
    textmod.configure(["共享单车乱停放"])
    assert textmod.tokenize_normalized("门口共享单车乱停放") == ["门口", "共享单车乱停放"]
    second = set(own_words.glob("hotline-words.*.npz")) - first
    assert len(second) == 1
    # a damaged cache file is reported and replaced, never trusted or fatal
    path = second.pop()
    path.write_bytes(b"not a table")
    textmod._dictionary.clear()
    assert textmod.tokenize_normalized("门口共享单车乱停放") == ["门口", "共享单车乱停放"]
    assert "unusable" in caplog.text
    textmod._dictionary.clear()
    assert textmod._word_dictionary().freq_get("共享单车乱停放") == 20000


def test_a_truncated_cache_is_rebuilt_and_old_tables_are_pruned(own_words, caplog):
    # Given a cached table cut short (a disk that filled up mid-write on another system)
    built = textmod.tokenize_normalized_many(SEGMENTATION_TEXTS)
    (path,) = own_words.glob("hotline-words.*.npz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    textmod._dictionary.clear()
    # When the next process needs it, Then it segments as before and the file is whole again
    assert textmod.tokenize_normalized_many(SEGMENTATION_TEXTS) == built
    assert "unusable" in caplog.text
    textmod._dictionary.clear()
    assert textmod._word_dictionary().long
    # and each new word set's table replaces the oldest beyond the newest few
    for n in range(textmod._CACHE_KEEP + 2):
        textmod.configure([f"测试新词{n}号"])
        textmod.tokenize_normalized("路灯不亮")
    assert len(list(own_words.glob("hotline-words.*.npz"))) == textmod._CACHE_KEEP


def test_the_cache_directory_is_private(tmp_path, monkeypatch):
    import jieba

    monkeypatch.setattr(jieba, "dt", jieba.Tokenizer())
    monkeypatch.setattr(textmod.tempfile, "gettempdir", lambda: str(tmp_path))
    folder = textmod._cache_dir()
    assert folder is not None and folder.stat().st_mode & 0o077 == 0 and jieba.dt.tmp_dir == str(folder)
    # a directory others may write is not used (nor is jieba's cache pointed at it)
    monkeypatch.setattr(jieba, "dt", jieba.Tokenizer())
    folder.chmod(0o777)
    assert textmod._cache_dir() is None and jieba.dt.tmp_dir is None


def test_place_names_come_out_in_one_order_whatever_order_they_came_in() -> None:
    # (a model's metadata lists them: two identical trainings must write identical metadata)
    import classifier.text as text

    saved = text._places, text._place_re
    try:
        orders = []
        for names in (["泰达", "新港", "杭州道", "胡家园"], ["胡家园", "新港", "杭州道", "泰达"]):
            text._places, text._place_re = (), None
            text.configure((), names)
            orders.append(text.place_names())
        assert orders[0] == orders[1] == ["杭州道", "胡家园", "新港", "泰达"]
    finally:
        text._places, text._place_re = saved
