"""Session 21 rival review: an award spares only members identifiers truly separate.

`disputes._conflict` lets a member keep (or gain) its approval through an award it lost
when identifiers say it is another customer than every winner. A rival games that with an
identifier that contradicts the owner's while another agrees (the owner's domain under a
made-up CRM id): identifiers call it "another customer", yet the sameness rule sends it to
a person precisely because one identifier agrees. A person who then awards the owner has
said which customer wins; the made-up id must not keep a second approval.
Each test drives the real `decide` through the worker-like driver.
"""

from __future__ import annotations

from datetime import timedelta

from adjudication_driver import Driver, decisions, only

from services.adjudication.domain import dispute_id_for
from shared.events import (
    AccountLinkReported,
    DisputeOpened,
    DisputeResolved,
    ReportedRegistration,
)


def _made_up_crm_review() -> Driver:
    d = Driver()
    [owner] = decisions(d.register("reg-a", "p-1", domain="soylent.com", name="Soylent Corp",
                                   crm="001SOY", key="crm:001SOY"))
    assert owner.status == "approved"
    d.later(days=2)
    out = d.register("reg-b", "p-2", domain="soylent.com", name="Soylent Corp",
                     crm="FAKE-99", key="crm:FAKE-99")
    [opened] = only(out, DisputeOpened)
    assert set(opened.registration_ids) == {"reg-a", "reg-b"}
    return d


def test_award_to_the_owner_rejects_a_made_up_crm_id_on_its_domain() -> None:
    d = _made_up_crm_review()
    out = d.resolve(dispute_id_for("reg-b"), "award", registration_id="reg-a")
    [resolved] = only(out, DisputeResolved)
    assert resolved.approved_ids == ("reg-a",)
    assert (d.status("reg-a"), d.status("reg-b")) == ("approved", "rejected")


def test_award_to_the_made_up_crm_id_takes_the_owner_away() -> None:
    d = _made_up_crm_review()
    d.resolve(dispute_id_for("reg-b"), "award", registration_id="reg-b")
    assert (d.status("reg-a"), d.status("reg-b")) == ("rejected", "approved")


def test_split_with_a_made_up_crm_id_shares_credit_not_a_second_exclusive_owner() -> None:
    d = _made_up_crm_review()
    out = d.resolve(dispute_id_for("reg-b"), "split", splits={"reg-a": 100})
    [resolved] = only(out, DisputeResolved)
    assert resolved.approved_ids == ("reg-a",)
    assert d.status("reg-b") == "rejected"


def _report_of_owner(d: Driver, rid: str) -> AccountLinkReported:
    return AccountLinkReported(
        account_key=f"crm:FAKE-{rid}", alias_key="crm:001SOY", matched_by="domain",
        registrations=(ReportedRegistration(
            registration_id="reg-a", party_type="partner", party_id="p-1", motion="resell",
            products=("analytics",), status="approved",
            submitted_at=d.now - timedelta(days=2),
            protected_until=d.now + timedelta(days=88), tier="gold"),),
        reported_at=d.now, policy_version=4, registration_id=rid, possible_duplicate=True)


def test_award_to_a_mirrored_owner_rejects_a_made_up_crm_id_across_partitions() -> None:
    d = Driver()
    d.feed(_report_of_owner(d, "reg-b"))
    out = d.register("reg-b", "p-2", domain="soylent.com", name="Soylent Corp",
                     crm="FAKE-99", key="crm:FAKE-reg-b")
    [opened] = only(out, DisputeOpened)
    d.later(hours=1)
    d.resolve(opened.dispute_id, "award", registration_id="reg-a")
    assert d.status("reg-b") == "rejected"
