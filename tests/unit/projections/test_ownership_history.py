"""Ownership intervals: who held an account when, so `as_of` answers for any moment."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.projections.domain.batch import Batch, Needs, needs
from services.projections.domain.ownership import INCUMBENCY, PROTECTION, covers, held_at
from tests.unit.projections.builders import (
    at,
    claim_decided,
    decided,
    ended,
    extended,
    item,
)
from tests.unit.projections.memory_store import MemoryStore


def store_of(*events: object, per_batch: int = 1) -> MemoryStore:
    store = MemoryStore()
    items = [item(e, f"evt_{i:03d}") for i, e in enumerate(events)]  # type: ignore[arg-type]
    for start in range(0, len(items), per_batch):
        chunk = items[start:start + per_batch]
        batch = Batch(store.load(needs(chunk))).fold_all(chunk)
        store.write(batch)
    return store


def owners(store: MemoryStore, moment: datetime, product: str | None = None
           ) -> list[tuple[str, Any]]:
    return sorted((r["holder_id"], r["protected_until"]) for r in store.intervals.values()
                  if r["kind"] == PROTECTION and held_at(r, moment) and covers(r, product))


def test_an_approval_protects_from_its_decision_until_protected_until() -> None:
    store = store_of(decided(minutes=10, until_minutes=100))
    assert owners(store, at(5)) == []
    assert owners(store, at(10)) == [("reg_1", at(100))]
    assert owners(store, at(99.9)) == [("reg_1", at(100))]
    assert owners(store, at(100)) == []  # lapsed by time even before the expiry decision


def test_as_of_before_an_extension_shows_the_old_end_and_after_it_the_new() -> None:
    store = store_of(decided(minutes=0, until_minutes=100),
                     extended(minutes=50, until_minutes=160))
    assert owners(store, at(49)) == [("reg_1", at(100))]
    assert owners(store, at(120)) == [("reg_1", at(160))]
    assert len(store.intervals) == 2


def test_ownership_moves_when_a_protection_ends_and_a_rival_is_approved() -> None:
    store = store_of(decided("reg_1", "p-1", minutes=0, until_minutes=500),
                     ended("reg_1", minutes=30),
                     decided("reg_2", "p-2", minutes=40, until_minutes=500))
    assert owners(store, at(20)) == [("reg_1", at(500))]
    assert owners(store, at(35)) == []
    assert owners(store, at(45)) == [("reg_2", at(500))]


def test_a_decision_that_restates_the_holding_opens_no_new_interval() -> None:
    store = store_of(decided(minutes=0), decided(minutes=5))
    assert len(store.intervals) == 1


def test_a_split_reopens_the_interval_with_the_credit_share() -> None:
    store = store_of(decided(minutes=0), decided(minutes=20, rule="dispute_resolution",
                                                 credit="40"))
    current = [r for r in store.intervals.values() if r["valid_to"] is None]
    assert [str(r["credit_percent"]) for r in current] == ["40"]


def test_a_win_starts_an_incumbency_and_ends_the_protection() -> None:
    store = store_of(decided(minutes=0), ended(minutes=60, reason="won", status="won",
                                                incumbent_minutes=2000))
    kinds = sorted((r["kind"], r["valid_to"] is None) for r in store.intervals.values())
    assert kinds == [(INCUMBENCY, True), (PROTECTION, False)]
    incumbency = next(r for r in store.intervals.values() if r["kind"] == INCUMBENCY)
    assert held_at(incumbency, at(100)) and not held_at(incumbency, at(2001))


def test_a_direct_win_is_held_by_the_direct_team_as_one_party() -> None:
    store = store_of(claim_decided(minutes=0),
                     ended("clm_1", minutes=10, reason="won", status="won",
                           party_type="direct", party="rep-1", incumbent_minutes=99))
    incumbency = next(r for r in store.intervals.values() if r["kind"] == INCUMBENCY)
    assert (incumbency["party_type"], incumbency["party_id"]) == ("direct", "direct")


def test_a_rejection_holds_nothing() -> None:
    store = store_of(decided(status="rejected", rule="first_submitted", until_minutes=None))
    assert store.intervals == {}


def test_scope_covers_its_products_or_the_whole_account() -> None:
    store = store_of(decided("reg_1", minutes=0, scope=("analytics",)),
                     decided("reg_2", "p-2", minutes=0, scope=None))
    assert [h for h, _ in owners(store, at(1), "analytics")] == ["reg_1", "reg_2"]
    assert [h for h, _ in owners(store, at(1), "storage")] == ["reg_2"]


def test_intervals_are_the_same_whatever_the_batching() -> None:
    events = [decided(minutes=0, until_minutes=100), extended(minutes=50, until_minutes=160),
              decided(minutes=60, rule="dispute_resolution", credit="50", until_minutes=160),
              ended(minutes=70)]
    assert store_of(*events, per_batch=1).intervals == store_of(*events, per_batch=4).intervals
    assert Needs(holders={"reg_1"})
