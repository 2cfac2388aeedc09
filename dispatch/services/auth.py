"""Users, password hashing (argon2id) and bearer tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete
from sqlmodel import Session, select

from dispatch.core.errors import Conflict, InvalidInput, NotFound, Unauthorized
from dispatch.core.types import Role
from dispatch.db.models import Token, Unit, User
from dispatch.services.context import Actor, Ctx

TOKEN_LIFETIME = timedelta(hours=14)  # a 12-hour shift and its handover
#: how long a checked token is trusted without asking the database again (per process). Tokens are never
#: revoked before they expire today; this bounds how late a future revocation reaches a running process.
TOKEN_CACHE_TTL = timedelta(seconds=30)
_TOKEN_CACHE_MAX = 10_000
_hasher = PasswordHasher()


def add_user(ctx: Ctx, *, name: str, role: str, password: str, unit_callsign: str | None = None) -> User:
    if not name.strip() or len(name) > 80:
        raise InvalidInput("the user name must be 1 to 80 characters")
    if role not in Role.__members__.values():
        raise InvalidInput(f"role {role!r} is not known; allowed: {', '.join(Role)}")
    if len(password) < 8:
        raise InvalidInput("the password must have at least 8 characters")
    if (role == Role.CREW) != (unit_callsign is not None):
        raise InvalidInput("a crew user needs --unit CALLSIGN, and only a crew user takes one")
    with Session(ctx.engine, expire_on_commit=False) as s, s.begin():
        if s.exec(select(User).where(User.name == name)).first() is not None:
            raise Conflict(f"user {name!r} already exists")
        unit_id = None
        if unit_callsign is not None:
            unit = s.exec(select(Unit).where(Unit.callsign == unit_callsign)).first()
            if unit is None:
                known = ", ".join(u.callsign for u in s.exec(select(Unit)))
                raise NotFound(f"unit {unit_callsign!r} does not exist; known units: {known or 'none'}")
            unit_id = unit.id
        user = User(name=name, role=role, unit_id=unit_id, password_hash=_hasher.hash(password))
        s.add(user)
    return user


def issue_token(ctx: Ctx, *, name: str, password: str) -> tuple[str, User]:
    with Session(ctx.engine, expire_on_commit=False) as s, s.begin():
        user = s.exec(select(User).where(User.name == name)).first()
        try:
            ok = user is not None and user.active and _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or user is None:
            raise Unauthorized("wrong user name or password")
        token = secrets.token_urlsafe(32)
        now = ctx.clock()
        s.execute(delete(Token).where(Token.expires_at < now))  # type: ignore[arg-type]
        s.add(Token(token_hash=_digest(token), user_id=user.id or 0, expires_at=now + TOKEN_LIFETIME))
    return token, user


def cached_actor(ctx: Ctx, token: str) -> Actor | None:
    """The user behind a bearer token when this process checked it within TOKEN_CACHE_TTL (and before the
    token's expiry); None when the database must be asked (:func:`actor_for_token`). No I/O: the API calls it
    on the event loop and goes to a worker thread only on a miss."""
    cached = ctx.token_cache.get(_digest(token))
    return cached[0] if cached is not None and ctx.clock() < cached[1] else None


def actor_for_token(ctx: Ctx, token: str) -> Actor:
    """The user behind a bearer token. Checked in the database at most every TOKEN_CACHE_TTL per process,
    never past the token's own expiry."""
    found = cached_actor(ctx, token)
    if found is not None:
        return found
    digest = _digest(token)
    now = ctx.clock()
    with ctx.reader() as s:
        row = s.get(Token, digest)
        if row is None:
            raise Unauthorized("the token is not valid: log in again at POST /api/v1/auth/token")
        if row.expires_at < now:
            raise Unauthorized("the token has expired: log in again at POST /api/v1/auth/token")
        user = s.get(User, row.user_id)
        if user is None or not user.active:
            raise Unauthorized("the token's user no longer exists or is disabled")
        actor = Actor(user.id, user.name, Role(user.role), user.unit_id)
    if len(ctx.token_cache) >= _TOKEN_CACHE_MAX:
        ctx.token_cache.clear()
    ctx.token_cache[digest] = (actor, min(row.expires_at, now + TOKEN_CACHE_TTL))
    return actor


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
