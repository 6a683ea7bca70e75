"""Sealed log positions (issue 13): opaque to partners, opened only by the server."""

from __future__ import annotations

import pytest

from shared.positions import seal, unseal

KEY = b"k" * 32


def test_a_sealed_position_opens_to_itself_and_hides_its_offset() -> None:
    for position in ("dealreg.intake/6/0", "dealreg.intake/6/4",
                     "dealreg.decisions/11/1234567890123456789,dealreg.intake/0/1"):
        token = seal(position, KEY)
        assert unseal(token, KEY) == position
        assert "dealreg" not in token and "/" not in token
    assert len(seal("dealreg.intake/6/0", KEY)) == len(seal("dealreg.intake/6/123456", KEY))
    assert seal("dealreg.intake/6/0", KEY) != seal("dealreg.intake/6/0", KEY)


def test_a_token_we_did_not_issue_is_refused() -> None:
    token = seal("dealreg.intake/6/4", KEY)
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    for bad in (flipped, token[:-3], "lp1.AAAA", "dealreg.intake/6/4", "lp1.!!"):
        with pytest.raises(ValueError):
            unseal(bad, KEY)
    with pytest.raises(ValueError):
        unseal(token, b"o" * 32)
