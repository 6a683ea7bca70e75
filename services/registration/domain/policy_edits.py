"""What `PUT /v1/policy` publishes: the body merged onto the version in force, and the
operator mistakes refused before anything is appended.

- **Merge, not reset.** A body names only what changes: omitted fields keep the current
  version's values (objects merge field by field; lists and scalars are replaced as a
  whole; an explicit `null` sets null). Before this, a partial body silently reset every
  other field to its default. To return to the defaults, send them: `GET /v1/policy/1` is
  the default document. The merge is onto the newest version read from the store, and is
  published only as the version after it: an edit published meanwhile makes it a 409
  (retry), never a lost update.
- **Empty lists are refused** (422): `exclusive_motions: []` makes every motion
  non-exclusive (nobody is ever protected) and `precedence: []` leaves every rival pair
  tied; both are typos far more often than intent.
- **Escalation owners must exist** (422 naming the unknown ones) when the body names the
  `escalation.levels`: a dispute assigned to nobody is never worked. The built-in default
  policy (owners `cm-1`, `dir-1`) is published by the system, not through this check, and
  owners the current version names already (inherited, or sent again unchanged) are not
  re-checked: only ids typed anew are.
"""

from __future__ import annotations

from typing import Any

from shared.policy import Policy

Errors = list[dict[str, str]]


def _merge(current: Any, given: Any) -> Any:
    if isinstance(current, dict) and isinstance(given, dict):
        out = dict(current)
        for key, value in given.items():
            out[key] = _merge(current.get(key), value)
        return out
    return given


def merged_document(current: Policy, body: Policy) -> dict[str, Any]:
    """The document to publish: `body`'s explicitly given fields over `current`."""
    given = body.model_dump(mode="json", exclude_unset=True, exclude={"version"})
    base = current.model_dump(mode="json", exclude={"version"})
    merged: dict[str, Any] = _merge(base, given)
    return merged


def edit_errors(policy: Policy) -> Errors:
    """Field errors of a merged policy that validates but cannot be what was meant."""
    errors: Errors = []
    if not policy.exclusive_motions:
        errors.append({"field": "exclusive_motions", "message":
                       "must name at least one motion: an empty list makes every motion "
                       "non-exclusive, so no registration is ever protected"})
    if not policy.precedence:
        errors.append({"field": "precedence", "message":
                       "must name at least one rule: an empty list leaves every pair of "
                       "rivals tied, so every conflict goes to a person"})
    return errors


def named_owners(current: Policy, body: Policy) -> list[tuple[str, str]]:
    """(field, owner id) of every escalation owner the body itself names that the current
    version does not name already: the ids an operator typed anew."""
    if "escalation" not in body.model_fields_set \
            or "levels" not in body.escalation.model_fields_set:
        return []
    known = {level.owner_id for level in current.escalation.levels}
    return [(f"escalation.levels.{i}.owner_id", level.owner_id)
            for i, level in enumerate(body.escalation.levels) if level.owner_id not in known]
