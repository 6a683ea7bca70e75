"""The notifications fold: who is told what, with ids stable across replays."""

from __future__ import annotations

from datetime import UTC, datetime

from services.projections.domain import notifications
from shared.events import DisputeEscalated, DisputeResolved

AT = datetime(2025, 7, 7, 13, 30, tzinfo=UTC)


def test_an_escalation_tells_the_new_owner_and_the_previous_one() -> None:
    event = DisputeEscalated(
        dispute_id="d-1", account_key="dom:acme.com", from_level=1, to_level=2,
        owner_id="dir-1", breached_deadline=AT, due_at=AT, policy_version=1,
        explanation="x")
    for dispute in ({"owners": ["cm-1"]}, {"owners": ["cm-1", "dir-1"]}):  # before / after
        rows = notifications.rows("ev-1", AT, event, None, dispute)
        assert {(r["recipient_id"], r["channel"], r["payload"]["data"]["role"])
                for r in rows} == {("dir-1", "webhook", "new_owner"),
                                   ("dir-1", "email", "new_owner"),
                                   ("cm-1", "webhook", "previous_owner"),
                                   ("cm-1", "email", "previous_owner")}
        assert all(r["type"] == "dispute.escalated" and r["status"] == "pending"
                   for r in rows)
    again = notifications.rows("ev-1", AT, event, None, {"owners": ["cm-1"]})
    assert [r["id"] for r in again] == [r["id"] for r in rows]
    assert len({r["id"] for r in rows}) == 4


def test_a_resolution_tells_the_owner_and_the_payload_stays_small() -> None:
    event = DisputeResolved(
        dispute_id="d-1", account_key="dom:acme.com", outcome="award",
        registration_ids=("r-1", "r-2"), level=1, resolved_at=AT, rule="award",
        policy_version=1, explanation="y" * 30_000)
    rows = notifications.rows("ev-2", AT, event, None, {"owner_id": "cm-1"})
    assert {r["recipient_id"] for r in rows} == {"cm-1"}
    body = rows[0]["payload"]
    assert body["type"] == "dispute.resolved" and body["data"]["account_key"] == "dom:acme.com"
    assert "explanation" not in body["data"]["dispute"]
    assert notifications.rows("ev-2", AT, event, None, None) == []
