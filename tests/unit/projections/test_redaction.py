"""Confidentiality between partners (invariant 7): every redaction rule of the read side."""

from __future__ import annotations

from typing import Any

from services.projections.domain import redaction
from services.projections.domain.redaction import ANOTHER, Viewer

P1 = Viewer("partner", "p-1")
CM = Viewer("channel_manager", "cm-9")


def owner_row(party_type: str, party_id: str, rid: str) -> dict[str, Any]:
    return {"party_type": party_type, "party_id": party_id, "registration_id": rid,
            "products": ["analytics"], "motion": "resell", "status": "approved",
            "protected_until": "2027-01-01T00:00:00Z", "credit_percent": "50.00"}


def test_a_partner_learns_only_scope_and_end_of_a_competitors_protection() -> None:
    hidden = redaction.owner(owner_row("partner", "p-2", "reg_2"), P1)
    assert hidden["party_id"] is None and hidden["registration_id"] is None
    assert hidden["motion"] is None and hidden["credit_percent"] is None
    assert hidden["products"] == ["analytics"]
    assert hidden["protected_until"] == "2027-01-01T00:00:00Z"
    assert hidden["party_type"] == "partner"


def test_a_direct_claim_is_anonymous_to_partners_too() -> None:
    hidden = redaction.owner(owner_row("direct", "rep-1", "clm_1"), P1)
    assert hidden["party_id"] is None and hidden["registration_id"] is None


def test_a_partner_sees_its_own_protection_in_full() -> None:
    row = owner_row("partner", "p-1", "reg_1")
    assert redaction.owner(row, P1) == row


def test_vendor_roles_see_every_owner() -> None:
    row = owner_row("partner", "p-2", "reg_2")
    for role in ("admin", "integration", "rep", "owner", "channel_manager"):
        assert redaction.owner(row, Viewer(role, "x")) == row


def test_decision_evidence_hides_competitors_but_not_the_partners_own_duplicate() -> None:
    view = {"id": "reg_1", "decision": {
        "rule": "first_submitted", "policy_version": 1,
        "explanation": "Rejected: reg_2 is protected (first_submitted)",
        "conflicts": [
            {"registration_id": "reg_2", "party_type": "partner", "party_id": "p-2",
             "matched_by": "domain", "score": 1.0},
            {"registration_id": "reg_0", "party_type": "partner", "party_id": "p-1",
             "matched_by": "domain", "score": 1.0},
        ]}}
    out = redaction.registration(view, P1)
    conflicts = out["decision"]["conflicts"]
    assert conflicts[0]["registration_id"] is None and conflicts[0]["party_id"] is None
    assert conflicts[1]["registration_id"] == "reg_0"
    assert "reg_2" not in out["decision"]["explanation"]
    assert ANOTHER in out["decision"]["explanation"]
    assert redaction.registration(view, CM) == view


def dispute_view() -> dict[str, Any]:
    return {
        "id": "dsp-1", "registration_ids": ["reg_1", "reg_2", "clm_1"],
        "explanation": "Dispute over reg_1, reg_2 and clm_1",
        "resolution": {
            "outcome": "split", "registration_id": "reg_2",
            "splits": [{"registration_id": "reg_1", "percent": "40"},
                       {"registration_id": "reg_2", "percent": "60"}],
            "approved_ids": ["reg_1", "reg_2"], "rejected_ids": ["clm_1"],
            "explanation": "approved: reg_1, reg_2", "resolved_by": "cm-1",
        },
    }


def test_a_dispute_shows_a_partner_its_own_registration_and_share_only() -> None:
    out = redaction.data(dispute_view(), P1, {"reg_1"})
    assert out["registration_ids"] == ["reg_1", None, None]
    resolution = out["resolution"]
    assert resolution["registration_id"] is None
    assert resolution["splits"] == [{"registration_id": "reg_1", "percent": "40"}]
    assert resolution["approved_ids"] == ["reg_1", None]
    assert resolution["rejected_ids"] == [None]
    assert "reg_2" not in resolution["explanation"] and "clm_1" not in out["explanation"]
    assert resolution["resolved_by"] == "cm-1"


def test_vendor_roles_see_disputes_unredacted() -> None:
    assert redaction.data(dispute_view(), CM, set()) == dispute_view()


def test_evidence_and_parties_of_others_are_nulled_in_timeline_data() -> None:
    data = {"status": "in_review", "evidence": [
        {"registration_id": "reg_2", "party_type": "partner", "party_id": "p-2"},
        {"registration_id": "clm_1", "party_type": "direct", "party_id": "rep-4"}],
        "rep_id": "rep-4", "partner_id": "p-1"}
    out = redaction.data(data, P1, {"reg_1"})
    assert out["evidence"] == [
        {"registration_id": None, "party_type": "partner", "party_id": None},
        {"registration_id": None, "party_type": "direct", "party_id": None}]
    assert out["rep_id"] is None


def test_registrations_reported_under_another_key_keep_only_the_partners_own() -> None:
    data = {"registrations": [
        {"registration_id": "reg_1", "party_type": "partner", "party_id": "p-1"},
        {"registration_id": "reg_7", "party_type": "partner", "party_id": "p-7"}]}
    out = redaction.data(data, P1, {"reg_1"})
    assert [r["registration_id"] for r in out["registrations"]] == ["reg_1"]


def test_mentioned_ids_finds_every_registration_reference() -> None:
    assert redaction.mentioned_ids(dispute_view()) == {"reg_1", "reg_2", "clm_1"}


def test_an_award_by_product_hides_the_competitor_that_won_a_product() -> None:
    view = {"resolution": {"outcome": "award", "awards": [
        {"product": "a", "registration_id": "reg_1"},
        {"product": "b", "registration_id": "reg_2"}]}}
    out = redaction.data(view, P1, {"reg_1"})
    assert out["resolution"]["awards"] == [{"product": "a", "registration_id": "reg_1"},
                                           {"product": "b", "registration_id": None}]
