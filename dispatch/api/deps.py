"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dispatch.core.errors import Forbidden, Unauthorized
from dispatch.core.types import Role
from dispatch.services.auth import actor_for_token
from dispatch.services.context import Actor, Ctx

_bearer = HTTPBearer(auto_error=False, description="token from POST /api/v1/auth/token")


async def get_ctx(request: Request) -> Ctx:  # async: no thread-pool hop for a lookup
    ctx: Ctx = request.app.state.ctx
    return ctx


CtxDep = Annotated[Ctx, Depends(get_ctx)]


def get_actor(ctx: CtxDep, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Actor:
    if cred is None or cred.scheme.lower() != "bearer" or not cred.credentials:
        raise Unauthorized("no bearer token: log in at POST /api/v1/auth/token and send 'Authorization: Bearer TOKEN'")
    return actor_for_token(ctx, cred.credentials)


ActorDep = Annotated[Actor, Depends(get_actor)]


def _roles(*roles: Role):  # type: ignore[no-untyped-def]
    def check(actor: ActorDep) -> Actor:
        if actor.role not in roles:
            raise Forbidden(f"a {actor.role.value} may not do this; allowed roles: {', '.join(r.value for r in roles)}")
        return actor

    return check


ReaderDep = Annotated[Actor, Depends(_roles(Role.DISPATCHER, Role.PLANNER, Role.ADMIN, Role.CREW))]
StaffDep = Annotated[Actor, Depends(_roles(Role.DISPATCHER, Role.PLANNER, Role.ADMIN))]
