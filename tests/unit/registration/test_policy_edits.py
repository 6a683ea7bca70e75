"""`PUT /v1/policy` edits: a body merged onto the current version, and the mistakes refused."""

from __future__ import annotations

from services.registration.domain import policy_edits
from shared.policy import Policy


def _edit(current: Policy, body: dict[str, object]) -> Policy:
    return Policy.model_validate(
        policy_edits.merged_document(current, Policy.model_validate(body)))


def test_omitted_fields_keep_the_current_values_nested_ones_too() -> None:
    current = Policy.model_validate({"version": 3, "tie_window": "PT1H",
                                     "extension": {"max_extensions": 4},
                                     "escalation": {"on_final_breach": "keep_open"}})
    edited = _edit(current, {"extension": {"period": "P7D"},
                             "escalation": {"calendar": None}})
    assert edited.tie_window == current.tie_window
    assert (edited.extension.period.days, edited.extension.max_extensions) == (7, 4)
    assert edited.escalation.on_final_breach == "keep_open"
    assert edited.escalation.levels == current.escalation.levels


def test_lists_are_replaced_whole_and_an_explicit_null_sets_null() -> None:
    current = Policy.model_validate({"reregistration_cooloff": "P10D"})
    edited = _edit(current, {"exclusive_motions": ["resell"], "reregistration_cooloff": None})
    assert edited.exclusive_motions == ("resell",)
    assert edited.reregistration_cooloff is None


def test_empty_motion_and_precedence_lists_are_refused() -> None:
    edited = _edit(Policy.default(), {"exclusive_motions": [], "precedence": []})
    assert [e["field"] for e in policy_edits.edit_errors(edited)] == [
        "exclusive_motions", "precedence"]
    assert policy_edits.edit_errors(Policy.default()) == []


def test_only_owners_typed_anew_are_checked() -> None:
    current = Policy.default()  # cm-1, dir-1
    body = Policy.model_validate({"escalation": {"levels": [
        {"owner_id": "cm-1", "sla": "P1D"}, {"owner_id": "cm-tyop", "sla": "P1D"}]}})
    assert policy_edits.named_owners(current, body) == [
        ("escalation.levels.1.owner_id", "cm-tyop")]
    assert policy_edits.named_owners(current, Policy.model_validate({"tie_window": "PT1H"})
                                     ) == []
