"""HTTP entry points of the registration service (commands and reference data)."""

from fastapi import APIRouter

from services.registration.api.routes import router as commands

routers: list[APIRouter] = [commands]
