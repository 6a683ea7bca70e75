"""The edge's own index takes back the names a rejected filing newly brought to its key
(`AccountDirectory.remember_filed` / `told`, `match.rejected_names: unfiled`) and files
them again if the rejection is undone (session 29 second rival review)."""

from __future__ import annotations

from typing import Any

from services.registration.adapters.directory import AccountDirectory
from shared.accounts import AccountIdentity, normalize_name


def _directory() -> AccountDirectory:
    # Memory only: nothing here reads the engine.
    return AccountDirectory(None, complete=True, rewarm_seconds=3600)  # type: ignore[arg-type]


def _identity(name: str) -> AccountIdentity:
    return AccountIdentity("ACC-1", None, normalize_name(name, "US"), "US")


def _keys_named(directory: AccountDirectory, name: str) -> list[str]:
    trade = AccountIdentity(None, None, normalize_name(name, "US"), "US")
    return [m.account_key for m in directory._index.match(trade, 0.9)]


def _told(directory: AccountDirectory, entity_id: str, status: str) -> None:
    rows: dict[str, dict[str, Any]] = {entity_id: {"status": status}}
    directory.told([entity_id], rows)


def test_a_name_another_filing_brought_meanwhile_stays_filed() -> None:
    """A rival's "B dba T" (to be rejected) is filed here first; before its decision the
    holder's own filing of "T" under the same key arrives: nothing new to it, so nothing
    of it was kept -- and the rival's rejection took T back from the key the holder
    holds it under (the adjudicator, deciding in order, kept it): a later filing of T
    missed the holder's key here."""
    directory = _directory()
    directory.remember_filed("r-rival", "crm:ACC-1", _identity("Acme Corp dba Widget Labs"),
                             True)
    directory.remember_filed("r-holder", "crm:ACC-1", _identity("Widget Labs"), True)
    _told(directory, "r-holder", "approved")
    _told(directory, "r-rival", "rejected")
    assert _keys_named(directory, "Widget Labs") == ["crm:ACC-1"]


def test_a_rejected_filing_s_names_come_back_when_it_is_promoted() -> None:
    directory = _directory()
    directory.remember_filed("r-1", "crm:ACC-1", _identity("Acme Corp"), True)
    directory.remember_filed("r-2", "crm:ACC-1", _identity("Acme Corp dba Widget Labs"), True)
    _told(directory, "r-2", "rejected")
    assert _keys_named(directory, "Widget Labs") == []
    _told(directory, "r-2", "approved")
    assert _keys_named(directory, "Widget Labs") == ["crm:ACC-1"]


def test_a_filing_a_person_rejects_after_review_takes_its_names_back() -> None:
    """Session 30: in review it keeps its names (weighed while it waits); rejected by a
    person, the forms it brought go, as in the adjudicator (`BroughtNames`)."""
    directory = _directory()
    directory.remember_filed("r-1", "crm:ACC-1", _identity("Acme Corp"), True)
    directory.remember_filed("r-2", "crm:ACC-1", _identity("Acme Corp dba Widget Labs"), True)
    _told(directory, "r-1", "approved")
    _told(directory, "r-2", "in_review")
    assert _keys_named(directory, "Widget Labs") == ["crm:ACC-1"]
    _told(directory, "r-2", "rejected")
    assert _keys_named(directory, "Widget Labs") == []
    _told(directory, "r-2", "in_review")  # contested: filed again, its own once more
    assert _keys_named(directory, "Widget Labs") == ["crm:ACC-1"]
    _told(directory, "r-2", "rejected")
    assert _keys_named(directory, "Widget Labs") == []


def test_a_name_a_live_filing_filed_while_it_waited_stays() -> None:
    directory = _directory()
    directory.remember_filed("r-2", "crm:ACC-1", _identity("Acme Corp dba Widget Labs"), True)
    _told(directory, "r-2", "in_review")
    directory.remember_filed("r-3", "crm:ACC-1", _identity("Widget Labs"), True)
    _told(directory, "r-3", "in_review")  # live: the name stays whoever brought it
    _told(directory, "r-2", "rejected")
    assert _keys_named(directory, "Widget Labs") == ["crm:ACC-1"]


def test_a_name_filed_again_before_the_bringer_s_decision_passes_to_the_later_filer() -> None:
    """The edge learns decisions after its appends: r-2 and r-3 (both naming Widget Labs)
    are appended before r-2's rejection is seen. The adjudicator, deciding in order, took
    the name back at r-2's decision and saw r-3 bring it anew; so the name passes to r-3,
    and goes if r-3 is rejected too. r-4, rejected at its decision, counts for nothing."""
    directory = _directory()
    directory.remember_filed("r-2", "crm:ACC-1", _identity("Acme Corp dba Widget Labs"), True)
    directory.remember_filed("r-4", "crm:ACC-1", _identity("Widget Labs"), True)
    directory.remember_filed("r-3", "crm:ACC-1", _identity("Widget Labs"), True)
    _told(directory, "r-4", "rejected")
    _told(directory, "r-2", "rejected")
    assert _keys_named(directory, "Widget Labs") == ["crm:ACC-1"]  # r-3's, undecided
    _told(directory, "r-3", "rejected")
    assert _keys_named(directory, "Widget Labs") == []
