"""In-memory index answering "which known accounts is this customer?".

The registration service asks it to resolve a submitted account to an existing account key
before appending; the adjudicator and the ownership read side ask it which accounts a
registration or query collides with. Both hold every account in memory (a million is the
design point) and ask thousands of times a second, so every look-up goes through a hash
index: exact dictionaries for CRM ids and domains, and a blocked (country, key) -> postings
index for fuzzy names, so a fuzzy query scores a few thousand candidates at most instead of
every name in the country.

Pure and deterministic: the same set of ``add`` calls, in any order, gives the same
answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

from rapidfuzz import fuzz, process

from shared.accounts.identity import AccountIdentity
from shared.accounts.normalize import name_forms, normalize_name, sort_name_tokens
from shared.accounts.salesforce import (
    CrmIds,
    any_case,
    any_spelling,
    salesforce_18,
    salesforce_18_any_case,
)
from shared.accounts.sameness import Identifiers

__all__ = ["UNKNOWN_COUNTRY", "AccountIndex", "AccountMatch", "BroughtNames",
           "CountrylessNames", "MatchedBy", "countries_weighed", "countryless_readings",
           "match_order", "strength",
           "weighs_countryless"]

MatchedBy = Literal["crm_account_id", "domain", "name"]

UNKNOWN_COUNTRY: Final = ""
"""Where a name filed without a country is filed: compared with every country's names,
never confidently (`AccountIndex.match`, `AccountMatch.any_country`)."""

CountrylessNames: TypeAlias = Literal["ask", "hold"]
"""Policy `match.countryless_names`: whether a name filed without a country is weighed
against a later filing that gives one (`hold`) or only against those that give none
(`ask`; `weighs_countryless`)."""


def weighs_countryless(country: str | None, countryless: CountrylessNames) -> bool:
    """Whether a name asked in `country` (None or "": without one) is weighed against the
    names filed without a country -- the one rule of policy `match.countryless_names`,
    for the index (`AccountIndex.match`) and the edge's fall-back query alike
    (`countries_weighed`). A query without a country always is (it cannot walk past a
    holder: it waits for a person); one with a country only under `hold` (under `ask`, the
    default since session 29, a name filed without a country *asks but does not hold*: it
    protects its holder against filings with a country by its identifiers alone)."""
    return not country or countryless == "hold"


def countries_weighed(country: str | None, known: Iterable[str],
                      countryless: CountrylessNames) -> list[str]:
    """The countries whose names a name asked in `country` (None or "": without one) is
    weighed against, `known` the countries names are filed in: without a country the
    unknown one and every other; with one its own, and the unknown one when
    `weighs_countryless` says so."""
    if not country:
        return [UNKNOWN_COUNTRY, *sorted(c for c in known if c != UNKNOWN_COUNTRY)]
    return [country, UNKNOWN_COUNTRY] if weighs_countryless(country, countryless) \
        else [country]

def countryless_readings(raw_name: str | None, name: str | None, known: Iterable[str]
                         ) -> list[tuple[str, str]]:
    """The other readings of a name asked without a country (`name`, its normalised
    country-less reading, any place qualifier dropped), `known` the countries names are
    filed in: (country, reading) for each country whose reading of the raw spelling
    (`normalize_name(raw_name, country)`: a qualifier naming another country kept) is
    another name. A country-less query is weighed with both readings against every
    country (session 30: "Acme Robotics Corp (UK)" without a country is "acme robotics",
    and matched nothing against a US holder filed under that very spelling, "acme
    robotics corp uk", which the same query giving US matched exactly). The one rule for
    the index (`AccountIndex.match`) and the edge's fall-back query alike; never
    confident (a country-less query never is), so it joins nobody: a person decides."""
    if not raw_name or not name or not (
            "(" in raw_name or "[" in raw_name or "-" in raw_name or not raw_name.isascii()):
        return []
    out: list[tuple[str, str]] = []
    for country in sorted(known):
        if country != UNKNOWN_COUNTRY:
            reading = normalize_name(raw_name, country)
            if reading and reading != name:
                out.append((country, reading))
    return out


# Exact identifiers outrank a name even when the name matches perfectly: two companies can
# share a name, they cannot share a CRM record.
_EVIDENCE_RANK: Final[dict[str, int]] = {"crm_account_id": 2, "domain": 1, "name": 0}

# Scores are floats from rapidfuzz; a name whose score is 0.9 on paper may come back as
# 0.8999999999. The tolerance keeps threshold comparisons from hinging on that last bit.
_EPSILON: Final = 1e-9

# Tokens at least this long also get prefix and suffix blocking keys so that a typo inside
# a token ("mircosoft" for "microsoft") still shares a key with the right name.
_IDENTIFIERS_MEMO: Final = 4_096

_AFFIX_MIN_TOKEN: Final = 5
_AFFIX_LEN: Final = 4

_Postings: TypeAlias = "str | tuple[str, ...] | list[str]"
"""Names filed under one blocking key. Postings hold the name strings themselves (shared
with ``owners``, so only a pointer each) rather than integer ids: gathering candidates is
then a C-level tuple/list/set union and the strings go straight to rapidfuzz, which
measured ~40% faster than dereferencing ids. A bare str stands for the (very common)
single posting, so a rare token costs one dict slot instead of a container; up to
``_TUPLE_POSTINGS`` names are an exact-size tuple (no list header, no growth slack: 16
bytes a key and a quarter of the slots saved), more a list that grows in place."""

_TUPLE_POSTINGS: Final = 32


@dataclass(frozen=True, slots=True)
class AccountMatch:
    """One known account that the queried identity may be.

    ``confident`` is False for a name match inside the review band: a possible duplicate
    that a person should look at, never to be merged or ignored silently.
    """

    account_key: str
    matched_by: MatchedBy
    score: float
    confident: bool
    any_country: bool = False
    """A name scoring at or above the threshold across countries (the query's country or
    the matched name's is unknown): not confident -- the country that would make the name
    evidence is unknown, so it never merges or decides -- but as strong as a confident
    name for `sameness.for_a_person`: a person sees it (session 27, rival review: a rival
    that left the country out had its name compared with nothing)."""


def _strength(match: AccountMatch) -> tuple[bool, float, int]:
    return (match.confident, match.score, _EVIDENCE_RANK[match.matched_by])


def _sort_key(match: AccountMatch) -> tuple[bool, float, int, str]:
    return (not match.confident, -match.score, -_EVIDENCE_RANK[match.matched_by], match.account_key)


strength = _strength
"""How strong a match's evidence is: `AccountIndex.match` keeps each account's strongest."""
match_order = _sort_key
"""The order of `AccountIndex.match`'s answer."""


def blocking_keys(sorted_name: str) -> set[str]:
    """Keys under which a name is filed: each token, plus ^prefix / suffix$ of long tokens.

    Public because the read side files names under the same keys in the database
    (`account_name_keys`), and the edge looks them up there: one function, one truth.

    Normalised names hold only letters, digits and spacing marks, so ``^`` and ``$`` cannot
    collide with a real token.
    """
    keys: set[str] = set()
    for token in sorted_name.split():
        keys.add(token)
        if len(token) >= _AFFIX_MIN_TOKEN:
            keys.add("^" + token[:_AFFIX_LEN])
            keys.add(token[-_AFFIX_LEN:] + "$")
    return keys


_KEYS_MEMO: dict[str, tuple[str, ...]] = {}
_KEYS_MEMO_SIZE: Final = 256


def _keys_of(sorted_name: str) -> tuple[str, ...]:
    """`blocking_keys`, memoised for the few names in flight: a registration asks for its
    name's keys two or three times in a row (its own key's evidence, filing it, its
    collisions). Bounded and cleared when full: a cache, never state."""
    found = _KEYS_MEMO.get(sorted_name)
    if found is None:
        if len(_KEYS_MEMO) >= _KEYS_MEMO_SIZE:
            _KEYS_MEMO.clear()
        found = _KEYS_MEMO[sorted_name] = tuple(blocking_keys(sorted_name))
    return found


_SORTED_MEMO: dict[str, str] = {}


def _sorted(name: str) -> str:
    """`sort_name_tokens`, memoised like `_keys_of`: the adjudicator files a name in two
    indexes and asks about it again, and each call would otherwise make a new string (two
    indexes holding two copies of one name). Bounded and cleared when full: a cache."""
    found = _SORTED_MEMO.get(name)
    if found is None:
        if len(_SORTED_MEMO) >= _KEYS_MEMO_SIZE:
            _SORTED_MEMO.clear()
        found = _SORTED_MEMO[name] = sort_name_tokens(name)
    return found


def name_floor(name_threshold: float, review_band: float) -> float:
    """The lowest name score `AccountIndex.match` returns (confident or for review)."""
    return name_threshold - review_band - _EPSILON


def name_length_window(length: int, floor: float) -> tuple[int, int]:
    """The lengths (inclusive) a token-sorted name must have to score at least `floor`
    against one of `length` characters under :func:`~shared.accounts.normalize.
    name_similarity` (rapidfuzz's ratio, ``1 - indel / (a + b)``; the indel distance is at
    least ``|a - b|``, so a score of `floor` needs ``2 * min(a, b) >= floor * (a + b)``).
    Padded by one each side against rounding: a filter, never a match (names inside it are
    still scored). What the directory's fallback query may leave out
    (services/registration/adapters/directory.py)."""
    if floor <= 0.0:
        return 0, _MAX_LENGTH
    low = max(0, math.floor(length * floor / (2.0 - floor)) - 1)
    high = min(_MAX_LENGTH, math.ceil(length * (2.0 - floor) / floor) + 1)
    return low, high


_MAX_LENGTH: Final = 2**31 - 1


def best_name_score(a: tuple[tuple[str, frozenset[str]], ...],
                    b: tuple[tuple[str, frozenset[str]], ...],
                    known_country: bool = False,
                    countryless: CountrylessNames = "hold") -> float:
    """The best `fuzz.ratio` (as a fraction) between a name of `a` and one of `b` that
    may be one company's by country, 0.0 when no two may: `AccountIndex.name_score` of two
    keys' `AccountIndex.filed_names`, `a` the names of the key filed later (the one that
    asked). A pair may be one company's when `a`'s name, asked in a country it is filed
    in, weighs `b`'s (`weighed`: `countries_weighed` under `countryless`, the one rule
    `match` weighs by; session 30: a settlement weighed a name filed without a country
    against every country's, whoever filed first). `known_country`: one known country in
    common (what a name may decide by)."""
    best = 0.0
    for sa, in_a in a:
        for sb, in_b in b:
            score = fuzz.ratio(sa, sb) / 100.0
            if score <= best:
                continue
            if known_country:
                if (in_a & in_b) - _UNKNOWN_ONLY:
                    best = score
            elif weighed(in_a, in_b, countryless):
                best = score
    return best


def weighed(asking: frozenset[str], filed: frozenset[str],
            countryless: CountrylessNames) -> bool:
    """Whether a name filed in the countries `asking` (of the key filed later) was weighed
    against one filed in `filed`: one of `filed` is among `countries_weighed` of one of
    `asking` (without a country: every country; with one: its own, and the unknown one
    under `hold`)."""
    if not asking.isdisjoint(filed):
        return True
    return bool(filed) and any(not filed.isdisjoint(countries_weighed(country, filed,
                                                                      countryless))
                               for country in asking)


_UNKNOWN_ONLY: Final = frozenset({UNKNOWN_COUNTRY})


def _add_ordinal(mapping: dict[str, int | tuple[int, ...]], key: str, ordinal: int) -> None:
    current = mapping.get(key)
    if current is None:
        mapping[key] = ordinal
    elif isinstance(current, int):
        if current != ordinal:
            mapping[key] = (current, ordinal)
    elif ordinal not in current:
        mapping[key] = (*current, ordinal)


def _drop_ordinal(mapping: dict[str, int | tuple[int, ...]], key: str, ordinal: int) -> None:
    current = mapping.get(key)
    if current is None:
        return
    if isinstance(current, int):
        if current == ordinal:
            del mapping[key]
        return
    rest = tuple(o for o in current if o != ordinal)
    mapping[key] = rest[0] if len(rest) == 1 else rest


def _add_value(values: list[str | tuple[str, ...] | None], ordinal: int, value: str) -> bool:
    """File `value` for `ordinal`; True if it was new."""
    current = values[ordinal]
    if current is None:
        values[ordinal] = value
    elif isinstance(current, str):
        if current == value:
            return False
        values[ordinal] = (current, value)
    elif value not in current:
        values[ordinal] = (*current, value)
    else:
        return False
    return True


def _drop_value(values: list[str | tuple[str, ...] | None], ordinal: int, value: str) -> None:
    """Unfile `value` for `ordinal` (`_add_value` undone)."""
    current = values[ordinal]
    if current == value:
        values[ordinal] = None
    elif isinstance(current, tuple) and value in current:
        rest = tuple(v for v in current if v != value)
        values[ordinal] = rest[0] if len(rest) == 1 else rest


def _values(value: str | tuple[str, ...] | None) -> frozenset[str]:
    if value is None:
        return frozenset()
    return frozenset((value,)) if isinstance(value, str) else frozenset(value)


_DOMAIN: Final = "dom:"


_WIDE: Final = "~"
"""Prefix of a full-width Salesforce id's `any_spelling` form in the index (`_spelled`)."""


def _spelled(crm: str, salesforce: str | None) -> str | None:
    """The `any_spelling` form a non-Salesforce CRM id is also filed under, or None when
    it is a Salesforce id (`salesforce`: its strict 18) or already in that form."""
    if salesforce is not None or salesforce_18_any_case(crm) is not None:
        return None
    spelled = any_spelling(crm)
    if spelled == crm:
        return None
    # A Salesforce id in full width is its Salesforce form under `any_spelling` alone
    # (session 29): filed apart (`_WIDE`), so documents saying `any_case` or
    # `salesforce_any_case`, which look in the same map, never find it (their logs replay
    # as they decided).
    return _WIDE + spelled if len(spelled) == 18 and spelled.isalnum() \
        and salesforce_18(spelled) is not None else spelled


def _domain_key(domain: str, account_key: str) -> str:
    """`domain` in key form, as `_by_domain` files it: the account key's own string when
    the key is that domain's (no second copy of the domain)."""
    if account_key.startswith(_DOMAIN) and account_key.endswith(domain) \
            and len(account_key) == len(domain) + len(_DOMAIN):
        return account_key
    return _DOMAIN + domain


def _domains(value: str | tuple[str, ...] | None) -> frozenset[str]:
    """The domains of `_domains_of` (held in key form) as bare domains."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset((value[len(_DOMAIN):],))
    return frozenset(v[len(_DOMAIN):] for v in value)


def _ordinals(value: int | tuple[int, ...] | None) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return value


@dataclass(slots=True)
class _CountryNames:
    """The names of one country, deduplicated, with their blocking postings."""

    owners: dict[str, int | tuple[int, ...]] = field(default_factory=dict)
    """token-sorted name -> the ordinal of the account it is filed under (a tuple for the
    rare name filed under several, first filer first). The ordinals are the int objects
    the index's key map holds, so a name costs its string and one dict slot."""
    postings: dict[str, _Postings] = field(default_factory=dict)

    def add(self, sorted_name: str, ordinal: int) -> bool:
        """File `sorted_name` for `ordinal`; True if the country did not know the name."""
        owners = self.owners
        if sorted_name in owners:
            _add_ordinal(owners, sorted_name, ordinal)
            return False
        owners[sorted_name] = ordinal
        postings = self.postings
        for key in _keys_of(sorted_name):
            current = postings.get(key)
            if current is None:
                postings[key] = sorted_name
            elif isinstance(current, str):
                postings[key] = (current, sorted_name)
            elif isinstance(current, list):
                current.append(sorted_name)
            elif len(current) < _TUPLE_POSTINGS:
                postings[key] = (*current, sorted_name)
            else:
                postings[key] = [*current, sorted_name]
        return True

    def remove(self, sorted_name: str, ordinal: int) -> None:
        """Unfile `sorted_name` for `ordinal`; a name nobody else owns leaves the postings.
        Which owner is listed first carries no meaning (answers are per account), nor does
        the order of a key's postings."""
        owners = self.owners
        current = owners.get(sorted_name)
        if current is None:
            return
        if not isinstance(current, int):
            _drop_ordinal(owners, sorted_name, ordinal)
            return
        if current != ordinal:
            return
        del owners[sorted_name]
        postings = self.postings
        for key in _keys_of(sorted_name):
            current_postings = postings.get(key)
            if current_postings is None:
                continue
            if isinstance(current_postings, str):
                if current_postings == sorted_name:
                    del postings[key]
                continue
            if isinstance(current_postings, tuple):
                rest = tuple(n for n in current_postings if n != sorted_name)
                postings[key] = rest[0] if len(rest) == 1 else rest
                continue
            last = current_postings[-1]
            if last is sorted_name or last == sorted_name:
                # The usual case: a name filed a moment ago (a rejected filing's names
                # taken back in the same decision) is the last one. `list.index` would
                # compare it with every name of a long list first (a cache miss each on a
                # large state: ~9 % of decide at 500,000 registrations, session 30).
                current_postings.pop()
            else:
                i = current_postings.index(sorted_name)
                current_postings.pop()
                current_postings[i] = last  # swap-remove: the postings' order carries no meaning
            if len(current_postings) == 1:
                postings[key] = current_postings[0]

    def owners_of(self, sorted_name: str) -> tuple[int, ...]:
        return _ordinals(self.owners[sorted_name])

    def candidates(self, sorted_name: str, budget: int) -> Collection[str]:
        """Names sharing a blocking key with ``sorted_name``, gathered rarest key first.

        Keys are taken from the rarest up while the running total of postings stays within
        ``budget``; the rarest key is always taken, so a name made only of common words
        still finds its peers. A token shared by a large part of the country ("solutions",
        "group") is skipped whenever the name has rarer ones -- a name that shares nothing
        but such a token with the query rarely scores high anyway. The order of the
        returned names carries no meaning, nor does a name returned twice (only when one
        of the keys' postings is a long list: see the end).
        """
        postings = self.postings
        keys = _keys_of(sorted_name)
        chosen: list[_Postings] = []
        total = 0
        for key in keys:
            found = postings.get(key)
            if found is not None:
                chosen.append(found)
                total += 1 if isinstance(found, str) else len(found)
        if not chosen:
            return ()
        if total > budget:
            # Only then does rarity decide which keys are taken (within the budget every
            # key is, whatever the order).
            by_rarity: list[tuple[int, str, _Postings]] = []
            for key in keys:
                found = postings.get(key)
                if found is not None:
                    by_rarity.append((1 if isinstance(found, str) else len(found), key, found))
            by_rarity.sort()  # by (size, key): keys are unique, so postings never compared
            chosen = []
            total = 0
            for size, _, found in by_rarity:
                if total and total + size > budget:
                    break
                total += size
                chosen.append(found)
        if len(chosen) == 1:
            only = chosen[0]
            return (only,) if isinstance(only, str) else only  # already duplicate-free
        largest: _Postings = ""
        for found in chosen:
            if isinstance(found, list) and len(found) > len(largest):
                largest = found
        union: set[str] = set()
        for found in chosen:
            if found is largest:
                continue
            if isinstance(found, str):
                union.add(found)
            else:
                union.update(found)
        if largest:
            # A long list (a common token's, "and": 1,308 names at 500,000 registrations)
            # is not hashed into the set: the few names it shares with the other keys are
            # then scored twice, which changes no answer (each account keeps its
            # strongest evidence), and the set costs ~20 ns a name (session 30).
            return [*largest, *union]
        return union


class AccountIndex:
    """Accounts by CRM id, registrable domain and (country, normalised name).

    An account accumulates facets: every ``add`` with the same key files further CRM ids,
    domains and names under it; adding the same facts again changes nothing.

    Memory: about 560 bytes per account by tracemalloc (640 bytes of RSS) on CPython 3.11,
    for accounts with a domain (90%), a CRM id (60%) and a two-to-four-word name --
    roughly 0.6 GB for a million (``tests/bench/bench_accounts.py``). Most of it is the
    strings themselves and the dict slots of the key, domain, CRM-id and name maps; name
    postings cost a pointer each, and a key with a single posting no list at all. Keeping
    each key's identifiers for `identifiers` (what the same-customer rule compares) adds
    two list slots per account, 16 bytes (RSS +27 bytes/account measured at 200,000).
    Session 22 (the adjudicator's long-lived partition, 10,374 accounts, sys.getsizeof by
    structure): 637 -> 522 bytes per account, by filing a domain in key form (a
    ``dom:`` key's string is its only copy), names by owner ordinal (no text ids), small
    postings as exact-size tuples. What is left per account: its key string ~70 B, its
    token-sorted name ~62 B, the blocking-key strings only it has ~55 B, posting
    containers ~45 B, the name and postings dict slots ~60 B, the ordinal int 27 B and
    key-map slot 20 B, the domain and CRM maps ~58 B, the per-ordinal lists 33 B.
    """

    __slots__ = ("_by_crm", "_by_domain", "_by_salesforce", "_by_salesforce_any_case",
                 "_candidate_budget", "_countries", "_crm_of", "_domains_of", "_free",
                 "_identifiers", "_keys", "_names_of", "_ordinal")

    def __init__(self, *, candidate_budget: int = 4000) -> None:
        """``candidate_budget`` caps the postings gathered per fuzzy query (see
        :meth:`_CountryNames.candidates`): the knob between recall for names made only of
        very common words and worst-case latency."""
        if candidate_budget < 1:
            raise ValueError("candidate_budget must be positive")
        self._candidate_budget = candidate_budget
        self._keys: list[str] = []  # ordinal -> account key
        self._ordinal: dict[str, int] = {}  # account key -> ordinal
        self._by_crm: dict[str, int | tuple[int, ...]] = {}
        # Salesforce ids not filed in their canonical 18-character form (15-character ids,
        # 18-character ones with a lower-case suffix), by that form: what a look-up under
        # `match.crm_ids: salesforce` finds besides `_by_crm`'s entry for the form itself.
        self._by_salesforce: dict[str, int | tuple[int, ...]] = {}
        # 18-character Salesforce ids filed in another letter case than their suffix
        # says (001HFGAI3F5DIG9QDA), and GUIDs not filed in lower case, by their canonical
        # form (`salesforce.any_case`): what `salesforce_any_case` (Salesforce ids) and
        # `any_case` find besides the two maps above (empty unless such ids were
        # submitted; a GUID's lower-case form never is a Salesforce id's).
        self._by_salesforce_any_case: dict[str, int | tuple[int, ...]] = {}
        # Domains are filed in key form, "dom:" + domain: for the nine accounts in ten
        # whose key is that domain's, the key's string is the only copy (`_domain_key`).
        self._by_domain: dict[str, int | tuple[int, ...]] = {}
        self._countries: dict[str, _CountryNames] = {}
        # ordinal -> the identifiers filed under the key (None, one string, or a tuple):
        # what sameness.sort_out compares. The strings are the ones the maps above hold
        # (domains in key form).
        self._crm_of: list[str | tuple[str, ...] | None] = []
        self._domains_of: list[str | tuple[str, ...] | None] = []
        # ordinal -> the token-sorted names filed under it (the strings the name maps
        # hold): what `remove` takes out of the postings.
        self._names_of: list[str | tuple[str, ...] | None] = []
        self._free: list[int] = []  # ordinals of removed accounts, for reuse
        # A bounded memo of `identifiers` answers: the accounts of the decision in flight
        # are asked about several times, and a small program's hot accounts on every
        # registration. 4,096 entries (session 22): 16,384 held 11.5 KB per active
        # registration on a long-lived partition and measured no faster; 256 cost 8% of
        # decide on the 2,906-account mixed workload (hit rate 60% against 96%).
        self._identifiers: dict[str, Identifiers] = {}

    def __len__(self) -> int:
        return len(self._ordinal)

    def __contains__(self, account_key: object) -> bool:
        return account_key in self._ordinal

    def key(self, account_key: str) -> str:
        """`account_key` as the index holds it (the very string object), or `account_key`
        itself when the index does not know it: callers that keep keys (the adjudicator's
        entries) then hold one copy of each, without a process-wide `sys.intern` table
        growing with every account ever seen."""
        ordinal = self._ordinal.get(account_key)
        return account_key if ordinal is None else self._keys[ordinal]

    def add(self, account_key: str, identity: AccountIdentity) -> None:
        """File ``identity``'s facets under ``account_key`` (creating the account if new).

        Names are filed by country; a name without one under the unknown country
        (`UNKNOWN_COUNTRY`), which `match` compares with every country, never confidently.
        """
        ordinal = self._ordinal.get(account_key)
        if ordinal is None:
            if self._free:
                ordinal = self._free.pop()
                self._keys[ordinal] = account_key
            else:
                ordinal = len(self._keys)
                self._keys.append(account_key)
                self._crm_of.append(None)
                self._domains_of.append(None)
                self._names_of.append(None)
            self._ordinal[account_key] = ordinal
        if identity.crm_account_id:
            crm = identity.crm_account_id
            _add_ordinal(self._by_crm, crm, ordinal)
            if _add_value(self._crm_of, ordinal, crm):
                self._identifiers.pop(account_key, None)
                canonical = salesforce_18(crm)
                if canonical is not None and canonical != crm:
                    _add_ordinal(self._by_salesforce, canonical, ordinal)
                elif canonical is None and (restored := any_case(crm)) and restored != crm:
                    _add_ordinal(self._by_salesforce_any_case, restored, ordinal)
                if (spelled := _spelled(crm, canonical)) is not None:
                    # Under `any_spelling` too ("CRM 00123" by "crm00123"): such a form
                    # never equals a Salesforce or GUID form the map holds.
                    _add_ordinal(self._by_salesforce_any_case, spelled, ordinal)
        if identity.domain:
            domain = _domain_key(identity.domain, account_key)
            _add_ordinal(self._by_domain, domain, ordinal)
            if _add_value(self._domains_of, ordinal, domain):
                self._identifiers.pop(account_key, None)
        if identity.name:
            country = identity.country or UNKNOWN_COUNTRY
            names = self._countries.get(country)
            if names is None:
                names = self._countries[country] = _CountryNames()
            # Every name the customer is known by ("X dba Y": both, `name_forms`).
            for form in name_forms(identity.name):
                sorted_name = _sorted(form)
                names.add(sorted_name, ordinal)
                _add_value(self._names_of, ordinal, sorted_name)

    def has_name(self, account_key: str, name: str, country: str) -> bool:
        """Whether `name` (normalised) in `country` is filed under `account_key` already:
        then `add` of it would change nothing (the directory's fallback query fetches the
        same names again on every miss that shares a blocking key with them)."""
        ordinal = self._ordinal.get(account_key)
        names = self._countries.get(country)
        if ordinal is None or names is None:
            return False
        for form in name_forms(name):
            owner = names.owners.get(_sorted(form))
            if not (owner == ordinal if isinstance(owner, int) else (
                    owner is not None and ordinal in owner)):
                return False
        return True

    def new_name_forms(self, account_key: str, name: str, country: str | None
                       ) -> tuple[str, ...]:
        """The forms of `name` (normalised; "X dba Y": both) that `add` would newly file
        under `account_key` in `country` (None: the unknown one): what `unfile_names` may
        take back if the filing that brings them turns out to hold nothing."""
        ordinal = self._ordinal.get(account_key)
        names = self._countries.get(country or UNKNOWN_COUNTRY)
        if ordinal is None or names is None:
            return name_forms(name)
        return tuple(form for form in name_forms(name)
                     if ordinal not in _ordinals(names.owners.get(_sorted(form))))

    def taken_back_if_rejected(self, account_key: str, name: str, country: str | None
                               ) -> tuple[str, ...]:
        """The forms of `name` a filing under `account_key` in `country` takes back if it
        is rejected (`match.rejected_names: unfiled`): those it newly files
        (`new_name_forms`), except a form the key already has without a country that it
        files with one. The one rule for the adjudicator and the edge (session 30 rival
        review): a holder that filed its name without a country -- which asks but does not
        hold (`weighs_countryless`) -- gives the country by filing again, rejected as its
        own duplicate; taking the country back left its name holding nothing, and a rival's
        namesake with a country and another CRM id was approved beside it, unseen. Giving
        the country adds no name to the key (a fresh filing of the name with a country
        would hold as much). Unless another key already has that form in that country
        (session 30 second rival review): a name filed without a country holds nothing
        there, and a rejected filing is no evidence, so giving the country beside a holder
        of the name in it would join that holder's name to the key unweighed (a fresh
        filing with the country waits for a person there); it is taken back."""
        forms = self.new_name_forms(account_key, name, country)
        if not forms or not country:
            return forms
        ordinal = self._ordinal.get(account_key)
        unknown = self._countries.get(UNKNOWN_COUNTRY)
        if ordinal is None or unknown is None:
            return forms
        here = self._countries.get(country)
        return tuple(form for form in forms
                     if ordinal not in _ordinals(unknown.owners.get(_sorted(form)))
                     or (here is not None and _ordinals(here.owners.get(_sorted(form)))))

    def unfile_names(self, account_key: str, forms: Collection[str],
                     country: str | None) -> None:
        """Take the name `forms` filed in `country` (None: the unknown one) back from
        `account_key` (`new_name_forms` of a filing that was rejected: a filing that never
        held anything adds no names that join customers, session 29). A form the key still
        has in another country stays among its names."""
        ordinal = self._ordinal.get(account_key)
        code = country or UNKNOWN_COUNTRY
        names = self._countries.get(code)
        if ordinal is None or names is None:
            return
        for form in forms:
            sorted_name = _sorted(form)
            names.remove(sorted_name, ordinal)
            if not any(ordinal in _ordinals(other.owners.get(sorted_name))
                       for other in self._countries.values()):
                _drop_value(self._names_of, ordinal, sorted_name)

    def remove(self, account_key: str) -> bool:
        """Forget `account_key` and every facet filed under it (True if it was known).
        The index then answers exactly as if it had never been added: the same answers
        whatever was added and removed before, in any order."""
        ordinal = self._ordinal.pop(account_key, None)
        if ordinal is None:
            return False
        for crm in _values(self._crm_of[ordinal]):
            _drop_ordinal(self._by_crm, crm, ordinal)
            canonical = salesforce_18(crm)
            if canonical is not None and canonical != crm:
                _drop_ordinal(self._by_salesforce, canonical, ordinal)
            elif canonical is None and (restored := any_case(crm)) and restored != crm:
                _drop_ordinal(self._by_salesforce_any_case, restored, ordinal)
            if (spelled := _spelled(crm, canonical)) is not None:
                _drop_ordinal(self._by_salesforce_any_case, spelled, ordinal)
        for domain in _values(self._domains_of[ordinal]):
            _drop_ordinal(self._by_domain, domain, ordinal)
        for sorted_name in _values(self._names_of[ordinal]):
            for names in self._countries.values():
                names.remove(sorted_name, ordinal)
        self._crm_of[ordinal] = self._domains_of[ordinal] = self._names_of[ordinal] = None
        self._keys[ordinal] = ""
        self._free.append(ordinal)
        self._identifiers.pop(account_key, None)
        return True

    def names_match(self, a: str, b: str, name_threshold: float,
                    countryless: CountrylessNames = "hold") -> bool:
        """Whether a name filed under key `a` and one filed under key `b`, in one country,
        score at or above `name_threshold` (a confident name match, as `match` scores it).
        Asked by a settlement only for two members whose identifiers alone would separate
        them (`sameness.separate_customers`): a few names each, weighed as `match` weighs
        them (`countryless`: `name_score`)."""
        return self.name_score(a, b, countryless=countryless) >= name_threshold - _EPSILON

    def name_score(self, a: str, b: str, known_country: bool = False,
                   countryless: CountrylessNames = "hold") -> float:
        """The best score between a name filed under key `a` and one filed under key `b`
        in one country (0.0 when none shares a country): how a possible duplicate between
        two customers that identifiers separate matched by name (`names_match`; the
        evidence a settlement gives about such a pair, invariant 6). `known_country`: only
        names filed in one known country, the score a name may decide by (`match` weighs
        the unknown country's never confidently; session 27, rival review round 2).
        `best_name_score` of the two keys' `filed_names`, the key filed later asking
        (`filed_order`) under `countryless` (`match.countryless_names`; `hold`, every
        country, when no policy says): a settlement that scores many pairs asks each key's
        names once (`outcomes.Fellows`). Symmetric."""
        if self.filed_order(a) < self.filed_order(b):
            a, b = b, a
        return best_name_score(self.filed_names(a), self.filed_names(b), known_country,
                               countryless)

    def filed_order(self, account_key: str) -> int:
        """When `account_key` was first filed: a later key has a greater number (-1 for a
        key not filed). Which of two keys' names asked the other's (`name_score`)."""
        return self._ordinal.get(account_key, -1)

    def filed_names(self, account_key: str) -> tuple[tuple[str, frozenset[str]], ...]:
        """The token-sorted names filed under `account_key`, each with the countries it
        is filed in for that key (what `name_score` compares); () for an unknown key."""
        ordinal = self._ordinal.get(account_key)
        if ordinal is None:
            return ()
        return tuple((name, frozenset(self._filed_in(name, ordinal)))
                     for name in sorted(_values(self._names_of[ordinal])))

    def countries(self) -> list[str]:
        """The countries names are filed in (`UNKNOWN_COUNTRY` among them if any is)."""
        return list(self._countries)

    def _filed_in(self, sorted_name: str, ordinal: int) -> set[str]:
        """The countries `sorted_name` is filed in for `ordinal`."""
        return {country for country, names in self._countries.items()
                if (owner := names.owners.get(sorted_name)) is not None
                and ordinal in _ordinals(owner)}

    def identifiers(self, account_key: str) -> Identifiers:
        """The identifiers filed under `account_key` (plus what its form says: ``dom:x``
        always carries x). O(1)."""
        found = self._identifiers.get(account_key)
        if found is not None:
            return found
        found = Identifiers.of_key(account_key)
        ordinal = self._ordinal.get(account_key)
        if ordinal is not None:
            crm, domains = self._crm_of[ordinal], self._domains_of[ordinal]
            # A `dom:x` key with nothing filed but x (most accounts) says it all already.
            if crm is not None or (domains is not None and domains != account_key):
                # `of_key | Identifiers(crm, domains)`, built once: the key's own value is
                # usually filed under it already.
                crm_ids, domain_set = _values(crm), _domains(domains)
                if not crm_ids >= found.crm_ids:
                    crm_ids = crm_ids | found.crm_ids
                if not domain_set >= found.domains:
                    domain_set = domain_set | found.domains
                found = Identifiers(crm_ids, domain_set)
        if len(self._identifiers) >= _IDENTIFIERS_MEMO:
            self._identifiers.clear()
        self._identifiers[account_key] = found
        return found

    def match(
        self, identity: AccountIdentity, name_threshold: float, review_band: float = 0.1,
        crm_ids: CrmIds = "exact", countryless: CountrylessNames = "hold",
        raw_name: str | None = None,
    ) -> list[AccountMatch]:
        """Every known account ``identity`` may be, strongest evidence first.

        Exact CRM id and exact domain matches score 1.0. Names are compared within the
        identity's country and across countries where one side's is unknown (an identity
        with no country: every country's names; with one: also the names filed without
        one, unless ``countryless`` -- policy `match.countryless_names` -- says `ask`:
        `weighs_countryless`), a match across countries never confident
        (`AccountMatch.any_country` when it scored at or above the threshold), with
        :func:`shared.accounts.normalize.name_similarity`: a score at or above
        ``name_threshold`` is confident; one in ``[name_threshold - review_band,
        name_threshold)`` is returned with ``confident=False`` for review. Each account
        appears once, with its strongest evidence; ties are ordered by account key.
        ``crm_ids`` (policy `match.crm_ids`): under `salesforce` a valid Salesforce id
        matches every account filed under either spelling of it (its 18-character form);
        under `salesforce_any_case` also an 18-character spelling in another letter case;
        under `any_case` also a GUID in another letter case. ``raw_name``: the name as
        given, for a query without a country: also weighed as each country reads it
        (`countryless_readings`), never confidently.
        """
        found = self._match(identity, name_threshold, review_band, crm_ids, countryless)
        if identity.country or not raw_name:
            return found
        readings = countryless_readings(raw_name, identity.name, self._countries)
        if not readings:
            return found
        best = {m.account_key: m for m in found}
        floor = name_floor(name_threshold, review_band)
        for country, reading in readings:
            names = self._countries[country]
            for form in name_forms(reading):
                query = _sorted(form)
                candidates = names.candidates(query, self._candidate_budget)
                for text, raw_score, _ in process.extract(
                        query, candidates, scorer=fuzz.ratio, score_cutoff=floor * 100.0,
                        limit=None):
                    score = raw_score / 100.0
                    for ordinal in names.owners_of(text):
                        key = self._keys[ordinal]
                        candidate = AccountMatch(key, "name", score, False,
                                                 score >= name_threshold - _EPSILON)
                        current = best.get(key)
                        if current is None or _strength(candidate) > _strength(current):
                            best[key] = candidate
        return sorted(best.values(), key=_sort_key)

    def _match(
        self, identity: AccountIdentity, name_threshold: float, review_band: float,
        crm_ids: CrmIds, countryless: CountrylessNames,
    ) -> list[AccountMatch]:
        if not 0.0 < name_threshold <= 1.0:
            raise ValueError("name_threshold must be in (0, 1]")
        if not 0.0 <= review_band < name_threshold:
            raise ValueError("review_band must be in [0, name_threshold)")
        if identity.name and " dba " in identity.name:
            forms = name_forms(identity.name)
            if len(forms) > 1:
                return self._match_forms(identity, forms, name_threshold, review_band,
                                         crm_ids, countryless)
        keys = self._keys
        crm_found: int | tuple[int, ...] | None = None
        if identity.crm_account_id:
            crm = identity.crm_account_id
            canonical = (salesforce_18(crm) if crm_ids == "salesforce"
                         else salesforce_18_any_case(crm) if crm_ids == "salesforce_any_case"
                         else any_case(crm) if crm_ids == "any_case"
                         else any_spelling(crm) if crm_ids == "any_spelling"
                         else None)
            if canonical is not None:
                crm_found = (*_ordinals(self._by_crm.get(canonical)),
                             *_ordinals(self._by_salesforce.get(canonical)),
                             *(_ordinals(self._by_salesforce_any_case.get(canonical))
                               if crm_ids in ("salesforce_any_case", "any_case",
                                              "any_spelling") else ()),
                             *(_ordinals(self._by_salesforce_any_case.get(_WIDE + canonical))
                               if crm_ids == "any_spelling" and len(canonical) == 18
                               else ()))
            else:
                crm_found = self._by_crm.get(crm)
        domain_found = self._by_domain.get(_DOMAIN + identity.domain) \
            if identity.domain else None
        names: _CountryNames | None = None
        query = ""
        candidates: Collection[str] = ()
        if identity.name and (not identity.country or (
                UNKNOWN_COUNTRY in self._countries
                and weighs_countryless(identity.country, countryless))):
            # A country unknown on either side: the name is compared across countries,
            # never confidently (`AccountMatch.any_country`). Leaving the country out must
            # not hide a registration's name from the holders it matches (session 27,
            # rival review), nor -- under `match.countryless_names: hold` -- a holder's
            # from its rivals (under `ask` a name filed without a country asks but does
            # not hold, session 29).
            return self._match_any_country(identity, crm_found, domain_found,
                                           name_threshold, review_band, countryless)
        if identity.name and identity.country:
            names = self._countries.get(identity.country)
            if names is not None:
                query = _sorted(identity.name)
                candidates = names.candidates(query, self._candidate_budget)
        if not candidates:
            # No name to score (the exact look-up, or no name shares a blocking key): at
            # most one account by each identifier, answered without gathering (what the
            # walk below would answer).
            if crm_found is None or crm_found == ():  # (ordinal 0 is an account)
                if domain_found is None:
                    return []
                if type(domain_found) is int:
                    return [AccountMatch(keys[domain_found], "domain", 1.0, True)]
            elif type(crm_found) is int and (domain_found is None or domain_found == crm_found):
                return [AccountMatch(keys[crm_found], "crm_account_id", 1.0, True)]
        best: dict[int, AccountMatch] = {}

        def offer(ordinal: int, candidate: AccountMatch) -> None:
            current = best.get(ordinal)
            if current is None or _strength(candidate) > _strength(current):
                best[ordinal] = candidate

        for ordinal in _ordinals(crm_found):
            offer(ordinal, AccountMatch(keys[ordinal], "crm_account_id", 1.0, True))
        for ordinal in _ordinals(domain_found):
            offer(ordinal, AccountMatch(keys[ordinal], "domain", 1.0, True))
        if names is not None and candidates:
            self._match_names(names, query, candidates, name_threshold, review_band, offer)
        return sorted(best.values(), key=_sort_key)

    def _match_forms(
        self, identity: AccountIdentity, forms: tuple[str, ...], name_threshold: float,
        review_band: float, crm_ids: CrmIds, countryless: CountrylessNames,
    ) -> list[AccountMatch]:
        """`match` of a name known in several forms ("X dba Y"): each form asked as the
        name, each account kept once with its strongest evidence."""
        best: dict[str, AccountMatch] = {}
        for form in forms:
            asked = AccountIdentity(identity.crm_account_id, identity.domain, form,
                                    identity.country)
            for found in self.match(asked, name_threshold, review_band, crm_ids,
                                    countryless):
                current = best.get(found.account_key)
                if current is None or _strength(found) > _strength(current):
                    best[found.account_key] = found
        return sorted(best.values(), key=_sort_key)

    def _match_any_country(
        self,
        identity: AccountIdentity,
        crm_found: int | tuple[int, ...] | None,
        domain_found: int | tuple[int, ...] | None,
        name_threshold: float,
        review_band: float,
        countryless: CountrylessNames,
    ) -> list[AccountMatch]:
        """`match` when a country is unknown: identifiers as ever; a name with no country
        against every country's names, one with a country against its own country's (as
        ever) and the unknown country's (`countries_weighed`: asked here only when
        `weighs_countryless`); a match across countries (either side's unknown) is a
        possible duplicate at most."""
        keys = self._keys
        best: dict[int, AccountMatch] = {}

        def offer(ordinal: int, candidate: AccountMatch) -> None:
            current = best.get(ordinal)
            if current is None or _strength(candidate) > _strength(current):
                best[ordinal] = candidate

        def offer_unsure(ordinal: int, candidate: AccountMatch) -> None:
            offer(ordinal, AccountMatch(candidate.account_key, "name", candidate.score,
                                        False, candidate.confident))

        for ordinal in _ordinals(crm_found):
            offer(ordinal, AccountMatch(keys[ordinal], "crm_account_id", 1.0, True))
        for ordinal in _ordinals(domain_found):
            offer(ordinal, AccountMatch(keys[ordinal], "domain", 1.0, True))
        query = _sorted(identity.name or "")
        own = identity.country or None  # "": without one, as None
        countries = [c for c in countries_weighed(own, self._countries, countryless)
                     if c in self._countries]
        for country in countries:
            names = self._countries[country]
            candidates = names.candidates(query, self._candidate_budget)
            if candidates:
                self._match_names(names, query, candidates, name_threshold, review_band,
                                  offer if country == own else offer_unsure)
        return sorted(best.values(), key=_sort_key)

    def _match_names(
        self,
        names: _CountryNames,
        query: str,
        candidates: Collection[str],
        name_threshold: float,
        review_band: float,
        offer: Callable[[int, AccountMatch], None],
    ) -> None:
        """Offer each of `candidates` (`names.candidates` of the token-sorted `query`)
        scoring within the review band."""
        floor = name_floor(name_threshold, review_band)
        # fuzz.ratio on token-sorted strings is exactly name_similarity(); extract runs the
        # whole candidate collection in C with the cutoff's length filter, limit=None keeps
        # every name above the floor.
        scored = process.extract(
            query, candidates, scorer=fuzz.ratio, score_cutoff=floor * 100.0, limit=None
        )
        keys, owners = self._keys, names.owners
        for text, raw_score, _ in scored:
            score = raw_score / 100.0
            confident = score >= name_threshold - _EPSILON
            owner = owners[text]  # names.owners_of(text), without building a tuple
            if isinstance(owner, int):
                offer(owner, AccountMatch(keys[owner], "name", score, confident))
                continue
            for ordinal in owner:
                offer(ordinal, AccountMatch(keys[ordinal], "name", score, confident))

    def resolve(self, identity: AccountIdentity, name_threshold: float,
                crm_ids: CrmIds = "exact", countryless: CountrylessNames = "hold"
                ) -> AccountMatch | None:
        """The existing account to reuse for ``identity``, or None to create a new one.

        Only confident evidence counts, taken in order CRM id, then domain, then name;
        within one kind the highest score wins, then the smallest account key. When more
        than one account qualifies (see :meth:`match`), the choice is still deterministic,
        and the others remain visible to whoever calls :meth:`match`.
        """
        confident = [m for m in self.match(identity, name_threshold, 0.0, crm_ids, countryless)
                     if m.confident]
        if not confident:
            return None
        return min(
            confident,
            key=lambda m: (-_EVIDENCE_RANK[m.matched_by], -m.score, m.account_key),
        )


@dataclass(slots=True)
class _Brought:
    """The name forms one filing brought to its key (new there when it filed them) that
    are still its to take back, each with the undecided filings that filed it since."""

    account_key: str
    country: str | None
    name: str
    forms: dict[str, list[str]]
    """form -> the ids of filings, not yet decided, that filed it under the key since."""
    void: dict[str, list[str]] = field(default_factory=dict)
    """form -> the ids of filings that filed it since and were rejected (they counted for
    nothing): the directory read model's row of the form may name one of them as its
    latest filer, so taking the form back names them too (`rejected_void`)."""


@dataclass(slots=True)
class BroughtNames:
    """Which name forms a filing that may still be rejected brought to its key, and who
    else filed them since: the one bookkeeping of policy `match.rejected_names: unfiled`
    for the adjudicator (`AdjudicationState.brought`) and the edge
    (`AccountDirectory`), so both take back the same forms (session 29 decision, done in
    session 30: a filing rejected at its decision *or after review* adds no names that
    join customers).

    Rule: a rejected filing takes back the forms it brought that no other live filing
    filed under its key (in its country) since. A filing that filed one of them and is
    live -- decided approved or in review (`held`, `waits`), or `filed` as decided --
    keeps it for good (its own record names it not: it was not new then, and the
    directory read model files a row for the first filer only). One not yet decided
    (the edge learns decisions after its appends) is a co-filer: if it is rejected too it
    counts for nothing; if the bringer is rejected first, the form passes to it, as the
    adjudicator (deciding in order) would have unfiled it and then seen it brought anew.
    Pure and deterministic; small: only filings with a record (in review, or undecided at
    the edge) are held."""

    brought: dict[str, _Brought] = field(default_factory=dict)
    """filing id -> its record, oldest first."""
    on_key: dict[str, list[str]] = field(default_factory=dict)
    """account key -> the ids with a record under it."""
    cofiled: dict[str, list[str]] = field(default_factory=dict)
    """undecided filing id -> the ids whose records name it as a co-filer."""

    def __len__(self) -> int:
        return len(self.brought)

    def __contains__(self, filing_id: object) -> bool:
        return filing_id in self.brought or filing_id in self.cofiled

    def bring(self, filing_id: str, account_key: str, name: str, country: str | None,
              forms: Iterable[str]) -> None:
        """`filing_id` newly filed `forms` (of `name`) under `account_key` in `country`:
        its to take back if it is rejected."""
        record = self.brought.get(filing_id)
        if record is None:
            record = _Brought(account_key, country, name, {})
        for form in forms:
            record.forms.setdefault(form, [])
        if not record.forms or filing_id in self.brought:
            return
        self.on_key.setdefault(account_key, []).append(filing_id)
        self.brought[filing_id] = record

    def filed(self, filing_id: str, account_key: str, name: str, country: str | None,
              new: Collection[str], decided: bool) -> None:
        """`filing_id` filed `name` under `account_key` in `country`, `new` the forms that
        were new there (its own to `bring`). Another filing's record loses the forms this
        one filed again (`decided`: it is live) or names it as their co-filer."""
        ids = self.on_key.get(account_key)
        if not ids:
            return
        again = set(name_forms(name)).difference(new)
        if not again:
            return
        here = country or UNKNOWN_COUNTRY
        for other in list(ids):
            if other == filing_id:
                continue
            record = self.brought[other]
            if (record.country or UNKNOWN_COUNTRY) != here:
                continue
            for form in again.intersection(record.forms):
                if decided:
                    del record.forms[form]
                elif filing_id not in record.forms[form]:
                    record.forms[form].append(filing_id)
                    self.cofiled.setdefault(filing_id, []).append(other)
            if not record.forms:
                self._drop(other)

    def waits(self, filing_id: str) -> None:
        """`filing_id` is decided in review: live, so the forms it co-filed stay for good;
        its own record stays until a person decides it."""
        self._live(filing_id)

    def held(self, filing_id: str) -> None:
        """`filing_id` is approved (or ended otherwise than by a rejection): it held
        something, so every form it filed stays for good."""
        self._live(filing_id)
        self._drop(filing_id)

    def rejected(self, filing_id: str) -> tuple[str, tuple[str, ...], str | None, str] | None:
        """`filing_id` is rejected: (its key, the forms to take back, its country, its
        name), or None when it has nothing to take back. It co-filed nothing; a form it
        brought that an undecided filing filed since passes to that filing."""
        taken, _ = self.rejected_void(filing_id)
        return taken

    def rejected_void(self, filing_id: str) -> tuple[
            tuple[str, tuple[str, ...], str | None, str] | None, tuple[str, ...]]:
        """`rejected`, and the filings that filed the taken forms since and counted for
        nothing (rejected themselves, in filing order): the directory read model takes the
        forms back from their rows too (`unfiled_cofilers`; session 30 crfix)."""
        for other in self.cofiled.pop(filing_id, ()):
            record = self.brought.get(other)
            if record is not None:
                for form, filers in record.forms.items():
                    if filing_id in filers:
                        filers.remove(filing_id)
                        record.void.setdefault(form, []).append(filing_id)
        record = self.brought.get(filing_id)
        if record is None:
            return None, ()
        self._drop(filing_id)
        taken: list[str] = []
        void: list[str] = []
        for form, filers in record.forms.items():
            if not filers:
                taken.append(form)
                void.extend(v for v in record.void.get(form, ()) if v not in void)
                continue
            heir, rest = filers[0], filers[1:]
            found = self.brought.get(heir)
            if found is None:
                found = self.brought[heir] = _Brought(record.account_key, record.country,
                                                      record.name, {})
                self.on_key.setdefault(record.account_key, []).append(heir)
            found.forms[form] = rest
            if form in record.void:
                found.void[form] = [*record.void[form], *found.void.get(form, ())]
            for filer in rest:
                self.cofiled.setdefault(filer, []).append(heir)
        if not taken:
            return None, ()
        return (record.account_key, tuple(taken), record.country, record.name), tuple(void)

    def forget_oldest(self) -> None:
        """Drop the oldest record (a bounded memory: the edge's)."""
        if self.brought:
            self._drop(next(iter(self.brought)))

    def _live(self, filing_id: str) -> None:
        for other in self.cofiled.pop(filing_id, ()):
            record = self.brought.get(other)
            if record is None:
                continue
            for form in [f for f, filers in record.forms.items() if filing_id in filers]:
                del record.forms[form]
            if not record.forms:
                self._drop(other)

    def _drop(self, filing_id: str) -> None:
        record = self.brought.pop(filing_id, None)
        if record is None:
            return
        for filers in record.forms.values():
            for filer in filers:
                owed = self.cofiled.get(filer)
                if owed is not None and filing_id in owed:
                    owed.remove(filing_id)
                    if not owed:
                        del self.cofiled[filer]
        ids = self.on_key.get(record.account_key)
        if ids is not None and filing_id in ids:
            ids.remove(filing_id)
            if not ids:
                del self.on_key[record.account_key]
