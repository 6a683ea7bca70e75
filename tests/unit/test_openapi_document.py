"""The OpenAPI document tells the truth, for every operation (also those added later).

The checks run on `/openapi.json` of the app with every component (what `dealreg dev`
serves and the gateway's document describes); they are generic over all operations, so a new
endpoint fails here until it follows the same rules.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec

from dealreg.app import create_app
from shared.api.openapi import CAMEL_CASE, HEADERS, OPERATION_IDS, SWAGGER_UI
from shared.api.problems import install_problem_handlers
from shared.settings import Settings

COMMITTED = Path(__file__).with_name("openapi_operation_ids.txt")
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    app = create_app(Settings(backend="embedded", data_dir=tmp_path_factory.mktemp("doc"),
                              admin_token="t"))
    return TestClient(app)  # not started: no lifespan, the document needs none


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, operation) for path, item in document["paths"].items()
            for method, operation in item.items() if method in METHODS]


def committed() -> dict[str, str]:
    lines = [line.rsplit(" ", 1) for line in COMMITTED.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return {key: value for key, value in lines}


def validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for `schema` whose `#/components/...` references resolve in the document
    (the components ride along in the root schema, where JSON Schema ignores them)."""
    return Draft202012Validator({"components": document["components"], "allOf": [schema]})


# --- operation ids ----------------------------------------------------------------------


def test_operation_ids_are_unique_camel_case_and_as_committed(document: dict[str, Any]
                                                              ) -> None:
    ids = [(f"{m.upper()} {p}", o.get("operationId")) for m, p, o in operations(document)]
    assert len(ids) >= 30
    names = [i for _, i in ids]
    assert len(names) == len(set(names)), "operation ids must be unique"
    for key, name in ids:
        assert name and CAMEL_CASE.match(name), f"{key}: {name!r} is not camelCase"
    pinned = committed()
    assert len(set(pinned.values())) == len(pinned), "the committed list repeats an id"
    for key, name in ids:
        assert key in pinned, (f"{key} ({name}) is not in {COMMITTED.name}: add its line "
                               "(ids are a published contract)")
        assert pinned[key] == name, f"{key}: id changed from {pinned[key]} to {name}"
    # The table in the code names only committed ids: nothing drifts silently.
    assert {k: v for k, v in pinned.items() if k in OPERATION_IDS} == OPERATION_IDS


# --- problems ---------------------------------------------------------------------------


def test_every_error_response_is_the_problem_schema_and_nothing_else(document: dict[str, Any]
                                                                     ) -> None:
    text = json.dumps(document)
    assert "HTTPValidationError" not in text
    assert '"#/components/schemas/ValidationError"' not in text
    checked = 0
    for method, path, operation in operations(document):
        responses = operation["responses"]
        assert "500" in responses, (method, path)
        if path.startswith("/v1"):
            assert {"401", "429"} <= set(responses), (method, path)
        for status, response in responses.items():
            if not (status[0] in "45" or status == "default"):
                continue
            content = response.get("content", {})
            assert set(content) == {"application/problem+json"}, (method, path, status)
            expected = "ValidationProblem" if status == "422" else "Problem"
            media = content["application/problem+json"]
            assert media["schema"] == {"$ref": f"#/components/schemas/{expected}"}
            validator(document, media["schema"]).validate(media["example"])
            assert media["example"]["status"] == int(status)
            checked += 1
    assert checked > 200
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status"}
    validation = document["components"]["schemas"]["ValidationProblem"]
    assert validation["allOf"][1]["required"] == ["errors"]


def test_the_documented_problems_are_what_the_handlers_answer(document: dict[str, Any]
                                                               ) -> None:
    """The problem handlers every app installs answer what the document says (422 with
    `errors[]`, 404, 405), whatever the route."""
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/things/{number}")
    async def thing(number: int) -> dict[str, int]:
        return {"number": number}

    client = TestClient(app)
    for path, status, schema in (("/things/x", 422, "ValidationProblem"),
                                 ("/nothing", 404, "Problem"),
                                 ("/things/1?", 405, "Problem")):
        answer = (client.post(path) if status == 405 else client.get(path))
        assert answer.status_code == status
        assert answer.headers["content-type"] == "application/problem+json"
        validator(document, {"$ref": f"#/components/schemas/{schema}"}).validate(answer.json())


# --- headers ----------------------------------------------------------------------------


def test_response_headers_are_documented_where_the_code_sets_them(document: dict[str, Any]
                                                                  ) -> None:
    assert set(HEADERS) <= set(document["components"]["headers"])
    commands = 0
    for method, path, operation in operations(document):
        header_params = {p["name"].lower() for p in operation.get("parameters", [])
                         if p["in"] == "header"}
        for status, response in operation["responses"].items():
            headers = response.get("headers", {})
            assert "X-Request-ID" in headers, (method, path, status)
            if status in ("429", "503"):
                assert "Retry-After" in headers, (method, path, status)
            if status == "401":
                assert "WWW-Authenticate" in headers, (method, path)
            if status.startswith("2") and "prefer" in header_params:
                assert {"X-Log-Position", "Preference-Applied", "Location"} <= set(headers)
                commands += 1
            if status.startswith("2") and "idempotency-key" in header_params:
                assert "Idempotent-Replayed" in headers, (method, path, status)
    assert commands >= 9
    submit = document["paths"]["/v1/registrations"]["post"]["responses"]["201"]["headers"]
    assert submit["X-Log-Position"] == {"$ref": "#/components/headers/X-Log-Position"}


# --- examples ---------------------------------------------------------------------------


def test_every_schema_has_an_example_that_satisfies_it(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert len(schemas) >= 50
    for name, schema in schemas.items():
        examples = schema.get("examples") or ([schema["example"]] if "example" in schema
                                              else [])
        assert examples, f"{name} has no example"
        check = validator(document, {"$ref": f"#/components/schemas/{name}"})
        for example in examples:
            errors = [e.message for e in check.iter_errors(example)]
            assert not errors, f"{name}'s example does not satisfy it: {errors[:3]}"


def test_every_operation_example_satisfies_its_schema(document: dict[str, Any]) -> None:
    checked = 0
    for method, path, operation in operations(document):
        bodies = [operation.get("requestBody", {})]
        bodies += list(operation["responses"].values())
        for body in bodies:
            for media in body.get("content", {}).values():
                if "example" in media and "schema" in media:
                    errors = [e.message for e in
                              validator(document, media["schema"]).iter_errors(
                                  media["example"])]
                    assert not errors, (method, path, errors[:3])
                    checked += 1
    assert checked > 100


# --- webhooks, the document as a whole ------------------------------------------------------


def test_webhooks_describe_the_notifications_with_standard_webhooks_headers(
        document: dict[str, Any]) -> None:
    from services.projections.domain.notifications import _TYPES

    hooks = document["webhooks"]
    kinds = set()
    for name, item in hooks.items():
        post = item["post"]
        names = {p["name"] for p in post["parameters"] if p["in"] == "header"}
        assert names == {"webhook-id", "webhook-timestamp", "webhook-signature"}, name
        media = post["requestBody"]["content"]["application/json"]
        validator(document, media["schema"]).validate(media["example"])
        kinds.add(media["example"]["type"])
    assert kinds == set(_TYPES.values()), "a notification type is not documented"


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate_spec(document)


# --- docs offline ---------------------------------------------------------------------------


def test_docs_load_every_asset_from_this_server(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.text
    assert not re.search(r"(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}", html), \
        "a URL of another host in /docs"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 3
    for asset in assets:
        assert asset.startswith("/"), asset
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 500, asset
    assert "validatorUrl: null" in html  # the validator badge would call out
    assert 'url: "/openapi.json"' in html
    assert (SWAGGER_UI / "swagger-ui-bundle.js").stat().st_size > 1_000_000
    assert client.get("/redoc").status_code == 404  # not kept: it needs a CDN
