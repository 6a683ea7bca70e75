"""Dispute rows: level, owner and deadline as the ladder moves; breaches; resolution."""

from __future__ import annotations

from services.projections.domain.batch import Batch, Loaded
from shared.events import DisputeAcknowledgementRecorded, DisputeFiled, DisputeSlaBreached
from tests.unit.projections.builders import at, escalated, item, opened, resolved


def fold(*events: object) -> Batch:
    return Batch(Loaded()).fold_all([item(e, f"evt_{i}") for i, e in enumerate(events)])  # type: ignore[arg-type]


def test_an_opened_dispute_is_in_its_level_one_owners_queue() -> None:
    row = fold(opened(minutes=0, due_minutes=60)).disputes["dsp-1"]
    assert (row["status"], row["level"], row["owner_id"], row["due_at"]) == (
        "open", 1, "cm-1", at(60))
    assert row["registration_ids"] == ["reg_1", "reg_2"]


def test_escalation_moves_the_dispute_to_the_next_owner_and_records_the_breach() -> None:
    batch = fold(
        opened(minutes=0, due_minutes=60),
        DisputeAcknowledgementRecorded(dispute_id="dsp-1", account_key="dom:acme.com",
                                       level=1, owner_id="cm-1", actor_id="cm-1",
                                       acknowledged_at=at(5), policy_version=1),
        escalated(minutes=60, owner="dir-1", due_minutes=200),
    )
    row = batch.disputes["dsp-1"]
    assert (row["level"], row["owner_id"], row["due_at"]) == (2, "dir-1", at(200))
    assert row["owners"] == ["cm-1", "dir-1"]
    assert row["acknowledged_at"] is None  # the new owner has not acknowledged yet
    assert list(batch.breaches.values()) == [
        {"dispute_id": "dsp-1", "level": 1, "deadline": at(60), "outcome": "escalated"}]


def test_a_last_level_breach_kept_open_is_flagged() -> None:
    batch = fold(opened(), DisputeSlaBreached(
        dispute_id="dsp-1", account_key="dom:acme.com", level=1, owner_id="cm-1",
        breached_deadline=at(60), policy_version=1, explanation="kept open"))
    assert batch.disputes["dsp-1"]["breached"] is True
    assert [b["outcome"] for b in batch.breaches.values()] == ["kept_open"]


def test_resolution_records_outcome_and_time_to_resolve() -> None:
    row = fold(opened(minutes=0), resolved(minutes=90)).disputes["dsp-1"]
    assert row["status"] == "resolved"
    assert row["resolve_ms"] == 90 * 60 * 1000
    assert row["resolution"]["registration_id"] == "reg_1"
    assert row["outcome"] == "award"


def test_the_final_breach_fallback_counts_as_a_breach_of_the_last_level() -> None:
    batch = fold(opened(), resolved(minutes=60, outcome="final_breach_fallback"))
    assert [b["outcome"] for b in batch.breaches.values()] == ["fallback"]


def test_a_merged_dispute_has_no_time_to_resolve_of_its_own() -> None:
    row = fold(opened(), resolved(minutes=10, outcome="merged", awarded=None,
                                  merged_into="dsp-0")).disputes["dsp-1"]
    assert row["resolve_ms"] is None
    assert row["resolution"]["merged_into"] == "dsp-0"


def test_a_partners_contest_links_its_registration_to_the_dispute_id() -> None:
    batch = fold(DisputeFiled(dispute_id="dsp-c", registration_id="reg_9", partner_id="p-9",
                              account_key="dom:acme.com", reason="first", filed_at=at(0),
                              policy_version=1))
    assert list(batch.members) == [("dsp-c", "reg_9")]
    assert batch.disputes == {}


def test_a_review_joined_by_a_collision_shows_the_collision_reason() -> None:
    from shared.events import DisputeJoined

    joined = DisputeJoined(dispute_id="dsp-1", account_key="dom:acme.com",
                           added_ids=("reg_3",), registration_ids=("reg_1", "reg_2", "reg_3"),
                           joined_at=at(5), policy_version=1, explanation="joined",
                           reason="tie")
    review = opened().model_copy(update={"reason": "possible_duplicate"})
    assert fold(review).disputes["dsp-1"]["reason"] == "possible_duplicate"
    assert fold(review, joined).disputes["dsp-1"]["reason"] == "tie"
    unchanged = joined.model_copy(update={"reason": None})
    assert fold(review, unchanged).disputes["dsp-1"]["reason"] == "possible_duplicate"


def test_an_award_by_product_records_who_won_which_product() -> None:
    from shared.events import ProductAward

    awards = (ProductAward(product="a", registration_id="reg_2"),
              ProductAward(product="b", registration_id="reg_1"))
    row = fold(opened(), resolved(minutes=30, awarded=None, awards=awards)).disputes["dsp-1"]
    assert row["resolution"]["awards"] == [{"product": "a", "registration_id": "reg_2"},
                                           {"product": "b", "registration_id": "reg_1"}]


def test_a_contest_carrying_on_an_acknowledged_dispute_carries_its_acknowledgement() -> None:
    """A contest drawing in members of an open dispute opens one that carries on its ladder
    (`carries_on`) and merges it: adjudication holds the new one acknowledged (and breached)
    as the older one was, so its row must read so; it read null, and the owner's
    acknowledge was refused. Folded in one batch (a rebuild) or the opening in a later
    batch that loads the older row (the worker): the same row."""
    from services.projections.domain.batch import needs

    before = [
        opened("dsp-0", minutes=0, due_minutes=60),
        DisputeAcknowledgementRecorded(dispute_id="dsp-0", account_key="dom:acme.com",
                                       level=1, owner_id="cm-1", actor_id="cm-1",
                                       acknowledged_at=at(5), policy_version=1),
        DisputeSlaBreached(dispute_id="dsp-0", account_key="dom:acme.com", level=1,
                           owner_id="cm-1", breached_deadline=at(60), policy_version=1,
                           explanation="kept open"),
        resolved("dsp-0", minutes=70, outcome="merged", awarded=None, merged_into="dsp-c"),
    ]
    contest = opened("dsp-c", ("reg_1", "reg_2", "reg_9"), minutes=70,
                     due_minutes=60).model_copy(update={"carries_on": "dsp-0"})
    whole = fold(*before, contest).disputes["dsp-c"]
    assert (whole["acknowledged_at"], whole["acknowledged_by"], whole["breached"]) == (
        at(5), "cm-1", True)
    assert (whole["level"], whole["owner_id"], whole["due_at"], whole["opened_at"]) == (
        1, "cm-1", at(60), at(70))
    later = [item(contest, "evt_9")]  # type: ignore[arg-type]
    assert needs(later).disputes == {"dsp-c", "dsp-0"}
    stored = fold(*before).disputes
    split = Batch(Loaded(disputes={"dsp-0": stored["dsp-0"]})).fold_all(later)
    assert split.disputes["dsp-c"] == whole
    assert split.dirty_disputes == {"dsp-c"}  # the older row is read, not rewritten
    fresh = fold(contest).disputes["dsp-c"]  # no older row (a partial replay): nothing
    assert (fresh["acknowledged_at"], fresh["breached"]) == (None, False)
