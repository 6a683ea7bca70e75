"""The read model's migrations: two branches (the registration edge's tables from 0003, the
projections' from 0001 on), each one line of unique revisions. Two changes once both wrote
a `0007` on the projections branch; one of them was then never applied (`dealreg dev` did
not start: a column of the other was missing)."""

from __future__ import annotations

import re
from pathlib import Path

from alembic.script import ScriptDirectory

from shared.readmodel.store import MIGRATIONS, alembic_config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def test_the_migrations_have_one_head_and_unique_revision_ids() -> None:
    files = sorted(Path(MIGRATIONS, "versions").glob("[0-9]*.py"))
    ids = [re.search(r'^revision = "([^"]+)"', f.read_text(), re.M) for f in files]
    revisions = [m.group(1) for m in ids if m]
    assert len(revisions) == len(files) and len(set(revisions)) == len(revisions), revisions
    # The edge's branch ends at 0003; every later revision follows the one before it.
    assert sorted(_scripts().get_heads()) == ["0003", max(revisions)], _scripts().get_heads()


def test_each_file_is_named_for_its_revision() -> None:
    for revision in _scripts().walk_revisions():
        assert Path(revision.path).name.startswith(f"{revision.revision}_"), revision.path
