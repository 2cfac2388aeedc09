"""create_app(settings): loads the road graphs, opens and migrates the database, mounts the API."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from dispatch.config import Settings
from dispatch.db.engine import WalCheckpointer
from dispatch.geo.routing import Router
from dispatch.services.context import Ctx

WORKER_THREADS = 4
#: threads for the websockets' database work (see the lifespan)
LIVE_THREADS = 64


def build_ctx(settings: Settings) -> Ctx:
    from dispatch.db.engine import make_engine, migrate
    from dispatch.geo.store import load_or_build

    routers = {}
    for vehicle in settings.vehicles:
        loaded = load_or_build(settings.osm_file, vehicle, cache_dir=settings.cache_dir)
        routers[vehicle] = Router(loaded.graph, loaded.chs, max_snap_m=settings.max_snap_m, timezone=settings.timezone)
        _warm_up(routers[vehicle])
    engine = make_engine(settings.database_url)
    migrate(engine)
    from dispatch.live.bus import make_bus

    ctx = Ctx(engine=engine, routers=routers, bus=make_bus(settings.redis_url, settings.redis_channel))
    from dispatch.services.closures import restore_closures

    restore_closures(ctx)
    return ctx


def _warm_up(router: Router) -> None:
    """One query of each kind before the first call: the compiled kernels load (or compile, after an upgrade:
    seconds) now rather than inside a dispatcher's first request."""
    from dispatch.core.errors import DispatchError
    from dispatch.core.types import LatLon

    g = router.graph
    a, b = LatLon(float(g.node_lat[0]), float(g.node_lon[0])), LatLon(float(g.node_lat[-1]), float(g.node_lon[-1]))
    router.eta_to([a, b], b)
    with contextlib.suppress(DispatchError):  # no route between the corners: the kernels are loaded all the same
        router.route(a, b)


def _warm_map_indexes(ctx: Ctx) -> None:
    """Build the basemap's tile index and the gazetteer in the background at start, so that the first
    console's first tiles and search do not wait for them (about 1 s and 12 s on a million-node region)."""
    from dispatch.api.basemap import basemap_of
    from dispatch.api.geocode import gazetteer_of

    basemap_of(ctx)
    gazetteer_of(ctx)


def _warm_and_freeze(ctx: Ctx) -> None:
    _warm_map_indexes(ctx)
    _freeze_heap()  # as at start: the indexes live as long as the server, the collector need not walk them


def _freeze_heap() -> None:
    """Move everything made so far (the road graphs' Python side, the database metadata, the app) out of the
    collector's sight. A full collection walks every tracked object: with these it took about 95 ms, and every
    request in flight waited for it (the p99 of ``bench/api.py`` was 125 ms for that alone). Only for a server
    process (``create_app(..., freeze_heap=True)``): what is frozen is never collected, so an app made and
    dropped in the same process (the tests make hundreds) must not freeze."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings, *, ctx: Ctx | None = None, freeze_heap: bool = False) -> FastAPI:
    from dispatch.api import mount

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "ctx", None) is None:
            app.state.ctx = build_ctx(settings)
        # the endpoints are CPU-bound Python under one interpreter lock: a few worker threads serve requests
        # in arrival order; forty (anyio's default) only interleave them and stretch the slowest ones
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        # the websockets' work (asyncio.to_thread): mostly waiting, for a stored fix's group commit above all;
        # Python's default of cores + 4 threads let six such waits hold up every other phone's message
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(LIVE_THREADS, thread_name_prefix="live"))
        engine = app.state.ctx.engine
        checkpointer = WalCheckpointer(engine).start() if engine.dialect.name == "sqlite" else None
        app.state.checkpointer = checkpointer
        from dispatch.live.runtime import Live
        from dispatch.services.positions import remember_fix

        live = Live(
            app.state.ctx,
            ack_timeout_s=settings.ack_timeout_s,
            resend_s=settings.resend_s,
            heartbeat_timeout_s=settings.heartbeat_timeout_s,
            queue_max=settings.ws_queue,
            on_live=lambda msg: remember_fix(app.state.ctx, msg),
        )
        await live.start()
        app.state.live = live
        if app.state.ctx.intake is not None and app.state.ctx.intake.closed:  # the app started again
            app.state.ctx.intake = None
        if freeze_heap:
            _freeze_heap()
        warm = _warm_and_freeze if freeze_heap else _warm_map_indexes
        threading.Thread(target=warm, args=(app.state.ctx,), name="warm-map", daemon=True).start()
        yield
        intake = app.state.ctx.intake
        if intake is not None:  # the calls already taken are answered and written first; later ones get 503
            await asyncio.to_thread(intake.stop)  # (it stays in the context, closed, so nothing restarts it)
        await live.stop()
        # housekeeping that was cancelled may still run in a worker thread (a sweep, a poll of the log): let it
        # finish before the engine is disposed, or its connection outlives the pool
        await asyncio.get_running_loop().shutdown_default_executor()
        app.state.ctx.bus.close()
        if checkpointer is not None:
            checkpointer.stop()
        engine.dispose()

    app = FastAPI(
        title="dispatch",
        version="0.1.0",
        lifespan=lifespan,
        description="Ambulance dispatch: call intake, drive-time recommendations, assignment, status, "
        "reports. Every endpoint but /healthz needs a bearer token from POST /api/v1/auth/token.",
    )
    app.state.ctx = ctx
    app.state.settings = settings
    mount(app)
    return app


def app_from_env() -> FastAPI:
    """The app built from the environment in a worker process (``dispatch serve --workers N``)."""
    return create_app(Settings.from_env(), freeze_heap=True)
