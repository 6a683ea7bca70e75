"""A command's identity under an `Idempotency-Key`: the same for every retry of it, so
its event id (and the id of what it creates) is the same, and a retry can find it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.registration.domain.idempotency import (
    Stored,
    Verdict,
    command_seed,
    judge,
    stranded,
)
from services.registration.handlers import CommandIdentity
from shared.events import AccountLinkReported, RegistrationWithdrawn

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_a_retry_of_the_command_has_its_identity_and_another_command_does_not() -> None:
    seed = command_seed("key:k1", "idem-1", "f" * 64, NOW)
    assert command_seed("key:k1", "idem-1", "f" * 64, NOW) == seed
    others = {command_seed("key:k2", "idem-1", "f" * 64, NOW),  # another caller
              command_seed("key:k1", "idem-2", "f" * 64, NOW),  # another key
              command_seed("key:k1", "idem-1", "e" * 64, NOW),  # another request
              command_seed("key:k1", "idem-1", "f" * 64, NOW + timedelta(days=1))}  # reused
    assert seed not in others and len(others) == 4


def test_the_commands_own_event_gets_the_id_a_retry_looks_for() -> None:
    first = CommandIdentity(command_seed("s", "k", "f", NOW), 1_764_158_400_000)
    retry = CommandIdentity(first.seed, first.first_used_ms)
    withdrawn = RegistrationWithdrawn(registration_id="reg_1", partner_id="p-1",
                                      account_key="dom:a.com", withdrawn_at=NOW,
                                      policy_version=1)
    report = AccountLinkReported(account_key="dom:a.com", alias_key="crm:1",
                                 matched_by="crm_account_id", score=1.0, registrations=(),
                                 reported_at=NOW, policy_version=1)
    ids = [first.id_for(report), first.id_for(withdrawn), first.id_for(report)]
    assert ids[1] == first.event_id == retry.event_id
    assert [retry.id_for(report), retry.id_for(withdrawn), retry.id_for(report)] == ids
    assert len(set(ids)) == 3 and all(i.startswith("evt_") and len(i) == 30 for i in ids)
    assert first.entity_id("reg") == retry.entity_id("reg") != first.entity_id("clm")
    assert first.opaque_id("dsp") == retry.opaque_id("dsp")


def test_only_a_lapsed_pending_reservation_is_stranded() -> None:
    def stored(done: bool, age: float, leased: float | None = None) -> Stored:
        created = NOW - timedelta(seconds=age)
        return Stored("f", done, created, created + timedelta(hours=24),
                      NOW - timedelta(seconds=leased) if leased is not None else None)

    renewed = stored(False, age=300, leased=10)  # running for long, lease renewed
    assert judge(renewed, "f", NOW, lease_seconds=60) is Verdict.IN_PROGRESS
    lapsed = stored(False, age=300, leased=120)
    assert judge(lapsed, "f", NOW, lease_seconds=60) is Verdict.PROCEED
    assert stranded(lapsed, NOW)
    assert not stranded(None, NOW)
    assert not stranded(stored(True, age=300), NOW)
    assert not stranded(stored(False, age=90_000), NOW)  # expired: a new command
