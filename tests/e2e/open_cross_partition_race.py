"""Open (session 23 rival review): two first registrations of one customer under keys on
two intake partitions, decided before either reaches the read model, both stay approved.

Not collected (no `test_` prefix): run it as a module to see the defect,
`PYTHONPATH=$PWD python3 -m tests.e2e.open_cross_partition_race`. It exits non-zero while
the race leaves two exclusive owners of one customer (invariant 1).

Partner A registers "Austin-Adams" at austinadams.com; partner B registers the same company
by name and CRM id at the same moment (or a moment later, without `Prefer: wait`). The name
is a confident match and neither side carries an identifier that contradicts the other,
so sequentially the second goes to a tie. Concurrently, the edge reports to the canonical
key's partition the other key's *read-model* registrations, and there are none yet; no
later event reconciles the two partitions, so both are approved for a protection period
and no person ever sees the collision.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from faker import Faker

from dealreg.app import create_app
from shared.eventlog.partitioner import partition_for
from shared.settings import Settings
from tests.e2e.conftest import ADMIN, _serve

WAIT = {"Prefer": "wait=15"}


def body(partner: str, account: dict[str, Any]) -> dict[str, Any]:
    return {"partner_id": partner, "account": account, "motion": "resell",
            "opportunity": {"title": "Rollout", "products": ["analytics"]}}


async def main() -> int:
    fake = Faker("en_US")
    fake.seed_instance(9)
    partitions = Settings().topic_partitions
    owners = 0
    async with AsyncExitStack() as stack:
        settings = Settings(backend="embedded", data_dir=Path(tempfile.mkdtemp()),
                            admin_token=ADMIN)
        client = await _serve(stack, create_app(settings))
        for n in range(3):
            name = fake.company()
            slug = "".join(ch for ch in name.split()[0].lower() if ch.isalnum())
            domain, crm = f"{slug}.com", f"001{n}{slug[:3].upper()}"
            while partition_for(f"dom:{domain}", partitions) == partition_for(
                    f"crm:{crm}", partitions):
                crm += "X"
            a, b = await asyncio.gather(
                client.post("/v1/registrations", headers=WAIT, json=body(
                    "p-a", {"name": name, "domain": domain, "country": "US"})),
                client.post("/v1/registrations", headers=WAIT, json=body(
                    "p-b", {"name": name, "crm_account_id": crm, "country": "US"})))
            both = [r.json()["status"] for r in (a, b)]
            print(name, [r.json()["account_key"] for r in (a, b)], both)
            owners += both == ["approved", "approved"]
    print(f"{owners} of 3 customers left with two exclusive owners")
    return 1 if owners else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
