"""The account directory's rows and fuzzy-name blocking keys."""

from __future__ import annotations

from services.projections.domain.batch import Batch, Loaded
from services.projections.domain.directory import KEPT, facts, name_keys
from shared.accounts import blocking_keys, sort_name_tokens
from shared.events import Account, AccountsLinked, AccountsUnlinked
from tests.unit.projections.builders import at, decided, item, submitted
from tests.unit.projections.memory_store import MemoryStore


def test_names_are_filed_normalized_by_country_with_their_blocking_keys() -> None:
    domains, crm_ids, names, keys = facts(
        "dom:acme.com", Account(name="ACME Corporation Inc.", domain="acme.com",
                                country="US", crm_account_id="0015"))
    assert domains == [{"domain": "acme.com", "account_key": "dom:acme.com"}]
    assert crm_ids == [{"crm_account_id": "0015", "account_key": "dom:acme.com",
                        "crm_spelling": "0015"}]
    assert names == [{"country": "US", "name": "acme", "account_key": "dom:acme.com",
                      "filed_by": None, "filed_at": KEPT}]  # no filer: kept
    assert {k["key"] for k in keys} == {"acme"}


def test_a_name_without_country_is_filed_under_the_unknown_country() -> None:
    """As the edge's index files it (`AccountIndex`, UNKNOWN_COUNTRY ""): a registration
    service warmed from the directory weighs it against every country's names, never
    confidently. Before session 28 it was not filed, and a restarted edge forgot it. Its
    blocking keys too (session 28): a registration service behind the directory
    (distributed) looks names up through them, the unknown country's as well."""
    _, _, names, keys = facts("dom:x.com", Account(name="Acme Inc", domain="x.com"))
    assert names == [{"country": "", "name": "acme", "account_key": "dom:x.com",
                      "filed_by": None, "filed_at": KEPT}]
    assert keys == [{"country": "", "key": key, "name": "acme"} for key in name_keys("acme")]


def test_long_tokens_also_block_on_prefix_and_suffix() -> None:
    assert name_keys("microsoft") == {"microsoft", "^micr", "soft$"}
    assert name_keys("mircosoft") & name_keys("microsoft") == {"soft$"}


def test_the_directory_files_names_under_the_keys_the_in_memory_index_uses() -> None:
    # The edge looks names up in this table with shared.accounts.blocking_keys: one truth.
    assert name_keys("globex international") == blocking_keys(
        sort_name_tokens("globex international"))


def _linked(alias: str, canonical: str) -> AccountsLinked:
    return AccountsLinked(account_key=alias, canonical_key=canonical, matched_by="name",
                          score=1.0, registration_id="reg_2", linked_at=at(1),
                          policy_version=1, explanation="linked")


def _unlinked(alias: str, canonical: str) -> AccountsUnlinked:
    return AccountsUnlinked(account_key=alias, canonical_key=canonical,
                            registration_id="reg_2", unlinked_at=at(2), policy_version=1,
                            explanation="unlinked")


def test_an_ended_link_leaves_the_directory_in_any_batching() -> None:
    events = [_linked("name:US:acme", "dom:acme.com"), _unlinked("name:US:acme", "dom:acme.com")]
    one = MemoryStore()
    one.write(Batch(Loaded()).fold_all([item(e, f"evt_{i}") for i, e in enumerate(events)]))
    apart = MemoryStore()
    for i, e in enumerate(events):
        apart.write(Batch(Loaded()).fold_all([item(e, f"evt_{i}")]))
    assert one.links == apart.links == {}


def test_unlinking_another_pair_keeps_the_current_link() -> None:
    store = MemoryStore()
    for i, e in enumerate([_linked("name:US:acme", "dom:acme.com"),
                           _unlinked("name:US:acme", "dom:other.com")]):
        store.write(Batch(Loaded()).fold_all([item(e, f"evt_{i}")]))
    assert store.links["name:US:acme"]["canonical_key"] == "dom:acme.com"


def test_a_rejection_undone_files_its_names_again_in_any_batching() -> None:
    """Session 29: "Beta dba Tango" rejected at its decision takes Tango back from its key
    (`unfiled_names`); promoted later, its approval files it again (`refiled_names`: filed
    by it above every offset, its earlier `unfiled` row deleted, session 30), so an edge
    warmed from the directory finds Tango under Beta's key. Before, the directory kept it
    out for good. Beta's own row is untouched."""
    filing = submitted("reg_2", "p-2", key="crm:ACC-1", name="Beta dba Tango",
                       domain=None, crm="ACC-1")
    _, _, rows, _ = facts("crm:ACC-1", filing.account, "reg_2")
    assert {r["name"] for r in rows} >= {"beta", "tango"}, rows
    rejected = decided("reg_2", "p-2", status="rejected", rule="precedence", key="crm:ACC-1",
                       minutes=1, until_minutes=None).model_copy(
        update={"unfiled_names": ("tango",)})
    promoted = decided("reg_2", "p-2", key="crm:ACC-1", minutes=2).model_copy(
        update={"refiled_names": ("tango",), "refiled_country": "US"})
    events = [filing, rejected, promoted]
    tango = ("US", "tango", "crm:ACC-1")
    one = MemoryStore()
    one.write(Batch(Loaded()).fold_all([item(e, f"evt_{i}") for i, e in enumerate(events)]))
    apart = MemoryStore()
    for i, e in enumerate(events):
        apart.write(Batch(Loaded()).fold_all([item(e, f"evt_{i}")]))
        if e is rejected:
            assert tango not in apart.filed_names()  # taken back first
    for store in (one, apart):
        row = store.names[tango]
        assert (row["filed_by"], row["filed_at"] > KEPT) == ("reg_2", True), row
        assert not store.unfiled_names  # its earlier rejection's row went with the undoing
        assert {tango, ("US", "beta", "crm:ACC-1")} <= store.filed_names()
    # The field is written only when non-empty: other decisions serialize as before.
    assert "refiled_names" not in rejected.to_data()
    assert "refiled_country" not in rejected.to_data()
