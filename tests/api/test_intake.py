"""Call intake many calls per transaction (dispatch.services.intake), on both databases: each call of a batch
gets its own answer, a bad call fails alone, and every acknowledged call is in the database with its event."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from dispatch.core.errors import Conflict, Forbidden, InvalidInput, OutsideCoverage, Unavailable
from dispatch.core.types import Role
from dispatch.db.models import Event, IdempotencyKey, Incident
from dispatch.services.context import Actor
from dispatch.services.incidents import NewIncident
from dispatch.services.intake import Intake, Taken
from tests.api.conftest import BA_DINH, HOAN_KIEM, Api

VIET_DUC = (21.0286, 105.8470)
#: on the ambulance roads, but about 950 m from any road motorbikes may take (a motorbike ban by the river)
OFF_MOTORBIKE_ROADS = (21.039674, 105.865566)


def _actor(api: Api, name: str, role: Role) -> Actor:
    unit = api.unit("A01") if role is Role.CREW else None
    return Actor(api.db.template.user_ids[name], name, role, unit)


def _call(at: tuple[float, float], complaint: str = "chest_pain", **extra: Any) -> NewIncident:
    return NewIncident(lat=at[0], lon=at[1], complaint=complaint, **extra)


def _error(f: Future[Taken]) -> BaseException:
    exc = f.exception(timeout=0)
    assert exc is not None, f"expected an error, got {f.result(timeout=0)}"
    return exc


def _events(api: Api, ids: list[int]) -> list[Event]:
    with api.ctx.reader() as s:
        q = select(Event).where(col(Event.incident_id).in_(ids), Event.kind == "incident.created")
        return list(s.exec(q.order_by(col(Event.seq))))


def test_one_batch_one_transaction_and_every_call_its_own_answer(api: Api) -> None:
    intake = Intake(api.ctx, start=False)
    dispatcher = _actor(api, "dispatcher", Role.DISPATCHER)
    good = [intake.submit(dispatcher, _call(p, caller_number=f"09{i:08d}")) for i, p in
            enumerate([HOAN_KIEM, BA_DINH, VIET_DUC] * 4)]  # fmt: skip
    off_map = intake.submit(dispatcher, _call((21.2, 105.5)))
    no_card = intake.submit(dispatcher, _call(HOAN_KIEM, "hiccups"))
    crew = intake.submit(_actor(api, "crew-a01", Role.CREW), _call(HOAN_KIEM))
    # one key three times in the batch: the first makes the call, the same call again replays it, another
    # call under that key is refused
    keyed = [intake.submit(dispatcher, _call(BA_DINH, "stroke"), "k-1") for _ in range(2)]
    other = intake.submit(dispatcher, _call(BA_DINH, "fall"), "k-1")
    off_motorbike = intake.submit(dispatcher, _call(OFF_MOTORBIKE_ROADS))

    assert intake.drain() == 19 and intake.batches == 2  # the key's repeats go in a second, after the first

    taken = [f.result(timeout=0) for f in good]
    assert all(t.created and t.recommendations for t in taken)
    ids = [t.incident.id for t in taken]
    assert len(set(ids)) == 12 and all(isinstance(i, int) for i in ids)
    assert [t.incident.caller_number for t in taken] == [f"09{i:08d}" for i in range(12)]
    # one transaction: one call time, and the log's numbers run without a gap in the batch's order
    assert len({t.incident.psap_call_at for t in taken}) == 1
    seqs = [e.seq for e in _events(api, [i for i in ids if i is not None])]
    assert seqs == list(range(seqs[0], seqs[0] + 12))
    with api.ctx.reader() as s:
        stored = {i.id: i for i in s.exec(select(Incident).where(col(Incident.id).in_(ids)))}
    assert {i: stored[i].caller_number for i in ids} == {t.incident.id: t.incident.caller_number for t in taken}

    assert isinstance(_error(off_map), OutsideCoverage) and "outside this map's road coverage" in str(_error(off_map))
    assert isinstance(_error(no_card), InvalidInput) and "hiccups" in str(_error(no_card))
    assert isinstance(_error(crew), Forbidden)
    first, again = (f.result(timeout=0) for f in keyed)
    assert first.created and not again.created and again.incident.id == first.incident.id
    refused = _error(other)
    assert isinstance(refused, Conflict) and refused.current == {"incident_id": first.incident.id}
    # a call on the ambulance roads but off the motorbikes' is taken; the motorbikes are left out, saying why
    t = off_motorbike.result(timeout=0)
    assert t.created and t.recommendations and all(r.type.vehicle == "ambulance" for r in t.recommendations)
    left_out = [x for x in t.excluded if x.callsign.startswith("M")]
    assert left_out and all("off the motorbike roads" in x.reason for x in left_out), t.excluded


def test_a_batch_that_cannot_be_written_is_written_call_by_call(api: Api) -> None:
    """A user deleted after the token check: the key row's foreign key fails the batch's transaction; written
    again one by one, the other calls are taken and only that one fails."""
    intake = Intake(api.ctx, start=False)
    dispatcher = _actor(api, "dispatcher", Role.DISPATCHER)
    gone = Actor(999_999, "gone", Role.DISPATCHER)
    before = [intake.submit(dispatcher, _call(HOAN_KIEM, caller_number="before"))]
    bad = intake.submit(gone, _call(BA_DINH), "k-gone")
    after = [intake.submit(dispatcher, _call(VIET_DUC, caller_number="after"), "k-after")]
    assert intake.drain() == 3 and intake.batches == 1
    assert isinstance(_error(bad), IntegrityError)
    taken = [f.result(timeout=0) for f in before + after]
    assert all(t.created and t.recommendations for t in taken)
    ids = [t.incident.id for t in taken if t.incident.id is not None]
    assert len(_events(api, ids)) == 2
    with api.ctx.reader() as s:
        keys = {k.key: k.incident_id for k in s.exec(select(IdempotencyKey))}
        count = len(list(s.exec(select(Incident))))
    assert keys == {"k-after": taken[1].incident.id} and count == 2


def test_the_api_takes_calls_through_the_intake_thread(api: Api) -> None:
    answers = [api.create_incident(caller_number=f"b{i}") for i in range(5)]
    assert [a["incident"]["caller_number"] for a in answers] == [f"b{i}" for i in range(5)]
    assert len({a["incident"]["id"] for a in answers}) == 5
    assert api.ctx.intake is not None and api.ctx.intake.calls == 5


def test_a_call_whose_client_left_before_its_batch_is_not_recorded(api: Api) -> None:
    intake = Intake(api.ctx, start=False)
    dispatcher = _actor(api, "dispatcher", Role.DISPATCHER)
    jobs = [intake.submit(dispatcher, _call(HOAN_KIEM, caller_number=f"c{i}")) for i in range(3)]
    assert jobs[1].cancel()  # the request was cancelled (its client hung up) while the call still queued
    assert intake.drain() == 3
    assert jobs[1].cancelled() and all(jobs[i].result(timeout=0).created for i in (0, 2))
    with api.ctx.reader() as s:
        callers = sorted(i.caller_number for i in s.exec(select(Incident)))
    assert callers == ["c0", "c2"]
    # once a batch has taken a call it is answered even if its client leaves: the cancel comes too late
    late = intake.submit(dispatcher, _call(HOAN_KIEM, caller_number="late"))
    assert intake.drain() == 1 and not late.cancel() and late.result(timeout=0).created


def test_stopping_answers_the_queued_calls_and_refuses_new_ones(api: Api) -> None:
    intake = Intake(api.ctx)  # its own running thread
    dispatcher = _actor(api, "dispatcher", Role.DISPATCHER)
    queued = [intake.submit(dispatcher, _call(BA_DINH, caller_number=f"q{i}")) for i in range(6)]
    intake.stop()
    assert all(f.result(timeout=30).created for f in queued)
    with pytest.raises(Unavailable, match="the server is stopping: the call was not recorded; send it again"):
        intake.submit(dispatcher, _call(BA_DINH))
    intake.stop()  # twice is harmless


def test_a_call_written_but_not_ranked_is_answered_as_taken(api: Api) -> None:
    """The ranking runs after the commit; if it fails, the call is taken all the same (201 with why it has no
    ranking): answering with an error would make the dispatcher send it again, and a second incident."""
    with api.ctx.engine.begin() as c:
        c.execute(text("ALTER TABLE unit RENAME TO unit_away"))  # the units cannot be read for the ranking
    r = api.post("/incidents", json={"lat": HOAN_KIEM[0], "lon": HOAN_KIEM[1], "complaint": "stroke"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["recommendations"] == [] and "could not be read for the ranking" in body["ranking_error"]
    with api.ctx.engine.begin() as c:
        c.execute(text("ALTER TABLE unit_away RENAME TO unit"))
    again = api.get(f"/incidents/{body['incident']['id']}/recommendations")
    assert again.status_code == 200 and again.json()["recommendations"], again.text


def test_a_call_carries_the_time_it_came_in(api: Api) -> None:
    """eTimes.01 is when the phone call reached the centre: the console sends when the dispatcher began taking
    it, and the response-time report measures from it (call processing included)."""
    now = datetime.now(UTC)
    came = (now - timedelta(seconds=95)).replace(microsecond=0)
    body = {"lat": HOAN_KIEM[0], "lon": HOAN_KIEM[1], "complaint": "stroke", "call_received_at": came.isoformat()}
    r = api.post("/incidents", json=body, headers={"Idempotency-Key": "came-in"})
    assert r.status_code == 201, r.text
    inc = r.json()["incident"]
    assert datetime.fromisoformat(inc["times"]["eTimes.01"]) == came
    # a retry is the same call; the same key with another time is another call
    again = api.post("/incidents", json=body, headers={"Idempotency-Key": "came-in"})
    assert again.status_code == 201 and again.json()["incident"]["id"] == inc["id"]
    other = api.post(
        "/incidents", json={**body, "call_received_at": now.isoformat()}, headers={"Idempotency-Key": "came-in"}
    )
    assert other.status_code == 409, other.text
    # a unit sent and on scene: the call's handling (95 s before the call was recorded) counts in the report
    unit = r.json()["recommendations"][0]["unit_id"]
    assert api.assign(inc["id"], unit).status_code == 201
    for status in ("en_route", "on_scene"):
        assert api.status(unit, status).status_code == 200
    report = api.ok(api.get("/reports/response-times"))
    stroke = next(p for p in report["by_priority"] if p["priority"] == inc["priority"])
    assert stroke["call_to_notified_s"]["p50"] >= 95 and stroke["response_s"]["p50"] >= 95
    # without it, the call's time is when it is recorded
    plain = api.create_incident()
    assert abs(datetime.fromisoformat(plain["incident"]["times"]["eTimes.01"]) - datetime.now(UTC)) < timedelta(
        minutes=1
    )


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2026-12-06T09:30:00", "timezone"),  # pydantic names the field and wants a zone
        ("soon", "call_received_at"),
        ("FUTURE", "is in the future"),
        ("OLD", "is more than 24 h old"),
    ],
)
def test_a_call_time_that_cannot_be_right_is_refused(api: Api, value: str, words: str) -> None:
    now = datetime.now(UTC)
    value = {"FUTURE": (now + timedelta(minutes=10)).isoformat(), "OLD": (now - timedelta(days=2)).isoformat()}.get(
        value, value
    )
    r = api.post(
        "/incidents", json={"lat": HOAN_KIEM[0], "lon": HOAN_KIEM[1], "complaint": "fall", "call_received_at": value}
    )
    assert r.status_code == 422 and words in r.text, r.text
