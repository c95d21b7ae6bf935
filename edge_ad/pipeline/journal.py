"""Durable results: every published result appended to a SQLite journal (WAL).

The worker never waits on the disk: results go to a queue and one writer thread inserts them
in batches (every ``flush_s`` or ``batch`` rows). After a restart the journal's highest seq
is where numbering continues, and polling clients can still read what the ring buffer no
longer holds. On power loss the rows still queued or not yet checkpointed (at most about one
flush interval) can be lost; everything committed survives (WAL, synchronous=NORMAL).
"""
from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from pathlib import Path

from .results import Result

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    seq INTEGER PRIMARY KEY,
    camera TEXT NOT NULL,
    captured_at REAL NOT NULL,
    verdict TEXT NOT NULL,
    part_id TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_part ON results(part_id) WHERE part_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS results_time ON results(captured_at);
"""


class Journal:
    def __init__(self, path: str | Path, max_rows: int = 1_000_000, max_age_s: float = 30 * 86400,
                 flush_s: float = 0.1, batch: int = 500):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_rows, self.max_age_s, self.flush_s, self.batch = max_rows, max_age_s, flush_s, batch
        self._queue: queue.Queue[Result | None] = queue.Queue()
        self._read = self._connect()  # readers (HTTP) use their own connection
        self._read_lock = threading.Lock()
        self._writer = threading.Thread(target=self._write_loop, name="journal", daemon=True)
        self.written = 0
        self.last_error: str | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
        return conn

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._writer.start()

    def close(self) -> None:
        """Flush what is queued, then stop (a journal opened only to read just closes)."""
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join(10)
        self._read.close()

    def last_seq(self) -> int:
        with self._read_lock:
            row = self._read.execute("SELECT MAX(seq) FROM results").fetchone()
        return int(row[0] or 0)

    # -- writing -----------------------------------------------------------------------------
    def append(self, result: Result) -> None:
        self._queue.put(result)

    def _write_loop(self) -> None:
        conn = self._connect()
        last_prune = 0.0
        done = False
        while not done:
            rows = []
            deadline = time.monotonic() + self.flush_s
            while len(rows) < self.batch:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    done = True
                    break
                body = item.to_json(now=item.captured_at)
                body.pop("age_ms", None)  # age is computed when it is read
                rows.append((item.seq, item.camera, item.captured_at, item.verdict, item.part_id,
                             json.dumps(body)))
            if rows:
                try:
                    conn.execute("BEGIN")
                    conn.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)", rows)
                    conn.execute("COMMIT")
                    self.written += len(rows)
                except sqlite3.Error as exc:  # a full disk must not stop inspection
                    conn.execute("ROLLBACK") if conn.in_transaction else None
                    self.last_error = str(exc)
                    log.error("journal write failed (%d results not journaled): %s", len(rows), exc)
            if time.monotonic() - last_prune > 60 or done:
                self._prune(conn)
                last_prune = time.monotonic()
        conn.close()

    def _prune(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("DELETE FROM results WHERE captured_at < ?", (time.time() - self.max_age_s,))
            conn.execute("DELETE FROM results WHERE seq <= (SELECT MAX(seq) FROM results) - ?",
                         (self.max_rows,))
        except sqlite3.Error as exc:
            log.warning("journal retention failed: %s", exc)

    # -- reading -----------------------------------------------------------------------------
    def _rows(self, sql: str, args: tuple) -> list[dict]:
        with self._read_lock:
            rows = self._read.execute(sql, args).fetchall()
        now = time.time()
        out = []
        for (body,) in rows:
            item = json.loads(body)
            item["age_ms"] = round(max(0.0, now - item["timestamp"]) * 1000, 1)
            out.append(item)
        return out

    def after(self, seq: int, limit: int) -> list[dict]:
        return self._rows("SELECT body FROM results WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))

    def oldest_seq(self) -> int | None:
        with self._read_lock:
            row = self._read.execute("SELECT MIN(seq) FROM results").fetchone()
        return None if row[0] is None else int(row[0])

    def by_part(self, part_id: str) -> dict | None:
        rows = self._rows("SELECT body FROM results WHERE part_id = ? ORDER BY seq DESC LIMIT 1", (part_id,))
        return rows[0] if rows else None
