"""Ranking units for a call and hospitals for a patient, on drive times given by a small table.

The table stands in for the road graph through the TravelTimes protocol (pure logic: the graph-backed
ranking is exercised through the API suite on the real Hanoi extract).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from dispatch.core.errors import DispatchError, NoRoute, OutsideCoverage
from dispatch.core.recommend import HospitalView, UnitView, rank_hospitals, rank_units
from dispatch.core.types import Capability, LatLon, UnitStatus, UnitType

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SCENE = LatLon(21.03, 105.85)
ALS, BLS, BIKE = UnitType.ALS_AMBULANCE, UnitType.BLS_AMBULANCE, UnitType.MOTORBIKE


@dataclass(frozen=True)
class Leg:
    eta_s: float
    distance_m: float


class Table:
    """Known drive times, keyed by the place that is not fixed: each origin (units driving to one scene) or
    the destination (one scene to each hospital). A value that is an error stands for 'no route'."""

    def __init__(self, etas: dict[LatLon, float | DispatchError], *, by: str = "origin") -> None:
        self.etas = etas
        self.by = by
        self.calls: list[tuple[list[LatLon], LatLon]] = []

    def eta_to(
        self, origins: Sequence[LatLon], destination: LatLon, *, at: datetime | None = None
    ) -> Sequence[Leg | DispatchError]:
        assert at is None
        self.calls.append((list(origins), destination))
        out: list[Leg | DispatchError] = []
        for o in origins:
            v = self.etas[o if self.by == "origin" else destination]
            out.append(v if isinstance(v, DispatchError) else Leg(v, v * 8.0))
        return out


def pos(i: int) -> LatLon:
    return LatLon(21.0 + i / 1000, 105.8)


def unit(
    i: int,
    callsign: str,
    type_: UnitType,
    status: UnitStatus = UnitStatus.AVAILABLE,
    *,
    position: LatLon | None | str = "auto",
    age_min: float = 0.0,
    station: str | None = "Central",
) -> UnitView:
    p = pos(i) if position == "auto" else position
    assert not isinstance(p, str)
    return UnitView(i, callsign, type_, status, p, NOW - timedelta(minutes=age_min), station)


def tables(etas: dict[int, float | DispatchError]) -> dict[str, Table]:
    t = {pos(i): v for i, v in etas.items()}
    return {"ambulance": Table(t), "motorbike": Table(t)}


def test_als_call_ranks_als_first_by_drive_time_then_the_rest_as_first_response() -> None:
    units = [
        unit(1, "A01", ALS),
        unit(2, "A02", ALS),
        unit(3, "B01", BLS),
        unit(4, "M01", BIKE),
        unit(5, "A03", ALS),
    ]
    travel = tables({1: 600.0, 2: 300.0, 3: 60.0, 4: 30.0, 5: 450.0})
    recs, excluded = rank_units(units, SCENE, Capability.ALS, travel, now=NOW)
    assert excluded == []
    assert [r.callsign for r in recs] == ["A02", "A03", "A01", "M01", "B01"]
    assert [r.rank for r in recs] == [1, 2, 3, 4, 5]
    assert [r.meets_capability for r in recs] == [True, True, True, False, False]
    assert [r.eta_s for r in recs] == [300.0, 450.0, 600.0, 30.0, 60.0]
    assert recs[0].distance_m == 2400.0 and recs[0].unit_id == 2 and recs[0].type is ALS
    assert recs[0].reason.startswith("5.0 min by road; ALS as needed; available at Central")
    assert "FIRST RESPONSE below the ALS needed: first response only" in recs[3].reason
    assert "BLS below the ALS needed" in recs[4].reason
    # one query per vehicle, every unit of it at once, all to the scene
    amb = travel["ambulance"].calls
    assert len(amb) == 1 and amb[0][1] == SCENE and set(amb[0][0]) == {pos(1), pos(2), pos(3), pos(5)}
    assert travel["motorbike"].calls == [([pos(4)], SCENE)]


def test_bls_call_prefers_bls_then_keeps_als_as_the_fallback() -> None:
    units = [unit(1, "A01", ALS), unit(2, "B01", BLS), unit(3, "B02", BLS), unit(4, "M01", BIKE)]
    travel = tables({1: 100.0, 2: 500.0, 3: 400.0, 4: 50.0})
    recs, _ = rank_units(units, SCENE, Capability.BLS, travel, now=NOW)
    assert [r.callsign for r in recs] == ["B02", "B01", "A01", "M01"]
    assert [r.meets_capability for r in recs] == [True, True, True, False]
    assert "BLS as needed" in recs[0].reason
    assert "ALS above the BLS needed" in recs[2].reason


def test_first_response_call_takes_the_nearest_bike() -> None:
    units = [unit(1, "A01", ALS), unit(2, "M01", BIKE), unit(3, "M02", BIKE)]
    recs, _ = rank_units(units, SCENE, Capability.FIRST_RESPONSE, tables({1: 10.0, 2: 90.0, 3: 80.0}), now=NOW)
    assert [r.callsign for r in recs][:2] == ["M02", "M01"]
    assert all(r.meets_capability for r in recs)


def test_equal_drive_times_break_ties_by_callsign() -> None:
    units = [unit(1, "A03", ALS), unit(2, "A01", ALS), unit(3, "A02", ALS)]
    recs, _ = rank_units(units, SCENE, Capability.ALS, tables({1: 420.0, 2: 420.0, 3: 420.0}), now=NOW)
    assert [r.callsign for r in recs] == ["A01", "A02", "A03"]


@pytest.mark.parametrize(
    "status",
    [
        UnitStatus.DISPATCHED,
        UnitStatus.EN_ROUTE,
        UnitStatus.ON_SCENE,
        UnitStatus.TRANSPORTING,
        UnitStatus.AT_HOSPITAL,
        UnitStatus.OUT_OF_SERVICE,
    ],
)
def test_busy_and_out_of_service_units_are_excluded_with_the_reason(status: UnitStatus) -> None:
    units = [unit(1, "A01", ALS, status), unit(2, "A02", ALS)]
    travel = tables({1: 10.0, 2: 500.0})
    recs, excluded = rank_units(units, SCENE, Capability.ALS, travel, now=NOW)
    assert [r.callsign for r in recs] == ["A02"]
    assert [(x.unit_id, x.callsign, x.reason) for x in excluded] == [
        (1, "A01", f"{status.value}: not free to take a call")
    ]
    assert all(pos(1) not in origins for origins, _ in travel["ambulance"].calls), "a busy unit is not routed"


def test_returning_unit_is_ranked_from_where_it_is() -> None:
    units = [unit(1, "A01", ALS), unit(2, "A02", ALS, UnitStatus.RETURNING, station=None)]
    recs, excluded = rank_units(units, SCENE, Capability.ALS, tables({1: 600.0, 2: 120.0}), now=NOW)
    assert excluded == []
    assert [(r.callsign, r.status) for r in recs] == [("A02", UnitStatus.RETURNING), ("A01", UnitStatus.AVAILABLE)]
    assert "returning, ranked from its position on the road" in recs[0].reason


def test_units_without_position_graph_or_route_are_excluded_with_the_reason() -> None:
    off_map = OutsideCoverage("21.1,105.9 is 900 m from the nearest road", distance_m=900.0, max_distance_m=250.0)
    units = [
        unit(1, "A01", ALS, position=None),
        unit(2, "A02", ALS),
        unit(3, "A03", ALS),
        unit(4, "M01", BIKE),
        unit(5, "B01", BLS),
    ]
    etas: dict[LatLon, float | DispatchError] = {pos(2): 100.0, pos(3): off_map, pos(5): NoRoute("one-way trap")}
    recs, excluded = rank_units(units, SCENE, Capability.ALS, {"ambulance": Table(etas)}, now=NOW)
    assert [r.callsign for r in recs] == ["A02"]
    reasons = {x.callsign: x.reason for x in excluded}
    assert reasons == {
        "A01": "no known position",
        "A03": "no drivable route: 21.1,105.9 is 900 m from the nearest road",
        "M01": "no road graph for motorbike units",
        "B01": "no drivable route: one-way trap",
    }


def test_position_age_is_in_the_reason() -> None:
    units = [unit(1, "A01", ALS, age_min=12.4), unit(2, "A02", ALS, age_min=0.2, station=None)]
    recs, _ = rank_units(units, SCENE, Capability.ALS, tables({1: 60.0, 2: 120.0}), now=NOW)
    assert recs[0].reason.endswith("available at Central, position 12 min old")
    assert recs[1].reason.endswith("available at its last position, position current")


def test_recommendation_as_dict_rounds() -> None:
    recs, _ = rank_units([unit(1, "A01", ALS)], SCENE, Capability.ALS, tables({1: 61.234}), now=NOW)
    d = recs[0].as_dict()
    assert d == {
        "unit_id": 1,
        "callsign": "A01",
        "type": "als_ambulance",
        "status": "available",
        "rank": 1,
        "eta_s": 61.2,
        "distance_m": 489.9,
        "meets_capability": True,
        "reason": recs[0].reason,
    }


def test_nothing_to_rank() -> None:
    assert rank_units([], SCENE, Capability.ALS, tables({}), now=NOW) == ([], [])


# ---- hospitals ----------------------------------------------------------------------------------------------
def hospital(i: int, name: str, caps: set[str], *, emergency: bool = True, diversion: bool = False) -> HospitalView:
    return HospitalView(i, name, pos(100 + i), frozenset(caps), emergency, diversion)


def test_hospitals_ranked_by_drive_time_with_the_needed_capability() -> None:
    hs = [
        hospital(1, "Bach Mai", {"emergency", "stroke", "cardiac"}),
        hospital(2, "Viet Duc", {"emergency", "trauma"}),
        hospital(3, "E", {"emergency", "stroke"}),
        hospital(4, "Clinic", {"stroke"}, emergency=False),
        hospital(5, "Saint Paul", {"emergency", "stroke"}, diversion=True),
        hospital(6, "108", {"emergency", "stroke"}),
    ]
    travel = Table({pos(101): 900.0, pos(102): 100.0, pos(103): 300.0, pos(104): 1.0, pos(105): 2.0, pos(106): 300.0},
                   by="destination")  # fmt: skip
    ranked, excluded = rank_hospitals(hs, SCENE, "stroke", travel)
    assert [(c.name, c.rank) for c in ranked] == [("108", 1), ("E", 2), ("Bach Mai", 3)], "ties by name"
    assert [c.eta_s for c in ranked] == [300.0, 300.0, 900.0]
    assert ranked[0].reason == "5.0 min by road; has stroke" and ranked[0].hospital_id == 6
    assert {x.callsign: x.reason for x in excluded} == {
        "Viet Duc": "no stroke capability",
        "Clinic": "no emergency department",
        "Saint Paul": "on diversion",
    }
    assert all(orig == [SCENE] for orig, _ in travel.calls), "from the scene to each hospital"
    assert pos(104) not in [dest for _, dest in travel.calls] and pos(105) not in [d for _, d in travel.calls]


def test_diversion_hides_the_nearest_hospital() -> None:
    near, far = hospital(1, "Near", {"emergency"}), hospital(2, "Far", {"emergency"})
    travel = Table({pos(101): 60.0, pos(102): 600.0}, by="destination")
    assert [c.name for c in rank_hospitals([near, far], SCENE, None, travel)[0]] == ["Near", "Far"]
    diverted = hospital(1, "Near", {"emergency"}, diversion=True)
    ranked, excluded = rank_hospitals([diverted, far], SCENE, None, travel)
    assert [c.name for c in ranked] == ["Far"] and ranked[0].reason == "10.0 min by road; emergency department"
    assert [(x.unit_id, x.reason) for x in excluded] == [(1, "on diversion")]


def test_hospital_off_the_road_network_is_excluded() -> None:
    off = OutsideCoverage("hospital is 1015 m from the nearest road", distance_m=1015.0, max_distance_m=250.0)

    class Raising(Table):
        def eta_to(
            self, origins: Sequence[LatLon], destination: LatLon, *, at: datetime | None = None
        ) -> Sequence[Leg | DispatchError]:
            if destination == pos(101):
                raise off
            return super().eta_to(origins, destination, at=at)

    hs = [hospital(1, "Bach Mai", {"emergency"}), hospital(2, "E", {"emergency"}), hospital(3, "X", {"emergency"})]
    travel = Raising({pos(102): 120.0, pos(103): NoRoute("closed bridge")}, by="destination")
    ranked, excluded = rank_hospitals(hs, SCENE, None, travel)
    assert [c.name for c in ranked] == ["E"]
    assert {x.callsign: x.reason for x in excluded} == {
        "Bach Mai": "no drivable route: hospital is 1015 m from the nearest road",
        "X": "no drivable route: closed bridge",
    }


def test_no_hospital_fits() -> None:
    hs = [hospital(1, "A", {"emergency"}), hospital(2, "B", {"emergency"}, diversion=True)]
    ranked, excluded = rank_hospitals(hs, SCENE, "obstetric", Table({}, by="destination"))
    assert ranked == [] and [x.reason for x in excluded] == ["no obstetric capability", "on diversion"]
