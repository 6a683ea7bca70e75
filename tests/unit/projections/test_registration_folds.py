"""Registration and claim rows: the submission's facts and the decisions' state merge the
same way whichever arrives first."""

from __future__ import annotations

from decimal import Decimal

from services.projections.domain.batch import Batch, Loaded, Needs
from services.projections.domain.registrations import from_e4, to_e4
from tests.unit.projections.builders import (
    claim_decided,
    claim_filed,
    decided,
    ended,
    extended,
    item,
    submitted,
)
from tests.unit.projections.memory_store import MemoryStore


def fold(*events: object) -> Batch:
    return Batch(Loaded()).fold_all([item(e, f"evt_{i}") for i, e in enumerate(events)])  # type: ignore[arg-type]


def test_a_decision_folded_before_its_submission_gives_the_same_row() -> None:
    first = fold(submitted(minutes=0), decided(minutes=0.5)).registrations["reg_1"]
    later = fold(decided(minutes=0.5), submitted(minutes=0)).registrations["reg_1"]
    assert first == later
    assert first["status"] == "approved"
    assert first["motion"] == "resell"
    assert first["account"]["domain"] == "acme.com"


def test_a_submission_arriving_late_does_not_reset_the_status_to_submitted() -> None:
    row = fold(decided(status="rejected", rule="first_submitted"), submitted()).registrations
    assert row["reg_1"]["status"] == "rejected"


def test_decision_latency_is_measured_from_submission_to_the_first_decision() -> None:
    row = fold(decided(minutes=0.25), submitted(minutes=0),
               decided(minutes=30, status="rejected", rule="dispute_resolution")
               ).registrations["reg_1"]
    assert row["decision_latency_ms"] == 15_000
    assert row["first_rule"] == "no_conflict"
    assert row["collided"] is False
    assert row["status"] == "rejected"


def test_time_to_decision_waits_for_the_first_decision_that_is_not_in_review() -> None:
    events = (submitted(minutes=0), decided(minutes=0, status="in_review", rule="tie_window"),
              decided(minutes=90, status="approved", rule="dispute_resolution"),
              decided(minutes=200, status="rejected", rule="dispute_resolution"))
    row = fold(*events).registrations["reg_1"]
    assert (row["decision_latency_ms"], row["settle_ms"]) == (0, 90 * 60_000)
    # Whichever topic is folded first.
    assert fold(*events[1:], events[0]).registrations["reg_1"]["settle_ms"] == 90 * 60_000
    assert fold(*events[:2]).registrations["reg_1"]["settle_ms"] is None


def test_an_extension_moves_the_end_of_protection() -> None:
    row = fold(submitted(), decided(until_minutes=600),
               extended(minutes=500, until_minutes=720, extensions=1)).registrations["reg_1"]
    assert row["extensions"] == 1
    assert row["protected_until"].hour == 21


def test_a_won_deal_keeps_its_closed_amount_and_incumbency() -> None:
    row = fold(submitted(amount="1000.00"), decided(),
               ended(minutes=90, reason="won", status="won", amount="950.25",
                     incumbent_minutes=10_000)).registrations["reg_1"]
    assert row["status"] == "won"
    assert row["end_reason"] == "won"
    assert row["closed_amount_e4"] == to_e4(Decimal("950.25"))
    assert row["amount_e4"] == to_e4(Decimal("1000.00"))
    assert row["incumbent_until"] is not None


def test_claims_are_folded_into_their_own_rows() -> None:
    batch = fold(claim_decided(), claim_filed(),
                 ended("clm_1", minutes=5, reason="released", status="withdrawn",
                       party_type="direct", party="rep-1"))
    assert batch.registrations == {}
    row = batch.claims["clm_1"]
    assert (row["kind"], row["rep_id"], row["status"]) == ("named_account", "rep-1",
                                                            "withdrawn")


def test_money_round_trips_through_ten_thousandths() -> None:
    assert from_e4(to_e4(Decimal("120000.00"))) == Decimal("120000.00")
    assert str(from_e4(to_e4(Decimal("0.1234")))) == "0.1234"
    assert str(from_e4(to_e4(Decimal("5")))) == "5.00"


def test_pipeline_totals_follow_the_registration_between_stages() -> None:
    store = MemoryStore()
    store.write(fold(submitted(amount="100.00")))
    assert [(k, v["count"], v["amount_e4"]) for k, v in store.totals.items()] == [
        (("p-1", "submitted", "resell", "USD"), 1, 1_000_000)]
    loaded = store.load(Needs(registrations={"reg_1"}))
    batch = Batch(loaded).fold_all([item(decided(), "evt_2"),
                                    item(ended(minutes=5, reason="won", status="won",
                                               amount="80.00"), "evt_3")])
    store.write(batch)
    assert [(k, v["count"], v["amount_e4"]) for k, v in store.totals.items()] == [
        (("p-1", "won", "resell", "USD"), 1, 800_000)]


def test_a_registration_not_yet_submitted_is_not_in_the_pipeline() -> None:
    batch = fold(decided())
    assert batch.pipeline().total_rows() == []


def test_a_deal_with_several_products_counts_under_each_product() -> None:
    batch = fold(submitted(products=("analytics", "storage")))
    assert [r["product"] for r in batch.pipeline().product_rows()] == ["analytics", "storage"]
    assert len(batch.pipeline().total_rows()) == 1


def test_a_registration_another_partition_rejected_stays_rejected_when_its_own_ends_it(
        ) -> None:
    """A settlement on another partition rejected a copy of this registration; its own
    partition, which never hears of that, later extends and expires it (DESIGN.md, "The
    cross-key race"): the row stays rejected, with no protection shown."""
    for late in (extended(minutes=500, until_minutes=720),
                 ended(minutes=700, reason="expired", status="expired")):
        row = fold(submitted(), decided(until_minutes=600),
                   decided(minutes=60, status="rejected", rule="dispute_resolution",
                           until_minutes=None), late).registrations["reg_1"]
        assert (row["status"], row["protected_until"], row["end_reason"]) == (
            "rejected", None, None), late
    claim = fold(claim_filed(), claim_decided(), claim_decided(minutes=60, status="rejected"),
                 ended("clm_1", minutes=90, reason="released", status="withdrawn",
                       party_type="direct", party="rep-1")).claims["clm_1"]
    assert claim["status"] == "rejected"
