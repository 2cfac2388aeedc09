"""The ``dispatch`` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import time
from pathlib import Path
from typing import Any, NoReturn

from dispatch.config import Settings
from dispatch.core.errors import DispatchError, InvalidInput
from dispatch.core.types import LatLon, time_of_day


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_at(text: str) -> time:
    return time_of_day(text, "--at")


def parse_minutes(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidInput(f"--minutes {text!r} is not a list of numbers: write e.g. 4,8,15") from None
    if not values or any(not 0 < v <= 240 for v in values):
        raise InvalidInput(f"--minutes {text!r} is not allowed: give minutes of more than 0 and at most 240")
    return values


def _add_graph_options(p: argparse.ArgumentParser, settings: Settings) -> None:
    p.add_argument(
        "--osm",
        type=Path,
        default=settings.osm_file,
        help="OSM extract (.osm, .osm.bz2, .osm.pbf); default: the bundled central-Hanoi extract",
    )
    p.add_argument(
        "--profile",
        default=settings.profile,
        help="vehicle profile: ambulance, motorbike, or a TOML file (docs/profiles.md)",
    )
    p.add_argument("--cache-dir", type=Path, default=settings.cache_dir, help="where compiled graphs are kept")
    p.add_argument(
        "--max-snap-m",
        type=float,
        default=settings.max_snap_m,
        help="reject positions farther than this from any drivable road (default 250)",
    )


def _add_query_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--at", help="time of day HH:MM for the traffic period (default: now)")
    p.add_argument("--engine", default="auto", choices=["auto", "ch", "dijkstra"], help=argparse.SUPPRESS)
    p.add_argument(
        "--close",
        action="append",
        default=[],
        metavar="LAT,LON",
        help="close the road segment nearest to this point (repeatable)",
    )
    p.add_argument(
        "--close-area",
        type=Path,
        metavar="GEOJSON",
        help="close every road inside the polygon(s) of this GeoJSON file",
    )


def _add_demand_options(p: argparse.ArgumentParser) -> None:
    """Where the demand comes from (dispatch.geo.demand); none of them: the labelled road-length proxy."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--calls", type=Path, metavar="CSV", help="demand from a call log (CSV export)")
    src.add_argument("--population", type=Path, metavar="FILE", help="demand from a population file (GeoJSON/GPKG/CSV)")
    src.add_argument("--history", action="store_true", help="demand from the database's incident history")
    p.add_argument(
        "--columns",
        metavar="MAPPING",
        help="the call log's columns: time=COL and lat=COL,lon=COL or point=COL (WKT or '(lat, lon)'), optionally "
        "priority=COL and id=COL (rows repeating an id count once), e.g. 'time=Received DtTm,point=case_location'",
    )
    p.add_argument("--time-format", metavar="F", help="strptime format of the call times (default: guessed)")
    p.add_argument("--timezone", metavar="TZ", help="zone of call times without an offset (default: Asia/Ho_Chi_Minh)")
    p.add_argument("--priority-map", metavar="M", help="the log's priority values to ours, e.g. 1=echo,2=delta,A=alpha")
    p.add_argument("--population-column", default="population", metavar="NAME", help="default: population")
    p.add_argument("--since", metavar="DATE", help="with --history: incidents from this date (YYYY-MM-DD, local)")
    p.add_argument("--until", metavar="DATE", help="with --history: incidents before this date")
    p.add_argument("--cells", default="grid", choices=["grid", "h3"], help="square cells or H3 hexagons")
    p.add_argument("--h3-resolution", type=int, metavar="R", help="H3 resolution (default: the one nearest --cell-m)")


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = _Parser(prog="dispatch", description="Ambulance dispatch on OpenStreetMap road networks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    for name, text in (
        ("serve", "start the API on the configured region and database"),
        ("demo", "seed the Hanoi demo (hospitals, stations, units, demo users) and start the API"),
    ):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("--host", default="127.0.0.1")
        sp.add_argument("--port", type=int, default=8000)
        sp.add_argument(
            "--workers",
            type=int,
            default=1,
            help="server processes on this one address (more than one needs DISPATCH_REDIS_URL)",
        )

    users = sub.add_parser("users", help="user accounts")
    usub = users.add_subparsers(dest="users_command", required=True, parser_class=_Parser)
    add = usub.add_parser("add", help="add a user; the password is read from DISPATCH_PASSWORD or asked for")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["dispatcher", "crew", "planner", "admin"])
    add.add_argument("--unit", metavar="CALLSIGN", help="the unit a crew user belongs to")

    units = sub.add_parser("units", help="units")
    unsub = units.add_subparsers(dest="units_command", required=True, parser_class=_Parser)
    device = unsub.add_parser(
        "device", help="register the phone (OsmAnd / Traccar Client identifier) that reports a unit's position"
    )
    device.add_argument("callsign", metavar="CALLSIGN")
    device.add_argument("device_id", metavar="DEVICE_ID", nargs="?", help="the identifier the phone app shows")
    device.add_argument("--clear", action="store_true", help="the unit has no phone any more")

    graph = sub.add_parser("graph", help="road graph commands")
    gsub = graph.add_subparsers(dest="graph_command", required=True, parser_class=_Parser)
    gdemo = gsub.add_parser("demo", help="summarise the road graph and print a sample route")
    _add_graph_options(gdemo, settings)
    build = gsub.add_parser("build", help="build and cache the graph of an OSM file")
    build.add_argument("path", type=Path, help="OSM extract (.osm, .osm.bz2, .osm.pbf)")
    build.add_argument("--profile", default=settings.profile, help="ambulance, motorbike, or a TOML file")
    build.add_argument("--cache-dir", type=Path, default=settings.cache_dir)
    build.add_argument("--force", action="store_true", help="rebuild even if the cache holds this graph")
    build.add_argument("--json", action="store_true", help="print the summary as JSON")

    route = sub.add_parser("route", help="fastest route between two points, as JSON")
    route.add_argument("origin", metavar="LAT,LON")
    route.add_argument("destination", metavar="LAT,LON")
    _add_graph_options(route, settings)
    _add_query_options(route)

    eta = sub.add_parser("eta", help="drive time from each unit position to one incident, fastest first")
    eta.add_argument("incident", metavar="LAT,LON")
    eta.add_argument("units", metavar="LAT,LON", nargs="+")
    _add_graph_options(eta, settings)
    _add_query_options(eta)

    iso = sub.add_parser("isochrone", help="areas reachable within some minutes, as GeoJSON")
    iso.add_argument("origin", metavar="LAT,LON")
    iso.add_argument("--minutes", default="4,8,15", help="comma-separated minutes (default 4,8,15)")
    _add_graph_options(iso, settings)
    _add_query_options(iso)

    cov = sub.add_parser("coverage", help="share of demand an ambulance reaches within some minutes of the stations")
    cov.add_argument("--stations", type=Path, help="GeoJSON points (default: the stations in the database)")
    cov.add_argument("--minutes", default="4,8,15", help="comma-separated minutes (default 4,8,15)")
    cov.add_argument("--cell-m", type=float, default=500.0, help="cell size in metres (default 500)")
    cov.add_argument("--geojson", type=Path, help="write the cells with their coverage to this GeoJSON file")
    cov.add_argument("--csv", type=Path, metavar="OUT", help="write the cells' table (CSV) to this file")
    cov.add_argument("--png", type=Path, metavar="OUT", help="draw the map (PNG, OSM attribution) to this file")
    cov.add_argument("--html", type=Path, metavar="OUT", help="write a self-contained HTML report to this file")
    cov.add_argument("--isochrones", type=Path, metavar="OUT", help="write every station's isochrones (GeoJSON)")
    cov.add_argument(
        "--map-minutes", type=float, help="the threshold the map and the HTML report show (default: the middle one)"
    )
    cov.add_argument("--json", action="store_true", help="print the whole report as JSON")
    cov.add_argument("--districts", type=Path, metavar="FILE", help="coverage per district: GeoJSON/GPKG polygons")
    cov.add_argument("--district-name", default="name", metavar="COL", help="the districts' name column")
    _add_demand_options(cov)
    _add_graph_options(cov, settings)
    _add_query_options(cov)

    st = sub.add_parser("site", help="station siting: where stations should go (MCLP, LSCP or p-median)")
    st.add_argument("--model", required=True, choices=["mclp", "lscp", "pmedian"], help="the siting model")
    st.add_argument("--minutes", type=float, default=8.0, help="the covering threshold in minutes (default 8)")
    st.add_argument("--p", type=int, help="sites in the plan, existing ones kept included (mclp, pmedian)")
    where = st.add_mutually_exclusive_group()
    where.add_argument("--candidates", type=Path, metavar="FILE", help="candidate sites: GeoJSON points")
    where.add_argument("--candidate-cells", action="store_true", help="every cell's centre is a candidate (default)")
    st.add_argument("--cell-m", type=float, default=500.0, help="demand cell size in metres (default 500)")
    st.add_argument("--stations", type=Path, help="existing stations, GeoJSON points (default: the database's)")
    st.add_argument("--keep-existing", action="store_true", help="lock the existing stations into the plan")
    st.add_argument(
        "--drop-unreachable", action="store_true", help="leave out demand no candidate can reach (lscp, pmedian)"
    )
    st.add_argument("--time-limit", type=float, metavar="S", help="give up after S seconds of solving")
    st.add_argument("--geojson", type=Path, metavar="OUT", help="write the chosen sites to this GeoJSON file")
    st.add_argument("--csv", type=Path, metavar="OUT", help="write the chosen sites' table (CSV) to this file")
    st.add_argument("--png", type=Path, metavar="OUT", help="draw the plan's coverage map (PNG) to this file")
    st.add_argument("--json", action="store_true", help="print the whole result as JSON")
    _add_graph_options(st, settings)
    _add_query_options(st)
    _add_demand_options(st)

    from dispatch import cli_simulate

    sim = cli_simulate.add_parser(sub)
    _add_graph_options(sim, settings)
    sim.add_argument("--close", action="append", default=[], metavar="LAT,LON", help="close the road nearest here")
    return parser


def cmd_simulate(args: argparse.Namespace) -> int:
    from dispatch.cli_simulate import cmd_simulate as run

    return run(args, _router(args))


def _router(args: argparse.Namespace) -> Any:
    from dispatch.geo.routing import Router
    from dispatch.geo.store import load_or_build

    loaded = load_or_build(args.osm, args.profile, cache_dir=args.cache_dir, progress=sys.stderr.isatty())
    router = Router(loaded.graph, loaded.chs, max_snap_m=args.max_snap_m)
    for point in getattr(args, "close", []):
        router.close_near(LatLon.parse(point), reason="command line --close")
    area = getattr(args, "close_area", None)
    if area is not None:
        _close_area(router, area)
    return router


def _close_area(router: Any, path: Path) -> None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"--close-area {path}: not a readable GeoJSON file ({exc})") from None
    features = data.get("features", [data]) if isinstance(data, dict) else []
    geoms = [f.get("geometry", f) for f in features if isinstance(f, dict)]
    if not geoms:
        raise InvalidInput(f"--close-area {path}: holds no Polygon")
    for g in geoms:
        router.close_area(g, reason=f"--close-area {path.name}")


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def cmd_graph_build(args: argparse.Namespace) -> int:
    from dispatch.geo.store import load_or_build

    loaded = load_or_build(
        args.path, args.profile, cache_dir=args.cache_dir, progress=sys.stderr.isatty(), use_cache=not args.force
    )
    if args.force:  # rebuilt: store it for the next warm start
        loaded = load_or_build(args.path, args.profile, cache_dir=args.cache_dir, progress=False, use_cache=True)
    s = dict(loaded.graph.stats)
    s["cache"] = str(loaded.cache_path)
    s["load_s"] = round(loaded.load_s, 3)
    if args.json:
        _print_json(s)
        return 0
    lat0, lon0, lat1, lon1 = s["bbox"]
    print(f"graph     {s['source']} ({s['profile']} profile)")
    print(f"nodes     {s['nodes']:,}")
    print(f"edges     {s['edges']:,} road segments, {s['arcs']:,} directed arcs")
    print(
        f"dropped   {s['dropped_components']:,} disconnected parts ({s['dropped_nodes']:,} nodes, "
        f"{s['dropped_arcs']:,} arcs; largest {s['largest_dropped_component_nodes']} nodes)"
    )
    print(
        f"ways      {s['ways_kept']:,} of {s['highway_ways_read']:,} highway ways drivable; "
        f"{s['conditional_restrictions_applied']} time-of-day restrictions applied, "
        f"{s['conditional_restrictions_not_modelled']} date/weekday restrictions not modelled"
    )
    print(f"bbox      {lat0:.5f},{lon0:.5f} .. {lat1:.5f},{lon1:.5f}")
    print(f"build     {s['build_s']:.2f} s" + ("" if not loaded.warm else f" (warm load {loaded.load_s:.3f} s)"))
    print(f"cache     {s['cache']}")
    return 0


def cmd_route(args: argparse.Namespace) -> int:
    at = parse_at(args.at) if args.at else None
    o, d = LatLon.parse(args.origin), LatLon.parse(args.destination)
    route = _router(args).route(o, d, at=at, engine=args.engine)
    _print_json(route.as_dict())
    return 0


def cmd_eta(args: argparse.Namespace) -> int:
    at = parse_at(args.at) if args.at else None
    incident = LatLon.parse(args.incident)
    units = [LatLon.parse(u) for u in args.units]
    legs = _router(args).eta_to(units, incident, at=at, engine=args.engine)
    rows: list[dict[str, Any]] = []
    for i, (u, leg) in enumerate(zip(units, legs, strict=True)):
        row: dict[str, Any] = {"unit": i, "lat": u.lat, "lon": u.lon}
        if isinstance(leg, DispatchError):
            row["error"] = str(leg)
        else:
            row.update(eta_s=round(leg.eta_s, 1), distance_m=round(leg.distance_m, 1))
        rows.append(row)
    rows.sort(key=lambda r: (r.get("eta_s") is None, r.get("eta_s", 0.0)))
    _print_json({"incident": {"lat": incident.lat, "lon": incident.lon}, "units": rows})
    return 0


def cmd_isochrone(args: argparse.Namespace) -> int:
    from dispatch.geo.isochrone import isochrones

    at = parse_at(args.at) if args.at else None
    minutes = parse_minutes(args.minutes)
    fc = isochrones(_router(args), LatLon.parse(args.origin), [m * 60 for m in minutes], at=at)
    _print_json(fc)
    return 0


def _local_date(text: str | None, option: str, tz: Any) -> Any:
    from datetime import datetime

    if text is None:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{option} {text!r} is not a date: write YYYY-MM-DD") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=tz)


def load_call_log(args: argparse.Namespace, router: Any) -> Any:
    """The calls the options name: a call log (``--calls FILE --columns ...``) or the database's incidents
    (``--history [--since --until]``); None for neither."""
    from dispatch.geo import demand as dm

    if args.calls is not None and args.history:
        raise InvalidInput("give one source of calls: --calls FILE or --history")
    if args.calls is None and (args.columns or args.time_format or args.priority_map or args.timezone):
        raise InvalidInput("--columns, --time-format, --timezone and --priority-map go with --calls FILE")
    if not args.history and (args.since or args.until):
        raise InvalidInput("--since and --until go with --history")
    if args.calls is not None:
        if not args.columns:
            raise InvalidInput("--calls needs --columns, e.g. --columns 'time=Received DtTm,point=case_location'")
        return dm.load_calls(
            router,
            args.calls,
            args.columns,
            time_format=args.time_format,
            priority_map=args.priority_map,
            timezone=args.timezone or router.tz.key,
        )
    if args.history:
        from dispatch.services.demand import incident_history

        since, until = _local_date(args.since, "--since", router.tz), _local_date(args.until, "--until", router.tz)
        return incident_history(_ctx_without_graphs(Settings.from_env()), router=router, since=since, until=until)
    return None


def _demand(args: argparse.Namespace, router: Any) -> Any:
    """The demand the options ask for (None: the proxy); prints what was skipped, by reason, on stderr."""
    from dispatch.geo import demand as dm

    log = load_call_log(args, router)
    if log is not None:
        demand = dm.demand_from_calls(router.graph, log)
        where = str(args.calls) if args.calls is not None else "the incident history"
    elif args.population is not None:
        demand = dm.load_population(router, args.population, column=args.population_column)
        where = str(args.population)
    else:
        return None
    for reason, n in demand.skipped.items():
        print(f"skipped {n:,} of {where}: {reason}", file=sys.stderr)
    for note, n in demand.notes.items():
        print(f"note: {n:,} of {where}: {note}", file=sys.stderr)
    return demand


def cmd_coverage(args: argparse.Namespace) -> int:
    from dispatch.geo.coverage import Station, coverage, load_stations

    writable(args.geojson, args.csv, args.png, args.html, args.isochrones)
    minutes = parse_minutes(args.minutes)
    at = parse_at(args.at) if args.at else None
    if args.stations is not None:
        try:
            text = args.stations.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot read {args.stations}: {exc.strerror}") from None
        stations, skipped = load_stations(text, str(args.stations))
        for reason, n in skipped.items():
            print(f"skipped {n} feature(s) of {args.stations}: {reason}", file=sys.stderr)
    else:
        from dispatch.services.units import list_stations

        rows = list_stations(_ctx_without_graphs(Settings.from_env()))
        stations = [Station(r.name, LatLon(r.lat, r.lon)) for r in rows]
    router = _router(args)
    demand = _demand(args, router)
    districts = None
    if args.districts is not None:
        from dispatch.geo.districts import load_districts

        districts = load_districts(router, args.districts, name_column=args.district_name)
        for reason, n in districts.skipped.items():
            print(f"skipped {n:,} feature(s) of {args.districts}: {reason}", file=sys.stderr)
    report = coverage(
        router,
        stations,
        minutes,
        cell_m=args.cell_m,
        at=at,
        cells=args.cells,
        h3_resolution=args.h3_resolution,
        districts=districts,
        **({} if demand is None else {"demand": demand.per_junction, "demand_source": demand.source}),
    )
    if args.geojson is not None:
        args.geojson.write_text(json.dumps(report.geojson(), ensure_ascii=False), encoding="utf-8")
    if any(p is not None for p in (args.csv, args.png, args.html, args.isochrones)):
        from dispatch.geo.report import check_map_threshold, write_outputs

        for path in write_outputs(
            report,
            router,
            csv_path=args.csv,
            png_path=args.png,
            html_path=args.html,
            isochrones_path=args.isochrones,
            threshold_s=check_map_threshold(report, args.map_minutes),
            at=at,
        ):
            print(f"wrote {path}", file=sys.stderr)
    if args.json:
        skipped = {} if demand is None else {"demand_skipped": demand.skipped, "demand_notes": demand.notes}
        _print_json({**report.as_dict(), **skipped})
        return 0
    cells = f"H3 cells at resolution {report.h3_resolution}" if report.h3_resolution is not None else ""
    print(f"{len(stations)} stations, demand: {report.demand_source}, {cells or f'cells of {report.cell_m:g} m'}")
    print(f"{'within':>8}  {'covered':>8}  {'backup (2+ stations)':>20}")
    for t in report.thresholds_s:
        print(f"{t / 60:>6g} min  {report.covered[t]:>8.1%}  {report.backup[t]:>20.1%}")
    worst = report.worst(report.thresholds_s[len(report.thresholds_s) // 2], 5)
    print("worst-covered cells (most demand outside the middle threshold):")
    for c in worst:
        median = "not reached" if c.median_s == float("inf") else f"{c.median_s / 60:.1f} min"
        print(f"  {c.lat:.4f},{c.lon:.4f}  demand {c.demand:,.0f}  median {median}")
    if report.districts is not None:
        print(f"by district ({report.districts_source}), covered / backup:")
        for d in report.districts:
            if d["district"] is None:
                print(f"  (outside every district: {d['demand'] / report.total_demand:.1%} of the demand)")
                continue
            shares = "  ".join(
                "-" if d["covered"][k] is None else f"{k} min {d['covered'][k]:.0%}/{d['backup'][k]:.0%}"
                for k in d["covered"]
            )
            print(f"  {d['district']:<28} {shares}")
    return 0


def _points_file(path: Path, what: str) -> list[Any]:
    from dispatch.geo.coverage import load_stations

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from None
    points, skipped = load_stations(text, f"{what} {path}")
    for reason, n in skipped.items():
        print(f"skipped {n} feature(s) of {path}: {reason}", file=sys.stderr)
    return points


def cmd_site(args: argparse.Namespace) -> int:
    from dispatch.geo.coverage import Station
    from dispatch.geo.siting import site

    writable(args.geojson, args.csv, args.png)
    at = parse_at(args.at) if args.at else None
    candidates = None if args.candidates is None else _points_file(args.candidates, "the candidate file")
    if args.stations is not None:
        stations = _points_file(args.stations, "the station file")
    else:
        from dispatch.services.units import list_stations

        rows = list_stations(_ctx_without_graphs(Settings.from_env()))
        stations = [Station(r.name, LatLon(r.lat, r.lon)) for r in rows]
    if args.cells != "grid" or args.h3_resolution is not None:
        raise InvalidInput("siting works on square cells (--cell-m) for now: leave out --cells h3 / --h3-resolution")
    router = _router(args)
    demand = _demand(args, router)
    result = site(
        router,
        args.model,
        args.minutes,
        p=args.p,
        candidates=candidates,
        stations=stations,
        keep_existing=args.keep_existing,
        cell_m=args.cell_m,
        drop_unreachable=args.drop_unreachable,
        time_limit_s=args.time_limit,
        at=at,
        **({} if demand is None else {"demand": demand.per_junction, "demand_source": demand.source}),
    )
    if args.geojson is not None:
        args.geojson.write_text(json.dumps(result.geojson(), ensure_ascii=False), encoding="utf-8")
    if args.csv is not None:
        args.csv.write_text(result.csv(), encoding="utf-8")
    if args.png is not None:
        args.png.write_bytes(_siting_png(router, result, at, demand))
        print(
            f"map: {args.png} (its share counts each junction; the plan's counts each cell by its demand centre)",
            file=sys.stderr,
        )
    if args.json:
        _print_json(result.as_dict())
        return 0
    d = result.as_dict()
    print(
        f"{result.model}: {len(result.sites)} sites ({d['new_sites']} new) of {result.candidates} candidates, "
        f"{result.demand_cells} demand cells of {result.cell_m:g} m, demand: {result.demand_source}"
    )
    print(
        f"covered within {args.minutes:g} min: {result.covered_before:.1%} by the existing stations, "
        f"{result.covered_after:.1%} with the plan ({result.not_coverable:.1%} no candidate reaches"
        + (f"; {result.dropped:.1%} left out" if result.dropped else "")
        + ")"
    )
    if result.mean_time_s_after is not None:
        before = "" if result.mean_time_s_before is None else f"{result.mean_time_s_before / 60:.1f} min -> "
        print(f"demand-weighted mean drive time: {before}{result.mean_time_s_after / 60:.1f} min")
    print(
        f"objective {result.objective:,.1f} ({d['objective_unit']}); HiGHS: {result.status}, gap {result.mip_gap:g}; "
        f"matrix {result.matrix_s:.1f} s, model {result.build_s:.1f} s, solve {result.solve_s:.1f} s"
    )
    print(f"{'order':>5}  {'site':<24} {'lat,lon':<21} {'gain':>7} {'covered':>8}")
    for s in result.sites:
        kind = " (kept)" if s.locked else " (existing)" if s.existing else ""
        gain = "" if s.gain is None else f"{s.gain:+.1%}"
        print(f"{s.order:>5}  {s.name + kind:<24} {s.at.lat:.5f},{s.at.lon:.5f}  {gain:>7} {s.covered_after:>8.1%}")
    return 0


def _siting_png(router: Any, result: Any, at: Any, demand: Any) -> bytes:
    """The plan on the map: coverage within the threshold by the chosen sites (new ones marked), their
    isochrones, the demand source; drawn by the same code as the coverage map."""
    from dispatch.geo.coverage import Station, coverage
    from dispatch.geo.report import coverage_png, isochrone_layer

    sites = [Station(s.name if s.existing else f"{s.name} (new)", s.at) for s in result.sites]
    seconds = result.threshold_s
    plan = coverage(
        router,
        sites,
        [seconds / 60],
        cell_m=result.cell_m,
        at=at,
        **({} if demand is None else {"demand": demand.per_junction, "demand_source": demand.source}),
    )
    layer = isochrone_layer(router, sites, [seconds], at=at)
    return coverage_png(plan, router, threshold_s=seconds, isochrone_fc=layer)


def cmd_graph_demo(args: argparse.Namespace) -> int:
    router = _router(args)
    s = router.graph.stats
    print(f"Road graph: {s['source']}")
    print(
        f"  {s['nodes']:,} junctions, {s['edges']:,} road segments, {s['arcs']:,} directed arcs "
        f"({s['profile']} profile); {s['dropped_components']} disconnected parts dropped"
    )
    hoan_kiem, ba_dinh = LatLon(21.0287, 105.8524), LatLon(21.0368, 105.8342)
    route = router.route(hoan_kiem, ba_dinh, at=time(10, 0))
    print(f"Sample route, Hoan Kiem Lake -> Ba Dinh Square at 10:00 ({route.period} traffic):")
    print(
        f"  {route.eta_s / 60:.1f} min, {route.distance_m / 1000:.2f} km, {len(route.geometry['coordinates'])} points"
    )
    for step in route.steps:
        print(f"  - {step['instruction']} ({step['distance_m']:.0f} m)")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings, *, demo: bool) -> int:
    import uvicorn

    from dispatch.app import build_ctx, create_app

    if not 1 <= args.workers <= 64:
        raise InvalidInput(f"--workers {args.workers}: give 1 to 64 processes")
    if args.workers > 1 and not settings.redis_url:
        raise InvalidInput(
            f"--workers {args.workers} needs DISPATCH_REDIS_URL (e.g. redis://127.0.0.1:6379/0): "
            "the processes share live events over Redis"
        )

    print(f"loading road graphs for {settings.osm_file.name} and opening {settings.database_url} ...", flush=True)
    ctx = build_ctx(settings)
    for vehicle, router in ctx.routers.items():
        st = router.graph.stats
        print(f"  {vehicle}: {st['nodes']:,} junctions, {st['edges']:,} road segments", flush=True)
    if demo:
        from dispatch.services.seed import seed_demo

        seeded = seed_demo(ctx)
        print(
            f"demo: {seeded['hospitals']} hospitals, {seeded['stations']} stations, {seeded['units']} units "
            "added (nothing is added when they exist already)"
        )
        print("demo users (password for all: " + (seeded["users"][0]["password"] if seeded["users"] else "-") + "):")
        for u in seeded["users"]:
            print(f"  {u['name']:<12} {u['role']}" + (f" of unit {u['unit']}" if u["unit"] else ""))
    else:
        from sqlmodel import select

        from dispatch.db.models import User

        with ctx.reader() as session:
            if session.exec(select(User)).first() is None:
                print("no users yet: add one with  DISPATCH_PASSWORD=... dispatch users add NAME --role dispatcher")
    print(f"API on http://{args.host}:{args.port}/api/v1 (OpenAPI: http://{args.host}:{args.port}/docs)", flush=True)
    if args.workers == 1:
        uvicorn.run(
            create_app(settings, ctx=ctx, freeze_heap=True),
            host=args.host,
            port=args.port,
            log_level="warning",
            ws_per_message_deflate=settings.ws_deflate,
        )
        return 0
    ctx.engine.dispose()
    ctx.bus.close()
    print(f"{args.workers} worker processes sharing events over {settings.redis_url}", flush=True)
    # each worker builds its own context from the same environment (graphs from the cache, one database)
    uvicorn.run(
        "dispatch.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        ws_per_message_deflate=settings.ws_deflate,
    )
    return 0


def cmd_users_add(args: argparse.Namespace, settings: Settings) -> int:
    import getpass
    import os

    from dispatch.services.auth import add_user

    password = os.environ.get("DISPATCH_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise InvalidInput("no password: set DISPATCH_PASSWORD or run the command on a terminal")
        password = getpass.getpass(f"password for {args.name}: ")
    ctx = _ctx_without_graphs(settings)
    user = add_user(ctx, name=args.name, role=args.role, password=password, unit_callsign=args.unit)
    print(f"added {user.name} ({user.role}" + (f", unit {args.unit}" if args.unit else "") + ")")
    return 0


def writable(*paths: Path | None) -> None:
    """Refuse, before any work, an output file that cannot be written."""
    import os

    for p in paths:
        if p is None:
            continue
        parent = p.parent
        if p.is_dir():
            raise InvalidInput(f"{p} is a folder: give the name of a file to write")
        if not parent.is_dir():
            raise InvalidInput(f"cannot write {p}: the folder {parent} does not exist")
        if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
            raise InvalidInput(f"cannot write {p}: permission denied")


def _ctx_without_graphs(settings: Settings) -> Any:
    """A context on the configured database (migrated), for commands that need no road graph."""
    from dispatch.db.engine import make_engine, migrate
    from dispatch.services.context import Ctx

    engine = make_engine(settings.database_url)
    migrate(engine)
    return Ctx(engine=engine, routers={})


def cmd_units_device(args: argparse.Namespace, settings: Settings) -> int:
    from dispatch.services.context import SYSTEM
    from dispatch.services.devices import set_device, unit_id_for_callsign

    if args.clear == (args.device_id is not None):
        raise InvalidInput("give either DEVICE_ID or --clear")
    ctx = _ctx_without_graphs(settings)
    unit_id = unit_id_for_callsign(ctx, args.callsign)
    set_device(ctx, actor=SYSTEM, unit_id=unit_id, device_id=args.device_id)
    if args.device_id is None:
        print(f"unit {args.callsign} has no phone registered now")
    else:
        print(f"unit {args.callsign} reports its position as device {args.device_id!r} (OsmAnd / Traccar: /osmand)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings.from_env()
    except DispatchError as exc:
        print(f"dispatch: error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser(settings)
    args = parser.parse_args(argv)
    handlers = {
        "route": cmd_route,
        "eta": cmd_eta,
        "isochrone": cmd_isochrone,
        "coverage": cmd_coverage,
        "site": cmd_site,
        "simulate": cmd_simulate,
    }
    try:
        if args.command == "graph":
            return cmd_graph_demo(args) if args.graph_command == "demo" else cmd_graph_build(args)
        if args.command in ("serve", "demo"):
            return cmd_serve(args, settings, demo=args.command == "demo")
        if args.command == "users":
            return cmd_users_add(args, settings)
        if args.command == "units":
            return cmd_units_device(args, settings)
        return handlers[args.command](args)
    except DispatchError as exc:
        print(f"dispatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
