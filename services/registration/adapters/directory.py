"""Account resolution against the account directory, fast.

Each registration process keeps an in-memory `AccountIndex` (exact CRM id and domain maps,
blocked fuzzy names per country), warmed from the directory read model (`account_domains`,
`account_crm_ids`, `account_names`, filled by the projections) and updated at once with
every account this process appends. A resolution is a few dictionary look-ups plus one
rapidfuzz pass over a small candidate block: microseconds, no round trip.

When other processes append too (the distributed backend), the index can lag what they
added since it was warmed; there a miss in memory falls back to indexed queries (CRM id and
domain by primary key, names by country and first-token prefix) and whatever they find is
added to the index. The index is rebuilt in the background every
`directory_rewarm_seconds`. What still slips through -- two first registrations of one new
customer accepted at the same moment by two processes, or a near name that shares no first
token -- is caught downstream: the adjudicator matches registrations by their account facts,
not by key, and links the keys (`AccountsLinked`); across partitions this service reports the
other key's registrations (`AccountLinkReported`, see handlers.Commands._copy_reports).
Which matches are the submitted account's customer is decided by
`shared.accounts.sameness` against the identifiers the index holds for each key.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Table, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.registration.adapters.links import LinkMap
from services.registration.adapters.sql import driver_fetch
from services.registration.domain.resolution import Resolution, choose
from shared.accounts import (
    AccountIdentity,
    AccountIndex,
    AccountMatch,
    BroughtNames,
    Identifiers,
    blocking_keys,
    different_customers,
    name_floor,
    name_forms,
    name_length_window,
    sort_name_tokens,
)
from shared.accounts.index import CountrylessNames, countries_weighed, countryless_readings
from shared.accounts.salesforce import CrmIds, any_spelling, crm_id_spellings
from shared.events.registration import PROTECTING
from shared.logging import get_logger
from shared.policy import MatchPolicy
from shared.readmodel import queries
from shared.readmodel.schema import (
    NAME_FILED_SQL,
    account_crm_ids,
    account_domains,
    account_names,
    metadata,
    name_filed,
)

log = get_logger(__name__)

_NAME_FALLBACK_LIMIT = 2000
# `_fill_misses` on PostgreSQL: the CRM id (in the spellings `crm_id_spellings` lists and,
# under `any_spelling`, by its spelling-free form `$8`: the `crm_spelling` column, the rule
# the adjudicator and `GET /v1/ownership` apply), the domain and the names sharing a
# blocking key (what `_candidate_names` asks), each part off when its parameter is NULL.
# Names only of a length that can score at or above the review floor
# (`name_length_window`): the rest can never be a match, and were most of the rows (47.5
# per call at 100/s, session 25).
# Names in each country of `$3` (`_countries_asked`: the query's, and the unknown one when
# policy `match.countryless_names` weighs it), each row with its country: a name filed
# without a country is filed under "" and weighed across countries, never confidently, as
# the warmed index weighs it.
_MISSES_SQL = """
SELECT 'crm', crm_account_id, account_key, '' FROM account_crm_ids
 WHERE $1::text[] IS NOT NULL AND crm_account_id = ANY($1::text[])
UNION ALL
SELECT 'crm', crm_account_id, account_key, '' FROM account_crm_ids
 WHERE $8::varchar IS NOT NULL AND crm_spelling = $8::varchar
UNION ALL
SELECT 'domain', domain, account_key, '' FROM account_domains
 WHERE $2::varchar IS NOT NULL AND domain = $2::varchar
UNION ALL
SELECT 'name', name, account_key, country FROM account_names
 WHERE $3::text[] IS NOT NULL AND country = ANY($3::text[]) AND """ + NAME_FILED_SQL + """
   AND char_length(name) BETWEEN $6::integer AND $7::integer AND (country, name) IN (
   SELECT DISTINCT country, name FROM account_name_keys
    WHERE country = ANY($3::text[]) AND key = ANY($4::text[]) LIMIT $5::integer)
"""
# The link target of one key (`canonical_key`, PostgreSQL).
_LINK_TARGET_SQL = "SELECT canonical_key FROM account_links WHERE account_key = $1::varchar"


# Rows filed between two yields to the event loop while (re)loading the directory: a reload
# of a million-account directory runs beside live requests and must not stall them.
_LOAD_SLICE = 5_000


def _links_table() -> Table | None:
    """The projections' account links (alias -> canonical), when this build has them."""
    return metadata.tables.get("account_links")


async def canonical_key(conn: AsyncConnection, account_key: str) -> str:
    """`queries.canonical_key`; on PostgreSQL each hop is one fixed statement sent by the
    driver (`driver_fetch`): through SQLAlchemy each hop was a statement built, compiled
    and executed by SQLAlchemy's machinery, on every registration of a known account
    (9.6 % of the registration service's CPU, py-spy)."""
    if _links_table() is None:
        return account_key
    if conn.dialect.name != "postgresql":
        return await queries.canonical_key(conn, account_key)

    async def target_of(key: str) -> str | None:
        rows = await driver_fetch(conn, _LINK_TARGET_SQL, key)
        return str(rows[0][0]) if rows else None

    return await queries.follow_links(account_key, target_of)


@dataclass(frozen=True, slots=True)
class KnownEntity:
    """A registration or claim this process accepted, for follow-up commands that arrive
    before the projections have caught up."""

    id: str
    account_key: str
    party_id: str


class AccountDirectory:
    def __init__(self, engine: AsyncEngine, *, complete: bool, rewarm_seconds: float,
                 recent_size: int = 50_000) -> None:
        """`complete`: every append goes through this process (embedded backend), so the
        warmed index plus own appends is the whole directory and misses need no query."""
        self.engine = engine
        self.complete = complete
        self.rewarm_seconds = rewarm_seconds
        self._index = AccountIndex()
        self._warmed_at: float | None = None
        self._warm_lock = asyncio.Lock()
        self._rewarm: asyncio.Task[None] | None = None
        self._added_during_rewarm: list[tuple[str, AccountIdentity]] | None = None
        self._recent: OrderedDict[str, KnownEntity] = OrderedDict()
        self._recent_size = recent_size
        # The name forms each filing this process appended newly filed here, while it may
        # still be rejected, and who else filed them since (`BroughtNames`, the
        # adjudicator's own rule): taken back if it is rejected (`match.rejected_names:
        # unfiled`) at its decision or after review, then kept in `_taken` to be filed
        # again if it is approved or reviewed later (`told`).
        self._brought = BroughtNames()
        self._taken: OrderedDict[str, tuple[str, tuple[str, ...], str | None, str]] = \
            OrderedDict()
        self.links: LinkMap | None = None
        """The account links in memory, when this process's projection worker tells it
        what it wrote (`follow_links_in_memory`); else each look-up reads them."""

    def follow_links_in_memory(self) -> LinkMap:
        """Keep the account links in memory: the caller feeds `LinkMap.changed` from the
        co-located projection worker (`handlers.Commands`)."""
        self.links = LinkMap(self.engine)
        return self.links

    async def canonical_key(self, account_key: str) -> str:
        """The key `account_key` is linked to (following links), else itself: from memory
        when the link map is current, else from the read model."""
        if self.links is not None and self.links.usable:
            return await self.links.canonical(account_key)
        async with self.engine.connect() as conn:
            return await canonical_key(conn, account_key)

    # --- warming -------------------------------------------------------------------------

    async def _load(self) -> AccountIndex:
        index = AccountIndex()
        async with self.engine.connect() as conn:
            links = _links_table()
            aliases: dict[str, str] = {}
            if links is not None:
                aliases = {a: c for a, c in await conn.execute(
                    select(links.c.account_key, links.c.canonical_key))}

            def canonical(key: str) -> str:
                for _ in range(8):  # links form short chains; a cycle must not hang us
                    if key not in aliases:
                        break
                    key = aliases[key]
                return key

            filed = 0
            for kind, query in (
                    ("domain", select(account_domains.c.domain, account_domains.c.account_key)),
                    ("crm", select(account_crm_ids.c.crm_account_id,
                                   account_crm_ids.c.account_key)),
                    ("name", select(account_names.c.country, account_names.c.name,
                                    account_names.c.account_key).where(name_filed()))):
                for row in await conn.execute(query):
                    if kind == "domain":
                        identity = AccountIdentity(None, row[0], None, None)
                    elif kind == "crm":
                        identity = AccountIdentity(row[0], None, None, None)
                    else:
                        identity = AccountIdentity(None, None, row[1], row[0])
                    index.add(canonical(row[-1]), identity)
                    filed += 1
                    if filed % _LOAD_SLICE == 0:
                        await asyncio.sleep(0)
        return index

    @staticmethod
    def _settle_heap() -> None:
        """Move the freshly built index out of the cyclic collector's sight: it is millions
        of long-lived objects without cycles (freed by reference counting when replaced),
        and every full collection over them stalled requests (ownership p99 342 ms -> 28 ms
        at 1 M accounts, measured)."""
        gc.freeze()

    async def warm(self) -> None:
        async with self._warm_lock:
            if self._warmed_at is not None:
                return
            started = time.perf_counter()
            self._index = await self._load()
            if self.links is not None:
                await self.links.load()
            self._settle_heap()
            self._warmed_at = time.monotonic()
            log.info("account_directory_warmed", accounts=len(self._index),
                     seconds=round(time.perf_counter() - started, 3))

    def _maybe_rewarm(self) -> None:
        if (self._warmed_at is None or self._rewarm is not None
                or time.monotonic() - self._warmed_at < self.rewarm_seconds):
            return
        self._rewarm = asyncio.create_task(self._rebuild(), name="account-directory-rewarm")

    async def _rebuild(self) -> None:
        self._added_during_rewarm = []
        try:
            index = await self._load()
            if self.links is not None:
                await self.links.load()
            for key, identity in self._added_during_rewarm:
                index.add(key, identity)
            self._index = index
            self._settle_heap()
        except Exception:
            log.exception("account_directory_rewarm_failed")
        finally:
            self._added_during_rewarm = None
            self._warmed_at = time.monotonic()
            self._rewarm = None

    async def close(self) -> None:
        if self._rewarm is not None:
            self._rewarm.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._rewarm
        # What was frozen is collectable again (cycles among a closed app's objects would
        # otherwise outlive it in a process that goes on, such as a test run).
        gc.unfreeze()

    # --- resolving -----------------------------------------------------------------------

    async def resolve(self, identity: AccountIdentity, match: MatchPolicy,
                      names: bool = False, raw_name: str | None = None) -> Resolution:
        """The key for `identity`. `names`: look its name up in the directory tables even
        when an identifier already found a key (the post-decision re-report, which looks
        for keys other processes filed since: handlers.Commands._re_report). `raw_name`:
        the name as given, which a query without a country is also weighed by as each
        country reads it (`countryless_readings`, as the adjudicator weighs it)."""
        if self._warmed_at is None:
            await self.warm()
        self._maybe_rewarm()
        matches = self._index.match(identity, match.name_threshold, match.review_band,
                                    match.crm_ids, match.countryless_names, raw_name)
        if not self.complete:
            floor = name_floor(match.name_threshold, match.review_band)
            filled = await self._fill_misses(identity, matches, names, match.crm_ids, floor,
                                             match.countryless_names)
            if raw_name and identity.name and not identity.country:
                filled = await self._fill_readings(identity.name, raw_name, floor,
                                                   match.countryless_names) or filled
            if filled:
                matches = self._index.match(identity, match.name_threshold,
                                            match.review_band, match.crm_ids,
                                            match.countryless_names, raw_name)
        index = self._index
        query = Identifiers.of(identity).canonical(match.crm_ids)
        review_names = match.name_only == "review"
        for _ in range(4):
            resolution = choose(identity, matches, index.identifiers, index.__contains__,
                                review_names, match.crm_ids)
            if _links_table() is None or resolution.is_new:
                return resolution
            # The adjudicator may have linked the key to another since the index was built.
            key = await self.canonical_key(resolution.account_key)
            if key == resolution.account_key:
                return resolution
            if different_customers(query, (index.identifiers(key)
                                   | index.identifiers(resolution.account_key))
                                   .canonical(match.crm_ids)):
                # The key belongs to a customer with other identifiers (its links were
                # not yet folded into memory): it is not this customer's key.
                matches = [m for m in matches if m.account_key != resolution.account_key]
                continue
            self.remember(key, identity)
            return Resolution(key, resolution.matched,
                              tuple(a for a in resolution.aliases if a.account_key != key),
                              resolution.possible_duplicates)
        return choose(identity, [], index.identifiers, index.__contains__)

    async def _fill_readings(self, name: str, raw_name: str, floor: float,
                             countryless: CountrylessNames) -> bool:
        """Ask the directory tables for the names a country-less query's other readings
        (`countryless_readings`: each country's reading of the raw spelling) may score
        against, each in the countries that read it so; True if anything new."""
        by_reading: dict[str, list[str]] = {}
        for country, reading in countryless_readings(
                raw_name, name, self._countries_asked(None, countryless)):
            by_reading.setdefault(reading, []).append(country)
        added = False
        for reading, countries in by_reading.items():
            added = await self._fill_misses(AccountIdentity(None, None, reading, None), [],
                                            False, "exact", floor, countryless,
                                            countries) or added
        return added

    async def _fill_misses(self, identity: AccountIdentity, matches: list[AccountMatch],
                           names: bool = False, crm_ids: CrmIds = "exact",
                           floor: float = 0.0, countryless: CountrylessNames = "hold",
                           only: list[str] | None = None) -> bool:
        """Ask the directory tables for what memory did not know; True if anything new.
        The CRM id is asked in every spelling policy `match.crm_ids` makes one id
        (`crm_id_spellings`: the tables file ids as submitted; asking the submitted
        spelling alone filed the other Salesforce spelling under a new key while this
        process was behind the directory), and under `any_spelling` also by its
        spelling-free form (`account_crm_ids.crm_spelling`, session 29: "Acc_2024.00777"
        got a new key beside the filed "ACC-2024-00777", which the adjudicator and
        `GET /v1/ownership` found).

        One statement (a UNION ALL of the CRM id, domain and name look-ups that apply) in
        one round trip: it was up to three, each a round trip, on most new accounts. Names
        found count only when neither the CRM id nor the domain found a key (as before).
        `floor`: the lowest name score the caller's match keeps; on PostgreSQL names whose
        length cannot reach it are not fetched (`name_length_window`): the same matches
        from fewer rows. A name known in several forms ("X dba Y", `name_forms`) asks each
        form as a name of its own (the whole would miss the shorter forms). `countryless`:
        policy `match.countryless_names` (`_countries_asked`)."""
        forms = name_forms(identity.name) if identity.name and " dba " in identity.name \
            else ()
        if len(forms) > 1:
            added = False
            for i, form in enumerate(forms):
                part = AccountIdentity(identity.crm_account_id if i == 0 else None,
                                       identity.domain if i == 0 else None, form,
                                       identity.country)
                added = await self._fill_misses(part, matches, names, crm_ids, floor,
                                                countryless, only) or added
            return added
        kinds = {m.matched_by for m in matches}
        confident = any(m.confident for m in matches)
        crm = identity.crm_account_id if "crm_account_id" not in kinds else None
        spellings = list(crm_id_spellings(crm, crm_ids)) if crm else None
        # Spellings are unbounded under `any_spelling` ("Acc_2024.00777"): the directory
        # files each id's spelling-free form (migration 0014), asked as the ownership
        # look-up asks it; the listed spellings stay (a row filed before 0014 is filled).
        spelling = any_spelling(crm) if crm and crm_ids == "any_spelling" else None
        domain = identity.domain if "domain" not in kinds else None
        named = (names or not confident) and bool(identity.name)
        countries = (only if only is not None
                     else self._countries_asked(identity.country, countryless)) \
            if named else None
        if not (crm or domain or named):
            return False
        async with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql" and metadata.tables.get("account_name_keys") \
                    is not None:
                # One statement text whatever applies (absent parts are NULL), so asyncpg
                # prepares it once per connection and SQLAlchemy compiles nothing: the
                # compiled UNION with its IN lists was 13 % of a registration's CPU (and
                # `exec_driver_sql` still adds about half of the miss's CPU back).
                query_name = sort_name_tokens(identity.name or "")
                keys = sorted(blocking_keys(query_name))
                low, high = name_length_window(len(query_name), floor)
                found_rows = await driver_fetch(
                    conn, _MISSES_SQL, spellings, domain, countries, keys,
                    _NAME_FALLBACK_LIMIT, low, high, spelling)
                rows = [(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in found_rows]
            else:
                parts: list[Select[Any]] = []
                if spellings:
                    parts.append(select(literal("crm"), account_crm_ids.c.crm_account_id,
                                        account_crm_ids.c.account_key, literal(""))
                                 .where(account_crm_ids.c.crm_account_id.in_(spellings)))
                if spelling:
                    parts.append(select(literal("crm"), account_crm_ids.c.crm_account_id,
                                        account_crm_ids.c.account_key, literal(""))
                                 .where(account_crm_ids.c.crm_spelling == spelling))
                if domain:
                    parts.append(select(literal("domain"), account_domains.c.domain,
                                        account_domains.c.account_key, literal(""))
                                 .where(account_domains.c.domain == domain))
                for country in countries or ():
                    parts.append(self._candidate_names(identity.name or "", country))
                query = parts[0] if len(parts) == 1 else union_all(*parts)
                rows = [(str(r[0]), str(r[1]), str(r[2]), str(r[3]))
                        for r in await conn.execute(query)]
            found = {kind: await canonical_key(conn, key)
                     for kind, _, key, _ in sorted(rows, reverse=True)
                     if kind in ("crm", "domain")}  # the smallest key of a kind last
        if "crm" in found:
            # The submitted spelling, under the key a spelling of it was filed under.
            self.remember(found["crm"], AccountIdentity(identity.crm_account_id, None, None,
                                                        None))
        if "domain" in found:
            self.remember(found["domain"], AccountIdentity(None, identity.domain, None, None))
        if found:
            return True
        added = False
        index = self._index
        rewarming = self._added_during_rewarm is not None
        for kind, name, key, country in rows:
            if kind == "name":
                # A name filed already is not filed again (a no-op costing ~10 us a row:
                # most rows of a miss are names earlier misses fetched). While a rewarm
                # runs each is recorded still, for the index being built. Filed in the
                # country it was found in ("": without one).
                if rewarming or not index.has_name(key, name, country):
                    self.remember(key, AccountIdentity(None, None, name, country or None))
                added = True
        return added

    def _countries_asked(self, country: str | None,
                         countryless: CountrylessNames = "hold") -> list[str]:
        """The countries whose names a miss asks, by the rule the warmed index weighs a
        name by (`countries_weighed`, `AccountIndex.match`): the query's own, and the
        unknown one (names filed without a country, under "") unless policy
        `match.countryless_names: ask` says a name filed without a country is no match for
        a query with one; a query without a country every country this process knows and
        the unknown one (a country first seen since the last warm is not asked: the next
        rewarm knows it)."""
        return countries_weighed(country, self._index.countries(), countryless)

    @staticmethod
    def _candidate_names(name: str, country: str) -> Select[Any]:
        """("name", name, key, country) rows that may score against `name` in `country`:
        through the projections' blocking-key table when there is one, else names sharing
        the first token."""
        blocks = metadata.tables.get("account_name_keys")
        if blocks is not None:
            keys = sorted(blocking_keys(sort_name_tokens(name)))
            names = select(blocks.c.name).where(blocks.c.country == country,
                                                blocks.c.key.in_(keys)).distinct()
            return (select(literal("name"), account_names.c.name, account_names.c.account_key,
                           account_names.c.country)
                    .where(account_names.c.country == country, name_filed(),
                           account_names.c.name.in_(names.limit(_NAME_FALLBACK_LIMIT))))
        first = name.split()[0]
        limited = (select(account_names.c.name, account_names.c.account_key)
                   .where(account_names.c.country == country, name_filed(),
                          account_names.c.name >= first,
                          account_names.c.name < first + "\uffff")
                   .limit(_NAME_FALLBACK_LIMIT)).subquery()
        return select(literal("name"), limited.c.name, limited.c.account_key, literal(country))

    def remember(self, account_key: str, identity: AccountIdentity) -> None:
        """File an identity under its key (after an append, or what a query found)."""
        self._index.add(account_key, identity)
        if self._added_during_rewarm is not None:
            self._added_during_rewarm.append((account_key, identity))

    def remember_filed(self, entity_id: str, account_key: str, identity: AccountIdentity,
                       unfile_if_rejected: bool) -> None:
        """`remember` a registration's or claim's identity after its append, keeping the
        name forms it newly filed under its key when they are to be taken back if it is
        rejected (`decided`, policy `match.rejected_names: unfiled`). A form it files that
        an undecided or waiting filing brought first is no longer that one's alone to take
        back (`BroughtNames.filed`; session 29 second rival review: a rival's "B dba T",
        rejected, took T back from the key while the holder's filing of T held it)."""
        if identity.name:
            forms = self._index.new_name_forms(account_key, identity.name, identity.country)
            self._brought.filed(entity_id, account_key, identity.name, identity.country,
                                forms, False)
            taken = self._index.taken_back_if_rejected(
                account_key, identity.name, identity.country) if forms else ()
            if taken and unfile_if_rejected:
                self._brought.bring(entity_id, account_key, identity.name,
                                    identity.country, taken)
                while len(self._brought) > self._recent_size:
                    self._brought.forget_oldest()
        self.remember(account_key, identity)

    def decided(self, entity_id: str, status: str | None) -> None:
        """A registration or claim this process filed is decided (or decided again):
        rejected -- at its decision or by a person after review -- the name forms it
        newly filed that no live filing filed since are taken back (a filing that never
        held anything adds no names that join customers, sessions 29-30; the adjudicator
        does the same, `BroughtNames`); in review they wait for the person; approved or
        ended otherwise they stay. A rewarm started before puts taken forms back until
        the next one: the directory read model still files them."""
        if status is None or status == "submitted":
            return
        if status == "in_review":
            self._brought.waits(entity_id)
            return
        if status != "rejected":
            self._brought.held(entity_id)
            return
        found = self._brought.rejected(entity_id)
        if found is not None:
            account_key, forms, country, _ = found
            self._index.unfile_names(account_key, forms, country)
            self._taken[entity_id] = found
            while len(self._taken) > self._recent_size:
                self._taken.popitem(last=False)

    def told(self, ids: Collection[str], rows: Mapping[str, dict[str, Any]] | None) -> None:
        """A `DecisionWaiter` observer: the rows (or statuses) the projections just
        committed; a filing of this process still holding names it may take back (or
        has taken back) is `decided` at once."""
        if rows is None or not (self._brought or self._taken):
            return
        for entity_id in ids:
            row = rows.get(entity_id)
            status = row.get("status") if row is not None else None
            if entity_id in self._brought:
                self.decided(entity_id, status)
            elif status in PROTECTING and entity_id in self._taken:
                # Its rejection is undone (promoted after its holder ended, contested,
                # awarded): its names are its customer's again, as in the adjudicator
                # (`AdjudicationState.activate`; session 29 second rival review), and in
                # review its own to take back once more.
                account_key, _, country, name = self._taken.pop(entity_id)
                forms = self._index.new_name_forms(account_key, name, country)
                self._brought.filed(entity_id, account_key, name, country, forms, True)
                if forms and status != "approved":
                    self._brought.bring(entity_id, account_key, name, country, forms)
                self.remember(account_key, AccountIdentity(None, None, name, country))

    # --- entities this process accepted ----------------------------------------------------

    def remember_entity(self, entity: KnownEntity) -> None:
        self._recent[entity.id] = entity
        self._recent.move_to_end(entity.id)
        while len(self._recent) > self._recent_size:
            self._recent.popitem(last=False)

    def recent(self, entity_id: str) -> KnownEntity | None:
        return self._recent.get(entity_id)
