"""Benchmark of the pure adjudication core (not collected by pytest: run it as a script).

    python tests/bench/bench_decide.py [--events 120000] [--registrations 50000]

1. Throughput: a realistic mixed intake log (registrations colliding on a growing set of
   accounts, claims, extensions, withdrawals, CRM closes, contests, owner actions, timer
   firings; see tests/unit/adjudication/adjudication_workload.py) is recorded once, then
   replayed into a fresh state the way a recovering worker does. Only `decide` is timed.
2. Memory: registrations that stay protected (P90D) are decoded from JSON and decided under
   tracemalloc; what the state still holds afterwards, divided by the number of active
   registrations, is the state cost per active registration (the account index included).

3. Scale (`--scale 10000,1000000`, `make bench-scale`): decide's CPU per registration with
   each count of the realistic workload already decided (tests/support/companies.py, keyed
   as the edge keys it); the keyed workloads are cached in bench-results/cache/.

Throughput is the best of three replays (the median is reported too): the machine is
shared, and the best run is the one least disturbed by other processes. The normalisation
caches are warmed before the memory trace: they are bounded and process-wide, not state.
Prints a summary and writes bench-results/decide.json. Targets: >= 30,000 events/s,
< 1 KiB per active registration.
"""

from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import inspect
import itertools
import json
import pickle
import platform
import random
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "unit" / "adjudication"))

import faker  # noqa: E402
import orjson  # noqa: E402
import rapidfuzz  # noqa: E402
from adjudication_workload import (  # noqa: E402
    PRODUCTS,
    START,
    TIERS,
    accounts,
    generate,
    workload_policies,
)

from services.adjudication.domain import (  # noqa: E402
    AdjudicationState,
    DecisionContext,
    decide,
    explain,
    policy_version_of,
)
from services.adjudication.domain import state as state_module  # noqa: E402
from services.adjudication.domain.adjudicate import identity_of  # noqa: E402
from services.adjudication.worker import GC_THRESHOLDS, tune_gc  # noqa: E402
from services.registration.domain.intake import registration_submitted  # noqa: E402
from services.registration.domain.resolution import choose  # noqa: E402
from shared.accounts import index as index_module  # noqa: E402
from shared.accounts import salesforce  # noqa: E402
from shared.accounts.identity import AccountIdentity  # noqa: E402
from shared.accounts.index import AccountIndex  # noqa: E402
from shared.events import (  # noqa: E402
    Account,
    Opportunity,
    PartnerSnapshot,
    RegistrationSubmitted,
)
from shared.policy import MatchPolicy, Policy  # noqa: E402
from tests.support import companies  # noqa: E402

RUNS = 3


def throughput(events: int) -> dict[str, float]:
    started = time.perf_counter()
    log, _ = generate(events, seed=3, n_accounts=max(400, events // 25))
    generated = time.perf_counter() - started
    policies = workload_policies()
    contexts = []
    for i, (event, at) in enumerate(log, 1):
        version = policy_version_of(event)
        contexts.append(DecisionContext(f"e{i}", at,
                                        policies[version] if version is not None else None))
    runs: list[float] = []
    decisions = 0
    state = AdjudicationState()
    # Under the collector settings of the process that runs `decide`: the adjudicator
    # raises the thresholds at start (worker.tune_gc). With CPython's defaults the
    # collector's passes over the growing state took ~15 % of this loop (session 24), a
    # cost no adjudicator pays.
    defaults = gc.get_threshold()
    tune_gc()
    try:
        for _ in range(RUNS):
            state = AdjudicationState()
            decisions = 0
            gc.collect()
            started = time.perf_counter()
            for (event, _), context in zip(log, contexts, strict=True):
                decisions += len(decide(state, event, context)[1])
            runs.append(time.perf_counter() - started)
    finally:
        gc.set_threshold(*defaults)
    best = min(runs)
    median = sorted(runs)[len(runs) // 2]
    return {
        "events": len(log),
        "decisions": decisions,
        "runs": RUNS,
        "best_seconds": round(best, 3),
        "median_seconds": round(median, 3),
        "events_per_second": round(len(log) / best),
        "events_per_second_median": round(len(log) / median),
        "us_per_event": round(best / len(log) * 1e6, 2),
        "generation_seconds": round(generated, 1),
        "gc_thresholds": list(GC_THRESHOLDS),
        "active_at_end": state.active_count(),
    }


def _clear_process_memos() -> None:
    """Empty the bounded, process-wide memos `decide` fills besides the normalisation
    caches (warmed before the trace instead): they are caches of pure functions, not any
    partition's state."""
    salesforce.salesforce_18.cache_clear()
    salesforce.salesforce_18_any_case.cache_clear()
    explain._DAYS.clear()
    index_module._KEYS_MEMO.clear()
    index_module._SORTED_MEMO.clear()


def memory(registrations: int, period: str = "P90D", every: timedelta = timedelta(seconds=5),
           forget: bool = False) -> dict[str, float]:
    """State bytes per active registration after `registrations` registrations, one every
    `every`, each protected for `period`: with the defaults all stay active (a fresh
    partition); with a short period and a long spacing most have ended and been forgotten
    (a long-lived partition). `forget=False` keeps every account in the index, as the
    state does by default; `forget=True` turns on `state.FORGETS_ACCOUNTS` (off by default:
    it changes decisions) to measure what forgetting would save."""
    rng = random.Random(9)
    universe = accounts(rng, registrations * 2 // 3)
    policy = Policy.model_validate({"version": 4, "protection_period": period})
    raw: list[bytes] = []
    now = START
    for n in range(registrations):
        acct = rng.choice(universe)
        partner = f"p-{rng.randrange(200)}"
        now += every
        raw.append(orjson.dumps(RegistrationSubmitted(
            registration_id=f"reg-{n:08d}", partner_id=partner,
            partner=PartnerSnapshot(partner_id=partner, tier=rng.choice(TIERS)),
            account_key=acct.key,
            account=Account(name=acct.name, domain=acct.domain, country=acct.country,
                            crm_account_id=acct.crm),
            opportunity=Opportunity(title="deal", products=tuple(rng.sample(PRODUCTS, 1))),
            motion="resell", submitted_at=now, policy_version=4).to_data()))
    # Normalisation memoises domains and names in bounded, process-wide caches (tldextract,
    # lru_cache); warm them first so that only what the state itself holds is measured.
    for blob in raw:
        identity_of(RegistrationSubmitted.model_validate(orjson.loads(blob)).account)
    gc.collect()
    state_module.FORGETS_ACCOUNTS = forget
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    state = AdjudicationState()
    for i, blob in enumerate(raw):
        # Decoded inside the trace, as the worker does, so the strings the state keeps count.
        event = RegistrationSubmitted.model_validate(orjson.loads(blob))
        decide(state, event, DecisionContext(f"e{i}", event.submitted_at, policy))
        del event
    gc.collect()
    with_memos = tracemalloc.get_traced_memory()[0] - baseline
    # The index's identifiers memos and the state's filed-pairs memo are bounded caches
    # (4,096 and 256 entries since session 22, whatever the state's size): excluded
    # like the normalisation caches, and reported beside.
    state.index._identifiers.clear()
    state.loose_index._identifiers.clear()
    state._indexed.clear()
    # So are the process-wide memos the decisions filled (session 25): the Salesforce-id
    # spellings (`lru_cache`, 16,384 entries each), the sentences' days (4,096) and the
    # index's name memos (256): ~1.8 KB per active registration on the long-lived
    # partition, but one per process, shared by every partition it decides.
    _clear_process_memos()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    state_module.FORGETS_ACCOUNTS = False
    active = state.active_count()
    return {
        "registrations": registrations,
        "active": active,
        "accounts_indexed": len(state.index),
        "entries_held": len(state.entries),
        "state_bytes": held,
        "bytes_per_active_registration": round(held / max(active, 1)),
        "bytes_per_active_registration_with_bounded_memos": round(with_memos / max(active, 1)),
        "bytes_per_registration_held": round(held / max(len(state.entries), 1)),
    }


CACHE = ROOT / "bench-results" / "cache"
"""Where the keyed realistic workloads are kept between runs (bench-results/ is gitignored)."""

_Row = tuple[int, str, str, tuple[str, ...], str, "str | None", "str | None", "str | None"]
"""One keyed registration: (seq, partner id, name as typed, products, account key, CRM id,
registrable domain, country), the last three as the edge normalised them."""


class _EdgeKeys:
    """Keys each identity as the edge does, `choose` over `directory.match(identity,
    threshold, review band)`, with less work and provably the same key (and whether it is
    new); tests/unit/test_scale_workload.py holds it to `choose` over the full answer.

    `choose` walks the matches strongest evidence first: CRM id and domain matches (always
    confident, and never displaced by a name match of the same account) before any name.
    So when the identifiers alone give a key, the names cannot change it: those are looked
    up first, in two dictionaries. Otherwise a name decides only if a confident name match
    is the query's customer (`sort_out`): never a match in the review band (the key does
    not depend on possible duplicates), so the name look-up asks for a review band of 0.
    And under `match.name_only: review` a query with an identifier only ever takes, by
    name, a key whose form carries an identifier (`dom:`/`crm:`) and that holds none of
    the kinds the query has (an equal one would have matched as an identifier, a different
    one makes another customer): a query with a domain, only `crm:` keys without a domain;
    with a CRM id, only `dom:` keys without a CRM id; with both, none. Those keys are
    counted as they are filed; while there are none the names are not looked up at all
    (at 1 M registrations a name look-up scores thousands of candidates)."""

    def __init__(self, match: MatchPolicy) -> None:
        self.directory = AccountIndex()
        self.match = match
        self.review = match.name_only == "review"
        self.crm_keys_without_domain: set[str] = set()
        self.domain_keys_without_crm: set[str] = set()

    def __len__(self) -> int:
        return len(self.directory)

    def key(self, identity: AccountIdentity) -> tuple[str, bool]:
        """(key, is new) for `identity`; `add` files it."""
        directory, threshold = self.directory, self.match.name_threshold
        taken = directory.__contains__
        if identity.crm_account_id or identity.domain:
            exact = directory.match(AccountIdentity(identity.crm_account_id, identity.domain,
                                                    None, None), threshold, 0.0)
            chosen = choose(identity, exact, directory.identifiers, taken, self.review)
            if not chosen.is_new or (self.review and not self._name_may_decide(identity)):
                return chosen.account_key, chosen.is_new
        found = directory.match(identity, threshold, 0.0)
        chosen = choose(identity, found, directory.identifiers, taken, self.review)
        return chosen.account_key, chosen.is_new

    def _name_may_decide(self, identity: AccountIdentity) -> bool:
        """Under review, for a query with an identifier: whether any key exists that a
        confident name match could make its customer."""
        if identity.domain and identity.crm_account_id:
            return False
        if identity.domain:
            return bool(self.crm_keys_without_domain)
        return bool(self.domain_keys_without_crm)

    def add(self, key: str, identity: AccountIdentity) -> None:
        self.directory.add(key, identity)
        kind = key.partition(":")[0]
        if kind in ("crm", "dom"):
            theirs = self.directory.identifiers(key)
            if kind == "crm" and not theirs.domains:
                self.crm_keys_without_domain.add(key)
            else:
                self.crm_keys_without_domain.discard(key)
            if kind == "dom" and not theirs.crm_ids:
                self.domain_keys_without_crm.add(key)
            else:
                self.domain_keys_without_crm.discard(key)


def edge_keyed(work: companies.Workload, keys: _EdgeKeys
               ) -> Iterator[tuple[companies.Registration, AccountIdentity, str, bool]]:
    """Each registration of `work` in submission order, with its identity and the key
    `keys` gives it (and whether that key is new), as the edge keys it. The key is added
    to `keys` when the next one is asked for: at each step `keys` holds what the edge's
    index held when that registration arrived."""
    for reg in work.registrations:
        identity = AccountIdentity.from_raw(name=reg.name, domain=reg.domain,
                                            country=reg.country,
                                            crm_account_id=reg.crm_account_id)
        key, new = keys.key(identity)
        yield reg, identity, key, new
        keys.add(key, identity)


def _keyed_rows(work: companies.Workload) -> tuple[list[_Row], dict[str, Any]]:
    """Each registration of `work` keyed the way the edge keys it (`choose` over the edge's
    index, the default policy's `match` settings, in submission order: `edge_keyed`), and
    what the keying observed: distinct keys, registrations that landed on a known key."""
    keys = _EdgeKeys(Policy.model_validate({"version": 4}).match)
    rows: list[_Row] = []
    known = 0
    for reg, identity, key, new in edge_keyed(work, keys):
        known += not new
        rows.append((reg.seq, reg.partner_id, reg.name, reg.products, key,
                     identity.crm_account_id, identity.domain, identity.country))
    return rows, {"distinct_keys": len(keys),
                  "observed_known_key_share": round(known / max(len(rows), 1), 4)}


def _generator_fingerprint() -> str:
    """What the keyed workload depends on besides seed and size: the generator's and the
    keying's source (companies.py, this module's keying, the account matching and
    resolution it runs) and the versions of Faker and rapidfuzz. Any change is a cache
    miss, never a stale workload."""
    digest = hashlib.sha256()
    digest.update(f"v{companies.GENERATOR_VERSION} faker {faker.VERSION} rapidfuzz "
                  f"{rapidfuzz.__version__}".encode())
    sources = [Path(companies.__file__), *sorted((ROOT / "shared" / "accounts").glob("*.py")),
               ROOT / "services" / "registration" / "domain" / "resolution.py"]
    for path in sources:
        digest.update(path.read_bytes())
    for function in (_EdgeKeys, _keyed_rows):
        digest.update(inspect.getsource(function).encode())
    return digest.hexdigest()[:16]


def _keyed_workload(total: int, seed: int, cache: bool = True
                    ) -> tuple[list[_Row], dict[str, Any]]:
    """`total` registrations of the seeded workload, keyed (`_keyed_rows`), with what the
    workload intended and what the keying observed; read from bench-results/cache/ when a
    run made them before with the same seed, size and generator (`_generator_fingerprint`),
    else made and written there."""
    path = CACHE / (f"realistic-seed{seed}-n{total}-v{companies.GENERATOR_VERSION}-"
                    f"{_generator_fingerprint()}.pickle")
    if cache and path.exists():
        started, cpu = time.perf_counter(), time.process_time()
        with path.open("rb") as f:
            rows, stats = pickle.load(f)
        stats = {**stats, "cache": "hit", "cache_file": path.name,
                 "load_seconds": round(time.perf_counter() - started, 1),
                 "load_cpu_seconds": round(time.process_time() - cpu, 1)}
        return rows, stats
    started, cpu = time.perf_counter(), time.process_time()
    work = companies.generate(seed, total, collision_share=1 / 3, partners=200,
                              max_per_company=4)
    generated, generated_cpu = time.perf_counter() - started, time.process_time() - cpu
    rows, observed = _keyed_rows(work)
    stats = {**work.summary(), **observed, "partners": dict(work.partners),
             "generation_seconds": round(generated, 1),
             "generation_cpu_seconds": round(generated_cpu, 1),
             "keying_seconds": round(time.perf_counter() - started - generated, 1),
             "keying_cpu_seconds": round(time.process_time() - cpu - generated_cpu, 1)}
    del work
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with partial.open("wb") as f:
            pickle.dump((rows, stats), f, protocol=pickle.HIGHEST_PROTOCOL)
        partial.replace(path)
    return rows, {**stats, "cache": "miss" if cache else "off", "cache_file": path.name}


def _events(rows: list[_Row], tiers: dict[str, str]) -> Iterator[RegistrationSubmitted]:
    """The events the edge appends for keyed `rows`, one a second from START."""
    at = START
    for seq, partner, name, products, key, crm, domain, country in rows:
        at += timedelta(seconds=1)
        yield registration_submitted(
            registration_id=f"reg-{seq:08d}",
            partner=PartnerSnapshot(partner_id=partner, tier=tiers[partner]),
            account_key=key, raw_account_name=name,
            identity=AccountIdentity(crm, domain, None, country),
            title=f"Opportunity {seq}", products=list(products), amount=None,
            expected_close=None, motion="resell", external_ref=None, submitted_at=at,
            policy_version=4)


def _realistic_registrations(size: int, probe: int, seed: int = 21, cache: bool = True
                             ) -> tuple[list[RegistrationSubmitted], dict[str, Any]]:
    """`size + probe` registrations of the seeded Faker workload (tests/support/companies.py:
    shared words, subsidiaries, typos, several domains, four countries; a third of them true
    collisions), keyed the way the edge keys them (`_keyed_workload`, cached on disk), as
    the events the edge appends. Also what the workload intended and what the keying
    observed (distinct keys, registrations that landed on a known key)."""
    rows, stats = _keyed_workload(size + probe, seed, cache)
    tiers: dict[str, str] = stats.pop("partners")
    return list(_events(rows, tiers)), stats


def _rss_mb() -> float:
    """The process's resident set now (Linux), else its peak."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return round(pages * resource.getpagesize() / 2**20, 1)
    except OSError:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def scaling(sizes: list[int], probe: int = 5_000, cache: bool = True) -> dict[str, Any]:
    """CPU per decided registration with `size` registrations already decided (P90D, the
    realistic workload: a third of them true collisions), for each size: the cost of the
    next `probe` registrations of the same workload (new companies and known ones). The
    keyed workload of each size comes from bench-results/cache/ when an earlier run made
    it (`_keyed_workload`); what that took, or that it was a hit, is printed."""
    policy = Policy.model_validate({"version": 4, "protection_period": "P90D"})
    out: dict[str, Any] = {}
    reference: tuple[AdjudicationState, list[RegistrationSubmitted]] | None = None
    for size in sizes:
        rows, stats = _keyed_workload(size + probe, 21, cache)
        tiers: dict[str, str] = stats.pop("partners")
        if stats["cache"] == "hit":
            made = (f"cache hit ({stats['cache_file']}): loaded in {stats['load_seconds']} s "
                    f"({stats['load_cpu_seconds']} s CPU)")
        else:
            made = (f"cache {stats['cache']}: generated in {stats['generation_seconds']} s "
                    f"({stats['generation_cpu_seconds']} s CPU), keyed in "
                    f"{stats['keying_seconds']} s ({stats['keying_cpu_seconds']} s CPU)")
        print(f"workload for {size:,}: {made}", flush=True)
        print(f"  {stats['registrations']:,} registrations of "
              f"{stats['distinct_companies']:,} companies, intended collision share "
              f"{stats['intended_collision_share']:.1%}, observed on a known key "
              f"{stats['observed_known_key_share']:.1%}; {stats['distinct_keys']:,} distinct "
              f"keys; {stats['name_only_registrations']:,} name-only", flush=True)
        state = AdjudicationState()
        events = _events(rows, tiers)
        started, cpu = time.perf_counter(), time.process_time()
        for event in itertools.islice(events, size):  # built as decided: less to hold
            decide(state, event, DecisionContext(event.registration_id, event.submitted_at,
                                                 policy))
        filled, filled_cpu = time.perf_counter() - started, time.process_time() - cpu
        probes = list(events)
        del rows, events
        gc.collect()
        rss_filled = _rss_mb()
        if size == sizes[0] and len(sizes) > 1:  # measured again beside the largest
            reference = (copy.deepcopy(state), probes)
        if size == sizes[-1] and reference is not None:
            cpu, again = _interleaved(state, probes, *reference, policy)
            out["smallest_beside_largest_us_per_event"] = round(again / probe * 1e6, 1)
            reference = None
        else:
            cpu = _probe_cpu(state, probes, policy)
        members = [len(d.member_ids) for d in state.disputes.values() if d.status == "open"]
        peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        out[str(size)] = {"active": state.active_count(), "accounts": len(state.index),
                          "us_per_event": round(cpu / probe * 1e6, 1),
                          "probe_cpu_seconds": round(cpu, 3),
                          "fill_seconds": round(filled, 1),
                          "fill_cpu_seconds": round(filled_cpu, 1),
                          "rss_mb_after_fill": rss_filled, "peak_rss_mb": peak,
                          "open_disputes": len(members),
                          "largest_open_dispute": max(members, default=0),
                          "workload": stats}
        print(f"decide with {state.active_count():,} active: {cpu / probe * 1e6:.1f} us of "
              f"CPU per registration ({len(state.index):,} accounts; {len(members):,} open "
              f"disputes, the largest {max(members, default=0)} members); filling the state "
              f"took {filled:.0f} s ({filled_cpu:.0f} s CPU, events built on the way); "
              f"RSS {rss_filled:,.0f} MB with the state filled, peak {peak:,.0f} MB",
              flush=True)
        del state, probes
        gc.collect()
    first, last = out[str(sizes[0])], out[str(sizes[-1])]
    beside = out.get("smallest_beside_largest_us_per_event", first["us_per_event"])
    out["ratio_largest_to_smallest"] = round(last["us_per_event"] / beside, 2)
    out["ratio_to_smallest_measured_first"] = round(
        last["us_per_event"] / first["us_per_event"], 2)
    out["largest_active"] = last["active"]
    print(f"decide cost at {sizes[-1]:,} / at {sizes[0]:,}: "
          f"{out['ratio_largest_to_smallest']} x (target <= 1.5 x; {sizes[0]:,} measured "
          f"again in turns with {sizes[-1]:,}: {beside} us; against its first measurement "
          f"{first['us_per_event']} us: {out['ratio_to_smallest_measured_first']} x)")
    return out


def _probe_cpu(state: AdjudicationState, probes: list[RegistrationSubmitted],
               policy: Policy) -> float:
    """CPU seconds `decide` takes for `probes`, in order, on `state`."""
    started = time.process_time()
    for event in probes:
        decide(state, event, DecisionContext(event.registration_id, event.submitted_at,
                                             policy))
    return time.process_time() - started


def _interleaved(state: AdjudicationState, probes: list[RegistrationSubmitted],
                 small: AdjudicationState, small_probes: list[RegistrationSubmitted],
                 policy: Policy, turns: int = 10) -> tuple[float, float]:
    """CPU seconds of `probes` on `state` and of `small_probes` on `small` (a copy of the
    smallest size's state as it was before its own probes), decided in turns of a tenth
    each: on a shared machine, minutes apart, the same code measured tens of percent
    apart; side by side, both see the same load."""
    large_cpu = small_cpu = 0.0
    step, small_step = -(-len(probes) // turns), -(-len(small_probes) // turns)
    for turn in range(turns):
        large_cpu += _probe_cpu(state, probes[turn * step:(turn + 1) * step], policy)
        small_cpu += _probe_cpu(small, small_probes[turn * small_step:
                                                    (turn + 1) * small_step], policy)
    return large_cpu, small_cpu


def _fresh_process_memory(registrations: int, how: str) -> dict[str, Any]:
    """`memory` of a long-lived partition in a process of its own: a second measurement in
    one process counted ~2 MB more (process-wide caches filled by the first)."""
    done = subprocess.run([sys.executable, __file__, "--long-lived", str(registrations),
                           "--lived-only", how], check=True, capture_output=True, text=True)
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--registrations", type=int, default=50_000)
    parser.add_argument("--long-lived", type=int, default=20_000,
                        help="registrations of the long-lived partition (one every 10 "
                        "minutes, protected 3 days: most end and are forgotten)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "decide.json")
    parser.add_argument("--scale", type=str, default=None,
                        help="comma-separated active counts (e.g. 10000,1000000): only "
                        "measure decide's CPU per event at each")
    parser.add_argument("--no-cache", action="store_true",
                        help="with --scale: make the keyed workloads afresh, neither reading "
                        "nor writing bench-results/cache/")
    parser.add_argument("--lived-only", choices=("forget", "never"), default=None,
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lived_only:
        print(json.dumps(memory(args.long_lived, "P3D", timedelta(minutes=10),
                                forget=args.lived_only == "forget")))
        return
    if args.scale:
        sizes = [int(x) for x in args.scale.split(",")]
        result = {"scaling": scaling(sizes, cache=not args.no_cache)}
        out = args.out.with_name("decide-scaling.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        return
    speed = throughput(args.events)
    print(f"decide: {speed['events']} events, best of {RUNS} {speed['best_seconds']} s -> "
          f"{speed['events_per_second']:,} events/s ({speed['us_per_event']} us/event); "
          f"median {speed['events_per_second_median']:,} events/s; "
          f"{speed['decisions']} decisions")
    mem = memory(args.registrations)
    print(f"state: {mem['state_bytes'] / 1e6:.1f} MB for {mem['active']} active registrations "
          f"-> {mem['bytes_per_active_registration']} bytes each "
          f"({mem['accounts_indexed']} accounts indexed; "
          f"{mem['bytes_per_active_registration_with_bounded_memos']} with the bounded memos)")
    lived_old, lived = (_fresh_process_memory(args.long_lived, how)
                        for how in ("never", "forget"))
    print(f"state of a long-lived partition ({args.long_lived:,} registrations, "
          f"{lived_old['active']:,} active): {lived_old['bytes_per_active_registration']:,} "
          f"bytes per active registration ({lived_old['accounts_indexed']:,} accounts "
          f"indexed); forgetting accounts (off by default): "
          f"{lived['bytes_per_active_registration']:,} bytes ({lived['accounts_indexed']:,} "
          f"accounts)")
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "throughput": speed,
        "memory": mem,
        "long_lived": lived_old,
        "long_lived_forgetting_accounts": lived,
        "targets": {"events_per_second": 30_000, "bytes_per_active_registration": 1024},
        "meets_targets": speed["events_per_second"] >= 30_000
        and mem["bytes_per_active_registration"] < 1024,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
