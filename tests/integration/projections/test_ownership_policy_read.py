"""The ownership look-up reads the current policy with its other statements (one driver
hop, `ownership_reader.current_policy`), on a real SQLite read model: it follows every
newly published document (the parsed policy is kept only while the stored document is
the same), fails closed on a document it cannot read, and floors a partner's name score
at the policy's `match.name_threshold`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, insert

from services.projections.adapters.ownership_reader import Question, current_policy, look_up
from services.registration.adapters.tables import ref_policies
from shared.policy import Policy
from shared.readmodel.schema import account_name_keys, account_names
from shared.readmodel.store import create_engine as create_async_engine
from shared.readmodel.store import migrate


async def _store(tmp_path: Path) -> Engine:
    path = tmp_path / "rm.sqlite3"
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    await engine.dispose()
    return create_engine(f"sqlite:///{path}")


def _publish(engine: Engine, version: int, document: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(ref_policies).values(
            version=version, document=document, published_at=datetime.now(UTC),
            published_by="test"))


def _document(name_threshold: float, crm_ids: str) -> dict[str, Any]:
    policy = Policy.default(1)
    document = policy.model_dump(mode="json")
    document["match"] = {**document["match"], "name_threshold": name_threshold,
                         "crm_ids": crm_ids}
    return document


async def test_the_look_up_reads_each_newly_published_policy(tmp_path: Path) -> None:
    engine = await _store(tmp_path)
    with engine.connect() as conn:
        assert current_policy(conn) == Policy.default()  # before any publication
    _publish(engine, 1, _document(0.95, "salesforce"))
    with engine.connect() as conn:
        first = current_policy(conn)
        assert (first.match.name_threshold, first.match.crm_ids) == (0.95, "salesforce")
        assert current_policy(conn) is first  # the same document: parsed once
    _publish(engine, 2, _document(0.8, "exact"))
    with engine.connect() as conn:
        second = current_policy(conn)
    assert (second.match.name_threshold, second.match.crm_ids) == (0.8, "exact")


async def test_an_unreadable_policy_document_fails_closed(tmp_path: Path) -> None:
    engine = await _store(tmp_path)
    _publish(engine, 1, {"match": {"name_threshold": "not a number"}})
    with engine.connect() as conn:
        closed = current_policy(conn).match
    assert (closed.name_threshold, closed.review_band, closed.crm_ids) == (1.0, 0.0, "exact")


async def test_a_partner_name_look_up_is_floored_at_the_policy_threshold(
        tmp_path: Path) -> None:
    """A name scoring between the asked `min_score` and the policy's threshold matches for
    staff and, with `floor_min_score`, not for a partner."""
    engine = await _store(tmp_path)
    _publish(engine, 1, _document(0.99, "exact"))
    with engine.begin() as conn:
        conn.execute(insert(account_names).values(country="US", name="northwind traders",
                                                  account_key="dom:northwind.com"))
        for key in ("northwind", "traders"):
            conn.execute(insert(account_name_keys).values(country="US", key=key,
                                                          name="northwind traders"))
    asked = Question(name="Northwind Trader", country="US", min_score=0.9, by_policy=True)
    now = datetime.now(UTC)
    with engine.connect() as conn:
        staff = look_up(conn, asked, now)
        partner = look_up(conn, Question(name="Northwind Trader", country="US",
                                         min_score=0.9, by_policy=True,
                                         floor_min_score=True, partner_id="p-1"), now)
    assert staff.account_key == "dom:northwind.com"
    assert 0.9 <= staff.score < 0.99
    assert partner.account_key is None
