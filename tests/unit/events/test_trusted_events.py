"""`shared.events.trusted` builds a model without validating it: only for values that
already have their fields' exact types. The adjudicator builds its decisions that way, so
every decision of the mixed workload must be exactly what validation would have built."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adjudication"))

from adjudication_workload import generate, workload_policies

from services.adjudication.domain import (
    AdjudicationState,
    DecisionContext,
    decide,
    policy_version_of,
)
from shared.events import (
    Amount,
    ClaimDecided,
    ConflictEvidence,
    OpportunityClosed,
    ProtectionEnded,
    RegistrationDecided,
    trusted,
)

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _revalidated(model: BaseModel) -> BaseModel:
    return type(model).model_validate(
        {name: getattr(model, name) for name in type(model).model_fields})


def _same(built: BaseModel) -> None:
    validated = _revalidated(built)
    assert built == validated
    assert orjson.dumps(built.model_dump(mode="json")) \
        == orjson.dumps(validated.model_dump(mode="json"))
    assert built.model_dump_json() == validated.model_dump_json()
    for name in type(built).model_fields:  # exact types, not merely equal values (1 == 1.0)
        assert type(getattr(built, name)) is type(getattr(validated, name)), name
    assert built.model_fields_set == validated.model_fields_set


def test_every_decision_of_the_mixed_workload_is_what_validation_builds() -> None:
    _, decisions = generate(1500, seed=5)
    built = [d for d in decisions if isinstance(d, RegistrationDecided | ClaimDecided)]
    assert len(built) > 500
    assert any(d.conflicts for d in built) and any(d.credit_percent for d in built)
    assert any(isinstance(d, ClaimDecided) for d in built)
    for decision in built:
        _same(decision)
        for evidence in decision.conflicts:
            _same(evidence)


def test_every_protection_end_of_the_mixed_workload_is_what_validation_builds() -> None:
    # The workload's closes carry no amount: here every close says what it was worth.
    log, _ = generate(1500, seed=5)
    policies = workload_policies()
    state = AdjudicationState()
    ended: list[ProtectionEnded] = []
    for i, (event, at) in enumerate(log):
        if isinstance(event, OpportunityClosed):
            event = event.model_copy(update={"amount": Amount(value=Decimal("1250.50"),
                                                              currency="EUR")})
        version = policy_version_of(event)
        _, out = decide(state, event, DecisionContext(
            f"e{i}", at, policies[version] if version is not None else None))
        ended += [d for d in out if isinstance(d, ProtectionEnded)]
    assert len(ended) > 100
    assert any(e.amount for e in ended) and any(e.incumbent_until for e in ended)
    assert any(e.credit_percent for e in ended)
    assert len({e.reason for e in ended}) > 2 and len({e.status for e in ended}) > 2
    for end in ended:
        _same(end)


def test_a_trusted_model_is_frozen_hashable_and_equal_to_the_validated_one() -> None:
    evidence = trusted(ConflictEvidence, registration_id="r1", party_type="partner",
                       party_id="p1", matched_by="name", score=0.93, account_key=None,
                       confident=True)
    validated = ConflictEvidence(registration_id="r1", party_type="partner", party_id="p1",
                                 matched_by="name", score=0.93)
    assert evidence == validated and hash(evidence) == hash(validated)
    try:
        evidence.score = 1.0  # type: ignore[misc]
    except Exception as exc:  # pydantic's frozen-instance error
        assert "frozen" in str(exc).lower()
    else:
        raise AssertionError("a trusted model must stay frozen")


def test_a_call_missing_a_field_is_validated_and_gets_the_default() -> None:
    decision = trusted(ClaimDecided, claim_id="c1", kind="opportunity", rep_id="rep1",
                       account_key="dom:a.com", status="approved", rule="no_conflict",
                       policy_version=1, explanation="ok", decided_at=AT,
                       credit_percent="50")  # a str for a Decimal: validation converts it
    assert decision.flags == () and decision.conflicts == ()
    assert decision.credit_percent == Decimal("50")
    assert type(decision.credit_percent) is Decimal
