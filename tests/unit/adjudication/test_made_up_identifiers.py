"""A made-up CRM id must not walk past the owner of the domain (review CRITICAL #1).

The same domain under another CRM id is another customer by the identifier rule, but one a
person must look at: the newcomer goes to a `possible_duplicate` review whether the two
keys land on the same intake partition (the adjudicator matches the facts itself) or on
different ones (the edge reports the domain owner's registrations, flagged)."""

from __future__ import annotations

from datetime import timedelta

from adjudication_driver import Driver, decisions, only

from shared.events import AccountLinkReported, AccountsLinked, DisputeOpened, ReportedRegistration


def _owner(d: Driver) -> None:
    [first] = decisions(d.register("reg-a", "p-1", domain="soylent.com", name="Soylent Corp",
                                   crm="001SOY", key="crm:001SOY"))
    assert first.status == "approved"


def test_a_made_up_crm_id_on_an_owned_domain_goes_to_review_on_the_same_partition() -> None:
    d = Driver()
    _owner(d)
    d.later(days=2)
    [decision] = decisions(d.register("reg-b", "p-2", domain="soylent.com",
                                      name="Soylent Corp", crm="FAKE-99", key="crm:FAKE-99"))
    assert (decision.status, decision.rule) == ("in_review", "possible_duplicate")
    assert "possible_duplicate" in decision.flags


def _report_of_owner(d: Driver, rid: str) -> AccountLinkReported:
    return AccountLinkReported(
        account_key=f"crm:FAKE-{rid}", alias_key="crm:001SOY", matched_by="domain",
        registrations=(ReportedRegistration(
            registration_id="reg-a", party_type="partner", party_id="p-1", motion="resell",
            products=("analytics",), status="approved",
            submitted_at=d.now - timedelta(days=2),
            protected_until=d.now + timedelta(days=88), tier="gold"),),
        reported_at=d.now, policy_version=4, registration_id=rid, possible_duplicate=True)


def test_a_made_up_crm_id_on_an_owned_domain_goes_to_review_across_partitions() -> None:
    d = Driver()  # this partition never saw reg-a: the edge reports it, flagged
    out = d.feed(_report_of_owner(d, "reg-b"))
    assert only(out, AccountsLinked) == [] and only(out, DisputeOpened) == []
    out = d.register("reg-b", "p-2", domain="soylent.com", name="Soylent Corp",
                     crm="FAKE-99", key="crm:FAKE-reg-b")
    [decision] = decisions(out)
    assert (decision.status, decision.rule) == ("in_review", "possible_duplicate")
    [opened] = only(out, DisputeOpened)
    assert opened.reason == "possible_duplicate"
    assert set(opened.registration_ids) == {"reg-a", "reg-b"}
    assert d.state.suspects == {}  # consumed by the decision
    # The third made-up id is caught the same way: never three exclusive owners.
    d.later(days=1)
    d.feed(_report_of_owner(d, "reg-c"))
    [third] = decisions(d.register("reg-c", "p-3", domain="soylent.com", name="Soylent Corp",
                                   crm="FAKE-98", key="crm:FAKE-reg-c"))
    assert third.status != "approved"


def test_a_possible_duplicate_report_does_not_touch_a_registration_it_does_not_name() -> None:
    d = Driver()
    d.feed(_report_of_owner(d, "reg-b"))
    [other] = decisions(d.register("reg-x", "p-4", domain="initech.com", name="Initech",
                                   key="dom:initech.com"))
    assert (other.status, other.rule) == ("approved", "no_conflict")


def _decided_race_report(d: Driver, after_decision: bool) -> AccountLinkReported:
    """The edge's post-decision re-report: a name-only registration on another partition,
    found only possibly the customer of the identified one decided here."""
    return AccountLinkReported(
        account_key="dom:soylent.com", alias_key="name:US:soylent",
        matched_by="name", score=1.0,
        registrations=(ReportedRegistration(
            registration_id="reg-n", party_type="partner", party_id="p-2", motion="resell",
            products=("analytics",), status="approved", submitted_at=d.now,
            protected_until=d.now + timedelta(days=90), tier="gold"),),
        reported_at=d.now, policy_version=d.policy.version, possible_duplicate=True,
        after_decision=after_decision)


def test_a_possible_duplicate_found_after_both_were_decided_goes_to_review() -> None:
    # Rival review, session 24: racing on two partitions, both approved; the re-report
    # opens the review one after the other would have opened.
    d = Driver()
    [owner] = decisions(d.register("reg-a", "p-1", domain="soylent.com", name="Soylent Corp",
                                   key="dom:soylent.com"))
    assert owner.status == "approved"
    out = d.feed(_decided_race_report(d, after_decision=True))
    [opened] = only(out, DisputeOpened)
    assert (opened.reason, set(opened.registration_ids)) == (
        "possible_duplicate", {"reg-a", "reg-n"})
    assert only(out, AccountsLinked) == []  # only possibly the customer: nothing linked
    assert d.state.suspects == {}
    # The other racing side's report (or a later one) only refreshes the copy.
    assert only(d.feed(_decided_race_report(d, after_decision=True)), DisputeOpened) == []


def test_a_possible_duplicate_report_from_before_the_field_decides_as_before() -> None:
    d = Driver()
    decisions(d.register("reg-a", "p-1", domain="soylent.com", name="Soylent Corp",
                         key="dom:soylent.com"))
    out = d.feed(_decided_race_report(d, after_decision=False))
    assert only(out, DisputeOpened) == [] and only(out, AccountsLinked) == []
