"""One exception handler: domain errors become problem+json responses with a status that says what happened."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from dispatch.core.errors import (
    Conflict,
    DispatchError,
    Forbidden,
    InvalidTransition,
    NoRoute,
    NotFound,
    OutsideCoverage,
    Unauthorized,
    Unavailable,
)

STATUS: list[tuple[type[DispatchError], int, str]] = [
    (NotFound, 404, "not found"),
    (InvalidTransition, 409, "transition not allowed"),
    (Conflict, 409, "conflict"),
    (Forbidden, 403, "forbidden"),
    (Unauthorized, 401, "unauthorized"),
    (OutsideCoverage, 422, "outside road coverage"),
    (NoRoute, 422, "no route"),
    (Unavailable, 503, "unavailable"),
    (DispatchError, 422, "invalid input"),
]


def _json_safe(value: Any) -> Any:
    """Validation errors echo the input; NaN and Infinity are not JSON, so they are echoed as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def install(app: FastAPI) -> None:
    @app.exception_handler(OperationalError)
    async def _db_busy(_request: Request, exc: OperationalError) -> JSONResponse:
        if "locked" not in str(exc.orig) and "could not obtain lock" not in str(exc.orig):
            raise exc
        body = {
            "type": "about:blank",
            "title": "database busy",
            "status": 503,
            "detail": "the database is busy with other writes; nothing was recorded: send the request again",
        }
        return JSONResponse(body, status_code=503, media_type="application/problem+json", headers={"Retry-After": "1"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(DispatchError)
    async def _domain(_request: Request, exc: DispatchError) -> JSONResponse:
        status, body = problem(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else ({"Retry-After": "5"} if status == 503 else None)
        return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def problem(exc: DispatchError) -> tuple[int, dict[str, object]]:
    """The HTTP status and problem+json body of a domain error (the websockets send the same body)."""
    status, title = next((s, t) for cls, s, t in STATUS if isinstance(exc, cls))
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status, "detail": str(exc)}
    if isinstance(exc, OutsideCoverage):
        body.update(distance_m=round(exc.distance_m, 1), max_distance_m=exc.max_distance_m)
    if isinstance(exc, InvalidTransition):
        body.update(state=exc.state, event=exc.event, allowed=exc.allowed)
    if isinstance(exc, Conflict) and exc.current:
        body["current"] = exc.current
    return status, body
