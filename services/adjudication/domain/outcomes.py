"""Decision events built from entries: the one place that turns state into output.

Built with `shared.events.trusted` (no validation): every value comes from the state, which
holds only what validated events and the policy put there, and is converted here to its
field's exact type (float scores, tuples, datetimes). tests/unit/events/test_trusted_events.py
re-validates every decision of the mixed workload and compares the bytes."""

from __future__ import annotations

from collections.abc import Sequence

from services.adjudication.domain.instants import from_us
from services.adjudication.domain.matching import Collision, key_evidence
from services.adjudication.domain.state import AdjudicationState, Entry, weakest
from shared.accounts.index import CountrylessNames, best_name_score
from shared.accounts.sameness import Identifiers, different_customers
from shared.events import (
    ClaimDecided,
    ConflictEvidence,
    DomainEvent,
    RegistrationDecided,
    trusted,
)
from shared.events.claims import ClaimKind
from shared.events.registration import MatchedBy, PartyType, RegistrationStatus
from shared.policy import Policy


def evidence(collision: Collision, decided_key: str) -> ConflictEvidence:
    entry = collision.entry
    return _evidence(entry, collision.matched_by, collision.score, collision.confident,
                     entry.account_key if entry.account_key != decided_key else None)


def _evidence(entry: Entry, matched_by: str, score: float, confident: bool,
              account_key: str | None) -> ConflictEvidence:
    kind: MatchedBy = _matched_by(matched_by)
    return trusted(
        ConflictEvidence,
        registration_id=entry.id,
        party_type=_party_type(entry.party_type),
        party_id=entry.party_id,
        matched_by=kind,
        score=float(round(score, 4)),
        account_key=account_key,
        confident=bool(confident),
    )


def member_evidence(entry: Entry, decided_key: str,
                    decided: Entry | None = None,
                    joined: tuple[str, float] | None = None,
                    opened: tuple[str, float] | None = None) -> ConflictEvidence:
    """Evidence for a fellow member `entry` of a dispute, in a decision about `decided`
    (filed under `decided_key`): how they were found to be one customer. A name match on
    either side makes it a name match (the weakest link); otherwise it is how `decided`
    matched its key's customer, or, when it opened the key, how the key's first joiner
    matched it (`opened`: `state.opener_shares`, what the opener shares with its
    customer; not `entry`'s own match, which may be by an identifier the opener never had,
    invariant 6), or (neither known) how `entry` did. A `decided` that opened a key of its
    own (another key than `entry`'s) matched through the link between the two keys
    (`joined`: a link found by a name, by name), else through that key's form: a name key
    can only have matched by name."""
    theirs = entry.evidence or (key_evidence(entry.account_key), 1.0)
    mine = (decided.evidence if decided is not None else None) or opened or theirs
    if (decided is not None and decided.evidence is None
            and decided.account_key != entry.account_key):
        # It opened its key: the member's key is its customer through the link between
        # them (`joined`), else through its own key's form.
        mine = joined or (key_evidence(decided.account_key), 1.0)
    kind, score = _weakest(mine, theirs)
    return evidence(Collision(entry, kind, score, True), decided_key)


def near_evidence(entry: Entry, decided_key: str, decided: Entry) -> ConflictEvidence:
    """`member_evidence`, as a possible duplicate (`confident: false`): a near match a
    person must confirm."""
    kind, score = _weakest(decided.evidence or (key_evidence(decided.account_key), 1.0),
                           entry.evidence or (key_evidence(entry.account_key), 1.0))
    return evidence(Collision(entry, kind, score, False), decided_key)


def fellow_evidence(state: AdjudicationState, entry: Entry, decided_key: str,
                    decided: Entry | None = None) -> ConflictEvidence:
    """`member_evidence` with the link between the two keys, if any (`joined`): a member
    filed under a key linked to the key the decided one opened is its customer through
    that link, so a link found by a name makes it a name match (invariant 6; before
    session 25 the evidence said the decided one's key form, say `crm_account_id`). A
    member under a key not linked to it: `unlinked_match`."""
    paths = (state.link_paths(decided_key) if entry.account_key != decided_key
             else _NO_PATHS)
    opened = state.opener_shares.get(decided_key)
    apart = unlinked_match(state, decided_key, entry.account_key, paths,
                           state.policy(decided.policy_version) if decided is not None
                           else None)
    if apart is not None and apart[0]:
        return _evidence(entry, *_through(apart, _own(decided, decided_key, opened),
                                          _own(entry, entry.account_key)),
                         entry.account_key)
    if apart is not None and decided is not None:  # a copy's key (UNFILED)
        reported = reported_match(decided, entry)
        if reported is not None:
            return _evidence(entry, *reported, False, entry.account_key)
    found = member_evidence(entry, decided_key, decided, paths.get(entry.account_key), opened)
    if apart is not None:  # a copy's key, not linked: a possible duplicate
        return _evidence(entry, found.matched_by, found.score, False, entry.account_key)
    return found


def reported_match(a: Entry, b: Entry) -> tuple[str, float] | None:
    """How the edge reported `a` and `b` to match (`Entry.reported`, either way round:
    matched_by, score), or None. What a decision names a copy by when its key is filed on
    another partition (`UNFILED`): the report the review opened on, never a key's form,
    which cites an identifier the two may not share (invariant 6; session 28: a newcomer
    filed by a CRM id alone said `crm_account_id` of a copy that had none)."""
    for key, kind, score in a.reported:
        if key == b.account_key:
            return kind, score
    for key, kind, score in b.reported:
        if key == a.account_key:
            return kind, score
    return None


def add_reports(kept: tuple[tuple[str, str, float], ...],
                new: Sequence[tuple[str, str, float]]) -> tuple[tuple[str, str, float], ...]:
    """`kept` with the reports of keys it does not hold yet (the first report of a key
    stays: the one the decision named)."""
    known = {key for key, _, _ in kept}
    added = []
    for report in new:
        if report[0] not in known:
            known.add(report[0])
            added.append(report)
    return (*kept, *added) if added else kept


_NO_PATHS: dict[str, tuple[str, float]] = {}
_UNASKED: tuple[str, float, bool] = ("?", 0.0, False)
"""`Fellows`' mark for a pair of keys not weighed yet: its kind "?" is no answer's.
Compared by that kind, never by identity: compiled (mypyc), a tuple taken out of a typed
list is boxed anew, so `is` never held and every pair was answered "?" (session 28)."""
UNFILED: tuple[str, float, bool] = ("", 0.0, False)
"""`unlinked_match` of a copy's key (filed on another partition) that its form does not
separate."""


def unlinked_match(state: AdjudicationState, decided_key: str, account_key: str,
                   paths: dict[str, tuple[str, float]], policy: Policy | None = None
                   ) -> tuple[str, float, bool] | None:
    """How a member under `account_key` matches one decided under `decided_key` when the
    two keys are not linked (`paths`: `state.link_paths(decided_key)`): not one customer by
    any fact here, they met in one dispute only as a possible duplicate a person was asked
    about (a name in the review band, the same domain under another CRM id, a name under
    another CRM id, `sameness.for_a_person`, or through a third registration's name). So
    the evidence names what the two keys' customers really share -- a CRM id, else a
    domain, else their names at their best score (`AccountIndex.name_score`) -- confident
    only when identifiers make them one customer (a shared identifier, and
    `different_customers` does not part them) or, for names, when the name decides as
    `sort_out` lets it under the decided one's `policy` (at least `name_threshold`, and
    under `name_only: review` both keys' forms carry an identifier or neither does: two
    name-only keys matched confidently, one rejected, so never linked); never the decided
    one's key form, which cited an identifier the other side may never have had (invariant
    6: session 26 for customers that identifiers separate, session 27 for the rest; a
    member that joined its own key by a name stays a name match, `_through`). None for one
    key, or
    two linked ones (`member_evidence`). A key not filed here (a copy's, from another
    partition: its identifiers and names are filed there) is judged by its form alone: a
    form that `different_customers` separates is named this way, any other gives kind ""
    (`UNFILED`: named as before, by the keys' forms, but not confident -- nothing links
    them, so the edge reported it as only possibly this customer)."""
    if account_key == decided_key or account_key in paths:
        return None
    index = state.index
    kind, apart = _unlinked_by(state.customer(decided_key), state.customer(account_key),
                               account_key in index and decided_key in index)
    if not kind:
        return UNFILED
    if kind != "name":
        return kind, 1.0, not apart
    # Weighed as the match weighs (`countries_weighed`, the key filed later asking; session
    # 30: a name filed without a country was weighed against every country's here).
    score = index.name_score(decided_key, account_key, countryless=_countryless(policy))
    # Confident only by names that met in one known country: a name without a country is
    # weighed across countries, never confidently (round 2 of session 27's rival review:
    # a settlement under `name_only: decide` called such a pair a confident name match).
    return "name", score, not apart and policy is not None and _name_decides(
        policy, index.name_score(decided_key, account_key, known_country=True),
        bool(Identifiers.of_key(decided_key)), bool(Identifiers.of_key(account_key)))


def _countryless(policy: Policy | None) -> CountrylessNames:
    """How a settlement weighs names filed without a country: as `policy` says
    (`match.countryless_names`), every country (`hold`) without one."""
    return policy.match.countryless_names if policy is not None else "hold"


def _unlinked_by(mine: Identifiers, theirs: Identifiers, filed: bool) -> tuple[str, bool]:
    """What `unlinked_match` cites for two unlinked keys' customers (`filed`: both keys
    filed here), and whether `different_customers` parts them: "" (`UNFILED`), else the
    CRM id or domain they share, else "name" (the keys' best name score). Symmetric."""
    apart = different_customers(mine, theirs)
    if not apart and not filed:
        return "", apart
    if not mine.crm_ids.isdisjoint(theirs.crm_ids):
        return "crm_account_id", apart
    if not mine.domains.isdisjoint(theirs.domains):
        return "domain", apart
    return "name", apart


def _name_decides(policy: Policy, score: float, a: bool, b: bool) -> bool:
    """Whether a name at `score` makes two keys one customer under `policy`, as
    `sameness.sort_out` judges a confident name (identifiers not contradicting it); `a`,
    `b`: whether each key's form carries an identifier (`Identifiers.of_key`)."""
    if score < policy.match.name_threshold:
        return False
    return policy.match.name_only != "review" or a == b


def _own(entry: Entry | None, account_key: str,
         opened: tuple[str, float] | None = None) -> tuple[str, float]:
    """How `entry` is the customer of its own key: its own evidence, else (it opened the
    key) what the key's first joiner matched it by (`opened`), else the key's form."""
    return ((entry.evidence if entry is not None else None) or opened
            or (key_evidence(account_key), 1.0))


def _through(match: tuple[str, float, bool], mine: tuple[str, float],
             theirs: tuple[str, float]) -> tuple[str, float, bool]:
    """`unlinked_match`'s identifier shared by two keys' customers, as evidence about two
    of their members (`mine`, `theirs`: how each is its own key's customer, `_own`): the
    weakest step of the chain (`state.weakest`: one that joined its key by a name is
    matched by that name, never by a CRM id only its key's customer carries). A name
    between the two keys is that name already."""
    kind, score, confident = match
    if kind == "name":
        return match
    kind, score = weakest(weakest(mine, (kind, score)), theirs)
    return kind, score, confident


def _weakest(mine: tuple[str, float], theirs: tuple[str, float]) -> tuple[str, float]:
    """How two members are one customer (`member_evidence`): a name match on either side
    makes it a name match, at the lower name score; otherwise `mine`."""
    if mine[0] == "name":
        return ("name", min(mine[1], theirs[1])) if theirs[0] == "name" else mine
    return ("name", theirs[1]) if theirs[0] == "name" else mine


_FEW = 3
"""Up to this many members a settlement builds each decision's evidence the plain way:
sharing saves nothing yet (2.8 ms against 90 ms a settlement at 175 members, 11 against
6 µs at 2, measured)."""


class Fellows:
    """The evidence naming the other members in each decision of one settlement
    (`disputes.settle`): `of(i)` is `[member_evidence(m, d.account_key, d) for m in
    members if m is not d]` for `d = members[i]`.

    Each of k decisions names the k-1 others: k² items. Yet an item depends on the
    decided member only through how it matched (its own evidence, or its key's form when
    it opened its key) and whether the named member is filed under the same key. So for
    each such match the items of every member as filed under another key are built once
    (`_apart`, a list in member order), and a decision's list is a copy of it (made in C)
    with the few members filed under the decided one's own key put back in their form
    and the decided one left out. Evidence is a frozen value: one object serves every
    decision naming it."""

    __slots__ = ("_apart", "_customers", "_filed", "_here", "_items", "_keyed", "_names",
                 "_others", "_paths", "_policies", "_separate", "_seps", "_table", "_theirs",
                 "members", "state")

    def __init__(self, members: Sequence[Entry], state: AdjudicationState | None = None
                 ) -> None:
        self.members = members
        self.state = state
        self._paths: dict[str, dict[str, tuple[str, float]]] = {}
        self._theirs: list[tuple[str, float]] = []
        self._keyed: dict[str, list[int]] = {}
        if len(members) > _FEW:
            self._theirs = [m.evidence or (key_evidence(m.account_key), 1.0) for m in members]
            for i, m in enumerate(members):
                self._keyed.setdefault(m.account_key, []).append(i)
        self._apart: dict[tuple[str, float], list[ConflictEvidence]] = {}
        self._here: dict[tuple[int, str, float], ConflictEvidence] = {}
        # (key, policy version) -> other key -> `unlinked_match` (nested: no tuple per pair).
        self._separate: dict[tuple[str, int], dict[str, tuple[str, float, bool] | None]] = {}
        self._seps: dict[tuple[str, float, bool], tuple[str, float, bool]] = {}
        self._customers: dict[str, Identifiers] = {}
        self._names: dict[str, tuple[tuple[str, frozenset[str]], ...]] = {}
        self._filed: dict[str, bool] = {}
        self._policies: dict[int, Policy] = {}
        self._others: dict[tuple[str, int, tuple[str, float] | None,
                                 tuple[tuple[str, str, float], ...]],
                           list[ConflictEvidence]] = {}
        self._items: dict[tuple[int, tuple[str, float, bool]], ConflictEvidence] = {}
        self._table: _Table | None = None

    def of(self, i: int) -> list[ConflictEvidence]:
        members, theirs = self.members, self._theirs
        decided = members[i]
        paths = self._linked(decided.account_key)
        opened = self._opened(decided.account_key)
        if len(members) <= _FEW:
            found = []
            for m in members:
                if m is decided:
                    continue
                sep = self._apart_from(decided, m.account_key, paths)
                if sep is not None and sep[0]:
                    found.append(_evidence(
                        m, *_through(sep, _own(decided, decided.account_key, opened),
                                     _own(m, m.account_key)), m.account_key))
                    continue
                reported = reported_match(decided, m) if sep is not None else None
                if reported is not None:  # a copy's key (UNFILED): as the edge reported
                    found.append(_evidence(m, *reported, False, m.account_key))
                    continue
                plain = member_evidence(m, decided.account_key, decided,
                                        paths.get(m.account_key) if paths else None, opened)
                found.append(plain if sep is None else _evidence(  # a copy's key: UNFILED
                    m, plain.matched_by, plain.score, False, m.account_key))
            return found
        key, given = decided.account_key, decided.evidence
        mine = given or (key_evidence(key), 1.0)
        here = given or opened
        apart = self._apart.get(mine)
        if apart is None:
            apart = self._apart[mine] = [
                _evidence(m, *_weakest(mine, t), True, m.account_key)
                for m, t in zip(members, theirs, strict=True)]
        # `apart` with the members under keys not linked to the decided one's named as
        # `unlinked_match` says: none of those is under its key or one linked to it, so
        # the patches below touch other members.
        found = self._unlinked(decided, paths, apart, here or mine).copy()
        for j in self._keyed[key]:
            if j == i:
                continue
            kind, score = _weakest(here or theirs[j], theirs[j])
            item = self._here.get((j, kind, score))
            if item is None:
                item = self._here[(j, kind, score)] = _evidence(members[j], kind, score,
                                                                True, None)
            found[j] = item
        if given is None:
            for other, joined in paths.items():
                # Members under a key linked to the one the decided one opened: through
                # the link (`member_evidence`).
                for j in self._keyed.get(other, ()):
                    found[j] = _evidence(members[j], *_weakest(joined, theirs[j]), True,
                                         other)
        del found[i]
        return found

    def _unlinked(self, decided: Entry, paths: dict[str, tuple[str, float]],
                  apart: list[ConflictEvidence], through: tuple[str, float]
                  ) -> list[ConflictEvidence]:
        """`apart` (the plain items, in member order) with the members under keys not
        linked to the decided one's (`unlinked_match`) put in their items, once per
        decided key, policy version and own evidence (every decision alike in those names
        them alike: `apart` and `through`, how the decided one is its key's customer,
        follow from them). Each item is one object per member and evidence: a chained
        review of 378 members on 348 keys named ~138,000 such items, ~9,600 distinct;
        built per decision, their allocations set off most of the collector's passes."""
        key = decided.account_key
        cached = (key, decided.policy_version, decided.evidence, decided.reported)
        found = self._others.get(cached)
        if found is not None:
            return found
        found = self._others[cached] = apart.copy()
        if self.state is None:  # no key is weighed against another (`_apart_from`)
            return found
        theirs, items, members = self._theirs, self._items, self.members
        row = self._row(decided, paths)
        table = self._table_of()
        answer: tuple[str, float, bool]
        for under, other, sep in zip(table.unders, table.keys, row, strict=True):
            if sep is None:
                continue
            kind = sep[0]
            for j in under:
                if not kind:  # a copy's key, not linked (UNFILED): as the edge reported
                    reported = reported_match(decided, members[j])  # else as plain
                    answer = ((*reported, False) if reported is not None
                              else (apart[j].matched_by, apart[j].score, False))
                elif kind == "name":  # a name between the two keys is that name
                    answer = sep
                else:  # under a key not linked to it: a possible duplicate
                    answer = _through(sep, through, theirs[j])
                item = items.get((j, answer))
                if item is None:  # one object per member and evidence
                    item = items[(j, answer)] = _evidence(members[j], *answer, other)
                found[j] = item
        return found

    def _row(self, decided: Entry, paths: dict[str, tuple[str, float]]
             ) -> list[tuple[str, float, bool] | None]:
        """`_apart_from` of the decided member's key and every key of the settlement, in
        `_Table.keys` order, once per key and policy version. A pair of keys sharing no
        CRM id or domain (nearly every pair of a review chained by names) is weighed from
        the table's facts per key (`_Table`, `_apart_by_names`), each name score once per
        unordered pair (the rule is symmetric); any other pair by `_apart_from`."""
        table = self._table_of()
        key, version = decided.account_key, decided.policy_version
        rows = table.rows.get(version)
        if rows is None:
            rows = table.rows[version] = [None] * len(table.keys)
        k = table.position[key]
        row = rows[k]
        if (version, k) in table.done:
            return row  # type: ignore[return-value]  # complete
        if row is None:  # (else filled in part: the pairs other rows weighed)
            row = rows[k] = [_UNASKED] * len(table.keys)
        policy = self._policy(version)
        seps = self._seps
        crm_k, dom_k, filed_k, names_k, form_k, order_k = table.facts[k]
        countryless = _countryless(policy)
        sharing = table.sharing(k)
        for o, other in enumerate(table.keys):
            sep = row[o]
            if sep is None or sep[0] != "?":
                continue  # weighed already (from the other key's row)
            if o == k or other in paths:
                sep = None
            elif o in sharing:
                sep = self._apart_from(decided, other, paths)
            else:
                crm_o, dom_o, filed_o, names_o, form_o, order_o = table.facts[o]
                apart = (crm_k and crm_o) or (dom_k and dom_o)
                if not apart and not (filed_k and filed_o):
                    sep = UNFILED
                else:
                    # The key filed later asks (`AccountIndex.name_score`).
                    score = (best_name_score(names_k, names_o, False, countryless)
                             if order_k >= order_o else
                             best_name_score(names_o, names_k, False, countryless))
                    # Decided only by names met in one known country (`unlinked_match`).
                    confident = not apart and _name_decides(
                        policy, best_name_score(names_k, names_o, True), form_k, form_o)
                    sep = seps.setdefault(("name", score, confident),
                                          ("name", score, confident))
            row[o] = sep
            back = rows[o]
            if back is None:
                back = rows[o] = [_UNASKED] * len(table.keys)
            back[k] = sep
        table.done.add((version, k))
        return row

    def _table_of(self) -> _Table:
        table = self._table
        if table is None:
            table = self._table = _Table(self)
        return table

    def _apart_from(self, decided: Entry, other: str, paths: dict[str, tuple[str, float]]
                    ) -> tuple[str, float, bool] | None:
        """`unlinked_match` of the decided member's key and `other` (`paths`: the decided
        one's key's, `_linked`), once per unordered pair of keys and policy version (the
        rule is symmetric), each key's customer, names and filing asked once per
        settlement (a settlement of k members on k keys weighs k² pairs); equal answers
        are one tuple."""
        key, version = decided.account_key, decided.policy_version
        state = self.state
        if state is None or key == other:
            return None
        known = self._separate.get((key, version))
        if known is None:
            known = self._separate[(key, version)] = {}
        elif other in known:
            return known[other]
        found: tuple[str, float, bool] | None = None
        if other not in paths:
            kind, apart = _unlinked_by(self._customer(key), self._customer(other),
                                       self._is_filed(key) and self._is_filed(other))
            if not kind:
                found = UNFILED
            else:
                if kind == "name":
                    mine, theirs = self._filed_names(key), self._filed_names(other)
                    index = state.index
                    later = index.filed_order(key) >= index.filed_order(other)
                    score = best_name_score(*((mine, theirs) if later else (theirs, mine)),
                                            False, _countryless(self._policy(version)))
                    # Decided only by names met in one known country (`unlinked_match`).
                    confident = not apart and _name_decides(
                        self._policy(version), best_name_score(mine, theirs, True),
                        bool(Identifiers.of_key(key)), bool(Identifiers.of_key(other)))
                else:
                    score, confident = 1.0, not apart
                found = self._seps.setdefault((kind, score, confident),
                                              (kind, score, confident))
        known[other] = found
        back = self._separate.get((other, version))
        if back is None:
            back = self._separate[(other, version)] = {}
        back[key] = found
        return found

    def _customer(self, key: str) -> Identifiers:
        """`state.customer(key)`, once per settlement (links change only after one)."""
        found = self._customers.get(key)
        if found is None:
            assert self.state is not None
            found = self._customers[key] = self.state.customer(key)
        return found

    def _filed_names(self, key: str) -> tuple[tuple[str, frozenset[str]], ...]:
        """`state.index.filed_names(key)`, once per settlement."""
        found = self._names.get(key)
        if found is None:
            assert self.state is not None
            found = self._names[key] = self.state.index.filed_names(key)
        return found

    def _is_filed(self, key: str) -> bool:
        """Whether `key` is filed in this partition's index, once per settlement."""
        found = self._filed.get(key)
        if found is None:
            assert self.state is not None
            found = self._filed[key] = key in self.state.index
        return found

    def _policy(self, version: int) -> Policy:
        """`state.policy(version)`, once per settlement."""
        found = self._policies.get(version)
        if found is None:
            assert self.state is not None
            found = self._policies[version] = self.state.policy(version)
        return found

    def _opened(self, key: str) -> tuple[str, float] | None:
        """What the opener of `key` shares with its customer (`state.opener_shares`)."""
        return self.state.opener_shares.get(key) if self.state is not None else None

    def _linked(self, key: str) -> dict[str, tuple[str, float]]:
        """The keys linked to `key` and how (`AdjudicationState.link_paths`), once per key."""
        if self.state is None or key not in self.state.links:
            return {}
        paths = self._paths.get(key)
        if paths is None:
            paths = self._paths[key] = self.state.link_paths(key)
        return paths


class _Table:
    """What `Fellows._row` weighs a settlement's pairs of keys by, built once per
    settlement: its keys (in the order of their first member) and the members under each
    (`unders`); per key (`facts`) whether its customer (`state.customer`) carries a CRM
    id, whether it carries a domain, whether the key is filed here, its filed names
    (`AccountIndex.filed_names`) and whether its form carries an identifier; which keys'
    customers share a CRM id or a domain (`sharing`); and the answers of
    `unlinked_match` per policy version, one row per key (`rows`, None until asked)."""

    __slots__ = ("_by_crm", "_by_domain", "_customers", "done", "facts", "keys",
                 "position", "rows", "unders")

    def __init__(self, fellows: Fellows) -> None:
        keyed = fellows._keyed
        self.keys = list(keyed)
        self.unders = list(keyed.values())
        self.position = {key: i for i, key in enumerate(self.keys)}
        self._customers = [fellows._customer(key) for key in self.keys]
        order = fellows.state.index.filed_order if fellows.state is not None else None
        self.facts = [(bool(c.crm_ids), bool(c.domains), fellows._is_filed(key),
                       fellows._filed_names(key), bool(Identifiers.of_key(key)),
                       order(key) if order is not None else -1)
                      for key, c in zip(self.keys, self._customers, strict=True)]
        self._by_crm: dict[str, list[int]] = {}
        self._by_domain: dict[str, list[int]] = {}
        for i, c in enumerate(self._customers):
            for crm in c.crm_ids:
                self._by_crm.setdefault(crm, []).append(i)
            for domain in c.domains:
                self._by_domain.setdefault(domain, []).append(i)
        self.rows: dict[int, list[list[tuple[str, float, bool] | None] | None]] = {}
        self.done: set[tuple[int, int]] = set()
        """(policy version, key position) of the rows complete."""

    def sharing(self, k: int) -> set[int]:
        """The keys (positions) whose customers share a CRM id or a domain with key
        `k`'s, `k` among them."""
        customer = self._customers[k]
        found: set[int] = set()
        for crm in customer.crm_ids:
            found.update(self._by_crm[crm])
        for domain in customer.domains:
            found.update(self._by_domain[domain])
        return found


_SORTED_PRODUCTS: dict[frozenset[str], tuple[str, ...]] = {}


def _sorted_products(products: frozenset[str]) -> tuple[str, ...]:
    """`tuple(sorted(products))`, memoised: entries share a few product sets (interned by
    the state) and every decision writes one. Bounded, cleared when full: a cache."""
    found = _SORTED_PRODUCTS.get(products)
    if found is None:
        if len(_SORTED_PRODUCTS) >= 1024:
            _SORTED_PRODUCTS.clear()
        found = _SORTED_PRODUCTS[products] = tuple(sorted(products))
    return found


def decision(
    entry: Entry,
    rule: str,
    policy_version: int,
    explanation: str,
    at: int,
    conflicts: Sequence[ConflictEvidence] = (),
    flags: tuple[str, ...] = (),
) -> DomainEvent:
    """A RegistrationDecided (partners) or ClaimDecided (direct) with the entry's status."""
    status: RegistrationStatus = _status(entry.status)
    until = from_us(entry.protected_until) if entry.protected_until is not None else None
    products = _sorted_products(entry.products) if entry.products is not None else None
    conflicts = tuple(conflicts)
    flags = tuple(flags)
    if entry.party_type == "partner":
        return trusted(
            RegistrationDecided,
            registration_id=entry.id,
            partner_id=entry.party_id,
            account_key=entry.account_key,
            status=status,
            rule=rule,
            policy_version=policy_version,
            explanation=explanation,
            conflicts=conflicts,
            decided_at=from_us(at),
            protected_until=until,
            dispute_id=entry.dispute_id,
            scope_products=products,
            credit_percent=entry.credit_percent,
            extensions=entry.extensions,
            flags=flags,
            unfiled_names=(),
            unfiled_cofilers=(),
            refiled_names=(),
            refiled_country=None,
        )
    kind: ClaimKind = "named_account" if entry.kind == "named_account" else "opportunity"
    return trusted(
        ClaimDecided,
        claim_id=entry.id,
        kind=kind,
        rep_id=entry.party_id,
        account_key=entry.account_key,
        status=status,
        rule=rule,
        policy_version=policy_version,
        explanation=explanation,
        conflicts=conflicts,
        decided_at=from_us(at),
        protected_until=until,
        dispute_id=entry.dispute_id,
        scope_products=products,
        credit_percent=entry.credit_percent,
        flags=flags,
        unfiled_names=(),
        unfiled_cofilers=(),
        refiled_names=(),
        refiled_country=None,
    )


def _matched_by(value: str) -> MatchedBy:
    if value == "crm_account_id":
        return "crm_account_id"
    if value == "name":
        return "name"
    return "domain"


def _party_type(value: str) -> PartyType:
    return "direct" if value == "direct" else "partner"


_STATUSES: dict[str, RegistrationStatus] = {
    "submitted": "submitted", "approved": "approved", "rejected": "rejected",
    "in_review": "in_review", "expired": "expired", "withdrawn": "withdrawn",
    "won": "won", "lost": "lost",
}


def _status(value: str) -> RegistrationStatus:
    return _STATUSES[value]


party_type = _party_type
