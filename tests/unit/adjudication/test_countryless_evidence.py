"""Session 30: a settlement's name evidence weighs names by the one country rule,
`shared.accounts.index.countries_weighed` (policy `match.countryless_names`).

Under `ask` (the default since session 29) a name filed without a country *asks but does
not hold*: a later filing without a country is weighed against every country's names, a
later filing with a country is not weighed against it. The match (`AccountIndex.match`)
and the edge's fall-back query follow that rule; a settlement's evidence scores
(`AccountIndex.name_score`, `outcomes.unlinked_match`, `outcomes.Fellows`) still weighed a
name filed without a country against every country's, whoever filed first: two members
that met in one dispute only through a third, country-less filing were called a name
match (1.0) that the rule never weighed."""

from __future__ import annotations

import pytest
from adjudication_driver import Driver, decisions, only, policy

from shared.accounts.identity import AccountIdentity
from shared.accounts.index import AccountIndex
from shared.events import DisputeOpened


def _ident(name: str, country: str | None = None, *, domain: str | None = None,
           crm: str | None = None) -> AccountIdentity:
    return AccountIdentity.from_raw(name=name, country=country, domain=domain,
                                    crm_account_id=crm)


@pytest.mark.parametrize("countryless", ["ask", "hold"])
def test_a_name_score_weighs_the_later_key_s_names_by_countries_weighed(countryless: str
                                                                        ) -> None:
    mode = "ask" if countryless == "ask" else "hold"
    idx = AccountIndex()
    idx.add("crm:FAKE-1", _ident("Acme Robotics", crm="FAKE-1"))  # no country, first
    idx.add("dom:acme.com", _ident("Acme Robotics Inc", "US", domain="acme.com"))
    idx.add("crm:LATE-1", _ident("Acme Robotics", crm="LATE-1"))  # no country, later
    # The holder in the US filed after the country-less name: under `ask` never weighed
    # against it (either way round: the pair is one pair); under `hold` it was.
    for a, b in (("crm:FAKE-1", "dom:acme.com"), ("dom:acme.com", "crm:FAKE-1")):
        assert idx.name_score(a, b, countryless=mode) == (0.0 if mode == "ask" else 1.0)
    # A later filing without a country asked every country: weighed against both.
    for other in ("dom:acme.com", "crm:FAKE-1"):
        assert idx.name_score("crm:LATE-1", other, countryless=mode) == 1.0
        assert idx.name_score(other, "crm:LATE-1", countryless=mode) == 1.0
    # Without a policy the old reading (every country), as a document from before reads.
    assert idx.name_score("crm:FAKE-1", "dom:acme.com") == 1.0


@pytest.mark.parametrize("late", [0, 1])
def test_a_settlement_weighs_names_filed_without_a_country_as_the_match_does(late: int
                                                                             ) -> None:
    """X files "Acme Robotics" without a country (a made-up CRM id); H, the US holder by
    domain, is approved `no_conflict` beside it (`ask`); Z files "Acme Robotics" without a
    country and is weighed against both: one `possible_duplicate` review of three. Its
    settlement named X to H (and H to X) as a name match at 1.0, where X's name was never
    weighed against H's: 0.0 now, as the match found them; Z and each stay 1.0."""
    d = Driver(policy=policy(match={"countryless_names": "ask"}))
    d.register("x", "p-1", domain=None, name="Acme Robotics", country=None, crm="FAKE-1",
               key="crm:FAKE-1")
    d.later(minutes=1)
    d.register("h", "p-2", domain="acme.com", name="Acme Robotics Inc", country="US")
    assert d.status("h") == "approved"
    d.later(minutes=1)
    out = d.register("z", "p-3", domain=None, name="Acme Robotics", country=None,
                     crm="LATE-1", key="crm:LATE-1")
    [opened] = only(out, DisputeOpened)
    assert set(opened.registration_ids) == {"x", "h", "z"}, opened
    for n in range(late):  # more members: the settlement's shared path (`Fellows`, > 3)
        d.later(minutes=1)
        d.register(f"z{n}", f"p-{4 + n}", domain=None, name="Acme Robotics", country=None,
                   crm=f"LATE-{2 + n}", key=f"crm:LATE-{2 + n}")
        assert d.status(f"z{n}") == "in_review"
    settled = d.resolve(opened.dispute_id, "award", registration_id="z")
    named = {(rid, c.registration_id): c.score for rid in ("x", "h", "z")
             for decision in decisions(settled, rid) for c in decision.conflicts
             if c.matched_by == "name"}
    assert named[("h", "x")] == named[("x", "h")] == 0.0, named
    for pair in (("z", "h"), ("h", "z"), ("z", "x"), ("x", "z")):
        assert named[pair] == 1.0, named


@pytest.mark.parametrize("winner", ["x", "h"])
def test_an_award_takes_away_no_approval_a_country_less_name_never_weighed(winner: str
                                                                           ) -> None:
    """The same review, each of X and H with a CRM id of its own (H also a domain): the
    award to one of them took the other's approval away -- a confident name between two
    CRM ids makes them one customer where no domains on both sides say otherwise
    (`sameness.separate_customers`), and `_conflict` scored X's name against H's in every
    country. Under `ask` the two were never weighed (H was approved beside X): each keeps
    its approval; Z, which asked both, loses."""
    d = Driver(policy=policy(match={"countryless_names": "ask"}))
    d.register("x", "p-1", domain=None, name="Acme Robotics", country=None, crm="FAKE-1",
               key="crm:FAKE-1")
    d.later(minutes=1)
    d.register("h", "p-2", domain="acme.com", name="Acme Robotics Inc", country="US",
               crm="H-1", key="crm:H-1")
    assert d.status("h") == "approved"
    d.later(minutes=1)
    out = d.register("z", "p-3", domain=None, name="Acme Robotics", country=None,
                     crm="LATE-1", key="crm:LATE-1")
    [opened] = only(out, DisputeOpened)
    d.resolve(opened.dispute_id, "award", registration_id=winner)
    assert {r: d.status(r) for r in ("x", "h", "z")} == {
        "x": "approved", "h": "approved", "z": "rejected"}
