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
    "㐀㐁中文𠀀𠀁豈更", "\ue000\ue001中文\ue000", "油烟😡太大 KTV噪音 ab c",
    "商户在人行道上占道经营,油烟净化器不开,拖欠工资三个月,老板电话号码关机。" * 3,
    # 拾到 wins over 拾 / 到 by 0.0015 in log-probability, and only with jieba's total (see _TOTAL_FILLER)
    "半年前在某地拾到一遗弃女", "钱凑到了就还",
]


@pytest.fixture
def own_words(monkeypatch):
    """The tokenizer's words and segmenter of this test only, undone after it."""
    monkeypatch.setattr(textmod, "_user_words", set())
    monkeypatch.setattr(textmod, "_words_generation", textmod._words_generation + 1000)
    monkeypatch.setattr(textmod, "_segmenters", {})


def jiebas_own(words):
    """jieba itself (its Python route search) knowing ``words`` as the tokenizer's user words."""
    import jieba

    tokenizer = jieba.Tokenizer()
    for word in sorted(words):
        tokenizer.add_word(word, freq=textmod.USER_WORD_FREQ)
    return tokenizer


@pytest.mark.parametrize("words", ["test", "catalogue"])
def test_segmentation_is_jiebas_without_hmm(own_words, words):
    # classifier.text segments with jieba-rs: it must give jieba's tokens, with a few words or the catalogue's
    # 1,700 (many of them already in jieba's dictionary, which moves jieba's total: the filler's case)
    if words == "catalogue":
        from classifier.training import configure_text
        from config.catalogue import load_catalogue
        from config.settings import Settings

        configure_text(load_catalogue(Settings().domain_data_dir))
    else:
        textmod.configure(["油烟净化器", "拖欠工资", "占道经营"])
    jieba_tokenizer = jiebas_own(textmod.user_words())
    for text in SEGMENTATION_TEXTS:
        assert textmod._cut(text) == jieba_tokenizer.lcut(text, HMM=False), text
        expected = [w for w in jieba_tokenizer.lcut(text, HMM=False) if w not in textmod._STOP and textmod._KEEP.search(w)]
        assert textmod.tokenize_normalized(text) == expected, text


def test_a_batch_segments_as_its_texts_one_by_one():
    batch = ["中华", "人民共和国", "", *SEGMENTATION_TEXTS, "路灯", ""]
    assert textmod.tokenize_normalized_many(batch) == [textmod.tokenize_normalized(t) for t in batch]
    assert textmod.tokenize_normalized_many([]) == []
    assert textmod.tokenize_normalized_many(["", ""]) == [[], []]


def test_a_new_word_makes_a_new_segmenter(own_words):
    textmod.configure(["油烟净化器"])
    before = textmod._segmenter()
    assert textmod.tokenize_normalized("门口共享单车乱停放") != ["门口", "共享单车乱停放"]
    textmod.configure(["共享单车乱停放"])
    assert textmod._segmenter() is not before
    assert textmod.tokenize_normalized("门口共享单车乱停放") == ["门口", "共享单车乱停放"]
    # the same words again: the same segmenter
    after = textmod._segmenter()
    textmod.configure(["共享单车乱停放", "油烟净化器"])
    assert textmod._segmenter() is after


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
