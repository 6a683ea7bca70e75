"""A party's own registration reported from another partition is never its rival here
(DESIGN.md, invariant 5: "A dispute has two live parties or is closed").

Found by `RecentRules` at 60 examples (session 28; failing on main before session 28's
changes): p-04 won a race by CRM id (its rival's partner had exited), then raced by domain
and won again; the re-report brought p-04's own CRM registration to the domain's
partition as a copy, and a `cross_key` review opened between p-04 and itself. One party
from the start, nothing ever made it moot: it waited open with one live party."""

from __future__ import annotations

from datetime import UTC, datetime

from adjudication_driver import Driver, only

from shared.events import AccountLinkReported, AccountsLinked, DisputeOpened, ReportedRegistration


def _report(d: Driver, *rows: tuple[str, str]) -> AccountLinkReported:
    return AccountLinkReported(
        account_key="dom:umbrella.com",
        alias_key="crm:U-1",
        matched_by="crm_account_id",
        registrations=tuple(
            ReportedRegistration(registration_id=rid, party_type="partner", party_id=partner,
                                 motion="resell", products=("analytics",), status="approved",
                                 submitted_at=datetime(2025, 1, 6, 8, tzinfo=UTC))
            for rid, partner in rows),
        reported_at=d.now,
        policy_version=d.policy.version,
    )


def test_a_party_s_own_copy_opens_no_review_beside_its_approval() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="umbrella.com", name="Umbrella")
    out = d.feed(_report(d, ("x1", "p-1")))  # p-1's own registration under its CRM id
    assert [link.canonical_key for link in only(out, AccountsLinked)] == ["dom:umbrella.com"]
    assert only(out, DisputeOpened) == []
    assert [x for x in d.state.disputes.values() if x.status == "open"] == []


def test_a_review_of_copies_weighs_only_the_other_party_s() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="umbrella.com", name="Umbrella")
    out = d.feed(_report(d, ("x1", "p-1"), ("x9", "p-9")))
    [opened] = only(out, DisputeOpened)
    assert opened.reason == "cross_key"
    assert set(opened.registration_ids) == {"r1", "x9"}  # two parties, p-1's copy not drawn
