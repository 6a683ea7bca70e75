"""Pipeline aggregates: counts and amounts per partner, stage, motion, product and currency.

A registration row contributes one unit (and its amount) to the totals of its current
`(partner, status, motion, currency)` and, for each of its products, to the product totals.
A fold computes the contribution before and after a batch changed the row and adds the
difference; totals are therefore a function of the rows alone, equal after a replay
whatever the batching. The stage of a registration is its status; the amount is the
closed amount when the CRM reported one, else the registered amount.

A deal naming several products counts in full under each of them (product totals answer
"how much pipeline involves X", and do not add up to the partner totals).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

Row = dict[str, Any]
TotalsKey = tuple[str, str, str, str]  # partner, status, motion, currency
ProductKey = tuple[str, str, str, str, str]  # product, partner, status, motion, currency


class Deltas:
    """Accumulated changes of one batch, ready to be added to the stored totals."""

    def __init__(self) -> None:
        self.totals: dict[TotalsKey, list[int]] = defaultdict(lambda: [0, 0])
        self.products: dict[ProductKey, list[int]] = defaultdict(lambda: [0, 0])

    def add(self, row: Row | None, sign: int) -> None:
        if row is None or row["submitted_at"] is None or row["partner_id"] is None:
            return  # not submitted yet (a decision arrived first): not in the pipeline
        value, currency = amount_of(row)
        key = (row["partner_id"], row["status"], row["motion"] or "", currency)
        total = self.totals[key]
        total[0] += sign
        total[1] += sign * value
        for product in products_of(row):
            entry = self.products[(product, *key)]
            entry[0] += sign
            entry[1] += sign * value

    def change(self, before: Row | None, after: Row) -> None:
        self.add(before, -1)
        self.add(after, +1)

    def total_rows(self) -> list[Row]:
        return [
            {"partner_id": k[0], "status": k[1], "motion": k[2], "currency": k[3],
             "count": v[0], "amount_e4": v[1]}
            for k, v in sorted(self.totals.items()) if v != [0, 0]
        ]

    def product_rows(self) -> list[Row]:
        return [
            {"product": k[0], "partner_id": k[1], "status": k[2], "motion": k[3],
             "currency": k[4], "count": v[0], "amount_e4": v[1]}
            for k, v in sorted(self.products.items()) if v != [0, 0]
        ]


def amount_of(row: Row) -> tuple[int, str]:
    if row.get("closed_amount_e4") is not None:
        return row["closed_amount_e4"], row["closed_currency"] or ""
    if row.get("amount_e4") is not None:
        return row["amount_e4"], row["currency"] or ""
    return 0, ""


def products_of(row: Row) -> list[str]:
    products = (row.get("opportunity") or {}).get("products") or []
    return sorted(set(products)) or [""]


def snapshot(row: Row) -> Row:
    """The fields a contribution depends on, copied before a fold mutates the row."""
    return {name: row.get(name) for name in (
        "submitted_at", "partner_id", "status", "motion", "amount_e4", "currency",
        "closed_amount_e4", "closed_currency", "opportunity")}
