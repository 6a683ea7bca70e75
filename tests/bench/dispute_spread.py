"""Do open disputes hold registrations of different customers? (issue 16 / issue 12)

    python tests/bench/dispute_spread.py [--registrations 10000]

Decides `registrations` P90D registrations of bench_decide's scaling workload (the
realistic Faker workload keyed as the edge keys it; not timed),
then, for every open dispute, counts the member pairs whose accounts are different customers
by the sameness rule's identifiers alone (`shared.accounts.different_customers`: different
domains or CRM ids). Since session 21 such a pair no longer lets an award, a split or the
fallback take one customer's registration away because of another's (DESIGN.md, "A
dispute never settles one customer against another"); the count measures how far
membership chains. Prints the dispute-size distribution,
the largest dispute, and the share of disputes holding different customers. Diagnostic
only; not part of `make bench`.
"""

from __future__ import annotations

import argparse
import collections
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
    events, stats = bench_decide._realistic_registrations(size, 0)
    print(f"workload: {stats['registrations']:,} registrations of "
          f"{stats['distinct_companies']:,} companies, {stats['distinct_keys']:,} keys, "
          f"intended collision share {stats['intended_collision_share']:.1%}, observed "
          f"{stats['observed_known_key_share']:.1%}")
    state = AdjudicationState()
    ids: dict[str, Identifiers] = {}
    for event in events:
        a = event.account
        ids[event.registration_id] = Identifiers.of(
            AccountIdentity(a.crm_account_id, a.domain, a.name, a.country))
        decide(state, event, DecisionContext(event.registration_id, event.submitted_at,
                                             policy))
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
