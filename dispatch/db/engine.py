"""The database engine (SQLite file by default, PostgreSQL by URL) and schema migrations on start."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str) -> Engine:
    """SQLite: WAL journal, foreign keys on, full fsync on commit, writers wait up to 10 s for the lock."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            conn.isolation_level = None  # the driver leaves transactions to the "begin" hook below
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # writers take the lock at BEGIN, so two transactions never deadlock upgrading a read lock;
            # sessions marked read-only (Ctx.reader) read a WAL snapshot beside them
            readonly = conn.get_execution_options().get("dispatch_readonly", False)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


class WalCheckpointer:
    """Copies SQLite's write-ahead log into the database file on a thread of its own, every ``interval_s``.

    Left to itself, SQLite does that inside whichever commit first finds the log past 1,000 pages, and that
    request waits for it: 60-75 ms here, once every ~340 incidents (``bench/api.py``). Checkpointing every half
    second keeps the log far below that mark, so requests never meet one. A PASSIVE checkpoint does not block
    writers or readers; the server starts this and stops it with the app.
    """

    def __init__(self, engine: Engine, interval_s: float = 0.5) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sqlite-wal-checkpoint", daemon=True)

    def start(self) -> WalCheckpointer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        conn = self.engine.raw_connection()
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    conn.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
                    self.runs += 1
                except sqlite3.Error as exc:  # busy with another process's checkpoint: the next round catches up
                    log.warning("WAL checkpoint skipped: %s", exc)
        finally:
            conn.close()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
