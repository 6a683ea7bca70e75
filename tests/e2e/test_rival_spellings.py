"""Session 26 rival review, through the HTTP API on the embedded backend: a partner who
wants a customer another partner holds (or wants to keep two customers apart, or make two
one) spells the same facts differently. Each test here failed before its fix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from dealreg.app import create_app
from shared.settings import Settings
from tests.e2e.conftest import ADMIN, _serve

WAIT = {"Prefer": "wait=15"}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncExitStack() as stack:
        settings = Settings(backend="embedded", data_dir=tmp_path, admin_token=ADMIN)
        yield await _serve(stack, create_app(settings))


async def submit(client: httpx.AsyncClient, partner: str, products: list[str] | None = None,
                 **account: Any) -> dict[str, Any]:
    response = await client.post("/v1/registrations", headers=WAIT, json={
        "partner_id": partner, "account": {"country": "US", **account},
        "opportunity": {"title": "Rollout", "products": products or ["analytics"]},
        "motion": "resell"})
    assert response.status_code == 201, response.text
    decided: dict[str, Any] = response.json()
    return decided


def weighed(decided: dict[str, Any]) -> list[str | None]:
    return [c["registration_id"] for c in decided["decision"]["conflicts"]]


async def test_a_product_in_another_case_width_or_spacing_is_the_same_product(
    client: httpx.AsyncClient,
) -> None:
    """Scope `account_product` compares product sets. "Analytics", "ANALYTICS",
    full-width "analytics" (U+FF41...) and "Data  Lake" were other products than "analytics" and
    "data lake": a rival was approved beside the holder on the same customer and product,
    two exclusive protections at once (the registration search already read them case
    blind and listed both as the same product)."""
    holder = await submit(client, "p-1", ["analytics", "data lake"], name="Initech",
                          domain="initech-rival.com")
    assert holder["status"] == "approved", holder
    wide = "".join(chr(ord(c) + 0xFEE0) for c in "analytics")  # full-width letters
    for n, products in enumerate((["Analytics"], ["ANALYTICS"], [wide], ["Data  Lake"],
                                  ["DATA\u00a0LAKE"])):
        rival = await submit(client, f"p-r{n}", products, name="Initech",
                             domain="initech-rival.com")
        assert rival["status"] != "approved", (products, rival["decision"])
        assert holder["id"] in weighed(rival), (products, rival["decision"])
    # The ownership look-up reads a product the same way.
    owners = (await client.get("/v1/ownership", params={
        "domain": "initech-rival.com", "product": "Analytics"})).json()["owners"]
    assert holder["id"] in [o["registration_id"] for o in owners], owners


async def test_a_look_alike_letter_in_a_product_name_is_the_same_product(
    client: httpx.AsyncClient,
) -> None:
    """Product names are filed in one spelling (case, width, spacing), but a Cyrillic A or
    a Greek iota in a Latin word kept "Analytics" so spelled another product than
    "analytics", though drawn alike: under scope `account_product` the rival was approved
    on the holder's customer and product (what the look-alike folding of names closed for
    customers). In
    a word that mixes them with Latin letters, look-alikes read as the Latin letter; a
    product named wholly in another script is kept as written."""
    holder = await submit(client, "p-1", ["analytics", "crm"], name="Initech",
                          domain="initech-lookalike.com")
    assert holder["status"] == "approved", holder
    for n, products in enumerate((["\u0410nalytics"], ["\u0430nalytics"],
                                  ["Anal\u0443tics"], ["cr\u043c"], ["analyt\u03b9cs"])):
        rival = await submit(client, f"p-r{n}", products, name="Initech",
                             domain="initech-lookalike.com")
        assert rival["status"] != "approved", (products, rival["decision"])
        assert holder["id"] in weighed(rival), (products, rival["decision"])
    kept = await submit(client, "p-9", ["\u0410\u043d\u0430\u043b\u0438\u0442\u0438\u043a\u0430"],
                        name="Initech", domain="initech-lookalike.com")
    assert kept["opportunity"]["products"] == [
        "\u0430\u043d\u0430\u043b\u0438\u0442\u0438\u043a\u0430"], kept  # аналитика


async def test_a_trademark_sign_or_a_look_alike_letter_does_not_make_another_customer(
    client: httpx.AsyncClient,
) -> None:
    """A name-only holder of "Acme Corp" (US). "Acme Corp™" normalised to "acme corptm"
    (NFKD spells the sign TM, glued to the legal form, which then stayed), and a Cyrillic
    A or o (U+0410, U+043E) in "Acme Corp" / "Acme Corp" made a name that scored
    0.75 / 0.62 against "acme": each rival was approved as a new customer beside the
    holder."""
    holder = await submit(client, "p-1", name="Acme Corp")
    assert holder["status"] == "approved", holder
    for n, name in enumerate(("Acme Corp\u2122", "ACME\u2122 Corp.", "Acme Corp\u2120",
                              "\u0410cme Corp", "Acme C\u043erp", "\u0391CME Inc",
                              "\u0410\u0421\u041c\u0415 Corp")):
        rival = await submit(client, f"p-r{n}", name=name)
        assert rival["account_key"] == holder["account_key"], (name, rival["account_key"])
        assert rival["status"] != "approved", (name, rival["decision"])
        assert holder["id"] in weighed(rival), (name, rival["decision"])


async def test_businesses_on_a_site_host_s_tenant_subdomains_stay_different_customers(
    client: httpx.AsyncClient,
) -> None:
    """A site host or SaaS whose tenants each get a subdomain that the public suffix list
    does not know (acme.odoo.com, acme.blogspot.de, acme.jimdofree.com, acme.hs-sites.com,
    acme.ghost.io, ...) filed every tenant under the host's `dom:` key: the first partner
    to register any one of them blocked every other business there (the second tied
    against a stranger), and a rival could make two customers one."""
    hosts = ("odoo.com", "blogspot.de", "blogspot.co.uk", "jimdofree.com", "jimdo.com",
             "hs-sites.com", "ghost.io", "strikingly.com", "typepad.com", "tilda.ws",
             "webnode.page", "e-monsite.com", "over-blog.com", "mailchimpsites.com",
             "home.blog", "canalblog.com", "tistory.com", "neocities.org")
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(26)
    names: list[str] = []
    while len(names) < 2 * len(hosts):  # two distinct companies per host, none alike
        name = fake.company()
        if all(name.split()[0] != other.split()[0] for other in names):
            names.append(name)
    for n, host in enumerate(hosts):
        first = await submit(client, f"p-{n}a", name=names[2 * n],
                             domain=f"https://bakery{n}.{host}/")
        second = await submit(client, f"p-{n}b", name=names[2 * n + 1],
                              domain=f"https://plumbing{n}.{host}")
        assert first["account_key"] != second["account_key"], (host, first["account_key"])
        assert not first["account_key"].startswith("dom:"), (host, first["account_key"])
        assert (first["status"], second["status"]) == ("approved", "approved"), (
            host, first["decision"]["rule"], second["decision"]["rule"])


async def test_another_crm_id_on_a_name_held_with_a_crm_id_goes_to_a_person(
    client: httpx.AsyncClient,
) -> None:
    """A holder known by name and CRM id (no domain). Different CRM ids are different
    customers, so any other CRM id on the same name -- a made-up one, or the holder's own
    in another case, width or spacing -- was dropped as another customer's and the rival
    approved `no_conflict` beside the holder, unseen. Now it goes in review as a
    `possible_duplicate` (as the same domain under another CRM id does): never merged,
    never silently ignored."""
    holder = await submit(client, "p-1", name="Zorblax Corp", crm_account_id="ACC-1001")
    assert holder["status"] == "approved", holder
    rival = await submit(client, "p-r0", name="Zorblax Corp", crm_account_id="FAKE-9")
    assert rival["account_key"] != holder["account_key"]  # never one customer
    assert (rival["status"], rival["decision"]["rule"]) == (
        "in_review", "possible_duplicate"), rival["decision"]
    # The holder's own id in another case, width or spacing is the holder's id under the
    # default `match.crm_ids: any_spelling` (session 28): the holder's customer, where
    # the later registration within the tie window is a tie on it (before: another
    # customer, a possible duplicate).
    wide = "".join(chr(ord(c) + 0xFEE0) for c in "ACC")
    for n, crm in enumerate(("acc-1001", f"{wide}-1001", "ACC 1001"), start=1):
        rival = await submit(client, f"p-r{n}", name="Zorblax Corp", crm_account_id=crm)
        assert rival["account_key"] == holder["account_key"], (crm, rival)
        assert (rival["status"], rival["decision"]["rule"]) == ("in_review", "tie"), (
            crm, rival["decision"])
    # Two companies of one name, each with its own domain, stay apart unseen.
    first = await submit(client, "p-d1", name="Anderson Ltd", domain="anderson-ltd.com",
                         crm_account_id="CRM-A")
    second = await submit(client, "p-d2", name="Anderson Inc", domain="anderson.com",
                          crm_account_id="CRM-B")
    assert (first["status"], second["status"]) == ("approved", "approved")
