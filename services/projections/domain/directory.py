"""The account directory: which account key a domain, CRM id or company name belongs to.

Rows are facts of submissions (first writer wins: a domain keeps the key it was first filed
under, which is what the edge resolved it to) and the adjudicator's `AccountsLinked`
decisions (an alias key and its canonical key), until an `AccountsUnlinked` ends the link.
Look-ups follow links to the canonical key.

Fuzzy name look-ups block on keys of the token-sorted normalized name, the same scheme as
`shared.accounts.AccountIndex`: every token, plus `^prefix` and `suffix$` of tokens of five
characters or more, so a typo inside a token still shares a key with the right name. A
query reads the postings of its keys (bounded per key) and scores the candidates with
`shared.accounts.name_similarity`.
"""

from __future__ import annotations

from typing import Any

from shared.accounts.filing import name_keys, name_rows
from shared.accounts.index import UNKNOWN_COUNTRY
from shared.accounts.salesforce import any_spelling
from shared.events import Account, AccountsLinked, AccountsUnlinked

Row = dict[str, Any]

__all__ = ["facts", "name_keys", "refiled", "unfiled"]


def facts(account_key: str, account: Account, filed_by: str | None = None
          ) -> tuple[list[Row], list[Row], list[Row], list[Row]]:
    """Directory rows of one submitted account: domains, CRM ids, names, name keys.
    `filed_by`: the registration or claim that files them, recorded on its name rows (the
    first filer's stays: a rejection decision's `unfiled_names` remove only its own)."""
    domains: list[Row] = []
    crm_ids: list[Row] = []
    if account.domain:
        domains.append({"domain": account.domain, "account_key": account_key})
    if account.crm_account_id:
        crm_ids.append({"crm_account_id": account.crm_account_id, "account_key": account_key,
                        "crm_spelling": any_spelling(account.crm_account_id)})
    # Names as `shared.accounts.filing` files them (migration 0014 re-files by it too).
    names, keys = name_rows(account_key, account.name, account.country,
                            bool(domains or crm_ids))
    if filed_by is not None:
        for row in names:
            row["filed_by"] = filed_by
    return domains, crm_ids, names, keys


def link(event: AccountsLinked) -> Row:
    """A link fact: one more partition holds the link (with its decision's facts)."""
    return {
        "account_key": event.account_key,
        "canonical_key": event.canonical_key,
        "holders": 1,
        "matched_by": event.matched_by,
        "score": event.score,
        "linked_at": event.linked_at,
    }


def unlink(event: AccountsUnlinked) -> Row:
    """A link fact: one partition fewer holds this alias's link to this canonical key."""
    return {"account_key": event.account_key, "canonical_key": event.canonical_key,
            "holders": -1, "matched_by": None, "score": None, "linked_at": None}


def merge_link(held: Row, fact: Row) -> Row:
    """Two facts of one (alias, canonical) link merged: holders added, the earliest link
    decision's facts kept (ties: by matched_by, then score). Commutative and associative,
    so partitions may be folded in any order (the edge's link report is copied to every
    intake partition, each deciding its own link). The store applies the same rule
    (`repository._write_links`)."""
    merged = dict(held, holders=held["holders"] + fact["holders"])
    if fact["linked_at"] is not None and (
            held["linked_at"] is None or _decision(fact) < _decision(held)):
        merged.update(matched_by=fact["matched_by"], score=fact["score"],
                      linked_at=fact["linked_at"])
    return merged


def _decision(fact: Row) -> tuple[Any, ...]:
    return fact["linked_at"], fact["matched_by"], fact["score"]


def unfiled(account_key: str, filing_id: str, forms: tuple[str, ...]) -> list[Row]:
    """The name rows a rejected filing takes back (its decision's `unfiled_names`, session
    29): those it filed first under its key. A row another filing filed first, or one
    filed before provenance was recorded (`filed_by` None), stays."""
    return [{"account_key": account_key, "name": form, "filed_by": filing_id}
            for form in forms]


def refiled(account_key: str, filing_id: str, forms: tuple[str, ...],
            country: str | None) -> list[Row]:
    """The name rows a filing whose rejection is undone files again (its approving or
    reviewing decision's `refiled_names` in `refiled_country`, session 29): filed by it,
    as when it first filed them (a row another filing filed meanwhile stays that one's)."""
    return [{"country": country or UNKNOWN_COUNTRY, "name": form, "account_key": account_key,
             "filed_by": filing_id} for form in forms]
