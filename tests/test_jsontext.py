"""JSON text as every store reads it back: exact, whatever Graph put in it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdrsync import jsontext

leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**100), max_value=2**100),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from("\udc00\ud800"))),
)
nested = st.one_of(leaf, st.lists(leaf, max_size=4))
values = st.one_of(nested, st.lists(nested, max_size=4), st.dictionaries(st.text(), nested))


@given(values)
def test_what_is_written_reads_back_exactly_from_text_bytes_and_bytearray(value: Any) -> None:
    text = jsontext.dumps(value)
    text.encode("utf-8")  # always valid UTF-8, lone surrogates included (as escapes)
    assert jsontext.loads(text) == value
    assert jsontext.loads(text.encode()) == value
    assert jsontext.loads(bytearray(text.encode())) == value


def test_integers_beyond_64_bits_are_not_rounded() -> None:
    assert jsontext.loads('{"a": -9223372036854775809, "b": 18446744073709551616}') == {
        "a": -9223372036854775809,
        "b": 18446744073709551616,
    }


@pytest.mark.parametrize(
    "text",
    [
        "123456789012345678901",  # a document that is one number
        " -123456789012345678901",
        "[1,123456789012345678901]",
        '{"a":\n\t 123456789012345678901}',
        '[{"a": [1, -98765432109876543210]}]',
        # digit runs inside strings first (hex hashes, a run of 40), then the number
        '{"sha1":"d5ab335b8411b6dd7871c5076061704823245132","n":123456789012345678901}',
        '["1234567890123456789012345678901234567890", 12345678901234567890123]',
        '{"a":"x:1234567890123456789012","b" :\r\n -12345678901234567890}',
    ],
)
def test_a_long_integer_anywhere_a_number_can_be_stays_exact(text: str) -> None:
    expected = json.loads(text)
    for form in (text, text.encode(), bytearray(text.encode())):
        assert jsontext.loads(form) == expected
        assert repr(jsontext.loads(form)) == repr(expected)  # an int, not a rounded float


@given(values, st.sampled_from([None, 1, "\t"]))
def test_long_integers_stay_exact_in_text_with_whitespace(value: Any, indent: Any) -> None:
    text = json.dumps(value, indent=indent, separators=(", ", " : "))
    assert repr(jsontext.loads(text)) == repr(json.loads(text))


def test_surrogates_can_be_replaced_for_stores_that_refuse_even_escapes() -> None:
    assert jsontext.dumps(["x\udc00"], replace_surrogates=True) == '["x\ufffd"]'
    assert jsontext.dumps(["x\udc00"]) == '["x\\udc00"]'


@given(values, st.booleans(), st.booleans())
def test_the_utf8_form_is_the_text_form_encoded(
    value: Any, sort_keys: bool, replace_surrogates: bool
) -> None:
    text = jsontext.dumps(value, sort_keys=sort_keys, replace_surrogates=replace_surrogates)
    data = jsontext.dumps_utf8(value, sort_keys=sort_keys, replace_surrogates=replace_surrogates)
    assert data == text.encode("utf-8")


@pytest.mark.parametrize("value", [{"n": 2**70}, {"s": "\ud800x"}, ["\udfff", 10**30]])
def test_the_utf8_form_takes_the_same_way_round_what_orjson_refuses(value: Any) -> None:
    for replace in (False, True):
        data = jsontext.dumps_utf8(value, replace_surrogates=replace)
        assert data == jsontext.dumps(value, replace_surrogates=replace).encode("utf-8")
