"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from datetime import time
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from dispatch.core.errors import Forbidden, Unauthorized
from dispatch.core.types import Role, time_of_day
from dispatch.services.auth import actor_for_token, cached_actor
from dispatch.services.context import Actor, Ctx

_bearer = HTTPBearer(auto_error=False, description="token from POST /api/v1/auth/token")


async def get_ctx(request: Request) -> Ctx:  # async: no thread-pool hop for a lookup
    ctx: Ctx = request.app.state.ctx
    return ctx


CtxDep = Annotated[Ctx, Depends(get_ctx)]


async def get_actor(ctx: CtxDep, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Actor:
    """The caller. Async: a token this process checked lately is a dict lookup on the event loop; only a miss
    asks the database, in a worker thread (a thread hop costs more than the lookup)."""
    if cred is None or cred.scheme.lower() != "bearer" or not cred.credentials:
        raise Unauthorized("no bearer token: log in at POST /api/v1/auth/token and send 'Authorization: Bearer TOKEN'")
    found = cached_actor(ctx, cred.credentials)
    if found is not None:
        return found
    return await run_in_threadpool(actor_for_token, ctx, cred.credentials)


ActorDep = Annotated[Actor, Depends(get_actor)]


def _roles(*roles: Role):  # type: ignore[no-untyped-def]
    async def check(actor: ActorDep) -> Actor:  # async: a comparison needs no worker thread
        if actor.role not in roles:
            raise Forbidden(f"a {actor.role.value} may not do this; allowed roles: {', '.join(r.value for r in roles)}")
        return actor

    return check


ReaderDep = Annotated[Actor, Depends(_roles(Role.DISPATCHER, Role.PLANNER, Role.ADMIN, Role.CREW))]
StaffDep = Annotated[Actor, Depends(_roles(Role.DISPATCHER, Role.PLANNER, Role.ADMIN))]


async def get_at(
    at: Annotated[str | None, Query(description="time of day HH:MM: its traffic period (default: now)")] = None,
) -> time | None:
    """The ``at`` query parameter of the planning endpoints: the time of day whose traffic the drive times
    follow; None: now."""
    return time_of_day(at, "at") if at else None


AtDep = Annotated[time | None, Depends(get_at)]
