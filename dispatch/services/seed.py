"""Demo data for the bundled Hanoi region: hospitals, stations, units and named demo users."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from dispatch.core.errors import OutsideCoverage
from dispatch.core.types import LatLon, Role, UnitType
from dispatch.db.models import Hospital, Station, Unit, User
from dispatch.services.auth import add_user
from dispatch.services.context import Ctx, utcnow

HOSPITALS_FILE = Path(__file__).resolve().parents[2] / "geodata" / "hanoi" / "hospitals.geojson"
#: Hanoi's 115 emergency centre, 11 Phan Chu Trinh, Hoan Kiem
CENTRAL_STATION = ("Trung tâm Cấp cứu 115 Hà Nội", 21.0236, 105.8566)
DEMO_PASSWORD = "demo-115-hanoi"


def seed_hospitals(ctx: Ctx, path: Path = HOSPITALS_FILE) -> int:
    data = json.loads(path.read_text("utf-8"))
    with Session(ctx.engine, expire_on_commit=False) as s, s.begin():
        if s.exec(select(Hospital)).first() is not None:
            return 0
        n = 0
        for f in data["features"]:
            p = f["properties"]
            lon, lat = f["geometry"]["coordinates"]
            caps = list(p.get("capabilities") or [])
            s.add(
                Hospital(
                    name=p["name"],
                    name_en=p.get("name_en") or "",
                    lat=lat,
                    lon=lon,
                    osm_id=p.get("osm_id") or "",
                    capabilities=caps,
                    emergency="emergency" in caps,
                )
            )
            n += 1
    return n


def _on_roads(ctx: Ctx, h: Hospital) -> bool:
    router = ctx.routers.get("ambulance")
    if router is None:
        return True
    return not isinstance(router.snapper.snap_many([LatLon(h.lat, h.lon)])[0], OutsideCoverage)


def seed_demo(ctx: Ctx) -> dict[str, Any]:
    """Hospitals, stations at hospitals with an emergency department plus the central 115 station, about 20
    units at their stations, and one demo user per role. Does nothing if units exist already."""
    hospitals = seed_hospitals(ctx)
    with Session(ctx.engine, expire_on_commit=False) as s, s.begin():
        if s.exec(select(Unit)).first() is not None:
            return {"hospitals": hospitals, "stations": 0, "units": 0, "users": []}
        # satellite stations at hospitals with an emergency department for trauma, heart or stroke patients,
        # where the hospital lies within the ambulance road coverage of the map
        ed = [
            h
            for h in s.exec(select(Hospital))
            if h.emergency and {"trauma", "cardiac", "stroke"} & set(h.capabilities) and _on_roads(ctx, h)
        ]
        stations = [Station(name=CENTRAL_STATION[0], lat=CENTRAL_STATION[1], lon=CENTRAL_STATION[2])]
        stations += [Station(name=f"Trạm 115 {h.name.removeprefix('Bệnh viện ')}", lat=h.lat, lon=h.lon) for h in ed]
        for st in stations:
            s.add(st)
        s.flush()
        now = utcnow()
        units: list[Unit] = []
        # the central station: 4 ALS, 2 BLS, 2 motorbikes; each hospital station: 1 ALS, 1 BLS, alternating a bike
        plan: list[tuple[Station, UnitType]] = [
            (stations[0], t)
            for t in [UnitType.ALS_AMBULANCE] * 4 + [UnitType.BLS_AMBULANCE] * 2 + [UnitType.MOTORBIKE] * 2
        ]
        for i, st in enumerate(stations[1:]):
            plan += [(st, UnitType.ALS_AMBULANCE), (st, UnitType.BLS_AMBULANCE)]
            if i % 2 == 0:
                plan.append((st, UnitType.MOTORBIKE))
        counters = {UnitType.ALS_AMBULANCE: 0, UnitType.BLS_AMBULANCE: 0, UnitType.MOTORBIKE: 0}
        prefix = {UnitType.ALS_AMBULANCE: "A", UnitType.BLS_AMBULANCE: "B", UnitType.MOTORBIKE: "M"}
        for st, t in plan:
            counters[t] += 1
            u = Unit(
                callsign=f"{prefix[t]}{counters[t]:02d}",
                type=t.value,
                station_id=st.id,
                lat=st.lat,
                lon=st.lon,
                position_at=now,
            )
            s.add(u)
            units.append(u)
    users = []
    for name, role, unit in [
        ("dispatcher", Role.DISPATCHER, None),
        ("planner", Role.PLANNER, None),
        ("admin", Role.ADMIN, None),
        ("crew-a01", Role.CREW, "A01"),
        ("crew-m01", Role.CREW, "M01"),
    ]:
        with ctx.reader() as s:
            exists = s.exec(select(User).where(User.name == name)).first() is not None
        if not exists:
            add_user(ctx, name=name, role=role.value, password=DEMO_PASSWORD, unit_callsign=unit)
        users.append({"name": name, "role": role.value, "unit": unit, "password": DEMO_PASSWORD})
    return {"hospitals": hospitals, "stations": len(stations), "units": len(units), "users": users}
