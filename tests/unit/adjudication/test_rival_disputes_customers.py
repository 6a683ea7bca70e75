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

from datetime import datetime, timedelta
from typing import Any

from adjudication_driver import Driver, decisions, only

from services.adjudication import snapshots
from services.adjudication.domain import (
    DecisionContext,
    decide,
    dispute_id_for,
    policy_version_of,
)
from shared.eventlog import TopicPartition
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


# --- replay: a state restored mid-dispute settles exactly as the uninterrupted one --------


class _Recording(Driver):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[tuple[Any, datetime]] = []

    def _decide(self, event: Any, moment: datetime) -> list[Any]:
        self.inputs.append((event, moment))
        return super()._decide(event, moment)


def _chained_with_a_made_up_id(d: Driver) -> str:
    """r1 and r2 are different customers (domains and CRM ids); the name-only "Soymifcorp
    Inc" is a review-band match of both, so its review chains them; r4 then files r2's
    domain under a made-up CRM id and, one identifier agreeing, joins as a possible
    duplicate of r2."""
    d.register("r1", "p-1", domain="osmifcorp.com", name="Osmifcorp LLC", country="GB",
               crm="CRM-O", key="crm:CRM-O")
    d.register("r2", "p-2", domain="soymecorp.com", name="Soymecorp GmbH", country="GB",
               crm="CRM-S", key="crm:CRM-S")
    d.later(days=3)
    [opened] = only(d.register("r3", "p-3", domain=None, name="Soymifcorp Inc",
                               country="GB"), DisputeOpened)
    d.later(hours=2)
    [r4] = decisions(d.register("r4", "p-4", domain="soymecorp.com", name="Soymecorp GmbH",
                                country="GB", crm="FAKE-4", key="crm:FAKE-4"))
    assert (r4.status, r4.rule) == ("in_review", "possible_duplicate")
    d.later(hours=2)
    return str(opened.dispute_id)


def test_award_keeps_the_other_customer_and_rejects_its_made_up_crm_twin() -> None:
    d = Driver()
    dispute = _chained_with_a_made_up_id(d)
    assert set(d.state.disputes[dispute].member_ids) == {"r1", "r2", "r3", "r4"}
    d.resolve(dispute, "award", registration_id="r1")
    # r2 is another customer than r1 and keeps; r4 (r2's domain under a made-up id) does
    # not become a second owner of soymecorp.com; r3 may be r1's customer.
    assert [d.status(r) for r in ("r1", "r2", "r3", "r4")] == [
        "approved", "approved", "rejected", "rejected"]


def test_a_state_restored_mid_dispute_settles_as_the_uninterrupted_one() -> None:
    d = _Recording()
    dispute = _chained_with_a_made_up_id(d)
    cut = len(d.inputs)
    tp = TopicPartition("t.intake", 0)
    restored, covers = snapshots.decode(snapshots.encode(d.state, tp, cut), tp, cut)
    assert covers == cut
    d.resolve(dispute, "award", registration_id="r1")
    d.run_until(d.now + timedelta(days=100))
    again: list[Any] = []
    for i, (event, moment) in enumerate(d.inputs[cut:], cut + 1):
        version = policy_version_of(event)
        context = DecisionContext(f"e{i}", moment,
                                  d.policies[version] if version is not None else None)
        again += decide(restored, event, context)[1]
    assert [e.model_dump() for e in again] == [e.model_dump() for e in d.log[-len(again):]]
    assert any(isinstance(e, DisputeResolved) for e in again)
    assert len(again) == len(d.log) - _before(d, cut)


def _before(d: _Recording, cut: int) -> int:
    replay = Driver()
    for event, moment in d.inputs[:cut]:
        replay._decide(event, moment)
    return len(replay.log)
