"""The difference between two policy documents: what an edit changed, field by field.

One pure function (no I/O, no clock) serves `GET /v1/policy/diff` and the console's policy
page. It follows how `PUT /v1/policy` merges an edit (objects merge field by field, lists and
scalars are replaced): objects are walked key by key, a list or a scalar is one value. So
each change names a dotted path (`escalation.levels`, `match.name_threshold`) and the value
before and after; a field present on one side only is `added` or `removed`. The `version`
of the documents is not a change of the policy and is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict

ChangeKind = Literal["added", "removed", "changed"]


class Change(TypedDict):
    path: str
    change: ChangeKind
    before: Any
    after: Any


_IGNORED: frozenset[str] = frozenset({"version"})


def policy_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """Every field whose value differs between `before` and `after` (JSON documents, as
    `Policy.model_dump(mode="json")` gives them), sorted by path."""
    changes: list[Change] = []
    _walk(before, after, "", changes, top=True)
    return sorted(changes, key=lambda c: c["path"])


def _walk(before: Mapping[str, Any], after: Mapping[str, Any], prefix: str,
          out: list[Change], *, top: bool = False) -> None:
    for key in sorted(set(before) | set(after)):
        if top and key in _IGNORED:
            continue
        path = f"{prefix}{key}"
        if key not in before:
            out.append(Change(path=path, change="added", before=None, after=after[key]))
        elif key not in after:
            out.append(Change(path=path, change="removed", before=before[key], after=None))
        else:
            old, new = before[key], after[key]
            if isinstance(old, Mapping) and isinstance(new, Mapping):
                _walk(old, new, f"{path}.", out)
            elif not _same(old, new):
                out.append(Change(path=path, change="changed", before=old, after=new))


def _same(a: Any, b: Any) -> bool:
    # `1 == 1.0 == True` in Python; in a policy a bool and a number are different values.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return (type(a) is type(b) and bool(a == b)) or (
        isinstance(a, int | float) and isinstance(b, int | float) and a == b)
