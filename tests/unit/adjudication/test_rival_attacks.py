"""Rules a rival partner attacked (adversarial review of 6f69513): a policy edit that
changes existing protections, extensions by an inactive partner, and endless protection
through withdraw + re-register."""

from __future__ import annotations

from datetime import timedelta

from adjudication_driver import Driver, decisions, only, policy

from shared.events import ProtectionEnded, ProtectionExtended, RegistrationActionRejected

# --- a policy edit never changes an existing protection ----------------------------------


def test_a_referral_approved_non_exclusive_stays_non_exclusive_after_referral_becomes_exclusive(
) -> None:
    d = Driver()
    assert decisions(d.register("r1", "p-1", motion="referral"))[0].rule == "non_exclusive"
    d.later(days=3)
    d.publish(policy(version=5, exclusive_motions=["resell", "co_sell", "referral"]))
    [decision] = decisions(d.register("r2", "p-2", motion="resell"))
    assert (decision.status, decision.rule) == ("approved", "no_conflict")


def test_an_exclusive_owner_keeps_its_exclusivity_after_its_motion_leaves_the_list() -> None:
    d = Driver()
    assert decisions(d.register("r1", "p-1", motion="resell"))[0].status == "approved"
    d.later(days=3)
    d.publish(policy(version=5, exclusive_motions=["co_sell"]))
    [decision] = decisions(d.register("r2", "p-2", motion="co_sell"))
    assert (decision.status, decision.rule) == ("rejected", "first_submitted")
    assert [c.registration_id for c in decision.conflicts] == ["r1"]


def test_a_whole_account_protection_stays_whole_account_after_scope_narrows() -> None:
    d = Driver(policy=policy(scope="account"))
    assert decisions(d.register("r1", "p-1", products=("a",)))[0].status == "approved"
    d.later(days=3)
    d.publish(policy(version=5, scope="account_product"))
    [decision] = decisions(d.register("r2", "p-2", products=("b",)))
    assert (decision.status, decision.rule) == ("rejected", "first_submitted")


def test_a_new_account_scope_policy_overlaps_an_existing_product_protection() -> None:
    d = Driver()
    assert decisions(d.register("r1", "p-1", products=("a",)))[0].status == "approved"
    d.later(days=3)
    d.publish(policy(version=5, scope="account"))
    [decision] = decisions(d.register("r2", "p-2", products=("b",)))
    assert (decision.status, decision.rule) == ("rejected", "first_submitted")


# --- an inactive partner's protection is not extended ------------------------------------


def test_a_suspended_partner_cannot_extend_its_protection() -> None:
    d = Driver()
    [approved] = decisions(d.register("r1", "p-1"))
    d.later(days=80)
    d.partner("p-1", "suspended")
    [refused] = only(d.extend("r1"), RegistrationActionRejected)
    assert (refused.action, refused.reason) == ("extend", "partner_inactive")
    assert d.state.entries["r1"].protected_until is not None
    assert d.state.entries["r1"].extensions == 0
    assert "suspended" in refused.explanation
    # Reinstated, it may extend again.
    d.partner("p-1", "active")
    assert not only(d.extend("r1"), RegistrationActionRejected)
    assert d.state.entries["r1"].extensions == 1
    assert approved.status == "approved"


# --- withdraw + re-register does not renew protection ------------------------------------


def _extended_to_the_max_then_withdrawn(d: Driver) -> None:
    d.register("r1", "p-1")
    d.later(days=85)
    d.extend("r1")
    d.later(days=34)  # day 119 of 120
    d.withdraw("r1")


def test_withdraw_and_re_register_is_rejected_during_the_cooloff() -> None:
    d = Driver()
    _extended_to_the_max_then_withdrawn(d)
    d.later(hours=1)
    [again] = decisions(d.register("r2", "p-1"))
    assert (again.status, again.rule) == ("rejected", "reregistration_cooloff")
    assert [c.registration_id for c in again.conflicts] == ["r1"]
    assert "may register it again from" in again.explanation
    assert "(reregistration_cooloff, policy v4)" in again.explanation
    # Another partner is not barred: the account is free for it at once.
    [rival] = decisions(d.register("r3", "p-2"))
    assert (rival.status, rival.rule) == ("approved", "no_conflict")


def test_the_cooloff_is_not_dodged_by_re_registering_the_customer_under_another_key() -> None:
    d = Driver()
    _extended_to_the_max_then_withdrawn(d)
    d.later(hours=1)
    # Name-only "Acme Corp" is the acme.com customer by name: a name:US: key, same cool-off.
    [again] = decisions(d.register("r2", "p-1", domain=None, name="Acme Corp", country="US"))
    assert (again.status, again.rule) == ("rejected", "reregistration_cooloff")
    assert [c.registration_id for c in again.conflicts] == ["r1"]
    [by_crm] = decisions(d.register("r3", "p-1", crm="CRM-ACME", key="crm:CRM-ACME"))
    assert (by_crm.status, by_crm.rule) == ("rejected", "reregistration_cooloff")
    # Another partner registering it name-only is not barred.
    [rival] = decisions(d.register("r4", "p-2", domain=None, name="Acme Corp", country="US"))
    assert (rival.status, rival.rule) == ("approved", "no_conflict")


def test_re_registering_after_expiry_waits_for_the_cooloff_then_is_decided_normally() -> None:
    d = Driver(policy=policy(reregistration_cooloff="P10D"))
    d.register("r1", "p-1", products=("a",))
    d.run_until(d.now + timedelta(days=91))  # expired
    assert d.status("r1") == "expired"
    assert decisions(d.register("r2", "p-1", products=("a", "b")))[0].rule == \
        "reregistration_cooloff"
    # A disjoint scope is another deal: no cool-off.
    assert decisions(d.register("r3", "p-1", products=("c",)))[0].rule == "no_conflict"
    d.later(days=10)
    [later] = decisions(d.register("r4", "p-1", products=("a",)))
    assert (later.status, later.rule) == ("approved", "no_conflict")


def test_cooloff_can_be_turned_off_and_a_win_starts_none() -> None:
    d = Driver(policy=policy(reregistration_cooloff=None))
    _extended_to_the_max_then_withdrawn(d)
    assert decisions(d.register("r2", "p-1"))[0].rule == "no_conflict"
    d2 = Driver()
    d2.register("r1", "p-1")
    d2.later(days=5)
    d2.close("r1", "won")
    assert decisions(d2.register("r2", "p-1"))[0].rule == "no_conflict"



def test_withdrawing_a_registration_still_in_review_starts_no_cooloff() -> None:
    d = Driver()
    d.register("r1", "p-1")
    d.later(hours=1)
    assert decisions(d.register("r2", "p-2"))[0].status == "in_review"  # a tie
    d.withdraw("r2", "p-2")
    d.later(days=3)
    d.withdraw("r1", "p-1")  # r1 was approved: p-1 cools off, p-2 does not
    assert decisions(d.register("r3", "p-2"))[0].rule == "no_conflict"
    assert decisions(d.register("r4", "p-1"))[0].rule == "reregistration_cooloff"


def test_repeated_contests_do_not_keep_a_protection_alive() -> None:
    # From day 80 a rival files a throwaway registration every 12 days and contests its
    # rejection: each open dispute used to hold reg-a, each resolution to add the grace.
    d = Driver()
    d.register("reg-a", "p-1")
    start = d.now
    d.later(days=80)
    for i in range(15):
        d.register(f"t{i}", "p-2")
        d.contest(f"t{i}", "p-2", f"dsp-c{i}")
        d.later(days=12)
    d.run_until(d.now)
    [ended] = [e for e in only(d.log, ProtectionEnded) if e.registration_id == "reg-a"]
    # One dispute may carry it past its end (the first: resolved, then dispute_grace).
    bound = start + d.policy.protection_period + d.policy.dispute_grace
    assert ended.ended_at <= bound
    held = [e for e in only(d.log, ProtectionExtended) if e.registration_id == "reg-a"]
    assert all(e.protected_until <= bound for e in held)


def test_tie_explanations_do_not_tell_how_many_rivals_there_are() -> None:
    texts = []
    for rivals in (1, 3):
        d = Driver()
        for i in range(rivals):
            d.register(f"r{i}", f"p-{i + 1}")
            d.later(minutes=5)
        [decision] = decisions(d.register("new", "p-9"))
        assert decision.rule == "tie"
        texts.append(decision.explanation.replace(decision.dispute_id, "D"))
    assert texts[0].split(" so dispute")[0] == texts[1].split(" so dispute")[0]
    assert "3" not in texts[1].split(" so dispute")[0]
