"""The account directory's rows and fuzzy-name blocking keys."""

from __future__ import annotations

from services.projections.domain.directory import facts, name_keys
from shared.accounts import blocking_keys, sort_name_tokens
from shared.events import Account


def test_names_are_filed_normalized_by_country_with_their_blocking_keys() -> None:
    domains, crm_ids, names, keys = facts(
        "dom:acme.com", Account(name="ACME Corporation Inc.", domain="acme.com",
                                country="US", crm_account_id="0015"))
    assert domains == [{"domain": "acme.com", "account_key": "dom:acme.com"}]
    assert crm_ids == [{"crm_account_id": "0015", "account_key": "dom:acme.com"}]
    assert names == [{"country": "US", "name": "acme", "account_key": "dom:acme.com"}]
    assert {k["key"] for k in keys} == {"acme"}


def test_a_name_without_country_is_not_filed() -> None:
    assert facts("dom:x.com", Account(name="Acme", domain="x.com"))[2] == []


def test_long_tokens_also_block_on_prefix_and_suffix() -> None:
    assert name_keys("microsoft") == {"microsoft", "^micr", "soft$"}
    assert name_keys("mircosoft") & name_keys("microsoft") == {"soft$"}


def test_the_directory_files_names_under_the_keys_the_in_memory_index_uses() -> None:
    # The edge looks names up in this table with shared.accounts.blocking_keys: one truth.
    assert name_keys("globex international") == blocking_keys(
        sort_name_tokens("globex international"))
