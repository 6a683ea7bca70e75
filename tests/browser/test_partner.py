"""A partner in the console: registers a deal, sees the decision and its explanation, acts
on it, and never reaches another partner's registration."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.browser.conftest import Console, DevServer
from tests.browser.ops_support import policy


def _company(name: str = "fabrikam") -> str:
    """A domain label no other test uses (one dev server serves the whole session)."""
    return f"{name}-{uuid.uuid4().hex[:6]}"


def test_a_partner_registers_and_sees_the_decision_and_its_explanation(
        console: Console, keys: dict[str, str]) -> None:
    company = _company()
    console.sign_in(keys["partner"])
    console.submit("#register-link")
    console.wait_for("#submit-registration")
    console.fill({"account.name": "Fabrikam Inc", "account.domain": f"{company}.com",
                  "account.country": "US", "opportunity.title": "Data platform rollout",
                  "opportunity.products": "analytics, storage",
                  "opportunity.amount.value": "250000.00",
                  "opportunity.amount.currency": "USD", "external_ref": "NW-1042"})
    console.submit("#submit-registration")
    console.wait_for("#explanation")
    assert console.path.startswith("/console/partner/registrations/reg_")
    assert console.text("#done") == "Registered."
    assert console.text("#status") == "approved"
    explanation = console.text("#explanation")
    assert explanation.startswith("Approved:") and f"{company}.com" in explanation
    # The decision is in the timeline too, with its time in the viewer's timezone and the
    # UTC value on hover.
    timeline = console.text("#timeline")
    assert "registration submitted" in timeline and "registration decided" in timeline
    stamp = console.find("#protected-until time")
    utc = stamp.get_attribute("title")
    assert utc.endswith(" UTC") and utc == stamp.get_attribute("datetime")[:16].replace(
        "T", " ") + " UTC"
    assert stamp.text.endswith(("EST", "EDT")), stamp.text  # the browser's zone (New York)
    console.screenshot("registration")

    console.go("/console/partner/")
    row = console.find("#registrations tbody tr")
    assert "Fabrikam Inc" in row.text and "approved" in row.text
    assert "Approved:" in row.find_element("css selector", "td.explanation").text


def test_field_errors_appear_next_to_their_fields_and_nothing_typed_is_lost(
        console: Console, keys: dict[str, str]) -> None:
    console.sign_in(keys["partner"])
    console.go("/console/partner/register")
    typed = {"account.name": "Tailspin Toys", "account.domain": "not a domain",
             "account.country": "US", "opportunity.title": "Toys for everyone",
             "opportunity.products": "analytics", "opportunity.amount.value": "10.123",
             "opportunity.amount.currency": "USD", "external_ref": "NW-7"}
    console.fill(typed)
    console.submit("#submit-registration")
    console.wait_for("#form-errors")
    domain_error = console.text("#account-domain-error")
    assert "not a domain" in domain_error
    assert "2 decimal places" in console.text("#opportunity-amount-value-error")
    field = console.find("#account-domain")
    assert field.get_attribute("aria-invalid") == "true"
    assert field.get_attribute("aria-describedby") == "account-domain-error"
    # Fields without a problem carry no error, and every value typed is still there.
    assert console.find_all("#account-name-error") == []
    for name, value in typed.items():
        assert console.find(f"[name='{name}']").get_attribute("value") == value, name
    console.screenshot("register-error")

    # A whole-fieldset rule (identify the customer; checked once the fields are valid)
    # shows at its fieldset.
    console.fill({"account.domain": "", "account.country": "",
                  "opportunity.amount.value": "10.12"})
    console.submit("#submit-registration")
    console.wait_for("#form-errors")
    assert "identify the account" in console.text("#account-error")


def test_a_session_that_ends_mid_form_keeps_what_was_typed_through_sign_in(
        console: Console, dev_server: DevServer, keys: dict[str, str]) -> None:
    """The form used to come back empty after signing in again; now Chromium's own form
    post (its Sec-Fetch-Site header) is carried through the sign-in page and offered."""
    domain = f"{_company('lapsed')}.com"
    console.sign_in(keys["partner"])
    console.go("/console/partner/register")
    console.fill({"account.name": "Lapsed Session AG", "account.domain": domain,
                  "account.country": "DE", "opportunity.title": "Typed once"})
    console.driver.delete_cookie("dealreg_session")  # expired while the partner typed
    console.submit("#submit-registration")
    assert "not sent" in console.wait_text("main .notice")
    console.fill({"api_key": keys["partner"]})
    console.submit("form[action='/console/sign-in'] button[type=submit]")
    assert domain in console.wait_text("#resume-fields")
    console.submit("#resume-send")
    console.wait_for("#explanation")
    assert console.path.startswith("/console/partner/registrations/reg_")
    assert console.text("#status") == "approved"
    assert "Typed once" in console.text("main")


def test_a_partner_cannot_reach_another_partners_registration(
        console: Console, dev_server: DevServer, keys: dict[str, str]) -> None:
    company = _company("wingtip")
    theirs = dev_server.register(keys["partner2"], {
        "account": {"name": "Wingtip", "domain": f"{company}.com", "country": "DE"},
        "opportunity": {"title": "Contoso only"}, "motion": "resell"})
    console.sign_in(keys["partner"])
    console.go(f"/console/partner/registrations/{theirs['id']}")
    assert "Not found" in console.text("h1")
    assert company not in console.driver.page_source
    assert "Contoso only" not in console.driver.page_source
    with dev_server.api(keys["partner"]) as api:
        assert api.get(f"/v1/registrations/{theirs['id']}").status_code == 404
        assert api.get(f"/v1/registrations/{theirs['id']}/timeline").status_code == 404
    # Nor can it act on it: the API's 404 again, nothing withdrawn.
    with httpx.Client(base_url=dev_server.base) as browser:
        for cookie in console.driver.get_cookies():
            browser.cookies.set(cookie["name"], cookie["value"])
        page = browser.get("/console/partner/")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        answer = browser.post(f"/console/partner/registrations/{theirs['id']}/withdraw",
                              data={"csrf": csrf})
        assert answer.status_code == 404
    with dev_server.api(keys["partner2"]) as api:
        assert api.get(f"/v1/registrations/{theirs['id']}").json()["status"] == "approved"


def test_a_partner_withdraws_and_an_early_extension_shows_the_apis_reason(
        console: Console, dev_server: DevServer, keys: dict[str, str]) -> None:
    mine = dev_server.register(keys["partner"], {
        "account": {"name": "Litware", "domain": f"{_company('litware')}.com", "country": "US"},
        "opportunity": {"title": "Litware renewal"}, "motion": "resell"})
    console.sign_in(keys["partner"])
    console.go(f"/console/partner/registrations/{mine['id']}")
    console.submit("#extend")
    error = console.wait_text("#action-error")
    assert "can be extended only in the last" in error
    console.driver.execute_script(
        "document.querySelector('form[data-confirm]').removeAttribute('data-confirm')")
    console.submit("#withdraw")
    console.wait_for("#done")
    assert console.text("#status") == "withdrawn"
    assert "registration withdrawn" in console.text("#timeline")
    assert console.find_all("#withdraw") == []


def test_a_partner_outranked_by_a_rival_contests_and_never_sees_who_the_rival_is(
        console: Console, dev_server: DevServer, keys: dict[str, str]) -> None:
    domain = f"{_company('adventure-works')}.com"
    account = {"name": "Adventure Works", "domain": domain, "country": "US"}
    # Gold Northwind first, silver Contoso minutes later: the tier rule rejects Contoso.
    rival = dev_server.register(keys["partner"], {
        "account": account, "opportunity": {"title": "Northwind's deal"}, "motion": "resell"})
    assert rival["status"] == "approved", rival
    mine = dev_server.register(keys["partner2"], {
        "account": account, "opportunity": {"title": "Contoso's deal"}, "motion": "resell"})
    assert mine["status"] == "rejected", mine

    console.sign_in(keys["partner2"])
    console.go(f"/console/partner/registrations/{mine['id']}")
    assert console.text("#status") == "rejected"
    explanation = console.text("#explanation")
    assert explanation.startswith("Rejected:") and mine["decision"]["rule"] in explanation
    assert "another partner" in console.text("#conflicts")
    page = console.driver.page_source
    for secret in (rival["id"], "p-northwind", "Northwind"):
        assert secret not in page, secret

    # An empty reason is the API's field error, next to the reason.
    console.submit("#contest")
    assert console.wait_text("#reason-error")
    console.fill({"reason": "We introduced Adventure Works at the spring summit."})
    console.submit("#contest")
    console.wait_for("#done")
    assert "Decision contested" in console.text("#done")
    assert console.find_all("#contest") == []
    assert "dispute" in console.text("#timeline")
    for secret in (rival["id"], "p-northwind", "Northwind"):
        assert secret not in console.driver.page_source, secret


def test_a_rep_claims_an_account_sees_the_decision_and_releases_it(
        console: Console, keys: dict[str, str]) -> None:
    domain = f"{_company('proseware')}.com"
    console.sign_in(keys["rep"])
    assert console.find_all("#register-link") == []  # reps claim; partners register
    console.submit("#claim-link")
    console.fill({"account.name": "Proseware", "account.domain": "proseware",
                  "account.country": "US"})
    console.submit("#submit-claim")
    assert "not a domain" in console.wait_text("#account-domain-error")
    assert console.find("[name='account.name']").get_attribute("value") == "Proseware"
    console.fill({"account.domain": domain})
    console.submit("#submit-claim")
    console.wait_for("#done")
    assert console.path.startswith("/console/partner/claims/clm_")
    assert console.text("#status") == "approved"
    assert console.text("#explanation").startswith("Approved:")
    console.driver.execute_script(
        "document.querySelector('form[data-confirm]').removeAttribute('data-confirm')")
    console.submit("#release")
    assert "Claim released" in console.wait_text("#done")
    assert console.text("#status") == "withdrawn"
    assert console.find_all("#release") == []


def test_my_registrations_list_status_protection_and_explanation_and_filter_by_status(
        console: Console, dev_server: DevServer, keys: dict[str, str]) -> None:
    made = [dev_server.register(keys["partner"], {
        "account": {"name": name, "domain": f"{_company(name.split()[0].lower())}.com",
                    "country": "US"},
        "opportunity": {"title": title, "products": ["analytics"],
                        "amount": {"value": amount, "currency": "USD"}},
        "motion": "resell"}) for name, title, amount in (
            ("Woodgrove Bank", "Fraud analytics", "480000.00"),
            ("Alpine Ski House", "Booking platform", "95000.00"))]
    with dev_server.api(keys["partner"]) as api:
        assert api.post(f"/v1/registrations/{made[1]['id']}/withdraw").status_code in (200,
                                                                                        202)
    console.sign_in(keys["partner"])
    rows = {r.get_attribute("data-id"): r.text
            for r in console.find_all("#registrations tbody tr")}
    assert "approved" in rows[made[0]["id"]] and "Approved:" in rows[made[0]["id"]]
    assert "withdrawn" in rows[made[1]["id"]]
    # Only this partner's registrations, never Contoso's.
    with dev_server.api(keys["partner"]) as api:
        own = {r["id"] for r in api.get("/v1/registrations", params={"limit": 100})
               .json()["items"]}
    assert set(rows) == own
    console.screenshot("partner-registrations")
    console.fill({"status": "withdrawn"})
    console.submit("#filter")
    console.wait_for("#registrations")
    shown = [r.get_attribute("data-id") for r in console.find_all("#registrations tbody tr")]
    assert made[1]["id"] in shown and made[0]["id"] not in shown
    assert all("withdrawn" in r.text for r in console.find_all("#registrations tbody tr"))


def _twice(console: Console, dev_server: DevServer, page: str, form: str,
           data: dict[str, str]) -> list[httpx.Response]:
    """Sends the form `form` of `page` (as the browser shows it: its CSRF token and its
    Idempotency-Key) twice at once, as a double click does, then once more, as a browser
    retrying the POST does."""
    console.go(page)
    element = console.find(form)
    fields = {i.get_attribute("name"): i.get_attribute("value") or ""
              for i in element.find_elements("css selector", "input[type=hidden]")}
    assert fields.get("idempotency_key"), f"{form} carries no Idempotency-Key"
    action = element.get_attribute("action")
    cookies = {c["name"]: c["value"] for c in console.driver.get_cookies()}

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=dev_server.base, cookies=cookies, timeout=30) as browser:
            return browser.post(action, data={**fields, **data})

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(post, range(2)))
    return [*answers, post(2)]


def _count(dev_server: DevServer, token: str, registration_id: str, kind: str) -> int:
    with dev_server.api(token) as api:
        entries = api.get(f"/v1/registrations/{registration_id}/timeline").json()["entries"]
    return sum(1 for e in entries if e["type"] == kind)


def test_a_double_submitted_extend_withdraw_or_contest_applies_once(
        console: Console, dev_server: DevServer, keys: dict[str, str]) -> None:
    with policy(dev_server, {"extension": {"window": None, "max_extensions": 3}}):
        mine = dev_server.register(keys["partner"], {
            "account": {"name": "Coho Winery", "domain": f"{_company('coho')}.com",
                        "country": "US"},
            "opportunity": {"title": "Coho cellar"}, "motion": "resell"})
        assert mine["status"] == "approved", mine
        domain = f"{_company('fourth-coffee')}.com"
        account = {"name": "Fourth Coffee", "domain": domain, "country": "US"}
        rival = dev_server.register(keys["partner"], {
            "account": account, "opportunity": {"title": "Beans"}, "motion": "resell"})
        lost = dev_server.register(keys["partner2"], {
            "account": account, "opportunity": {"title": "More beans"}, "motion": "resell"})
        assert (rival["status"], lost["status"]) == ("approved", "rejected"), (rival, lost)
    console.sign_in(keys["partner"])
    page = f"/console/partner/registrations/{mine['id']}"

    answers = _twice(console, dev_server, page, "form[action$='/extend']", {})
    assert [a.status_code for a in answers] == [303] * 3, [a.text[:300] for a in answers]
    assert {a.headers["location"] for a in answers} == {f"{page}?done=extended"}
    assert _count(dev_server, keys["partner"], mine["id"],
                  "dealreg.protection.extended.v1") == 1
    with dev_server.api(keys["partner"]) as api:
        assert api.get(f"/v1/registrations/{mine['id']}").json()["extensions"] == 1

    console.driver.refresh()
    answers = _twice(console, dev_server, page, "form[action$='/withdraw']", {})
    assert [a.status_code for a in answers] == [303] * 3, [a.text[:300] for a in answers]
    assert _count(dev_server, keys["partner"], mine["id"],
                  "dealreg.registration.withdrawn.v1") == 1
    console.sign_out()

    console.sign_in(keys["partner2"])
    answers = _twice(console, dev_server, f"/console/partner/registrations/{lost['id']}",
                     "#contest-form", {"reason": "We met them at the spring fair."})
    assert [a.status_code for a in answers] == [303] * 3, [a.text[:300] for a in answers]
    assert _count(dev_server, keys["partner2"], lost["id"], "dealreg.dispute.filed.v1") == 1
    console.sign_out()
