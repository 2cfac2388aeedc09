"""``dispatch simulate``: the planner's what-if, on the live system's road graph and dispatch logic.

Calls come from a call log (``--calls`` with ``--columns``), the database's incident history (``--history``) or
a seeded generator (``--calls-per-day``, ``--days``); the fleet from the database (stations and units) unless
``--stations``/``--units`` say otherwise. Each run is compared in one table: the drive-time dispatch of the
product beside straight-line dispatch, and, when asked, a second scenario (``--compare-units``,
``--add-station``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from dispatch.config import Settings
from dispatch.core.errors import InvalidInput
from dispatch.core.types import LatLon, UnitType


def add_parser(sub: Any) -> argparse.ArgumentParser:
    sim = sub.add_parser(
        "simulate",
        help="replay or generate calls through the real dispatch logic: response times, standards, utilisation",
    )
    src = sim.add_argument_group("calls (default: generated)")
    src.add_argument("--calls", type=Path, metavar="CSV", help="a call log (CSV export); needs --columns")
    src.add_argument("--columns", metavar="MAPPING", help="the log's columns, as for `dispatch coverage --calls`")
    src.add_argument("--time-format", metavar="F", help="strptime format of the call times (default: guessed)")
    src.add_argument("--priority-map", metavar="M", help="the log's priority values, e.g. 1=echo,2=delta")
    src.add_argument("--timezone", metavar="TZ", help="zone of call times without an offset (default: the region's)")
    src.add_argument("--history", action="store_true", help="the database's incidents")
    src.add_argument("--since", metavar="DATE", help="with --history: incidents from this date (YYYY-MM-DD)")
    src.add_argument("--until", metavar="DATE", help="with --history: incidents before this date")
    src.add_argument("--calls-per-day", type=float, default=400.0, help="generated calls a day (default 400)")
    src.add_argument("--days", type=float, default=7.0, help="days of generated calls (default 7)")
    src.add_argument("--mix", metavar="M", help="priority shares, e.g. echo=2,delta=25,charlie=20,bravo=15,alpha=30")
    fleet = sim.add_argument_group("fleet (default: the database's stations and units)")
    fleet.add_argument("--stations", type=Path, metavar="GEOJSON", help="stations (points with a name)")
    fleet.add_argument("--units", type=int, metavar="N", help="N ambulances spread over the stations")
    fleet.add_argument("--als-share", type=float, default=0.5, help="share of ALS among --units (default 0.5)")
    fleet.add_argument("--hospitals", type=Path, metavar="GEOJSON", help="hospitals (default: the database's)")
    fleet.add_argument("--compare-units", type=int, metavar="M", help="a second scenario with M ambulances")
    fleet.add_argument(
        "--add-station", metavar="LAT,LON", help="a second scenario with a new station there and 2 more units"
    )
    how = sim.add_argument_group("how the calls are worked")
    how.add_argument("--policy", default="both", choices=["both", "drive_time", "straight_line"])
    how.add_argument("--standard", default="nfpa1710", help="nfpa1710, arp or custom:echo+delta=600@90,...")
    for name, help_text in (
        ("processing", "call answered -> unit notified"),
        ("turnout", "notified -> en route, from a station"),
        ("on-scene", "on scene -> leaving"),
        ("handover", "at hospital -> back in service"),
    ):
        sim.add_argument(f"--{name}", metavar="DIST", help=f"{help_text}, e.g. lognormal:900,400")
    sim.add_argument("--start", help="when the clock starts, YYYY-MM-DDTHH:MM local (default: the log's first day)")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--plot", type=Path, metavar="PNG", help="response-time curves of the runs")
    sim.add_argument("--json", action="store_true", help="print the figures as JSON")
    return sim  # type: ignore[no-any-return]


def _durations(args: argparse.Namespace) -> Any:
    from dispatch.sim.model import Dist, Durations

    given: dict[str, Any] = {
        field: Dist.parse(getattr(args, field), f"--{field.replace('_', '-')}")
        for field in ("processing", "turnout", "on_scene", "handover")
        if getattr(args, field)
    }
    return Durations(**given)


def _fleet(args: argparse.Namespace, router: Any) -> tuple[Any, Any, list[Any]]:
    """Stations, units and hospitals: from files and options, else from the database."""
    from dispatch.core.errors import OutsideCoverage
    from dispatch.core.recommend import HospitalView
    from dispatch.sim.build import hospitals_from_geojson, stations_from_geojson
    from dispatch.sim.model import SimStation, SimUnit, spread_units

    ctx = None

    def db() -> Any:
        nonlocal ctx
        if ctx is None:
            from dispatch.cli import _ctx_without_graphs

            ctx = _ctx_without_graphs(Settings.from_env())
        return ctx

    if args.stations is not None:
        stations = stations_from_geojson(_read(args.stations), str(args.stations))
    else:
        from dispatch.services.units import list_stations

        stations = tuple(SimStation(s.name, LatLon(s.lat, s.lon)) for s in list_stations(db()))
        if not stations:
            raise InvalidInput("the database has no stations: give --stations FILE, or seed the demo (dispatch demo)")
    if args.units is not None:
        units = spread_units(stations, args.units, als_share=args.als_share)
    elif args.stations is not None:
        raise InvalidInput("with --stations, say how many ambulances: --units N")
    else:
        from dispatch.services.units import list_stations, list_units

        names = {s.id: s.name for s in list_stations(db())}
        units = tuple(
            SimUnit(u.callsign, UnitType(u.type), names[u.station_id])
            for u in list_units(db())
            if u.station_id in names and UnitType(u.type) is not UnitType.MOTORBIKE
        )
        if not units:
            raise InvalidInput("the database has no ambulances at stations: give --units N")
    if args.hospitals is not None:
        hospitals = hospitals_from_geojson(_read(args.hospitals), str(args.hospitals))
    else:
        from dispatch.services.units import list_hospitals

        hospitals = [
            HospitalView(h.id or 0, h.name, LatLon(h.lat, h.lon), frozenset(h.capabilities), h.emergency, h.diversion)
            for h in list_hospitals(db())
        ]
        if not hospitals:
            raise InvalidInput("the database has no hospitals: give --hospitals FILE, or seed the demo")
    off = [s.name for s in stations if isinstance(router.snapper.snap_many([s.at])[0], OutsideCoverage)]
    if off:
        raise InvalidInput(f"stations off the ambulance roads of this map: {off}")
    return stations, units, hospitals


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None


def _calls(args: argparse.Namespace, router: Any, start: datetime | None, seed: int) -> tuple[list[Any], datetime]:
    from dispatch.cli import load_call_log
    from dispatch.geo.coverage import road_length_demand
    from dispatch.sim.build import calls_from_log, next_monday, start_of
    from dispatch.sim.generate import PRIORITY_MIX, generate_calls, parse_mix

    mix = parse_mix(args.mix) if args.mix else PRIORITY_MIX
    log = load_call_log(args, router)
    if log is not None:
        for reason, n in log.skipped.items():
            print(f"skipped {n:,} of {log.source}: {reason}", file=sys.stderr)
        begin = start or start_of(log.calls, router.tz, log.source)
        calls, notes = calls_from_log(log.calls, start=begin, seed=seed, mix=mix)
        for note, n in notes.items():
            print(f"note: {n:,} {note}", file=sys.stderr)
        if not calls:
            raise InvalidInput(f"{log.source} has no usable call after {begin.isoformat()}")
        return calls, begin
    g = router.graph
    points = [LatLon(float(a), float(b)) for a, b in zip(g.node_lat, g.node_lon, strict=True)]
    begin = start or next_monday(datetime.now(router.tz))
    midnight = begin.replace(hour=0, minute=0, second=0, microsecond=0)
    calls = generate_calls(
        points,
        road_length_demand(g),
        calls_per_day=args.calls_per_day,
        days=args.days,
        seed=seed,
        mix=mix,
        start_s_of_day=(begin - midnight).total_seconds(),
    )
    print(
        f"note: {len(calls):,} generated calls over {args.days:g} days, placed by the road-length proxy demand",
        file=sys.stderr,
    )
    return calls, begin


def cmd_simulate(args: argparse.Namespace, router: Any) -> int:
    from dispatch.cli import writable
    from dispatch.sim.engine import POLICIES, Policy, simulate
    from dispatch.sim.model import Scenario, SimStation, SimUnit
    from dispatch.sim.results import parse_standard, plot, summarize, table
    from dispatch.sim.roads import RoadTimes

    writable(args.plot)
    standard = parse_standard(args.standard)
    durations = _durations(args)
    start = None
    if args.start:
        try:
            start = datetime.fromisoformat(args.start)
        except ValueError:
            raise InvalidInput(f"--start {args.start!r} is not a time: write YYYY-MM-DDTHH:MM") from None
        start = start if start.tzinfo is not None else start.replace(tzinfo=router.tz)
    stations, units, hospitals = _fleet(args, router)
    new = None
    if args.add_station:
        from dispatch.core.errors import OutsideCoverage

        new = SimStation("new station", LatLon.parse(args.add_station))
        snapped = router.snapper.snap_many([new.at])[0]
        if isinstance(snapped, OutsideCoverage):
            raise InvalidInput(f"--add-station {args.add_station}: the station cannot be driven from: {snapped}")
    calls, begin = _calls(args, router, start, args.seed)
    base = Scenario(f"{len(units)} units", stations, units, begin)
    runs: list[tuple[Any, Policy]] = []
    policies = POLICIES if args.policy == "both" else (args.policy,)
    runs += [(base, p) for p in policies]
    if args.compare_units is not None:
        from dispatch.sim.model import resize_fleet

        # the same fleet, grown or shrunk: same stations, same share of ALS
        bigger = resize_fleet(units, stations, args.compare_units)
        other = Scenario(f"{args.compare_units} units", stations, bigger, begin)
        runs.append((other, "drive_time"))
    if new is not None:
        more = (
            *units,
            SimUnit("NA01", UnitType.ALS_AMBULANCE, new.name),
            SimUnit("NB01", UnitType.BLS_AMBULANCE, new.name),
        )
        runs.append((Scenario(f"{len(units)} units + new station", (*stations, new), more, begin), "drive_time"))
    results = []
    t0 = time.perf_counter()
    for scenario, policy in runs:
        roads = {"ambulance": RoadTimes(router, now=begin)}
        results.append(
            (
                f"{scenario.name}, {policy.replace('_', ' ')}",
                simulate(scenario, calls, roads, hospitals, durations=durations, policy=policy, seed=args.seed),
            )
        )
    elapsed = time.perf_counter() - t0
    summaries = [summarize(run, standard) for _, run in results]
    if args.plot is not None:
        # a limit line only where one response-time rule covers every call
        rules = [r for r in standard.rules if r.measure == "response" and r.priorities is None]
        limit = rules[0].limit_s if len(rules) == 1 else None
        plot(results, str(args.plot), limit_s=limit)
    if args.json:
        out = {
            "runs": summaries,
            "durations": durations.as_dict(),
            "start": begin.isoformat(),
            "seed": args.seed,
            "seconds": round(elapsed, 2),
        }
        json.dump(out, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    print(
        f"{len(calls):,} calls from {begin:%Y-%m-%d %H:%M %Z}, seed {args.seed}, standard {standard.name}; "
        f"{len(results)} runs in {elapsed:.1f} s"
    )
    print(table(summaries))
    return 0
