"""SQLite's WAL is checkpointed by the server's own thread, not inside a request's commit."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import Engine, event, text

from dispatch.db.engine import WalCheckpointer, make_engine


def _engine_without_autocheckpoint(path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _no_auto(conn, _record) -> None:  # type: ignore[no-untyped-def]
        conn.execute("PRAGMA wal_autocheckpoint=0")  # only an explicit checkpoint may copy the log back

    with engine.begin() as c:
        c.execute(text("CREATE TABLE blob (id INTEGER PRIMARY KEY, data BLOB)"))
    return engine


def _write_and_measure_wal(engine: Engine, path: Path) -> int:
    """Sixty transactions of ~20 KB each, 20 ms apart; the largest size the WAL file reached."""
    largest = 0
    for _ in range(60):
        with engine.begin() as c:
            c.execute(text("INSERT INTO blob (data) VALUES (:d)"), {"d": os.urandom(20_000)})
        largest = max(largest, (path.parent / (path.name + "-wal")).stat().st_size)
        time.sleep(0.02)
    return largest


def test_background_checkpoints_keep_the_wal_small(tmp_path: Path) -> None:
    path = tmp_path / "cp.db"
    engine = _engine_without_autocheckpoint(path)
    checkpointer = WalCheckpointer(engine, interval_s=0.05).start()
    try:
        largest = _write_and_measure_wal(engine, path)
    finally:
        checkpointer.stop()
    assert checkpointer.runs >= 5
    assert largest < 400_000, f"the WAL reached {largest:,} bytes of the ~1.2 MB written"
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM blob")).scalar_one() == 60
    engine.dispose()


def test_without_the_checkpointer_the_wal_grows(tmp_path: Path) -> None:
    """The control: the same writes with no checkpoint leave the whole ~1.2 MB in the log."""
    path = tmp_path / "nocp.db"
    engine = _engine_without_autocheckpoint(path)
    assert _write_and_measure_wal(engine, path) > 1_200_000
    engine.dispose()
