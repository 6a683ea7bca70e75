"""How the directory read model files a submitted account's names: the one place the
projection (`services.projections.domain.directory.facts`) and migration 0014 (which
re-files names filed under an older reading) take them from.

Every name the customer is known by ("X dba Y": both, `name_forms`), normalised with the
account's country, with its blocking keys (the same scheme as `AccountIndex`). A name
filed without a country (beside an identifier: a name alone needs one) is filed under the
unknown country, as the edge's index files it (session 28)."""

from __future__ import annotations

from typing import Any

from shared.accounts.index import UNKNOWN_COUNTRY, blocking_keys
from shared.accounts.normalize import (
    name_forms,
    normalize_country,
    normalize_name,
    sort_name_tokens,
)

__all__ = ["name_keys", "name_rows"]

Row = dict[str, Any]


def name_keys(normalized_name: str) -> set[str]:
    """The blocking keys of a normalized name: the same keys the in-memory index uses, so
    the edge and the ownership look-up find what the directory filed."""
    return blocking_keys(sort_name_tokens(normalized_name))


def name_rows(account_key: str, name: str | None, country: str | None,
              identified: bool) -> tuple[list[Row], list[Row]]:
    """`account_names` and `account_name_keys` rows of one submitted account's name;
    `identified`: the account carries a domain or CRM id."""
    names: list[Row] = []
    keys: list[Row] = []
    code = normalize_country(country) if country else None
    normalized = normalize_name(name, code) if name else ""
    if normalized and code:
        for form in name_forms(normalized):
            names.append({"country": code, "name": form, "account_key": account_key})
            keys.extend({"country": code, "key": key, "name": form}
                        for key in name_keys(form))
    elif normalized and identified:
        # It was left out: after a restart the edge forgot it, and a rival's filing of the
        # same name was approved unseen beside it (session 28, `CustomerRules`).
        for form in name_forms(normalized):
            names.append({"country": UNKNOWN_COUNTRY, "name": form, "account_key": account_key})
            # Its blocking keys too, so the registration service's distributed look-up
            # (`AccountDirectory._fill_misses`) finds it as it finds a country's names.
            keys.extend({"country": UNKNOWN_COUNTRY, "key": key, "name": form}
                        for key in name_keys(form))
    return names, keys
