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
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

from dispatch.core.errors import Unavailable
from dispatch.core.recommend import Excluded, Recommendation
from dispatch.db.models import Incident
from dispatch.services.context import Actor, Ctx, started
from dispatch.services.incidents import (
    NewIncident,
    PreparedIncident,
    key_of,
    prepare_incident,
    ranker,
    used_keys,
    write_incidents,
    write_one,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Taken:
    """A call as the API answers it: the incident, whether this request made it (False: a retried
    Idempotency-Key), and the units that could go, best first. ``ranking_error`` says why there is no ranking
    when it failed after the call was written: the call is taken all the same (answering with an error would
    invite a retry, and a second incident), and ``GET /incidents/{id}/recommendations`` ranks it again."""

    incident: Incident
    created: bool
    recommendations: list[Recommendation]
    excluded: list[Excluded]
    ranking_error: str | None = None


@dataclass
class _Job:
    actor: Actor
    new: NewIncident
    idempotency_key: str | None
    done: Future[Taken]


def _answer(done: Future[Taken], result: Taken | BaseException) -> None:
    """Hand a job its answer. Its future was marked running when the batch took it, so a request cancelled
    meanwhile (its client gone) cannot make this fail; that request just no longer listens."""
    try:
        if isinstance(result, BaseException):
            done.set_exception(result)
        else:
            done.set_result(result)
    except InvalidStateError:  # answered already (the thread's last-resort handler after a partial batch)
        pass


class Intake:
    """The intake thread. :meth:`submit` from any thread returns a future for the call's answer."""

    MAX_BATCH = 100

    def __init__(self, ctx: Ctx, *, start: bool = True) -> None:
        self.ctx = ctx
        self.batches = 0
        self.calls = 0
        self.closed = False
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._run, name="intake", daemon=True)
            self._thread.start()

    def submit(self, actor: Actor, new: NewIncident, idempotency_key: str | None = None) -> Future[Taken]:
        """Queue a call; the future gets its :class:`Taken` or its error. Refused (:class:`Unavailable`, 503)
        once the server is stopping: nothing is recorded then, so the client may send it again elsewhere."""
        done: Future[Taken] = Future()
        with self._lock:
            if self.closed:
                raise Unavailable("the server is stopping: the call was not recorded; send it again")
            self._queue.put(_Job(actor, new, idempotency_key, done))
        return done

    def stop(self, timeout_s: float = 30.0) -> None:
        """Refuse new calls, answer the ones queued so far, then end the thread (the server's shutdown). A call
        still queued when the thread does not end in time is answered with :class:`Unavailable`."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout_s)
        stopping = Unavailable("the server stopped before the call was taken: it was not recorded; send it again")
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None and job.done.set_running_or_notify_cancel():
                _answer(job.done, stopping)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                self.drain(job)
            except Exception:  # noqa: BLE001 - drain answers its own batch; the thread lives on for the next
                log.exception("call intake step failed")

    def drain(self, first: _Job | None = None) -> int:
        """Take ``first`` and every call queued meanwhile (up to ``MAX_BATCH``) as one batch; returns how many
        it took. The thread's one step (an Intake made with ``start=False`` is stepped by hand, as the tests
        do). A call whose request was cancelled before the batch took it is dropped unrecorded: nobody was told
        it was taken."""
        batch: list[_Job] = []
        taken = 0
        job: _Job | None = first
        while True:
            if job is not None:
                taken += 1
                if job.done.set_running_or_notify_cancel():
                    batch.append(job)
            if taken >= self.MAX_BATCH:
                break
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:  # stop: after this batch
                self._queue.put(None)
                break
        if batch:
            try:
                self._process(batch)
            except Exception as exc:  # noqa: BLE001 - the thread must live on; every caller hears of it
                log.exception("call intake failed")
                for j in batch:
                    if not j.done.done():
                        _answer(j.done, exc)
        return taken

    def _process(self, batch: list[_Job]) -> None:
        self.batches += 1
        self.calls += len(batch)
        answers: list[tuple[_Job, Incident, bool]] = []
        writes: list[tuple[_Job, PreparedIncident]] = []
        later: list[_Job] = []  # a key already in this batch: answered from the first one's row, after it
        keys: set[tuple[int, str]] = set()
        try:  # every key of the batch in one read
            used = used_keys(
                self.ctx, [key_of(j.actor, j.idempotency_key) for j in batch if j.idempotency_key is not None]
            )
        except Exception as exc:  # noqa: BLE001 - nothing is written yet: every call hears why
            for job in batch:
                _answer(job.done, exc)
            return
        for job in batch:
            key = None if job.idempotency_key is None else key_of(job.actor, job.idempotency_key)
            if key is not None and key in keys:
                later.append(job)
                continue
            try:
                found = prepare_incident(
                    self.ctx, actor=job.actor, new=job.new, idempotency_key=job.idempotency_key, keys=used
                )
            except Exception as exc:  # noqa: BLE001 - this call's own error (a 4xx), the others go on
                _answer(job.done, exc)
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
                        _answer(job.done, exc)
                        continue
                    answers.append((job, row, created))
        # the calls in ``answers`` are written: from here on each is answered 201, with or without its ranking
        rank, failed = None, ""
        try:
            if answers:
                rank = ranker(self.ctx)
        except Exception as exc:  # noqa: BLE001 - reported in the answers
            log.exception("reading the units for the ranking failed")
            failed = (
                f"the units could not be read for the ranking ({type(exc).__name__}); the call is taken: ask "
                "again with GET /api/v1/incidents/ID/recommendations"
            )
        for job, row, created in answers:
            if rank is None:
                _answer(job.done, Taken(row, created, [], [], failed))
                continue
            try:
                recs, excluded = rank(row)
            except Exception as exc:  # noqa: BLE001 - this call's ranking only
                log.exception("ranking incident %s failed", row.id)
                _answer(job.done, Taken(row, created, [], [], f"the ranking failed: {exc}"))
                continue
            _answer(job.done, Taken(row, created, recs, excluded))
        if later:
            self._process(later)


def intake_of(ctx: Ctx) -> Intake:
    """The context's intake thread, started on first use."""
    found = ctx.intake  # no lock on the way of every call: the lock is only for the first
    if found is None:
        found = started(ctx, "intake", Intake)
    intake: Intake = found
    return intake
