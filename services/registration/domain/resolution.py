"""Which account key a submitted account gets, given what the directory matched.

Exact evidence first (CRM id, then domain), then a confident fuzzy name match in the same
country; nothing confident means a new account with a key derived from its identity. When
the identity confidently matches more than one key, the strongest wins and the others are
reported as aliases of it (the edge's part in catching duplicate keys, see NOTES.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from shared.accounts import AccountIdentity, AccountMatch, derive_account_key

_RANK: Final = {"crm_account_id": 2, "domain": 1, "name": 0}


@dataclass(frozen=True, slots=True)
class Resolution:
    account_key: str
    matched: AccountMatch | None
    """The evidence that chose an existing key; None for a new account."""
    aliases: tuple[AccountMatch, ...] = ()
    """Other keys this identity confidently matched: the same customer under another key."""
    possible_duplicates: tuple[AccountMatch, ...] = ()
    """Keys matched by name inside the policy's review band: for a person, never merged."""

    @property
    def is_new(self) -> bool:
        return self.matched is None


def _strength(match: AccountMatch) -> tuple[int, float, str]:
    return (-_RANK[match.matched_by], -match.score, match.account_key)


def choose(identity: AccountIdentity, matches: list[AccountMatch]) -> Resolution:
    """Pick the key for `identity` from `matches` (any order). Deterministic."""
    confident = sorted((m for m in matches if m.confident), key=_strength)
    review = tuple(sorted((m for m in matches if not m.confident), key=_strength))
    if not confident:
        return Resolution(derive_account_key(identity), None, (), review)
    best = confident[0]
    seen = {best.account_key}
    aliases: list[AccountMatch] = []
    for match in confident[1:]:
        if match.account_key not in seen:
            seen.add(match.account_key)
            aliases.append(match)
    return Resolution(
        best.account_key, best, tuple(aliases),
        tuple(m for m in review if m.account_key not in seen),
    )
