"""Building intake events from validated commands: pure, given ids, time and stamps."""

from __future__ import annotations

from datetime import datetime

from shared.accounts import (
    AccountIdentity,
    is_freemail_domain,
    is_platform_page,
    registrable_domain,
)
from shared.events import Account, Amount, Opportunity, PartnerSnapshot, RegistrationSubmitted


class InvalidAccount(ValueError):
    """The account cannot be identified (no domain, CRM id, or name with country)."""


def identity_of(name: str | None, domain: str | None, country: str | None,
                crm_account_id: str | None, *, website: str | None = None,
                email: str | None = None) -> AccountIdentity:
    """The normalized identity of a submitted account; `domain` may be a URL or e-mail."""
    identity = AccountIdentity.from_raw(
        name=name, domain=domain, website=website,
        email=email or (domain if domain and "@" in domain else None),
        country=country, crm_account_id=crm_account_id,
    )
    if identity.is_empty():
        freemail = [v for v in (domain, website, email)
                    if v and (found := registrable_domain(v)) and is_freemail_domain(found)]
        pages = [v for v in (domain, website, email) if v and is_platform_page(v)]
        hint = (f" ({freemail[0]!r} is a free-mail address, which identifies no company)"
                if freemail else
                f" ({pages[0]!r} is a page on a platform, whose domain identifies no company)"
                if pages else "")
        raise InvalidAccount(
            "identify the account by a domain (website or e-mail), a CRM account id, "
            f"or a name with a country{hint}"
        )
    return identity


def registration_submitted(
    *,
    registration_id: str,
    partner: PartnerSnapshot,
    account_key: str,
    raw_account_name: str | None,
    identity: AccountIdentity,
    title: str,
    products: list[str],
    amount: tuple[str, str] | None,
    expected_close: object,
    motion: str,
    external_ref: str | None,
    submitted_at: datetime,
    policy_version: int,
) -> RegistrationSubmitted:
    return RegistrationSubmitted.model_validate({
        "registration_id": registration_id,
        "partner_id": partner.partner_id,
        "partner": partner,
        "account_key": account_key,
        "account": Account(name=raw_account_name, domain=identity.domain,
                           country=identity.country, crm_account_id=identity.crm_account_id),
        "opportunity": Opportunity.model_validate({
            "title": title,
            "products": sorted(set(products)),
            "amount": Amount(value=amount[0], currency=amount[1]) if amount else None,
            "expected_close": expected_close,
        }),
        "motion": motion,
        "external_ref": external_ref,
        "submitted_at": submitted_at,
        "policy_version": policy_version,
    })
