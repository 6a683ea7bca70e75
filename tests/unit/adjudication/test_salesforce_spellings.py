"""One Salesforce account id in two spellings is one customer under `match.crm_ids:
salesforce` (the default for new policies), and stays two under `exact` (policies published
before the option), so replays of older logs decide as before."""

from __future__ import annotations

from adjudication_driver import Driver, decisions, policy

from shared.policy import Policy

ID15, ID18 = "001hFGAi3f5dig9", "001hFGAi3f5dig9QDA"


def _two_spellings(d: Driver, other: str = ID18) -> tuple[str, str]:
    [first] = decisions(d.register("r1", "p-1", domain=None, name="Turner Ltd", country="GB",
                                   crm=ID15, key=f"crm:{ID15}"))
    d.later(days=1)
    [second] = decisions(d.register("r2", "p-2", domain=None, name="Turner Ltd",
                                    country="GB", crm=other, key=f"crm:{other}"))
    return f"{first.status}/{first.rule}", f"{second.status}/{second.rule}"


def test_a_salesforce_id_in_its_18_character_spelling_ties_with_the_15() -> None:
    d = Driver(policy=policy())
    assert d.policy.match.crm_ids == "salesforce_any_case"
    first, second = _two_spellings(d)
    assert first == "approved/no_conflict"
    assert second == "in_review/tie"  # within the tie window of the first: a collision


def test_an_invalid_checksum_stays_another_customer() -> None:
    d = Driver(policy=policy())
    d.register("r1", "p-1", domain=None, name="Turner Ltd", country="GB", crm=ID15,
               key=f"crm:{ID15}")
    d.later(days=1)
    [second] = decisions(d.register("r2", "p-2", domain=None, name="Turner Ltd",
                                    country="GB", crm="001hFGAi3f5dig9QDB",
                                    key="crm:001hFGAi3f5dig9QDB"))
    assert (second.status, second.rule) == ("approved", "no_conflict")


def test_an_older_policy_document_keeps_exact_crm_ids_on_replay() -> None:
    old = Policy.from_published({"version": 4, "match": {"name_threshold": 0.9,
                                                         "review_band": 0.1,
                                                         "name_only": "review"}})
    assert old.match.crm_ids == "exact"
    assert Policy.from_published({"version": 4}).match.crm_ids == "exact"
    replayed = Driver(policy=old)
    assert _two_spellings(replayed) == ("approved/no_conflict", "approved/no_conflict")
    # A document that says `salesforce` keeps it.
    session23 = policy().model_dump(mode="json")
    session23["match"]["crm_ids"] = "salesforce"
    new = Policy.from_published(session23)
    assert new.match.crm_ids == "salesforce"


def test_an_upper_cased_18_character_id_is_the_same_customer_under_the_default() -> None:
    # Rival review, session 24: a case-insensitive system upper-cased the 18 characters.
    assert _two_spellings(Driver(policy=policy()), ID18.upper()) == (
        "approved/no_conflict", "in_review/tie")
    # A session-23 document (`salesforce`) replays as it decided: another customer.
    session23 = policy().model_dump(mode="json")
    session23["match"]["crm_ids"] = "salesforce"
    replayed = Driver(policy=Policy.from_published(session23))
    assert _two_spellings(replayed, ID18.upper()) == ("approved/no_conflict",
                                                      "approved/no_conflict")
    assert _two_spellings(Driver(policy=policy()), ID18) == _two_spellings(
        Driver(policy=Policy.from_published(session23)), ID18)
