"""HTTP entry points of the projections service (queries over the read models)."""

from fastapi import APIRouter

from services.projections.api.deliveries import router as deliveries
from services.projections.api.disputes import router as disputes
from services.projections.api.ownership import router as ownership
from services.projections.api.pipeline import router as pipeline
from services.projections.api.program import router as program
from services.projections.api.registrations import router as registrations

routers: list[APIRouter] = [registrations, ownership, disputes, pipeline, program,
                             deliveries]
