"""The same customer: the one rule deciding whether an identity is an account's customer.

Used by the edge (which key a submitted account gets), by the adjudicator (which
registrations collide, which keys it links) and by the ownership read side (which account a
look-up designates). Nowhere else is this decided.

The rule (README, "The same customer"; DESIGN.md, "Rules of engagement"):

- identifiers decide: a shared CRM id or registrable domain makes two accounts one customer;
- different CRM ids are always different customers; different domains are different
  customers unless a shared CRM id joins them;
- a name decides only where one side has no identifier of a kind the other has, and never
  bridges two different identifiers, directly or through links.

The unit compared is the *customer*, not a key: the cluster of keys linked together and
every identifier filed under any of them. A name-only key linked to acme.com carries
acme.com, so "Acme Corp" at acme.io does not match it by name. And the customer grows as
matches are taken in: once a match has brought acme.com in, a later one carrying acme.io
is a different customer even if each alone was compatible with the query (a name-only
"Acme Corp" must not join the Acme Corps of acme.com and acme.io into one).

Pure and deterministic (no set iteration decides anything: matches are walked in a total
order and sets are only tested for membership).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from shared.accounts.salesforce import CrmIds, canonical_crm_id
from shared.frozen import frozen_state, restore_frozen

if TYPE_CHECKING:
    from shared.accounts.identity import AccountIdentity
    from shared.accounts.index import AccountMatch

__all__ = [
    "Identifiers",
    "Sorted",
    "different_customers",
    "evidence_order",
    "for_a_person",
    "separate_customers",
    "sort_out",
]

_EVIDENCE_RANK: Final[dict[str, int]] = {"crm_account_id": 2, "domain": 1, "name": 0}


@dataclass(frozen=True, slots=True)
class Identifiers:
    """The identifiers a customer carries: CRM ids and registrable domains."""

    crm_ids: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()

    @classmethod
    def of(cls, identity: AccountIdentity) -> Identifiers:
        return cls(
            frozenset((identity.crm_account_id,)) if identity.crm_account_id else frozenset(),
            frozenset((identity.domain,)) if identity.domain else frozenset(),
        )

    @classmethod
    def of_key(cls, account_key: str) -> Identifiers:
        """What a key says by its form alone (``dom:x`` carries domain x, ``crm:y`` CRM id
        y): true of every key whatever else was filed under it."""
        kind, _, value = account_key.partition(":")
        if kind == "dom" and value:
            return cls(frozenset(), frozenset((value,)))
        if kind == "crm" and value:
            return cls(frozenset((value,)), frozenset())
        return NONE

    def canonical(self, crm_ids: CrmIds) -> Identifiers:
        """These identifiers with each CRM id in the form policy `match.crm_ids` compares
        (`shared.accounts.salesforce.canonical_crm_id`): under `salesforce` the 15- and
        18-character spellings of one Salesforce id are one CRM id."""
        if crm_ids == "exact" or not self.crm_ids:
            return self
        if len(self.crm_ids) == 1:
            # The common case, without building a set to compare: one CRM id, most often
            # already in its canonical form.
            (crm,) = self.crm_ids
            canonical = canonical_crm_id(crm, crm_ids)
            return self if canonical == crm else Identifiers(frozenset((canonical,)),
                                                             self.domains)
        canon = frozenset(canonical_crm_id(c, crm_ids) for c in self.crm_ids)
        return self if canon == self.crm_ids else Identifiers(canon, self.domains)

    def __or__(self, other: Identifiers) -> Identifiers:
        if other is self or (other.crm_ids <= self.crm_ids and other.domains <= self.domains):
            return self
        if not self.crm_ids and not self.domains:
            return other
        return Identifiers(self.crm_ids | other.crm_ids, self.domains | other.domains)

    def __bool__(self) -> bool:
        return bool(self.crm_ids or self.domains)

    # Held by adjudicator snapshots: pickled as the dataclass pickles itself, also when
    # compiled (shared/frozen.py).
    def __getstate__(self) -> list[object]:
        return frozen_state(self)

    def __setstate__(self, state: list[object]) -> None:
        restore_frozen(self, state)


NONE: Final = Identifiers()


def different_customers(a: Identifiers, b: Identifiers) -> bool:
    """Whether identifiers alone say `a` and `b` are different customers: two different CRM
    ids, or two different domains that no shared CRM id joins. Where either side lacks
    every identifier of a kind the other has, identifiers say nothing (and a name may
    decide)."""
    if a.crm_ids and b.crm_ids and a.crm_ids != b.crm_ids:
        return True
    if a.domains and b.domains and a.domains.isdisjoint(b.domains):
        return not (a.crm_ids and b.crm_ids)  # equal here: a shared CRM id joins them
    return False


def for_a_person(a: Identifiers, b: Identifiers, matched_by: str, confident: bool) -> bool:
    """Whether a match between two customers that identifiers call different
    (`different_customers`) still goes to a person as a possible duplicate: an identifier
    agrees while another contradicts it (the same domain under another CRM id), or a
    confident name where only CRM ids differ and the two sides have no domains to compare
    (session 26, rival review: else any made-up CRM id walked past a holder known by name
    and CRM id). A name between two different domains never does: two companies of one
    name with their own domains stay apart unseen. The one rule, for `sort_out` (intake,
    the edge) and `separate_customers` (settlements)."""
    return matched_by != "name" or (confident and not (a.domains and b.domains))


def separate_customers(a: Identifiers, b: Identifiers,
                       named: Callable[[], bool] | None = None) -> bool:
    """Whether identifiers settle that `a` and `b` are different customers, with nothing
    for a person to weigh: `different_customers`, and no match between them that
    `for_a_person` sends to a person -- no CRM id or domain in common, and (``named``:
    whether their names match confidently, asked only when it could matter) no confident
    name where no domains on both sides are there to compare. Such pairs are another
    customer by the rule, but `sort_out` sends them to a person (a made-up CRM id must not
    walk past the holder); so they are not separate here, and a person's award between
    them stands."""
    if not different_customers(a, b):
        return False
    if not (a.crm_ids.isdisjoint(b.crm_ids) and a.domains.isdisjoint(b.domains)):
        return not for_a_person(a, b, "identifier", False)
    return not (named is not None and for_a_person(a, b, "name", True) and named())


def evidence_order(match: AccountMatch) -> tuple[int, float, str]:
    """Identifiers before names (CRM id, domain, name), then score, then key: a total
    order, so the walk below is the same on every replay."""
    return (-_EVIDENCE_RANK[match.matched_by], -match.score, match.account_key)


@dataclass(frozen=True, slots=True)
class Sorted:
    """Matches sorted out against one customer."""

    same: tuple[AccountMatch, ...]
    """Confident matches that are this customer, strongest first: the first is the key to
    use, the others are its keys too (links)."""
    possible: tuple[AccountMatch, ...]
    """Matches a person should look at (``confident=False``): names in the review band,
    confident names that fit the query but not the customer the stronger matches already
    make up (ambiguous between two customers), and identifier matches another identifier
    contradicts."""
    customer: Identifiers
    """The identifiers of the query and of every key in `same`."""


def sort_out(
    query: Identifiers,
    matches: Iterable[AccountMatch],
    identifiers_of: Callable[[str], Identifiers],
    anchor: Identifiers = NONE,
    name_only_review: bool = False,
    crm_ids: CrmIds = "exact",
) -> Sorted:
    """Which of `matches` are the query's customer, walked strongest evidence first.

    ``identifiers_of(key)`` gives the identifiers of the customer behind a key (the key's
    own facets and those of every key linked to it). ``anchor`` is what the customer is
    already known to carry (the adjudicator passes the new entry's own key's customer).
    A match whose customer has different identifiers than the query is another customer:
    a possible duplicate when an identifier matched (the same domain under another CRM id)
    or a confident name did where only CRM ids differ (no domains on both sides), else
    dropped (a name between two different domains). One that fits the query but not the
    customer built so far is demoted to a possible duplicate: never merged, never silently
    ignored.
    With ``name_only_review`` (policy `match.name_only: review`) a confident name match
    where exactly one side carries an identifier is a possible duplicate too: a name-only
    account never decides for one with a CRM id or domain, nor the reverse. The matched
    side is judged by its key's form (`Identifiers.of_key`): a name-only key that a link (a
    person's or an older policy's decision) joined to a domain is still a name-only key,
    and following that link is the link's business. ``crm_ids`` (policy `match.crm_ids`):
    the form CRM ids are compared in (`Identifiers.canonical`).
    """
    identifiers = identifiers_of
    if crm_ids != "exact":
        query, anchor = query.canonical(crm_ids), anchor.canonical(crm_ids)

        # A new name, not `identifiers_of` redefined: mypyc (the compiled build) cannot
        # read a parameter that a nested function of the same name shadows.
        def canonical_identifiers(key: str) -> Identifiers:
            return identifiers_of(key).canonical(crm_ids)

        identifiers = canonical_identifiers
    customer = query if different_customers(query, anchor) else query | anchor
    same: list[AccountMatch] = []
    possible: list[AccountMatch] = []
    seen: set[str] = set()
    for match in sorted(matches, key=evidence_order):
        if match.account_key in seen:
            continue
        seen.add(match.account_key)
        theirs = identifiers(match.account_key)
        if different_customers(query, theirs):
            # Whether both sides carry domains is asked of the customer built so far (the
            # key's own, by `anchor` or by its identifier match walked first), as a
            # settlement asks it of the key's customer (`separate_customers`), not of the
            # submission alone (session 26, rival 3: a key carrying a throwaway domain,
            # submitted again without one, went to a review whose award to the holder the
            # settlement ignored, the pair being "two domains" there).
            if for_a_person(customer, theirs, match.matched_by,
                            match.confident or match.any_country):
                # One identifier agrees and another contradicts it (the same domain under
                # another CRM id): another customer by the rule, but for a person to see --
                # else a made-up CRM id would walk past the domain's owner. Likewise the
                # same name where only CRM ids differ and no domains are there to compare
                # (rival review session 26: any other CRM id, even the holder's own in
                # another case or width, walked past a name + CRM id holder unseen).
                possible.append(replace(match, confident=False))
            continue
        if not match.confident:
            possible.append(match)
        elif (name_only_review and match.matched_by == "name"
              and bool(customer) != bool(Identifiers.of_key(match.account_key))) \
                or different_customers(customer, theirs):
            possible.append(replace(match, confident=False))
        else:
            customer = customer | theirs
            same.append(match)
    return Sorted(tuple(same), tuple(possible), customer)
