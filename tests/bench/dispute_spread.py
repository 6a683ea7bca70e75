"""Do open disputes hold registrations of different customers? (issue 16 / issue 12)

    python tests/bench/dispute_spread.py [--registrations 10000]

Decides `registrations` P90D registrations of bench_decide's scaling workload (not timed),
then, for every open dispute, counts the member pairs whose accounts are different customers
by the sameness rule's identifiers alone (`shared.accounts.different_customers`: different
domains or CRM ids). Such a pair in one dispute means a person settling it (an award
rejects every other overlapping member) can take one customer's registration away because
of another customer's: the fairness rule of issue 12. Prints the dispute-size distribution,
the largest dispute, and the share of disputes holding different customers. Diagnostic
only; not part of `make bench`.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "unit" / "adjudication"))

import bench_decide  # noqa: E402

from services.adjudication.domain import AdjudicationState, DecisionContext, decide  # noqa: E402
from shared.accounts import AccountIdentity, Identifiers, different_customers  # noqa: E402
from shared.policy import Policy  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--registrations", type=int, default=10_000)
    size = parser.parse_args().registrations
    policy = Policy.model_validate({"version": 4, "protection_period": "P90D"})
    rng = random.Random(21)
    universe = bench_decide.accounts(rng, size * 2 // 3)
    state = AdjudicationState()
    ids: dict[str, Identifiers] = {}
    for event, at in bench_decide._registrations(rng, universe, 0, size, policy,
                                                  bench_decide.START):
        a = event.account
        ids[event.registration_id] = Identifiers.of(
            AccountIdentity(a.crm_account_id, a.domain, a.name, a.country))
        decide(state, event, DecisionContext(event.registration_id, at, policy))
    open_ = [d for d in state.disputes.values() if d.status == "open"]
    mixed = 0
    for dispute in open_:
        members = [ids[m] for m in dispute.member_ids]
        if any(different_customers(x, y) for i, x in enumerate(members)
               for y in members[i + 1:]):
            mixed += 1
    sizes = collections.Counter(len(d.member_ids) for d in open_)
    big = max(open_, key=lambda d: len(d.member_ids))
    domains = {dom for m in big.member_ids for dom in ids[m].domains}
    print(f"{size:,} registrations: {len(open_):,} open disputes "
          f"{dict(collections.Counter(d.reason for d in open_))}")
    print(f"sizes: {dict(sorted(sizes.items()))}")
    print(f"largest: {len(big.member_ids)} members ({big.reason}), {len(domains)} distinct "
          f"domains among them")
    print(f"disputes holding two different customers (by identifiers): {mixed:,} of "
          f"{len(open_):,} ({mixed / max(len(open_), 1):.1%})")


if __name__ == "__main__":
    main()
