"""The one partner view (invariant 7): what a partner may see of every resource.

Every response of every endpoint (command answers, `Prefer: wait` answers, queries) and
every partner webhook goes through this module when the caller is a partner. It is an
**allow-list**: each resource has a shape naming every field a partner may receive and how
(`SHOW`, the caller's own ids only, scrubbed text, ...). A field that is not listed is
dropped, so a field added to a view model or an event stays invisible to partners until
someone lists it here (`tests/unit/test_partner_view_allow_list.py` fails until every
field of every view model and event is classified).

What a partner learns:
- its own registrations, disputes entries and outcomes in full (its own ids, its own
  conflicts, its own share of a split);
- of a competitor only that the account is protected by another party (partner or direct),
  for which products, until when, and that it may contest a rejection (a dispute): never a
  competitor's registration, claim or partner id, its motion, credit share or since when it
  holds the account, never how many rivals there are (foreign entries are dropped from id
  lists and collapsed in evidence and ownership), and never text naming them;
- no account key its own submitted identifiers do not derive (a name-only registration
  resolved to a competitor's `crm:`/`dom:` key reads as the key of what it submitted), and
  of a rival match only `matched_by: "same_customer"`; no competitor's incumbency; of a
  dispute it joined late neither the opening time nor entries from before it joined;
- of a resolution, the optional `partner_note` written for the involved partners, never
  the internal `note` nor who resolved it.

Vendor roles (admin, integration, rep, owner, channel manager) see what their routes
return; *which* objects a role may read at all is decided by the routes. Pure: no I/O, the
callers look up which mentioned ids are the viewer's (`shared.readmodel.queries.holders_of`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from shared.accounts.identity import AccountIdentity, derive_account_key, key_label

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Viewer:
    role: str
    subject_id: str | None = None

    @property
    def restricted(self) -> bool:
        """Partners are the only callers whose view of others is cut to the partner view."""
        return self.role == "partner"

    def is_party(self, party_type: str | None, party_id: str | None) -> bool:
        return (party_type in (None, "partner") and party_id is not None
                and party_id == self.subject_id)


Holder = tuple[str, str, str | None]
"""`(party_type, party_id, account_key)` of a registration or claim; the key only when the
holder's own submission derives it (`holder()`), else None."""


def _identity(account: Any) -> AccountIdentity | None:
    if not isinstance(account, Mapping):
        return None
    def text(name: str) -> str | None:
        value = account.get(name)
        return value if isinstance(value, str) else None
    # The account is as it was filed: its domain is one the edge accepted then. A free-mail
    # list that grew since (tiscali.it, session 23) must not hide the partner's own key.
    return AccountIdentity.from_raw(name=text("name"), domain=text("domain"),
                                    website=text("website"), email=text("email"),
                                    country=text("country"),
                                    crm_account_id=text("crm_account_id"),
                                    allow_freemail=True)


def submitted_keys(account: Any) -> frozenset[str]:
    """Every account key the identifiers a party submitted derive by themselves (its domain,
    CRM id, name and country). A registration may be filed under another key (the edge
    resolved it to an existing customer, perhaps through a competitor's CRM id or domain):
    that key is not the submitter's to see."""
    identity = _identity(account)
    if identity is None:
        return frozenset()
    keys: set[str] = set()
    if identity.domain:
        keys.add(f"dom:{identity.domain}")
    if identity.crm_account_id:
        keys.add(f"crm:{identity.crm_account_id}")
    if identity.name and identity.country:
        keys.add(f"name:{identity.country}:{identity.name.replace(' ', '-')}")
    return frozenset(keys)


def own_key(account_key: str | None, account: Any) -> str | None:
    """`account_key` when the submitted `account` derives it by itself, else None."""
    return account_key if account_key in submitted_keys(account) else None


def submitted_key(account: Any) -> str | None:
    """The key the submitted account would have had on its own: what a partner is shown in
    place of a key derived from someone else's identifiers."""
    identity = _identity(account)
    if identity is None:
        return None
    try:
        return derive_account_key(identity)
    except ValueError:
        return None


def holder(party_type: str, party_id: str, account_key: str | None, account: Any) -> Holder:
    """A registration's or claim's holder, its key kept only when its own submission
    derives it."""
    return (party_type, party_id, own_key(account_key, account))


@dataclass(frozen=True, slots=True)
class Scope:
    """What the viewer owns among what a view mentions."""

    viewer: Viewer
    own_ids: frozenset[str] = frozenset()
    foreign_ids: frozenset[str] = frozenset()
    own_keys: frozenset[str] = frozenset()
    foreign_keys: frozenset[str] = frozenset()

    def knowing(self, value: Any) -> Scope:
        """This scope aware of every account key `value` mentions that is not the
        viewer's (so that text naming them can be scrubbed)."""
        foreign = frozenset(mentioned_keys(value) - self.own_keys)
        if foreign <= self.foreign_keys:
            return self
        return Scope(self.viewer, self.own_ids, self.foreign_ids, self.own_keys,
                     self.foreign_keys | foreign)

    @classmethod
    def of(cls, viewer: Viewer, holders: Mapping[str, Holder], mentioned: Iterable[str],
           known_keys: Iterable[str] = ()) -> Scope:
        own = {i for i, (kind, party, _) in holders.items() if viewer.is_party(kind, party)}
        keys = {key for i, (_, _, key) in holders.items() if i in own and key}
        return cls(viewer, frozenset(own), frozenset(set(mentioned) - own),
                   frozenset(keys | set(known_keys)))


@dataclass(frozen=True, slots=True)
class KeyFilter:
    """A listing's `account_key` filter (`GET /v1/registrations`, `GET /v1/disputes`): the
    one rule both apply.

    For vendor roles it is the key an item is filed under, and the store filters on it
    (`stored`). For a partner it is the key its view of the item shows (`shows`: a
    registration filed under a key derived from a competitor's identifiers shows the key
    of what the partner submitted, a dispute shows null), never the filed key: so the
    store must not filter on it (`stored` is None) and the listing scans the partner's
    own items, keeping those whose view shows the key (`scans`). Filtering on the filed
    key and cutting the page afterwards let the page's cursor (the partner's own id)
    confirm a guess of a competitor's CRM id or domain; the scan's cursor depends only on
    the partner's own items under the key it is shown."""

    viewer: Viewer
    asked: str | None

    @property
    def scans(self) -> bool:
        """Whether the listing must keep items by their partner view (a partner asked)."""
        return self.viewer.restricted and self.asked is not None

    @property
    def stored(self) -> str | None:
        """The key the store may filter on: the asked one for vendor roles, else None."""
        return None if self.viewer.restricted else self.asked

    def shows(self, shown: Any) -> bool:
        """Whether an item, as the viewer's view shows it (`registration()`,
        `dispute()`, or the model validated from them), passes the filter."""
        if not self.scans:
            return True
        return bool(_get(shown, "account_key") == self.asked)


def _get(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)


# --- rules -------------------------------------------------------------------------------


class Rule:
    """How one field is shown to a partner."""


@dataclass(frozen=True)
class _Named(Rule):
    name: str

    def __repr__(self) -> str:
        return self.name


SHOW: Final = _Named("SHOW")
"""As is (nested values included: only for fields that cannot name another party)."""
NULL: Final = _Named("NULL")
"""Classified as not for partners; present as null (for required nullable fields)."""
HIDE: Final = _Named("HIDE")
"""Classified as not for partners; left out (the model's default applies)."""
ID: Final = _Named("ID")
"""A registration or claim id: the viewer's own, else null."""
IDS: Final = _Named("IDS")
"""A list of registration or claim ids: only the viewer's own (no count of the others)."""
PARTY: Final = _Named("PARTY")
"""A partner id: the viewer's own, else null."""
KEY: Final = _Named("KEY")
"""An account key (it names the customer's domain, CRM id or name): one the viewer
registered under or asked with, else null."""
KEYS: Final = _Named("KEYS")
"""A list of account keys: only the viewer's known ones."""
TEXT: Final = _Named("TEXT")
"""Free text: every id that is not the viewer's is replaced, counts of rivals removed, and
every account key (or its domain, CRM id, name) the viewer did not submit replaced."""
HOUR: Final = _Named("HOUR")
"""A moment a rival's record fixes (a competitor's `protected_until`, exact to the
microsecond, would tell when it was approved): rounded up to the hour (`_hour_up`), as a
late joiner's dispute deadlines are."""
SAME_CUSTOMER: Final = _Named("SAME_CUSTOMER")
"""How a competitor's entry matched: only "same_customer" (which identifier matched would
tell what the competitor filed, e.g. a CRM id the viewer never sent)."""


@dataclass(frozen=True)
class Nested(Rule):
    shape: Mapping[str, Rule]


@dataclass(frozen=True)
class Each(Rule):
    """A list of objects of one shape (they name no party)."""

    shape: Mapping[str, Rule]


@dataclass(frozen=True)
class OwnEach(Rule):
    """A list of objects each about one registration or claim (its `id`): only the
    viewer's own, so neither the others nor their count is shown."""

    shape: Mapping[str, Rule]


@dataclass(frozen=True)
class Parties(Rule):
    """A list of objects about parties: the viewer's own shown with `own`, everyone else's
    with `foreign` (None: left out), collapsed so that equal `collapse` fields give one
    entry (no count of rivals)."""

    own: Mapping[str, Rule]
    foreign: Mapping[str, Rule] | None
    collapse: tuple[str, ...] = ()


Shape = Mapping[str, Rule]

ANOTHER: Final = "another party"
_RUN: Final = re.compile(re.escape(ANOTHER) + r"(?:(?:, | and )" + re.escape(ANOTHER) + ")+")
_IDS_IN_TEXT: Final = re.compile(r"\b(?:reg|clm)_[0-9A-Za-z]+\b")
# How the adjudicator's sentences describe rivals: one ("another partner's registration",
# "a direct ... claim") or several ("3 other parties"). Both read "another party", so the
# wording does not tell one rival from many.
_RIVALS: Final = re.compile(r"another partner's registration|a direct (?:named-account|"
                            r"opportunity) claim|\b(?:\d+ )?other (?:parties|registrations)\b")
_MEMBER_LIST: Final = re.compile(r"\b(?:(?:reg|clm)_[0-9A-Za-z]+|" + re.escape(ANOTHER) + r")"
                            r"(?:, (?:(?:reg|clm)_[0-9A-Za-z]+\b|" + re.escape(ANOTHER) + r"))+")
"""A list of members in a sentence (a settlement's "approved: reg_a; rejected: reg_b, reg_c",
`adjudication.domain.disputes._settled_sentence`), once every id not the viewer's reads
"another party": a list naming the viewer's own ids reads those alone (`_own_in_list`).
"rejected: <own id>, another party" told a partner that a rival lost beside it, one more
than the winner it knew of (a rival that joined after it, which its timeline hides), and
the order of the two when the rival filed first (session 29)."""
_COUNT_OF_REGISTRATIONS: Final = re.compile(r"\bover \d+ registrations?\b")
_DUE_IN_TEXT: Final = re.compile(r"\bdue (\d{4}-\d{2}-\d{2} \d{2}):\d{2} UTC\b")
"""A dispute's deadline as the adjudicator's sentences write it (to the minute). In a
dispute opened over rivals before the partner joined, it is a rival's submission plus the
SLA: text reads it to the hour, the next one (a structured `due_at` is rounded up likewise
for a late joiner, and exact otherwise, where it is the partner's to know)."""

_GAP_IN_TEXT: Final = re.compile(r"\bsubmitted \d+ (?:day|hour|minute|second)s? earlier\b")
"""How a `first_submitted` rejection dates the rival it lost to ("submitted 12 seconds
earlier", `explain.rejected`): from its own exact `submitted_at` the partner would read
when the rival registered, to the second under a minute (a competitor's `protected_until`
is rounded up to the hour for that reason, `HOUR`). A partner reads "submitted earlier":
that the rule is submission time says the rival came first, not when."""

_CARRIED_CLAUSE: Final = re.compile(r"\bit carries on dispute \S+ at level (\d+) with ")
"""How an opening's sentence says which dispute's ladder it took over (`carries_on`): a
partner reads it as a fresh opening's ("level 1 is with ..."). The older dispute, merged
into the partner's, was among rivals: its id told that two or more of them were already
disputing the account, and which dispute they were in. An opening written before
`carries_on` was a field (session 28) is known to carry on by this clause alone: the log
is never rewritten, so their wording stays."""

THE_ACCOUNT: Final = "the account"
_KEY_FIELDS: Final = ("account_key", "canonical_key", "alias_key")
_KEY_LIST_FIELDS: Final = ("linked_keys",)


def _key_labels(key: str) -> tuple[str, ...]:
    """How text may name an account key: the key, the label sentences give it
    (`key_label`) and, for a CRM key, its bare id."""
    kind, _, rest = key.partition(":")
    if not rest:
        return (key,)
    return tuple(dict.fromkeys((key, key_label(key), *((rest,) if kind == "crm" else ()))))


def mentioned_keys(value: Any) -> set[str]:
    """Every account key a view mentions."""
    return _collect(value, _KEY_FIELDS, _KEY_LIST_FIELDS, nonempty=True)


def _collect(value: Any, fields: Collection[str], list_fields: Collection[str], *,
             nonempty: bool) -> set[str]:
    """Every string a view holds under one of `fields` (or in a list under one of
    `list_fields`), at any depth."""
    found: set[str] = set()
    if isinstance(value, list | tuple):
        for item in value:
            found |= _collect(item, fields, list_fields, nonempty=nonempty)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if key in fields and isinstance(item, str) and (item or not nonempty):
                found.add(item)
            elif key in list_fields and isinstance(item, list | tuple):
                found.update(i for i in item if isinstance(i, str) and (i or not nonempty))
            else:
                found |= _collect(item, fields, list_fields, nonempty=nonempty)
    return found


_ID_KEYS: Final = ("registration_id", "claim_id", "holder_id", "awarded_registration_id")
_ID_LIST_KEYS: Final = ("registration_ids", "added_ids", "approved_ids", "rejected_ids")
_DROP: Final = object()


def scrub(text: Any, scope: Scope) -> Any:
    """Free text with every registration or claim id that is not the viewer's, and every
    description of rivals, replaced by "another party" (a run of them by one), counts of
    registrations taken out, a list of members naming the viewer's own ids cut to them
    (`_MEMBER_LIST`), and a rival's submission read without its distance from the viewer's
    (`_GAP_IN_TEXT`): the text tells neither who, nor how many, nor when."""
    if not isinstance(text, str):
        return text
    for label in sorted({lb for k in scope.foreign_keys for lb in _key_labels(k)},
                        key=len, reverse=True):
        text = re.sub(r"(?<![\w.-])" + re.escape(label) + r"(?![\w-]|\.\w)", THE_ACCOUNT, text,
                      flags=re.IGNORECASE)
    for rid in sorted(scope.foreign_ids, key=len, reverse=True):
        if rid:
            text = text.replace(rid, ANOTHER)
    text = _IDS_IN_TEXT.sub(lambda m: m.group(0) if m.group(0) in scope.own_ids else ANOTHER,
                            text)
    text = _RIVALS.sub(ANOTHER, text)
    text = _MEMBER_LIST.sub(_own_in_list, text)
    text = _RUN.sub(ANOTHER, text)
    text = _COUNT_OF_REGISTRATIONS.sub("over the registrations", text)
    text = _GAP_IN_TEXT.sub("submitted earlier", text)
    text = _CARRIED_CLAUSE.sub(r"level \1 is with ", text)
    return _DUE_IN_TEXT.sub(_due_to_the_hour, text)


def _own_in_list(match: re.Match[str]) -> str:
    """A list of members (`_MEMBER_LIST`): the viewer's own ids alone when it names any (their
    company does not count the rivals), else one "another party"."""
    own = [item for item in match.group(0).split(", ") if item != ANOTHER]
    return ", ".join(own) if own else ANOTHER


def _due_to_the_hour(match: re.Match[str]) -> str:
    # From the minute alone an on-the-hour "HH:00" may be HH:00:30: always the next hour.
    hour = datetime.strptime(match.group(1), "%Y-%m-%d %H") + timedelta(hours=1)
    return f"due {hour:%Y-%m-%d %H}:00 UTC"


def owns(item: Mapping[str, Any], scope: Scope) -> bool:
    """Whether an object about a party (evidence, an owner, a split) is the viewer's."""
    if any(item.get(k) in scope.own_ids for k in _ID_KEYS if isinstance(item.get(k), str)):
        return True
    return scope.viewer.is_party(item.get("party_type"), item.get("party_id"))


def apply(value: Mapping[str, Any], shape: Shape, scope: Scope) -> Row:
    """`value` cut to `shape`: unlisted fields are dropped."""
    out: Row = {}
    for key, rule in shape.items():
        if key not in value:
            continue
        shown = _field(rule, value[key], scope)
        if shown is not _DROP:
            out[key] = shown
    return out


def _field(rule: Rule, value: Any, scope: Scope) -> Any:
    if rule is SHOW:
        return value
    if rule is NULL:
        return None
    if rule is HIDE:
        return _DROP
    if rule is ID:
        return value if isinstance(value, str) and value in scope.own_ids else None
    if rule is IDS:
        return [i for i in value or () if i in scope.own_ids]
    if rule is PARTY:
        return value if value is not None and value == scope.viewer.subject_id else None
    if rule is KEY:
        return value if value in scope.own_keys else None
    if rule is KEYS:
        return [k for k in value or () if k in scope.own_keys]
    if rule is TEXT:
        return scrub(value, scope)
    if rule is HOUR:
        return _shown_hour_up(value)
    if rule is SAME_CUSTOMER:
        return "same_customer" if value is not None else None
    if isinstance(rule, Nested):
        return apply(value, rule.shape, scope) if isinstance(value, Mapping) else None
    if isinstance(rule, Each):
        return [apply(v, rule.shape, scope) for v in value or () if isinstance(v, Mapping)]
    if isinstance(rule, OwnEach):
        return [apply(v, rule.shape, scope) for v in value or ()
                if isinstance(v, Mapping) and v.get("id") in scope.own_ids]
    if isinstance(rule, Parties):
        return _parties(rule, value or (), scope)
    raise TypeError(f"unknown rule {rule!r}")


def _parties(rule: Parties, items: Iterable[Any], scope: Scope) -> list[Row]:
    out: list[Row] = []
    seen: set[tuple[Any, ...]] = set()
    for item in items:
        if not isinstance(item, Mapping):
            continue
        if owns(item, scope):
            out.append(apply(item, rule.own, scope))
            continue
        if rule.foreign is None:
            continue
        shown = apply(item, rule.foreign, scope)
        marker = tuple(repr(shown.get(k)) for k in rule.collapse) if rule.collapse else \
            tuple(sorted((k, repr(v)) for k, v in shown.items()))
        if marker not in seen:
            seen.add(marker)
            out.append(shown)
    return out


# --- shapes ------------------------------------------------------------------------------

CONFLICT_OWN: Final[Shape] = {
    "registration_id": SHOW, "party_type": SHOW, "party_id": SHOW, "matched_by": SHOW,
    "score": SHOW, "account_key": KEY, "confident": SHOW,
}
CONFLICT_FOREIGN: Final[Shape] = {
    "registration_id": NULL, "party_type": SHOW, "party_id": NULL,
    "matched_by": SAME_CUSTOMER, "score": SHOW, "account_key": HIDE, "confident": SHOW,
}
CONFLICTS: Final = Parties(CONFLICT_OWN, CONFLICT_FOREIGN, collapse=("party_type",))

DECISION: Final[Shape] = {
    "rule": SHOW, "policy_version": SHOW, "explanation": TEXT, "conflicts": CONFLICTS,
    "flags": SHOW,
}

REGISTRATION: Final[Shape] = {
    "id": SHOW, "partner_id": PARTY, "account_key": KEY, "account": SHOW,
    "opportunity": SHOW, "motion": SHOW, "external_ref": SHOW, "status": SHOW,
    "submitted_at": SHOW, "decided_at": SHOW, "protected_until": SHOW, "extensions": SHOW,
    "dispute_id": SHOW, "credit_percent": SHOW, "decision": Nested(DECISION),
}
"""A registration: partners read only their own (the routes answer 404 otherwise)."""

SPLIT: Final[Shape] = {"registration_id": SHOW, "percent": SHOW}
SPLITS: Final = Parties(SPLIT, None)
AWARD_OWN: Final[Shape] = {"product": SHOW, "registration_id": SHOW}
AWARD_FOREIGN: Final[Shape] = {"product": SHOW, "registration_id": NULL}
AWARDS: Final = Parties(AWARD_OWN, AWARD_FOREIGN, collapse=("product",))
"""An award by product: which products the viewer won; of the others only that another
party won them (what it is protected for)."""

RESOLUTION: Final[Shape] = {
    "outcome": SHOW, "registration_id": ID, "splits": SPLITS, "awards": AWARDS,
    "approved_ids": IDS,
    "rejected_ids": IDS, "resolved_by": NULL, "actor_role": HIDE, "note": HIDE,
    "partner_note": TEXT, "merged_into": SHOW, "resolved_at": SHOW, "rule": SHOW,
    "policy_version": SHOW, "explanation": TEXT,
}
"""Partners get `partner_note` (written for the involved partners; scrubbed like any text,
in case it names another party's registration), never the internal `note` nor who
resolved the dispute."""

BREACH: Final[Shape] = {"level": SHOW, "deadline": SHOW, "outcome": SHOW}

DISPUTE: Final[Shape] = {
    "id": SHOW, "status": SHOW, "level": SHOW, "owner_id": SHOW, "due_at": SHOW,
    "acknowledged_at": SHOW, "registration_ids": IDS, "resolution": Nested(RESOLUTION),
    "account_key": KEY, "reason": SHOW, "opened_at": SHOW, "reminder_at": SHOW,
    "resolved_at": SHOW, "breached": SHOW, "breaches": Each(BREACH), "explanation": TEXT,
    "last_refusal": HIDE,
}
"""A dispute (query and command answers alike); partners read only their own, and never
`last_refusal` (an owner's refused command: staff business)."""

OWNER_OWN: Final[Shape] = {
    "party_type": SHOW, "party_id": SHOW, "registration_id": SHOW, "products": SHOW,
    "motion": SHOW, "status": SHOW, "protected_until": SHOW, "credit_percent": SHOW,
    "since": SHOW,
}
OWNER_FOREIGN: Final[Shape] = {
    "party_type": SHOW, "party_id": NULL, "registration_id": NULL, "products": SHOW,
    "motion": NULL, "status": SHOW, "protected_until": HOUR, "credit_percent": NULL,
    "since": NULL,
}
INCUMBENT_OWN: Final[Shape] = {"party_type": SHOW, "party_id": SHOW, "since": SHOW,
                               "until": SHOW}

MATCH: Final[Shape] = {"matched_by": SHOW, "score": SHOW}
OWNERSHIP: Final[Shape] = {
    "account_key": KEY, "owners": Parties(OWNER_OWN, OWNER_FOREIGN),
    "open_disputes": SHOW, "open_dispute_count": SHOW,
    "incumbents": Parties(INCUMBENT_OWN, None), "as_of": SHOW,
    "match": Nested(MATCH), "linked_keys": KEYS,
}
"""`open_disputes` and `open_dispute_count` are cut to the viewer's disputes by
`ownership()`; competitors' protections are merged per party type and scope, without
`since`; `incumbents` lists only the viewer's own incumbency (that a competitor won the
account, and when, is not a partner's to know: its effect shows as a rejection by
`incumbent`, which it may contest)."""

MONEY: Final[Shape] = {"currency": SHOW, "value": SHOW}
BUCKET: Final[Shape] = {"count": SHOW, "amounts": Each(MONEY)}
PIPELINE_GROUP: Final[Shape] = {"key": SHOW, "count": SHOW, "amounts": Each(MONEY),
                                "sourced": Nested(BUCKET), "influenced": Nested(BUCKET)}
PIPELINE: Final[Shape] = {"group_by": SHOW, "groups": Each(PIPELINE_GROUP),
                          "total": Nested(PIPELINE_GROUP)}
"""A partner's pipeline counts only its own registrations (the route filters)."""

TIMELINE_ENTRY: Final[Shape] = {"at": SHOW, "type": SHOW, "event_id": SHOW,
                                "subject_id": SHOW, "data": SHOW}
"""`data` is cut per event type by `TIMELINE_DATA`."""

_EVIDENCE: Final = CONFLICTS
TIMELINE_DATA: Final[Mapping[str, Shape]] = {
    "dealreg.registration.submitted.v1": {
        "registration_id": ID, "partner_id": PARTY, "partner": SHOW, "account_key": KEY,
        "account": SHOW, "opportunity": SHOW, "motion": SHOW, "external_ref": SHOW,
        "submitted_at": SHOW, "policy_version": SHOW},
    "dealreg.registration.decided.v1": {
        "registration_id": ID, "partner_id": PARTY, "account_key": KEY, "status": SHOW,
        "rule": SHOW, "policy_version": SHOW, "explanation": TEXT, "conflicts": CONFLICTS,
        "decided_at": SHOW, "protected_until": SHOW, "dispute_id": SHOW,
        "scope_products": SHOW, "credit_percent": SHOW, "extensions": SHOW, "flags": SHOW,
        # The directory's bookkeeping (session 29): the filer's own names, normalised;
        # nothing a partner needs, so not shown.
        "unfiled_names": HIDE, "refiled_names": HIDE, "refiled_country": HIDE,
        # Other filings' ids (session 30): never a partner's to read.
        "unfiled_cofilers": HIDE},
    "dealreg.registration.withdrawn.v1": {
        "registration_id": ID, "partner_id": PARTY, "account_key": KEY,
        "withdrawn_at": SHOW, "policy_version": SHOW},
    "dealreg.registration.extension_requested.v1": {
        "registration_id": ID, "partner_id": PARTY, "account_key": KEY,
        "requested_at": SHOW, "policy_version": SHOW},
    "dealreg.registration.action_rejected.v1": {
        "registration_id": ID, "account_key": KEY, "action": SHOW, "reason": SHOW,
        "rule": SHOW, "policy_version": SHOW, "explanation": TEXT, "decided_at": SHOW},
    "dealreg.opportunity.closed.v1": {
        "registration_id": ID, "account_key": KEY, "outcome": SHOW, "amount": SHOW,
        "closed_at": SHOW, "policy_version": SHOW},
    "dealreg.protection.extended.v1": {
        "registration_id": ID, "party_type": SHOW, "party_id": PARTY, "account_key": KEY,
        "protected_until": SHOW, "extensions": SHOW, "rule": SHOW, "policy_version": SHOW,
        "explanation": TEXT, "decided_at": SHOW},
    "dealreg.protection.ended.v1": {
        "registration_id": ID, "party_type": SHOW, "party_id": PARTY, "account_key": KEY,
        "reason": SHOW, "status": SHOW, "rule": SHOW, "policy_version": SHOW,
        "explanation": TEXT, "ended_at": SHOW, "amount": SHOW, "incumbent_until": SHOW,
        "credit_percent": SHOW},
    "dealreg.dispute.filed.v1": {
        "dispute_id": SHOW, "registration_id": ID, "partner_id": PARTY, "account_key": KEY,
        "reason": TEXT, "filed_at": SHOW, "policy_version": SHOW},
    "dealreg.dispute.opened.v1": {
        "dispute_id": SHOW, "account_key": KEY, "registration_ids": IDS, "reason": SHOW,
        "level": SHOW, "owner_id": SHOW, "opened_at": SHOW, "due_at": SHOW,
        "reminder_at": SHOW, "policy_version": SHOW, "rule": SHOW, "explanation": TEXT,
        "evidence": _EVIDENCE, "carries_on": HIDE},
    "dealreg.dispute.joined.v1": {
        "dispute_id": SHOW, "account_key": KEY, "added_ids": IDS, "registration_ids": IDS,
        "joined_at": SHOW, "policy_version": SHOW, "explanation": TEXT,
        "evidence": _EVIDENCE, "reason": SHOW,
        # The deadline the join moved onto the joiner's unit (session 30): shown only to
        # the joiner (`_ONLY_WHEN_OWN`), on its own document's unit.
        "due_at": SHOW},
    "dealreg.dispute.acknowledgement_recorded.v1": {
        "dispute_id": SHOW, "account_key": KEY, "level": SHOW, "owner_id": SHOW,
        "actor_id": HIDE, "acknowledged_at": SHOW, "policy_version": SHOW},
    "dealreg.dispute.escalated.v1": {
        "dispute_id": SHOW, "account_key": KEY, "from_level": SHOW, "to_level": SHOW,
        "owner_id": SHOW, "breached_deadline": SHOW, "due_at": SHOW, "reminder_at": HIDE,
        "policy_version": SHOW, "explanation": TEXT},
    "dealreg.dispute.sla_breached.v1": {
        "dispute_id": SHOW, "account_key": KEY, "level": SHOW, "owner_id": SHOW,
        "breached_deadline": SHOW, "policy_version": SHOW, "explanation": TEXT},
    "dealreg.dispute.resolved.v1": {
        "dispute_id": SHOW, "account_key": KEY, "outcome": SHOW, "registration_ids": IDS,
        "awarded_registration_id": ID, "splits": SPLITS, "awards": AWARDS,
        "approved_ids": IDS,
        "rejected_ids": IDS, "resolved_by": HIDE, "actor_role": HIDE, "note": HIDE,
        "partner_note": TEXT, "merged_into": SHOW, "level": SHOW, "resolved_at": SHOW,
        "rule": SHOW, "policy_version": SHOW, "explanation": TEXT},
    "dealreg.account.linked.v1": {
        "registration_id": ID, "account_key": KEY, "canonical_key": KEY,
        "matched_by": SAME_CUSTOMER, "score": SHOW, "linked_at": SHOW, "policy_version": SHOW,
        "rule": SHOW, "explanation": HIDE},
    "dealreg.account.unlinked.v1": {
        "registration_id": ID, "account_key": KEY, "canonical_key": KEY,
        "unlinked_at": SHOW, "policy_version": SHOW, "rule": SHOW, "explanation": HIDE},
}
"""Timeline entries a partner sees, per event type, and which of their fields (the link
events' sentences name both keys: left out; which identifier linked them reads
"same_customer", as in a competitor's conflict: it would tell what the other side filed)."""

TIMELINE_HIDDEN_TYPES: Final = frozenset({
    "dealreg.claim.filed.v1", "dealreg.claim.decided.v1", "dealreg.claim.released.v1",
    "dealreg.dispute.acknowledged.v1", "dealreg.dispute.resolution_submitted.v1",
    "dealreg.dispute.reminder_due.v1", "dealreg.dispute.action_rejected.v1",
    "dealreg.account.link_reported.v1", "dealreg.timer.fired.v1",
    "dealreg.partner.status_changed.v1", "dealreg.policy.published.v1",
    "dealreg.partner.updated.v1", "dealreg.owner.updated.v1",
    "dealreg.dispute.settlement_relayed.v1", "dealreg.dispute.copies_in_review.v1",
    "dealreg.registration.end_relayed.v1",
})
"""Event types partners never see in a timeline: a rep's claims, an owner's requests and
their refusals (the internal note, who acted), reminders to owners, the edge's link
reports, timers, reference data and the adjudicator's relays between partitions (they
name the other key; what they decide reaches the partner as its registration's
decision)."""

_ONLY_WHEN_OWN: Final[Mapping[str, str]] = {"dealreg.dispute.joined.v1": "added_ids",
                                            "dealreg.dispute.opened.v1": "registration_ids"}
"""Entries shown only when they concern the viewer's own registrations (a rival joining a
dispute is not news a partner may have: it would count the rivals; a dispute opened over
rivals before the viewer joined it tells when they registered)."""

WEBHOOK_DISPUTE: Final[Shape] = {
    "id": SHOW, "outcome": SHOW, "resolved_at": SHOW, "level": SHOW, "rule": SHOW,
    "policy_version": SHOW, "merged_into": SHOW, "partner_note": TEXT, "awards": AWARDS,
}
WEBHOOK_RESULT: Final[Shape] = {"id": ID, "status": SHOW, "credit_percent": SHOW}
WEBHOOK_DATA: Final[Shape] = {
    "dispute": Nested(WEBHOOK_DISPUTE), "account_key": KEY,
    "registrations": OwnEach(WEBHOOK_RESULT), "role": SHOW,
}
"""`dispute.resolved` to a partner: the dispute's outcome, the `partner_note`, and the
partner's own registrations' results."""
WEBHOOK_PAYLOAD: Final[Shape] = {"type": SHOW, "timestamp": SHOW, "data": Nested(WEBHOOK_DATA)}
"""A webhook body as a partner's delivery log shows it (`{"type", "timestamp", "data"}`)."""

WEBHOOK_HEADERS: Final = frozenset({"content-type", "user-agent", "webhook-id",
                                    "webhook-timestamp", "webhook-signature"})
"""The headers a partner's webhook request carries (`webhook_headers`): the Standard
Webhooks ones. Not the W3C trace context (`traceparent`, `tracestate`) of the request
that caused the decision, which owners' webhooks carry: a partner's `dispute.resolved` may
be caused by a rival's request (its withdrawal ending the dispute `moot`, its CRM's close),
whose trace id and `tracestate` (free text the rival's systems put there: a user, a
tenant, a deal) are the rival's (session 29)."""


def webhook_headers(recipient_kind: str, headers: Mapping[str, str]) -> dict[str, str]:
    """A webhook request's headers as sent to its recipient: a partner gets only
    `WEBHOOK_HEADERS` (an allow-list, like every partner shape), other recipients all."""
    if recipient_kind != "partner":
        return dict(headers)
    return {k: v for k, v in headers.items() if k.lower() in WEBHOOK_HEADERS}

DELIVERY_ATTEMPT: Final[Shape] = {
    "attempt": SHOW, "at": SHOW, "outcome": SHOW, "status_code": SHOW, "duration_ms": SHOW,
    "error": HIDE,
}
DELIVERY: Final[Shape] = {
    "id": SHOW, "event_id": HIDE, "dispute_id": SHOW, "type": SHOW, "recipient_kind": SHOW,
    "recipient_id": PARTY, "channel": SHOW, "status": SHOW, "attempts": SHOW,
    "next_attempt_at": SHOW, "last_error": HIDE, "created_at": SHOW, "delivered_at": SHOW,
    "payload": Nested(WEBHOOK_PAYLOAD), "attempt_log": Each(DELIVERY_ATTEMPT),
}
"""A partner's own delivery log (`GET /v1/partners/{id}/deliveries`): what was sent when and
how each attempt ended (outcome, HTTP status, duration). Not the log's internals: the
causing event's id, nor the error texts (a connection error names URLs and addresses, an
exception's text the server's internals). The payload is cut again to the webhook's shape
(it was the partner view when queued; cutting it here keeps a payload stored by an older
version, or a new field, from reaching the partner unlisted)."""


# --- resources ---------------------------------------------------------------------------


def mentioned_ids(value: Any) -> set[str]:
    """Every registration or claim id a view mentions (to ask which are the viewer's);
    a split's `registration_id` is found like any other."""
    return _collect(value, _ID_KEYS, _ID_LIST_KEYS, nonempty=False)


def registration_scope(view: Mapping[str, Any], viewer: Viewer) -> Scope:
    """A registration names its own parties: the conflicts carry their party. Its own keys
    are those its submitted account derives (not the key the edge may have resolved it to
    through a competitor's identifiers)."""
    if not viewer.is_party("partner", view.get("partner_id")):
        raise PermissionError("a partner reads only its own registrations")
    own: set[str] = {view["id"]}
    own_keys: set[str] = set(submitted_keys(view.get("account")))
    foreign: set[str] = set()
    for conflict in (view.get("decision") or {}).get("conflicts") or ():
        rid = conflict.get("registration_id")
        if viewer.is_party(conflict.get("party_type"), conflict.get("party_id")):
            own.update([rid] if rid else [])
        elif rid:
            foreign.add(rid)
    return Scope(viewer, frozenset(own), frozenset(foreign - own),
                 frozenset(own_keys)).knowing(view)


def registration(view: Mapping[str, Any], viewer: Viewer) -> Row:
    """A registration (query or command answer), for its owning partner: its `account_key`
    is the one the registration is filed under when the partner's own identifiers derive
    it, else the key of the account as the partner submitted it."""
    if not viewer.restricted:
        return dict(view)
    scope = registration_scope(view, viewer)
    out = apply(view, REGISTRATION, scope)
    if "account_key" in view and out.get("account_key") is None:
        out["account_key"] = submitted_key(view.get("account"))
    return out


def carries_on(opening: Mapping[str, Any]) -> bool:
    """Whether a dispute's opening (its `dealreg.dispute.opened.v1` data) carries on an
    earlier dispute's deadlines: opened by a contest where some of its members were
    already in review (`DisputeOpened.carries_on`, the older dispute's id). Its `due_at` is
    then that dispute's opening plus the SLA, to the microsecond, though its own
    `opened_at` is the contest's: a partner reads its deadlines to the hour, as a late
    joiner's. An opening without the field (written before session 28, or null: not
    written) is read by its sentence, which said so in every such opening; a disputes row
    (its `explanation` is its opening's sentence) likewise, when its opening's entry has
    not been read."""
    if "carries_on" in opening:
        return bool(opening["carries_on"])
    text = opening.get("explanation")
    return isinstance(text, str) and _CARRIED_CLAUSE.search(text) is not None


def reason_when_entered(steps: Iterable[tuple[str, Mapping[str, Any]]],
                        own_ids: Collection[str]) -> str | None:
    """A dispute's reason when the first of `own_ids` entered it: `steps` are its opening
    and joinings (`(type, data)`, in time order); a joining's `reason` is the one it
    changed the dispute to (a review a confident collision joined reads as that
    collision). None: none of `own_ids` is named.

    A partner reads this reason (`dispute()`), not the dispute's latest: a rival's
    registration joining its `possible_duplicate` review turned the reason it read into
    `tie`, telling it that a rival had arrived and when (polling), which its timeline
    hides (`_ONLY_WHEN_OWN`; session 29). Its own joining's change it reads."""
    own = set(own_ids)
    reason: str | None = None
    for kind, data in steps:
        if kind == "dealreg.dispute.opened.v1":
            reason = data.get("reason") or reason
            named = data.get("registration_ids")
        else:
            reason = data.get("reason") or reason
            named = data.get("added_ids")
        if own & set(named or ()):
            return reason
    return None


def dispute(view: Mapping[str, Any], scope: Scope, joined_at: Any = None,
            opening: Mapping[str, Any] | None = None, reason: str | None = None) -> Row:
    """A dispute the viewer is party to (`GET /v1/disputes...` and command answers).
    `joined_at`: when the viewer's first registration entered it; a dispute opened
    before that shows `opened_at` as that moment (the real one is a rival's submission).
    `reason`: its reason when the viewer entered (`reason_when_entered`; None: the row's).
    `opening`: its `dealreg.dispute.opened.v1` data (`queries.entered_dispute` reads both),
    which says whether it carries on an older dispute (`carries_on`); None: not read, the
    row's own sentence is. A dispute a rival's act opened over the viewer's registration
    (`OWN_ACTS`) is entered at the hour after its opening (`entered_by`), so it reads as
    a late joiner's. The command side passes `opened_at` and `explanation` too
    (read, not shown by its model), so that its answer is the query's."""
    if not scope.viewer.restricted:
        return dict(view)
    out = apply(view, DISPUTE, scope.knowing(view))
    if reason is not None and "reason" in out:
        out["reason"] = reason  # as when the viewer entered (`reason_when_entered`)
    opened = out.get("opened_at")
    late = joined_at is not None and opened is not None and _later(joined_at, opened)
    if late:
        out["opened_at"] = joined_at
    entered = out.get("opened_at")  # as shown: the viewer's entry, at or after the opening
    if entered is not None and _later(entered, out.get("acknowledged_at")):
        # Acknowledged before the viewer entered: a late joiner's dispute, or one whose
        # opening carried an older dispute's acknowledgement (`carries_on`, staff rows
        # read it). "Acknowledged before it opened" told that rivals were disputing the
        # account already (as the joining's sentence did, `_as_opening`), and when a
        # person took it up. Read: acknowledged when the viewer entered.
        out["acknowledged_at"] = entered
    if late or carries_on(opening if opening is not None else view):
        # Opened over rivals before the viewer joined (or carrying on such a dispute's
        # ladder): its times count from a rival's submission. Shown: when the viewer
        # joined, and deadlines rounded up to the hour. The breaches' deadlines too: a
        # level's deadline is the opening plus its SLA.
        out["reminder_at"] = None
        moments = [out.get("due_at"), *(b.get("deadline") for b in out.get("breaches") or ())]
        out["due_at"] = _shown_hour_up(out.get("due_at"))
        if "breaches" in out:
            out["breaches"] = [{**b, "deadline": _shown_hour_up(b.get("deadline"))}
                               for b in out["breaches"]]
        out["explanation"] = _hours_in_text(out.get("explanation"), moments)
        resolution = out.get("resolution")
        if isinstance(resolution, Mapping) and resolution.get("rule") in TIMED_SETTLEMENTS:
            # Settled by its last deadline passing: at that deadline, to the microsecond.
            out["resolved_at"] = _shown_hour_up(out.get("resolved_at"))
            out["resolution"] = {
                **resolution, "resolved_at": _shown_hour_up(resolution.get("resolved_at")),
                "explanation": _hours_in_text(resolution.get("explanation"),
                                              [resolution.get("resolved_at")])}
    return out


OWN_ACTS: Final = ("dealreg.registration.submitted.v1", "dealreg.dispute.filed.v1")
"""Timeline entries of a partner's own acts that may open a dispute over its registration
(its submission, its contest). A dispute opened over the partner's registration at any
other moment (a rival's submission tying with, or beating, its approval; a rival's contest
of losing to it) opened at that rival's moment, to the microsecond: the partner reads the
opening, its reminder and its deadlines as a late joiner's, to the hour (`dispute()`
`rival_opened`, `timeline()`; session 30 rival review)."""


def entered_by(opened: datetime, own_acts: Collection[datetime]) -> datetime:
    """When a partner entered a dispute that opened over its registration, or that a
    joining drew its registration into, at `opened`: then, when that was one of its own
    acts (`OWN_ACTS`: `own_acts`, their moments), else the hour after (`_hour_up`): a
    rival's act opened it or drew it in, at the rival's moment. One rule
    for the dispute's view (`queries.entered_dispute`, so `dispute()` reads it as a late
    joiner's), `GET /v1/ownership?as_of=` (when it counts among the partner's open
    disputes) and its timeline (`timeline()`)."""
    return opened if opened in own_acts else _hour_up(opened)


TIMED_SETTLEMENTS: Final = frozenset({"final_breach_fallback"})
"""Rules of a settlement no person made: the policy's `on_final_breach` fallback, written
when the last level's deadline passed, at that deadline. In a dispute that counts from a
rival's submission (joined late, or carrying on an older dispute's ladder) its time is that
submission plus the SLAs, so a partner reads it to the hour, as the deadlines: the
dispute's `resolved_at` (and its resolution's), and its timeline's `dispute.resolved`
entry (`LATE_DEADLINES`). A person's settlement is at a moment of the person's choosing:
shown as it is."""


def _hours_in_text(text: Any, moments: Iterable[Any]) -> Any:
    """`text` with each of `moments`, as sentences write them (to the minute, UTC), rounded
    up to the hour."""
    if not isinstance(text, str):
        return text
    for value in moments:
        moment = _moment(value)
        if isinstance(moment, datetime):
            text = text.replace(moment.strftime("%Y-%m-%d %H:%M"),
                                _hour_up(moment).strftime("%Y-%m-%d %H:%M"))
    return text


LATE_DEADLINES: Final[Mapping[str, tuple[str, ...]]] = {
    "dealreg.dispute.escalated.v1": ("breached_deadline", "due_at"),
    "dealreg.dispute.sla_breached.v1": ("breached_deadline",),
    "dealreg.dispute.resolved.v1": ("resolved_at",),
}
"""Timeline entries a dispute's deadline dates (a timer fired them): in a dispute the viewer
joined after it opened, they count from a rival's submission, so their times are shown to
the hour, their event id (a timer's, stamped when it fired) is replaced by an opaque one,
and they take their place by the rounded time (among exact entries they would be bounded
by them). A `dispute.resolved` entry only when a timer settled it (`TIMED_SETTLEMENTS`)."""


_DECISION_ID: Final = re.compile(r"^(.*)\.d(\d+)$")


def _renumbered(event_id: Any, key: bytes) -> Any:
    """A decision's id is its cause's id and its place among the cause's outputs
    (`<cause>.d<n>`): a settlement writes the resolution, then one decision per member in
    order, so the partner's own `.d3` counted the members decided before it. A partner
    reads `<cause>.d<m>`, m a keyed digest of the real id (`key`: the server's, so m is
    not found by trying small numbers): one id per event whichever timeline shows it, and
    two events never share one. (Numbering the decisions a timeline shows 0, 1, ... gave
    two registrations settled together the same `.d1`.)"""
    if not isinstance(event_id, str):
        return event_id
    found = _DECISION_ID.match(event_id)
    if found is None:
        return event_id
    digest = hashlib.blake2b(event_id.encode(), key=key, digest_size=8,
                             person=b"dealreg-decision").digest()
    return f"{found.group(1)}.d{int.from_bytes(digest, 'big')}"


def _timer_dated(entry: Mapping[str, Any]) -> bool:
    """Whether a timeline entry's time is a deadline of its dispute (`LATE_DEADLINES`)."""
    if entry["type"] == "dealreg.dispute.resolved.v1":
        return (entry.get("data") or {}).get("rule") in TIMED_SETTLEMENTS
    return entry["type"] in LATE_DEADLINES


def _late_entry(entry: Row, original: Mapping[str, Any]) -> Row:
    """A `LATE_DEADLINES` entry of a dispute opened before the viewer joined it."""
    fields = LATE_DEADLINES[entry["type"]]
    data = dict(entry.get("data") or {})
    raw = original.get("data") or {}
    for name in fields:
        if name in data:
            data[name] = _shown_hour_up(data[name])
    data["explanation"] = _hours_in_text(data.get("explanation"),
                                         [raw.get(name) for name in fields])
    if data["explanation"] is None:
        del data["explanation"]
    digest = hashlib.sha256(str(entry.get("event_id")).encode()).hexdigest()[:26]
    return {**entry, "at": _shown_hour_up(entry.get("at")), "event_id": f"evt_{digest}",
            "data": data}


_TAG: Final = re.compile(r"\((\w+), policy v\d+\)\.?$")


def _as_opening(joined: Mapping[str, Any], entries: Iterable[Mapping[str, Any]]) -> Row:
    """A `dealreg.dispute.joined.v1` entry that drew the viewer's registration into a
    dispute it did not see open, as the `dealreg.dispute.opened.v1` entry the adjudicator
    would have written had the viewer's submission opened the dispute then: its reason,
    level, owner and deadline as they stood (from the dispute's own steps before, all
    structured fields), its rule (the viewer's decision into it), its members and evidence
    the joining's, opened when it joined. "Collides with registrations already in dispute
    ..., so it joins that dispute" told the partner that two or more rivals were already
    disputing the account; an opening tells that there is at least one, as its decision
    does. Its deadlines are shown to the hour and without a reminder (`timeline`), as a
    late joiner's dispute (`dispute()`)."""
    data = joined.get("data") or {}
    dispute_id = joined.get("subject_id")
    added = set(data.get("added_ids") or ())
    state: dict[str, Any] = {"reason": None, "level": 1, "owner_id": None, "due_at": None,
                             "rule": None}
    for entry in entries:
        if entry is joined:
            break
        step = entry.get("data") or {}
        if entry.get("subject_id") == dispute_id:
            if entry["type"] == "dealreg.dispute.opened.v1":
                state.update({k: step.get(k) for k in
                              ("reason", "level", "owner_id", "due_at", "rule")})
            elif entry["type"] == "dealreg.dispute.joined.v1" and step.get("reason"):
                state["reason"] = step["reason"]
            elif entry["type"] == "dealreg.dispute.escalated.v1":
                state.update(level=step.get("to_level"), owner_id=step.get("owner_id"),
                             due_at=step.get("due_at"))
            elif entry["type"] == "dealreg.dispute.acknowledgement_recorded.v1":
                state.update(level=step.get("level"), owner_id=step.get("owner_id"))
    for entry in entries:  # the viewer's own decision into the dispute names the rule
        step = entry.get("data") or {}
        if entry["type"] == "dealreg.registration.decided.v1" \
                and entry.get("subject_id") in added and step.get("dispute_id") == dispute_id:
            state["rule"] = step.get("rule") or state["rule"]
            break
    if state["rule"] is None:
        tag = _TAG.search(str(data.get("explanation") or ""))
        state["rule"] = tag.group(1) if tag else None
    reason = data.get("reason") or state["reason"]
    members = list(data.get("registration_ids") or ())
    due = _moment(state["due_at"])
    due_text = f", due {due:%Y-%m-%d %H:%M} UTC" if isinstance(due, datetime) else ""
    version = data.get("policy_version")
    opening: Row = {
        "account_key": data.get("account_key"), "registration_ids": members,
        "reason": reason, "level": state["level"], "owner_id": state["owner_id"],
        "opened_at": data.get("joined_at"), "due_at": state["due_at"], "reminder_at": None,
        "policy_version": version, "rule": state["rule"],
        "explanation": (
            f"Dispute {dispute_id} opened ({reason}) over {len(members)} "
            f"registration{'s' if len(members) != 1 else ''} on the account "
            f"{key_label(str(data.get('account_key') or ''))}; level {state['level']} "
            f"is with {state['owner_id']}{due_text} ({state['rule']}, policy v{version})."),
        "evidence": data.get("evidence") or [],
    }
    if "dispute_id" in data:
        opening = {"dispute_id": data["dispute_id"], **opening}
    return {**joined, "type": "dealreg.dispute.opened.v1", "data": opening}


def _carried_opening(shown: Row, raw: Mapping[str, Any]) -> Row:
    """The `dealreg.dispute.opened.v1` entry of a dispute that carries on another's ladder
    (`carries_on`): its deadline to the hour (in its sentence too), no reminder."""
    out = {k: v for k, v in shown.items() if k != "reminder_at"}
    if "due_at" in out:
        out["due_at"] = _shown_hour_up(out["due_at"])
    if "explanation" in out:
        out["explanation"] = _hours_in_text(out["explanation"], [raw.get("due_at")])
    return out


def _rival_opening(entry: Row, original: Mapping[str, Any]) -> Row:
    """The `dealreg.dispute.opened.v1` entry of a dispute a rival's act opened over the
    viewer's registration (`OWN_ACTS`): its time and `opened_at` to the hour, its
    deadline to the hour (in its sentence too), no reminder, and an opaque `event_id`
    (its cause's id, a ULID, is stamped at the rival's submission)."""
    raw = original.get("data") or {}
    data = {k: v for k, v in (entry.get("data") or {}).items() if k != "reminder_at"}
    for name in ("opened_at", "due_at"):
        if name in data:
            data[name] = _shown_hour_up(data[name])
    if "explanation" in data:
        data["explanation"] = _hours_in_text(data["explanation"],
                                             [raw.get("opened_at"), raw.get("due_at")])
    digest = hashlib.sha256(str(entry.get("event_id")).encode()).hexdigest()[:26]
    return {**entry, "at": _shown_hour_up(entry.get("at")), "event_id": f"evt_{digest}",
            "data": data}


def _hour_up(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)


def rivals_moment(as_of: datetime) -> datetime:
    """The moment a partner's `GET /v1/ownership?as_of=` reads competitors' protections at:
    `as_of` floored to the hour (its own are read at `as_of`). To the microsecond, look-ups
    either side of an instant would bisect to when a rival was approved, withdrew or lost
    its protection, which the rounding of its `protected_until` (`HOUR`) hides; to the
    hour they tell what that rounding tells. A look-up without `as_of` reads now."""
    return as_of.replace(minute=0, second=0, microsecond=0)


def _shown_hour_up(value: Any) -> Any:
    """`value` (a datetime or ISO 8601 string, or None) rounded up to the hour, in the
    type it came in."""
    moment = _moment(value)
    if not isinstance(moment, datetime):
        return value
    shown = _hour_up(moment)
    if shown == moment:
        return value  # on the hour already: as it was, in the form it was
    if isinstance(value, str):
        text = shown.isoformat()
        return text.replace("+00:00", "Z") if value.endswith("Z") else text
    return shown


def _moment(v: Any) -> Any:
    return datetime.fromisoformat(v.replace("Z", "+00:00")) if isinstance(v, str) else v


def _later(a: Any, b: Any) -> bool:
    """`a` after `b` (datetimes or ISO 8601 strings)."""
    try:
        return bool(_moment(a) > _moment(b))
    except TypeError:
        return False


def timeline(entries: Iterable[Mapping[str, Any]], scope: Scope, *, ids_key: bytes
             ) -> list[Row]:
    """A timeline's entries, each with its data cut to its type's shape; entries of types
    partners never see are left out. `ids_key`: the server's key decision ids are shown
    under (`_renumbered`)."""
    if not scope.viewer.restricted:
        return [dict(e) for e in entries]
    entries = list(entries)
    # Nothing from before the viewer's own first event (its registration's submission):
    # what happened on the account earlier is other parties' activity.
    # Its own entries name it by their subject, not in their data (the timelines model
    # stores an event without the field naming its subject): looked for in the data alone,
    # the start was the first dispute step naming it, and its own submission and decisions
    # before that were left out.
    start = next((e.get("at") for e in entries if e.get("subject_id") in scope.own_ids
                  or mentioned_ids(e.get("data") or {}) & scope.own_ids), None)
    # When its registration's protection ended (withdrawn, closed, exited): the adjudicator
    # took it out of any open dispute then, so what such a dispute does later is other
    # parties' business (whether it went on, or ended `moot`, would count them), as the
    # queries no longer make it a party (`shared.readmodel.queries.still_in_dispute`).
    left = next((e.get("at") for e in entries if e["type"] == "dealreg.protection.ended.v1"
                 and e.get("subject_id") in scope.own_ids), None)
    # Disputes opened over rivals before the viewer's first event (it joined them late).
    late = {e.get("subject_id") for e in entries
            if e["type"] == "dealreg.dispute.opened.v1" and start is not None
            and _later(start, e.get("at"))}
    # Disputes whose opening carries on another's ladder (`carries_on`): their deadlines
    # count from a rival's submission too.
    carried = {e.get("subject_id") for e in entries
               if e["type"] == "dealreg.dispute.opened.v1" and carries_on(e.get("data") or {})}
    late |= carried
    # Disputes opened over the viewer's registration by a rival's act (none of its own,
    # `OWN_ACTS`): their opening is the rival's moment, their deadlines count from it.
    own_acts = {_moment(e.get("at")) for e in entries
                if e["type"] in OWN_ACTS and e.get("subject_id") in scope.own_ids}
    rival_opened = {e.get("subject_id") for e in entries
                    if e["type"] == "dealreg.dispute.opened.v1"
                    and e.get("subject_id") not in late
                    and set((e.get("data") or {}).get("registration_ids") or ())
                    & scope.own_ids
                    and entered_by(_moment(e.get("at")), own_acts) != _moment(e.get("at"))}
    late |= rival_opened
    # Disputes whose opening the viewer sees (it names one of its registrations): a later
    # joining of its own to another dispute reads as that dispute's opening (`_as_opening`).
    opened = {e.get("subject_id") for e in entries
              if e["type"] == "dealreg.dispute.opened.v1"
              and (start is None or not _later(start, e.get("at")))
              and set((e.get("data") or {}).get("registration_ids") or ()) & scope.own_ids}
    # Disputes the viewer's registration entered by a joining, not at their opening: their
    # deadlines count from a rival's submission, whenever its own first event was (a
    # registration rejected earlier may be drawn in much later: a contest merged into an
    # older dispute, a promotion next in line).
    late |= {e.get("subject_id") for e in entries
             if e["type"] == "dealreg.dispute.joined.v1" and e.get("subject_id") not in opened
             and set((e.get("data") or {}).get("added_ids") or ()) & scope.own_ids}
    # When the viewer's registration entered each such dispute (its first joining naming
    # one): the dispute's steps before it (an acknowledgement, an escalation, a breach) are
    # the rivals' dispute, before the opening the viewer reads (`_as_opening`).
    entered: dict[Any, Any] = {}
    for e in entries:
        if e["type"] == "dealreg.dispute.joined.v1" and e.get("subject_id") not in opened \
                and e.get("subject_id") not in entered \
                and set((e.get("data") or {}).get("added_ids") or ()) & scope.own_ids:
            entered[e.get("subject_id")] = e.get("at")
    out: list[Row] = []
    rounded = False
    for raw in entries:
        entry = raw
        joining = (raw["type"] == "dealreg.dispute.joined.v1"
                   and raw.get("subject_id") not in opened
                   and bool(set((raw.get("data") or {}).get("added_ids") or ())
                            & scope.own_ids))
        if joining:
            opened.add(raw.get("subject_id"))
            entry = _as_opening(raw, entries)
        shape = TIMELINE_DATA.get(entry["type"])
        if shape is None:
            continue
        if start is not None and _later(start, entry.get("at")):
            continue
        if entry.get("subject_id") in entered \
                and _later(entered[entry.get("subject_id")], entry.get("at")):
            continue  # a step of a dispute before the viewer's registration entered it
        if left is not None and entry.get("subject_id") not in scope.own_ids \
                and not _later(left, entry.get("at")):
            continue  # a dispute's step at or after the viewer's registration left it
        data = entry.get("data") or {}
        relevant = _ONLY_WHEN_OWN.get(entry["type"])
        if relevant is not None and not any(i in scope.own_ids for i in data.get(relevant) or ()):
            continue
        seen = scope.knowing(data)
        shown = apply(entry, TIMELINE_ENTRY, seen)
        shown["data"] = apply(data, shape, seen)
        shown["event_id"] = _renumbered(shown.get("event_id"), ids_key)
        if _timer_dated(entry) and entry.get("subject_id") in late:
            shown = _late_entry(shown, entry)
            rounded = True
        elif joining and entered_by(_moment(raw.get("at")), own_acts) != _moment(raw.get("at")):
            # A rival's act drew the viewer's registration in (a rival joining the dispute
            # with the viewer's approval beside it): entered at the hour after, as a rival's
            # opening (`entered_by`), with an opaque event id.
            shown = _rival_opening(shown, entry)
            rounded = True
        elif joining:
            shown["data"] = {**shown["data"], "reminder_at": None,
                             "due_at": _shown_hour_up(shown["data"].get("due_at"))}
        elif entry["type"] == "dealreg.dispute.opened.v1" \
                and entry.get("subject_id") in carried:
            shown["data"] = _carried_opening(shown["data"], data)
        elif entry["type"] == "dealreg.dispute.opened.v1" \
                and entry.get("subject_id") in rival_opened:
            shown = _rival_opening(shown, entry)
            rounded = True
        out.append(shown)
    if rounded:
        out.sort(key=lambda e: _moment(e.get("at")))  # stable: equal times keep their order
    return out


def _latest(values: Iterable[Any]) -> Any:
    """The latest end among protections (None: no end, the latest of all)."""
    ends = list(values)
    if any(v is None for v in ends):
        return None
    return max(ends) if ends else None


def ownership(view: Mapping[str, Any], scope: Scope, own_disputes: Iterable[str]) -> Row:
    """`GET /v1/ownership`: the viewer's protections in full; competitors' merged per party
    type and scope (products, status) with the latest end; account keys only the viewer
    registered under or asked with; open disputes only the viewer's (by id), and their
    count."""
    if not scope.viewer.restricted:
        return dict(view)
    scope = scope.knowing(view)
    out = apply(view, OWNERSHIP, scope)
    out["owners"] = _merge(out.get("owners", []), scope,
                           lambda o: (o["party_type"], o["status"], tuple(o["products"])),
                           "protected_until")
    out["incumbents"] = _merge(out.get("incumbents", []), scope,
                               lambda o: (o["party_type"],), "until")
    mine = set(own_disputes)
    # By id, not earliest opened first: a late-joined dispute's place among the viewer's
    # own would date its real opening (a rival's submission).
    out["open_disputes"] = sorted(d for d in view.get("open_disputes") or () if d in mine)
    out["open_dispute_count"] = len(out["open_disputes"])
    return out


def _merge(rows: list[Row], scope: Scope, key: Any, end: str) -> list[Row]:
    """The viewer's own rows (in their order), then everyone else's merged and in the
    order of `key`: rows come earliest first, and a rival's place among them would tell
    whether its protection began before or after the viewer's (or another rival's)."""
    merged: dict[Any, Row] = {}
    own: list[Row] = []
    foreign: list[Row] = []
    for row in rows:
        if owns(row, scope):
            own.append(row)
            continue
        found = merged.get(key(row))
        if found is None:
            merged[key(row)] = row
            foreign.append(row)
        else:
            found[end] = _latest([found[end], row[end]])
    return own + sorted(foreign, key=key)


def pipeline(view: Mapping[str, Any], viewer: Viewer) -> Row:
    """`GET /v1/pipeline`: a partner's own pipeline (the route filters by partner)."""
    if not viewer.restricted:
        return dict(view)
    return apply(view, PIPELINE, Scope(viewer))


def resolved_webhook(at: str, data: Mapping[str, Any], results: list[Row],
                     scope: Scope) -> Row:
    """The `dispute.resolved` webhook to one involved partner: `data` is the
    DisputeResolved event's data (with `dispute_id`), `results` the partner's own
    registrations' results."""
    dispute_fields = {**data, "id": data.get("dispute_id")}
    body = {"dispute": dispute_fields, "account_key": data.get("account_key"),
            "registrations": results, "role": "partner"}
    return {"type": "dispute.resolved", "timestamp": at,
            "data": apply(body, WEBHOOK_DATA, scope.knowing(body))}


def delivery_mentions(payload: Any) -> set[str]:
    """Every registration id a delivery's payload mentions: `mentioned_ids`, and the `id`
    of each registration result of a webhook (to ask which are the viewer's)."""
    found = mentioned_ids(payload)
    data = payload.get("data") if isinstance(payload, Mapping) else None
    results = data.get("registrations") if isinstance(data, Mapping) else None
    for result in results if isinstance(results, list) else ():
        if isinstance(result, Mapping) and isinstance(result.get("id"), str):
            found.add(result["id"])
    return found


def delivery(row: Mapping[str, Any], scope: Scope) -> Row:
    """One entry of a partner's delivery log (the route reads only the viewer's own
    deliveries; `scope` knows which registrations its payload mentions are the viewer's)."""
    if not scope.viewer.restricted:
        return dict(row)
    return apply(row, DELIVERY, scope.knowing(row.get("payload")))
