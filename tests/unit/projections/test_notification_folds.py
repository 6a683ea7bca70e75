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


def test_each_partner_hears_only_its_own_registrations_outcome() -> None:
    from decimal import Decimal

    from shared.events.disputes import Split
    event = DisputeResolved(
        dispute_id="d-9", account_key="dom:acme.com", outcome="split",
        registration_ids=("r-1", "r-2", "r-3", "c-1"), level=1, resolved_at=AT,
        rule="split", policy_version=1, approved_ids=("r-1", "r-2"), rejected_ids=("r-3",),
        splits=(Split(registration_id="r-1", percent=Decimal("60")),
                Split(registration_id="r-2", percent=Decimal("40"))),
        note="p-b brought r-2", explanation="r-1 (p-a) and r-2 (p-b) share; r-3 (p-c) loses")
    registrations = {"r-1": {"partner_id": "p-a"}, "r-2": {"partner_id": "p-b"},
                     "r-3": {"partner_id": "p-c"}}  # c-1: a direct claim, no partner
    rows = notifications.rows("ev-9", AT, event, None, {"owner_id": "cm-1"}, registrations)
    partners = {r["recipient_id"]: r for r in rows if r["recipient_kind"] == "partner"}
    assert set(partners) == {"p-a", "p-b", "p-c"}
    assert all(r["channel"] == "webhook" and r["type"] == "dispute.resolved"
               for r in partners.values())
    assert partners["p-a"]["payload"]["data"]["registrations"] == [
        {"id": "r-1", "status": "approved", "credit_percent": "60"}]
    assert partners["p-c"]["payload"]["data"]["registrations"] == [
        {"id": "r-3", "status": "rejected", "credit_percent": None}]
    for me, others in (("p-a", ("r-2", "r-3", "p-b", "p-c")),
                       ("p-b", ("r-1", "r-3", "p-a", "p-c")),
                       ("p-c", ("r-1", "r-2", "p-a", "p-b", "c-1"))):
        text = str(partners[me]["payload"])
        assert not [o for o in others if o in text], (me, text)
    again = notifications.rows("ev-9", AT, event, None, {"owner_id": "cm-1"}, registrations)
    assert [r["id"] for r in again] == [r["id"] for r in rows]
