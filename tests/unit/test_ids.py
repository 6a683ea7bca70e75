"""Ids keep their shape and value when encoded in C (`ids._base32_130`): the same 26
Crockford base32 characters the digit-by-digit loop gave, so ids derived before and after
the change are equal (a retried command must find its earlier event by id)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from shared import ids

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _digit_by_digit(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


@given(st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_an_id_encodes_the_value_as_the_digit_loop_did(value: int) -> None:
    assert ids._base32_130(value) == _digit_by_digit(value)


@given(st.integers(min_value=0, max_value=(1 << 48) - 1), st.text(max_size=20),
       st.text(max_size=20))
def test_a_derived_id_is_the_one_it_always_was(at_ms: int, seed: str, name: str) -> None:
    bits = int.from_bytes(ids.hashlib.sha256(f"{seed}\n{name}".encode()).digest()[:10], "big")
    assert ids.derived_id("evt", at_ms, seed, name) == \
        "evt_" + _digit_by_digit((at_ms << 80) | bits)


def test_new_ids_sort_by_time_and_keep_their_shape() -> None:
    made = [ids.new_id("reg") for _ in range(200)]
    assert all(re.fullmatch(r"reg_[0-9a-hjkmnp-tv-z]{26}", i) for i in made)
    assert len(set(made)) == 200
    assert ids.derived_id("reg", 2, "s", "n") > ids.derived_id("reg", 1, "s", "n")
