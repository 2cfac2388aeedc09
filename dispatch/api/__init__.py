"""HTTP API: thin FastAPI routes over the services."""

from fastapi import FastAPI

from dispatch.api import errors
from dispatch.api.routes import api, health


def mount(app: FastAPI) -> None:
    errors.install(app)
    app.include_router(health)
    app.include_router(api)
