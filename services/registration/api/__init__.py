"""HTTP entry points of the registration service (commands, reference data, ingestion)."""

from fastapi import APIRouter

from services.registration.api.events import router as events
from services.registration.api.reference import router as reference
from services.registration.api.routes import router as commands

# `commands` carries the lifespan that starts the command side (see deps.lifespan).
routers: list[APIRouter] = [commands, reference, events]
