"""`match.name_only: review` (the default): a name-only registration cannot squat every
same-name company (review HIGH #2). A confident name match where exactly one side has an
identifier is a possible duplicate for a person, not a precedence collision."""

from __future__ import annotations

from adjudication_driver import Driver, decisions, only, policy

from shared.events import AccountsLinked, DisputeOpened
from shared.policy import Policy


def _squatted() -> Driver:
    d = Driver()
    [squat] = decisions(d.register("sq", "p-9", domain=None, name="Acme Corp", country="US"))
    assert (squat.status, squat.rule) == ("approved", "no_conflict")
    d.later(days=3)
    return d


def test_a_name_only_registration_does_not_reject_identified_same_name_companies() -> None:
    d = _squatted()
    out = d.register("r1", "p-1", domain="acme.com")
    [decision] = decisions(out)
    assert (decision.status, decision.rule) == ("in_review", "possible_duplicate")
    [opened] = only(out, DisputeOpened)
    assert opened.reason == "possible_duplicate"
    assert only(out, AccountsLinked) == []  # nothing linked until a person decides
    for rid, partner, domain, crm in (("r2", "p-2", "acme.io", None),
                                      ("r3", "p-3", "acmecorp.de", "CRM-DE-1")):
        d.later(days=1)
        [other] = decisions(d.register(rid, partner, domain=domain, crm=crm,
                                       key=f"crm:{crm}" if crm else None))
        assert other.status != "rejected", other


def test_distinct_approves_both_sides_of_a_name_only_review() -> None:
    d = _squatted()
    out = d.register("r1", "p-1", domain="acme.com")
    [opened] = only(out, DisputeOpened)
    d.resolve(opened.dispute_id, "distinct")
    assert d.status("r1") == d.status("sq") == "approved"


def test_under_decide_the_name_still_makes_them_one_customer() -> None:
    d = Driver(policy=policy(match={"name_only": "decide"}))
    d.register("sq", "p-9", domain=None, name="Acme Corp", country="US")
    d.later(days=3)
    [decision] = decisions(d.register("r1", "p-1", domain="acme.com"))
    assert (decision.status, decision.rule) == ("rejected", "first_submitted")


def test_policies_published_before_the_option_read_as_decide() -> None:
    old = Policy.from_published({"version": 3, "match": {"name_threshold": 0.9,
                                                         "review_band": 0.1}})
    assert old.match.name_only == "decide"
    assert Policy.from_published({"version": 3}).match.name_only == "decide"
    assert Policy.default().match.name_only == "review"
