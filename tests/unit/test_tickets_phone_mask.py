"""Phone masking for everyone but the handling agency: no agency-facing output shows a full number.

``mask_phone`` masks a value that is only a number (the caller_phone field) whole, in any notation, and
numbers inside free text in place; ``mask_caller_phone`` is the field's stricter form.
"""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.supervision.linking import normalise_phone
from models.tickets import mask_caller_phone, mask_phone, phone_digits

FIELD_CASES = [
    ("13812345678", "138****5678"),
    ("+8613812345678", "138****5678"),
    ("8613812345678", "138****5678"),
    ("008613812345678", "138****5678"),
    ("+86 138 1234 5678", "138****5678"),
    ("+86-138-1234-5678", "138****5678"),
    ("138-1234-5678", "138****5678"),
    ("138 1234 5678", "138****5678"),
    (" 13812345678 ", "138****5678"),
    ("１３８１２３４５６７８", "138****5678"),  # full-width digits
    ("(022)25801234", "022-****1234"),
    ("(022) 2580-1234", "022-****1234"),
    ("022 2580 1234", "022-****1234"),
    ("022-25801234", "022-****1234"),
    ("02225801234", "022-****1234"),
    ("010-8888 1234", "010-****1234"),
    ("0571-12345678", "0571-****5678"),
    ("+86 22 2580 1234", "022-****1234"),
    ("25801234", "****1234"),  # a local landline, no area code
    ("2580123", "****0123"),
    ("022-25801234-801", "****4801"),  # with an extension: no known shape, masked all the same
    ("+1 415 555 0123", "****0123"),  # foreign: not dressed up as a Chinese mobile
    ("138123456789", "****6789"),  # one digit too many: not a mobile, still masked
]


@pytest.mark.parametrize("phone,shown", FIELD_CASES)
def test_a_number_alone_is_normalised_and_masked(phone: str, shown: str) -> None:
    assert mask_phone(phone) == shown
    assert mask_caller_phone(phone) == shown


@pytest.mark.parametrize("text,shown", [
    ("我的电话13912345678", "我的电话139****5678"),  # as before
    ("座机022-66881234", "座机022-****1234"),
    ("工单号20251001123456789", "工单号20251001123456789"),  # not a phone: glued to more digits
    ("共计12345678元", "共计12345678元"),  # free text: a bare 8-digit number may be anything
    ("已脱敏138****5678", "已脱敏138****5678"),
    ("电话+8613812345678谢谢", "电话+86138****5678谢谢"),
    ("电话8613812345678谢谢", "电话86138****5678谢谢"),
    ("电话 +86 138 1234 5678 谢谢", "电话 +86 138 **** 5678 谢谢"),
    ("电话138-1234-5678。", "电话138-****-5678。"),
    ("座机(022)25801234", "座机(022)****1234"),
    ("座机 022 2580 1234", "座机 022 **** 1234"),
    ("座机+86 22 2580 1234", "座机+86 22 **** 1234"),
    # full-width digits (a Chinese IME): masked in place too, the text otherwise left as written
    ("来电人１３８１２３４５６７８，请回电", "来电人１３８****５６７８，请回电"),
    ("电话１３８－１２３４－５６７８", "电话１３８－****－５６７８"),
    ("座机（０２２）２５８０１２３４", "座机（０２２）****１２３４"),
    ("工单号２０２５１００１１２３４５６７８９", "工单号２０２５１００１１２３４５６７８９"),
])
def test_numbers_in_free_text_are_masked_in_place(text: str, shown: str) -> None:
    assert mask_phone(text) == shown


@pytest.mark.parametrize("value,shown", [
    (None, None), ("", ""), ("无", "无"), ("110", "110"), ("12345", "12345"), ("138****5678", "138****5678"),
    ("张先生 分机12345678", "张先生 分机****5678"),
    ("tel 25801234", "tel ****1234"),
    ("13812345678转801", "138****5678转801"),
    ("电话13812345678或25801234", "电话138****5678或****1234"),
    ("ID20251001123456789", "ID*************6789"),
])
def test_the_caller_phone_field_never_shows_seven_digits_together(value: str | None, shown: str | None) -> None:
    assert mask_caller_phone(value) == shown


@pytest.mark.parametrize("phone", [p for p, _ in FIELD_CASES if not p.startswith(("0086", "+1"))])
def test_masking_agrees_with_linking_on_what_a_number_is(phone: str) -> None:
    digits = normalise_phone(phone)  # linking's caller key: a phone number for it too
    assert digits is not None and mask_phone(phone)[-4:] == unicodedata.normalize("NFKC", digits)[-4:]
    if re.fullmatch(r"1[3-9]\d{9}", phone_digits(phone)):  # the same mobile number, without country code
        assert phone_digits(phone) == unicodedata.normalize("NFKC", digits)


def _longest_run(text: str) -> int:
    """The most digits in one number as written (digits with separators between them)."""
    return max((sum(c.isdigit() for c in m) for m in re.findall(r"\d[\d\s().\-]*\d|\d", text)), default=0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=40) | st.from_regex(r"[+()\- 0-9８６]{0,30}", fullmatch=True))
def test_the_field_mask_leaves_no_number_of_seven_digits(value: str) -> None:
    assert _longest_run(mask_caller_phone(value) or "") < 7
