"""The policy document: ISO 8601 durations, defaults and validation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from shared.policy import Policy, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT5S", timedelta(seconds=5)),
        ("PT24H", timedelta(hours=24)),
        ("P90D", timedelta(days=90)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("P2W", timedelta(days=14)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("P1Y", timedelta(days=365)),
        ("P3M", timedelta(days=90)),
    ],
)
def test_iso_durations_parse_with_years_and_months_converted(
    text: str, expected: timedelta
) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "-P1D", "1D", "P1.5DT2H", "PT5X", "P1W2D"])
def test_malformed_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_durations_round_trip_through_their_canonical_spelling() -> None:
    for text in ("PT5S", "P90D", "P1DT2H30M", "PT0.5S", "PT0S"):
        assert format_duration(parse_duration(text)) == text


def test_default_policy_matches_the_published_example() -> None:
    policy = Policy.default()
    dumped = policy.model_dump(mode="json")
    assert dumped["scope"] == "account_product"
    assert dumped["protection_period"] == "P90D"
    assert dumped["extension"] == {"period": "P30D", "max_extensions": 1, "window": "P30D"}
    assert dumped["tie_window"] == "P1D"
    assert dumped["precedence"] == ["direct_named_account", "incumbent", "first_submitted",
                                    "tier"]
    assert dumped["match"] == {"name_threshold": 0.9, "review_band": 0.1, "name_only": "review",
                                "crm_ids": "any_spelling", "rejected_names": "unfiled",
                                "countryless_names": "ask"}
    assert dumped["escalation"]["calendar"] is None
    assert dumped["escalation"]["on_final_breach"] == "precedence"
    assert (dumped["on_release"], dumped["release_window"]) == ("promote_next", "P30D")
    assert dumped["contest_window"] == "P14D"
    assert (dumped["dispute_protection"], dumped["dispute_grace"]) == ("extend", "P14D")
    assert Policy.model_validate(dumped) == policy


def test_calendar_and_fractional_reminder_are_accepted() -> None:
    policy = Policy.model_validate({
        "version": 3,
        "escalation": {
            "calendar": {"timezone": "Europe/Berlin", "working_days": [5, 1, 2],
                         "hours": "08:30-16:00", "holidays": "de-by"},
            "levels": [{"owner_id": "cm-1", "sla": "PT5S"}],
            "reminder_before": 0.25,
        },
    })
    calendar = policy.escalation.calendar
    assert calendar is not None
    assert calendar.working_days == (1, 2, 5)
    assert calendar.holidays == "DE-BY"
    assert calendar.day_minutes == (510, 960)
    assert policy.escalation.reminder_before == 0.25


@pytest.mark.parametrize(
    "document",
    [
        {"precedence": ["first_submitted", "loudest"]},
        {"precedence": ["tier", "tier"]},
        {"tier_order": ["platinum", "gold"]},
        {"escalation": {"levels": []}},
        {"escalation": {"calendar": {"working_days": [0, 1]}}},
        {"escalation": {"calendar": {"working_days": []}}},
        {"escalation": {"calendar": {"hours": "17:00-09:00"}}},
        {"escalation": {"calendar": {"hours": "9am-5pm"}}},
        {"escalation": {"calendar": {"holidays": "XX"}}},
        {"escalation": {"calendar": {"timezone": "Mars/Olympus"}}},
        {"escalation": {"reminder_before": 1.5}},
        {"escalation": {"levels": [{"owner_id": "a", "sla": "PT0S"}]}},
        {"match": {"name_threshold": 0.8, "review_band": 0.8}},
        {"scope": "galaxy"},
        {"protection_period": "PT0S"},
        {"surprise": True},
    ],
)
def test_invalid_policies_are_refused(document: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Policy.model_validate(document)


def test_tier_rank_orders_known_tiers_and_puts_unknown_last() -> None:
    policy = Policy.default()
    assert policy.tier_rank("platinum") < policy.tier_rank("gold") < policy.tier_rank("registered")
    assert policy.tier_rank("mystery") > policy.tier_rank("registered")


def test_a_document_published_before_a_rule_existed_keeps_its_old_meaning() -> None:
    # Published documents are whole dumps: one without the issue-12 rules predates them,
    # and a replay must apply what was in force then (invariant 3).
    old = Policy.default().model_dump(mode="json")
    for key in ("on_release", "contest_window", "dispute_protection", "direct_team",
                "reregistration_cooloff"):
        del old[key]
    del old["extension"]["window"]
    before = Policy.from_published(old)
    assert (before.on_release, before.dispute_protection, before.direct_team) == (
        "free", "off", "rivals")
    assert before.extension.window is None
    assert before.contest_window.days == 36500
    assert before.reregistration_cooloff is None  # no cool-off before the rule
    # A current document reads back exactly as published.
    now = Policy.default()
    assert Policy.from_published(now.model_dump(mode="json")) == now


def test_a_document_from_before_countryless_names_reads_as_hold() -> None:
    """Session 29: `match.countryless_names` is `ask` by default, but a document published
    before the option (no such key) meant `hold` -- a name filed without a country was
    weighed against every later filing of it -- so an old log replays as it decided."""
    assert Policy.default().match.countryless_names == "ask"
    old = Policy.default().model_dump(mode="json")
    del old["match"]["countryless_names"]
    assert Policy.from_published(old).match.countryless_names == "hold"
    del old["match"]
    assert Policy.from_published(old).match.countryless_names == "hold"
    with pytest.raises(ValidationError):
        Policy.model_validate({"match": {"countryless_names": "maybe"}})
