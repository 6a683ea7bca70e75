"""One seeded, realistic registration workload: who the customers really are, and how
partners type them.

Used by the realistic-workload test (tests/property/test_realistic_workload.py),
the stateful property tests (tests/property/) and the benchmarks (tests/bench/). The
generator knows the truth (which registrations are for the same company), so a test can
compare what dealreg concluded with what was meant.

What it makes (deterministic for a given seed and Faker version):

- **Companies** with Faker names from four locales (US, GB, DE, FR) and a mix of countries,
  many of them built from words companies share ("Global", "Solutions", "Systems",
  "Group", ...), so unrelated companies look alike; some with the same name as another in
  the same country ("Anderson Ltd" and "Anderson Inc"); **subsidiaries** ("X Holdings",
  "X Labs") as separate companies with their own domains and CRM ids.
- Every company has a CRM id and one to three registrable domains (`.com`, `.io`, the
  country's TLD, ...). No two companies share a domain or a CRM id.
- **Registrations** type the company's name as it comes: exact, in another case, with
  another legal form ("Acme Corp" / "ACME Inc." / "Acme LLC"), or with a typo.

The conventions that keep "the same company" decidable (documented in the README, "How we
prove it"):

1. A registration names one of the company's domains, or (name-only) none.
2. **A company with more than one domain is always registered with its CRM id**: the CRM id
   is what says `acme.io` and `acme.com` are one customer; without it nobody could know.
   Single-domain companies carry their CRM id on about half of their registrations.
3. **Name-only** registrations (name + country, no domain, no CRM id) are made only for
   companies whose name is unambiguous in their country: no other company there has a name
   within the matching review band (similarity >= threshold - review band, by the product's
   own `name_similarity`). Their names are typed exactly or in another case / legal form,
   never with a typo, and no other company's typo'd name comes near them.
4. A **true collision** is a registration of a company that another partner registered
   before (same products, so the scopes overlap); every later registration of a company
   comes from a partner that has not registered it yet. So
   `collisions = registrations - companies` and the intended collision share is exact.
5. **Country-less** registrations (`countryless_share`, default 0: name and domain, and the
   CRM id by convention 2, but no country; the product weighs such a name against every
   country's names, never confidently) are made only for companies whose name is
   unambiguous across *all* countries: no other company anywhere, and no other company's
   typo'd name, within the review band (`Company.countryless`), and never with a typo. A
   name alone without a country is no account (a 422), so a country-less registration
   always names a domain.
   Such a filing of a company also registered by name alone is the one key split
   convention 3 already allows: a name key beside an identified key, sent to a person as
   a possible duplicate.
6. **GUID CRM ids** (`guid_share` of the companies, default 0): the company's CRM id is a
   Dynamics-style GUID, and about half of its registrations carry it recased (lower case
   instead of the canonical upper; `Registration.crm_recased`): under `match.crm_ids:
   any_case` (the default policy) one customer.
7. **Spelled-out names** (`spaced_share` of the registrations, default 0): the first
   word of three or more letters typed letter by letter ("C H R I S T O P H Dynamics",
   variant `spaced`), only where `normalize_name` gives the same name as typed whole.

8. **Place qualifiers** (`qualifier_share` of the registrations, variant `qualifier`): the
   name with a qualifier naming the registration's own country or a sales region holding
   it ("Acme Corp (USA)", "Acme GmbH - Deutschland", "Acme Ltd - EMEA", full-width brackets
   too), never on a filing without a country (no country: the qualifier names nothing).
   Built from `HOME_PLACES`, not filtered by the product's `normalize_name`: the truth is
   the generator's, and `Workload.summary()` counts how many the product reads as the
   company's name (`qualifier_read_home`).
9. **Trade names** (`trade_name_share` of the companies, `Company.trade_name`): a
   "doing business as" name unambiguous across all countries (no other company's name,
   trade name or typo'd name within the review band). About half of such a company's
   registrations are typed "<legal> dba <trade>" (also "d/b/a", "trading as", "doing
   business as"; variant `dba`), some of them with a home qualifier on either name; an
   identified registration of a company never registered by name alone may give the trade
   name alone (variant `trade_name`): a name-only holder of the legal name could not know it.
10. **CRM ids in other spellings** (`crm_spelling_share` of the registrations carrying a
   CRM id, `Registration.crm_respelled`): another case, spaces, underscores or dots for its
   hyphens, none, full width; a GUID also in braces; a Salesforce id (`salesforce_share` of
   the companies are keyed by one: 15 characters, filed as 15 or 18) in its 18-character
   form in another case or full width. Under `match.crm_ids: any_spelling` one id.
11. **Marks and width** (`mark_share` of the registrations, `Registration.marked`): a
   trademark sign ("™", "®", "℠") after a word, or the first word in full-width letters,
   with or without a country.
12. **Other trade-name markers** (`trade_marker_share` of the "<legal> dba <trade>"
   registrations of convention 9, session 30): joined by "t/a" ("trading as": "T/A",
   "t / a", "T/As"; Britain's usual spelling, also in DE and FR) or "aka" ("also known
   as", "a.k.a.", "a/k/a", "AKA") instead (`TRADE_MARKERS`); still variant `dba`.

The shares of 5-7 are drawn from a random stream of their own, after the rest is made,
those of 8-11 from another after those, and that of 12 from a third: with them at 0 a seed
gives the workload it always gave, and with them above 0 the same companies, partners and
registrations, some of them typed differently.
"""

from __future__ import annotations

import dataclasses
import random
import re
import string
import unicodedata
import uuid
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from faker import Faker
from rapidfuzz import fuzz, process

from shared.accounts import name_forms, name_similarity, normalize_name, sort_name_tokens
from shared.accounts.identity import AccountIdentity
from shared.accounts.index import _EPSILON, AccountIndex, _keys_of
from shared.accounts.salesforce import any_spelling, salesforce_18

GENERATOR_VERSION = 1
"""Bump when a change makes `generate` give another workload for the same arguments (the
benchmarks' cache of keyed workloads, bench-results/cache/, is keyed by it and by this
file's source)."""

SHARED_WORDS = ("Global", "Solutions", "Systems", "Group", "Technologies", "Partners",
                "International", "Digital", "Consulting", "Networks", "Dynamics", "Data")
SUBSIDIARY_WORDS = ("Holdings", "Labs", "Digital", "Services", "Capital")
COUNTRIES = {  # country -> (Faker locale, weight, legal forms, national TLD)
    "US": ("en_US", 5, ("Inc", "Inc.", "Corp", "Corporation", "LLC"), "com"),
    "GB": ("en_GB", 2, ("Ltd", "Limited", "PLC", "Ltd."), "co.uk"),
    "DE": ("de_DE", 2, ("GmbH", "AG", "GmbH & Co. KG"), "de"),
    "FR": ("fr_FR", 1, ("SA", "SAS", "SARL"), "fr"),
}
PRODUCTS = ("analytics", "crm", "security", "storage", "networking", "support")
TIERS = ("platinum", "gold", "silver", "registered")
NAME_THRESHOLD = 0.9
REVIEW_BAND = 0.1
"""The default `match` policy: name-only companies keep clear of this band."""


@dataclass(frozen=True)
class Company:
    id: str
    name: str
    """The canonical name (with a legal form)."""
    country: str
    crm_account_id: str
    domains: tuple[str, ...]
    products: tuple[str, ...]
    parent: str | None = None
    name_only: bool = False
    """True when this company may be registered by name alone (unambiguous name)."""
    countryless: bool = False
    """True when this company may be registered without a country (a name unambiguous
    across all countries, convention 5)."""
    trade_name: str | None = None
    """Its "doing business as" name (convention 9), or None."""


@dataclass(frozen=True)
class Registration:
    seq: int
    company_id: str
    partner_id: str
    name: str
    """The name as the partner typed it."""
    variant: str
    """canonical | case | legal_form | typo | spaced | qualifier | dba | trade_name"""
    country: str
    domain: str | None
    crm_account_id: str | None
    products: tuple[str, ...]
    collision: bool
    """Another partner registered this company earlier in the workload."""
    countryless: bool = False
    """Filed without a country (`country` is still the company's, the truth)."""
    crm_recased: bool = False
    """Its (GUID) CRM id in another letter case than the company's canonical one."""
    crm_respelled: bool = False
    """Its CRM id in another spelling (convention 10)."""
    marked: bool = False
    """Its name typed with a trademark sign or full-width letters (convention 11)."""
    qualified: bool = False
    """Its name typed with a qualifier naming its own country or region (convention 8)."""

    @property
    def name_only(self) -> bool:
        return self.domain is None and self.crm_account_id is None

    def account(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if not self.countryless:
            out["country"] = self.country
        if self.domain is not None:
            out["domain"] = self.domain
        if self.crm_account_id is not None:
            out["crm_account_id"] = self.crm_account_id
        return out

    def request(self, motion: str = "resell", title: str | None = None) -> dict[str, Any]:
        """The body of `POST /v1/registrations` (a `RegistrationRequest`)."""
        return {"partner_id": self.partner_id, "account": self.account(),
                "opportunity": {"title": title or f"Opportunity {self.seq}",
                                "products": list(self.products)},
                "motion": motion}


@dataclass(frozen=True)
class Workload:
    seed: int
    companies: tuple[Company, ...]
    registrations: tuple[Registration, ...]
    partners: tuple[tuple[str, str], ...]
    """(partner id, tier)"""
    by_id: dict[str, Company] = field(repr=False, compare=False, default_factory=dict)
    asked: dict[str, float] = field(repr=False, compare=False, default_factory=dict)
    """The shares of conventions 8-11 asked for (`spellings`: intended vs observed)."""

    def company(self, company_id: str) -> Company:
        return self.by_id[company_id]

    @property
    def distinct_companies(self) -> int:
        return len({r.company_id for r in self.registrations})

    @property
    def collisions(self) -> int:
        return sum(r.collision for r in self.registrations)

    @property
    def intended_collision_share(self) -> float:
        return self.collisions / len(self.registrations) if self.registrations else 0.0

    def summary(self) -> dict[str, Any]:
        regs = self.registrations
        return {
            "seed": self.seed,
            "registrations": len(regs),
            "distinct_companies": self.distinct_companies,
            "intended_collisions": self.collisions,
            "intended_collision_share": round(self.intended_collision_share, 4),
            "subsidiaries": sum(c.parent is not None for c in self.companies),
            "multi_domain_companies": sum(len(c.domains) > 1 for c in self.companies),
            "name_only_registrations": sum(r.name_only for r in regs),
            "typo_registrations": sum(r.variant == "typo" for r in regs),
            "countryless_companies": sum(c.countryless for c in self.companies),
            "countryless_registrations": sum(r.countryless for r in regs),
            "countryless_share": _share(sum(r.countryless for r in regs), len(regs)),
            "guid_companies": sum(_is_guid(c.crm_account_id) for c in self.companies),
            "guid_registrations": sum(_is_guid(r.crm_account_id) for r in regs),
            "guid_recased_registrations": sum(r.crm_recased for r in regs),
            "spaced_registrations": sum(r.variant == "spaced" for r in regs),
            "spaced_share": _share(sum(r.variant == "spaced" for r in regs), len(regs)),
            **self.spellings(),
            "countries": sorted({c.country for c in self.companies}),
        }

    def spellings(self) -> dict[str, Any]:
        """Conventions 8-12: how many registrations each made (intended: the share asked,
        observed: what the generator could make), and how many of those the product's
        own `normalize_name` / `any_spelling` read as the company's name or CRM id (a
        shortfall is a spelling the product splits from its customer)."""
        regs = self.registrations
        asked = self.asked
        qualified = [r for r in regs if r.qualified]
        dba = [r for r in regs if r.variant == "dba"]
        trade = [r for r in regs if r.variant == "trade_name"]
        other_markers = [r for r in dba if any(m in r.name for m in TRADE_MARKERS[r.country])]
        respelled = [r for r in regs if r.crm_respelled]
        marked = [r for r in regs if r.marked]

        def read_as_company(r: Registration) -> bool:
            c = self.by_id[r.company_id]
            country = None if r.countryless else r.country
            own = {normalize_name(c.name, country)}
            if c.trade_name:
                own.add(normalize_name(c.trade_name, country))
            return bool(own & set(name_forms(normalize_name(r.name, country))))

        def one_id(r: Registration) -> bool:
            c = self.by_id[r.company_id]
            return (r.crm_account_id is not None
                    and any_spelling(r.crm_account_id) == any_spelling(c.crm_account_id))

        n = len(regs)
        company_keys = {(c.country, normalize_name(c.name, c.country)) for c in self.companies}
        typed_keys = {(r.company_id, form) for r in regs if not r.countryless
                      for form in name_forms(normalize_name(r.name, r.country))}
        return {
            "distinct_name_keys": len(company_keys),
            "typed_name_keys": len(typed_keys),
            "qualifier_share": {"intended": asked.get("qualifier_share", 0.0),
                                "observed": _share(len(qualified), n)},
            "qualifier_registrations": len(qualified),
            "qualifier_read_home": sum(map(read_as_company, qualified)),
            "trade_name_companies": {
                "intended": round(asked.get("trade_name_share", 0.0) * len(self.companies)),
                "observed": sum(c.trade_name is not None for c in self.companies)},
            "dba_registrations": len(dba),
            "dba_read_as_company": sum(map(read_as_company, dba)),
            "trade_marker_registrations": len(other_markers),
            "trade_marker_read_as_company": sum(map(read_as_company, other_markers)),
            "trade_name_registrations": len(trade),
            "crm_spelling_share": {
                "intended": asked.get("crm_spelling_share", 0.0),
                "observed": _share(len(respelled),
                                   sum(r.crm_account_id is not None for r in regs))},
            "crm_respelled_one_id": sum(map(one_id, respelled)),
            "salesforce_companies": sum(_is_salesforce(c.crm_account_id)
                                        for c in self.companies),
            "mark_share": {"intended": asked.get("mark_share", 0.0),
                           "observed": _share(len(marked), n)},
            "marked_read_as_company": sum(map(read_as_company, marked)),
        }


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


_GUID = re.compile(r"[0-9A-F]{8}-(?:[0-9A-F]{4}-){3}[0-9A-F]{12}", re.IGNORECASE)


def _is_guid(crm_id: str | None) -> bool:
    return crm_id is not None and _GUID.fullmatch(crm_id) is not None


def _is_salesforce(crm_id: str | None) -> bool:
    return crm_id is not None and salesforce_18(crm_id) is not None


def _slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-") or "co"


_FORMS_LONGEST_FIRST = tuple(" " + f for f in sorted((f for c in COUNTRIES.values()
                                                      for f in c[2]), key=len, reverse=True))


def _strip_form(name: str, country: str) -> str:
    for form in _FORMS_LONGEST_FIRST:
        if name.endswith(form):
            return name[: -len(form)]
    return name


class _Names:
    def __init__(self, rng: random.Random, seed: int) -> None:
        self.rng = rng
        self.fake = Faker([v[0] for v in COUNTRIES.values()])
        self.fake.seed_instance(seed)

    def base(self, country: str) -> str:
        """A name without legal form: Faker's, or built from words companies share."""
        locale = COUNTRIES[country][0]
        fake = self.fake[locale]
        roll = self.rng.random()
        if roll < 0.35:
            name = _strip_form(str(fake.company()), country)
            # Faker's own suffixes ("Group", "e.V.", "GmbH & Co. KGaA") stay: realistic.
            return re.sub(r"\s+(GmbH & Co\. KGaA|GmbH & Co\. KG|GmbH|AG|SA|Inc|Ltd|PLC)$", "",
                          name)
        last = str(fake.last_name())
        words = self.rng.sample(SHARED_WORDS, self.rng.choice((1, 1, 2)))
        if roll < 0.5:
            return " ".join(words)  # "Global Solutions": shared by many, keyed by country
        return " ".join([last, *words])

    def with_form(self, base: str, country: str) -> str:
        return f"{base} {self.rng.choice(COUNTRIES[country][2])}"


def _typo(rng: random.Random, name: str) -> str:
    tokens = name.split()
    index = max(range(len(tokens)), key=lambda i: len(tokens[i]))
    word = tokens[index]
    if len(word) < 5:
        return name
    i = rng.randrange(1, len(word) - 2)
    kind = rng.randrange(3)
    if kind == 0:
        word = word[:i] + word[i + 1] + word[i] + word[i + 2:]  # swap
    elif kind == 1:
        word = word[:i] + word[i + 1:]  # drop
    else:
        word = word[:i] + word[i] + word[i:]  # double
    tokens[index] = word
    return " ".join(tokens)


def _recase(rng: random.Random, name: str) -> str:
    return rng.choice((name.upper(), name.lower(), name.title()))


def _spell_out(name: str) -> str | None:
    """`name` with its first word of three or more letters typed letter by letter
    ("Christoph Dynamics" -> "C H R I S T O P H Dynamics"), or None when there is no such
    word or `normalize_name` would not read the result as the same name (a single letter
    beside the word would join it)."""
    tokens = name.split()
    for i, token in enumerate(tokens):
        if len(token) >= 3 and token.isalpha():
            spaced = " ".join([*tokens[:i], " ".join(token.upper()), *tokens[i + 1:]])
            return spaced if normalize_name(spaced) == normalize_name(name) else None
    return None


def _countryless_companies(companies: list[Company], typed: list[tuple[str, str]],
                           floor: float) -> set[str]:
    """Convention 5: the companies whose name no other company's name, nor another
    company's typo'd name (`typed`: (company id, name as typed)), comes within `floor` of
    in any country (every pair compared: only for workloads up to EXHAUSTIVE_UP_TO)."""
    names = [sort_name_tokens(normalize_name(c.name)) for c in companies]
    typos = [sort_name_tokens(normalize_name(name)) for _, name in typed]
    out: set[str] = set()
    for a, c in enumerate(companies):
        near = process.extract(names[a], names, scorer=fuzz.ratio, limit=None,
                               score_cutoff=floor * 100)
        if any(b != a for _, _, b in near):
            continue
        near = process.extract(names[a], typos, scorer=fuzz.ratio, limit=None,
                               score_cutoff=floor * 100)
        if any(typed[b][0] != c.id for _, _, b in near):
            continue
        out.add(c.id)
    return out


def _retype(seed: int, companies: list[Company], registrations: list[Registration], *,
            countryless_share: float, guid_share: float, spaced_share: float
            ) -> tuple[list[Company], list[Registration]]:
    """Conventions 5-7, on a workload already made, from a random stream of their own (so
    the shares at 0 change nothing, and above 0 nothing but how some registrations are
    typed): GUID CRM ids for `guid_share` of the companies (about half of their
    registrations recased), `countryless_share` of the registrations filed without a
    country (of the companies convention 5 allows; fewer if they have too few), and
    `spaced_share` typed with a word spelled out."""
    if not (countryless_share or guid_share or spaced_share):
        return companies, registrations
    if len(companies) > EXHAUSTIVE_UP_TO and countryless_share:
        raise ValueError("country-less registrations only up to EXHAUSTIVE_UP_TO companies")
    rng = random.Random(f"companies.retype:{seed}")
    guid_ids = {c.id for c in rng.sample(companies, round(guid_share * len(companies)))}
    guid_of = {cid: str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()
               for cid in sorted(guid_ids)}
    floor = NAME_THRESHOLD - REVIEW_BAND
    allowed = (_countryless_companies(
        companies, [(r.company_id, r.name) for r in registrations if r.variant == "typo"],
        floor) if countryless_share else set())
    companies = [dataclasses.replace(c, crm_account_id=guid_of.get(c.id, c.crm_account_id),
                                     countryless=c.id in allowed) for c in companies]
    eligible = [i for i, r in enumerate(registrations)  # a typo'd name may near another's
                if r.company_id in allowed and r.domain is not None and r.variant != "typo"]
    countryless = set(rng.sample(eligible, min(len(eligible),
                                               round(countryless_share * len(registrations)))))
    spaceable = [i for i, r in enumerate(registrations)
                 if r.variant != "typo" and _spell_out(r.name) is not None]
    spaced = set(rng.sample(spaceable, min(len(spaceable),
                                           round(spaced_share * len(registrations)))))
    out: list[Registration] = []
    for i, r in enumerate(registrations):
        changes: dict[str, Any] = {}
        if r.crm_account_id is not None and r.company_id in guid_of:
            recased = rng.random() < 0.5
            guid = guid_of[r.company_id]
            changes.update(crm_account_id=guid.lower() if recased else guid,
                           crm_recased=recased)
        if i in countryless:
            changes["countryless"] = True
        if i in spaced:
            changes.update(name=_spell_out(r.name), variant="spaced")
        out.append(dataclasses.replace(r, **changes) if changes else r)
    return companies, out


HOME_PLACES: dict[str, tuple[str, ...]] = {
    # Qualifiers naming the country (codes, names, aliases) or a sales region holding it.
    "US": ("USA", "US", "U.S.A.", "U.S.", "United States", "NA", "North America", "AMER",
           "Americas"),
    "GB": ("UK", "U.K.", "GB", "Great Britain", "England", "EMEA", "Europe"),
    "DE": ("Deutschland", "Germany", "DE", "DACH", "EMEA", "Europe"),
    "FR": ("France", "FR", "EMEA", "Europe"),
}
TRADE_WORDS = ("Cloud", "Direct", "Works", "Studio", "Hub", "Online", "Express", "Pro")
"""Second words of trade names (none of SHARED_WORDS, SUBSIDIARY_WORDS or a legal form)."""
_DBA = {"US": (" dba ", " d/b/a ", " DBA ", " doing business as ", " d.b.a. "),
        "GB": (" trading as ", " dba "), "DE": (" dba ",), "FR": (" dba ",)}
TRADE_MARKERS = {
    "US": (" aka ", " a.k.a. ", " a/k/a ", " AKA ", " also known as ", " A.K.A "),
    "GB": (" t/a ", " T/A ", " t / a ", " T/As ", " aka ", " a.k.a. "),
    "DE": (" t/a ", " aka ", " a.k.a. "), "FR": (" t/a ", " aka ", " a.k.a. ")}
"""Convention 12: the other words that join a legal name and a trade name, by country."""
_MARKS = ("\u2122", "\u00ae", "\u2120", " \u2122")


def _full_width(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else
                   ("\u3000" if ch == " " else ch) for ch in text)


def _qualify(rng: random.Random, name: str, country: str) -> str:
    place = rng.choice(HOME_PLACES[country])
    style = rng.randrange(5)
    if style == 0:
        return f"{name} - {place}"
    if style == 1:
        return f"{name} [{place}]"
    if style == 2:
        return f"{name}\uff08{_full_width(place)}\uff09"
    return f"{name} ({place})"


def _respell_crm(rng: random.Random, crm_id: str) -> str:
    """Another spelling of one CRM id (convention 10)."""
    if _is_salesforce(crm_id):
        id18 = salesforce_18(crm_id) or crm_id
        return rng.choice((id18.upper(), id18.lower(), _full_width(id18),
                           _full_width(crm_id)))
    if _is_guid(crm_id):
        return rng.choice((crm_id.lower(), crm_id.replace("-", ""), "{" + crm_id + "}",
                           "{" + crm_id.lower() + "}", _full_width(crm_id)))
    return rng.choice((crm_id.lower(), crm_id.replace("-", " "), crm_id.replace("-", "_"),
                       crm_id.replace("-", ""), crm_id.replace("-", "."),
                       _full_width(crm_id), crm_id.lower().replace("-", " ")))


def _mark(rng: random.Random, name: str) -> str:
    """The name with a trademark sign after a word, or its first word full width."""
    tokens = name.split(" ")
    if rng.random() < 0.5:
        i = rng.randrange(len(tokens))
        tokens[i] += rng.choice(_MARKS)
    else:
        tokens[0] = _full_width(tokens[0])
    return " ".join(tokens)


def _trade_names(rng: random.Random, fake: Faker, companies: list[Company],
                 typed: list[str], count: int) -> dict[str, str]:
    """Convention 9: `count` companies' trade names, each unambiguous across all countries
    (no company's name, no other trade name, no typo'd name within the review band)."""
    floor = (NAME_THRESHOLD - REVIEW_BAND) * 100
    taken = [sort_name_tokens(normalize_name(c.name)) for c in companies]
    taken += [sort_name_tokens(normalize_name(name)) for name in typed]
    out: dict[str, str] = {}
    for c in rng.sample(companies, min(count, len(companies))):
        for _ in range(20):
            trade = f"{fake.last_name()}{rng.choice(('', ' '))}{rng.choice(TRADE_WORDS)}"
            norm = sort_name_tokens(normalize_name(trade))
            if len(norm) >= 6 and process.extractOne(norm, taken, scorer=fuzz.ratio,
                                                     score_cutoff=floor) is None:
                out[c.id] = trade
                taken.append(norm)
                break
    return out


def _respell(seed: int, companies: list[Company], registrations: list[Registration], *,
             qualifier_share: float, trade_name_share: float, crm_spelling_share: float,
             mark_share: float, salesforce_share: float
             ) -> tuple[list[Company], list[Registration]]:
    """Conventions 8-11 on a workload already made, from a random stream of their own."""
    if not (qualifier_share or trade_name_share or crm_spelling_share or mark_share
            or salesforce_share):
        return companies, registrations
    rng = random.Random(f"companies.respell:{seed}")
    fake = Faker("en_US")
    fake.seed_instance(seed + 28)
    plain = [c for c in companies if not _is_guid(c.crm_account_id)]
    sf_ids = {c.id for c in rng.sample(plain, min(len(plain),
                                                  round(salesforce_share * len(companies))))}
    alphabet = string.ascii_letters + string.digits
    sf_of = {cid: "001" + "".join(rng.choice(alphabet) for _ in range(12))
             for cid in sorted(sf_ids)}
    trade = _trade_names(rng, fake, companies,
                         [r.name for r in registrations if r.variant == "typo"],
                         round(trade_name_share * len(companies)))
    name_only_companies = {r.company_id for r in registrations if r.name_only}
    companies = [dataclasses.replace(c, crm_account_id=sf_of.get(c.id, c.crm_account_id),
                                     trade_name=trade.get(c.id)) for c in companies]
    by_id = {c.id: c for c in companies}
    retypable = [i for i, r in enumerate(registrations)
                 if r.variant in ("canonical", "case", "legal_form")]
    placed = [i for i in retypable if not registrations[i].countryless]
    qualified = set(rng.sample(placed, min(len(placed),
                                           round(qualifier_share * len(registrations)))))
    marked = set(rng.sample(retypable, min(len(retypable),
                                           round(mark_share * len(registrations)))))
    carrying = [i for i, r in enumerate(registrations) if r.crm_account_id is not None]
    respelled = set(rng.sample(carrying, min(len(carrying),
                                             round(crm_spelling_share * len(carrying)))))
    out: list[Registration] = []
    for i, r in enumerate(registrations):
        c = by_id[r.company_id]
        changes: dict[str, Any] = {}
        name = r.name
        if r.company_id in sf_of and r.crm_account_id is not None:
            changes["crm_account_id"] = crm = (c.crm_account_id if rng.random() < 0.5
                                               else salesforce_18(c.crm_account_id))
        if c.trade_name is not None and i in retypable and rng.random() < 0.6:
            identified = not r.name_only and c.id not in name_only_companies
            if identified and rng.random() < 0.3:
                name, changes["variant"] = c.trade_name, "trade_name"
            else:
                legal, other = name, c.trade_name
                if i in qualified and not r.countryless:
                    if rng.random() < 0.5:
                        legal = _qualify(rng, legal, r.country)
                    else:
                        other = _qualify(rng, other, r.country)
                    changes["qualified"] = True
                name = legal + rng.choice(_DBA[r.country]) + other
                changes["variant"] = "dba"
        elif i in qualified:
            name = _qualify(rng, name, r.country)
            changes.update(variant="qualifier", qualified=True)
        if i in marked:
            name = _mark(rng, name)
            changes["marked"] = True
        if name != r.name:
            changes["name"] = name
        if i in respelled:
            crm = changes.get("crm_account_id", r.crm_account_id)
            spelled = _respell_crm(rng, crm)
            if spelled != crm:
                changes.update(crm_account_id=spelled, crm_respelled=True)
        out.append(dataclasses.replace(r, **changes) if changes else r)
    return companies, out


def _remark(seed: int, registrations: list[Registration], share: float
            ) -> list[Registration]:
    """Convention 12 on a workload already made, from a random stream of its own: about
    `share` of the "<legal> dba <trade>" registrations joined by another marker."""
    if not share:
        return registrations
    rng = random.Random(f"companies.remark:{seed}")
    out: list[Registration] = []
    for r in registrations:
        if r.variant == "dba" and rng.random() < share:
            joiner = next((j for j in sorted(_DBA[r.country], key=len, reverse=True)
                           if j in r.name), None)
            if joiner is not None:  # (a mark may have glued itself to the joiner)
                marker = rng.choice(TRADE_MARKERS[r.country])
                r = dataclasses.replace(r, name=r.name.replace(joiner, marker, 1))
        out.append(r)
    return out


EXHAUSTIVE_UP_TO = 40_000
"""Up to this many companies every pair of names in a country is compared (exact truth).
Beyond it (the scale benchmarks: hundreds of thousands of companies, where comparing every
pair would take hours) the product's own name index (`AccountIndex`, blocked; its recall
against every pair is tested in tests/unit/accounts/test_name_recall.py) finds the near
names instead: a pair it would not find, the product would not compare either."""


def _name_index(entries: list[tuple[str, str, str]]) -> AccountIndex:
    """An index of (key, name, country) by name only, for near-name look-ups at scale."""
    index = AccountIndex()
    for key, name, country in entries:
        index.add(key, AccountIdentity.from_raw(name=name, country=country))
    return index


def _near_others(index: AccountIndex, key: str, name: str, country: str, floor: float) -> bool:
    """Whether a name scores >= `floor` against a name filed under another key: whether
    `index.match(query, NAME_THRESHOLD, NAME_THRESHOLD - floor)` holds a key other than
    `key`, asked the way `AccountIndex._match_names` asks (the postings its
    `_CountryNames.candidates` gathers: rarest blocking key first, within the index's
    budget; the same scorer and cut) but posting list by posting list, stopping at the
    first other company's name, instead of uniting, scoring, wrapping and sorting every
    match (names of shared words have thousands at scale).
    tests/unit/test_scale_workload.py holds it to `match`'s answer."""
    query = AccountIdentity.from_raw(name=name, country=country)
    names = index._countries.get(query.country) if query.name and query.country else None
    if names is None:
        return False
    text = sort_name_tokens(query.name or "")
    found = [(1 if isinstance(p, str) else len(p), k, p)
             for k in _keys_of(text) if (p := names.postings.get(k)) is not None]
    found.sort()  # by (size, key), as `candidates` takes them
    cut = (NAME_THRESHOLD - (NAME_THRESHOLD - floor) - _EPSILON) * 100.0
    keys, budget, total = index._keys, index._candidate_budget, 0
    for size, _, postings in found:
        if total and total + size > budget:
            break
        total += size
        for near, _, _ in process.extract_iter(
                text, (postings,) if isinstance(postings, str) else postings,
                scorer=fuzz.ratio, score_cutoff=cut):
            if any(keys[ordinal] != key for ordinal in names.owners_of(near)):
                return True
    return False


def _unambiguous(companies: list[Company], floor: float,
                 among: list[Company] | None = None) -> list[bool]:
    """Per company: no other company of its country (of `among`, by default `companies`)
    has a name scoring >= `floor` (the product's `name_similarity`: token-sort ratio of
    normalised names, via rapidfuzz). With `among`, through the name index (at scale)."""
    if among is not None:
        index = _name_index([(c.id, c.name, c.country) for c in among])
        return [not _near_others(index, c.id, c.name, c.country, floor) for c in companies]
    clear = [True] * len(companies)
    by_country: dict[str, list[int]] = {}
    for i, c in enumerate(companies):
        by_country.setdefault(c.country, []).append(i)
    for members in by_country.values():
        names = [sort_name_tokens(normalize_name(companies[i].name)) for i in members]
        for a, name in enumerate(names):
            near = process.extract(name, names, scorer=fuzz.ratio, limit=None,
                                   score_cutoff=floor * 100)
            if any(b != a for _, _, b in near):
                clear[members[a]] = False
    return clear


def generate(
    seed: int = 0,
    registrations: int = 400,
    *,
    collision_share: float = 0.2,
    partners: int = 12,
    name_only_share: float = 0.1,
    subsidiary_share: float = 0.12,
    same_name_share: float = 0.06,
    typo_share: float = 0.1,
    max_per_company: int = 4,
    countryless_share: float = 0.0,
    guid_share: float = 0.0,
    spaced_share: float = 0.0,
    qualifier_share: float = 0.0,
    trade_name_share: float = 0.0,
    crm_spelling_share: float = 0.0,
    mark_share: float = 0.0,
    salesforce_share: float = 0.0,
    trade_marker_share: float = 0.0,
) -> Workload:
    """A workload of `registrations` registrations, `collision_share` of them true collisions
    (exactly, up to rounding to whole registrations). Deterministic for `seed`.
    `countryless_share`, `guid_share`, `spaced_share`: conventions 5-7;
    `qualifier_share`, `trade_name_share`, `crm_spelling_share`, `mark_share`,
    `salesforce_share`: conventions 8-11; `trade_marker_share`: convention 12 (module doc)."""
    if not 0 <= collision_share < 1:
        raise ValueError("collision_share must be in [0, 1)")
    rng = random.Random(seed)
    names = _Names(rng, seed)
    n_companies = max(1, round(registrations * (1 - collision_share)))
    extra = registrations - n_companies
    cap = min(max_per_company, partners)
    if extra > n_companies * (cap - 1):
        raise ValueError("too many collisions for the number of partners per company")

    countries = list(COUNTRIES)
    weights = [COUNTRIES[c][1] for c in countries]
    used_domains: set[str] = set()
    companies: list[Company] = []

    # (slug, tld) -> the number the last numbered domain of that slug got: domains are
    # only ever taken, so the first free number never goes down and the search for it
    # starts there (not at 2: thousands of "Global Solutions" would make it quadratic).
    numbered: dict[tuple[str, str], int] = {}

    def new_domains(base: str, country: str, count: int) -> tuple[str, ...]:
        slug = _slug(base)[:40]
        tlds = ["com", "io", COUNTRIES[country][3], "net", "group"]
        out: list[str] = []
        for tld in tlds:
            candidate = f"{slug}.{tld}"
            if candidate in used_domains:
                n = numbered.get((slug, tld), 2)
                candidate = f"{slug}{n}.{tld}"
                while candidate in used_domains:
                    n += 1
                    candidate = f"{slug}{n}.{tld}"
                numbered[slug, tld] = n
            used_domains.add(candidate)
            out.append(candidate)
            if len(out) == count:
                break
        return tuple(out)

    def add(base: str, country: str, parent: str | None = None) -> Company:
        index = len(companies) + 1
        count = rng.choices((1, 2, 3), weights=(6, 3, 1))[0]
        company = Company(
            id=f"co-{index:05d}", name=names.with_form(base, country), country=country,
            crm_account_id=f"CRM-{seed}-{index:05d}", domains=new_domains(base, country, count),
            products=tuple(sorted(rng.sample(PRODUCTS, rng.choice((1, 1, 2))))),
            parent=parent)
        companies.append(company)
        return company

    while len(companies) < n_companies:
        country = rng.choices(countries, weights)[0]
        roll = rng.random()
        if companies and roll < subsidiary_share:
            parent = rng.choice(companies)
            root = re.split(r"[^\w]+", _strip_form(parent.name, parent.country))[0]
            add(f"{root} {rng.choice(SUBSIDIARY_WORDS)}", parent.country, parent.id)
        elif companies and roll < subsidiary_share + same_name_share:
            twin = rng.choice(companies)  # another company with the same name
            add(_strip_form(twin.name, twin.country), twin.country)
        else:
            add(names.base(country), country)

    # Which names are unambiguous in their country (name-only registrations allowed).
    floor = NAME_THRESHOLD - REVIEW_BAND
    if len(companies) > EXHAUSTIVE_UP_TO:  # at scale: ask only for the companies drawn
        drawn = [c for c in companies if rng.random() < name_only_share * 3]
        clear = _unambiguous(drawn, floor, among=companies)
        name_only_ids = {c.id for c, ok in zip(drawn, clear, strict=True) if ok}
    else:
        clear = _unambiguous(companies, floor)
        name_only_ids = {c.id for c, ok in zip(companies, clear, strict=True)
                         if ok and rng.random() < name_only_share * 3}
    companies = [Company(**{**c.__dict__, "name_only": c.id in name_only_ids})
                 for c in companies]
    guarded = [(normalize_name(c.name), c) for c in companies if c.name_only]

    guarded_index = (_name_index([(c.id, c.name, c.country) for _, c in guarded])
                     if len(companies) > EXHAUSTIVE_UP_TO else None)

    def safe_typo(name: str, company: Company) -> bool:
        if guarded_index is not None:
            return not _near_others(guarded_index, company.id, name, company.country, floor)
        typed = normalize_name(name)
        return all(other.id == company.id or other.country != company.country
                   or name_similarity(typed, norm) < floor for norm, other in guarded)

    # How many registrations each company gets.
    counts = [1] * len(companies)
    open_slots = [i for i in range(len(companies))]  # ascending: found by bisection
    for _ in range(extra):
        i = rng.choice(open_slots)
        counts[i] += 1
        if counts[i] == cap:
            del open_slots[bisect_left(open_slots, i)]
    order = [i for i, n in enumerate(counts) for _ in range(n)]
    rng.shuffle(order)

    partner_ids = [(f"p-{n:02d}", TIERS[n % len(TIERS)]) for n in range(1, partners + 1)]
    every_partner = [p for p, _ in partner_ids]
    seen: dict[str, list[str]] = {}
    out: list[Registration] = []
    for seq, i in enumerate(order, start=1):
        c = companies[i]
        used = seen.setdefault(c.id, [])
        partner = rng.choice([p for p in every_partner if p not in used] if used
                             else every_partner)
        collision = bool(used)
        used.append(partner)
        base = _strip_form(c.name, c.country)
        if c.name_only and rng.random() < 0.5:
            domain = crm = None
        else:
            domain = rng.choice(c.domains)
            crm = c.crm_account_id if (len(c.domains) > 1 or rng.random() < 0.5) else None
        roll = rng.random()
        if roll < 0.25:
            name, variant = _recase(rng, c.name), "case"
        elif roll < 0.5:
            name, variant = names.with_form(base, c.country), "legal_form"
        elif roll < 0.5 + typo_share and not c.name_only and domain is not None:
            name, variant = _typo(rng, c.name), "typo"
            if name == c.name or not safe_typo(name, c):
                name, variant = c.name, "canonical"
        else:
            name, variant = c.name, "canonical"
        out.append(Registration(seq, c.id, partner, name, variant, c.country, domain, crm,
                                c.products, collision))
    companies, out = _retype(seed, companies, out, countryless_share=countryless_share,
                             guid_share=guid_share, spaced_share=spaced_share)
    companies, out = _respell(seed, companies, out, qualifier_share=qualifier_share,
                              trade_name_share=trade_name_share,
                              crm_spelling_share=crm_spelling_share, mark_share=mark_share,
                              salesforce_share=salesforce_share)
    out = _remark(seed, out, trade_marker_share)
    asked = {"qualifier_share": qualifier_share, "trade_name_share": trade_name_share,
             "crm_spelling_share": crm_spelling_share, "mark_share": mark_share,
             "trade_marker_share": trade_marker_share}
    return Workload(seed, tuple(companies), tuple(out), tuple(partner_ids),
                    {c.id: c for c in companies}, asked)


def accounts(seed: int = 0, count: int = 1000) -> Iterator[Registration]:
    """`count` registrations of `count` distinct companies (no collisions): for benchmarks
    that want every registration approved `no_conflict`."""
    yield from generate(seed, count, collision_share=0.0, partners=4).registrations
