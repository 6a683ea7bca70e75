"""Account identity and matching: who is the end customer behind a registration?

Pure functions and in-memory structures (no I/O, clock or randomness) shared by the
registration service, which resolves a submitted account to a canonical account key before
appending, and by the adjudicator and read side, which find registrations that collide on
the same account.
"""

from shared.accounts.identity import AccountIdentity, derive_account_key
from shared.accounts.index import (
    AccountIndex,
    AccountMatch,
    BroughtNames,
    CountrylessNames,
    MatchedBy,
    blocking_keys,
    countries_weighed,
    match_order,
    name_floor,
    name_length_window,
    strength,
)
from shared.accounts.normalize import (
    is_freemail_domain,
    is_platform_page,
    name_forms,
    name_similarity,
    normalize_country,
    normalize_name,
    registrable_domain,
    sort_name_tokens,
)
from shared.accounts.sameness import (
    Identifiers,
    Sorted,
    different_customers,
    for_a_person,
    separate_customers,
    sort_out,
)

__all__ = [
    "AccountIdentity",
    "AccountIndex",
    "AccountMatch",
    "BroughtNames",
    "CountrylessNames",
    "Identifiers",
    "MatchedBy",
    "Sorted",
    "blocking_keys",
    "countries_weighed",
    "derive_account_key",
    "different_customers",
    "for_a_person",
    "is_freemail_domain",
    "is_platform_page",
    "match_order",
    "name_floor",
    "name_forms",
    "name_length_window",
    "name_similarity",
    "normalize_country",
    "normalize_name",
    "registrable_domain",
    "separate_customers",
    "sort_name_tokens",
    "sort_out",
    "strength",
]
