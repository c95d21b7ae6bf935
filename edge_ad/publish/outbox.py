"""Delivery that loses nothing: an on-disk outbox per output, and the publisher that fills it and
drains it in seq order.

- **Filled from the result stream, backed by the journal.** Each result the output wants is
  written to its outbox (SQLite, WAL) by the publisher's own thread. When the in-memory queue
  in front of it overflowed, the seqs it skipped are read back from the journal, so a dropped
  item is late, not lost. A restart does the same from the last seq the outbox took.
- **Drained in order, at least once.** A sender thread delivers the oldest message, deletes it
  only once the receiver has acknowledged it, and retries with backoff (0.5 s doubling to
  30 s) while the receiver is down. Every message carries seq and boot id, so a receiver that
  sees one twice (a crash after delivery, before the delete) can drop the repeat.
- **Bounded.** ``max_rows`` and ``max_age_s`` (checked every ``BOUNDS_EVERY`` messages): beyond
  them the oldest undelivered messages are dropped, counted (``edge_ad_outbox_dropped_total``)
  and logged, as is a message the receiver refuses for good (a 4xx other than 408 and 429). A
  full disk stops the outbox, never the line: what could not be queued is read from the journal
  later.
"""
from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time
from abc import abstractmethod
from pathlib import Path

from ..decision.verdict import Verdict
from .base import Publication, QueuedPublisher

log = logging.getLogger(__name__)
BACKOFF_START_S, BACKOFF_MAX_S = 0.5, 30.0
BACKFILL_LIMIT = 1000  # journal rows read per gap fill
BOUNDS_EVERY = 16  # the outbox's bounds are enforced every this many messages
SEND_BATCH = 64  # messages read from the outbox and delivered per round trip to it

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, camera TEXT NOT NULL,
                                   queued_at REAL NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
# the highest seq the outbox has looked at: it only moves forward
TAKEN_SQL = ("INSERT INTO meta VALUES ('last_taken', ?) ON CONFLICT(key) DO UPDATE SET "
             "value = MAX(value, excluded.value)")


def message_body(result_json: dict) -> str:
    """A result as one element of ``/v1/results`` has it, without the read-time ``age_ms``."""
    body = {k: v for k, v in result_json.items() if k not in ("age_ms", "stale")}
    return json.dumps(body, separators=(",", ":"))


class Refused(Exception):
    """The receiver answered that it will never take this message (a permanent 4xx)."""


class Outbox:
    """Owns one output's SQLite file: the messages not yet delivered, oldest first, and the
    highest seq ever taken in (so a restart knows where the journal must fill in)."""

    def __init__(self, path: str | Path, max_rows: int = 100_000, max_age_s: float = 7 * 86400):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_rows, self.max_age_s = max_rows, max_age_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._puts = 0

    def put(self, seq: int, camera: str, body: str) -> int:
        """Queue one message; see ``put_many``."""
        return self.put_many([(seq, camera, body)])

    def put_many(self, messages: list[tuple[int, str, str]]) -> int:
        """Queue (seq, camera, body) messages (a seq already queued is ignored) in one
        transaction, one WAL commit; returns how many old messages the bounds dropped."""
        if not messages:
            return 0
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR IGNORE INTO outbox VALUES (?, ?, ?, ?)",
                                     [(seq, camera, now, body) for seq, camera, body in messages])
                self._db.execute(TAKEN_SQL, (max(m[0] for m in messages),))
                dropped = 0
                before, self._puts = self._puts, self._puts + len(messages)
                if before // BOUNDS_EVERY != self._puts // BOUNDS_EVERY:  # may be passed by BOUNDS_EVERY - 1
                    dropped += self._db.execute("DELETE FROM outbox WHERE queued_at < ?",
                                                (now - self.max_age_s,)).rowcount
                    dropped += self._db.execute(  # all but the newest max_rows rows
                        "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq DESC LIMIT -1 OFFSET ?)",
                        (self.max_rows,)).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return dropped

    def head(self) -> tuple[int, str, str] | None:
        """(seq, camera, body) of the oldest undelivered message."""
        oldest = self.oldest(1)
        return oldest[0] if oldest else None

    def oldest(self, n: int) -> list[tuple[int, str, str]]:
        """The ``n`` oldest undelivered messages, oldest first."""
        with self._lock:
            return self._db.execute("SELECT seq, camera, body FROM outbox ORDER BY seq LIMIT ?", (n,)).fetchall()

    def remove(self, *seqs: int) -> None:
        """Delivered: gone, in one commit."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def mark_taken(self, seq: int) -> None:
        """Every seq up to ``seq`` was looked at (the unwanted ones leave no row behind)."""
        with self._lock:
            self._db.execute(TAKEN_SQL, (seq,))

    def last_taken(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'last_taken'").fetchone()
        return int(row[0]) if row else 0

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class DeliveringPublisher(QueuedPublisher):
    """A publisher that delivers each wanted result to a receiver through its outbox: ``send``
    is the receiver's part, everything else (filter, outbox, journal backfill, order, retries,
    counting) is here. Two threads: the queue's (into the outbox) and the sender."""

    def __init__(self, name: str, outbox: Outbox, verdicts: list[str] | None, metrics, journal=None):
        super().__init__(name, queue_size=256, metrics=metrics)
        self.outbox, self.journal = outbox, journal
        self.verdicts = None if verdicts is None else {Verdict(v) for v in verdicts}
        self._last = outbox.last_taken()
        if self._last == 0 and journal is not None and len(outbox) == 0:
            self._last = journal.last_seq()  # a new output starts with the results from now on
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._sender = threading.Thread(target=self._send_loop, name=f"send-{name}", daemon=True)
        self.delivered = 0
        self.failures = 0
        self.lost = 0  # dropped at the outbox's bounds, for good
        self._idled_at = 0.0

    @abstractmethod
    def send(self, seq: int, camera: str, body: str) -> None:
        """Deliver one message; return once the receiver has acknowledged it, raise otherwise."""

    def send_many(self, messages: list[tuple[int, str, str]]) -> int:
        """Deliver messages in order; returns how many, from the first, the receiver
        acknowledged before one failed (the failure is raised when none was)."""
        for done, (seq, camera, body) in enumerate(messages):
            try:
                self.send(seq, camera, body)
            except Exception:
                if done == 0:
                    raise
                return done
        return len(messages)

    def idle(self) -> None:
        """Called by the sender about once a second (status heartbeats and the like)."""

    # -- into the outbox ------------------------------------------------------------------------
    def _wanted(self, verdict: str) -> bool:
        return self.verdicts is None or verdict in self.verdicts

    def wants(self, item: Publication) -> bool:
        return True  # every seq passes the queue, so a gap always means an overflow

    def deliver(self, item: Publication) -> None:
        self.deliver_many([item])

    def deliver_many(self, items: list[Publication]) -> None:
        """Into the outbox in one transaction: whatever waited in the queue, and the journal's
        rows for any seq the queue dropped."""
        batch, start = [], self._last
        for item in items:
            seq = item.result.seq
            if seq <= self._last:  # taken already (the journal's backfill got there first)
                continue
            if seq > self._last + 1:
                if not self._put(batch):
                    self._last = start
                    return
                batch, start = [], self._last
                self._backfill(seq)
            if self._wanted(item.result.verdict):
                batch.append((seq, item.result.camera, message_body(item.result.to_json(now=item.result.captured_at))))
            self._last = seq
        if not self._put(batch):  # not queued: the next result sees the gap and reads the journal
            self._last = start
        self._wake.set()

    def _backfill(self, upto: int) -> None:
        """The seqs between the last one taken and ``upto``, from the journal."""
        if self.journal is None:
            return
        while self._last < upto - 1:
            try:
                rows = [r for r in self.journal.after(self._last, BACKFILL_LIMIT) if r["seq"] < upto]
            except sqlite3.Error as exc:
                log.error("%s: journal unreadable, %d..%d not filled in yet: %s", self.name, self._last + 1,
                          upto - 1, exc)
                return
            if not rows:
                break
            if not self._put([(r["seq"], r["camera"], message_body(r)) for r in rows if self._wanted(r["verdict"])]):
                return
            self._last = rows[-1]["seq"]
            log.debug("%s: %d results filled in from the journal", self.name, len(rows))

    def _put(self, messages: list[tuple[int, str, str]]) -> bool:
        try:
            dropped = self.outbox.put_many(messages)
        except sqlite3.Error as exc:
            log.error("%s: outbox write failed, %d results not queued yet: %s", self.name, len(messages), exc)
            return False
        if dropped:
            self.lost += dropped
            if self.metrics is not None:
                self.metrics.outbox_dropped.labels(self.name).inc(dropped)
            log.warning("%s: outbox full (max_rows/max_age): %d undelivered messages dropped", self.name, dropped)
        return True

    # -- out of the outbox ------------------------------------------------------------------------
    def start(self) -> None:
        super().start()
        if self.journal is not None:  # what the last run journaled but never queued, off the event loop
            self._queue.put(lambda: self._backfill(self.journal.last_seq() + 1))
        self._sender.start()

    def close(self, timeout: float = 30.0) -> None:
        super().close(timeout)  # what is queued reaches the outbox; what is there waits for the next run
        self._stopping.set()
        self._wake.set()
        if self._sender.is_alive():
            self._sender.join(timeout)  # an answer in flight ends within the sender's timeout
        try:
            self.outbox.mark_taken(self._last)
        except sqlite3.Error as exc:
            log.warning("%s: outbox position not saved (%s); the next start reads the journal again", self.name, exc)
        if not self._sender.is_alive():
            self.outbox.close()

    def _send_loop(self) -> None:
        delay = BACKOFF_START_S
        while not self._stopping.is_set():
            try:
                batch = self.outbox.oldest(SEND_BATCH)
            except sqlite3.Error as exc:
                log.error("%s: outbox unreadable: %s", self.name, exc)
                batch = []
            if not batch:
                self._wake.wait(1.0)
                self._wake.clear()
                self._idle()
                continue
            try:
                done = self.send_many(batch)
            except Refused as exc:  # it will never take this one: drop it, count it, go on
                log.error("%s: seq %d refused for good, dropped: %s", self.name, batch[0][0], exc)
                self.lost += 1
                if self.metrics is not None:
                    self.metrics.outbox_dropped.labels(self.name).inc()
                done = 1
            except Exception as exc:  # the receiver is down or refused: keep it, retry later
                self.failures += 1
                if self.metrics is not None:
                    self.metrics.publisher_failures.labels(self.name).inc()
                if self.failures == 1 or self.failures % 100 == 0:
                    log.warning("%s: delivery of seq %d failed (%d failures so far), retrying in %.1f s: %s",
                                self.name, batch[0][0], self.failures, delay, exc)
                self._stopping.wait(delay * random.uniform(0.8, 1.2))
                delay = min(BACKOFF_MAX_S, delay * 2)
                self._idle()
                continue
            delay = BACKOFF_START_S
            try:
                self.outbox.remove(*(seq for seq, _, _ in batch[:done]))
            except sqlite3.Error as exc:  # delivered, but still there: sent again later (at least once)
                log.error("%s: outbox delete failed: %s", self.name, exc)
                self._stopping.wait(BACKOFF_START_S)
                continue
            self.delivered += done
            if self.metrics is not None:
                self.metrics.publisher_delivered.labels(self.name).inc(done)
            if time.monotonic() - self._idled_at > 1.0:  # a steady stream must not starve the status
                self._idle()

    def _idle(self) -> None:
        self._idled_at = time.monotonic()
        try:
            self.idle()
        except Exception as exc:  # the receiver is down: the delivery loop says so, once
            log.debug("%s: status update failed: %s", self.name, exc)
