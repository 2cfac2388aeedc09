"""API benchmark: POST /api/v1/incidents (call intake + unit recommendations) under 20 concurrent clients.

For each database (a fresh SQLite file, a fresh PostgreSQL database) and each engine it

  1. seeds the Hanoi demo (hospitals, stations, ~20 units, demo users) with dispatch.services.seed.seed_demo,
  2. starts a real server process on a free loopback port:
       ours      ``python -m dispatch.cli serve``: units ranked by the contraction hierarchies (Router.eta_to)
       networkx  the same app (dispatch.app.create_app, build_ctx) started by this file with
                 ``--serve-baseline``, whose routers are wrapped by :class:`NxRouter`: each vehicle's units are
                 ranked by one reverse ``nx.dijkstra_predecessor_and_distance`` from the incident's nearest
                 graph node (k-d tree on UTM 48N, as osmnx's nearest_nodes), over a networkx DiGraph built once
                 per time-of-day period from the same integer-millisecond arc times. What a team on the
                 project's fixed stack (osmnx/networkx) would build. Everything else (snapping of the incident,
                 the database work, the JSON answer) is the project's own code in both servers.
  3. logs in as the demo dispatcher, warms up, then runs ``--clients`` asyncio clients in this process, each
     with its own keep-alive HTTP/1.1 connection (:class:`Conn`, a few lines over asyncio streams: the load
     generator shares the server's two cores, so it must cost little), posting incidents at random positions
     near graph junctions (within ~16 m) with random triage cards until ``--requests`` have been made in total,
     each with its own Idempotency-Key as the console sends them (``--no-keys``: none); with ``--moving-units``
     every unit also reports a position each second meanwhile,

and prints throughput (incidents/s), p50/p90/p99/max latency, non-201 answers, the server's CPU time per
request and the machine's load, beside the networkx baseline as a ratio (baseline / ours). The positions are
the same for every server (seeded per client), so the two engines' rankings are compared too.

    .venv/bin/python bench/api.py                  # 1,000 requests per server, SQLite + PostgreSQL (~2 min)
    .venv/bin/python bench/api.py --quick          # 200 requests per server (smoke run, ~1 min)
    .venv/bin/python bench/api.py --engines ours --moving-units --requests 5000   # units reporting positions
    .venv/bin/python bench/api.py --py-spy /tmp/p  # also sample our servers with py-spy (raw stacks)

Targets (from the issue): p99 <= 50 ms at 20 concurrent clients with the recommendation included, on each
database. Results are also written to bench/out/api-results.json (or --json PATH). Exits 1 when one of our
servers answered anything but a 201 with recommendations.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
from pyproj import Transformer  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402

from bench.machine import git_head, machine_info  # noqa: E402
from dispatch.core.errors import DispatchError, NoRoute  # noqa: E402
from dispatch.core.types import LatLon  # noqa: E402
from dispatch.geo.graph import CLOSED_MS  # noqa: E402
from dispatch.geo.routing import Leg, Router  # noqa: E402

OUT = ROOT / "bench" / "out"
UTM48N = "EPSG:32648"
PG_BASE = "postgresql://postgres@127.0.0.1:5432"
TARGET_P99_MS = 50.0
PASSWORD = "demo-115-hanoi"  # dispatch.services.seed.DEMO_PASSWORD
JITTER_DEG = 1.5e-4  # ~16 m: incident positions stay well within the 250 m snap limit


def log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# the baseline: unit ranking with networkx's Dijkstra
# ---------------------------------------------------------------------------------------------------------------
class NxRouter:
    """dispatch's Router with ``eta_to`` (the ranking query) done the osmnx/networkx way.

    Nearest graph nodes at both ends (a k-d tree on projected coordinates, what ox.distance.nearest_nodes
    does for a projected graph), then one reverse single-source Dijkstra from the incident's node that gives
    every unit's drive time, and the metres along each unit's path from the predecessor tree. The arc times
    are the Router's own integer milliseconds for the period (in seconds), parallel arcs keep the fastest.
    Closures are not modelled (the benchmark closes no road). Every other attribute (snap, route, graph, ...)
    is the wrapped Router's.
    """

    def __init__(self, router: Router) -> None:
        self._router = router
        g = router.graph
        self._tr = Transformer.from_crs("EPSG:4326", UTM48N, always_xy=True)
        x, y = self._tr.transform(g.node_lon, g.node_lat)
        self._kd = cKDTree(np.column_stack([x, y]))
        self._reverse: dict[int, nx.DiGraph] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._router, name)

    def reverse_graph(self, period: int) -> nx.DiGraph:
        with self._lock:
            R = self._reverse.get(period)
            if R is None:
                g = self._router.graph
                w = g.arc_time_ms[period]
                arcs = np.nonzero(w != CLOSED_MS)[0]
                order = arcs[np.argsort(-w[arcs], kind="stable")]  # slowest first: the fastest parallel arc wins
                R = nx.DiGraph()
                R.add_nodes_from(range(g.n_nodes))
                R.add_edges_from(  # reversed: head -> tail, so one search from the incident reaches every unit
                    (h, t, {"travel_time": s, "length": ln})
                    for h, t, s, ln in zip(
                        g.arc_head[order].tolist(),
                        g.arc_tail[order].tolist(),
                        (w[order] / 1000.0).tolist(),
                        g.arc_length_m[order].tolist(),
                        strict=True,
                    )
                )
                self._reverse[period] = R
            return R

    def nearest_nodes(self, points: Sequence[LatLon]) -> list[int]:
        x, y = self._tr.transform([p.lon for p in points], [p.lat for p in points])
        return [int(i) for i in self._kd.query(np.column_stack([x, y]))[1]]

    def eta_to(
        self,
        origins: Sequence[LatLon],
        destination: LatLon,
        *,
        at: Any = None,
        engine: str = "auto",  # noqa: ARG002
    ) -> list[Leg | DispatchError]:
        R = self.reverse_graph(self._router.period(at))
        nodes = self.nearest_nodes([*origins, destination])
        target = nodes[-1]
        pred, dist = nx.dijkstra_predecessor_and_distance(R, target, weight="travel_time")
        out: list[Leg | DispatchError] = []
        for p, n in zip(origins, nodes[:-1], strict=True):
            if n not in dist:
                out.append(NoRoute(f"no drivable route from {p.lat:.6f},{p.lon:.6f} (networkx baseline)"))
                continue
            metres, v = 0.0, n
            while v != target:
                u = pred[v][0]
                metres += R[u][v]["length"]
                v = u
            out.append(Leg(eta_s=float(dist[n]), distance_m=metres))
        return out


def serve_baseline(host: str, port: int) -> int:
    """What ``dispatch serve`` does (dispatch/cli.py cmd_serve), with the routers wrapped in NxRouter."""
    import uvicorn

    from dispatch.app import build_ctx, create_app
    from dispatch.config import Settings

    settings = Settings.from_env()
    ctx = build_ctx(settings)
    ctx.routers = {k: NxRouter(r) for k, r in ctx.routers.items()}  # type: ignore[misc]
    for r in ctx.routers.values():
        assert isinstance(r, NxRouter)
        r.reverse_graph(r.period(None))  # built before serving, as the CH is
    print(f"networkx baseline API on http://{host}:{port}/api/v1", flush=True)
    uvicorn.run(create_app(settings, ctx=ctx, freeze_heap=True), host=host, port=port, log_level="warning")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# databases and servers
# ---------------------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as c:
        c.execute(sql)


@contextmanager
def fresh_database(kind: str, tmp: Path, tag: str) -> Iterator[str]:
    """A new, empty database for one server; removed afterwards."""
    if kind == "sqlite":
        d = Path(tempfile.mkdtemp(prefix=f"db-{tag}-", dir=tmp))
        try:
            yield f"sqlite:///{d / 'dispatch.db'}"
        finally:
            shutil.rmtree(d, ignore_errors=True)
        return
    name = f"bench_api_{os.getpid()}"
    _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _pg_admin(f"CREATE DATABASE {name}")
    try:
        yield f"{PG_BASE}/{name}"
    finally:
        _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def seed(url: str, routers: dict[str, Router]) -> dict[str, Any]:
    from dispatch.db.engine import make_engine, migrate
    from dispatch.services.context import Ctx
    from dispatch.services.seed import seed_demo

    engine = make_engine(url)
    try:
        migrate(engine)
        seeded = seed_demo(Ctx(engine=engine, routers=routers))
    finally:
        engine.dispose()
    return {k: v for k, v in seeded.items() if k != "users"}


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    log_path: Path

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process and its worker processes so far."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields_ = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # a process that just ended
                continue
            pid, ppid = int(stat.parent.name), int(fields_[1])
            if self.proc.pid in (pid, ppid):
                total += int(fields_[11]) + int(fields_[12])
        return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(engine: str, url: str, cache_dir: Path, tmp: Path, tag: str, workers: int = 1) -> Iterator[Server]:
    port = free_port()
    env = {**os.environ, "DISPATCH_DATABASE_URL": url, "DISPATCH_CACHE_DIR": str(cache_dir)}
    if engine == "ours":
        cmd = [sys.executable, "-m", "dispatch.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        if workers > 1:  # several processes on the port, sharing events over the machine's Redis
            cmd += ["--workers", str(workers)]
            env.setdefault("DISPATCH_REDIS_URL", "redis://127.0.0.1:6379/0")
            env["DISPATCH_REDIS_CHANNEL"] = f"bench-api-{os.getpid()}"
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-baseline", "--port", str(port)]
    log_path = tmp / f"server-{tag}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    srv = Server(proc, f"http://127.0.0.1:{port}", log_path)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the {engine} server exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{srv.base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {engine} server did not answer /healthz in 180 s:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield srv
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


# ---------------------------------------------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Run:
    database: str
    engine: str
    requests: int
    clients: int
    workers: int = 1  # our server's processes
    rate: float = 0.0  # paced: incidents/s offered by all clients together (Poisson arrivals); 0: closed loop
    keys: bool = True  # each call with its own Idempotency-Key, as the console sends them
    moving_units: bool = False  # every unit reports a position each second during the run
    fixes_sent: int = 0
    fixes_failed: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    other_cpu_cores: float = 0.0  # busy CPU of everything else on the machine during the run, in cores
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rankings: dict[tuple[int, int], list[tuple[str, float]]] = field(default_factory=dict)
    startup_s: float = 0.0
    seeded: dict[str, Any] = field(default_factory=dict)
    recs_per_incident: float = 0.0
    server_log: str = ""

    def pct(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latencies), q)) * 1e3 if self.latencies else float("nan")

    @property
    def load_model(self) -> str:
        return f"paced {self.rate:g}/s" if self.rate else "closed loop"

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall_s if self.wall_s else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "engine": self.engine,
            "requests": self.requests,
            "clients": self.clients,
            "workers": self.workers,
            "load": self.load_model,
            "idempotency_keys": self.keys,
            "moving_units": self.moving_units,
            "position_fixes": {"answered_200": self.fixes_sent, "failed": self.fixes_failed},
            "offered_per_s": self.rate or None,
            "ok": len(self.latencies),
            "errors": len(self.errors),
            "error_samples": self.errors[:10],
            "throughput_per_s": round(self.throughput, 2),
            "p50_ms": round(self.pct(50), 2),
            "p90_ms": round(self.pct(90), 2),
            "p99_ms": round(self.pct(99), 2),
            "max_ms": round(self.pct(100), 2),
            "mean_ms": round(float(np.mean(self.latencies)) * 1e3, 2) if self.latencies else None,
            "wall_s": round(self.wall_s, 3),
            "server_cpu_ms_per_request": round(self.server_cpu_s * 1e3 / max(1, self.requests), 2),
            "client_cpu_ms_per_request": round(self.client_cpu_s * 1e3 / max(1, self.requests), 2),
            "other_cpu_cores": round(self.other_cpu_cores, 2),
            "load_before": [round(x, 2) for x in self.load_before],
            "load_after": [round(x, 2) for x in self.load_after],
            "server_startup_s": round(self.startup_s, 2),
            "recommendations_per_incident": round(self.recs_per_incident, 1),
            "seeded": self.seeded,
            "server_log": self.server_log,
        }


def _cpu_busy_s() -> float:
    """Busy CPU seconds of the whole machine (all cores) since boot."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    return (sum(parts[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def plan(seed: int, client: int, n: int, graph: Any, cards: list[str]) -> list[dict[str, Any]]:
    """Client ``client``'s ``n`` incident bodies: near random junctions of the ambulance graph, random cards."""
    rng = np.random.default_rng([seed, client])
    nodes = rng.integers(0, graph.n_nodes, n)
    jitter = rng.uniform(-JITTER_DEG, JITTER_DEG, (n, 2))
    picks = rng.integers(0, len(cards), n)
    return [
        {
            "lat": round(float(graph.node_lat[k]) + float(a), 7),
            "lon": round(float(graph.node_lon[k]) + float(b), 7),
            "complaint": cards[int(c)],
            "caller_number": f"09{client:02d}{i:06d}",
        }
        for i, (k, (a, b), c) in enumerate(zip(nodes, jitter, picks, strict=True))
    ]


#: what a request of :class:`Conn` may raise: the connection failed or closed, or the answer was not HTTP
CLIENT_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


class Conn:
    """One keep-alive HTTP/1.1 connection, written by hand: the load generator shares the server's two cores,
    and httpx (a thread per client) took about 1.8 ms of CPU per request where this takes under 0.1 ms."""

    def __init__(self, base: str, token: str) -> None:
        self.host, port = base.removeprefix("http://").split(":")
        self.port = int(port)
        self.auth = f"Authorization: Bearer {token}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, key: str | None = None) -> tuple[int, bytes]:
        if self.reader is not None and self.reader.at_eof():  # the server closed it (idle, or after an error)
            self.close()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: " + self.host.encode() + b"\r\n" + self.auth
            + (b"" if key is None else b"Idempotency-Key: " + key.encode() + b"\r\n")
            + b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )  # fmt: skip
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            length, close = None, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            if length is None:
                raise ConnectionError(f"an answer without Content-Length: {head[:200]!r}")
            answer = int(head[9:12]), await self.reader.readexactly(length)
        except BaseException:  # an error or a cancellation mid-answer: the connection is out of step, drop it
            self.close()
            raise
        if close:
            self.close()
        return answer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def drive(srv: Server, run: Run, *, graph: Any, seed: int, warmup: int, profile_dir: Path | None, tag: str) -> None:
    r = httpx.post(f"{srv.base}/api/v1/auth/token", data={"username": "dispatcher", "password": PASSWORD}, timeout=30)
    r.raise_for_status()
    token = r.json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    cards = [c["code"] for c in httpx.get(f"{srv.base}/api/v1/triage/cards", headers=headers, timeout=30).json()]

    k = run.clients
    share = [run.requests // k + (1 if i < run.requests % k else 0) for i in range(k)]
    warm_share = [warmup // k + (1 if i < warmup % k else 0) for i in range(k)]
    bodies = [[json.dumps(b).encode() for b in plan(seed, i, share[i], graph, cards)] for i in range(k)]
    warm_bodies = [
        [json.dumps(b).encode() for b in plan(seed + 1_000_003, i, warm_share[i], graph, cards)] for i in range(k)
    ]
    lat: list[list[float]] = [[] for _ in range(k)]
    errs: list[list[str]] = [[] for _ in range(k)]
    answers: list[list[tuple[int, bytes]]] = [[] for _ in range(k)]
    ends = [0.0] * k
    marks: dict[str, float] = {}
    # paced: one Poisson stream of calls at the offered rate, dealt to the clients in turn
    arrivals = np.cumsum(np.random.default_rng([seed, 7]).exponential(1 / run.rate, run.requests)) if run.rate else None
    conns = [Conn(srv.base, token) for _ in range(k)]

    async def warm(i: int) -> None:
        for j, body in enumerate(warm_bodies[i]):
            with suppress(*CLIENT_ERRORS):
                await conns[i].post("/api/v1/incidents", body, f"warm-{seed}-{i}-{j}" if run.keys else None)

    async def client(i: int) -> None:
        for j, body in enumerate(bodies[i]):
            if arrivals is not None:
                due = marks["t0"] + float(arrivals[i + j * k])
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                t0 = due  # from when the call was due: a call held up by this client's previous one counts it
            else:
                t0 = time.perf_counter()
            try:
                status, content = await conns[i].post(
                    "/api/v1/incidents", body, f"{seed}-{i}-{j}" if run.keys else None
                )
            except CLIENT_ERRORS as exc:
                errs[i].append(f"client {i} request {j}: {type(exc).__name__}: {exc}")
                continue
            dt = time.perf_counter() - t0
            if status == 201:
                lat[i].append(dt)
                answers[i].append((j, content))
            else:
                errs[i].append(f"client {i} request {j}: HTTP {status}: {content[:300]!r}")
        ends[i] = time.perf_counter()

    # --moving-units: every unit reports a position each second, as the crews' phones do
    units = httpx.get(f"{srv.base}/api/v1/units", headers=headers, timeout=30).json() if run.moving_units else []
    fixes = {"sent": 0, "failed": 0}

    async def move_units() -> None:
        rng = np.random.default_rng([seed, 11])
        conn = Conn(srv.base, token)
        tick = time.perf_counter()
        moving = [u for u in units if u.get("position") is not None]
        try:
            while not all(ends):
                for u in moving:  # spread over the second, as phones report each on its own clock
                    lat0, lon0 = u["position"]["lat"], u["position"]["lon"]
                    # GPS noise of a few metres around the station: the ranking sees a new position every time
                    # (the kept units' side is worked out again), thinning stores one fix a unit every 10 s
                    a, b = rng.uniform(-5e-5, 5e-5, 2)
                    body = json.dumps({"lat": round(lat0 + a, 7), "lon": round(lon0 + b, 7)}).encode()
                    try:
                        status, _ = await conn.post(f"/api/v1/units/{u['id']}/position", body)
                    except CLIENT_ERRORS:
                        status = 0
                    fixes["sent" if status == 200 else "failed"] += 1
                    tick += 1.0 / len(moving)
                    await asyncio.sleep(max(0.0, tick - time.perf_counter()))
                    if all(ends):
                        break
        finally:
            conn.close()

    async def measure() -> None:
        if not units:
            await asyncio.gather(*(client(i) for i in range(k)))
            return
        mover = asyncio.ensure_future(move_units())
        await asyncio.gather(*(client(i) for i in range(k)))
        await mover
        run.fixes_sent, run.fixes_failed = fixes["sent"], fixes["failed"]

    async def warm_all() -> None:
        await asyncio.gather(*(warm(i) for i in range(k)))

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(warm_all())
        spies: list[subprocess.Popen[bytes]] = []
        if profile_dir is not None and run.engine == "ours":
            # two samplers: every non-idle thread (wall time, waits included) and only the thread holding the
            # GIL (where the server's CPU goes); raw collapsed stacks, one line per stack with its sample count
            profile_dir.mkdir(parents=True, exist_ok=True)
            exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            for suffix, extra in (("wall", []), ("gil", ["--gil"])):
                spies.append(
                    subprocess.Popen(
                        [exe, "record", "--pid", str(srv.proc.pid), "--format", "raw", "--threads", "--nonblocking"]
                        + ["--rate", "200", *extra, "-o", str(profile_dir / f"{tag}-{suffix}.txt")],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
        run.load_before = os.getloadavg()
        marks["busy"] = _cpu_busy_s()
        marks["server"] = srv.cpu_s()
        marks["client"] = time.process_time()
        marks["t0"] = time.perf_counter()
        loop.run_until_complete(measure())
    finally:
        for c in conns:
            c.close()
        loop.close()
    t_end = max(ends)
    run.wall_s = t_end - marks["t0"]
    run.server_cpu_s = srv.cpu_s() - marks["server"]
    run.client_cpu_s = time.process_time() - marks["client"]
    busy = _cpu_busy_s() - marks["busy"]
    run.other_cpu_cores = max(0.0, busy - run.server_cpu_s - run.client_cpu_s) / run.wall_s
    run.load_after = os.getloadavg()
    for spy in spies:
        spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
    for spy in spies:
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
    run.latencies = [x for xs in lat for x in xs]
    run.errors = [e for es in errs for e in es]
    n_recs = 0
    for i, rows in enumerate(answers):
        for j, content in rows:
            data = json.loads(content)
            recs = data["recommendations"]
            n_recs += len(recs)
            if not recs:
                run.errors.append(f"client {i} request {j}: 201 without any recommendation: {content[:300]!r}")
            run.rankings[(i, j)] = [(x["callsign"], float(x["eta_s"])) for x in recs]
    run.recs_per_incident = n_recs / max(1, len(run.latencies))


def compare(ours: Run, base: Run) -> dict[str, Any]:
    """Same incident positions on both servers: how often the two engines pick the same first unit."""
    keys = sorted(set(ours.rankings) & set(base.rankings))
    same_first_unit = sum(
        1 for key in keys if [c for c, _ in ours.rankings[key][:1]] == [c for c, _ in base.rankings[key][:1]]
    )
    diffs = []
    for key in keys:
        a = dict(ours.rankings[key])
        b = dict(base.rankings[key])
        diffs += [abs(a[c] - b[c]) for c in a.keys() & b.keys()]
    return {
        "incidents": len(keys),
        "same_first_unit_pct": round(100.0 * same_first_unit / max(1, len(keys)), 1),
        "eta_abs_diff_s_p50": round(float(np.median(diffs)), 1) if diffs else None,
        "eta_abs_diff_s_p99": round(float(np.percentile(diffs, 99)), 1) if diffs else None,
    }


# ---------------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    pg = ""
    try:
        import psycopg

        with psycopg.connect(f"{PG_BASE}/postgres") as c:
            row = c.execute("SHOW server_version").fetchone()
            pg = str(row[0]) if row else ""
    except Exception as exc:  # reported, not fatal: the PostgreSQL runs fail later with the real error
        pg = f"unreachable: {exc}"
    info = machine_info(("fastapi", "uvicorn", "starlette", "sqlalchemy", "psycopg", "httpx", "networkx"))
    return {**info, "postgresql": pg, "sqlite": __import__("sqlite3").sqlite_version}


def fmt_ratio(r: float) -> str:
    if not np.isfinite(r):
        return "-"
    return f"{r:,.0f}x" if r >= 10 else f"{r:.2f}x"


def table(runs: list[Run]) -> str:
    by = {(r.database, r.engine): r for r in runs}
    head = (
        "| database | engine | requests | clients | load | incidents/s | p50 ms | p90 ms | p99 ms | max ms | errors "
        "| server CPU ms/req | other load (cores) | baseline vs ours |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in runs:
        ratio = "-"
        ours = by.get((r.database, "ours"))
        if r.engine == "networkx" and ours is not None:
            ratio = (
                f"p50 {fmt_ratio(r.pct(50) / ours.pct(50))}, p99 {fmt_ratio(r.pct(99) / ours.pct(99))} slower; "
                f"throughput {fmt_ratio(ours.throughput / r.throughput)} lower"
            )
        name = "networkx Dijkstra (baseline)"
        if r.engine == "ours":
            name = "ours (CH)" if r.workers == 1 else f"ours (CH, {r.workers} processes)"
        lines.append(
            f"| {r.database} | {name} | {r.requests:,} | {r.clients} | {r.load_model} | {r.throughput:,.1f} "
            f"| {r.pct(50):.1f} "
            f"| {r.pct(90):.1f} | {r.pct(99):.1f} | {r.pct(100):.1f} | {len(r.errors)} "
            f"| {r.server_cpu_s * 1e3 / max(1, r.requests):.1f} | {r.other_cpu_cores:.2f} | {ratio} |"
        )
    return "\n".join(lines)


def verdicts(runs: list[Run]) -> list[str]:
    out = []
    for r in runs:
        if r.engine != "ours":
            continue
        ok = r.pct(99) <= TARGET_P99_MS and not r.errors
        out.append(
            f"target p99 <= {TARGET_P99_MS:.0f} ms at {r.clients} clients ({r.load_model}), recommendation included, "
            f"{r.database}: "
            f"{'met' if ok else 'NOT met'} (p99 {r.pct(99):.1f} ms, {len(r.errors)} errors)"
        )
    return out


# ---------------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=1000, help="measured requests per server (default 1000)")
    p.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="paced load: incidents/s offered by all clients together, Poisson arrivals (default 0: closed loop, "
        "each client sends its next call as soon as the last one is answered)",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="our server's processes (dispatch serve --workers; >1 uses Redis)"
    )
    p.add_argument(
        "--moving-units",
        action="store_true",
        help="every unit reports a position each second (POST /units/{id}/position) while the calls come in",
    )
    p.add_argument(
        "--no-keys", action="store_true", help="send the calls without an Idempotency-Key (the console sends one)"
    )
    p.add_argument("--warmup", type=int, default=None, help="unmeasured requests first (default 5%%, at least 40)")
    p.add_argument("--quick", action="store_true", help="200 requests per server: a smoke run")
    p.add_argument("--databases", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    p.add_argument("--engines", default="ours,networkx", help="comma-separated: ours, networkx")
    p.add_argument("--cache-dir", type=Path, default=None, help="compiled-graph cache (default: a temp dir)")
    p.add_argument("--seed", type=int, default=20260115)
    p.add_argument("--py-spy", type=Path, default=None, metavar="DIR", help="record our servers with py-spy")
    p.add_argument(
        "--json", type=Path, default=None, help="write the results here (default bench/out/api-results.json)"
    )
    p.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_baseline:
        return serve_baseline(args.host, args.port)
    if args.quick:
        args.requests = 200
    if args.requests < args.clients or args.clients < 1:
        p.error("--requests must be at least --clients, and --clients at least 1")
    if not 0 <= args.rate < 10_000:
        p.error("--rate must be 0 (closed loop) or a positive number of incidents per second below 10,000")
    warmup = args.warmup if args.warmup is not None else max(40, args.requests // 20)
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if set(databases) - {"sqlite", "postgresql"} or set(engines) - {"ours", "networkx"}:
        p.error("--databases takes sqlite, postgresql; --engines takes ours, networkx")

    info = machine()
    log(
        f"machine: {info['nproc']} cores ({info['cpu']}), {info['ram_gb']} GB RAM, Python {info['python']}, "
        f"PostgreSQL {info['postgresql']}, SQLite {info['sqlite']}; load average {info['load_avg_at_start']}"
    )
    started = time.perf_counter()
    runs: list[Run] = []
    comparisons: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp_s:
        tmp = Path(tmp_s)
        cache_dir = args.cache_dir or tmp / "cache"
        from dispatch.geo.store import load_or_build

        t0 = time.perf_counter()
        routers = {}
        for vehicle in ("ambulance", "motorbike"):
            loaded = load_or_build(profile=vehicle, cache_dir=cache_dir)
            routers[vehicle] = Router(loaded.graph, loaded.chs)
        graph = routers["ambulance"].graph
        log(
            f"graphs ready in {time.perf_counter() - t0:.1f} s ({cache_dir}); ambulance graph "
            f"{graph.n_nodes:,} nodes, motorbike {routers['motorbike'].graph.n_nodes:,} nodes"
        )
        for db in databases:
            for engine in engines:
                tag = f"{db}-{engine}"
                run = Run(
                    db,
                    engine,
                    args.requests,
                    args.clients,
                    rate=args.rate,
                    keys=not args.no_keys,
                    moving_units=args.moving_units,
                    workers=args.workers if engine == "ours" else 1,
                )
                with fresh_database(db, tmp, tag) as url:
                    run.seeded = seed(url, routers)
                    t0 = time.perf_counter()
                    with server(engine, url, cache_dir, tmp, tag, args.workers if engine == "ours" else 1) as srv:
                        run.startup_s = time.perf_counter() - t0
                        log(
                            f"[{db} / {engine}] server pid {srv.proc.pid} up in {run.startup_s:.1f} s; "
                            f"{warmup} warm-up + {args.requests} measured requests, {args.clients} clients ..."
                        )
                        drive(srv, run, graph=graph, seed=args.seed, warmup=warmup, profile_dir=args.py_spy, tag=tag)
                        if run.errors:  # keep the server's log (tracebacks of 500s) beside the results
                            OUT.mkdir(parents=True, exist_ok=True)
                            kept = OUT / f"api-server-{tag}.log"
                            shutil.copyfile(srv.log_path, kept)
                            run.server_log = str(kept)
                runs.append(run)
                log(
                    f"[{db} / {engine}] {run.throughput:.1f} incidents/s, p50 {run.pct(50):.1f} ms, "
                    f"p99 {run.pct(99):.1f} ms, max {run.pct(100):.1f} ms, {len(run.errors)} errors, "
                    f"server CPU {run.server_cpu_s * 1e3 / args.requests:.1f} ms/req, other load "
                    f"{run.other_cpu_cores:.2f} cores, loadavg {run.load_before[0]:.2f} -> {run.load_after[0]:.2f}"
                )
                if run.moving_units:
                    log(f"    units moving: {run.fixes_sent} position fixes answered 200, {run.fixes_failed} not")
                for e in run.errors[:20]:
                    log(f"    {e}")
                if run.server_log:
                    tail = Path(run.server_log).read_text("utf-8", "replace").strip().splitlines()[-12:]
                    log(f"    server log kept in {run.server_log}; its last lines:")
                    for line in tail:
                        log(f"    | {line}")
            by = {r.engine: r for r in runs if r.database == db}
            if "ours" in by and "networkx" in by:
                comparisons[db] = compare(by["ours"], by["networkx"])
                log(f"[{db}] rankings, same positions on both servers: {comparisons[db]}")

    log("")
    log(table(runs))
    log("")
    for v in verdicts(runs):
        log(v)
    log(f"whole run {time.perf_counter() - started:.0f} s; load average at the end {os.getloadavg()}")
    head_now = git_head()
    if head_now != info["git_head"]:
        log(f"WARNING: the repository moved from {info['git_head']} to {head_now} during the run")
    result = {
        "command": " ".join([".venv/bin/python", "bench/api.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": info,
        "warmup": warmup,
        "runs": [r.as_dict() for r in runs],
        "rankings_ours_vs_networkx": comparisons,
        "verdicts": verdicts(runs),
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "git_head_at_end": head_now,
        "table_md": table(runs),
    }
    path = args.json or OUT / ("api-results-quick.json" if args.quick else "api-results.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", "utf-8")
    log(f"results written to {path}")
    return 1 if any(r.errors for r in runs if r.engine == "ours") else 0  # the baseline's errors are reported


if __name__ == "__main__":
    sys.exit(main())
