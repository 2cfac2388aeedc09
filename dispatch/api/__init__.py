"""HTTP API: thin FastAPI routes over the services."""

from fastapi import FastAPI

from dispatch.api import basemap, coverage, errors, geocode, positions, siting
from dispatch.api.frontend import mount_frontend
from dispatch.api.live import live
from dispatch.api.routes import api, health


def mount(app: FastAPI) -> None:
    errors.install(app)
    app.include_router(health)
    app.include_router(api)
    app.include_router(positions.router)
    app.include_router(live)
    app.include_router(geocode.router)
    app.include_router(basemap.router)
    app.include_router(coverage.router)
    app.include_router(siting.router)
    mount_frontend(app)
