"""`shared.policy_diff`: what changed between two policy versions, field by field."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shared.policy import Policy
from shared.policy_diff import Change, policy_diff


def _default() -> dict[str, Any]:
    return Policy.default().model_dump(mode="json")


def test_the_same_document_has_no_changes_and_the_version_is_not_a_change() -> None:
    before = _default()
    after = {**copy.deepcopy(before), "version": before["version"] + 5}
    assert policy_diff(before, after) == []


def test_an_edit_is_named_by_its_dotted_path_with_both_values() -> None:
    before = _default()
    after = copy.deepcopy(before)
    after["tie_window"] = "PT0S"
    after["match"]["name_threshold"] = 0.8
    after["escalation"]["levels"] = [{"owner_id": "cm-9", "sla": "P1D"}]
    changes = policy_diff(before, after)
    assert [c["path"] for c in changes] == ["escalation.levels", "match.name_threshold",
                                           "tie_window"]
    by_path = {c["path"]: c for c in changes}
    assert by_path["tie_window"] == Change(path="tie_window", change="changed",
                                           before=before["tie_window"], after="PT0S")
    # A list is one value (as `PUT /v1/policy` replaces lists): the whole list, both sides.
    assert by_path["escalation.levels"]["before"] == before["escalation"]["levels"]
    assert by_path["escalation.levels"]["after"] == [{"owner_id": "cm-9", "sla": "P1D"}]


def test_fields_on_one_side_only_are_added_or_removed() -> None:
    changes = policy_diff({"a": {"x": 1}, "gone": True}, {"a": {"x": 1, "y": 2}, "new": [1]})
    assert changes == [
        Change(path="a.y", change="added", before=None, after=2),
        Change(path="gone", change="removed", before=True, after=None),
        Change(path="new", change="added", before=None, after=[1]),
    ]


def test_a_bool_is_not_the_number_it_equals_in_python() -> None:
    assert policy_diff({"f": True}, {"f": 1}) == [
        Change(path="f", change="changed", before=True, after=1)]
    assert policy_diff({"f": [0]}, {"f": [False]}) != []
    assert policy_diff({"f": 1}, {"f": 1.0}) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
    max_leaves=8)
documents = st.dictionaries(st.sampled_from(["p", "q", "r", "version"]), json_values,
                            max_size=4)


def _apply(document: dict[str, Any], changes: list[Change]) -> dict[str, Any]:
    out = copy.deepcopy(document)
    for change in changes:
        *parents, leaf = change["path"].split(".")
        node = out
        for part in parents:
            node = node[part]
        if change["change"] == "removed":
            del node[leaf]
        else:
            node[leaf] = change["after"]
    return out


@given(documents, documents)
def test_applying_the_changes_to_the_first_gives_the_second(
        before: dict[str, Any], after: dict[str, Any]) -> None:
    changes = policy_diff(before, after)
    strip = {"version"}
    patched = _apply({k: v for k, v in before.items() if k not in strip}, changes)
    assert patched == {k: v for k, v in after.items() if k not in strip}
    assert policy_diff(before, before) == []
    assert all(c["path"].split(".")[0] != "version" for c in changes)
