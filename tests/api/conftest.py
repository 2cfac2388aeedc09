"""The HTTP API on real databases and real servers.

Every test that takes ``api`` (or ``database``) runs twice: on a SQLite file and on a PostgreSQL database,
each fresh for the test. A fresh database is a copy of a seeded template (the Hanoi demo: 25 hospitals,
its stations and units A01.., B01.., M01.., the demo users plus a second dispatcher, each already logged
in), made once per session and backend; a copy costs a file backup or ``CREATE DATABASE ... TEMPLATE``
instead of a seeding with argon2 hashing. The road graphs are compiled once per session into a temporary cache.

PostgreSQL is the server at 127.0.0.1:5432 (user postgres, trust auth). Where none is reachable, the
PostgreSQL runs are skipped with that reason (``-ra`` prints it); the SQLite runs still run.

``start_server`` starts the real thing, ``python -m dispatch.cli serve`` in a subprocess, on a free port;
every server a test started is SIGKILLed at its end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from dispatch.app import build_ctx, create_app
from dispatch.config import Settings
from dispatch.geo.store import load_or_build
from dispatch.services import auth
from dispatch.services.context import Ctx
from dispatch.services.seed import DEMO_PASSWORD, seed_demo

API = "/api/v1"
PASSWORD = DEMO_PASSWORD
#: the demo users, plus a second dispatcher for the two-dispatcher races
USERS = ("dispatcher", "dispatcher-2", "planner", "admin", "crew-a01", "crew-m01")
BACKENDS = ("sqlite", "postgresql")
PG_CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
PG_URL = "postgresql://postgres@127.0.0.1:5432/{name}"

#: Hoan Kiem Lake, on the road network of the bundled extract
HOAN_KIEM = (21.0287, 105.8524)
#: Ba Dinh Square
BA_DINH = (21.0368, 105.8342)
#: Bach Mai Hospital: about 1 km from the nearest road of the extract an ambulance may drive
BACH_MAI = (21.0018, 105.8394)

SERVER_START_TIMEOUT_S = 120.0


# ---- PostgreSQL ---------------------------------------------------------------------------------------------
class PgServer:
    """An autocommit admin connection that creates and drops uniquely named databases."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.created: list[str] = []

    def create(self, *, template: str | None = None) -> str:
        name = f"dispatch_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        self.conn.execute(sql.encode())
        self.created.append(name)
        return name

    def drop(self, name: str) -> None:
        self.conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
        if name in self.created:
            self.created.remove(name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        conn = psycopg.connect(PG_CONNINFO, autocommit=True)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
        pytest.skip(f"no PostgreSQL reachable at 127.0.0.1:5432 as user postgres: {reason}")
    server = PgServer(conn)
    try:
        yield server
    finally:
        for name in list(reversed(server.created)):
            with contextlib.suppress(psycopg.Error):
                server.drop(name)
        conn.close()


# ---- road graphs --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def graph_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's graph cache (shared with the geo tests when their fixture is there), filled once."""
    try:
        cache = Path(request.getfixturevalue("geo_cache"))
    except pytest.FixtureLookupError:
        cache = tmp_path_factory.mktemp("dispatch-cache")
    settings = Settings(cache_dir=cache)
    for vehicle in settings.vehicles:
        load_or_build(settings.osm_file, vehicle, cache_dir=cache)
    return cache


# ---- seeded templates and fresh copies ----------------------------------------------------------------------
@dataclass(frozen=True)
class Template:
    backend: str
    url: str
    pg_name: str | None
    sqlite_path: Path | None
    tokens: dict[str, str]  # user name -> bearer token, valid in every copy
    units: dict[str, int]  # callsign -> unit id
    user_ids: dict[str, int]
    stations: int


def _seed(url: str, cache: Path) -> tuple[dict[str, str], dict[str, int], dict[str, int], int]:
    ctx = build_ctx(Settings(database_url=url, cache_dir=cache))
    try:
        seed_demo(ctx)
        auth.add_user(ctx, name="dispatcher-2", role="dispatcher", password=PASSWORD)
        tokens = {name: auth.issue_token(ctx, name=name, password=PASSWORD)[0] for name in USERS}
        with ctx.engine.connect() as c:
            units = {str(cs): int(i) for i, cs in c.execute(text("SELECT id, callsign FROM unit"))}
            users = {str(n): int(i) for i, n in c.execute(text('SELECT id, name FROM "user"'))}
            stations = int(c.execute(text("SELECT count(*) FROM station")).scalar_one())
    finally:
        ctx.engine.dispose()
    return tokens, units, users, stations


class Templates:
    def __init__(self, cache: Path, directory: Path) -> None:
        self.cache = cache
        self.directory = directory
        self.made: dict[str, Template] = {}

    def get(self, backend: str, pg: PgServer | None) -> Template:
        if backend not in self.made:
            if backend == "sqlite":
                path = self.directory / "template.db"
                url = f"sqlite:///{path}"
                self.made[backend] = Template(backend, url, None, path, *_seed(url, self.cache))
            else:
                assert pg is not None
                name = pg.create()
                url = PG_URL.format(name=name)
                self.made[backend] = Template(backend, url, name, None, *_seed(url, self.cache))
        return self.made[backend]


@pytest.fixture(scope="session")
def templates(graph_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Templates:
    return Templates(graph_cache, tmp_path_factory.mktemp("templates"))


@dataclass(frozen=True)
class Database:
    """A fresh, seeded database of one backend, for one test (or one module)."""

    backend: str
    url: str
    template: Template

    @property
    def tokens(self) -> dict[str, str]:
        return self.template.tokens

    @property
    def units(self) -> dict[str, int]:
        return self.template.units


@contextlib.contextmanager
def fresh_database(
    backend: str, templates: Templates, request: pytest.FixtureRequest, directory: Path
) -> Iterator[Database]:
    if backend == "postgresql":
        pg: PgServer = request.getfixturevalue("pg_server")  # skips here when no PostgreSQL is reachable
        tmpl = templates.get(backend, pg)
        assert tmpl.pg_name is not None
        name = pg.create(template=tmpl.pg_name)
        try:
            yield Database(backend, PG_URL.format(name=name), tmpl)
        finally:
            pg.drop(name)
    else:
        tmpl = templates.get(backend, None)
        assert tmpl.sqlite_path is not None
        path = directory / "dispatch.db"
        src, dst = sqlite3.connect(tmpl.sqlite_path), sqlite3.connect(path)
        try:
            src.backup(dst)  # reads through the WAL: a consistent copy
        finally:
            dst.close()
            src.close()
        yield Database(backend, f"sqlite:///{path}", tmpl)


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, templates: Templates, tmp_path: Path) -> Iterator[Database]:
    with fresh_database(request.param, templates, request, tmp_path) as db:
        yield db


# ---- the app in process -------------------------------------------------------------------------------------
@dataclass
class Api:
    """A TestClient on the app over a fresh database, with the demo users' tokens."""

    client: TestClient
    app: FastAPI
    db: Database

    @property
    def ctx(self) -> Ctx:
        ctx: Ctx = self.app.state.ctx
        return ctx

    @property
    def backend(self) -> str:
        return self.db.backend

    def unit(self, callsign: str) -> int:
        return self.db.units[callsign]

    def headers(self, user: str | None) -> dict[str, str]:
        return {} if user is None else {"Authorization": f"Bearer {self.db.tokens[user]}"}

    def get(self, path: str, *, user: str | None = "dispatcher", **kw: Any) -> httpx.Response:
        return self.client.get(API + path, headers=self.headers(user), **kw)

    def post(self, path: str, *, user: str | None = "dispatcher", **kw: Any) -> httpx.Response:
        return self.client.post(API + path, headers={**self.headers(user), **kw.pop("headers", {})}, **kw)

    def create_incident(self, *, user: str = "dispatcher", **fields_: Any) -> dict[str, Any]:
        body = {"lat": HOAN_KIEM[0], "lon": HOAN_KIEM[1], "complaint": "cardiac_arrest", **fields_}
        r = self.post("/incidents", json=body, user=user)
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    def assign(self, incident_id: int, unit_id: int, *, user: str = "dispatcher") -> httpx.Response:
        return self.post(f"/incidents/{incident_id}/assignments", json={"unit_id": unit_id}, user=user)

    def status(self, unit_id: int, status: str, *, user: str = "dispatcher", **extra: Any) -> httpx.Response:
        return self.post(f"/units/{unit_id}/status", json={"status": status, **extra}, user=user)

    def ok(self, response: httpx.Response, code: int = 200) -> Any:
        assert response.status_code == code, f"{response.request.method} {response.request.url}: {response.text}"
        return response.json()


@contextlib.contextmanager
def running_app(database: Database, cache: Path) -> Iterator[Api]:
    settings = Settings(database_url=database.url, cache_dir=cache)
    app = create_app(settings, ctx=build_ctx(settings))
    with TestClient(app) as client:  # the lifespan disposes the engine on exit
        yield Api(client, app, database)


@pytest.fixture
def api(database: Database, graph_cache: Path) -> Iterator[Api]:
    """The app on a fresh database of its own."""
    with running_app(database, graph_cache) as a:
        yield a


@pytest.fixture(scope="module", params=BACKENDS)
def shared_api(
    request: pytest.FixtureRequest, templates: Templates, graph_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """The app on one database for the whole module: for tests that only read, or change what no other test
    of the module looks at (bad input, unknown ids, routes, map layers)."""
    with (
        fresh_database(request.param, templates, request, tmp_path_factory.mktemp("shared")) as db,
        running_app(db, graph_cache) as a,
    ):
        yield a


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route of the app, also inside included routers."""

    def walk(routes: Any, prefix: str) -> Iterator[tuple[str, str]]:
        for r in routes:
            if hasattr(r, "original_router"):  # FastAPI's included router wrapper
                yield from walk(r.original_router.routes, prefix + r.include_context.prefix)
            elif hasattr(r, "routes") and not hasattr(r, "methods"):
                yield from walk(r.routes, prefix + getattr(r, "prefix", ""))
            else:
                for m in sorted(getattr(r, "methods", None) or []):
                    if m != "HEAD":
                        yield m, prefix + r.path

    return list(walk(app.routes, ""))


# ---- real server processes ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    """``python -m dispatch.cli serve`` on a database, in its own process."""

    db: Database
    cache: Path
    directory: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    logs: list[Path] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # more DISPATCH_* settings
    args: tuple[str, ...] = ()  # more `dispatch serve` options

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str, user: str | None, *, after: int | None = None) -> str:
        query = [f"token={self.db.tokens[user]}"] if user is not None else []
        if after is not None:
            query.append(f"after={after}")
        return f"ws://127.0.0.1:{self.port}{path}" + ("?" + "&".join(query) if query else "")

    def client(self, user: str | None = "dispatcher", *, timeout: float = 60.0) -> httpx.Client:
        headers = {} if user is None else {"Authorization": f"Bearer {self.db.tokens[user]}"}
        return httpx.Client(base_url=self.base_url + API, headers=headers, timeout=timeout)

    def start(self) -> Server:
        env = {
            **os.environ,
            "DISPATCH_DATABASE_URL": self.db.url,
            "DISPATCH_CACHE_DIR": str(self.cache),
            **self.env,
        }
        for _attempt in range(3):  # a free port can be taken between the probe and the bind: try another
            self.port = free_port()
            log = self.directory / f"server-{len(self.logs)}-{self.port}.log"
            self.logs.append(log)
            with log.open("wb") as out:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "dispatch.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
                    + list(self.args),
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.directory,
                    start_new_session=True,  # its own process group: kill() takes any worker processes too
                )
            if self._wait_ready():
                return self
            if "address already in use" not in self.log_text().lower():
                break
        self.kill()
        pytest.fail(f"the server did not start on {self.db.backend}:\n{self.log_text()}")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/healthz", timeout=2.0).status_code == 200:
                    return True
            time.sleep(0.1)
        self.kill()
        return False

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, nothing gets flushed on the way out."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def log_text(self) -> str:
        return "\n".join(p.read_text("utf-8", errors="replace")[-4000:] for p in self.logs if p.exists())


@pytest.fixture
def start_server(graph_cache: Path, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start a real server on a database (``start(db, "--workers", "2", DISPATCH_X="...")`` adds options and
    settings); each one is killed
    when the test ends, whatever happened."""
    servers: list[Server] = []

    def start(db: Database, *args: str, **env: str) -> Server:
        server = Server(db, graph_cache, tmp_path, env=env, args=args)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for s in servers:
            s.kill()
