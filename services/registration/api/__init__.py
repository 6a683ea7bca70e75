"""HTTP entry points of the registration service (commands, reference data, ingestion)."""

from fastapi import APIRouter

from services.registration.api.events import router as events
from services.registration.api.listings import router as listings
from services.registration.api.reference import router as reference
from services.registration.api.routes import router as commands

# `commands` carries the lifespan that starts the command side (see deps.lifespan).
# `listings` comes before `reference`: `/v1/policy/versions` is not `/v1/policy/{version}`.
routers: list[APIRouter] = [commands, listings, reference, events]
