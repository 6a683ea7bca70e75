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

Names are filed order-free (session 30): intake and decisions are folded independently, so
a filing's rejection may be folded before its submission, or after a later filing of the
same name. A name row (country, name, key) records its *latest* filer in intake order
(`filed_by`, `filed_at`: the submission's intake offset; every filing of a key is on its
key's intake partition, so the offsets order them as the adjudicator read them), merged
by `later`. A rejection's `unfiled_names` are kept as their own rows (`unfiled`, table
`account_names_unfiled`: key, name, filing), and a name is filed unless its row's latest
filer is one of them (`is_filed`; the look-ups ask the same, `shared.readmodel.schema.
name_filed`). Why the latest filer decides: the adjudicator takes back only forms new
under the key at the rejected filing, so every earlier filing of that form was taken back
itself, and any later filing files it again. A row filed with no filer (`filed_by` None,
`filed_at` `KEPT`: filed before provenance was recorded) is never taken back, and no
submission replaces its filer. A row filed again by an undone rejection (`refiled`) is
filed by that filing above every offset (`KEPT` plus its decision's time, so a later
re-filing by another filing replaces it) and the filing's earlier `unfiled` rows are
deleted (`Batch.unfiled_back`): in review once more, a person's rejection takes it back
again, as the adjudicator does (second rival review, session 30). A filing's decisions
are one stream in order, so the deletion never passes its own rejection.
"""

from __future__ import annotations

from collections.abc import Container
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.accounts.filing import name_keys, name_rows
from shared.accounts.index import UNKNOWN_COUNTRY
from shared.accounts.salesforce import any_spelling
from shared.events import Account, AccountsLinked, AccountsUnlinked

Row = dict[str, Any]

__all__ = ["KEPT", "facts", "is_filed", "later", "name_keys", "refiled", "unfiled"]

KEPT = 2**62
"""`filed_at` of a name row no rejection takes back (`filed_by` None): above any intake
offset, so no submission's filing replaces it (`later`)."""


def facts(account_key: str, account: Account, filed_by: str | None = None,
          filed_at: int = -1) -> tuple[list[Row], list[Row], list[Row], list[Row]]:
    """Directory rows of one submitted account: domains, CRM ids, names, name keys.
    `filed_by`: the registration or claim that files them, `filed_at` its submission's
    intake offset, recorded on its name rows (the latest filer's stays, `later`); without
    a filer the rows are `KEPT`."""
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
    for row in names:
        row["filed_by"] = filed_by
        row["filed_at"] = filed_at if filed_by is not None else KEPT
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


def later(held: Row, row: Row) -> Row:
    """Two facts of one name row merged: the one of the later filer, by (`filed_at`,
    `filed_by`) (a tie is one record folded twice; a filer-less row is `KEPT`, above every
    offset). Commutative and associative, so any fold order gives the same row; the store
    applies the same rule (`repository`, conflict mode "latest")."""
    if row["filed_at"] > held["filed_at"] or (
            row["filed_at"] == held["filed_at"] and row["filed_by"] is not None
            and held["filed_by"] is not None and row["filed_by"] > held["filed_by"]):
        return row
    return held


def is_filed(row: Row, unfiled_rows: Container[tuple[str, str, str]]) -> bool:
    """Whether a name row is filed: its latest filer's rejection did not take it back
    (`unfiled_rows`: (account key, name, filing) of the `unfiled` rows)."""
    filer = row.get("filed_by")
    return filer is None or (row["account_key"], row["name"], filer) not in unfiled_rows


def unfiled(account_key: str, filing_id: str, forms: tuple[str, ...]) -> list[Row]:
    """The `account_names_unfiled` rows of a rejected filing (its decision's
    `unfiled_names`, session 29): a name row whose latest filer it is is no longer filed,
    whether its submission is folded before or after (session 30)."""
    return [{"account_key": account_key, "name": form, "filed_by": filing_id}
            for form in forms]


def refiled(account_key: str, forms: tuple[str, ...], country: str | None, filing_id: str,
            decided_at: datetime) -> list[Row]:
    """The name rows a filing whose rejection is undone files again (its approving or
    reviewing decision's `refiled_names` in `refiled_country`, session 29), filed by it:
    above any intake offset (a form it files again is new under the key then, so every
    earlier filer was taken back, and no later submission's filing replaces it), ordered
    among re-filings by the decision's time. Its earlier `unfiled` rows of them go
    (`Batch.unfiled_back`), so a later rejection of the same filing (in review again, a
    person rejects it: the adjudicator takes them back, `AdjudicationState.retired`)
    takes them back here too; before, the rows had no filer and stayed filed for good."""
    if decided_at.tzinfo is None:  # events do not enforce aware times: read as UTC
        decided_at = decided_at.replace(tzinfo=UTC)
    at = KEPT + (decided_at - _EPOCH) // _MICROSECOND
    return [{"country": country or UNKNOWN_COUNTRY, "name": form, "account_key": account_key,
             "filed_by": filing_id, "filed_at": at} for form in forms]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
