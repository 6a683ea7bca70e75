"""Invariant 6 for a copy from another partition in a settled possible-duplicate review.

The edge reports a copy of another partition's registration as possibly the customer of
a newcomer here (`AccountLinkReported.possible_duplicate`, how they matched: say `name`,
1.0). The newcomer goes to a `possible_duplicate` review whose evidence says so. The copy's
key is filed on its own partition, so a settlement cannot weigh the two keys' customers
(`outcomes.UNFILED`): it used to name the copy by the decided one's key form -- a newcomer
filed by its CRM id alone said `crm_account_id` of a copy that has no CRM id at all
(`CustomerRules`, session 28). The review keeps the edge's report (`Dispute.reported`),
and the settlement names the copy by it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from adjudication_driver import Driver, decisions, only

from shared.events import AccountLinkReported, DisputeOpened, ReportedRegistration


def _report(d: Driver, rid: str, copy: str, key: str, party: str = "partner",
            who: str = "p-5") -> AccountLinkReported:
    return AccountLinkReported(
        account_key="crm:AF2E", alias_key=key, matched_by="name", score=1.0,
        registrations=(ReportedRegistration(
            registration_id=copy, party_type=party, party_id=who, motion="resell",
            products=("analytics",), status="approved",
            submitted_at=d.now - timedelta(days=2),
            protected_until=d.now + timedelta(days=88), tier="gold"),),
        reported_at=d.now, policy_version=d.policy.version, registration_id=rid,
        possible_duplicate=True)


def test_a_settled_review_names_a_copy_by_the_edges_report_not_the_key_form() -> None:
    d = Driver()
    # P-05's "Wells International LLC" on another partition, reported ahead of P-02's
    # filing of the same name by a CRM id only (another key, another partition).
    d.feed(_report(d, "reg-b", "reg-a", "dom:wells-international2.com"))
    out = d.register("reg-b", "p-2", domain=None, name="Wells International LLC",
                     country=None, crm="AF2E", key="crm:AF2E")
    [intake] = decisions(out, "reg-b")
    assert (intake.status, intake.rule) == ("in_review", "possible_duplicate")
    said = [(c.registration_id, c.matched_by, c.score, c.confident) for c in intake.conflicts]
    assert said == [("reg-a", "name", 1.0, False)]
    [opened] = only(out, DisputeOpened)
    assert d.state.suspects == {}  # the report is consumed by the decision ...
    for outcome in ("co_sell",):
        settled = d.resolve(opened.dispute_id, outcome)
        [decision] = decisions(settled, "reg-b")
        assert decision.rule == "dispute_resolution"
        # ... yet the settlement still says how the two met: by name, not by a CRM id
        # the copy never had.
        assert [(c.registration_id, c.matched_by, c.score, c.confident)
                for c in decision.conflicts] == said, decision


@pytest.mark.parametrize("copies", [2, 4])
@pytest.mark.parametrize("outcome", ["co_sell", "award"])
def test_every_decision_of_a_settlement_names_the_reported_copies_as_reported(
        copies: int, outcome: str) -> None:
    """The same with several copies (past `outcomes._FEW` members the settlement shares
    items between decisions), each reported on its own key (two by name at 1.0 and 0.9,
    the rest by a domain of their own: no identifier the newcomer has), and both ways
    round: an award to the newcomer rejects the copies, whose decisions name it by the
    same report."""
    d = Driver()
    reports = {f"reg-{i}": (f"dom:wells-{i}.com", "name", 1.0 if i % 2 else 0.9)
               for i in range(1, copies + 1)}
    for copy, (key, _, score) in reports.items():
        report = _report(d, "reg-b", copy, key, who=f"p-{copy}")
        d.feed(report.model_copy(update={"score": score}))
    out = d.register("reg-b", "p-2", domain=None, name="Wells International LLC",
                     country=None, crm="AF2E", key="crm:AF2E")
    [intake] = decisions(out, "reg-b")
    want = {copy: ("name", score, False) for copy, (_, _, score) in reports.items()}
    assert {c.registration_id: (c.matched_by, c.score, c.confident)
            for c in intake.conflicts} == want
    [opened] = only(out, DisputeOpened)
    settled = d.resolve(opened.dispute_id, outcome,
                        registration_id="reg-b" if outcome == "award" else None)
    [decision] = decisions(settled, "reg-b")
    assert {c.registration_id: (c.matched_by, c.score, c.confident)
            for c in decision.conflicts} == want
    if outcome == "award":
        for copy, item in want.items():
            [lost] = decisions(settled, copy)
            assert lost.status == "rejected"
            [named] = [c for c in lost.conflicts if c.registration_id == "reg-b"]
            assert (named.matched_by, named.score, named.confident) == item, lost
