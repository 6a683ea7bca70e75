"""The pure parts of the owner's and manager's screens: the resolve form's body, aging
buckets, due times in business time, the queue's poll digest, form dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.console.ops import account_name, day_start, event_label
from services.console.owner import (
    QueueFilters,
    bucket_of,
    due_of,
    queue_digest,
    resolution_body,
    span_text,
)
from shared.policy import BusinessCalendar

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)   # a Thursday, 10:00 in New York


def test_each_outcome_of_the_form_becomes_the_api_body_it_names() -> None:
    ids = ["reg_a", "reg_b"]
    notes = {"note": "internal", "partner_note": "  for partners "}
    assert resolution_body({"outcome": "award", "winner": "reg_b", **notes}, ids) == {
        "outcome": "award", "registration_id": "reg_b", "note": "internal",
        "partner_note": "for partners"}
    assert resolution_body({"outcome": "award_products", "award__analytics": "reg_a",
                            "award__crm": "reg_b", "award__storage": ""}, ids) == {
        "outcome": "award", "awards": {"analytics": "reg_a", "crm": "reg_b"}, "note": ""}
    assert resolution_body({"outcome": "split", "percent__reg_a": "60.5",
                            "percent__reg_b": " 39.5 ", "percent__reg_x": "100"}, ids) == {
        "outcome": "split", "note": "",
        "splits": [{"registration_id": "reg_a", "percent": "60.5"},
                   {"registration_id": "reg_b", "percent": "39.5"}]}
    for outcome in ("co_sell", "reject_all", "distinct"):
        assert resolution_body({"outcome": outcome, "winner": "reg_a"}, ids) == {
            "outcome": outcome, "note": ""}
    # Not a number: sent as typed, so the API's problem names the field.
    assert resolution_body({"outcome": "split", "percent__reg_a": "half"}, ids)[
        "splits"] == [{"registration_id": "reg_a", "percent": "half"}]
    # An award without a winner is sent without one: the API answers why.
    assert "registration_id" not in resolution_body({"outcome": "award"}, ids)


def test_aging_buckets_have_no_gaps_and_no_overlaps() -> None:
    assert bucket_of((NOW - timedelta(hours=23)).isoformat(), NOW) == "fresh"
    assert bucket_of((NOW - timedelta(days=1)).isoformat(), NOW) == "days"
    assert bucket_of((NOW - timedelta(days=3)).isoformat(), NOW) == "week"
    assert bucket_of((NOW - timedelta(days=7, seconds=1)).isoformat(), NOW) == "old"
    assert bucket_of(None, NOW) is None
    assert bucket_of((NOW + timedelta(minutes=5)).isoformat(), NOW) == "fresh"  # clock skew


def test_a_due_time_shows_wall_clock_and_working_time_left_or_overdue() -> None:
    calendar = BusinessCalendar.model_validate({
        "timezone": "America/New_York", "working_days": [1, 2, 3, 4, 5],
        "hours": "09:00-17:00", "holidays": "US"})
    # From Thursday 2026-11-26 10:00 (Thanksgiving: no working time) to Monday 10:00 in
    # New York: Friday's 8 hours and Monday's first one.
    due = due_of("2026-11-30T15:00:00Z", NOW, calendar)
    assert (due.overdue, due.left, due.working_left) == (False, "4d 0h left", "9h 00m")
    assert due_of("2026-11-30T15:00:00Z", NOW, None).working_left is None
    late = due_of("2026-11-26T14:30:00Z", NOW, calendar)
    assert (late.overdue, late.left, late.working_left) == (True, "overdue by 30m", None)
    assert due_of(None, NOW, calendar).at is None
    assert span_text(90 * 60_000_000) == "1h 30m"


def test_the_poll_digest_changes_with_what_the_queue_shows_only() -> None:
    item = {"id": "dsp_1", "level": 1, "owner_id": "own", "status": "open",
            "due_at": "2026-11-30T15:00:00Z", "acknowledged_at": None, "reason": "tie"}
    digest = queue_digest([item])
    assert queue_digest([dict(item)]) == digest
    assert queue_digest([{**item, "explanation": "reworded"}]) == digest
    for change in ({"level": 2}, {"acknowledged_at": "2026-11-26T15:00:00Z"},
                   {"due_at": "2026-12-01T15:00:00Z"}, {"owner_id": "other"}):
        assert queue_digest([{**item, **change}]) != digest
    assert queue_digest([item, {**item, "id": "dsp_2"}]) != digest
    assert queue_digest([]) != digest


def test_queue_filters_keep_only_known_values() -> None:
    filters = QueueFilters.of({"level": "2", "ack": "no", "bucket": "week", "overdue": "1",
                               "sort": "opened"})
    assert filters.query() == "level=2&ack=no&bucket=week&overdue=1&sort=opened"
    junk = QueueFilters.of({"level": "2; drop", "ack": "maybe", "bucket": "<b>",
                            "sort": "random"})
    assert junk == QueueFilters() and junk.query() == ""


def test_form_dates_become_utc_instants_and_labels_read_well() -> None:
    assert day_start("2026-11-26") == "2026-11-26T00:00:00+00:00"
    assert day_start("2026-11-26", end=True) == "2026-11-27T00:00:00+00:00"
    assert day_start("26/11/2026") is None and day_start("") is None
    assert account_name("dom:acme.com") == "acme.com"
    assert account_name("crm:001A") == "001A" and account_name("other") == "other"
    assert event_label("dealreg.registration.decided.v1") == "registration decided"
    assert event_label("crm.opportunity.closed.v1") == "opportunity closed"
