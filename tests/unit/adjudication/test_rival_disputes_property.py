"""Property (session 21 rival review): a settlement spares exactly the other customers.

Random adversarial sequences through the real `decide` (registrations under look-alike
names, a second domain, made-up CRM ids on an owned domain, CRM-only and name-only
accounts; waits that fire SLA fallbacks; a person's award, split, co-sell, distinct,
reject-all; withdrawals and partner exits). After every award, split or final-breach
fallback:

- no member was taken away that identifiers separate (`separate_customers`, links
  included) from every member that stands, unless its partner cannot gain protection;
- no two members that stand overlap and may be one customer, unless a split named both
  (they share the credit), they are one party's (never its own rivals, invariant 1), an
  unreviewed possible duplicate fell back to two customers, or the settlement did not
  weigh them against each other: a member there only as a newcomer's possible duplicate
  next to its confident collision (DESIGN rule 7, `Dispute.flagged`) is weighed against
  that newcomer alone (the others stood beside it before).
"""

from __future__ import annotations

import os
from typing import Any

from adjudication_driver import Driver
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from services.adjudication.domain.disputes import only_flagged, same_party
from services.adjudication.domain.matching import overlaps
from services.adjudication.domain.protection import inactive
from services.adjudication.domain.state import Entry
from shared.accounts import Identifiers, separate_customers
from shared.accounts.index import best_name_score
from shared.events import DisputeOpened, DisputeResolved, RegistrationDecided

# (domain, name, crm): one customer's real identifiers, look-alikes and made-up ones.
IDENTITIES: tuple[tuple[str | None, str, str | None], ...] = (
    ("soylent.com", "Soylent Corp", "001SOY"),
    ("soylent.com", "Soylent Corp", "FAKE-1"),      # made-up CRM id on the owned domain
    ("soylent.com", "Soylent Corp", None),
    ("soylent.io", "Soylent Corp", "001SOY"),       # second domain, joined by the CRM id
    ("soylent.io", "Soylent Corp", None),           # second domain, nothing joins it
    (None, "Soylent Inc", "CRM-9"),                 # CRM-only look-alike
    (None, "Soylent Corp", None),                   # name only
    ("osmifcorp.com", "Osmifcorp LLC", None),
    ("soymecorp.com", "Soymecorp GmbH", None),
    (None, "Soymifcorp Inc", "CRM-1"),
    # One Salesforce account id in its 15- and 18-character spellings, and a look-alike's
    # id that differs in the case of one letter: a different id, a different customer.
    (None, "Initrode Ltd", "001Dn00000QpLmz"),
    (None, "Initrode Ltd", "001Dn00000QpLmzIAF"),
    (None, "Initrode Ltd", "001Dn00000QpLmZ"),
)
SALESFORCE = {len(IDENTITIES) - 3: "one", len(IDENTITIES) - 2: "one",
              len(IDENTITIES) - 1: "other"}
"""Identity index -> which Salesforce customer it is (the generator's truth)."""
SALESFORCE_MET: list[str] = []

resolve = st.tuples(st.just("resolve"), st.integers(0, 6),
                    st.sampled_from(("award", "award", "split", "co_sell", "distinct",
                                     "reject_all")),
                    st.integers(0, 5))
register = st.tuples(st.just("register"), st.integers(0, len(IDENTITIES) - 1),
                     st.integers(0, 4), st.sets(st.sampled_from(("a", "b")), min_size=1,
                                                max_size=2))
STEPS: dict[str, st.SearchStrategy[tuple[Any, ...]]] = {
    "register": register,
    "resolve": resolve,
    "wait": st.tuples(st.just("wait"), st.integers(1, 120)),
    "withdraw": st.tuples(st.just("withdraw"), st.integers(0, 30)),
    "exit": st.tuples(st.just("exit"), st.integers(0, 4)),
}
# Weighted so that disputes open, chain and get settled before partners leave.
op = st.sampled_from(("register",) * 5 + ("resolve",) * 3 + ("wait",) * 2
                     + ("withdraw", "exit")).flatmap(STEPS.__getitem__)


SETTLED: list[str] = []


def _key(domain: str | None, name: str, crm: str | None) -> str:
    return f"crm:{crm}" if crm else f"dom:{domain}" if domain else f"name:GB:{name}"


Customers = dict[str, Identifiers]
Names = tuple[tuple[str, frozenset[str]], ...]


class View(dict[str, Identifiers]):
    """The customers as they were before a step, and the names filed under each key then
    (a rejection after review takes back the names it brought, session 30: the settlement
    weighed them)."""

    names: dict[str, Names]


def _customers(d: Driver) -> View:
    view = View({e.account_key: d.state.customer(e.account_key)
                 for e in d.state.entries.values()})
    view.names = {key: d.state.index.filed_names(key) for key in view}
    return view


def _may_be_one(d: Driver, a: Entry, b: Entry, view: View | None = None) -> bool:
    """`view`: the customers as they were before the step (a settlement reads links as
    they are when it is decided; rejecting the registration that showed a link ends it)."""
    policy = d.state.policy(a.policy_version)

    def customer(key: str) -> Identifiers:
        return view[key] if view is not None and key in view else d.state.customer(key)

    def named() -> bool:
        if view is not None and a.account_key in view.names and b.account_key in view.names:
            return best_name_score(view.names[a.account_key], view.names[b.account_key]) \
                >= policy.match.name_threshold - 1e-9
        return d.state.index.names_match(a.account_key, b.account_key,
                                         policy.match.name_threshold,
                                         policy.match.countryless_names)

    return overlaps(a.products, b.products, policy) and (
        a.mirror or b.mirror or not separate_customers(
            customer(a.account_key), customer(b.account_key), named))


def _weighed(flagged: dict[str, frozenset[str]], a: Entry, b: Entry) -> bool:
    """Whether the settlement set `a` and `b` against each other (rule 7)."""
    return all(x.id not in flagged or y.id in flagged[x.id] for x, y in ((a, b), (b, a)))


def _check(d: Driver, resolved: DisputeResolved, reason: str, before: View,
           shared: list[frozenset[str]] | None = None) -> None:
    """`shared`: the registrations each earlier split named (a person shared the credit
    between them; a later settlement that does not take either away keeps that)."""
    if resolved.outcome not in ("award", "split", "final_breach_fallback"):
        return
    entries = d.state.entries
    standing = [entries[r] for r in resolved.approved_ids]
    named = {s.registration_id for s in resolved.splits}
    earlier = shared or []
    for rid in resolved.rejected_ids:
        lost = entries[rid]
        assert inactive(d.state, lost) or any(
            _may_be_one(d, lost, w) or _may_be_one(d, lost, w, before) for w in standing), (
            f"{rid} was taken away though identifiers separate it from all of "
            f"{resolved.approved_ids}")
    if resolved.outcome == "final_breach_fallback" and reason == "possible_duplicate":
        return
    flagged = only_flagged(d.state.disputes[resolved.dispute_id])
    for i, a in enumerate(standing):
        for b in standing[i + 1:]:
            if (a.id in named and b.id in named) or same_party(a, b) \
                    or any(a.id in g and b.id in g for g in earlier) \
                    or not _weighed(flagged, a, b):
                continue  # a split shares; a party's own registrations are never rivals
            # Judged by the links at settlement, as the taken-away above: rejecting the
            # registration that showed a link ends it, so two that stand may look alike
            # only after (replay below, session 24).
            assert not (_may_be_one(d, a, b) and _may_be_one(d, a, b, before)), (
                f"{a.id} and {b.id} both stand after {resolved.outcome} and may be one "
                f"customer")


def _check_salesforce(d: Driver, rid: str, which_of: dict[str, int], out: list[Any]) -> None:
    """One Salesforce id is one customer in either spelling; ids that differ (in the case
    of one letter) are never one: a new registration of a Salesforce customer beside
    another party's active, overlapping registration of it is never approved as if
    nobody held it, and never meets (cites) a registration of the other customer as its
    own: never one key, never linked. Since session 26 (rival review: any other CRM id on
    a name held with a CRM id and no domain was approved unseen) it may cite one only as a
    possible duplicate (``confident=False``), for a person: the same name under another
    CRM id with no domains to compare; a person's award in that review decides."""
    if which_of[rid] not in SALESFORCE:
        return
    mine = SALESFORCE[which_of[rid]]
    decided = next((e for e in out if isinstance(e, RegistrationDecided)
                    and e.registration_id == rid), None)
    if decided is None:
        return
    entry = d.state.entries[rid]
    for c in decided.conflicts:
        other = which_of.get(c.registration_id or "")
        if other in SALESFORCE and SALESFORCE[other] != mine and (
                c.confident or d.state.entries[c.registration_id or ""].account_key
                in d.state.cluster(entry.account_key)):
            raise AssertionError(f"{rid} ({IDENTITIES[which_of[rid]][2]}) met "
                                 f"{c.registration_id} ({IDENTITIES[other][2]}): two "
                                 f"Salesforce ids merged")
    held = [e for r, i in which_of.items() if r != rid and SALESFORCE.get(i) == mine
            for e in [d.state.entries[r]] if e.active and not e.mirror
            and e.party_id != entry.party_id and e.motion == entry.motion
            and (e.products is None or entry.products is None
                 or bool(e.products & entry.products))]
    if held:
        SALESFORCE_MET.append(decided.rule)
        if currently_in_test_context():  # --hypothesis-show-statistics
            note_event(f"salesforce spellings met: {decided.status} {decided.rule}")
        assert not (decided.status == "approved" and decided.rule == "no_conflict"), (
            f"{rid} ({IDENTITIES[which_of[rid]][2]}) approved no_conflict beside "
            f"{[(e.id, e.status) for e in held]} of the same Salesforce customer")


def _run(ops: list[tuple[Any, ...]]) -> Driver:
    d = Driver()
    ids: list[str] = []
    opened: list[str] = []
    reasons: dict[str, str] = {}
    shared: list[frozenset[str]] = []
    out: list[Any] = []
    which_of: dict[str, int] = {}
    for step in ops:
        before = _customers(d)
        kind = step[0]
        if kind == "register":
            _, which, partner, products = step
            domain, name, crm = IDENTITIES[which]
            rid = f"r{len(ids)}"
            ids.append(rid)
            out = d.register(rid, f"p-{partner}", domain=domain, name=name, crm=crm,
                             country="GB", key=_key(domain, name, crm),
                             products=tuple(sorted(products)))
            which_of[rid] = which
            _check_salesforce(d, rid, which_of, out)
        elif kind == "wait":
            d.later(hours=step[1])
            out = d.run_until(d.now)
        elif kind == "resolve":
            _, n, outcome, pick = step
            live = [o for o in opened if d.state.disputes[o].status == "open"]
            if not live:
                continue
            dispute = d.state.disputes[live[n % len(live)]]
            members = [m for m in dispute.member_ids if d.state.entries[m].active]
            if not members:
                continue
            first = members[pick % len(members)]
            splits = ({first: 60, members[(pick + 1) % len(members)]: 40}
                      if len(members) > 1 and outcome == "split" else {first: 100})
            out = d.resolve(dispute.id, outcome, actor=dispute.owner_id,
                            registration_id=first if outcome == "award" else None,
                            splits=splits if outcome == "split" else None)
        elif kind == "withdraw" and ids:
            rid = ids[step[1] % len(ids)]
            out = d.withdraw(rid, d.state.entries[rid].party_id)
        elif kind == "exit":
            out = d.partner(f"p-{step[1]}", "exited")
        for event in out:
            if isinstance(event, DisputeOpened):
                opened.append(event.dispute_id)
        for dispute_id, dispute in d.state.disputes.items():
            reasons.setdefault(dispute_id, dispute.reason)
        for event in out:
            if isinstance(event, DisputeResolved):
                SETTLED.append(event.outcome)
                _check(d, event, d.state.disputes[event.dispute_id].reason, before, shared)
                if event.outcome == "split":
                    shared.append(frozenset(s.registration_id for s in event.splits))
    return d


# Derandomized by default, like the stateful machines (tests/property): CI runs the same
# 1000 examples every time, so a red build is the change's doing, not a fresh random sample.
# An exploratory run draws fresh ones with DEALREG_PROPERTY_RANDOM=1 (add --hypothesis-seed=N
# to repeat one); DEALREG_PROPERTY_EXAMPLES=N explores more (never fewer than 1000 here).
_RANDOM = os.environ.get("DEALREG_PROPERTY_RANDOM") == "1"


@settings(max_examples=max(1000, int(os.environ.get("DEALREG_PROPERTY_EXAMPLES", "1000"))),
          deadline=None, derandomize=not _RANDOM, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=2, max_size=30))
def test_settlement_spares_exactly_the_members_identifiers_separate(
        ops: list[tuple[Any, ...]]) -> None:
    _run(ops)


def test_a_member_taken_away_through_a_link_is_judged_by_the_links_at_settlement() -> None:
    # r1 (soylent.io) is the 001SOY customer only through r5's link (soylent.io + 001SOY);
    # an award to r4 (soylent.com under a made-up CRM id) takes r1 and r5 away, and
    # rejecting r5 ends the link. The property once judged r1 by the links *after* the
    # settlement and called it another customer (found in session 21; a checker artefact,
    # not a product defect: settlement reads the links as they are when it decides).
    _run([("register", 0, 0, {"a"}), ("register", 4, 0, {"b"}), ("withdraw", 0),
          ("register", 0, 0, {"a"}), ("register", 0, 1, {"a", "b"}),
          ("register", 1, 0, {"b"}), ("register", 3, 2, {"a", "b"}),
          ("resolve", 0, "award", 0)])


def test_a_member_kept_beside_a_winner_is_judged_by_the_links_at_settlement() -> None:
    # r0 (CRM-only CRM-9) is soylent.com's customer through r1's name link; r2 (soylent.io)
    # is another domain, so an award to r0 takes r1 (and the name-only r3) away and keeps
    # r2. Rejecting r1 ends its link, and by the links *after* the award r0 and r2 no
    # longer separate: the property called them two owners (a random run on main, session
    # 24; a checker artefact: the settlement reads the links as they are when it decides).
    d = _run([("register", 5, 0, {"a"}), ("register", 2, 1, {"a"}),
              ("register", 4, 1, {"a"}), ("register", 6, 0, {"a"}),
              ("resolve", 0, "award", 1)])
    assert [d.status(r) for r in ("r0", "r1", "r2", "r3")] == [
        "approved", "rejected", "approved", "rejected"]


def test_an_award_covers_the_possible_duplicate_beside_a_collision() -> None:
    # r3 (a made-up CRM id on soylent.com, {b}) was approved beside r0 ({a}); r4 (001SOY,
    # {a, b}) then tied with r0 and was r3's possible duplicate (rule 7). r3 only rode
    # along as evidence, so the award to r4 left r4 and r3 both approved on soylent.com
    # and a later dispute's fallback found them so (session 21, exempted by the property
    # then). Since session 22 r3 is a member and the award takes it away.
    d = _run([("register", 0, 0, {"a"}), ("register", 0, 0, {"a"}),
              ("register", 4, 1, {"b", "a"}), ("register", 1, 2, {"b"}),
              ("register", 0, 1, {"b", "a"}), ("resolve", 0, "award", 0)])
    assert (d.status("r4"), d.status("r3")) == ("approved", "rejected")
    _run([("register", 0, 0, {"a"}), ("register", 0, 0, {"a"}), ("register", 4, 1, {"b", "a"}),
          ("register", 1, 2, {"b"}), ("register", 0, 1, {"b", "a"}),
          ("resolve", 0, "award", 0), ("register", 0, 0, {"a"}),
          ("register", 6, 0, {"b", "a"}), ("wait", 1), ("wait", 119)])


def test_an_award_to_a_possible_duplicate_keeps_what_a_person_shared_beside_it() -> None:
    # r0 (name-only Soylent) and r1 (001SOY at soylent.com) were co-sold by a person. r2
    # (001SOY) collides with r1 and is r0's possible duplicate: r0 joins flagged. An award
    # to r0 rejects r2, the newcomer it was weighed against, and leaves r1 (found in
    # session 22 once the property stopped exempting every pair that stood before).
    d = _run([("register", 6, 3, {"a"}), ("register", 0, 1, {"a"}),
              ("resolve", 0, "co_sell", 0), ("register", 0, 0, {"b", "a"}),
              ("resolve", 0, "award", 5)])
    assert (d.status("r0"), d.status("r1"), d.status("r2")) == (
        "approved", "approved", "rejected")


def test_an_award_against_a_newcomer_keeps_an_earlier_split_between_others() -> None:
    # r2 (p-0) and r3 (p-2) share {b} by a person's split; newcomer r5 ({a, b}) then ties
    # with p-0's registrations and an award to p-0's r0 rejects r5 and keeps the split: r2
    # and r3 still share (found by a random run in session 23; the checker exempted a
    # split's shares only within the settlement that made them).
    d = _run([("register", 0, 0, {"a"}), ("register", 0, 0, {"a"}),
              ("register", 0, 0, {"b"}), ("register", 0, 2, {"b"}),
              ("resolve", 0, "split", 0), ("register", 0, 0, {"a"}),
              ("register", 0, 1, {"a", "b"}), ("resolve", 0, "award", 1)])
    assert [d.status(r) for r in ("r0", "r2", "r3", "r5")] == [
        "approved", "approved", "approved", "rejected"]


def test_award_between_an_owner_and_a_made_up_crm_id_leaves_one_standing() -> None:
    # The sequence the property found against the session-21 rule (see module docstring).
    _run([("register", 0, 1, {"a"}), ("wait", 48), ("register", 1, 2, {"a"}),
          ("resolve", 0, "award", 0)])


def test_a_salesforce_id_in_two_spellings_meets_and_one_differing_in_case_stays_apart(
        ) -> None:
    """Identities 10 and 11: one Salesforce id (15 and 18 characters); 12: a look-alike
    whose id differs in the case of one letter (Salesforce ids are case-sensitive):
    another customer, never one key or linked with the first. Until session 26 it was
    approved beside it unseen; the rival review showed any other CRM id on a name held
    with a CRM id and no domain walked past the holder that way, so the same name with no
    domains to compare now goes to a person as a possible duplicate, and a person's award
    in that review decides (here to the holder: the look-alike is rejected)."""
    sf15, sf18, other = (len(IDENTITIES) - 3, len(IDENTITIES) - 2, len(IDENTITIES) - 1)
    d = _run([("register", sf15, 0, {"a"}), ("register", sf18, 1, {"a"}),
              ("register", other, 2, {"a"})])
    assert d.status("r0") == "approved"
    assert d.status("r1") != "approved"  # the same customer, another spelling
    r0, r2 = d.state.entries["r0"], d.state.entries["r2"]
    assert r2.account_key != r0.account_key  # another customer: never one key ...
    assert r2.account_key not in d.state.cluster(r0.account_key)  # ... never linked
    assert d.status("r2") == "in_review"  # but seen by a person
    # It joins the open tie of r0 and r1 (the holder's review), and an award there to
    # the holder takes it away with r1.
    [review] = [x for x in d.state.disputes.values() if "r2" in x.member_ids]
    assert sorted(review.member_ids) == ["r0", "r1", "r2"]
    d.resolve(review.id, "award", actor=review.owner_id, registration_id="r0")
    assert [d.status(r) for r in ("r0", "r1", "r2")] == ["approved", "rejected", "rejected"]
