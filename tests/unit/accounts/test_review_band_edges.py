"""The review band's edges are inclusive on both ends (`AccountIndex.match`): a name scoring
exactly the threshold is confident, one scoring exactly threshold - band is for review, one
below that is not returned at all."""

from __future__ import annotations

from shared.accounts import AccountIdentity, AccountIndex


def _us(name: str) -> AccountIdentity:
    return AccountIdentity.from_raw(name=name, country="US")


def test_a_name_exactly_at_the_threshold_is_confident_and_one_at_the_band_floor_for_review(
) -> None:
    index = AccountIndex()
    # Indel similarity to "abcdefghij": 18/20 = 0.9, 16/20 = 0.8, 14/20 = 0.7.
    for key, name in [("at", "abcdefghik"), ("floor", "abcdefgxyj"), ("below", "abcdefxyzj")]:
        index.add(key, _us(name))
    found = {m.account_key: (m.score, m.confident)
             for m in index.match(_us("abcdefghij"), 0.9, 0.1)}
    assert found == {"at": (0.9, True), "floor": (0.8, False)}
    assert index.resolve(_us("abcdefghij"), 0.9) is not None
