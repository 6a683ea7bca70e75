"""Who may issue which command: the role and subject-binding rules of the command API.

| command                                  | admin | integr. | partner | rep    | owner    |
|------------------------------------------|-------|---------|---------|--------|----------|
| POST /v1/api-keys, PUT owners and policy | yes   | -       | -       | -      | -        |
| PUT /v1/partners/{id}                    | yes   | yes     | -       | -      | -        |
| POST /v1/registrations                   | yes   | yes     | itself  | -      | -        |
| withdraw / extend a registration         | yes   | yes     | its own | -      | -        |
| close an opportunity                     | yes   | yes     | -       | -      | -        |
| POST /v1/claims                          | yes   | yes     | -       | itself | -        |
| release a claim                          | yes   | yes     | -       | its own| -        |
| file a dispute on a registration         | yes   | yes     | its own | -      | -        |
| acknowledge / resolve a dispute          | yes   | -       | -       | -      | assigned |
| POST /v1/events                          | yes   | yes     | -       | -      | -        |

`channel_manager` reads across partners and issues no commands.

Closing is a CRM fact, not a partner's claim: a won close makes the party the account's
incumbent (a precedence rule against every later rival) and counts as partner-sourced
revenue, so only the system of record (integration) or an admin reports it. A partner
that wants out of its protection withdraws.
"-" is 403. A partner naming another partner's registration gets 404 (existence must not
leak between partners); an owner naming a dispute assigned to someone else gets 404 unless
it was assigned to that owner before (then 403): the same disputes `GET /v1/disputes/{id}`
shows it, so acting never reveals a dispute reading would hide. Adjudication checks party
and assignment again, because the read model the API consults can lag the log.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

REGISTRANTS: Final = ("partner", "integration")
CLAIMANTS: Final = ("rep", "integration")
CLOSERS: Final = ("integration",)
PARTNER_EDITORS: Final = ("integration",)
DISPUTE_ACTORS: Final = ("owner",)
INGESTERS: Final = ("integration",)
READERS: Final = ("integration", "partner", "rep", "owner", "channel_manager")


class Denied(Exception):
    """The caller may not do this; `status` is 403, or 404 when existence must not leak."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def acting_partner(role: str, subject_id: str | None, partner_id: str | None) -> str | None:
    """The partner a registration is filed for; None when the body must name one.

    A partner acts only for itself (naming another is 403); others name the partner."""
    if role == "partner":
        if partner_id is not None and partner_id != subject_id:
            raise Denied(403, "A partner registers deals only for itself.")
        return subject_id
    return partner_id


def acting_rep(role: str, subject_id: str | None, rep_id: str | None) -> str | None:
    """The rep a claim is filed for; a rep files claims only for itself."""
    if role == "rep":
        if rep_id is not None and rep_id != subject_id:
            raise Denied(403, "A rep files claims only for itself.")
        return subject_id
    return rep_id


def check_owns_registration(role: str, subject_id: str | None, owner_partner_id: str | None,
                            registration_id: str) -> None:
    """A partner may act only on its own registrations; to others they do not exist."""
    if role == "partner" and owner_partner_id != subject_id:
        raise Denied(404, f"No registration {registration_id}.")


def check_owns_claim(role: str, subject_id: str | None, rep_id: str | None,
                     claim_id: str) -> None:
    """A rep may act only on its own claims; to partners and other reps they do not exist."""
    if role == "partner" or (role == "rep" and rep_id != subject_id):
        raise Denied(404, f"No claim {claim_id}.")


def check_assigned(role: str, subject_id: str | None, assigned_owner: str | None,
                   dispute_id: str, owners: Collection[str] = ()) -> None:
    """An owner acts only on disputes currently assigned to it (unknown assignment: allowed
    here, decided by adjudication). `owners`: every owner the dispute was ever assigned to;
    to any other owner it does not exist (404), as it does not when read."""
    if role == "owner" and assigned_owner is not None and assigned_owner != subject_id:
        if subject_id not in owners:
            raise Denied(404, f"No dispute {dispute_id}.")
        raise Denied(403, f"Dispute {dispute_id} is assigned to another owner.")
