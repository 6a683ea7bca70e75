"""The one partner view (invariant 7): an allow-list per resource, and every field of every
view model and event classified, so a new field stays invisible to partners until listed."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel

from services.projections.api import routers as query_routers
from services.projections.api.deliveries import (
    AttemptView,
    DeliveryPage,
    DeliveryView,
    PartnerAttemptView,
    PartnerDeliveryPage,
    PartnerDeliveryView,
)
from services.projections.api.schemas import (
    DisputePage,
    Money,
    PipelineBucket,
    PipelineGroup,
    PipelineView,
    RegistrationPage,
    TimelineEntry,
    TimelineView,
)
from services.registration.api.routes import router as command_router
from services.registration.models import DisputeCommandView
from shared.api import partner_view as pv
from shared.api.partner_view import Scope, Viewer
from shared.api.resources import (
    AccountMatchView,
    BreachView,
    ConflictView,
    DecisionView,
    DisputeView,
    IncumbentView,
    OwnershipView,
    OwnerView,
    ProductAwardView,
    RegistrationView,
    ResolutionView,
    SplitView,
)
from shared.events.base import CATALOGUE
from shared.events.disputes import DisputeResolved

KEY = b"unit-test-decision-ids-key-32byt"  # the server's key of decision ids

P1 = Viewer("partner", "p-1")
VENDORS = [Viewer(role, "x") for role in ("admin", "integration", "rep", "owner",
                                           "channel_manager")]

# Every view model a partner can receive, with the shapes that decide what it sees.
CLASSIFIED: dict[type[BaseModel], tuple[Mapping[str, pv.Rule], ...]] = {
    RegistrationView: (pv.REGISTRATION,),
    DecisionView: (pv.DECISION,),
    ConflictView: (pv.CONFLICT_OWN, pv.CONFLICT_FOREIGN),
    DisputeView: (pv.DISPUTE,),
    DisputeCommandView: (pv.DISPUTE,),
    ResolutionView: (pv.RESOLUTION,),
    SplitView: (pv.SPLIT,),
    ProductAwardView: (pv.AWARD_OWN, pv.AWARD_FOREIGN),
    BreachView: (pv.BREACH,),
    OwnershipView: (pv.OWNERSHIP,),
    OwnerView: (pv.OWNER_OWN, pv.OWNER_FOREIGN),
    IncumbentView: (pv.INCUMBENT_OWN,),
    AccountMatchView: (pv.MATCH,),
    TimelineEntry: (pv.TIMELINE_ENTRY,),
    PipelineView: (pv.PIPELINE,),
    PipelineGroup: (pv.PIPELINE_GROUP,),
    PipelineBucket: (pv.BUCKET,),
    Money: (pv.MONEY,),
    DeliveryView: (pv.DELIVERY,),
    AttemptView: (pv.DELIVERY_ATTEMPT,),
}
# The partner's own models of a resource: exactly the fields its shape shows.
PARTNER_MODELS: dict[type[BaseModel], Mapping[str, pv.Rule]] = {
    PartnerDeliveryView: pv.DELIVERY, PartnerAttemptView: pv.DELIVERY_ATTEMPT,
}
# Pages only wrap classified items; their own fields are a cursor or the timeline's id.
CONTAINERS: dict[type[BaseModel], set[str]] = {
    RegistrationPage: {"items", "next_cursor"}, DisputePage: {"items", "next_cursor"},
    TimelineView: {"id", "entries"},
    DeliveryPage: {"items"}, PartnerDeliveryPage: {"items"},
}


@pytest.mark.parametrize("model", list(CLASSIFIED), ids=lambda m: m.__name__)
def test_every_field_of_a_view_model_is_classified_for_partners(model: type[BaseModel]
                                                                ) -> None:
    for shape in CLASSIFIED[model]:
        unclassified = set(model.model_fields) - set(shape)
        assert unclassified == set(), (
            f"{model.__name__} has fields the partner view does not classify: "
            f"{sorted(unclassified)}; list them in shared/api/partner_view.py")


def _models_in(annotation: Any) -> set[type[BaseModel]]:
    found: set[type[BaseModel]] = set()
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.add(annotation)
        for info in annotation.model_fields.values():
            found |= _models_in(info.annotation)
    for arg in typing.get_args(annotation):
        found |= _models_in(arg)
    return found


# Response models partners never receive (the routes admit no partner): claims (reps),
# program metrics (vendor roles). (A partner's delivery log is `PartnerDeliveryView`.)
NOT_FOR_PARTNERS = {"ClaimView", "ProgramMetricsView", "RegistrationMetrics",
                    "DisputeMetrics", "Quantiles", "BreachCount", "PartnerResults",
                    "ProgramSeriesView", "SeriesView",
                    # a dispute's `last_refusal` (DISPUTE: HIDE): an owner's refused command
                    "RefusalView"}


def test_every_model_the_partner_facing_routes_answer_with_is_classified() -> None:
    routers = [*query_routers, command_router]
    models: set[type[BaseModel]] = set()
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.response_model is not None:
                models |= _models_in(route.response_model)
    unknown = {m.__name__ for m in models if m not in CLASSIFIED and m not in CONTAINERS
               and m not in PARTNER_MODELS} - NOT_FOR_PARTNERS
    assert unknown == set()
    for container, fields in CONTAINERS.items():
        assert set(container.model_fields) == fields, container.__name__


@pytest.mark.parametrize("model", list(PARTNER_MODELS), ids=lambda m: m.__name__)
def test_a_partner_model_has_exactly_the_fields_its_shape_shows(model: type[BaseModel]
                                                                ) -> None:
    shown = {k for k, rule in PARTNER_MODELS[model].items() if rule is not pv.HIDE}
    assert set(model.model_fields) == shown


def test_every_event_type_is_listed_or_hidden_in_partner_timelines() -> None:
    listed, hidden = set(pv.TIMELINE_DATA), set(pv.TIMELINE_HIDDEN_TYPES)
    assert listed & hidden == set()
    assert set(CATALOGUE) - listed - hidden == set(), "an event type nobody classified"
    assert (listed | hidden) - set(CATALOGUE) == set(), "a classified type that is gone"
    for name, shape in pv.TIMELINE_DATA.items():
        fields = set(CATALOGUE[name].model_fields)
        assert fields - set(shape) == set(), f"{name}: unclassified {fields - set(shape)}"
        assert set(shape) - fields == set(), f"{name}: classifies fields it lacks"


def test_the_partner_webhook_shows_only_listed_fields_of_the_resolution() -> None:
    assert set(pv.WEBHOOK_DISPUTE) - {"id"} <= set(DisputeResolved.model_fields)
    assert not {"note", "resolved_by", "actor_role", "explanation", "registration_ids",
                "approved_ids", "rejected_ids", "splits"} & set(pv.WEBHOOK_DISPUTE)


# --- behaviour ---------------------------------------------------------------------------


def _raw(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def registration_row(**extra: Any) -> dict[str, Any]:
    return {
        "id": "reg_own1", "partner_id": "p-1", "account_key": "dom:acme.com",
        "account": {"domain": "acme.com"}, "opportunity": {"title": "x"}, "motion": "resell",
        "external_ref": "PRM-1", "status": "rejected", "submitted_at": None,
        "decided_at": None, "protected_until": None, "extensions": 0, "dispute_id": None,
        "credit_percent": None,
        "decision": {
            "rule": "first_submitted", "policy_version": 1, "flags": [],
            "explanation": "Rejected: reg_rival1 and reg_rival2 hold it; 2 other parties",
            "conflicts": [
                {"registration_id": "reg_rival1", "party_type": "partner", "party_id": "p-2",
                 "matched_by": "domain", "score": 1.0, "account_key": "dom:rival.com"},
                {"registration_id": "reg_rival2", "party_type": "partner", "party_id": "p-3",
                 "matched_by": "name", "score": 0.93},
                {"registration_id": "reg_own0", "party_type": "partner", "party_id": "p-1",
                 "matched_by": "domain", "score": 1.0},
            ]}, **extra}


def test_a_field_nobody_listed_never_reaches_a_partner() -> None:
    out = pv.registration(registration_row(internal_margin="MARKER-margin"), P1)
    assert "MARKER-margin" not in _raw(out) and "internal_margin" not in out


def test_a_partner_keeps_its_own_conflict_and_learns_only_that_rivals_exist() -> None:
    out = pv.registration(registration_row(), P1)
    conflicts = out["decision"]["conflicts"]
    assert [c["registration_id"] for c in conflicts] == [None, "reg_own0"]
    assert conflicts[0] == {"registration_id": None, "party_type": "partner",
                            "party_id": None, "matched_by": "same_customer", "score": 1.0}
    text = _raw(out)
    for secret in ("reg_rival1", "reg_rival2", "p-2", "p-3", "rival.com", "2 other"):
        assert secret not in text, secret
    assert out["decision"]["explanation"] == "Rejected: another party hold it; another party"
    assert RegistrationView.model_validate(out).decision is not None


def test_a_partner_never_gets_another_partners_registration() -> None:
    with pytest.raises(PermissionError):
        pv.registration(registration_row(partner_id="p-2"), P1)


@pytest.mark.parametrize("viewer", VENDORS, ids=lambda v: v.role)
def test_vendor_roles_see_everything(viewer: Viewer) -> None:
    row = registration_row()
    assert pv.registration(row, viewer) == row
    scope = Scope(viewer)
    assert pv.dispute(dispute_row(), scope) == dispute_row()


def dispute_row() -> dict[str, Any]:
    return {
        "id": "dsp_1", "status": "resolved", "level": 1, "owner_id": "cm-1", "due_at": None,
        "acknowledged_at": None, "registration_ids": ["reg_own1", "reg_rival1", "clm_9"],
        "account_key": "dom:acme.com", "reason": "tie", "breaches": [],
        "explanation": "Dispute dsp_1 opened (tie) over 3 registrations",
        "resolution": {
            "outcome": "split", "registration_id": None,
            "splits": [{"registration_id": "reg_own1", "percent": "40"},
                       {"registration_id": "reg_rival1", "percent": "60"}],
            "approved_ids": ["reg_own1", "reg_rival1"], "rejected_ids": ["clm_9"],
            "resolved_by": "cm-1", "actor_role": "owner",
            "note": "MARKER-note Partner p-2 (Rival Reseller) brought more",
            "partner_note": "Shared on the evidence both sides gave.",
            "explanation": "approved: reg_own1, reg_rival1; rejected: clm_9",
        },
    }


HOLDERS: dict[str, pv.Holder] = {
    "reg_own1": ("partner", "p-1", "dom:acme.com"),
    "reg_rival1": ("partner", "p-2", "dom:acme.com"),
    "clm_9": ("direct", "rep-4", "dom:acme.com"),
}


def p1_scope(value: Any) -> Scope:
    mentioned = pv.mentioned_ids(value)
    return Scope.of(P1, HOLDERS, mentioned)


def test_a_dispute_shows_its_own_registration_share_and_the_partner_note_only() -> None:
    out = pv.dispute(dispute_row(), p1_scope(dispute_row()))
    assert out["registration_ids"] == ["reg_own1"]
    resolution = out["resolution"]
    assert resolution["splits"] == [{"registration_id": "reg_own1", "percent": "40"}]
    assert resolution["approved_ids"] == ["reg_own1"] and resolution["rejected_ids"] == []
    assert resolution["resolved_by"] is None and "note" not in resolution
    assert resolution["partner_note"] == "Shared on the evidence both sides gave."
    text = _raw(out)
    for secret in ("reg_rival1", "clm_9", "p-2", "rep-4", "MARKER-note", "3 registrations"):
        assert secret not in text, secret
    assert DisputeView.model_validate(out).resolution.note == ""  # type: ignore[union-attr]
    DisputeCommandView.model_validate(out)


def entry(type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"at": "2027-01-01T00:00:00Z", "type": type_, "event_id": "evt_1",
            "subject_id": "dsp_1", "data": data}


def test_a_timeline_hides_owner_requests_notes_and_rivals_joining() -> None:
    entries = [
        entry("dealreg.dispute.resolution_submitted.v1",
              {"actor_id": "cm-1", "note": "MARKER-note", "outcome": "award"}),
        entry("dealreg.dispute.joined.v1", {"added_ids": ["reg_rival1"],
                                            "registration_ids": ["reg_own1", "reg_rival1"]}),
        entry("dealreg.dispute.joined.v1", {"added_ids": ["reg_own1"],
                                            "registration_ids": ["reg_own1", "reg_rival1"]}),
        entry("dealreg.dispute.resolved.v1", {
            "outcome": "award", "awarded_registration_id": "reg_rival1",
            "resolved_by": "cm-1", "note": "MARKER-note", "partner_note": "For you",
            "rejected_ids": ["reg_own1"], "registration_ids": ["reg_own1", "reg_rival1"],
            "explanation": "rejected: reg_own1; approved: reg_rival1"}),
        entry("dealreg.timer.fired.v1", {"kind": "deadline"}),
    ]
    scope = p1_scope([e["data"] for e in entries])
    out = pv.timeline(entries, scope, ids_key=KEY)
    # Its own joining reads as an opening (a joining would say others were disputing).
    assert [e["type"] for e in out] == ["dealreg.dispute.opened.v1",
                                        "dealreg.dispute.resolved.v1"]
    assert out[0]["data"]["registration_ids"] == ["reg_own1"]
    assert "joins" not in out[0]["data"]["explanation"]
    resolved = out[1]["data"]
    assert resolved["awarded_registration_id"] is None
    assert resolved["partner_note"] == "For you" and "note" not in resolved
    text = _raw(out)
    assert "MARKER-note" not in text and "reg_rival1" not in text and "cm-1" not in text
    assert pv.timeline(entries, Scope(VENDORS[0]), ids_key=KEY) == entries


def ownership_view() -> dict[str, Any]:
    owner = {"party_type": "partner", "products": ["analytics"], "status": "approved",
             "motion": "co_sell", "credit_percent": "50"}
    return {
        "account_key": "dom:rival-customer.com",
        "owners": [
            {**owner, "party_id": "p-2", "registration_id": "reg_rival1",
             "protected_until": "2027-03-01", "since": "2026-01-01"},
            {**owner, "party_id": "p-3", "registration_id": "reg_rival2",
             "protected_until": "2027-05-01", "since": "2026-02-01"},
            {**owner, "party_id": "p-1", "registration_id": "reg_own1",
             "protected_until": "2027-04-01", "since": "2026-03-01"},
        ],
        "open_disputes": ["dsp_mine", "dsp_theirs"], "open_dispute_count": 2,
        "incumbents": [{"party_type": "partner", "party_id": "p-2", "since": "2025-01-01",
                        "until": "2026-01-01"}],
        "as_of": None, "match": {"matched_by": "name", "score": 0.91},
        "linked_keys": ["crm:MARKER-crm", "dom:acme.com"],
    }


def test_ownership_merges_rivals_and_keeps_disputes_and_keys_to_the_partner() -> None:
    scope = Scope(P1, own_keys=frozenset({"dom:acme.com"}))
    out = pv.ownership(ownership_view(), scope, {"dsp_mine"})
    rivals = [o for o in out["owners"] if o["party_id"] is None]
    assert rivals == [{"party_type": "partner", "party_id": None, "registration_id": None,
                       "products": ["analytics"], "motion": None, "status": "approved",
                       "protected_until": "2027-05-01", "credit_percent": None,
                       "since": None}]
    assert [o["registration_id"] for o in out["owners"] if o["party_id"]] == ["reg_own1"]
    assert out["open_disputes"] == ["dsp_mine"] and out["open_dispute_count"] == 1
    assert out["account_key"] is None and out["linked_keys"] == ["dom:acme.com"]
    assert out["incumbents"] == []  # that a competitor won it, and when, is not shown
    mine = pv.ownership({**ownership_view(), "incumbents": [
        {"party_type": "partner", "party_id": "p-1", "since": "2025-01-01",
         "until": "2026-01-01"}]}, scope, set())
    assert mine["incumbents"] == [{"party_type": "partner", "party_id": "p-1",
                                   "since": "2025-01-01", "until": "2026-01-01"}]
    text = _raw(out)
    for secret in ("p-2", "p-3", "reg_rival", "rival-customer", "MARKER-crm", "dsp_theirs"):
        assert secret not in text, secret
    OwnershipView.model_validate(out)


def test_one_rival_and_many_read_the_same() -> None:
    scope = Scope(P1, own_ids=frozenset({"reg_own1"}))
    one = ("In review: the account acme.com is also claimed by another partner's "
           "registration; nothing in the policy separates them")
    many = ("In review: the account acme.com is also claimed by 3 other parties; nothing in "
            "the policy separates them")
    direct = ("In review: the account acme.com is also claimed by a direct named-account "
              "claim; nothing in the policy separates them")
    assert pv.scrub(one, scope) == pv.scrub(many, scope) == pv.scrub(direct, scope)
    listed = pv.scrub("approved: reg_a1, reg_b2 and clm_c3; rejected: reg_own1", scope)
    assert listed == "approved: another party; rejected: reg_own1"


def test_text_scrubbing_replaces_every_foreign_id_and_counts_of_rivals() -> None:
    scope = Scope(P1, own_ids=frozenset({"reg_own1"}),
                  foreign_ids=frozenset({"odd-id-7"}))
    text = ("In review: the account is claimed by 3 other parties; reg_own1 joins "
            "reg_x1, clm_y2 and odd-id-7; dispute opened over 4 registrations")
    out = pv.scrub(text, scope)
    assert "reg_own1" in out
    for secret in ("reg_x1", "clm_y2", "odd-id-7", "3 other", "4 registrations"):
        assert secret not in out, secret


def test_a_partner_webhook_carries_the_partner_note_and_only_its_own_results() -> None:
    data = {"dispute_id": "dsp_1", "account_key": "dom:acme.com", "outcome": "award",
            "resolved_at": "2027-01-01T00:00:00Z", "level": 1, "rule": "dispute_resolution",
            "policy_version": 1, "merged_into": None, "note": "MARKER-note",
            "partner_note": "Awarded on the first introduction.", "resolved_by": "cm-1",
            "registration_ids": ["reg_own1", "reg_rival1"],
            "explanation": "approved: reg_rival1"}
    results = [{"id": "reg_own1", "status": "rejected", "credit_percent": None}]
    body = pv.resolved_webhook("2027-01-01T00:00:00+00:00", data, results,
                               Scope.of(P1, HOLDERS, ["reg_own1", "reg_rival1"]))
    assert body["data"]["dispute"]["partner_note"] == "Awarded on the first introduction."
    data["partner_note"] = "reg_rival1 showed the first introduction."
    scrubbed = pv.resolved_webhook("2027-01-01T00:00:00+00:00", data, results,
                                   Scope.of(P1, HOLDERS, ["reg_own1", "reg_rival1"]))
    assert scrubbed["data"]["dispute"]["partner_note"] == (
        f"{pv.ANOTHER} showed the first introduction.")
    assert body["data"]["registrations"] == results
    assert body["data"]["account_key"] == "dom:acme.com"
    text = _raw(body)
    for secret in ("MARKER-note", "cm-1", "reg_rival1"):
        assert secret not in text, secret


def test_an_award_by_product_shows_which_products_another_party_won_not_who() -> None:
    view = {**dispute_row(), "resolution": {"outcome": "award", "awards": [
        {"product": "analytics", "registration_id": "reg_own1"},
        {"product": "crm", "registration_id": "reg_rival1"}]}}
    out = pv.dispute(view, p1_scope(view))
    assert out["resolution"]["awards"] == [
        {"product": "analytics", "registration_id": "reg_own1"},
        {"product": "crm", "registration_id": None}]
    assert "reg_rival1" not in _raw(out)
    DisputeView.model_validate(out)


def test_a_key_derived_from_a_competitors_identifiers_is_never_shown() -> None:
    row = registration_row(account={"name": "Umbrella Holdings", "country": "US"},
                           account_key="crm:001SECRETCRM")
    row["decision"]["explanation"] = ("In review: CRM account 001SECRETCRM (crm:001SECRETCRM)"
                                      " is also claimed by another party")
    out = pv.registration(row, P1)
    assert "001SECRETCRM" not in _raw(out)
    assert out["account_key"] == "name:US:umbrella-holdings"
    # Its own key, derived from what it submitted, stays.
    mine = pv.registration(registration_row(account={"domain": "acme.com"},
                                            account_key="dom:acme.com"), P1)
    assert mine["account_key"] == "dom:acme.com"


def test_a_dispute_and_webhook_show_no_key_the_partner_did_not_submit() -> None:
    holders = {"reg_own0": pv.holder("partner", "p-1", "dom:hooli-secret.com",
                                     {"name": "Hooli Systems", "country": "US"}),
               "reg_rival1": pv.holder("partner", "p-2", "dom:hooli-secret.com",
                                       {"domain": "hooli-secret.com"})}
    scope = pv.Scope.of(P1, holders, ["reg_own0", "reg_rival1"])
    view = {"id": "dsp_1", "status": "open", "level": 1, "account_key": "dom:hooli-secret.com",
            "registration_ids": ["reg_rival1", "reg_own0"],
            "explanation": "a tie on the account hooli-secret.com over 2 registrations"}
    out = pv.dispute(view, scope)
    assert "hooli-secret" not in _raw(out), out
    assert out["account_key"] is None and out["registration_ids"] == ["reg_own0"]
    hook = pv.resolved_webhook("2026-01-01T00:00:00Z", {
        "dispute_id": "dsp_1", "account_key": "dom:hooli-secret.com", "outcome": "award",
        "partner_note": "hooli-secret.com goes to another party"}, [], scope)
    assert "hooli-secret" not in _raw(hook), hook


def test_a_partners_delivery_log_shows_only_listed_fields_and_no_rival() -> None:
    at = "2027-01-01T00:00:00+00:00"
    payload = {"type": "dispute.resolved", "timestamp": at, "MARKER-top": 1, "data": {
        "dispute": {"id": "dsp_1", "outcome": "award", "note": "MARKER-note",
                    "partner_note": "reg_rival1 was later"},
        "account_key": "dom:acme.com", "role": "partner",
        "registrations": [{"id": "reg_own1", "status": "approved", "credit_percent": None},
                          {"id": "reg_rival1", "status": "rejected", "credit_percent": None}]}}
    row = {"id": "ntf_1", "event_id": "evt_MARKER", "dispute_id": "dsp_1",
           "type": "dispute.resolved", "recipient_kind": "partner", "recipient_id": "p-1",
           "channel": "webhook", "status": "dead", "attempts": 1, "next_attempt_at": None,
           "last_error": "ConnectError: https://p-2.example/hook refused",
           "created_at": at, "delivered_at": None, "payload": payload,
           "url": "https://internal", "traceparent": "00-MARKER",
           "attempt_log": [{"attempt": 1, "at": at, "outcome": "dead", "status_code": None,
                            "error": "MARKER-error p-2", "duration_ms": 3,
                            "delivery_id": "ntf_1"}]}
    assert pv.delivery_mentions(payload) == {"reg_own1", "reg_rival1"}
    scope = Scope.of(P1, HOLDERS, pv.delivery_mentions(payload))
    out = pv.delivery(row, scope)
    PartnerDeliveryView.model_validate(out)
    assert set(out) == set(PartnerDeliveryView.model_fields)
    assert set(out["attempt_log"][0]) == set(PartnerAttemptView.model_fields)
    assert [r["id"] for r in out["payload"]["data"]["registrations"]] == ["reg_own1"]
    assert out["payload"]["data"]["dispute"]["partner_note"] == f"{pv.ANOTHER} was later"
    text = _raw(out)
    for secret in ("MARKER", "p-2", "reg_rival1", "internal"):
        assert secret not in text, secret
    for vendor in VENDORS:
        assert pv.delivery(row, Scope(vendor)) == row


def test_a_partners_delivery_log_neither_counts_nor_shows_rivals_results() -> None:
    """A stored payload with rivals' results (an older version's, or one queued before a
    rule changed) re-cut for the log: the webhook itself carries only the partner's own
    results, so the log must not show the others, not even id-less (that counts the
    rivals and tells how each came out)."""
    at = "2027-01-01T00:00:00+00:00"
    results = [{"id": "reg_own1", "status": "approved", "credit_percent": 60},
               {"id": "reg_rival1", "status": "approved", "credit_percent": 40},
               {"id": "clm_9", "status": "rejected", "credit_percent": None}]
    payload = {"type": "dispute.resolved", "timestamp": at, "data": {
        "dispute": {"id": "dsp_1", "outcome": "split"}, "role": "partner",
        "registrations": results}}
    row = {"id": "ntf_2", "dispute_id": "dsp_1", "type": "dispute.resolved",
           "recipient_kind": "partner", "recipient_id": "p-1", "channel": "webhook",
           "status": "delivered", "attempts": 1, "next_attempt_at": None, "created_at": at,
           "delivered_at": at, "payload": payload, "attempt_log": []}
    out = pv.delivery(row, Scope.of(P1, HOLDERS, pv.delivery_mentions(payload)))
    assert out["payload"]["data"]["registrations"] == [
        {"id": "reg_own1", "status": "approved", "credit_percent": 60}]


def test_a_registration_filed_under_a_domain_later_known_as_free_mail_keeps_its_own_key() -> None:
    """Registrations accepted before the free-mail list grew (session 23: tiscali.it) are
    filed under `dom:tiscali.it`; their partner still reads that key as its own."""
    view = {"id": "reg_1", "partner_id": "p-1", "account_key": "dom:tiscali.it",
            "account": {"name": "Ferrabosco SPA", "domain": "tiscali.it", "country": "IT"},
            "decision": None}
    assert pv.registration(view, Viewer("partner", "p-1"))["account_key"] == "dom:tiscali.it"


def test_a_partner_reads_its_own_owners_first_and_the_others_in_no_time_order() -> None:
    view = ownership_view()
    direct = {"party_type": "direct", "party_id": "rep-1", "registration_id": "clm_1",
              "products": [], "motion": "direct", "status": "approved",
              "protected_until": None, "credit_percent": None, "since": "2025-06-01"}
    earliest = pv.ownership({**view, "owners": [direct, *view["owners"]]}, Scope(P1), set())
    latest = pv.ownership({**view, "owners": [*view["owners"], direct]}, Scope(P1), set())
    assert earliest["owners"] == latest["owners"]
    assert [o["registration_id"] for o in earliest["owners"]] == ["reg_own1", None, None]


def test_a_late_joiner_reads_escalation_deadlines_to_the_hour() -> None:
    late = {**dispute_row(), "opened_at": "2027-01-01T09:17:03.250000Z", "level": 2,
            "due_at": "2027-01-04T09:17:08.250000Z",
            "explanation": "Dispute dsp_1 opened (tie); level 1 is with cm-1, due "
                           "2027-01-01 09:17 UTC (tie, policy v1).",
            "breaches": [{"level": 1, "deadline": "2027-01-01T09:17:08.250000Z",
                          "outcome": "escalated"}]}
    out = pv.dispute(late, p1_scope(late), joined_at="2027-01-01T09:17:05Z")
    assert out["breaches"] == [{"level": 1, "deadline": "2027-01-01T10:00:00Z",
                                "outcome": "escalated"}]
    assert "09:17:08" not in _raw(out) and "01 09:17" not in _raw(out)
    assert "2027-01-01 10:00" in out["explanation"]
    opened = {**entry("dealreg.dispute.opened.v1", {"registration_ids": ["reg_rival1"]}),
              "at": "2027-01-01T09:17:03.250000Z"}
    own = {**entry("dealreg.registration.submitted.v1", {"registration_id": "reg_own1"}),
           "at": "2027-01-01T09:17:05Z", "subject_id": "reg_own1"}
    escalated = {**entry("dealreg.dispute.escalated.v1", {
        "from_level": 1, "to_level": 2, "breached_deadline": "2027-01-01T09:17:08.250000Z",
        "due_at": "2027-01-04T09:17:08.250000Z",
        "explanation": "Dispute dsp_1 was not resolved by its level 1 deadline 2027-01-01 "
                       "09:17 UTC; escalated to dir-1 at level 2, due 2027-01-04 09:17 UTC."}),
        "at": "2027-01-01T09:17:08.250000Z", "event_id": "tmr_01kmxyz.d0"}
    after = {**own, "type": "dealreg.registration.withdrawn.v1",
             "at": "2027-01-01T09:30:00Z", "event_id": "evt_2"}
    entries = [opened, own, escalated, after]
    out_entries = pv.timeline(entries, p1_scope([e["data"] for e in entries]), ids_key=KEY)
    assert [e["type"] for e in out_entries] == ["dealreg.registration.submitted.v1",
                                                "dealreg.registration.withdrawn.v1",
                                                "dealreg.dispute.escalated.v1"]
    shown = out_entries[-1]
    assert shown["at"] == "2027-01-01T10:00:00Z" and shown["event_id"].startswith("evt_")
    assert "09:17" not in _raw(shown) and "tmr_" not in _raw(shown)
    # A dispute the viewer was in from its opening reads exactly.
    mine = pv.timeline([own, {**escalated, "at": "2027-01-01T09:17:08.250000Z"}],
                       p1_scope([own["data"]]), ids_key=KEY)
    assert mine[-1]["data"]["breached_deadline"] == "2027-01-01T09:17:08.250000Z"


def test_decision_ids_neither_count_the_other_members_nor_repeat() -> None:
    def decided(event_id: str, registration: str) -> dict[str, Any]:
        return {**entry("dealreg.registration.decided.v1", {"registration_id": registration}),
                "event_id": event_id, "subject_id": registration}
    resolved = {**entry("dealreg.dispute.resolved.v1", {
        "outcome": "award", "registration_ids": ["reg_rival1", "reg_own1", "reg_own2"]}),
        "event_id": "evt_cmd.d0"}
    entries = [resolved, decided("evt_cmd.d1", "reg_rival1"), decided("evt_cmd.d2", "reg_own1"),
               decided("evt_cmd.d3", "reg_own2")]
    scope = p1_scope([e["data"] for e in entries])
    first = pv.timeline([resolved, entries[2]], scope, ids_key=KEY)
    second = pv.timeline([resolved, entries[3]], scope, ids_key=KEY)
    ids = [e["event_id"] for e in (*first, *second)]
    # One id per event (the resolution shows twice), two events never one id.
    assert ids[0] == ids[2] and len({ids[0], ids[1], ids[3]}) == 3, ids
    for shown in ids:
        cause, _, number = shown.rpartition(".d")
        assert cause == "evt_cmd" and number.isdigit() and int(number) > 3, ids
    # Under another key, other numbers: not found by trying.
    assert pv.timeline([entries[2]], scope, ids_key=b"k" * 32)[0]["event_id"] != ids[1]
    assert pv.timeline(entries, Scope(VENDORS[0]), ids_key=KEY)[2]["event_id"] == "evt_cmd.d2"


def test_a_first_submitted_rejection_reads_without_the_rivals_distance() -> None:
    """"submitted 12 seconds earlier" dated the rival from the partner's own exact
    submission; a partner reads "submitted earlier" (the vendor side the span)."""
    for span in ("12 seconds", "1 minute", "5 hours", "3 days"):
        text = (f"Rejected: the account acme.com is protected by another partner's "
                f"registration submitted {span} earlier (first_submitted, policy v4).")
        shown = pv.scrub(text, Scope(P1))
        assert span not in shown and "submitted earlier (first_submitted" in shown, shown
        assert pv.registration({**registration_row(), "decision": {
            **registration_row()["decision"], "explanation": text}}, P1)[
            "decision"]["explanation"] == shown
        assert pv.registration({**registration_row(), "decision": {
            **registration_row()["decision"], "explanation": text}}, VENDORS[0])[
            "decision"]["explanation"] == text


def test_a_contest_carrying_on_a_rivals_dispute_reads_its_deadlines_to_the_hour() -> None:
    """A contest opens a dispute that carries on the deadlines of the one its rivals were
    in (opened at a rival's submission): `due_at` is to the hour for a partner, in the
    dispute (query and command answer) and in its timeline's opening, with no reminder."""
    sentence = ("Dispute dsp_1 opened (contested) over 3 registrations on the account "
                "acme.com; it carries on dispute dsp_0 at level 1 with cm-1, due "
                "2027-01-03 09:17 UTC (contested, policy v1).")
    carried = {**dispute_row(), "status": "open", "resolution": None,
               "opened_at": "2027-01-01T11:00:00.500000Z",
               "due_at": "2027-01-03T09:17:08.250000Z",
               "reminder_at": "2027-01-03T08:17:08.250000Z", "explanation": sentence}
    out = pv.dispute(carried, p1_scope(carried), joined_at="2026-12-31T10:00:00Z")
    assert (out["due_at"], out["reminder_at"]) == ("2027-01-03T10:00:00Z", None), out
    assert out["opened_at"] == carried["opened_at"]  # the contest's own opening
    assert "09:17" not in _raw(out)
    command = {k: carried[k] for k in ("id", "status", "level", "owner_id", "due_at",
                                       "registration_ids", "opened_at", "explanation")}
    assert pv.dispute(command, p1_scope(command))["due_at"] == out["due_at"]
    # A fresh dispute the viewer was in from its opening reads exactly.
    fresh = {**carried, "explanation": "Dispute dsp_1 opened (tie) over 2 registrations; "
                                       "level 1 is with cm-1, due 2027-01-03 09:17 UTC."}
    assert pv.dispute(fresh, p1_scope(fresh))["due_at"] == carried["due_at"]
    opened = {**entry("dealreg.dispute.opened.v1", {
        "registration_ids": ["reg_own1", "reg_rival1"], "due_at": carried["due_at"],
        "reminder_at": carried["reminder_at"], "explanation": sentence}),
        "at": carried["opened_at"]}
    own = {**entry("dealreg.registration.submitted.v1", {"registration_id": "reg_own1"}),
           "at": "2026-12-31T09:59:00Z", "subject_id": "reg_own1"}
    shown = pv.timeline([own, opened], p1_scope([own["data"], opened["data"]]), ids_key=KEY)
    assert [e["type"] for e in shown] == ["dealreg.registration.submitted.v1",
                                          "dealreg.dispute.opened.v1"]
    assert shown[-1]["data"]["due_at"] == "2027-01-03T10:00:00Z"
    assert "reminder_at" not in shown[-1]["data"] and "09:17" not in _raw(shown), shown
    # Its escalation's deadline likewise (it counts from the same rival's submission).
    escalated = {**entry("dealreg.dispute.escalated.v1", {
        "from_level": 1, "to_level": 2, "breached_deadline": carried["due_at"],
        "due_at": "2027-01-06T09:17:08.250000Z"}), "at": carried["due_at"],
        "event_id": "tmr_01kmxyz.d0"}
    later = pv.timeline([own, opened, escalated], p1_scope([own["data"], opened["data"]]),
                        ids_key=KEY)
    assert "09:17" not in _raw(later), later


def test_a_carried_opening_is_known_by_its_field_not_by_its_sentence() -> None:
    """Whether a dispute carries on an older one's ladder (its deadlines then count from a
    rival's submission) was read from its opening's sentence ("it carries on dispute
    ..."): worded otherwise, a partner read those deadlines exactly. The opening's
    `carries_on` field decides (session 28); a partner reads neither the field nor, in
    any sentence, the older dispute's id (that rivals were already disputing)."""
    sentence = ("Dispute dsp_1 opened (contested) over 3 registrations on the account "
                "acme.com; level 1 is with cm-1, due 2027-01-03 09:17 UTC (contested, "
                "policy v1).")
    row = {**dispute_row(), "status": "open", "resolution": None,
           "opened_at": "2027-01-01T11:00:00.500000Z",
           "due_at": "2027-01-03T09:17:08.250000Z",
           "reminder_at": "2027-01-03T08:17:08.250000Z", "explanation": sentence}
    opening = {"registration_ids": ["reg_own1", "reg_rival1"], "level": 1,
               "due_at": row["due_at"], "reminder_at": row["reminder_at"],
               "explanation": sentence, "carries_on": "dsp_0"}
    out = pv.dispute(row, p1_scope(row), opening=opening)
    assert (out["due_at"], out["reminder_at"]) == ("2027-01-03T10:00:00Z", None), out
    assert "09:17" not in _raw(out)
    # An opening that carries nothing reads exactly, whatever its sentence says.
    plain = {k: v for k, v in opening.items() if k != "carries_on"}
    assert pv.dispute(row, p1_scope(row), opening=plain)["due_at"] == row["due_at"]
    assert pv.carries_on(opening) and not pv.carries_on({**opening, "carries_on": None})
    own = {**entry("dealreg.registration.submitted.v1", {"registration_id": "reg_own1"}),
           "at": "2026-12-31T09:59:00Z", "subject_id": "reg_own1"}
    opened = {**entry("dealreg.dispute.opened.v1", opening), "at": row["opened_at"]}
    shown = pv.timeline([own, opened], p1_scope([own["data"], opened["data"]]), ids_key=KEY)
    assert shown[-1]["data"]["due_at"] == "2027-01-03T10:00:00Z", shown
    assert "carries_on" not in shown[-1]["data"] and "09:17" not in _raw(shown), shown
    # An opening written before the field: its sentence said so, and still does; a
    # partner reads it as a fresh opening's, without the older dispute's id.
    old = {**row, "explanation": sentence.replace(
        "level 1 is with", "it carries on dispute dsp_0 at level 1 with")}
    legacy = pv.dispute(old, p1_scope(old))
    assert legacy["due_at"] == "2027-01-03T10:00:00Z"
    assert "dsp_0" not in _raw(legacy) and "level 1 is with cm-1" in legacy["explanation"]
    assert "dsp_0" in pv.dispute(old, Scope(VENDORS[0]))["explanation"]


def test_a_late_joiners_final_breach_settlement_reads_to_the_hour() -> None:
    """The `on_final_breach` fallback settles a dispute at its last deadline: in a dispute
    the partner joined late, a rival's submission plus the SLAs, which its deadlines read
    to the hour. Its `resolved_at` read exactly. It reads to the hour too (the dispute, its
    resolution, the timeline's `dispute.resolved` entry); a person's award stays exact."""
    exact = "2027-01-06T09:17:08.250000Z"
    fallback = {**dispute_row(), "opened_at": "2027-01-01T09:17:03.250000Z", "level": 3,
                "due_at": exact, "resolved_at": exact,
                "resolution": {**dispute_row()["resolution"], "outcome": "split",
                               "rule": "final_breach_fallback", "resolved_at": exact,
                               "explanation": "Dispute dsp_1 passed its last deadline "
                                              "2027-01-06 09:17 UTC (final_breach_fallback)."}}
    out = pv.dispute(fallback, p1_scope(fallback), joined_at="2027-01-01T09:17:05Z")
    assert out["resolved_at"] == "2027-01-06T10:00:00Z", out
    assert out["resolution"]["resolved_at"] == "2027-01-06T10:00:00Z", out
    assert "06T09:17" not in _raw(out) and "06 09:17" not in _raw(out), out
    # From the dispute's opening on, it was the partner's to know; a person's time is exact.
    assert pv.dispute(fallback, p1_scope(fallback))["resolved_at"] == exact
    award = {**fallback, "resolution": {**fallback["resolution"], "rule": "dispute_resolution"}}
    assert pv.dispute(award, p1_scope(award), joined_at="2027-01-01T09:17:05Z")[
        "resolved_at"] == exact
    opened = {**entry("dealreg.dispute.opened.v1", {"registration_ids": ["reg_rival1"]}),
              "at": "2027-01-01T09:17:03.250000Z"}
    own = {**entry("dealreg.registration.submitted.v1", {"registration_id": "reg_own1"}),
           "at": "2027-01-01T09:17:05Z", "subject_id": "reg_own1"}
    resolved = {**entry("dealreg.dispute.resolved.v1", {
        "outcome": "split", "registration_ids": ["reg_own1", "reg_rival1"],
        "rule": "final_breach_fallback", "resolved_at": exact,
        "explanation": fallback["resolution"]["explanation"]}), "at": exact,
        "event_id": "tmr_01kmxyz.d0"}
    entries = [opened, own, resolved]
    shown = pv.timeline(entries, p1_scope([e["data"] for e in entries]), ids_key=KEY)[-1]
    assert shown["type"] == "dealreg.dispute.resolved.v1"
    assert (shown["at"], shown["data"]["resolved_at"]) == ("2027-01-06T10:00:00Z",) * 2
    assert "09:17" not in _raw(shown) and "tmr_01kmxyz" not in _raw(shown), shown


def test_a_late_joiner_does_not_read_an_acknowledgement_from_before_it_joined() -> None:
    """A late joiner reads the dispute as opened when it joined (its timeline, as an
    opening). Its `acknowledged_at` stayed the owner's acknowledgement among the rivals,
    before that "opening": that the rivals were already disputing the account, and a bound
    on when. Read: acknowledged when it joined; a later acknowledgement as it is."""
    row = {**dispute_row(), "status": "open", "resolution": None,
           "opened_at": "2027-01-01T09:17:03.250000Z",
           "acknowledged_at": "2027-01-01T09:40:11.125000Z"}
    out = pv.dispute(row, p1_scope(row), joined_at="2027-01-01T11:00:05Z")
    assert out["opened_at"] == out["acknowledged_at"] == "2027-01-01T11:00:05Z", out
    assert "09:40" not in _raw(out) and "09:17" not in _raw(out), out
    later = {**row, "acknowledged_at": "2027-01-01T12:00:00.5Z"}
    assert pv.dispute(later, p1_scope(later), joined_at="2027-01-01T11:00:05Z")[
        "acknowledged_at"] == later["acknowledged_at"]
    assert pv.dispute(row, p1_scope(row))["acknowledged_at"] == row["acknowledged_at"]


def test_a_contest_carrying_on_an_acknowledged_dispute_reads_it_acknowledged_at_its_opening(
        ) -> None:
    """A contest's dispute that carries on the rivals' (`carries_on`) carries their
    acknowledgement too: its staff row's `acknowledged_at` is the owner's, before this
    dispute opened (`projections.domain.disputes.apply_opened`). The late joiner's rule
    covers it: acknowledged before the viewer entered (here: its opening) reads as
    acknowledged at that entry; a later acknowledgement as it is."""
    carried = {**dispute_row(), "status": "open", "resolution": None,
               "opened_at": "2027-01-01T11:00:00.500000Z",
               "acknowledged_at": "2027-01-01T09:40:11.125000Z",
               "explanation": ("Dispute dsp_1 opened (contested) over 3 registrations on the "
                               "account acme.com; it carries on dispute dsp_0 at level 1 "
                               "with cm-1, due 2027-01-03 09:17 UTC (contested, policy v1).")}
    for opening in (None, {"carries_on": "dsp_0"}):
        out = pv.dispute(carried, p1_scope(carried), joined_at="2027-01-01T11:00:00.500000Z",
                         opening=opening)
        assert out["acknowledged_at"] == out["opened_at"] == carried["opened_at"], out
        assert "09:40" not in _raw(out), out
        assert pv.dispute(carried, p1_scope(carried), opening=opening)[
            "acknowledged_at"] == carried["opened_at"]
    later = {**carried, "acknowledged_at": "2027-01-01T12:00:00.5Z"}
    assert pv.dispute(later, p1_scope(later))["acknowledged_at"] == later["acknowledged_at"]
    staff = Scope(pv.Viewer("channel_manager", "cm"))
    assert pv.dispute(carried, staff)["acknowledged_at"] == carried["acknowledged_at"]


def test_a_partners_timeline_ends_its_disputes_when_its_registration_left_them() -> None:
    """Withdrawn while its dispute was open, the registration left it: the dispute's later
    steps (its `moot` end, or the rivals' escalation) are not the partner's to read."""
    own = {**entry("dealreg.registration.submitted.v1", {"registration_id": "reg_own1"}),
           "at": "2027-01-01T09:00:00Z", "subject_id": "reg_own1"}
    opened = {**entry("dealreg.dispute.opened.v1", {"registration_ids": ["reg_own1"]}),
              "at": "2027-01-01T09:00:01Z"}
    ended = {**entry("dealreg.protection.ended.v1", {"registration_id": "reg_own1",
                                                    "reason": "withdrawn"}),
             "at": "2027-01-01T10:00:00Z", "subject_id": "reg_own1", "event_id": "evt_w.d0"}
    moot = {**entry("dealreg.dispute.resolved.v1", {"outcome": "moot",
                                                    "registration_ids": ["reg_rival1"]}),
            "at": "2027-01-01T10:00:00Z", "event_id": "evt_w.d1"}
    later = {**entry("dealreg.dispute.escalated.v1", {"from_level": 1, "to_level": 2}),
             "at": "2027-01-03T10:00:00Z", "event_id": "tmr_1.d0"}
    entries = [own, opened, ended, moot, later]
    shown = pv.timeline(entries, p1_scope([e["data"] for e in entries]), ids_key=KEY)
    assert [e["type"] for e in shown] == ["dealreg.registration.submitted.v1",
                                          "dealreg.dispute.opened.v1",
                                          "dealreg.protection.ended.v1"], shown
    # Ended after its dispute was settled: nothing of the dispute is cut.
    settled = {**moot, "data": {"outcome": "award", "registration_ids": ["reg_own1"]},
               "at": "2027-01-01T09:30:00Z"}
    kept = pv.timeline([own, opened, settled, ended], p1_scope([settled["data"]]), ids_key=KEY)
    assert "dealreg.dispute.resolved.v1" in [e["type"] for e in kept]


def test_a_dispute_entered_late_shows_none_of_its_steps_from_before_the_entry() -> None:
    """p-1's registration, rejected at 09:00, enters dispute D at 12:00 (its contest merged
    into D, which p-2 and p-3 opened at 10:00 and the owner acknowledged at 10:41:07). Its
    timeline reads D as opened when it entered (`_as_opening`), but still listed D's
    acknowledgement (exact) and escalation from before that: that rivals were already
    disputing the account, and when. A dispute's steps start, for a partner, when its
    registration entered it."""
    own = {"at": "2027-01-01T09:00:00Z", "type": "dealreg.registration.submitted.v1",
           "event_id": "evt_0", "subject_id": "reg_own1",
           "data": {"registration_id": "reg_own1"}}
    rejected = {**own, "type": "dealreg.registration.decided.v1", "event_id": "evt_0.d0",
                "data": {"registration_id": "reg_own1", "status": "rejected"}}
    opened = {**entry("dealreg.dispute.opened.v1", {
        "dispute_id": "dsp_1", "registration_ids": ["reg_rival1"], "level": 1,
        "owner_id": "cm-1", "opened_at": "2027-01-01T10:00:03.250000Z",
        "due_at": "2027-01-01T14:00:03.250000Z"}), "at": "2027-01-01T10:00:03.250000Z"}
    acked = {**entry("dealreg.dispute.acknowledgement_recorded.v1", {
        "dispute_id": "dsp_1", "level": 1, "owner_id": "cm-1", "actor_id": "cm-1",
        "acknowledged_at": "2027-01-01T10:41:07.125000Z"}),
        "at": "2027-01-01T10:41:07.125000Z", "event_id": "evt_ack"}
    escalated = {**entry("dealreg.dispute.escalated.v1", {
        "dispute_id": "dsp_1", "from_level": 1, "to_level": 2, "owner_id": "cm-2",
        "breached_deadline": "2027-01-01T11:00:03.250000Z",
        "due_at": "2027-01-01T15:00:03.250000Z"}),
        "at": "2027-01-01T11:00:03.250000Z", "event_id": "tmr_1.d0"}
    joined = {**entry("dealreg.dispute.joined.v1", {
        "dispute_id": "dsp_1", "added_ids": ["reg_own1"],
        "registration_ids": ["reg_rival1", "reg_own1"],
        "joined_at": "2027-01-01T12:00:00.500000Z"}),
        "at": "2027-01-01T12:00:00.500000Z", "event_id": "evt_9.d1"}
    # Its contest, the act that joined D (`OWN_ACTS`): so the entry is its own moment.
    filed = {**own, "at": "2027-01-01T12:00:00.500000Z", "type": "dealreg.dispute.filed.v1",
             "event_id": "evt_9", "data": {"dispute_id": "dsp_1", "partner_id": "p-1"}}
    entries = [own, rejected, opened, acked, escalated, filed, joined]
    shown = pv.timeline(entries, p1_scope([e["data"] for e in entries]), ids_key=KEY)
    assert [e["type"] for e in shown] == [
        "dealreg.registration.submitted.v1", "dealreg.registration.decided.v1",
        "dealreg.dispute.filed.v1", "dealreg.dispute.opened.v1"], shown
    assert shown[-1]["data"]["opened_at"] == "2027-01-01T12:00:00.500000Z", shown
    assert "10:41" not in _raw(shown) and "10:00" not in _raw(shown), shown
    # Its steps after the entry are the partner's: an acknowledgement then reads as it is.
    later = {**acked, "at": "2027-01-01T12:30:00Z",
             "data": {**acked["data"], "acknowledged_at": "2027-01-01T12:30:00Z"}}
    after = pv.timeline([*entries, later], p1_scope([e["data"] for e in entries]),
                        ids_key=KEY)
    assert after[-1]["type"] == "dealreg.dispute.acknowledgement_recorded.v1", after
    assert after[-1]["data"]["acknowledged_at"] == "2027-01-01T12:30:00Z"


def test_a_timeline_starts_at_the_registrations_own_submission() -> None:
    """The timelines model stores an event without the field naming its subject: a
    registration's own entries name it by `subject_id` alone. The partner view looked for
    the timeline's start in the entries' data only, so it started at the first dispute
    step naming the registration, and left out its own submission and decision."""
    own = {"at": "2027-01-01T09:00:00Z", "type": "dealreg.registration.submitted.v1",
           "event_id": "evt_0", "subject_id": "reg_own1", "data": {"partner_id": "p-1"}}
    decided = {**own, "type": "dealreg.registration.decided.v1", "event_id": "evt_0.d0",
               "data": {"partner_id": "p-1", "status": "rejected"}}
    filed = {**own, "at": "2027-01-01T10:00:00Z", "type": "dealreg.dispute.filed.v1",
             "event_id": "evt_1", "data": {"dispute_id": "dsp_1", "partner_id": "p-1"}}
    opened = {**entry("dealreg.dispute.opened.v1", {
        "dispute_id": "dsp_1", "registration_ids": ["reg_own1"], "level": 1}),
        "at": "2027-01-01T10:00:00Z"}
    entries = [own, decided, filed, opened]
    scope = Scope.of(P1, HOLDERS, {"reg_own1"})
    shown = pv.timeline(entries, scope, ids_key=KEY)
    assert [e["type"] for e in shown] == [e["type"] for e in entries], shown


def test_a_partner_reads_a_disputes_reason_as_when_it_entered() -> None:
    """A rival joining a review makes it a collision for the staff; a partner reads the
    reason its own registration entered with (its own joining's change included)."""
    steps = [("dealreg.dispute.opened.v1", {"reason": "possible_duplicate",
                                            "registration_ids": ["reg_a", "reg_b"]}),
             ("dealreg.dispute.joined.v1", {"reason": "tie", "added_ids": ["reg_c"]}),
             ("dealreg.dispute.joined.v1", {"added_ids": ["reg_d"]})]
    assert pv.reason_when_entered(steps, {"reg_a"}) == "possible_duplicate"
    assert pv.reason_when_entered(steps, {"reg_c"}) == "tie"
    assert pv.reason_when_entered(steps, {"reg_d"}) == "tie"
    assert pv.reason_when_entered(steps, {"reg_z"}) is None
    view = {"id": "dsp_1", "status": "open", "reason": "tie", "registration_ids": ["reg_a"]}
    scope = Scope(Viewer("partner", "p-1"), own_ids=frozenset({"reg_a"}))
    assert pv.dispute(view, scope, reason="possible_duplicate")["reason"] == "possible_duplicate"
    assert pv.dispute(view, Scope(Viewer("admin")), reason="possible_duplicate")["reason"] == "tie"


@pytest.mark.parametrize(("rejected", "approved"), [
    (["reg_own1", "reg_rival2"], ["reg_rival1"]), (["reg_rival2", "reg_own1"], ["reg_rival1"]),
    (["reg_own1"], ["reg_rival1"])])
def test_a_settlements_member_lists_name_the_partners_own_alone(
        rejected: list[str], approved: list[str]) -> None:
    """"approved: reg_a; rejected: reg_b, reg_c": a loser read "rejected: <own>, another
    party" when a second rival lost beside it (and which filed first). Its own ids alone,
    whatever the count and order of the others; a list of others alone is one party."""
    sentence = (f"Dispute dsp_1 resolved as award at level 1; approved: {', '.join(approved)}; "
                f"rejected: {', '.join(rejected)} (dispute_resolution, policy v1).")
    scope = Scope(Viewer("partner", "p1"), frozenset({"reg_own1"}),
                  frozenset({"reg_rival1", "reg_rival2"}))
    assert pv.scrub(sentence, scope) == (
        "Dispute dsp_1 resolved as award at level 1; approved: another party; "
        "rejected: reg_own1 (dispute_resolution, policy v1).")
    winner = Scope(Viewer("partner", "p1"), frozenset({"reg_rival1"}),
                   frozenset({"reg_own1", "reg_rival2"}))
    assert pv.scrub(sentence, winner).endswith(
        "approved: reg_rival1; rejected: another party (dispute_resolution, policy v1).")
