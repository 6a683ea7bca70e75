"""The escalation owners the policy in force names must exist: a dispute assigned to an
owner nobody can act as is never worked.

At start the registration service looks them up. Missing ones are created when
`DEALREG_SEED_DEFAULT_OWNERS` is on (`dealreg dev` turns it on unless set, so the default
policy's `cm-1` and `dir-1` exist after the first `dev`), otherwise a warning names them
with the fix (`dealreg admin owners put ID --name ...`, or `PUT /v1/owners/{id}`).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.registration.adapters.reference import ReferenceData
from services.registration.models import OwnerRequest
from shared.logging import get_logger

log = get_logger(__name__)

SEEDED_BY = "system:dev-seed"


@dataclass(frozen=True)
class OwnersCheck:
    policy_version: int
    named: tuple[str, ...]
    created: tuple[str, ...]
    missing: tuple[str, ...]


async def check_policy_owners(reference: ReferenceData, *, seed: bool) -> OwnersCheck:
    policy = await reference.current_policy()
    named = tuple(dict.fromkeys(level.owner_id for level in policy.escalation.levels))
    absent = [owner for owner in named if await reference.owner(owner) is None]
    created: list[str] = []
    if seed:
        for owner in absent:
            fields = OwnerRequest(name=f"{owner} (created by `dealreg dev`; edit me)")
            await reference.put_owner(owner, fields.model_dump(), by=SEEDED_BY)
            created.append(owner)
        if created:
            log.info("escalation_owners_created", owners=created,
                     policy_version=policy.version)
    missing = tuple(o for o in absent if o not in created)
    if missing:
        log.warning("escalation_owners_missing", owners=list(missing),
                    policy_version=policy.version,
                    detail=f"policy version {policy.version} escalates disputes to "
                    f"{', '.join(missing)}, which do not exist: nobody can work those "
                    "disputes. Create them: dealreg admin owners put ID --name NAME "
                    "(or PUT /v1/owners/{id})")
    return OwnersCheck(policy.version, named, tuple(created), missing)
