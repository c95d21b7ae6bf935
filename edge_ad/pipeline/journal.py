"""Durable results: every published result is a committed row of a SQLite journal (WAL) before
any poller can see it, and sequence numbers are reserved ahead so that none is ever reused.

- **Written in line.** ``append`` inserts and commits on the publishing thread, inside the
  store's seq lock: a result is visible (ring, HTTP, PLC servers) only once its row is
  committed, so a kill -9 cannot lose a result a gateway has already read. With WAL and
  ``synchronous=NORMAL`` a commit is a write into the WAL file, no fsync (measured: ~0.1 ms a
  row here, `edge-ad bench` counts it in the pipeline's own time). A power cut can still lose
  the last commits before a checkpoint; a process crash cannot.
- **Reserved ahead.** Before a seq is used, the high-water mark in ``meta`` is moved past it in
  blocks of ``RESERVE_BLOCK``. A restart continues after the larger of the highest row and the
  mark, so a seq is never handed out twice, even when retention has deleted every row. The
  reserved numbers a crash left unused are recorded in ``gaps``, and ``/v1/results`` says
  which seqs were never served. A clean stop gives the unused numbers back (no gap).
- A full disk must not stop inspection: a failed write is logged and counted
  (``failed_writes``), the result is still served, and ``last_error`` shows in status.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

from ..decision.result import Result

log = logging.getLogger(__name__)
RESERVE_BLOCK = 1000  # one small commit per this many results

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
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS gaps (first INTEGER NOT NULL, last INTEGER NOT NULL,
                                 boot_id TEXT NOT NULL, noted_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chains (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);
"""


class Journal:
    """Owns the SQLite file: the in-line writer connection, the readers' connection, the seq
    reservation and the retention thread."""

    def __init__(self, path: str | Path, max_rows: int = 1_000_000, max_age_s: float = 30 * 86400,
                 prune_every_s: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_rows, self.max_age_s, self.prune_every_s = max_rows, max_age_s, prune_every_s
        self._write = self._connect()
        self._write_lock = threading.Lock()
        self._read = self._connect()  # readers (HTTP) use their own connection
        self._read_lock = threading.Lock()
        self._stop = threading.Event()
        self._pruner = threading.Thread(target=self._prune_loop, name="journal-retention", daemon=True)
        self.written = 0
        self.failed_writes = 0
        self.last_error: str | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
        return conn

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._pruner.start()

    def close(self) -> None:
        self._stop.set()
        if self._pruner.is_alive():
            self._pruner.join(10)
        with self._write_lock:
            self._write.close()
        with self._read_lock:
            self._read.close()

    # -- numbering ---------------------------------------------------------------------------
    def last_seq(self) -> int:
        with self._read_lock:
            row = self._read.execute("SELECT MAX(seq) FROM results").fetchone()
        return int(row[0] or 0)

    def reserved(self) -> int:
        with self._read_lock:
            row = self._read.execute("SELECT value FROM meta WHERE key = 'seq_reserved'").fetchone()
        return int(row[0]) if row else 0

    def resume(self, boot_id: str) -> int:
        """The first seq of this boot: past every row and every reservation. Reserved numbers
        that the previous boot never used become a recorded gap."""
        last, reserved = self.last_seq(), self.reserved()
        if reserved > last:
            with self._write_lock:
                self._write.execute("INSERT INTO gaps VALUES (?, ?, ?, ?)", (last + 1, reserved, boot_id, time.time()))
            log.info("journal: seqs %d..%d were reserved but never served before the restart", last + 1, reserved)
        return max(last, reserved) + 1

    def reserve(self, seq: int) -> int:
        """Move the high-water mark past ``seq`` (committed before ``seq`` is used); returns the
        highest seq now reserved."""
        upto = seq + RESERVE_BLOCK - 1
        try:
            with self._write_lock:
                self._write.execute("INSERT INTO meta VALUES ('seq_reserved', ?) ON CONFLICT(key) "
                                    "DO UPDATE SET value = excluded.value", (upto,))
            return upto
        except sqlite3.Error as exc:
            self._failed(exc, "seq reservation")
            return seq  # try again at the next seq

    def release(self, last_served: int) -> None:
        """A clean stop: nothing past ``last_served`` was handed out, so the next boot may
        continue right after it, without a gap. Only for a store that has stopped publishing."""
        try:
            with self._write_lock:
                self._write.execute("UPDATE meta SET value = ? WHERE key = 'seq_reserved' AND value > ?",
                                    (last_served, last_served))
        except sqlite3.Error as exc:
            self._failed(exc, "seq release")  # harmless: the next boot skips the reservation

    # -- writing -----------------------------------------------------------------------------
    def append(self, result: Result) -> None:
        """One committed row (the caller holds the store's seq lock: rows arrive in order)."""
        body = result.to_json(now=result.captured_at)
        body.pop("age_ms", None)  # age is computed when it is read
        row = (result.seq, result.camera, result.captured_at, result.verdict, result.part_id, json.dumps(body))
        try:
            with self._write_lock:
                self._write.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)", row)
            self.written += 1
        except sqlite3.Error as exc:  # a full disk must not stop inspection
            self._failed(exc, f"result {result.seq}")

    def put_chain(self, seq: int, record: dict) -> None:
        """A chained stage's answer for result ``seq``: a record of its own, the result unchanged."""
        try:
            with self._write_lock:
                self._write.execute("INSERT OR REPLACE INTO chains VALUES (?, ?)", (seq, json.dumps(record)))
        except sqlite3.Error as exc:
            self._failed(exc, f"chain answer for {seq}")

    def chains(self, seqs: list[int]) -> dict[int, dict]:
        """The chained answers of those results that have one."""
        if not seqs:
            return {}
        with self._read_lock:
            rows = self._read.execute("SELECT seq, body FROM chains WHERE seq BETWEEN ? AND ?",
                                      (min(seqs), max(seqs))).fetchall()
        wanted = set(seqs)
        return {seq: json.loads(body) for seq, body in rows if seq in wanted}

    def _failed(self, exc: Exception, what: str) -> None:
        self.failed_writes += 1
        self.last_error = f"{what} not journaled: {exc}"
        if self.failed_writes == 1 or self.failed_writes % 1000 == 0:  # not once per frame
            log.error("journal write failed (%d so far): %s", self.failed_writes, self.last_error)

    def _prune_loop(self) -> None:
        conn = self._connect()
        try:
            while not self._stop.wait(self.prune_every_s):
                self._prune(conn)
            self._prune(conn)
        finally:
            conn.close()

    def _prune(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("DELETE FROM results WHERE captured_at < ?", (time.time() - self.max_age_s,))
            conn.execute("DELETE FROM results WHERE seq <= (SELECT MAX(seq) FROM results) - ?",
                         (self.max_rows,))
            conn.execute("DELETE FROM chains WHERE seq < (SELECT MIN(seq) FROM results)")
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

    def gaps(self, after: int, upto: int) -> list[list[int]]:
        """Ranges [first, last] of seqs in (after, upto] that were reserved but never served."""
        with self._read_lock:
            rows = self._read.execute("SELECT first, last FROM gaps WHERE last > ? AND first <= ? "
                                      "ORDER BY first", (after, upto)).fetchall()
        return [[max(a, after + 1), min(b, upto)] for a, b in rows]
