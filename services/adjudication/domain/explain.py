"""Sentences a person can read for every decision (invariant 6).

The structured evidence (rule, policy version, matched_by, score) travels beside the
sentence in the decision event; the sentence says the same thing in words. Sentences about
a competitor never name it or its partner tier (invariant 7): a partner learns that the
account is protected by another party and which rule decided (how much earlier the rival
submitted is for the vendor side: the partner view reads "submitted earlier",
`shared.api.partner_view._GAP_IN_TEXT`).
"""

from __future__ import annotations

from services.adjudication.domain.instants import from_us, human_span, span_us
from services.adjudication.domain.state import Entry
from shared.accounts import AccountIdentity
from shared.accounts.identity import key_label
from shared.policy import Policy


def account_label(account_key: str, identity: AccountIdentity | None = None) -> str:
    """The most recognisable name of an account: its domain, else its name, else its key."""
    if identity is not None:
        if identity.domain:
            return identity.domain
        if identity.name:
            return identity.name
        if identity.crm_account_id:
            return f"CRM account {identity.crm_account_id}"
    return key_label(account_key)


def party(entry: Entry) -> str:
    """How a rival is described to the other side."""
    if entry.kind == "named_account":
        return "a direct named-account claim"
    if entry.kind == "opportunity":
        return "a direct opportunity claim"
    return "another partner's registration"


def held_by(entry: Entry) -> str:
    """How a rival holds the account: protected once approved; while in review it only
    claims it (a sentence must not call a pending claim a protection)."""
    return "is protected by" if entry.status == "approved" else "is claimed (in review) by"


def scope(entry: Entry) -> str:
    if entry.products is None:
        return ""
    return " for " + ", ".join(sorted(entry.products))


def tag(rule: str, policy_version: int) -> str:
    return f"({rule}, policy v{policy_version})"


_MINUTE_US = 60_000_000
_DAYS: dict[int, str] = {}
"""A bounded memo of `day` by minute: deadlines of one batch fall in a few minutes, and
the sentence is built for nearly every decision. A cache, never state."""


def day(us: int) -> str:
    minute = us // _MINUTE_US
    found = _DAYS.get(minute)
    if found is None:
        if len(_DAYS) >= 4096:
            _DAYS.clear()
        found = _DAYS[minute] = from_us(minute * _MINUTE_US).isoformat(" ", "minutes")[:16] \
            + " UTC"
    return found


def protected_until(entry: Entry) -> str:
    """"; protected until ..." when the entry has a time-limited protection."""
    if entry.status != "approved" or entry.protected_until is None:
        return ""
    return f"; protected until {day(entry.protected_until)}"


def precedence_words(policy: Policy) -> str:
    """The order of a line in words: the policy's precedence, a tie broken by time."""
    rules = list(policy.precedence)
    return ", ".join([*rules, "then the earlier submission"]) if rules else "submission time"


def _within_tie_window(r: Entry, c: Entry, rule: str, policy: Policy) -> bool:
    """Whether first_submitted was weighed before `rule` and found them within the window:
    only then may a sentence say so."""
    order = policy.precedence
    if "first_submitted" not in order or rule not in order:
        return False
    if order.index("first_submitted") > order.index(rule):
        return False
    return abs(r.submitted_at - c.submitted_at) <= span_us(policy.tie_window)


def approved(entry: Entry, label: str, version: int) -> str:
    until = f"; protected until {day(entry.protected_until)}" if entry.protected_until else ""
    return (
        f"Approved: no other party holds or claims the account {label}"
        f"{scope(entry)} exclusively{until} {tag('no_conflict', version)}."
    )


def non_exclusive(entry: Entry, label: str, version: int) -> str:
    return (
        f"Approved: {entry.motion} is not an exclusive motion, so it is recorded beside any "
        f"owner of the account {label}{scope(entry)} without competing with it "
        f"{tag('non_exclusive', version)}."
    )


def rejected(r: Entry, c: Entry, rule: str, label: str, policy: Policy) -> str:
    version = policy.version
    if rule == "duplicate":
        if r.party_type == "direct" and c.party_type == "direct" and r.party_id != c.party_id:
            return (
                f"Rejected: the direct team already holds {c.id} on the account {label}"
                f"{scope(c)} (another rep's claim: the direct team is one party) "
                f"{tag('duplicate', version)}."
            )
        return (
            f"Rejected: the same party already holds {c.id} on the account {label}"
            f"{scope(c)} {tag('duplicate', version)}."
        )
    if rule == "direct_named_account":
        return (
            f"Rejected: the account {label} is a named account of the direct sales team "
            f"{tag(rule, version)}."
        )
    if rule == "incumbent":
        return (
            f"Rejected: the account {label} {held_by(c)} {party(c)} whose party won this "
            f"account within the last {human_span(span_us(policy.incumbency_window))} "
            f"{tag(rule, version)}."
        )
    if rule == "tier":
        when = (f" submitted within the {human_span(span_us(policy.tie_window))} tie window"
                if _within_tie_window(r, c, rule, policy) else "")
        return (
            f"Rejected: the account {label} {held_by(c)} {party(c)}{when} by a partner "
            f"of a higher tier {tag(rule, version)}."
        )
    gap = human_span(r.submitted_at - c.submitted_at)
    return (
        f"Rejected: the account {label} {held_by(c)} {party(c)} submitted {gap} earlier "
        f"{tag(rule, version)}."
    )


def partner_inactive(status: str, version: int) -> str:
    return (
        f"Rejected: the partner's status is {status}, so it cannot hold protection "
        f"{tag('partner_inactive', version)}."
    )


def in_review(
    r: Entry, rivals: list[Entry], rule: str, label: str, dispute_id: str, owner: str,
    due_at: int, policy: Policy,
) -> str:
    # Count-free (a partner is not told how many rivals it has, nor their outcomes; the
    # structured evidence carries the detail for those allowed to see it).
    kinds = {party(c) for c in rivals}
    who = party(rivals[0]) if len(kinds) == 1 else "another party"
    where = f"dispute {dispute_id} is with {owner}, due {day(due_at)}"
    if rule == "tie":
        window = human_span(span_us(policy.tie_window))
        when = (f" (submitted within the {window} tie window)"
                if "first_submitted" in policy.precedence else "")
        return (
            f"In review: the account {label} is also claimed by {who}; nothing in the policy's "
            f"precedence ({', '.join(policy.precedence) or 'none'}) separates them{when}, "
            f"so {where} {tag('tie', policy.version)}."
        )
    if rule == "possible_duplicate":
        return (
            f"In review: the account {label} may be the same customer as an account "
            f"claimed by {who} (a near match a person must confirm); {where} "
            f"{tag(rule, policy.version)}."
        )
    why = ("an approved registration is never taken away without a person"
           if any(c.status == "approved" for c in rivals)
           else "what it outranks is itself awaiting a decision")
    return (
        f"In review: this outranks {who} on the account {label} by {rule}, but {why}, so "
        f"{where} {tag(rule, policy.version)}."
    )
