"""HTTP entry points of the projections service (queries over the read models)."""

from fastapi import APIRouter

from services.projections.api.routes import router as queries

routers: list[APIRouter] = [queries]
