"""Exhaustive dispatch: every event type in the catalogue is handled or explicitly ignored by
the adjudicator and by every projection model, and a type that is neither fails loudly."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from typing import ClassVar

import pytest

from services.adjudication.domain import AdjudicationState, DecisionContext, decide
from services.projections.domain import batch, timeline
from services.projections.domain.batch import MODELS, NOTIFICATIONS, Batch, Item, Loaded
from shared.events import CATALOGUE, DomainEvent
from shared.events.base import UnhandledEventType

decide_module = importlib.import_module("services.adjudication.domain.decide")
EVERY_TYPE = frozenset(CATALOGUE.values())
CONSUMERS = [*MODELS, NOTIFICATIONS]


class Unforeseen(DomainEvent):
    """A type nobody wrote a rule for (deliberately not in the catalogue)."""

    TYPE: ClassVar[str] = "dealreg.test.unforeseen.v1"
    account_key: str = "dom:example.com"


def test_the_adjudicator_handles_or_ignores_every_catalogue_type() -> None:
    handled, ignored = decide_module.HANDLED, decide_module.IGNORED
    assert not handled & ignored, f"both handled and ignored: {handled & ignored}"
    missing = EVERY_TYPE - handled - ignored
    assert not missing, f"the adjudicator has no rule for {sorted(t.TYPE for t in missing)}"
    assert (handled | ignored) <= EVERY_TYPE


@pytest.mark.parametrize("model", CONSUMERS)
def test_every_projection_handles_or_ignores_every_catalogue_type(model: str) -> None:
    handled, ignored = batch.handled(model), batch.IGNORED[model]
    assert not handled & ignored, f"{model}: both handled and ignored: {handled & ignored}"
    missing = EVERY_TYPE - handled - ignored
    assert not missing, f"{model} has no rule for {sorted(t.TYPE for t in missing)}"
    assert (handled | ignored) <= EVERY_TYPE


def test_the_adjudicator_fails_loudly_on_a_type_it_has_no_rule_for() -> None:
    state = AdjudicationState()
    with pytest.raises(UnhandledEventType, match="Unforeseen"):
        decide(state, Unforeseen(), DecisionContext("evt_1", datetime(2026, 1, 5, tzinfo=UTC)))


def test_the_projections_fail_loudly_on_a_type_they_have_no_rule_for() -> None:
    item = Item("evt_1", datetime(2026, 1, 5, tzinfo=UTC), Unforeseen(),
                frozenset(CONSUMERS))
    with pytest.raises(UnhandledEventType, match="Unforeseen"):
        Batch(Loaded()).fold(item)
    with pytest.raises(UnhandledEventType, match="Unforeseen"):
        timeline.entries("evt_1", item.time, item.event)
