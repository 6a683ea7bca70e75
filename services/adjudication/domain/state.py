"""What one partition's adjudicator remembers between events.

Everything here is rebuilt by re-deciding the partition's intake history, so it holds only
what the rules need: the registrations and claims (one `Entry` each) that are active or
recently ended, the accounts they were filed under (an `AccountIndex` matching by CRM id,
domain and fuzzy name regardless of account key), the open and recently resolved disputes,
recent wins (incumbency), and one heap of deadlines.

Memory matters because a partition may hold hundreds of thousands of active registrations:
entries are `__slots__` dataclasses with instants as ints, shared (interned) strings and
product sets, and no per-entry containers beyond the product set. Ended entries are kept for
one protection period (so a partner can still contest a rejection, and a late CRM close still
counts) and then forgotten by a deadline on the heap.
"""

from __future__ import annotations

import heapq
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from shared.accounts import (
    AccountIdentity,
    AccountIndex,
    BroughtNames,
    Identifiers,
    different_customers,
)
from shared.events.registration import PROTECTING
from shared.policy import Policy

ACTIVE: Final = PROTECTING
FORGETS_ACCOUNTS = False
"""Whether the state forgets an account with the last entry kept under its key
(`AdjudicationState.forget_account`). Off: it changes decisions (see there)."""
_INDEX_MEMO: Final = 256
_PRODUCT_SETS: dict[tuple[str, ...], frozenset[str]] = {}
"""A bounded memo of `intern_products` by an event's products tuple: a few product
combinations recur on every registration, and building the set (each name interned) cost
more than finding it. Process-wide, a cache of a pure function: never state."""
_PRODUCT_SETS_MEMO: Final = 1024

# Heap item kinds. Deadlines are validated against the target when they come due, so a
# superseded deadline (extension, escalation, resolution) is simply skipped: no deletes.
EXPIRY: Final = "protection_expiry"
REMINDER: Final = "dispute_reminder"
DEADLINE: Final = "dispute_deadline"
FORGET_ENTRY: Final = "forget_entry"
FORGET_DISPUTE: Final = "forget_dispute"
COPY_LEASE: Final = "copy_lease"
PROMOTION: Final = "release_promotion"

ORDER: Final[dict[str, int]] = {
    EXPIRY: 0, COPY_LEASE: 0, PROMOTION: 0, REMINDER: 1, DEADLINE: 2, FORGET_ENTRY: 3,
    FORGET_DISPUTE: 4,
}
"""What happens first when deadlines fall on the same instant, by meaning: protections end
(an expiry, a copy's lease running out) before a dispute's deadline is weighed (so a
fallback sees who is still there and never awards a protection ending that very
microsecond), reminders before the escalation they announce, forgetting last. A
promotion deferred to the unit (`PROMOTION`) ranks with the protections that end (by kind
name, after an expiry or lease at that instant: it weighs who is still there), before
the dispute deadlines, as a promotion at the expiry itself did."""

TimerItem = tuple[int, int, str, str, int]
"""(deadline µs, order, kind, target id, level): totally ordered (ids are unique per kind),
so the order of equal deadlines is deterministic without a sequence number."""


@dataclass(slots=True, eq=False)
class Entry:
    """A registration or a direct claim: a party's claim on (part of) an account."""

    id: str
    account_key: str
    party_type: str  # "partner" | "direct"
    party_id: str  # partner id, or the rep id for a direct claim
    kind: str  # "registration" | "named_account" | "opportunity"
    motion: str  # a registration's motion; "direct" for claims (always exclusive)
    products: frozenset[str] | None  # None: the whole account
    submitted_at: int
    tier: str  # the partner's tier at submission; "" for direct claims
    policy_version: int
    status: str
    protected_until: int | None = None
    extensions: int = 0
    dispute_id: str | None = None
    credit_percent: Decimal | None = None
    beaten_by: tuple[str, ...] = ()  # who a rejection named, for a later contest
    decided_at: int = 0  # when the precedence rejection in `beaten_by` was decided
    near_by: tuple[str, ...] = ()  # its possible duplicates that rejection flagged (rule 7)
    contested: bool = False  # its rejection was contested once already
    retain_until: int = 0  # ended: when it is forgotten; an active copy: its lease end
    mirror: bool = False  # a copy reported from another partition's key (links.py)
    held_by: str | None = None  # the one dispute allowed to carry this protection past its end
    evidence: tuple[str, float] | None = None
    """How it matched the customer already under its key when decided (matched_by, score);
    None: it opened the key (or is a copy), the key's own kind."""
    reported: tuple[tuple[str, str, float], ...] = ()
    """The edge's reports of keys on other partitions as possibly its customer (key,
    matched_by, score): `AdjudicationState.suspects` its decision (or contest) consumed, or,
    for a copy, the report that drew it into a review after both sides were decided. Kept
    while it is, so a later settlement names such a copy by how the two were reported to
    match (`outcomes.reported_match`), not by a key's form (invariant 6)."""
    unfiled: tuple[str, str | None] | None = None
    """The name (and country) whose new forms its rejection took back from its key
    (`match.rejected_names: unfiled`), until it is active again (`activate` files them)."""

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def incumbency_party(self) -> str:
        # The direct team wins and holds accounts as one party, whichever rep closed.
        return self.party_id if self.party_type == "partner" else "direct"


@dataclass(slots=True, eq=False)
class Dispute:
    id: str
    account_key: str
    member_ids: list[str]
    reason: str
    policy_version: int
    opened_at: int
    level: int
    owner_id: str
    due_at: int
    reminder_at: int | None
    acknowledged: bool = False
    breached: bool = False
    status: str = "open"
    resolved_at: int = 0
    flagged: tuple[tuple[str, str], ...] = ()
    """(member, newcomer) pairs: an approved member drawn in only as the newcomer's
    possible duplicate next to its confident collision (DESIGN rule 7). A settlement (a
    person's or the fallback's) weighs it against its newcomers only."""
    unit_us: int | None = None
    """The `escalation.deadline_unit` (µs) of the last policy a registration joined it under
    that had one (session 30): its pending deadline was moved onto it and its later levels
    fall due on it, whatever its own policy's unit. None: its own policy's."""


@dataclass(slots=True, eq=False)
class Link:
    """A fact: keys `alias` and `canonical` are one customer, for as long as one of the
    registrations that showed it (`justified_by`, oldest first) is active."""

    alias: str
    canonical: str
    matched_by: str
    score: float
    linked_at: int
    justified_by: list[str]


_STRENGTH: Final = {"name": 0, "domain": 1, "crm_account_id": 2}


def weakest(a: tuple[str, float], b: tuple[str, float]) -> tuple[str, float]:
    """The weaker of two pieces of evidence (matched_by, score) that chain: name below
    domain below CRM id; between two of one kind, the lower score."""
    ra, rb = _STRENGTH.get(a[0], 1), _STRENGTH.get(b[0], 1)
    if ra != rb:
        return a if ra < rb else b
    return a if a[1] <= b[1] else b


@dataclass(slots=True)
class AdjudicationState:
    """One partition's memory. `decide` mutates it in place (for speed) and returns it."""

    entries: dict[str, Entry] = field(default_factory=dict)
    active_by_key: dict[str, list[Entry]] = field(default_factory=dict)
    index: AccountIndex = field(default_factory=AccountIndex)
    loose_index: AccountIndex = field(default_factory=AccountIndex)
    """Accounts whose key is not derived from a domain: the only ones a registration that
    has a domain can still match by name (see matching.different_identifiers)."""
    disputes: dict[str, Dispute] = field(default_factory=dict)
    timers: list[TimerItem] = field(default_factory=list)
    incumbents: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    """account key -> [(incumbency party, won at µs)], most recent last."""
    beaten: dict[str, list[str]] = field(default_factory=dict)
    """entry id -> ids of the registrations a precedence rule rejected in its favour: the
    line that `on_release: promote_next` looks at when it lets go (see release.py)."""
    links: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """account key -> keys linked to it directly (both directions); `cluster` follows
    them transitively."""
    link_facts: dict[tuple[str, str], Link] = field(default_factory=dict)
    """(smaller key, larger key) -> the link's provenance and lifetime."""
    justifies: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """registration id -> the links it justifies (see `Link.justified_by`)."""
    ended: list[str] = field(default_factory=list)
    """Registrations that justify links and ended since links were last revisited."""
    partner_status: dict[str, str] = field(default_factory=dict)
    watchers: dict[str, list[str]] = field(default_factory=dict)
    """registration id (this partition's own, active) -> keys on other partitions whose
    reviews hold a copy of it (`CopiesInReview`): told when it ends (relay.tell_ended)."""
    settled_watch: set[tuple[str, str]] = field(default_factory=set)
    """(registration id, review key) of `watchers` whose review settled keeping the copy as
    it was, alone (`RelayedDecision.kept`): still told of its end, but holding no line
    back (`release.let_go`); drawn in again, the pair is dropped (`relay.watch`)."""
    appealed: dict[str, list[str]] = field(default_factory=dict)
    """registration id (or copy) -> partners that contested losing to it, here or to a
    copy of it on another partition (`CopiesInReview.appealed`), or, for a copy held here,
    to its original on its own partition (`CopiesInReview.appealed_here`): a contest here
    against it by one of them is a second appeal (disputes._appealed_before). Kept for its
    grant, like its line (`beaten`): dropped when it lets go or is forgotten, a copy's
    when the copy ends here (release.remember_appeal)."""
    unwatched: list[str] = field(default_factory=list)
    """Watched registrations that ended since the watchers were last told."""
    refiled: dict[str, tuple[tuple[str, ...], str | None]] = field(default_factory=dict)
    """entry id -> (name forms, country) its undone rejection filed again (`activate`)
    since the last decision was told: `decide` writes them on that entry's decision
    (`refiled_names`) for the directory read model. Empty between events."""
    brought: BroughtNames = field(default_factory=BroughtNames)
    """The name forms each entry in review brought to its key (new there when it was
    filed, under `match.rejected_names: unfiled`), less those another live filing filed
    since: what a person's (or a settlement's) rejection takes back (`retired`; session
    30). Empty of entries decided otherwise."""
    unfiled_now: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """entry id -> the name forms its rejection after review took back (`retired`) since
    the last decision was told: `decide` writes them on that entry's decision
    (`unfiled_names`). Empty between events."""
    unfiled_cofilers_now: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """entry id -> the filings that filed the forms it took back after review since it
    brought them and were rejected (they counted for nothing, `BroughtNames.rejected_void`):
    `decide` writes them beside `unfiled_names` (`unfiled_cofilers`). Empty between events."""
    suspects: dict[str, list[tuple[str, str, float]]] = field(default_factory=dict)
    """registration id (not yet decided) -> [(key, matched by, score)]: keys on another
    partition the edge reported as possible duplicates of its account (links.report);
    consumed when that registration is decided."""
    releasing: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)
    """account key -> [(owner id, expired at µs, promotion due µs)]: owners whose protection
    expired and whose line is promoted on the policy's `promotion_unit` (a `PROMOTION`
    timer, release.py); until then a newcomer on their customer and scope queues behind
    the line."""
    let_go: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    """account key -> [(entry id, ended at µs)]: partner registrations withdrawn or expired,
    while remembered (the re-registration cool-off, cooloff.py)."""
    policies: dict[int, Policy] = field(default_factory=dict)
    policy_version: int | None = None
    """The newest policy version seen: used for events that carry none (timer firings)."""
    clock: int = 0
    """The partition clock: the latest event time seen, never going back."""
    _products: dict[frozenset[str], frozenset[str]] = field(default_factory=dict)
    filed: dict[str, int] = field(default_factory=dict)
    """account key -> how many of `entries` are filed under it: with `FORGETS_ACCOUNTS`,
    an account is forgotten (`forget_account`) when this drops to zero and no link names
    its key."""
    opener_shares: dict[str, tuple[str, float]] = field(default_factory=dict)
    """account key -> how the first registration filed under it after the one that opened
    it matched it (its `Entry.evidence`): what the opener (`evidence` None) is known to
    share with the key's customer. A later member may have matched by an identifier the
    opener never had, say a CRM id brought by the first joiner (`outcomes.member_evidence`,
    invariant 6)."""
    _indexed: dict[str, AccountIdentity] = field(default_factory=dict)
    """A bounded memo: account key -> the identity last filed under it in the index. Most
    registrations repeat a known account, and re-filing it would change nothing."""

    # --- policies -------------------------------------------------------------------------

    def remember_policy(self, policy: Policy | None) -> Policy:
        """Keep `policy` under its version; return the policy for the current event."""
        if policy is not None:
            self.policies.setdefault(policy.version, policy)
            if self.policy_version is None or policy.version > self.policy_version:
                self.policy_version = policy.version
            return self.policies[policy.version]
        if self.policy_version is not None:
            return self.policies[self.policy_version]
        default = Policy.default()
        self.policies[default.version] = default
        self.policy_version = default.version
        return default

    def policy(self, version: int) -> Policy:
        """The policy an entity was decided under (it was seen when the entity was)."""
        found = self.policies.get(version)
        if found is not None:
            return found
        return self.remember_policy(None)

    # --- entries --------------------------------------------------------------------------

    def intern_products(self, products: tuple[str, ...] | frozenset[str]) -> frozenset[str]:
        if type(products) is tuple:
            # An event's products (nearly every entry): the set of that tuple, made once
            # per process (`_PRODUCT_SETS`), then this state's own equal set.
            key = _PRODUCT_SETS.get(products)
            if key is None:
                if len(_PRODUCT_SETS) >= _PRODUCT_SETS_MEMO:
                    _PRODUCT_SETS.clear()
                key = _PRODUCT_SETS[products] = frozenset(map(sys.intern, products))
        else:
            key = frozenset(map(sys.intern, products))
        return self._products.setdefault(key, key)

    def shared_key(self, account_key: str) -> str:
        """The one string the state keeps for `account_key`: the index's, once the account
        is known (see `AccountIndex.key`)."""
        return self.index.key(account_key)

    def index_account(self, account_key: str, identity: AccountIdentity) -> None:
        if self._indexed.get(account_key) == identity:
            return
        if len(self._indexed) >= _INDEX_MEMO:
            self._indexed.clear()
        self._indexed[account_key] = identity
        self.index.add(account_key, identity)
        if not account_key.startswith("dom:") and identity.name:
            # Only names are ever looked up there (matching._lookups); one with no country
            # under the unknown country, as in `index`.
            self.loose_index.add(account_key, AccountIdentity(None, None, identity.name,
                                                              identity.country))

    def unfile_names(self, account_key: str, forms: tuple[str, ...],
                     country: str | None) -> None:
        """Take back name forms a rejected filing newly filed under `account_key`
        (`AccountIndex.unfile_names`), in both indexes; the next filing of the same
        identity files them again (the memo forgets it)."""
        self._indexed.pop(account_key, None)
        self.index.unfile_names(account_key, forms, country)
        if not account_key.startswith("dom:"):
            self.loose_index.unfile_names(account_key, forms, country)

    def keep(self, entry: Entry) -> None:
        """Hold a new entry (registration, claim, or a copy of another partition's)."""
        self.entries[entry.id] = entry
        key = entry.account_key
        self.filed[key] = self.filed.get(key, 0) + 1

    def drop(self, entry: Entry) -> None:
        """Forget an entry; its account too once nothing keeps it (`forget_account`)."""
        del self.entries[entry.id]
        key = entry.account_key
        left = self.filed.get(key, 0) - 1
        if left > 0:
            self.filed[key] = left
            return
        self.filed.pop(key, None)
        self.forget_account(key)

    def forget_account(self, account_key: str) -> None:
        """Take `account_key` out of the account indexes when no kept entry is filed under
        it and no link names it (only with `FORGETS_ACCOUNTS`). Every rule reaches
        accounts through entries (collisions, cool-off, the line) or links, but the facts
        filed under a key still matter after its entries are gone: a later registration
        under the same key is matched by the names of the key's earlier registrations
        too, and its own-key evidence compares with their identifiers. So forgetting
        changes decisions (DESIGN.md, "Forgetting accounts"): off until that is decided."""
        if not FORGETS_ACCOUNTS or account_key in self.filed or account_key in self.links:
            return
        self.index.remove(account_key)
        self.loose_index.remove(account_key)
        self._indexed.pop(account_key, None)

    def activate(self, entry: Entry) -> None:
        if self.brought.brought:
            # Live: what it filed again stays for good; approved, it holds, so what it
            # brought is its customer's (`BroughtNames`).
            if entry.status == "approved":
                self.brought.held(entry.id)
            else:
                self.brought.waits(entry.id)
        if entry.unfiled is not None:
            # A rejection that took its names back is undone (promoted, contested, awarded):
            # the names are its customer's again (session 29 second rival review: "B dba T"
            # promoted after the holder withdrew held B, and a name-only filing of T was
            # approved beside it, unseen).
            name, country = entry.unfiled
            entry.unfiled = None
            forms = self.index.new_name_forms(entry.account_key, name, country)
            self.index_account(entry.account_key, AccountIdentity(None, None, name, country))
            # It files them again, as a filing would: others' records lose them, and in
            # review they are its own to take back once more if a person rejects it.
            self.brought.filed(entry.id, entry.account_key, name, country, forms, True)
            if forms:
                if entry.status != "approved":
                    self.brought.bring(entry.id, entry.account_key, name, country, forms)
                # Its decision says so, and the directory read model files them too.
                self.refiled[entry.id] = (forms, country)
        bucket = self.active_by_key.get(entry.account_key)
        if bucket is None:
            self.active_by_key[entry.account_key] = [entry]
        elif entry not in bucket:
            bucket.append(entry)

    def retired(self, entry: Entry, status: str) -> None:
        """`entry` left the active set with `status` (`protection.retire`). Rejected after
        review, it takes back the name forms it brought that no live filing filed since
        (`BroughtNames.rejected`; a filing rejected at its decision is `adjudicate`'s, and
        has no record here), and is filed again if that is undone (`activate`); ended
        otherwise, it held something and keeps them (session 30)."""
        if not self.brought.brought:
            return
        if status != "rejected":
            self.brought.held(entry.id)
            return
        taken, void = self.brought.rejected_void(entry.id)
        if taken is None:
            return
        account_key, forms, country, name = taken
        self.unfile_names(account_key, forms, country)
        entry.unfiled = (name, country)
        self.unfiled_now[entry.id] = forms
        if void:
            self.unfiled_cofilers_now[entry.id] = void

    def deactivate(self, entry: Entry) -> None:
        bucket = self.active_by_key.get(entry.account_key)
        if bucket is None:
            return
        try:
            bucket.remove(entry)
        except ValueError:
            return
        if not bucket:
            del self.active_by_key[entry.account_key]

    def active_under(self, account_key: str) -> list[Entry]:
        return self.active_by_key.get(account_key, [])

    def active_count(self) -> int:
        return sum(len(bucket) for bucket in self.active_by_key.values())

    # --- links: which keys are one customer ------------------------------------------------

    def cluster(self, account_key: str) -> list[str]:
        """`account_key` and every key linked to it, directly or through other links, in a
        deterministic order (breadth first, links in the order they were made)."""
        links = self.links
        if account_key not in links:
            return [account_key]
        found = [account_key]
        seen = {account_key}
        i = 0
        while i < len(found):
            for other in links.get(found[i], ()):
                if other not in seen:
                    seen.add(other)
                    found.append(other)
            i += 1
        return found

    def link_paths(self, account_key: str) -> dict[str, tuple[str, float]]:
        """How every other key of `account_key`'s cluster is one customer with it: the
        weakest link (name below domain below CRM id; the lower score between two names)
        on its path from `account_key`, breadth first as `cluster` walks it. Empty when
        nothing is linked to it. What evidence across a link says (invariant 6: keys
        linked by a name matched by that name, whatever their own keys' forms)."""
        links = self.links
        if account_key not in links:
            return {}
        facts = self.link_facts
        paths: dict[str, tuple[str, float]] = {}
        frontier = [account_key]
        i = 0
        while i < len(frontier):
            here = frontier[i]
            came = paths.get(here)
            for other in links.get(here, ()):
                if other == account_key or other in paths:
                    continue
                fact = facts.get((here, other) if here < other else (other, here))
                step = (fact.matched_by, fact.score) if fact is not None else ("name", 0.0)
                paths[other] = step if came is None else weakest(came, step)
                frontier.append(other)
            i += 1
        return paths

    def customer(self, account_key: str) -> Identifiers:
        """The identifiers of the customer behind `account_key`: filed under any key of
        its cluster (what `shared.accounts.sameness` compares)."""
        index = self.index
        if account_key not in self.links:
            return index.identifiers(account_key)
        carried = index.identifiers(account_key)
        for key in self.cluster(account_key)[1:]:
            carried = carried | index.identifiers(key)
        return carried

    def link(self, a: str, b: str, matched_by: str = "name", score: float = 1.0,
             justified_by: str | None = None, at: int = 0) -> bool:
        """Record that keys `a` (the alias) and `b` are one customer, as shown by the
        registration `justified_by`; True if the link is new. Refused (False, nothing
        recorded) when the two keys' customers carry different identifiers: a link never
        bridges them, however it was found."""
        if a == b:
            return False
        pair = (a, b) if a < b else (b, a)
        fact = self.link_facts.get(pair)
        if fact is None:
            if b not in self.cluster(a) and different_customers(self.customer(a),
                                                                self.customer(b)):
                return False
            fact = self.link_facts[pair] = Link(a, b, matched_by, score, at, [])
            self.links[a] = (*self.links.get(a, ()), b)
            self.links[b] = (*self.links.get(b, ()), a)
            new = True
        else:
            new = False
        if justified_by is not None and justified_by not in fact.justified_by:
            fact.justified_by.append(justified_by)
            self.justifies.setdefault(justified_by, []).append(pair)
        return new

    def unlink(self, pair: tuple[str, str]) -> Link | None:
        fact = self.link_facts.pop(pair, None)
        if fact is None:
            return None
        for key, other in ((pair[0], pair[1]), (pair[1], pair[0])):
            rest = tuple(k for k in self.links.get(key, ()) if k != other)
            if rest:
                self.links[key] = rest
            else:
                self.links.pop(key, None)
                self.forget_account(key)
        return fact

    # --- incumbency -----------------------------------------------------------------------

    def record_win(self, account_key: str, party: str, at: int, keep_since: int) -> None:
        """Remember that `party` won the account at `at`; wins before `keep_since` (the
        longest incumbency window of any policy seen) can no longer matter. Bounded by
        time, not by count: one party's win must not be pushed out by others' wins."""
        wins = [w for w in self.incumbents.get(account_key, ()) if w[1] >= keep_since]
        wins.append((party, at))
        self.incumbents[account_key] = wins

    def won_within(self, keys: tuple[str, ...], party: str, since: int, until: int) -> bool:
        for key in keys:
            for who, at in self.incumbents.get(key, ()):
                if who == party and since <= at <= until:
                    return True
        return False

    # --- timers ---------------------------------------------------------------------------

    def schedule(self, deadline: int, kind: str, target: str, level: int = 0) -> None:
        heapq.heappush(self.timers, (deadline, ORDER[kind], kind, target, level))
