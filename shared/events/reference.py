"""Reference data on the reference topic: policy versions, partners, escalation owners.

These are not about one account, so they travel on the one-partition reference topic
(keyed `policy`, `partner:<id>`, `owner:<id>`) in a total order. The adjudicator reads policy
versions from there, so a registration is only ever stamped with a version that is already
durable on that topic; the registration service folds the same topic into its reference
tables, which makes those tables a disposable read model like any other (invariant 2).

A partner's status or tier change ALSO reaches every intake partition as
`PartnerStatusChanged` (see `lifecycle.py`), so each adjudicator sees it in order with the
registrations it decides.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from shared.events.base import DomainEvent, event_type

PartnerType = Literal["reseller", "si", "msp", "referral", "isv"]
PartnerTier = Literal["platinum", "gold", "silver", "registered"]
PartnerStatus = Literal["onboarding", "active", "suspended", "exited"]

POLICY_KEY = "policy"


def partner_key(partner_id: str) -> str:
    return f"partner:{partner_id}"


def owner_key(owner_id: str) -> str:
    return f"owner:{owner_id}"


@event_type
class PolicyPublished(DomainEvent):
    """A new, immutable version of the rules of engagement (`shared.policy.Policy`).

    `document` is the whole policy as `Policy.model_dump(mode="json")`, `version` included;
    versions on the topic increase by one without gaps. Version 1 is published with the
    built-in defaults the first time a command needs a policy and none was published, so
    every version ever stamped on an event can be read back from the log.
    """

    TYPE: ClassVar[str] = "dealreg.policy.published.v1"

    version: int
    document: dict[str, Any]
    published_at: datetime
    published_by: str | None = None


@event_type
class PartnerUpdated(DomainEvent):
    """A partner was created or changed in the partner directory (`PUT /v1/partners/{id}`).

    The webhook fields (added later, all optional so earlier events stay readable) subscribe
    the partner to `dispute.resolved`; the secrets follow `OwnerUpdated`'s rules.
    """

    TYPE: ClassVar[str] = "dealreg.partner.updated.v1"

    partner_id: str
    name: str
    type: PartnerType
    tier: PartnerTier
    region: str | None = None
    status: PartnerStatus
    updated_at: datetime
    updated_by: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_previous_secret: str | None = None
    webhook_previous_secret_until: datetime | None = None


@event_type
class OwnerUpdated(DomainEvent):
    """An escalation owner was created or changed (`PUT /v1/owners/{id}`).

    `webhook_secret` is the Standard Webhooks signing secret (`whsec_...`): the notification
    sender needs it to sign, and the log is the system of record, so it is carried here.
    The reference topic therefore needs the same access control as the database.

    During a rotation (`rotate_secret`) the replaced secret stays active for signing as
    `webhook_previous_secret` until `webhook_previous_secret_until` (optional fields, added
    later: earlier events read as "no previous secret").
    """

    TYPE: ClassVar[str] = "dealreg.owner.updated.v1"

    owner_id: str
    name: str
    email: str | None = None
    webhook_url: str | None = None
    webhook_secret: str
    updated_at: datetime
    updated_by: str | None = None
    webhook_previous_secret: str | None = None
    webhook_previous_secret_until: datetime | None = None
