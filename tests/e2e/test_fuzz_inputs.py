"""Hypothesis against the two doors that take whole documents (issue 13): CloudEvents
ingestion (`POST /v1/events`) and policy publishing (`PUT /v1/policy`). Arbitrary JSON,
and valid documents with parts replaced by arbitrary JSON, must be answered with a 2xx or
a 4xx problem, never a 5xx, and a rejection appends nothing to the log. Bounded (well under
a minute each) and derandomized, so `make test` runs them every time.

The URL checker's fuzzers are in tests/unit/test_webhook_url_policy.py; the pure CloudEvents
parser is fuzzed below too (no HTTP)."""

from __future__ import annotations

import copy
import json
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st

with warnings.catch_warnings():  # starlette suggests httpx2; httpx is what we ship
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from dealreg.app import create_app
from services.registration.domain.cloudevents import NotCloudEvents, parse
from shared.settings import Settings

ADMIN = "fuzz-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["", "1_000", " 5", "NaN", "1e3", "\u0085", "\u202e", "\x00", "-1",
                     "2027-03-31", "P1D", "24h", "resell", "USD", "acme.com", "p-1",
                     "1.0", "dealreg.registration.submitted.v1", "9" * 40]),
)
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=20)


@st.composite
def _mutated(draw: st.DrawFn, document: Any) -> Any:
    """`document` with one to three values (at any depth) replaced or removed."""
    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        node = doc
        path: list[Any] = []
        while isinstance(node, (dict, list)) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node) if isinstance(node, dict)
                                       else list(range(len(node)))))
            path.append(key)
            node = node[key]
        if not path:
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            parent.pop(path[-1])
        else:
            parent[path[-1]] = draw(_json)
    return doc


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(backend="embedded", data_dir=Path(data_dir),
                                  admin_token=ADMIN, log_level="WARNING",
                                  topic_partitions=2))
        with TestClient(app, raise_server_exceptions=False) as running:
            yield running


def _log_size(client: TestClient, topic: str) -> int:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]

    async def size() -> int:
        return sum((await runtime.eventlog.end_positions(topic)).values())
    assert client.portal is not None
    return int(client.portal.call(size))


def _topics(client: TestClient) -> Any:
    return client.app.state.runtime.topics  # type: ignore[attr-defined]


def _assert_answered(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["status"] == response.status_code and problem["title"]


_REGISTRATION = {
    "partner_id": "p-1",
    "account": {"name": "Fuzz Corp", "domain": "fuzz.example.com", "country": "US"},
    "opportunity": {"title": "Rollout", "products": ["analytics"],
                    "amount": {"value": "1000.00", "currency": "USD"},
                    "expected_close": "2027-03-31"},
    "motion": "resell",
}
_EVENTS = [
    {"specversion": "1.0", "id": "e-1", "source": "urn:fuzz", "time": "2026-11-20T10:00:00Z",
     "type": "dealreg.registration.submitted.v1", "datacontenttype": "application/json",
     "data": _REGISTRATION},
    {"specversion": "1.0", "id": "e-2", "source": "urn:fuzz",
     "type": "dealreg.claim.filed.v1",
     "data": {"kind": "named_account", "rep_id": "rep-1",
              "account": {"name": "Fuzz Corp", "domain": "fuzz.example.com"}}},
    {"specversion": "1.0", "id": "e-3", "source": "urn:fuzz",
     "type": "crm.opportunity.closed.v1",
     "data": {"external_ref": "PRM-1", "outcome": "won", "amount": "1000.00"}},
]
_event = st.one_of(_json, *(_mutated(e) for e in _EVENTS))


@FUZZ
@given(body=st.one_of(_event, st.lists(_event, max_size=4)), batch=st.booleans(),
       unique=st.uuids())
def test_cloudevents_ingestion_answers_every_document_and_appends_only_accepted_events(
        client: TestClient, body: Any, batch: bool, unique: Any) -> None:
    # Fresh ids, so a generated event is never a duplicate of an earlier example's.
    for event in body if isinstance(body, list) else [body]:
        if isinstance(event, dict) and isinstance(event.get("id"), str):
            event["id"] = f"{event['id']}-{unique}"
    intake = _topics(client).intake
    before = _log_size(client, intake)
    response = client.post(
        "/v1/events", content=json.dumps(body).encode(),
        headers={**AUTH, "content-type": "application/cloudevents-batch+json" if batch
                 else "application/cloudevents+json"})
    _assert_answered(response)
    appended = _log_size(client, intake) - before
    note_event(f"HTTP {response.status_code}")
    if response.status_code != 202:
        assert appended == 0, response.text
        return
    report = response.json()
    note_event(f"accepted {report['accepted']}, rejected {report['rejected']}")
    assert report["accepted"] + report["duplicates"] + report["rejected"] == len(
        report["results"])
    for result in report["results"]:
        if result["status"] == "rejected":
            assert 400 <= result["http_status"] < 500, result
            assert result["problem"]["status"] == result["http_status"]
    assert appended == report["accepted"], report


@settings(max_examples=2000, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(payload=st.one_of(_json, st.lists(_json, max_size=5), *(_mutated(e) for e in _EVENTS)),
       batch=st.booleans())
def test_the_cloudevents_parser_never_raises_but_its_own_refusal(payload: Any,
                                                                 batch: bool) -> None:
    try:
        events = parse(payload, batch=batch, limit=3)
    except NotCloudEvents:
        return
    for event in events:
        assert event.valid == (not event.errors)
        if event.valid:
            assert event.id and event.source and event.type and isinstance(event.data, dict)


_POLICY = {
    "scope": "account_product", "protection_period": "P90D",
    "extension": {}, "exclusive_motions": ["resell", "co_sell"], "tie_window": "PT24H",
    "incumbency_window": "P365D",
    "match": {}, "escalation": {
        "calendar": {"timezone": "Europe/Berlin", "working_days": [1, 2, 3, 4, 5],
                     "hours": "09:00-17:00", "holidays": "DE"},
        "levels": [{"owner_id": "cm-1", "sla": "P2D"}, {"owner_id": "dir-1", "sla": "P1D"}],
        "on_final_breach": "keep_open", "reminder_before": "PT4H"},
}


@FUZZ
@given(document=st.one_of(_json, _mutated(_POLICY)))
def test_policy_documents_are_published_or_refused_clearly_never_a_500(
        client: TestClient, document: Any) -> None:
    reference = _topics(client).reference
    current = client.get("/v1/policy", headers=AUTH)
    assert current.status_code == 200, current.text
    before = _log_size(client, reference)
    response = client.put("/v1/policy", content=json.dumps(document).encode(),
                          headers={**AUTH, "content-type": "application/json"})
    _assert_answered(response)
    note_event(f"HTTP {response.status_code}")
    assert response.status_code in (200, 201, 409, 422), response.text
    if response.status_code == 201:
        published = response.json()
        assert published["version"] == current.json()["version"] + 1
        assert _log_size(client, reference) == before + 1
        again = client.get("/v1/policy", headers=AUTH)
        assert again.status_code == 200 and again.json() == published
        # The adjudicator still decides under it (an accepted policy must be usable).
        decided = client.post("/v1/registrations", json=_REGISTRATION,
                              headers={**AUTH, "Prefer": "wait=5"})
        assert decided.status_code == 201, decided.text
    else:
        assert _log_size(client, reference) == before, response.text
