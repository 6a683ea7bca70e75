"""Account matching inside adjudication: fuzzy names, the review band, the cross-key race.

These exercise linking by name, so they run under `match.name_only: decide` (a name decides
between a name-only and an identified account, as before that option); the default
`review` is covered in test_name_only_matches.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adjudication_driver import Driver as _Driver
from adjudication_driver import decisions, only, policy
from adjudication_workload import generate, replay

from services.adjudication.domain import DecisionContext, decide
from services.adjudication.domain.instants import from_us
from shared.events import (
    AccountLinkReported,
    AccountsLinked,
    AccountsUnlinked,
    DisputeOpened,
    ProtectionExtended,
    ReportedRegistration,
)


def Driver() -> _Driver:
    return _Driver(policy=policy(match={"name_only": "decide"}))


def test_same_customer_under_two_keys_is_caught_by_name_and_linked() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="globex.com", name="Globex Corporation", country="US")
    d.later(hours=1)  # within the tie window: r2 stays active (in review)
    out = d.register("r2", "p-2", domain=None, name="GLOBEX Corp.", country="USA",
                     key="name:US:globex")
    [link] = only(out, AccountsLinked)
    assert (link.account_key, link.canonical_key, link.matched_by, link.registration_id) == (
        "name:US:globex", "dom:globex.com", "name", "r2")
    [decision] = decisions(out)
    assert (decision.status, decision.rule) == ("in_review", "tie")
    [conflict] = decision.conflicts
    assert conflict.account_key == "dom:globex.com"
    assert conflict.matched_by == "name"
    # The link is announced once; later collisions between the keys do not repeat it.
    d.later(days=1)
    assert only(d.register("r3", "p-3", domain=None, name="Globex", country="US",
                           key="name:US:globex"), AccountsLinked) == []


def test_a_rejected_registration_links_nothing() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="globex.com", name="Globex Corporation", country="US")
    d.later(days=2)
    out = d.register("r2", "p-2", domain=None, name="GLOBEX Corp.", country="USA",
                     key="name:US:globex")
    assert decisions(out)[0].rule == "first_submitted"
    assert only(out, AccountsLinked) == []
    assert d.state.links == {}


def test_same_crm_id_under_two_keys_is_one_customer() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="initech.com", crm="CRM-7")
    d.later(days=2)
    out = d.register("r2", "p-2", domain=None, name="Something Else", crm="CRM-7",
                     key="crm:CRM-7")
    assert decisions(out)[0].rule == "first_submitted"
    assert decisions(out)[0].conflicts[0].matched_by == "crm_account_id"


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


# --- issue 12, defect 2: links are facts with a lifetime, followed transitively -----------


def _acme_corp_linked_to_acme_com() -> Driver:
    """A name-only "Acme Corp" registration held in review beside acme.com's: the name key
    is linked to dom:acme.com, justified by r2."""
    d = Driver()
    d.register("r1", "p-1", domain="acme.com", name="Acme Corp", country="US")
    d.later(hours=1)
    out = d.register("r2", "p-2", domain=None, name="Acme Corp", country="US",
                     key="name:US:acme")
    assert [(x.account_key, x.canonical_key) for x in only(out, AccountsLinked)] == [
        ("name:US:acme", "dom:acme.com")]
    return d


def test_a_name_linked_to_one_domain_does_not_capture_another_domain() -> None:
    d = _acme_corp_linked_to_acme_com()
    d.later(days=2)
    out = d.register("r3", "p-3", domain="acme.io", name="Acme Corp", country="US")
    [decision] = decisions(out)
    assert (decision.status, decision.rule) == ("approved", "no_conflict")
    assert decision.conflicts == ()
    assert only(out, AccountsLinked) == []
    assert d.state.cluster("dom:acme.io") == ["dom:acme.io"]


def test_a_link_ends_with_the_registration_that_justified_it() -> None:
    d = _acme_corp_linked_to_acme_com()
    d.later(hours=2)
    out = d.withdraw("r2", "p-2")
    [unlinked] = only(out, AccountsUnlinked)
    assert (unlinked.account_key, unlinked.canonical_key, unlinked.registration_id) == (
        "name:US:acme", "dom:acme.com", "r2")
    assert d.state.links == {} and d.state.link_facts == {}
    assert d.state.cluster("name:US:acme") == ["name:US:acme"]


def test_a_link_another_active_registration_also_shows_survives_the_first() -> None:
    d = _acme_corp_linked_to_acme_com()
    d.later(hours=1)
    d.register("r3", "p-3", domain=None, name="Acme Corp", country="US", key="name:US:acme",
               motion="referral")
    out = d.withdraw("r2", "p-2")
    assert only(out, AccountsUnlinked) == []
    assert d.state.cluster("name:US:acme") == ["name:US:acme", "dom:acme.com"]


def test_links_are_followed_through_a_chain_of_keys() -> None:
    # name:US:zeta <-> crm:C1 <-> dom:acme.com, each link shown by an active referral.
    d = Driver()
    d.register("r1", "p-1", domain="acme.com", name="Omega Systems", crm="C1")
    d.later(days=1)
    d.register("r2", "p-2", domain=None, name="Zeta", crm="C1", key="crm:C1",
               motion="referral")
    d.register("r3", "p-3", domain=None, name="Zeta", key="name:US:zeta", motion="referral")
    assert d.state.cluster("name:US:zeta") == ["name:US:zeta", "crm:C1", "dom:acme.com"]
    d.later(days=1)
    # A registration filed under the name key whose own facts match nothing else: only
    # the chain of links says it is acme.com's customer, where r1 is the exclusive owner.
    [decision] = decisions(d.register("r4", "p-4", domain=None, name="Zeta Group Holdings",
                                      key="name:US:zeta"))
    assert (decision.status, decision.rule) == ("rejected", "first_submitted")
    assert [c.registration_id for c in decision.conflicts] == ["r1"]


def test_a_link_never_joins_two_domains() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="acme.com", name="Acme Corp", country="US")
    d.register("r2", "p-2", domain="acme.io", name="Acme Corp", country="US")
    d.later(hours=1)
    # A name-only Acme Corp matches both by name; it may join one, never both.
    out = d.register("r3", "p-3", domain=None, name="Acme Corp", country="US",
                     key="name:US:acme", motion="referral")
    links = only(out, AccountsLinked)
    assert [x.canonical_key for x in links] == ["dom:acme.com"]
    assert "dom:acme.io" not in d.state.cluster("name:US:acme")
    assert not d.state.link("name:US:acme", "dom:acme.io")


def test_no_link_in_a_random_workload_joins_different_identifiers() -> None:
    log, _ = generate(4000, seed=7)
    state, recorded = replay(log)
    assert any(isinstance(e, AccountsLinked) for e in recorded)
    for key in state.links:
        customer = state.customer(key)
        assert len(customer.crm_ids) <= 1, (key, state.cluster(key), customer)
        assert len(customer.domains) <= 1 or customer.crm_ids, (key, state.cluster(key))


# --- issue 12, defect 4: cross-partition copies follow their original ---------------------


def _report(d: Driver, *copies: tuple[str, str, str], tier: str = "gold",
            protected_days: float | None = None) -> AccountLinkReported:
    """A snapshot of crm:U-1's registrations (id, partner, status) for dom:umbrella.com."""
    return AccountLinkReported(
        account_key="dom:umbrella.com", alias_key="crm:U-1", matched_by="crm_account_id",
        registrations=tuple(
            ReportedRegistration(
                registration_id=rid, party_type="partner", party_id=partner, motion="resell",
                products=("analytics",), status=status,  # type: ignore[arg-type]
                submitted_at=d.now - timedelta(hours=1), tier=tier,
                protected_until=(d.now + timedelta(days=protected_days)
                                 if protected_days is not None else None))
            for rid, partner, status in copies),
        reported_at=d.now, policy_version=4)


def test_a_copy_reported_in_review_does_not_guard_forever() -> None:
    d = Driver()
    d.feed(_report(d, ("x1", "p-9", "in_review")))
    d.later(days=400)
    [decision] = decisions(d.register("r1", "p-1", domain="umbrella.com", name="Umbrella"))
    assert (decision.status, decision.rule) == ("approved", "no_conflict")
    assert "x1" not in {e.id for e in d.state.active_under("crm:U-1")}


def test_an_approved_copy_ends_at_its_protection_end() -> None:
    d = Driver()
    d.feed(_report(d, ("x1", "p-9", "approved"), protected_days=30))
    d.later(days=10)
    [early] = decisions(d.register("r1", "p-1", domain="umbrella.com", name="Umbrella"))
    assert (early.status, early.rule) == ("rejected", "first_submitted")
    d.later(days=21)
    [late] = decisions(d.register("r2", "p-2", domain="umbrella.com", name="Umbrella"))
    assert (late.status, late.rule) == ("approved", "no_conflict")


def test_withdrawing_the_original_frees_its_copy() -> None:
    d = Driver()
    d.feed(_report(d, ("x1", "p-9", "approved"), protected_days=90))
    d.later(days=2)
    # The next snapshot (the edge reports ahead of every registration on the canonical key,
    # and at once on a withdrawal) no longer lists x1, or lists it withdrawn.
    for snapshot in (_report(d), _report(d, ("x1", "p-9", "withdrawn"))):
        d.feed(snapshot)
        assert d.state.active_under("crm:U-1") == []
    [decision] = decisions(d.register("r1", "p-1", domain="umbrella.com", name="Umbrella"))
    assert (decision.status, decision.rule) == ("approved", "no_conflict")
    assert d.state.links == {}  # nothing active shows the two keys to be one any more


def test_a_withdrawn_copy_leaves_the_cross_key_dispute_it_was_drawn_into() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="umbrella.com", name="Umbrella")
    [opened] = only(d.feed(_report(d, ("x1", "p-9", "approved"), protected_days=90)),
                    DisputeOpened)
    assert set(opened.registration_ids) == {"r1", "x1"}
    d.later(hours=3)
    out = d.feed(_report(d))
    assert [x.registration_id for x in decisions(out)] == ["r1"]
    assert d.state.disputes[opened.dispute_id].status != "open"


def test_a_copy_carries_its_partners_real_tier() -> None:
    d = Driver()
    d.feed(_report(d, ("x1", "p-9", "approved"), tier="platinum", protected_days=90))
    [decision] = decisions(d.register("r1", "p-1", domain="umbrella.com", name="Umbrella",
                                      tier="registered"))
    assert (decision.status, decision.rule) == ("rejected", "tier")
    assert "outranks" not in decision.explanation
    assert d.state.entries["x1"].tier == "platinum"


def test_reporting_the_same_snapshot_again_changes_nothing() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="umbrella.com", name="Umbrella")
    first = d.feed(_report(d, ("x1", "p-9", "approved"), protected_days=90))
    assert only(first, DisputeOpened)
    d.later(minutes=5)
    assert d.feed(_report(d, ("x1", "p-9", "approved"), protected_days=90)) == []


def test_a_made_up_crm_id_does_not_walk_past_the_domains_owner() -> None:
    # Different CRM ids are different customers (the second gets its own key at the edge),
    # but the shared domain is shown to a person rather than ignored.
    d = Driver()
    d.register("r1", "p-1", domain="initech.com", name="Initech", crm="CRM-REAL")
    d.later(days=2)
    out = d.register("r2", "p-2", domain="initech.com", name="Initech", crm="CRM-FAKE",
                     key="crm:CRM-FAKE")
    [decision] = decisions(out)
    assert (decision.status, decision.rule) == ("in_review", "possible_duplicate")
    assert [(c.registration_id, c.confident) for c in decision.conflicts] == [("r1", False)]
    assert only(out, AccountsLinked) == []


def test_a_refreshed_copy_keeps_guarding_with_one_lease_timer() -> None:
    d = Driver()
    for _ in range(10):
        d.feed(_report(d, ("x1", "p-9", "in_review")))
        d.later(days=6)
    assert sum(1 for item in d.state.timers if item[2:4] == ("copy_lease", "x1")) == 1
    d.later(days=80)  # 140 days after the first report, 86 after the last
    [decision] = decisions(d.register("r1", "p-1", domain="umbrella.com", name="Umbrella"))
    assert (decision.status, decision.rule) == ("rejected", "first_submitted")
    assert [c.registration_id for c in decision.conflicts] == ["x1"]


def test_a_copy_reported_ended_is_not_revived_by_a_lagging_snapshot() -> None:
    d = Driver()
    d.feed(_report(d, ("x1", "p-9", "approved"), protected_days=90))
    d.feed(_report(d, ("x1", "p-9", "withdrawn")))
    d.later(minutes=1)  # the read model behind the next report has not seen it yet
    d.feed(_report(d, ("x1", "p-9", "approved"), protected_days=90))
    assert d.state.active_under("crm:U-1") == []


def test_a_partial_snapshot_ends_no_copy_it_does_not_list() -> None:
    d = Driver()
    d.feed(_report(d, ("x1", "p-9", "approved"), protected_days=90))
    partial = _report(d, ("x2", "p-8", "approved"), protected_days=90).model_copy(
        update={"partial": True})
    d.feed(partial)
    assert [e.id for e in d.state.active_under("crm:U-1")] == ["x1", "x2"]


def test_an_extended_original_brings_its_expired_copy_back() -> None:
    d = Driver()
    d.feed(_report(d, ("x1", "p-9", "approved"), protected_days=10))
    d.later(days=11)
    assert decisions(d.register("r1", "p-1", domain="umbrella.com", name="Umbrella")
                     )[0].rule == "no_conflict"
    d.feed(_report(d, ("x1", "p-9", "approved"), protected_days=30))  # extended there
    assert [e.id for e in d.state.active_under("crm:U-1")] == ["x1"]


def test_incumbency_follows_the_account_links_of_the_customer() -> None:
    """A win recorded under dom:acme.com makes p-1 the incumbent of the customer, also
    when a later registration is filed under the name key linked to it."""
    d = Driver()
    d.register("r1", "p-3", domain=None, name="Acme Corp", country="US")
    out = d.register("rx", "p-1")
    assert only(out, AccountsLinked), out
    [opened] = only(out, DisputeOpened)
    d.later(hours=1)
    d.resolve(opened.dispute_id, "award", registration_id="rx")
    assert d.status("rx") == "approved"
    d.close("rx", "won")
    assert d.state.won_within(("dom:acme.com",), "p-1", 0, 2**62)
    d.later(days=30)
    [second] = decisions(d.register("r2", "p-2", domain=None, name="Acme Corp", country="US"))
    assert second.status == "approved", second
    d.later(days=2)
    [third] = decisions(d.register("r3", "p-1", domain=None, name="Acme Corp", country="US"))
    assert (third.status, third.rule) == ("in_review", "incumbent"), third


def test_a_dispute_here_never_carries_a_copys_protection_past_its_end() -> None:
    """A copy's protection is its own partition's to keep, extend or end: an open dispute
    here holds it no longer than its end, and a split giving it a new share moves no end
    (either would show readers an end that its own partition's expiry then contradicts,
    invariant 2)."""
    for settle in (False, True):
        d = Driver()
        d.register("r1", "p-1", domain="umbrella.com", name="Umbrella")
        [opened] = only(d.feed(_report(d, ("x1", "p-9", "approved"), protected_days=3)),
                        DisputeOpened)
        end = d.state.entries["x1"].protected_until
        d.later(days=1)
        if settle:
            out = d.resolve(opened.dispute_id, "split", splits={"x1": 60, "r1": 40})
            [share] = decisions(out, "x1")
            assert (share.credit_percent, share.protected_until) == (60, from_us(end))
        d.later(days=4)  # past the copy's end, the dispute still open (or just settled)
        d.register("r9", "p-2", domain="elsewhere.com", name="Elsewhere")  # time passes
        assert [e for e in d.log if isinstance(e, ProtectionExtended)] == [], settle


def test_a_refreshed_copy_guards_the_products_its_report_lists_now() -> None:
    """An award by product narrowed the original on its own partition: the next snapshot
    lists what it still holds, and the copy here guards only that."""
    d = Driver()
    d.feed(_report(d, ("x1", "p-9", "approved"), protected_days=90))
    narrowed = _report(d, ("x1", "p-9", "approved"), protected_days=90)
    narrowed = narrowed.model_copy(update={"registrations": tuple(
        r.model_copy(update={"products": ("crm",)}) for r in narrowed.registrations)})
    d.later(hours=1)
    d.feed(narrowed)
    [decision] = decisions(d.register("r1", "p-1", domain="umbrella.com", name="Umbrella"))
    assert (decision.status, decision.rule) == ("approved", "no_conflict")
