"""Which account key a submitted account gets, given what the directory matched.

The decision "is this the same customer?" is `shared.accounts.sameness.sort_out`, the one
rule the adjudicator and the read side use too: identifiers decide (CRM id, then domain),
a confident name match in the same country counts only where identifiers do not tell the
two apart, and never bridges two different identifiers. Nothing left means a new account
with a key derived from its identity. When the identity is the customer of more than one
key, the strongest wins and the others are reported as aliases of it (the edge's part in
catching duplicate keys, see NOTES.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shared.accounts import AccountIdentity, AccountMatch, Identifiers, derive_account_key, sort_out
from shared.accounts.salesforce import CrmIds


@dataclass(frozen=True, slots=True)
class Resolution:
    account_key: str
    matched: AccountMatch | None
    """The evidence that chose an existing key; None for a new account."""
    aliases: tuple[AccountMatch, ...] = ()
    """Other keys of the same customer: the identity is theirs too."""
    possible_duplicates: tuple[AccountMatch, ...] = ()
    """Keys matched by name inside the policy's review band, or by a confident name that
    would bridge two different customers: for a person, never merged."""

    @property
    def is_new(self) -> bool:
        return self.matched is None


def choose(
    identity: AccountIdentity,
    matches: list[AccountMatch],
    identifiers_of: Callable[[str], Identifiers] = Identifiers.of_key,
    taken: Callable[[str], bool] | None = None,
    name_only_review: bool = False,
    crm_ids: CrmIds = "exact",
) -> Resolution:
    """Pick the key for `identity` from `matches` (any order). Deterministic.

    ``identifiers_of(key)`` is what the directory knows the key's customer carries (the
    key's form alone by default); ``taken(key)`` whether a key exists already, so a new
    account never gets the key of a different customer (see `derive_account_key`).
    ``name_only_review`` (policy `match.name_only: review`): an identified account never
    gets a name-only key by name (nor the reverse); the match is a possible duplicate.
    ``crm_ids``: policy `match.crm_ids` (see `sort_out`)."""
    found = sort_out(Identifiers.of(identity), matches, identifiers_of,
                     name_only_review=name_only_review, crm_ids=crm_ids)
    if not found.same:
        return Resolution(derive_account_key(identity, taken), None, (), found.possible)
    best, *aliases = found.same
    return Resolution(best.account_key, best, tuple(aliases), found.possible)
