"""Benchmark of shared.accounts at the design point: a million accounts in memory.

Run ``python tests/bench/bench_accounts.py [--accounts N] [--tracemalloc]``. Builds an
AccountIndex of N synthetic accounts across 30 countries, then times ``match()`` for exact
domain, exact CRM id and fuzzy name queries, and reports memory per account. Numbers are
printed and appended to ``bench-results/accounts.json``.

Not a pytest test (the file name does not start with ``test_``): it takes about a minute.
The data is generated from a fixed seed, so runs are comparable.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # runnable from a checkout without `pip install -e`
    sys.path.insert(0, str(ROOT))

from shared.accounts import (  # noqa: E402
    AccountIdentity,
    AccountIndex,
    derive_account_key,
    normalize_name,
    registrable_domain,
)

THRESHOLD = 0.9

# country, weight, top-level suffix, legal forms used there
COUNTRIES: list[tuple[str, int, str, list[str]]] = [
    ("US", 250, "com", ["Inc.", "LLC", "Corp.", "Corporation", "Co.", ""]),
    ("DE", 80, "de", ["GmbH", "AG", "GmbH & Co. KG", "KG", "SE"]),
    ("GB", 80, "co.uk", ["Ltd", "Limited", "PLC", "LLP"]),
    ("FR", 60, "fr", ["SAS", "S.A.", "SARL", "SA"]),
    ("JP", 50, "co.jp", ["K.K.", "Co., Ltd.", "Kabushiki Kaisha"]),
    ("CA", 40, "ca", ["Inc.", "Ltd.", "Corp."]),
    ("AU", 40, "com.au", ["Pty Ltd", "Pty. Ltd.", "Limited"]),
    ("NL", 30, "nl", ["B.V.", "N.V.", "BV"]),
    ("IT", 30, "it", ["S.r.l.", "S.p.A.", "SpA"]),
    ("ES", 30, "es", ["S.L.", "S.A.", "SL"]),
    ("BR", 30, "com.br", ["Ltda.", "S.A."]),
    ("IN", 30, "co.in", ["Pvt Ltd", "Private Limited", "Ltd"]),
    ("SE", 20, "se", ["AB", "AB (publ)"]),
    ("CH", 20, "ch", ["AG", "GmbH", "SA"]),
    ("PL", 20, "pl", ["Sp. z o.o.", "S.A."]),
    ("MX", 20, "com.mx", ["S.A. de C.V.", "S. de R.L. de C.V."]),
    ("BE", 15, "be", ["NV", "BV", "SA"]),
    ("AT", 15, "at", ["GmbH", "AG"]),
    ("DK", 10, "dk", ["A/S", "ApS"]),
    ("NO", 10, "no", ["AS", "ASA"]),
    ("FI", 10, "fi", ["Oy", "Oyj"]),
    ("IE", 10, "ie", ["Ltd", "Limited", "DAC"]),
    ("SG", 10, "com.sg", ["Pte. Ltd.", "Pte Ltd"]),
    ("NZ", 10, "co.nz", ["Limited", "Ltd"]),
    ("PT", 10, "pt", ["Lda.", "S.A."]),
    ("CZ", 10, "cz", ["s.r.o.", "a.s."]),
    ("ZA", 10, "co.za", ["(Pty) Ltd", "Ltd"]),
    ("KR", 10, "co.kr", ["Co., Ltd.", "Inc."]),
    ("IL", 10, "co.il", ["Ltd."]),
    ("AR", 10, "com.ar", ["S.A.", "S.R.L."]),
]


def _words(text: str) -> list[str]:
    return text.split()


ONSETS = _words(
    "ac al ar bel bri cal cor dal del el fen gal gen hal har in jor kal kor lan lor mar mer "
    "mon nor nov or pal per quin ral ros sal ser sol tal ter ul val ver vin wal xen yor zan "
    "zel bra cro dra fro gra pri stra tri"
)
MIDDLES = ["", "a", "e", "i", "o", "u", "ar", "en", "is", "on", "el", "ri"]
ENDINGS = _words(
    "tex tron ix ex ia us co ra na lex nova dyne gen tek sys lytics works ware link soft data "
    "core med bio fin logic byte cloud form wave point"
)
INDUSTRY = _words(
    "Solutions Systems Technologies Group Holdings Consulting Services Partners Logistics "
    "Manufacturing Industries Software Analytics Networks Energy Foods Pharma Capital Media "
    "Labs Engineering Retail Health Security Digital Robotics Materials Trading Ventures"
)
QUALIFIERS = _words(
    "Global International North South East West Pacific Atlantic Euro Advanced United "
    "National Premier First Blue Green Red Silver Golden Alpine Metro Coastal Central"
)
SURNAMES = _words(
    "Smith Johnson Williams Brown Jones Miller Davis Garcia Wilson Anderson Taylor Thomas "
    "Moore Martin Jackson Thompson White Harris Clark Lewis Robinson Walker Young Allen King "
    "Wright Scott Hill Green Adams Baker Nelson Carter Mitchell Roberts Turner Phillips "
    "Campbell Parker Evans Edwards Collins Stewart Morris Murphy Cook Rogers Morgan Cooper "
    "Peterson Reed Bailey Bell Kelly Howard Ward Cox Richardson Wood Watson Brooks Bennett "
    "Gray Hughes Price Sanders Myers Long Ross Foster Mueller Schmidt Schneider Fischer Weber "
    "Meyer Wagner Becker Schulz Hoffmann Koch Richter Klein Wolf Schroeder Neumann Dubois "
    "Lefebvre Moreau Laurent Rossi Russo Ferrari Esposito Bianchi Tanaka Suzuki Watanabe "
    "Novak Kowalski Nowak Jansen Visser Smit Andersson Johansson Nielsen Hansen Silva Santos"
)


def brand(rnd: random.Random) -> str:
    word = rnd.choice(ONSETS) + rnd.choice(MIDDLES) + rnd.choice(ENDINGS)
    if rnd.random() < 0.6:
        word = rnd.choice(ONSETS) + rnd.choice(MIDDLES) + word
    return word.capitalize()


def company_name(rnd: random.Random, legal_forms: list[str]) -> str:
    roll = rnd.random()
    if roll < 0.45:
        core = f"{brand(rnd)} {rnd.choice(INDUSTRY)}"
    elif roll < 0.65:
        core = f"{brand(rnd)} {rnd.choice(QUALIFIERS)} {rnd.choice(INDUSTRY)}"
    elif roll < 0.80:
        core = brand(rnd)
    elif roll < 0.95:
        core = f"{rnd.choice(SURNAMES)} & {rnd.choice(SURNAMES)} {rnd.choice(INDUSTRY)}"
    else:  # names made only of common words: the blocking worst case
        core = f"{rnd.choice(QUALIFIERS)} {rnd.choice(INDUSTRY)} {rnd.choice(INDUSTRY)}"
    return f"{core} {rnd.choice(legal_forms)}".strip()


def to_base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def typo(rnd: random.Random, text: str) -> str:
    """One random edit (substitution, deletion, insertion or transposition) in the name."""
    letters = [i for i, ch in enumerate(text) if ch.isalpha()]
    if len(letters) < 2:
        return text
    i = rnd.choice(letters[:-1])
    kind = rnd.randrange(4)
    if kind == 0:
        return text[:i] + rnd.choice("aeioustrnl") + text[i + 1 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    if kind == 2:
        return text[:i] + rnd.choice("aeioustrnl") + text[i:]
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def time_queries(
    index: AccountIndex, queries: list[AccountIdentity], threshold: float = THRESHOLD
) -> dict[str, Any]:
    for query in queries[:200]:  # warm-up
        index.match(query, threshold)
    micros: list[float] = []
    found = 0
    clock = time.perf_counter_ns
    for query in queries:
        start = clock()
        result = index.match(query, threshold)
        micros.append((clock() - start) / 1000.0)
        found += bool(result)
    return {
        "queries": len(queries),
        "hit_rate": round(found / len(queries), 4),
        "p50_us": round(percentile(micros, 50), 1),
        "p99_us": round(percentile(micros, 99), 1),
        "max_us": round(max(micros), 1),
        "mean_us": round(statistics.fmean(micros), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--candidate-budget", type=int, default=None)
    parser.add_argument("--seed", type=int, default=20_241_122)
    parser.add_argument(
        "--tracemalloc", action="store_true", help="measure memory with tracemalloc (slower)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "accounts.json")
    args = parser.parse_args()

    rnd = random.Random(args.seed)
    countries = list(COUNTRIES)
    weights = [c[1] for c in countries]
    sample_every = max(1, args.accounts // (args.queries * 2))
    samples: list[tuple[str, str, str, str]] = []  # (name, country code, domain, crm id)

    index = (
        AccountIndex()
        if args.candidate_budget is None
        else AccountIndex(candidate_budget=args.candidate_budget)
    )
    gc.collect()
    if args.tracemalloc:
        tracemalloc.start()
    rss_before = rss_bytes()
    build_start = time.perf_counter()
    country_choices = rnd.choices(countries, weights=weights, k=args.accounts)
    for i, (code, _, tld, legal_forms) in enumerate(country_choices):
        name = company_name(rnd, legal_forms)
        slug = normalize_name(name).replace(" ", "")[:20] or "x"
        domain = f"{slug}-{to_base36(i)}.{tld}" if rnd.random() < 0.9 else None
        crm = f"001{to_base36(i * 7919 + 12345).rjust(12, '0')}" if rnd.random() < 0.6 else None
        identity = AccountIdentity.from_raw(
            name=name, website=domain, country=code, crm_account_id=crm
        )
        index.add(derive_account_key(identity), identity)
        if i % sample_every == 0 and domain and crm:
            samples.append((name, code, domain, crm))
    build_seconds = time.perf_counter() - build_start
    # The normalisation memo caches are bounded and not part of the index.
    normalize_name.cache_clear()
    registrable_domain.cache_clear()
    gc.collect()
    rss_after = rss_bytes()
    traced = tracemalloc.get_traced_memory()[0] if args.tracemalloc else None
    if args.tracemalloc:
        tracemalloc.stop()
    del country_choices
    accounts = len(index)

    qrnd = random.Random(args.seed + 1)
    picks = [qrnd.choice(samples) for _ in range(args.queries)]
    domain_queries = [
        AccountIdentity(None, registrable_domain(d), None, None) for _, _, d, _ in picks
    ]
    crm_queries = [AccountIdentity(c, None, None, None) for _, _, _, c in picks]

    def variant(name: str, code: str) -> AccountIdentity:
        legal = next(c[3] for c in COUNTRIES if c[0] == code)
        core = normalize_name(name)
        roll = qrnd.random()
        if roll < 0.35:
            raw = f"{core} {qrnd.choice(legal)}"  # same name, other legal form
        elif roll < 0.75:
            raw = typo(qrnd, core)  # one-character slip
        elif roll < 0.9:
            raw = " ".join(reversed(core.split()))  # word order
        else:
            raw = f"{core} {qrnd.choice(INDUSTRY)}"  # extra word: review band or miss
        return AccountIdentity.from_raw(name=raw, country=code)

    name_queries = [variant(n, c) for n, c, _, _ in picks]
    common_queries = [
        AccountIdentity.from_raw(
            name=f"{qrnd.choice(QUALIFIERS)} {qrnd.choice(INDUSTRY)} {qrnd.choice(INDUSTRY)}",
            country=qrnd.choice(["US", "DE", "GB"]),
        )
        for _ in range(max(1000, args.queries // 10))
    ]
    full_queries = [
        AccountIdentity.from_raw(name=n, domain=d, country=c, crm_account_id=crm)
        for n, c, d, crm in picks
    ]

    normalize_name.cache_clear()
    registrable_domain.cache_clear()
    cold: list[float] = []
    for n, c, d, _ in picks[:2000]:
        start = time.perf_counter_ns()
        AccountIdentity.from_raw(name=n + " Holdings", website="https://www." + d + "/", country=c)
        cold.append((time.perf_counter_ns() - start) / 1000.0)

    results: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "accounts": accounts,
        "countries": len(COUNTRIES),
        "candidate_budget": index._candidate_budget,
        "name_threshold": THRESHOLD,
        "build_seconds": round(build_seconds, 1),
        "adds_per_second": round(args.accounts / build_seconds),
        "rss_bytes_per_account": round((rss_after - rss_before) / accounts),
        "traced_bytes_per_account": round(traced / accounts) if traced is not None else None,
        "from_raw_uncached_p50_us": round(percentile(cold, 50), 1),
        "from_raw_uncached_p99_us": round(percentile(cold, 99), 1),
        "match_exact_domain": time_queries(index, domain_queries),
        "match_exact_crm": time_queries(index, crm_queries),
        "match_fuzzy_name": time_queries(index, name_queries),
        "match_fuzzy_name_common_words_only": time_queries(index, common_queries),
        "match_all_facets": time_queries(index, full_queries),
    }
    print(json.dumps(results, indent=2))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    history: list[Any] = []
    if args.out.exists():
        try:
            loaded = json.loads(args.out.read_text(encoding="utf-8"))
            history = loaded if isinstance(loaded, list) else [loaded]
        except json.JSONDecodeError:
            history = []
    history.append(results)
    args.out.write_text(json.dumps(history, indent=2) + "\n", encoding="utf-8")
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()
