"""Normalisation and the jieba tokenizer: each deliberate choice of classifier/text.py, pinned."""

from __future__ import annotations

import pickle

import pytest

from classifier import text as textmod
from classifier.text import PHONE_TOKEN, PLACE_TOKEN, has_content, normalize, tokenize


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
