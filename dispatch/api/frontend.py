"""The browser pages: the dispatcher console at ``/``, the crew app at ``/crew/`` and the planner's coverage
page at ``/planner/``.

Plain static files from the project's ``frontend/`` folder (no build step; Leaflet is vendored from npm under
``frontend/vendor``), gzip-compressed on the way out. Nothing is fetched from outside: the basemap is drawn
from the API's own vector tiles (``/api/v1/basemap``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

#: the repository's frontend folder (the package is installed in place: ``pip install -e .``)
FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
#: the pages run only their own scripts, talk only to their own server, and are never framed by another site;
#: images may come from an online tile server when one is configured (DISPATCH_ONLINE_TILE_URL)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob: https: http:; connect-src 'self' ws: wss:; worker-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class _Revalidated(StaticFiles):
    """Static files the browser must revalidate (ETag -> 304), so a new release is never hidden by a cache."""

    def file_response(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        response.headers.update(SECURITY_HEADERS)
        return response


def _static(directory: Path) -> ASGIApp:
    return GZipMiddleware(_Revalidated(directory=directory, html=True), minimum_size=512, compresslevel=6)


def mount_frontend(app: FastAPI, directory: Path = FRONTEND) -> None:
    if not (directory / "console" / "index.html").is_file():
        return  # installed without the frontend folder: the API alone
    console_page = directory / "console" / "index.html"

    @app.get("/", include_in_schema=False)
    def console() -> FileResponse:
        return FileResponse(console_page, headers={"Cache-Control": "no-cache", **SECURITY_HEADERS})

    @app.get("/crew", include_in_schema=False)
    def crew() -> RedirectResponse:
        return RedirectResponse("/crew/", status_code=308)

    app.mount("/crew", _static(directory / "crew"), name="crew")

    @app.get("/planner", include_in_schema=False)
    def planner() -> RedirectResponse:
        return RedirectResponse("/planner/", status_code=308)

    app.mount("/planner", _static(directory / "planner"), name="planner")
    app.mount("/static", _static(directory), name="static")
