"""Which terms the tokenizer uses next to a loaded model: the model's own, not a catalogue edited since."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from classifier import router as router_mod
from classifier import text as textmod


@pytest.fixture(autouse=True)
def own_text_state(monkeypatch):
    monkeypatch.setattr(textmod, "_user_words", set())
    monkeypatch.setattr(textmod, "_words_generation", textmod._words_generation + 1000)
    monkeypatch.setattr(textmod, "_segmenters", {})
    monkeypatch.setattr(textmod, "_places", ())
    monkeypatch.setattr(textmod, "_place_re", None)


def test_a_term_added_to_the_catalogue_after_training_is_not_used_and_is_reported(monkeypatch, caplog):
    # Given a model trained knowing 油烟扰民, and a catalogue that has since gained 饭店油烟 and a new street
    monkeypatch.setattr(router_mod, "catalogue_terms", lambda _c: (["油烟扰民", "饭店油烟"], ["新建街道"]))
    model = SimpleNamespace(metadata={"user_words": ["油烟扰民"]}, version="v1")
    # When the router configures the tokenizer for it
    router_mod.configure_tokenizer(model, catalogue=None)  # type: ignore[arg-type]
    # Then only the model's term is a word, the new place is masked, and the operator is told to retrain
    assert textmod.user_words() == []  # mm.load gives the model's own terms; nothing else was added
    assert "饭店油烟" not in textmod.terms(textmod.user_words())
    assert textmod.normalize("新建街道") == textmod.PLACE_TOKEN
    assert "1 term(s) model v1 was not trained with (e.g. 饭店油烟)" in caplog.text


def test_a_model_that_recorded_no_terms_takes_the_catalogues(monkeypatch):
    monkeypatch.setattr(router_mod, "catalogue_terms", lambda _c: (["油烟扰民", " 饭店油烟 ", "油"], ["新建街道"]))
    router_mod.configure_tokenizer(SimpleNamespace(metadata={}, version="old"), catalogue=None)  # type: ignore[arg-type]
    assert textmod.user_words() == ["油烟扰民", "饭店油烟"]  # normalised; one-character terms are no terms
