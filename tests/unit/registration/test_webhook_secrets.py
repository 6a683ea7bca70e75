"""Webhook secrets on PUT /v1/owners and /v1/partners: generation, rotation, retirement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.projections.notifications import signing_secrets
from services.registration.adapters.reference import active_secrets, webhook_secrets

AT = datetime(2026, 1, 1, tzinfo=UTC)
OLD = "whsec_" + "A" * 44


def test_owners_always_have_a_secret_partners_once_they_have_a_url() -> None:
    assert webhook_secrets(None, {"name": "cm"}, at=AT, grace_seconds=60,
                           required=True)["webhook_secret"].startswith("whsec_")
    assert webhook_secrets(None, {"name": "p"}, at=AT, grace_seconds=60,
                           required=False)["webhook_secret"] is None
    assert webhook_secrets(None, {"webhook_url": "https://h/x"}, at=AT, grace_seconds=60,
                           required=False)["webhook_secret"].startswith("whsec_")
    kept = webhook_secrets({"webhook_secret": OLD}, {"webhook_url": "https://h/y"}, at=AT,
                           grace_seconds=60, required=False)
    assert kept["webhook_secret"] == OLD


def test_rotation_keeps_the_old_secret_for_the_grace_period_then_retires_it() -> None:
    rotated = webhook_secrets({"webhook_secret": OLD}, {"rotate_secret": True}, at=AT,
                              grace_seconds=60, required=True)
    assert "rotate_secret" not in rotated
    new = rotated["webhook_secret"]
    assert new != OLD and rotated["webhook_previous_secret"] == OLD
    assert rotated["webhook_previous_secret_until"] == AT + timedelta(seconds=60)
    assert [s["secret"] for s in active_secrets(rotated, AT)] == [new, OLD]
    assert signing_secrets(rotated, AT) == [new, OLD]
    later = AT + timedelta(seconds=61)
    assert [s["secret"] for s in active_secrets(rotated, later)] == [new]
    assert signing_secrets(rotated, later) == [new]
    # A plain PUT keeps the rotation going; retiring ends it.
    plain = webhook_secrets(rotated, {}, at=AT, grace_seconds=60, required=True)
    assert plain["webhook_previous_secret"] == OLD
    retired = webhook_secrets(rotated, {"retire_previous_secret": True}, at=AT,
                              grace_seconds=60, required=True)
    assert retired["webhook_secret"] == new and retired["webhook_previous_secret"] is None
    # A secret given without rotation replaces at once (e.g. a leaked secret).
    given = "whsec_" + "B" * 44
    replaced = webhook_secrets(rotated, {"webhook_secret": given}, at=AT, grace_seconds=60,
                               required=True)
    assert (replaced["webhook_secret"], replaced["webhook_previous_secret"]) == (given, None)
