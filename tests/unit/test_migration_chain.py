"""The read-model migrations: every revision id is unique and there is one head.

Two branches once both added a "0007": Alembic then applied only one of them to a fresh
database, and the notification sender crashed on a missing column."""

from __future__ import annotations

import ast
from pathlib import Path

VERSIONS = Path(__file__).resolve().parents[2] / "shared/readmodel/migrations/versions"


def _revisions() -> dict[str, tuple[str, str | None, tuple[str, ...]]]:
    found: dict[str, tuple[str, str | None, tuple[str, ...]]] = {}
    for path in sorted(VERSIONS.glob("*.py")):
        values: dict[str, object] = {}
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) \
                    and node.targets[0].id in ("revision", "down_revision", "depends_on"):
                values[node.targets[0].id] = ast.literal_eval(node.value)
        revision = str(values["revision"])
        assert revision not in found, f"{path.name} reuses {revision} of {found[revision][0]}"
        down = values.get("down_revision")
        depends = values.get("depends_on") or ()
        found[revision] = (path.name, None if down is None else str(down),
                           (depends,) if isinstance(depends, str) else tuple(depends))
    return found


def test_migration_revisions_are_unique_and_form_one_line() -> None:
    revisions = _revisions()
    parents = [down for _, down, _ in revisions.values()]
    assert parents.count(None) == 1, "exactly one first revision"
    needed = {d for _, _, depends in revisions.values() for d in depends}
    heads = set(revisions) - set(parents) - needed
    # One head: `alembic upgrade head` reaches every revision.
    assert len(heads) == 1, f"more than one head: {sorted(heads)}"
    for name, down, _ in revisions.values():
        assert down is None or down in revisions, f"{name} revises unknown {down}"
