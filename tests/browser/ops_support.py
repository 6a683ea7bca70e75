"""What the owner and manager browser tests share: an escalation ladder whose first level
is the `owner` key's subject, and two partners colliding on a fresh customer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.browser.conftest import DevServer

OWNER = "cm-1"     # the `owner` key's subject (tests/browser/conftest.py)
LEVEL2 = "dir-1"   # the `owner2` key's subject
LADDER = {"escalation": {
    "levels": [{"owner_id": OWNER, "sla": "P2D"}, {"owner_id": LEVEL2, "sla": "P3D"}],
    "calendar": {"timezone": "America/New_York", "working_days": [1, 2, 3, 4, 5],
                 "hours": "09:00-17:00", "holidays": "US"},
    "on_final_breach": "keep_open"}}


def put_ok(server: DevServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    with server.api() as api:
        answer = api.put(path, json=body)
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())


@contextmanager
def policy(server: DevServer, change: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The policy with `change` merged in; the one found is published again after (its
    escalation owners are created first when missing: a policy may name only existing
    owners, and the defaults name `cm-1` and `dir-1`)."""
    with server.api() as api:
        found = api.get("/v1/policy").json()
        for level in found["escalation"]["levels"]:
            if api.get(f"/v1/owners/{level['owner_id']}").status_code == 404:
                put_ok(server, f"/v1/owners/{level['owner_id']}", {"name": level["owner_id"]})
    published = put_ok(server, "/v1/policy", change)
    try:
        yield published
    finally:
        put_ok(server, "/v1/policy", {k: v for k, v in found.items() if k != "version"})


@contextmanager
def ladder(server: DevServer) -> Iterator[dict[str, Any]]:
    put_ok(server, f"/v1/owners/{OWNER}", {"name": "Lee Park", "email": "lee@vendor.example"})
    put_ok(server, f"/v1/owners/{LEVEL2}", {"name": "Rio Santos"})
    with policy(server, LADDER) as published:
        yield published


# Distinct customers (names far apart, so fuzzy name matching never links two of them).
NAMES = iter(["Globex Corporation", "Initech Software", "Umbrella Logistics",
              "Hooli Networks", "Vandelay Industries", "Tyrell Biotech", "Cyberdyne Robotics",
              "Soylent Foods", "Wonka Confectionery", "Oscorp Materials", "Pied Piper Data",
              "Massive Dynamic", "Wayne Aerospace", "Aperture Optics", "Dunder Paper",
              "Gringotts Banking", "Monarch Airways", "Nakatomi Trading", "Prestige Worldwide",
              "Sterling Cooper Media", "Acme Anvils", "Bluth Homes", "Krusty Kitchens",
              "Los Pollos Hermanos", "Ollivander Crafts", "Quahog Cannery", "Rekall Travel"])


def account(label: str, products: list[str], amount: str) -> dict[str, Any]:
    name = next(NAMES, label)
    slug = "".join(c for c in name.lower() if c.isalnum())[:12]
    return {"account": {"name": name, "domain": f"{slug}-{label[-6:]}.com",
                        "country": "US", "crm_account_id": f"CRM-{label.upper()}"},
            "opportunity": {"title": f"{name.split()[0]} rollout", "products": products,
                            "amount": {"value": amount, "currency": "USD"}},
            "motion": "resell"}


def collide(server: DevServer, keys: dict[str, str], label: str | None = None
            ) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Contoso (silver) registers a fresh customer first and is approved; Northwind (gold)
    then outranks it by tier, and since an approval is never taken away without a person a
    dispute opens: (Contoso's registration, Northwind's, the dispute id)."""
    label = label or f"x{uuid.uuid4().hex[:10]}"
    body = account(label, ["analytics"], "84000.00")
    first = server.register(keys["partner2"], body)
    body["opportunity"] = {**body["opportunity"], "products": ["analytics", "crm"],
                           "amount": {"value": "120000.00", "currency": "USD"}}
    second = server.register(keys["partner"], body)
    assert first["status"] == "approved", first
    assert second["status"] == "in_review" and second["dispute_id"], second
    return first, second, str(second["dispute_id"])


def dispute(server: DevServer, dispute_id: str) -> dict[str, Any]:
    with server.api() as api:
        answer = api.get(f"/v1/disputes/{dispute_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def until(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
