"""One Salesforce account id in two spellings is one customer under `match.crm_ids:
salesforce` (the default for new policies), and stays two under `exact` (policies published
before the option), so replays of older logs decide as before."""

from __future__ import annotations

from adjudication_driver import Driver, decisions, policy

from shared.policy import Policy

ID15, ID18 = "001hFGAi3f5dig9", "001hFGAi3f5dig9QDA"
SEEN = "in_review/possible_duplicate"
"""Another customer's CRM id on the same name, no domains to compare (session 26): never
one key, never linked, but a person sees it."""


def _another_customer_for_a_person(d: Driver, award_to: str = "r1") -> None:
    """r1 and r2 were registered by `_two_spellings` as two customers: never one key and
    never linked, the second in a `possible_duplicate` review of the two, which an award
    decides (the award's winner stands, the other is rejected)."""
    r1, r2 = d.state.entries["r1"], d.state.entries["r2"]
    assert r1.account_key != r2.account_key
    assert r2.account_key not in d.state.cluster(r1.account_key)
    [review] = [x for x in d.state.disputes.values() if x.status == "open"]
    assert (review.reason, sorted(review.member_ids)) == ("possible_duplicate", ["r1", "r2"])
    d.resolve(review.id, "award", actor=review.owner_id, registration_id=award_to)
    assert {r: d.status(r) for r in ("r1", "r2")} == {
        r: "approved" if r == award_to else "rejected" for r in ("r1", "r2")}


def _two_spellings(d: Driver, other: str = ID18) -> tuple[str, str]:
    [first] = decisions(d.register("r1", "p-1", domain=None, name="Turner Ltd", country="GB",
                                   crm=ID15, key=f"crm:{ID15}"))
    d.later(days=1)
    [second] = decisions(d.register("r2", "p-2", domain=None, name="Turner Ltd",
                                    country="GB", crm=other, key=f"crm:{other}"))
    return f"{first.status}/{first.rule}", f"{second.status}/{second.rule}"


def test_a_salesforce_id_in_its_18_character_spelling_ties_with_the_15() -> None:
    d = Driver(policy=policy())
    assert d.policy.match.crm_ids == "any_spelling"  # the default, a superset for Salesforce ids
    first, second = _two_spellings(d)
    assert first == "approved/no_conflict"
    assert second == "in_review/tie"  # within the tie window of the first: a collision


def test_an_invalid_checksum_stays_another_customer() -> None:
    """An 18-character id whose checksum does not fit the 15 is another Salesforce id:
    another customer, never one key with the first. Since session 26 (rival review: any
    other CRM id on a name held with a CRM id and no domain walked past the holder) the
    same name under it goes to a person as a `possible_duplicate`, and an award decides."""
    d = Driver(policy=policy())
    d.register("r1", "p-1", domain=None, name="Turner Ltd", country="GB", crm=ID15,
               key=f"crm:{ID15}")
    d.later(days=1)
    [second] = decisions(d.register("r2", "p-2", domain=None, name="Turner Ltd",
                                    country="GB", crm="001hFGAi3f5dig9QDB",
                                    key="crm:001hFGAi3f5dig9QDB"))
    assert f"{second.status}/{second.rule}" == SEEN
    _another_customer_for_a_person(d, award_to="r2")


def test_an_older_policy_document_keeps_exact_crm_ids_on_replay() -> None:
    """Under `exact` (documents before the option) the two spellings stay two CRM ids, two
    customers: never one key. Since session 26 the second, the same name with no domains
    to compare, goes to a person (`possible_duplicate`) instead of being approved unseen
    beside the first; an award decides."""
    old = Policy.from_published({"version": 4, "match": {"name_threshold": 0.9,
                                                         "review_band": 0.1,
                                                         "name_only": "review"}})
    assert old.match.crm_ids == "exact"
    assert Policy.from_published({"version": 4}).match.crm_ids == "exact"
    replayed = Driver(policy=old)
    assert _two_spellings(replayed) == ("approved/no_conflict", SEEN)
    _another_customer_for_a_person(replayed)
    # A document that says `salesforce` keeps it.
    session23 = policy().model_dump(mode="json")
    session23["match"]["crm_ids"] = "salesforce"
    new = Policy.from_published(session23)
    assert new.match.crm_ids == "salesforce"


def test_an_upper_cased_18_character_id_is_the_same_customer_under_the_default() -> None:
    """One customer under the default (a tie on one key); under a session-23 `salesforce`
    document the upper-cased id is another CRM id, another customer (never one key), and
    since session 26 the same name with no domains to compare goes to a person as a
    `possible_duplicate` (before, it was approved unseen beside the first)."""
    # Rival review, session 24: a case-insensitive system upper-cased the 18 characters.
    assert _two_spellings(Driver(policy=policy()), ID18.upper()) == (
        "approved/no_conflict", "in_review/tie")
    # A session-23 document (`salesforce`) replays as it decided: another customer.
    session23 = policy().model_dump(mode="json")
    session23["match"]["crm_ids"] = "salesforce"
    replayed = Driver(policy=Policy.from_published(session23))
    assert _two_spellings(replayed, ID18.upper()) == ("approved/no_conflict", SEEN)
    _another_customer_for_a_person(replayed, award_to="r2")
    assert _two_spellings(Driver(policy=policy()), ID18) == _two_spellings(
        Driver(policy=Policy.from_published(session23)), ID18)
