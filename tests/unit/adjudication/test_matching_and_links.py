"""Account matching inside adjudication: fuzzy names, the review band, the cross-key race."""

from __future__ import annotations

from datetime import UTC, datetime

from adjudication_driver import Driver, decisions, only

from services.adjudication.domain import DecisionContext, decide
from shared.events import (
    AccountLinkReported,
    AccountsLinked,
    DisputeOpened,
    ReportedRegistration,
)


def test_same_customer_under_two_keys_is_caught_by_name_and_linked() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="globex.com", name="Globex Corporation", country="US")
    d.later(days=2)
    out = d.register("r2", "p-2", domain=None, name="GLOBEX Corp.", country="USA",
                     key="name:US:globex")
    [link] = only(out, AccountsLinked)
    assert (link.account_key, link.canonical_key, link.matched_by) == (
        "name:US:globex", "dom:globex.com", "name")
    [decision] = decisions(out)
    assert (decision.status, decision.rule) == ("rejected", "first_submitted")
    [conflict] = decision.conflicts
    assert conflict.account_key == "dom:globex.com"
    assert conflict.matched_by == "name"
    # The link is announced once; later collisions between the keys do not repeat it.
    d.later(days=1)
    assert only(d.register("r3", "p-3", domain=None, name="Globex", country="US",
                           key="name:US:globex"), AccountsLinked) == []


def test_same_crm_id_under_two_keys_is_one_customer() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="initech.com", crm="CRM-7")
    d.later(days=2)
    out = d.register("r2", "p-2", domain=None, name="Something Else", crm="CRM-7",
                     key="crm:CRM-7")
    assert only(out, AccountsLinked)[0].matched_by == "crm_account_id"
    assert decisions(out)[0].rule == "first_submitted"


def test_same_name_in_another_country_is_another_customer() -> None:
    d = Driver()
    d.register("r1", "p-1", domain=None, name="Acme Holdings", country="US", key="name:US:a")
    [decision] = decisions(d.register("r2", "p-2", domain=None, name="Acme Holdings",
                                      country="DE", key="name:DE:a"))
    assert decision.status == "approved"


def test_name_in_the_review_band_goes_to_review_as_possible_duplicate() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="microsoft.com", name="Microsoft", country="US")
    d.later(days=3)
    out = d.register("r2", "p-2", domain=None, name="Mircosoft", country="US",
                     key="name:US:mircosoft")
    [decision] = decisions(out)
    assert (decision.status, decision.rule) == ("in_review", "possible_duplicate")
    assert decision.flags == ("possible_duplicate",)
    [conflict] = decision.conflicts
    assert not conflict.confident and 0.8 <= conflict.score < 0.9
    [opened] = only(out, DisputeOpened)
    assert opened.reason == "possible_duplicate"
    assert only(out, AccountsLinked) == []
    # A person says they are different customers: both stand.
    resolved = d.resolve(opened.dispute_id, "distinct")
    assert {(x.registration_id, x.status) for x in decisions(resolved)} == {
        ("r1", "approved"), ("r2", "approved")}


def test_names_below_the_review_band_are_unrelated() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="microsoft.com", name="Microsoft", country="US")
    [decision] = decisions(d.register("r2", "p-2", domain=None, name="Macrohard",
                                      country="US", key="name:US:macrohard"))
    assert (decision.status, decision.rule) == ("approved", "no_conflict")


def test_cross_partition_link_report_opens_a_cross_key_dispute() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="umbrella.com")
    report = AccountLinkReported(
        account_key="dom:umbrella.com",
        alias_key="crm:U-1",
        matched_by="crm_account_id",
        registrations=(
            ReportedRegistration(registration_id="x9", party_type="partner", party_id="p-9",
                                 motion="resell", products=("analytics",), status="approved",
                                 submitted_at=datetime(2025, 1, 6, 8, tzinfo=UTC)),
            ReportedRegistration(registration_id="x8", party_type="partner", party_id="p-8",
                                 motion="resell", products=("other",), status="approved",
                                 submitted_at=datetime(2025, 1, 6, 8, tzinfo=UTC)),
        ),
        reported_at=d.now,
        policy_version=4,
    )
    out = d.feed(report)
    assert only(out, AccountsLinked)[0].canonical_key == "dom:umbrella.com"
    [opened] = only(out, DisputeOpened)
    assert opened.reason == "cross_key"
    assert set(opened.registration_ids) == {"x9", "r1"}
    # Once linked, a new registration under the alias key collides with the canonical one.
    d.later(days=3)
    [late] = decisions(d.register("r2", "p-2", domain=None, name="Umbrella", key="crm:U-1"))
    assert late.status == "rejected"


def test_decide_ignores_event_types_it_does_not_adjudicate() -> None:
    d = Driver()
    decided = decisions(d.register("r1"))[0]
    _, out = decide(d.state, decided, DecisionContext("x", d.now, None))
    assert out == []


def test_near_match_beside_a_confident_one_is_flagged_not_ignored() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="microsoft.com", name="Contoso", country="US")
    d.register("r2", "p-2", domain=None, name="Microsoft", country="US",
               key="name:US:microsoft")
    d.later(days=3)
    [decision] = decisions(d.register("r3", "p-3", domain="microsoft.com", name="Mircosoft",
                                      country="US"))
    assert decision.rule == "first_submitted"
    assert decision.flags == ("possible_duplicate",)
    first = decision.conflicts[0]
    assert (first.registration_id, first.confident) == ("r1", True)
    assert any(not c.confident for c in decision.conflicts)


def test_alike_names_with_different_domains_are_different_customers() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="acme.com", name="Acme Systems", country="US")
    d.later(days=2)
    out = d.register("r2", "p-2", domain="acne.io", name="Acne Systems", country="US")
    [decision] = decisions(out)
    assert (decision.status, decision.rule) == ("approved", "no_conflict")
    assert decision.flags == ()
    assert only(out, DisputeOpened) == []


def test_alike_name_without_a_domain_is_still_judged_by_its_name() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="acme.com", name="Acme Systems", country="US")
    d.later(days=2)
    out = d.register("r2", "p-2", domain=None, name="Acme Systems Inc", country="US",
                     key="name:US:acme-systems")
    [decision] = decisions(out)
    assert decision.rule == "first_submitted"
    assert decision.conflicts[0].matched_by == "name"
