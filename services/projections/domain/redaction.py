"""What each caller may see (invariant 7): pure functions over read-model views.

A partner sees its own registrations in full. Of a competitor it learns only that the
account is protected by another party (partner or direct), for which products, and until
when: every competitor's registration id, partner id, motion and credit share is nulled,
and competitor ids are scrubbed from free text. Vendor roles (admin, integration, rep,
owner, channel manager) see everything their routes return; *which* objects a role may
read at all (a partner only its own registrations, an owner only its disputes) is decided
by the routes, not here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

Row = dict[str, Any]

ANOTHER: Final = "another party's registration"

_ID_KEYS: Final = frozenset({"registration_id", "awarded_registration_id", "claim_id"})
_ID_LIST_KEYS: Final = frozenset({"registration_ids", "added_ids", "approved_ids",
                                  "rejected_ids"})
_PARTY_KEYS: Final = frozenset({"party_id", "partner_id", "rep_id"})
_TEXT_KEYS: Final = frozenset({"explanation", "note", "reason"})


@dataclass(frozen=True, slots=True)
class Viewer:
    role: str
    subject_id: str | None = None

    @property
    def restricted(self) -> bool:
        """Partners are the only callers whose view of others is redacted."""
        return self.role == "partner"

    def is_party(self, party_type: str | None, party_id: str | None) -> bool:
        return (party_type in (None, "partner") and party_id is not None
                and party_id == self.subject_id)


def owner(row: Row, viewer: Viewer) -> Row:
    """An entry of `owners`/`incumbents` in an ownership answer."""
    if not viewer.restricted or viewer.is_party(row.get("party_type"), row.get("party_id")):
        return row
    hidden = dict(row)
    for key in ("party_id", "registration_id", "motion", "credit_percent"):
        if key in hidden:
            hidden[key] = None
    return hidden


def conflicts(items: list[Row], viewer: Viewer) -> list[Row]:
    """Decision evidence: a competitor's registration and party are nulled."""
    if not viewer.restricted:
        return items
    out = []
    for item in items:
        if viewer.is_party(item.get("party_type"), item.get("party_id")):
            out.append(item)
        else:
            out.append({**item, "registration_id": None, "party_id": None})
    return out


def registration(view: Row, viewer: Viewer) -> Row:
    """A registration the viewer may read (its own, for a partner)."""
    decision = view.get("decision")
    if not viewer.restricted or not decision:
        return view
    foreign = {c.get("registration_id") for c in decision.get("conflicts", [])
               if not viewer.is_party(c.get("party_type"), c.get("party_id"))} - {None}
    return {**view, "decision": {
        **decision,
        "conflicts": conflicts(decision.get("conflicts", []), viewer),
        "explanation": scrub(decision.get("explanation"), foreign),
    }}


def scrub(text: Any, foreign_ids: Iterable[str]) -> Any:
    """Free text with every competitor id replaced by a neutral phrase."""
    if not isinstance(text, str):
        return text
    for rid in sorted(foreign_ids, key=len, reverse=True):
        if rid:
            text = text.replace(rid, ANOTHER)
    return text


def _redact(value: Any, viewer: Viewer, own: frozenset[str], foreign: frozenset[str]) -> Any:
    if isinstance(value, list):
        return [_redact(v, viewer, own, foreign) for v in value]
    if not isinstance(value, dict):
        return value
    party = next((value[k] for k in ("party_id", "partner_id", "rep_id") if k in value), None)
    party_type = value.get("party_type", "direct" if "rep_id" in value else None)
    foreign_party = party is not None and not viewer.is_party(party_type, party)
    out: Row = {}
    for key, item in value.items():
        if key in _ID_KEYS and isinstance(item, str):
            out[key] = item if item in own and not foreign_party else None
        elif key in _ID_LIST_KEYS and isinstance(item, list):
            out[key] = [i if i in own else None for i in item]
        elif key == "splits" and isinstance(item, list):
            out[key] = [s for s in item if isinstance(s, dict) and s.get("registration_id") in own]
        elif key in _PARTY_KEYS and foreign_party:
            out[key] = None
        elif key in ("registrations", "evidence", "conflicts") and isinstance(item, list):
            out[key] = [_redact(i, viewer, own, foreign) for i in item
                        if key != "registrations" or (isinstance(i, dict)
                                                      and i.get("registration_id") in own)]
        elif key in _TEXT_KEYS:
            out[key] = scrub(item, foreign)
        else:
            out[key] = _redact(item, viewer, own, foreign)
    return out


def mentioned_ids(value: Any) -> set[str]:
    """Every registration or claim id a view mentions (to ask which are the viewer's)."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= mentioned_ids(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in _ID_KEYS and isinstance(item, str):
                found.add(item)
            elif key in _ID_LIST_KEYS and isinstance(item, list):
                found.update(i for i in item if isinstance(i, str))
            else:
                found |= mentioned_ids(item)
    return found


def data(value: Any, viewer: Viewer, own_ids: Iterable[str],
         mentioned: Iterable[str] | None = None) -> Any:
    """Any view (a timeline entry's data, a dispute): ids not in `own_ids` are nulled,
    competitor parties nulled, splits reduced to the viewer's own share, text scrubbed."""
    if not viewer.restricted:
        return value
    own = frozenset(own_ids)
    every = set(mentioned) if mentioned is not None else mentioned_ids(value)
    return _redact(value, viewer, own, frozenset(every - own))
