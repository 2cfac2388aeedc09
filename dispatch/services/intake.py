"""Call intake many calls per transaction (group commit), with their rankings.

Each call taken alone paid for a transaction of its own (SQLite's fsync, the write lock, the session), a read
of the unit roster for its ranking, and a hop between worker threads under one interpreter lock; at 20
dispatchers posting at once most of the server's time went there (``bench/api.py``). Here one thread takes
every call that has queued meanwhile (up to ``MAX_BATCH``), checks and snaps each, writes them all in one
transaction, reads the units once and ranks each call. A caller is answered only after the commit, so an
acknowledged call is durable. A batch that fails to write is written again one call per transaction, so one
bad call cannot fail the others; a call whose check fails (unknown card, off the road coverage, a crew trying
to take a call) gets its own error and the rest go on.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from dispatch.core.recommend import Excluded, Recommendation
from dispatch.db.models import Incident
from dispatch.services.context import Actor, Ctx, started
from dispatch.services.incidents import (
    NewIncident,
    PreparedIncident,
    prepare_incident,
    ranker,
    write_incidents,
    write_one,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Taken:
    """A call as the API answers it: the incident, whether this request made it (False: a retried
    Idempotency-Key), and the units that could go, best first."""

    incident: Incident
    created: bool
    recommendations: list[Recommendation]
    excluded: list[Excluded]


@dataclass
class _Job:
    actor: Actor
    new: NewIncident
    idempotency_key: str | None
    done: Future[Taken]


class Intake:
    """The intake thread. :meth:`submit` from any thread returns a future; :func:`take` waits for it."""

    MAX_BATCH = 100

    def __init__(self, ctx: Ctx, *, start: bool = True) -> None:
        self.ctx = ctx
        self.batches = 0
        self.calls = 0
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._run, name="intake", daemon=True)
            self._thread.start()

    def submit(self, actor: Actor, new: NewIncident, idempotency_key: str | None = None) -> Future[Taken]:
        done: Future[Taken] = Future()
        self._queue.put(_Job(actor, new, idempotency_key, done))
        return done

    def stop(self, timeout_s: float = 30.0) -> None:
        """Answer the calls queued so far, then end the thread (the server's shutdown)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            self.drain(job)

    def drain(self, first: _Job | None = None) -> int:
        """Take ``first`` and every call queued meanwhile (up to ``MAX_BATCH``) as one batch; returns its size.
        The thread's one step (an Intake made with ``start=False`` is stepped by hand, as the tests do)."""
        batch = [] if first is None else [first]
        while len(batch) < self.MAX_BATCH:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:  # stop: after this batch
                self._queue.put(None)
                break
            batch.append(job)
        if not batch:
            return 0
        try:
            self._process(batch)
        except Exception as exc:  # noqa: BLE001 - the thread must live on; every caller hears of it
            log.exception("call intake failed")
            for job in batch:
                if not job.done.done():
                    job.done.set_exception(exc)
        return len(batch)

    def _process(self, batch: list[_Job]) -> None:
        self.batches += 1
        self.calls += len(batch)
        answers: list[tuple[_Job, Incident, bool]] = []
        writes: list[tuple[_Job, PreparedIncident]] = []
        later: list[_Job] = []  # a key already in this batch: answered from the first one's row, after it
        keys: set[tuple[int, str]] = set()
        for job in batch:
            key = None if job.idempotency_key is None else (job.actor.id or 0, job.idempotency_key)
            if key is not None and key in keys:
                later.append(job)
                continue
            try:
                found = prepare_incident(self.ctx, actor=job.actor, new=job.new, idempotency_key=job.idempotency_key)
            except Exception as exc:  # noqa: BLE001 - this call's own error (a 4xx), the others go on
                job.done.set_exception(exc)
                continue
            if isinstance(found, Incident):
                answers.append((job, found, False))
            else:
                if key is not None:
                    keys.add(key)
                writes.append((job, found))
        if writes:
            try:
                rows = write_incidents(self.ctx, [p for _, p in writes])
                answers += [(job, row, True) for (job, _), row in zip(writes, rows, strict=True)]
            except Exception:  # noqa: BLE001 - each call alone: the others must not fail with the bad one
                for job, p in writes:
                    try:
                        row, created = write_one(self.ctx, p)
                    except Exception as exc:  # noqa: BLE001 - handed to the caller, which answers with it
                        job.done.set_exception(exc)
                        continue
                    answers.append((job, row, created))
        if answers:
            try:
                rank = ranker(self.ctx)
            except Exception as exc:  # noqa: BLE001 - the calls are written; the callers hear why no ranking
                for job, _, _ in answers:
                    job.done.set_exception(exc)
                answers = []
            for job, row, created in answers:
                try:
                    recs, excluded = rank(row)
                except Exception as exc:  # noqa: BLE001 - this call's own error; the others go on
                    job.done.set_exception(exc)
                    continue
                job.done.set_result(Taken(row, created, recs, excluded))
        if later:
            self._process(later)


def intake_of(ctx: Ctx) -> Intake:
    """The context's intake thread, started on first use."""
    intake: Intake = started(ctx, "intake", Intake)
    return intake


def take(ctx: Ctx, *, actor: Actor, new: NewIncident, idempotency_key: str | None = None) -> Taken:
    """Take one call through the intake thread and wait for its answer."""
    return intake_of(ctx).submit(actor, new, idempotency_key).result()
