"""Ownership history: who held which account, for which products, from when to when.

A holder (a registration or a direct claim) owns its scope while it is `approved`. Every
decision that changes what it holds (approval, a new credit share, an extension, the end
of its protection) closes the holder's current interval at the decision's time and, if it
still holds something, opens the next one. A win also opens an `incumbency` interval that
lasts until `incumbent_until`. Reading "who owned X at T" is then one indexed range
condition: `valid_from <= T < valid_to` (open-ended when `valid_to` is null) and, for a
protection, `T < protected_until` (protection lapses by time even before the expiry
decision reaches us).

Only decisions feed this model, and all decisions about one holder travel in order on one
decisions partition, so the intervals do not depend on how intake and decisions
interleave. Interval keys are `(holder_id, id of the decision that opened it)`: a replay
writes the very same keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.inputs import canonical_product

Row = dict[str, Any]

PROTECTION = "protection"
INCUMBENCY = "incumbency"
_COMPARED = ("account_key", "party_type", "party_id", "products", "status", "credit_percent",
             "protected_until")


@dataclass(frozen=True, slots=True)
class Holding:
    """What a holder holds after a decision (status `approved`), or its end."""

    holder_id: str
    account_key: str
    party_type: str
    party_id: str
    status: str
    products: list[str] | None
    credit_percent: Decimal | None
    protected_until: datetime | None

    @property
    def owns(self) -> bool:
        return self.status == "approved"


def _same(row: Row, holding: Holding) -> bool:
    return all(row[name] == getattr(holding, name) for name in _COMPARED)


def change(current: Row | None, holding: Holding, event_id: str, at: datetime) -> list[Row]:
    """Rows to write after `holding` took effect at `at`: the closed current interval and
    the newly opened one (either may be absent). `current` is the holder's open
    protection interval, mutated in place when closed."""
    if current is not None and holding.owns and _same(current, holding):
        return []  # a decision that restates what is held changes nothing
    changed: list[Row] = []
    if current is not None:
        current["valid_to"] = max(at, current["valid_from"])
        changed.append(current)
    if holding.owns:
        changed.append({
            "holder_id": holding.holder_id,
            "opened_by": event_id,
            "account_key": holding.account_key,
            "kind": PROTECTION,
            "party_type": holding.party_type,
            "party_id": holding.party_id,
            "products": holding.products,
            "status": holding.status,
            "credit_percent": holding.credit_percent,
            "valid_from": at,
            "valid_to": None,
            "protected_until": holding.protected_until,
        })
    return changed


def extend(current: Row | None, protected_until: datetime, event_id: str,
           at: datetime) -> list[Row]:
    """An extension: the same holding with a later end."""
    if current is None:
        return []
    holding = Holding(current["holder_id"], current["account_key"], current["party_type"],
                      current["party_id"], current["status"], current["products"],
                      current["credit_percent"], protected_until)
    return change(current, holding, event_id, at)


def end(current: Row | None, event_id: str, at: datetime, *, holder_id: str,
        account_key: str, party_type: str, party_id: str,
        incumbent_until: datetime | None) -> list[Row]:
    """The holder's protection ended at `at`; a win starts an incumbency."""
    changed: list[Row] = []
    if current is not None:
        current["valid_to"] = max(at, current["valid_from"])
        changed.append(current)
    if incumbent_until is not None:
        changed.append({
            "holder_id": holder_id,
            "opened_by": event_id,
            "account_key": account_key,
            "kind": INCUMBENCY,
            # The direct team holds incumbency as one party, whichever rep closed the deal.
            "party_type": party_type,
            "party_id": party_id if party_type == "partner" else "direct",
            "products": None,
            "status": "won",
            "credit_percent": None,
            "valid_from": at,
            "valid_to": None,
            "protected_until": incumbent_until,
        })
    return changed


def held_at(row: Row, moment: datetime) -> bool:
    """Whether an interval row is in force at `moment` (the query's condition, in Python)."""
    if row["valid_from"] > moment:
        return False
    if row["valid_to"] is not None and row["valid_to"] <= moment:
        return False
    return row["protected_until"] is None or row["protected_until"] > moment


def covers(row: Row, product: str | None) -> bool:
    """Whether the interval's scope covers `product` (None: any product is asked about),
    product names compared in their one spelling (`shared.inputs.canonical_product`)."""
    products = row["products"]
    if product is None or not products:
        return True
    wanted = canonical_product(product)
    return any(canonical_product(p) == wanted for p in products)
