"""Websockets: ``/ws/console`` for dispatchers, planners and admins, ``/ws/crew`` for a unit's crew.

The protocol (message types, replay, acknowledgements, heartbeats) is in docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from dispatch.api.errors import problem
from dispatch.core.errors import DispatchError, Forbidden, InvalidInput, Unauthorized
from dispatch.core.types import Role, UnitStatus
from dispatch.live.hub import Client, encode
from dispatch.live.runtime import Live
from dispatch.services import units
from dispatch.services.auth import actor_for_token
from dispatch.services.context import Actor, Ctx

live = APIRouter()

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_REQUEST = 4400
CONSOLE_ROLES = (Role.DISPATCHER, Role.PLANNER, Role.ADMIN)
CREW_COMMANDS = ("ack", "status", "position", "heartbeat")
MAX_MESSAGE = 16_384


async def _refuse(ws: WebSocket, code: int, exc: DispatchError) -> None:
    """Accept, say why in one message and close: a browser sees neither an HTTP status nor the close reason
    of a socket refused before it opened."""
    await ws.accept()
    _, body = problem(exc)
    await ws.send_text(encode({"type": "error", "error": body}))
    await ws.close(code=code, reason=str(exc)[:120])


def _token(ws: WebSocket) -> str | None:
    token = ws.query_params.get("token")
    if token:
        return token
    auth = ws.headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else None


def _after(ws: WebSocket) -> int | None:
    raw = ws.query_params.get("after")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInput(f"after={raw!r}: give the last event number you saw, a whole number >= 0")
    return int(raw)


async def _open(ws: WebSocket, roles: tuple[Role, ...], where: str) -> tuple[Actor, int | None] | None:
    ctx: Ctx = ws.app.state.ctx
    token = _token(ws)
    try:
        if not token:
            raise Unauthorized("no token: connect with ?token=TOKEN from POST /api/v1/auth/token")
        actor = await asyncio.to_thread(actor_for_token, ctx, token)
    except Unauthorized as exc:
        await _refuse(ws, CLOSE_UNAUTHORIZED, exc)
        return None
    if actor.role not in roles:
        other = "/ws/crew" if actor.role is Role.CREW else "/ws/console"
        await _refuse(ws, CLOSE_FORBIDDEN, Forbidden(f"a {actor.role.value} token cannot open {where}; use {other}"))
        return None
    try:
        after = _after(ws)
    except InvalidInput as exc:
        await _refuse(ws, CLOSE_BAD_REQUEST, exc)
        return None
    await ws.accept()
    return actor, after


@live.websocket("/ws/console")
async def console_socket(ws: WebSocket) -> None:
    batch = ws.query_params.get("batch", "0")
    if batch not in ("0", "1"):
        problem_ = InvalidInput(f"batch={batch!r}: 1 (messages waiting together come in one frame) or 0")
        await _refuse(ws, CLOSE_BAD_REQUEST, problem_)
        return
    opened = await _open(ws, CONSOLE_ROLES, "/ws/console")
    if opened is None:
        return
    actor, after = opened
    rt: Live = ws.app.state.live
    client = rt.hub.client(ws, f"console-{actor.name}", batch=batch == "1")
    await _serve(ws, rt, actor, client, after)


@live.websocket("/ws/crew")
async def crew_socket(ws: WebSocket) -> None:
    opened = await _open(ws, (Role.CREW,), "/ws/crew")
    if opened is None:
        return
    actor, after = opened
    assert actor.unit_id is not None  # a crew user is always bound to a unit
    rt: Live = ws.app.state.live
    client = rt.hub.client(ws, f"crew-{actor.name}", unit_id=actor.unit_id)
    await rt.seen(actor.unit_id, wait=True)
    try:
        await _serve(ws, rt, actor, client, after)
    finally:
        rt.forget(actor.unit_id)


async def _serve(ws: WebSocket, rt: Live, actor: Actor, client: Client, after: int | None) -> None:
    ctx: Ctx = ws.app.state.ctx
    await ws.send_text(
        encode(
            {
                "type": "hello",
                "seq": rt.hub.last_seq,
                "user": actor.name,
                "role": actor.role.value,
                "unit_id": actor.unit_id,
                "replay_from": after,
                "heartbeat_timeout_s": rt.heartbeat_timeout_s,
                "server_pid": os.getpid(),
                "ack_timeout_s": rt.ack_timeout_s,
            }
        )
    )
    try:
        replayed = await rt.hub.attach(client, after, rt.events_after)
        client.offer(None, encode({"type": "caught_up", "seq": client.sent_seq, "replayed": replayed}))
        reader = asyncio.ensure_future(_read(ws, rt, ctx, actor, client))
        closed = asyncio.ensure_future(client.wait_closed())
        await asyncio.wait({reader, closed}, return_when=asyncio.FIRST_COMPLETED)
        for t in (reader, closed):
            t.cancel()
    except WebSocketDisconnect:
        pass
    finally:
        rt.hub.detach(client)


async def _read(ws: WebSocket, rt: Live, ctx: Ctx, actor: Actor, client: Client) -> None:
    try:
        while client.closed is None:
            raw = await ws.receive_text()
            if actor.unit_id is not None:
                await rt.seen(actor.unit_id)
            reply = await _command(ctx, actor, raw)
            client.offer(None, encode(reply))
    except WebSocketDisconnect:
        return


async def _command(ctx: Ctx, actor: Actor, raw: str) -> dict[str, Any]:
    """One message from a client, answered by one ``reply`` (with the client's ``request_id``)."""
    request_id: Any = None
    try:
        if len(raw) > MAX_MESSAGE:
            raise InvalidInput(f"message of {len(raw):,} characters; at most {MAX_MESSAGE:,}")
        try:
            msg = json.loads(raw, parse_constant=_no_constant)
        except ValueError:
            raise InvalidInput('a message must be a JSON object, e.g. {"type": "heartbeat"}') from None
        if not isinstance(msg, dict):
            raise InvalidInput('a message must be a JSON object, e.g. {"type": "heartbeat"}')
        request_id = msg.get("request_id")
        kind = msg.get("type")
        allowed = CREW_COMMANDS if actor.unit_id is not None else ("heartbeat",)
        if kind not in allowed:
            raise InvalidInput(f"unknown message type {kind!r}; allowed here: {', '.join(allowed)}")
        result: dict[str, Any] = {}
        if kind == "heartbeat":
            pass
        elif kind == "ack":
            assert actor.unit_id is not None
            a = await asyncio.to_thread(
                units.acknowledge, ctx, actor=actor, unit_id=actor.unit_id, incident_id=_incident_id(msg)
            )
            result = {
                "assignment_id": a.id,
                "acknowledged_at": a.acknowledged_at.isoformat() if a.acknowledged_at else None,
            }
        elif kind == "status":
            result = await _status(ctx, actor, msg)
        elif kind == "position":
            result = await _position(ctx, actor, msg)
        return {"type": "reply", "request_id": request_id, "of": kind, "ok": True, **result}
    except DispatchError as exc:
        _, body = problem(exc)
        return {"type": "reply", "request_id": request_id, "ok": False, "error": body}


def _incident_id(msg: dict[str, Any]) -> int | None:
    """The job a crew message was meant for (optional): a press queued offline is never applied to another."""
    value = msg.get("incident_id")
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise InvalidInput("incident_id must be the id of the incident the message is for, a whole number")
    return value


def _no_constant(name: str) -> float:
    raise InvalidInput(f"{name} is not a number JSON allows; send finite numbers")


async def _status(ctx: Ctx, actor: Actor, msg: dict[str, Any]) -> dict[str, Any]:
    assert actor.unit_id is not None
    raw = msg.get("status")
    if raw not in UnitStatus.__members__.values():
        raise InvalidInput(f"status {raw!r} is not known; allowed: {', '.join(UnitStatus)}")
    hospital = msg.get("hospital_id")
    if hospital is not None and (not isinstance(hospital, int) or isinstance(hospital, bool)):
        raise InvalidInput("hospital_id must be a whole number (an id from GET /api/v1/hospitals)")
    status = UnitStatus(str(raw))
    unit, changed = await asyncio.to_thread(
        units.set_unit_status,
        ctx,
        actor=actor,
        unit_id=actor.unit_id,
        status=status,
        hospital_id=hospital,
        incident_id=_incident_id(msg),
    )
    # a status sent twice (a retry after a dropped connection) is applied once
    return {"status": unit.status, "applied": changed}


async def _position(ctx: Ctx, actor: Actor, msg: dict[str, Any]) -> dict[str, Any]:
    from dispatch.services.positions import fix_from_socket, report_fix

    assert actor.unit_id is not None
    fix = fix_from_socket(msg)
    return await asyncio.to_thread(report_fix, ctx, actor=actor, unit_id=actor.unit_id, fix=fix, source="socket")
