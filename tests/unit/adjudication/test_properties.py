"""Properties over random event sequences (hypothesis).

- At every point, an account scope has at most one exclusive approved owner, unless the
  owners share it through a dispute settled as split or co-sell.
- Every submitted registration or claim gets exactly one initial decision, in the output of
  its own submission.
- Every decision names a rule and a policy version, and the account it is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from adjudication_driver import Driver, policy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.events import (
    ClaimDecided,
    DisputeResolved,
    DomainEvent,
    ProtectionEnded,
    RegistrationDecided,
)

ACCOUNTS = ("acme.com", "globex.com")
PRODUCTS = ("a", "b", "c")
SHARED_OUTCOMES = frozenset({"split", "co_sell", "distinct"})

op = st.one_of(
    st.tuples(st.just("register"), st.integers(0, 3), st.sampled_from(ACCOUNTS),
              st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2),
              st.sampled_from(("resell", "resell", "co_sell", "referral")),
              st.sampled_from(("platinum", "gold", "silver"))),
    st.tuples(st.just("claim"), st.integers(0, 1), st.sampled_from(ACCOUNTS),
              st.sampled_from(("named_account", "opportunity")), st.sampled_from(PRODUCTS)),
    st.tuples(st.just("wait"), st.integers(1, 4000)),
    st.tuples(st.just("withdraw"), st.integers(0, 40)),
    st.tuples(st.just("extend"), st.integers(0, 40)),
    st.tuples(st.just("close"), st.integers(0, 40), st.sampled_from(("won", "lost"))),
    st.tuples(st.just("resolve"), st.integers(0, 10),
              st.sampled_from(("award", "split", "co_sell", "reject_all")), st.integers(0, 3)),
    st.tuples(st.just("contest"), st.integers(0, 40)),
    st.tuples(st.just("exit"), st.integers(0, 3)),
)


@dataclass
class Owner:
    key: str
    products: frozenset[str] | None
    exclusive: bool
    dispute_id: str | None


class Model:
    """The decision stream folded into who holds what, as a projection would."""

    def __init__(self) -> None:
        self.submitted: dict[str, tuple[str, frozenset[str] | None, bool]] = {}
        self.approved: dict[str, Owner] = {}
        self.shared_disputes: set[str] = set()
        self.decided: set[str] = set()
        self.disputes: list[tuple[str, list[str]]] = []

    def apply(self, events: list[DomainEvent]) -> None:
        for e in events:
            assert getattr(e, "account_key", None), e
            if hasattr(e, "rule"):
                assert e.rule and isinstance(e.policy_version, int) and e.policy_version >= 1
            if isinstance(e, DisputeResolved):
                if e.outcome in SHARED_OUTCOMES:
                    self.shared_disputes.add(e.dispute_id)
            elif isinstance(e, RegistrationDecided | ClaimDecided):
                rid = e.registration_id if isinstance(e, RegistrationDecided) else e.claim_id
                key, products, exclusive = self.submitted[rid]
                if e.status == "approved":
                    self.approved[rid] = Owner(key, products, exclusive, e.dispute_id)
                else:
                    self.approved.pop(rid, None)
            elif isinstance(e, ProtectionEnded):
                self.approved.pop(e.registration_id, None)

    def check_single_owner(self) -> None:
        owners = [(rid, o) for rid, o in self.approved.items() if o.exclusive]
        for i, (a_id, a) in enumerate(owners):
            for b_id, b in owners[i + 1:]:
                if a.key != b.key:
                    continue
                if a.products is not None and b.products is not None and not (
                        a.products & b.products):
                    continue
                shared = (a.dispute_id is not None and a.dispute_id == b.dispute_id
                          and a.dispute_id in self.shared_disputes)
                assert shared, f"{a_id} and {b_id} both own {a.key}"


def run(ops: list[tuple[Any, ...]], scope: str) -> None:
    d = Driver(policy=policy(
        scope=scope, protection_period="PT2H", tie_window="PT10M",
        extension={"period": "PT30M", "max_extensions": 1},
        escalation={"levels": [{"owner_id": "cm-1", "sla": "PT20M"},
                               {"owner_id": "dir-1", "sla": "PT20M"}]}))
    model = Model()
    ids: list[tuple[str, str]] = []
    disputes: list[str] = []
    for n, step in enumerate(ops):
        kind = step[0]
        out: list[DomainEvent]
        if kind == "register":
            _, p, acct, products, motion, tier = step
            rid = f"r{n}"
            model.submitted[rid] = (f"dom:{acct}", frozenset(products) if scope != "account"
                                    else None, motion != "referral")
            out = d.register(rid, f"p-{p}", domain=acct, name=None, products=tuple(
                sorted(products)), motion=motion, tier=tier)
            ids.append((rid, f"p-{p}"))
        elif kind == "claim":
            _, rep, acct, claim_kind, product = step
            rid = f"c{n}"
            whole = claim_kind == "named_account" or scope == "account"
            model.submitted[rid] = (f"dom:{acct}", None if whole else frozenset({product}), True)
            out = d.claim(rid, f"rep-{rep}", kind=claim_kind, domain=acct, products=(product,))
            ids.append((rid, f"rep-{rep}"))
        elif kind == "wait":
            out = d.run_until(d.now + timedelta(seconds=step[1]))
            d.later(seconds=0)
        elif not ids:
            continue
        elif kind == "withdraw":
            rid, party = ids[step[1] % len(ids)]
            out = d.release(rid, party) if rid.startswith("c") else d.withdraw(rid, party)
        elif kind == "extend":
            rid, party = ids[step[1] % len(ids)]
            out = d.extend(rid, party)
        elif kind == "close":
            out = d.close(ids[step[1] % len(ids)][0], step[2])
        elif kind == "contest":
            rid, party = ids[step[1] % len(ids)]
            out = d.contest(rid, party, f"dc{n}")
        elif kind == "exit":
            out = d.partner(f"p-{step[1]}", "exited")
        elif kind == "resolve":
            open_ones = [x for x, v in d.state.disputes.items() if v.status == "open"]
            if not open_ones:
                continue
            did = open_ones[step[1] % len(open_ones)]
            members = d.state.disputes[did].member_ids
            owner = d.state.disputes[did].owner_id
            _, _, outcome, pick = step
            out = d.resolve(did, outcome, actor=owner,
                            registration_id=members[pick % len(members)],
                            splits=({m: 0 for m in members} if False else
                                    _splits(members) if outcome == "split" else None))
            disputes.append(did)
        else:  # pragma: no cover
            raise AssertionError(kind)
        if kind in ("register", "claim"):
            rid = ids[-1][0]
            initial = [e for e in out if isinstance(e, RegistrationDecided | ClaimDecided)
                       and (getattr(e, "registration_id", None) == rid
                            or getattr(e, "claim_id", None) == rid)]
            assert len(initial) == 1, (rid, initial)
            assert rid not in model.decided
            model.decided.add(rid)
        model.apply(out)
        model.check_single_owner()
        d.later(seconds=30)


def _splits(members: list[str]) -> dict[str, int]:
    shares = {m: 100 // len(members) for m in members}
    shares[members[0]] += 100 - sum(shares.values())
    return shares


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=40))
def test_invariants_hold_under_account_product_scope(ops: list[tuple[Any, ...]]) -> None:
    run(ops, "account_product")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=40))
def test_invariants_hold_under_account_scope(ops: list[tuple[Any, ...]]) -> None:
    run(ops, "account")
