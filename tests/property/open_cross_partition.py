"""Open question (services/adjudication/DESIGN.md, "Open: a settlement's word about a copy
never reaches the copy's own partition"): rival sequences through the stateful machine that
break an invariant today. They are not collected by pytest (the suite stays green while
the lead decides); run them with `PYTHONPATH=$PWD python3 -m tests.property.open_cross_partition`
and turn each into a `test_...` once the question is settled.

HEUSER is `dom:heuser-holdings.com` (partition A), HEUSER_BY_NAME its name-only key on
another partition (B), only a possible duplicate of it: a registration there goes to review
with copies of A's registrations.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.property.test_invariants_stateful import (
    HEUSER,
    HEUSER_BY_NAME,
    Invariants,
    _ids,
    _replay,
)


def _last_open_member(m: Invariants, reg_index: int) -> tuple[int, int]:
    opened = [d for d in m.model.disputes.values() if d.open]
    return len(opened) - 1, opened[-1].members.index(_ids(m)[reg_index])


def two_owners_when_each_partition_awards_its_own(m: Invariants) -> None:
    """Invariant 1: B's review awards p-02 and rejects the copy of p-01's approval; A never
    hears of it, and A's own tie dispute then awards p-01, which readers see approved again
    beside p-02."""
    m.register(HEUSER, "p-01", {"analytics"}, "resell")  # A: approved
    m.register(HEUSER, "p-05", {"analytics"}, "resell")  # A: gold tie, in review
    m.register(HEUSER_BY_NAME, "p-02", {"analytics"}, "resell")  # B: review with copies
    m.resolve(*_last_open_member(m, 2), "award")  # B: p-02 wins, p-01 and p-05 rejected
    m.resolve(0, next(d for d in m.model.disputes.values() if d.open).members.index(
        _ids(m)[0]), "award")  # A: p-01 wins its tie: approved again


def a_rejected_registration_still_guards_at_home(m: Invariants) -> None:
    """Invariant 14: after B's review rejected the copy, A still holds p-01 approved and
    rejects a newcomer on its evidence."""
    m.register(HEUSER, "p-01", {"analytics"}, "resell")
    m.register(HEUSER_BY_NAME, "p-05", {"analytics"}, "resell")
    m.resolve(*_last_open_member(m, 1), "award")  # B: p-05 wins, p-01's copy rejected
    m.register(HEUSER, "p-02", {"analytics"}, "resell")  # A: rejected (tier) citing p-01


SEQUENCES: tuple[Callable[[Invariants], None], ...] = (
    two_owners_when_each_partition_awards_its_own,
    a_rejected_registration_still_guards_at_home,
)


def main() -> int:
    failed = 0
    for steps in SEQUENCES:
        try:
            _replay(steps)
        except AssertionError as broken:
            failed += 1
            print(f"{steps.__name__}: {str(broken).splitlines()[0][:300]}")
        else:
            print(f"{steps.__name__}: holds")
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
