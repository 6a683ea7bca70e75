"""The same name under another CRM id, no domains to compare (session 26, rival review):
two customers -- never one key, never linked -- but a `possible_duplicate` review, and a
person's award there decides like the same domain under another CRM id: the winner
stands, the other is taken away (`separate_customers` with the pair's names:
services/adjudication/domain/disputes.py `_conflict`). Before the settlement weighed the
names, identifiers alone "separated" the two, so an award to the holder left the made-up
CRM id approved beside it."""

from __future__ import annotations

import pytest
from adjudication_driver import Driver, decisions, policy


def _holder_and_rival(holder_domain: str | None = None, rival_domain: str | None = None,
                      rival_name: str = "Zorblax") -> Driver:
    d = Driver(policy=policy())
    [holder] = decisions(d.register("h", "p-1", domain=holder_domain, name="Zorblax",
                                    country="US", crm="ACC-1001", key="crm:ACC-1001"))
    assert (holder.status, holder.rule) == ("approved", "no_conflict")
    d.later(days=1)
    decisions(d.register("r", "p-2", domain=rival_domain, name=rival_name, country="US",
                         crm="FAKE-9", key="crm:FAKE-9"))
    return d


@pytest.mark.parametrize("award_to, lost", [("h", "r"), ("r", "h")])
@pytest.mark.parametrize("rival_domain", [None, "zorblax.io"])
def test_an_award_in_the_review_takes_the_other_away(award_to: str, lost: str,
                                                     rival_domain: str | None) -> None:
    d = _holder_and_rival(rival_domain=rival_domain)
    h, r = d.state.entries["h"], d.state.entries["r"]
    assert r.status == "in_review"
    assert r.account_key != h.account_key
    assert r.account_key not in d.state.cluster(h.account_key)
    [review] = d.state.disputes.values()
    assert (review.reason, sorted(review.member_ids)) == ("possible_duplicate", ["h", "r"])
    d.resolve(review.id, "award", actor=review.owner_id, registration_id=award_to)
    assert (d.status(award_to), d.status(lost)) == ("approved", "rejected")
    assert d.state.entries["r"].account_key not in d.state.cluster(h.account_key)


def test_distinct_keeps_both_as_two_customers() -> None:
    d = _holder_and_rival()
    [review] = d.state.disputes.values()
    d.resolve(review.id, "distinct", actor=review.owner_id)
    assert (d.status("h"), d.status("r")) == ("approved", "approved")
    assert d.state.entries["r"].account_key not in d.state.cluster("crm:ACC-1001")


def test_two_domains_or_two_names_stay_apart_unseen() -> None:
    d = _holder_and_rival(holder_domain="zorblax.com", rival_domain="zorblax.io")
    assert d.status("r") == "approved" and not d.state.disputes
    d = _holder_and_rival(rival_name="Quintavex")
    assert d.status("r") == "approved" and not d.state.disputes


def test_a_key_carrying_a_domain_is_judged_with_it_at_intake_as_at_settlement() -> None:
    """Rival 3 (session 26): the rival's CRM id key already carries a throwaway domain (an
    earlier registration on another product); submitted again by name with no domain, intake
    judged the submission alone ("no domains on both sides": a review), while the settlement
    weighs the key's customer (two domains: never a conflict), so a person's award to the
    holder left the rival approved. Intake now asks the key's customer too: two domains,
    apart unseen, as `test_two_domains_or_two_names_stay_apart_unseen` -- and no review
    whose award nothing would follow."""
    d = Driver(policy=policy())
    decisions(d.register("h", "p-1", domain="zorblax.com", name="Zorblax", country="US",
                         crm="ACC-1001", key="crm:ACC-1001"))
    d.later(days=1)
    decisions(d.register("f", "p-2", domain="throwaway.io", name="Quintavex", country="US",
                         crm="FAKE-9", key="crm:FAKE-9", products=("crm",)))
    d.later(days=1)
    decisions(d.register("r", "p-2", domain=None, name="Zorblax", country="US",
                         crm="FAKE-9", key="crm:FAKE-9"))
    reviews = [v for v in d.state.disputes.values() if "h" in v.member_ids]
    for review in reviews:  # before the fix: one, and the award to "h" was ignored
        d.resolve(review.id, "award", actor=review.owner_id, registration_id="h")
        assert d.status("r") == "rejected"
    assert not reviews
    assert (d.status("h"), d.status("r")) == ("approved", "approved")
