"""The result record every output carries: HTTP, the journal, evidence, and later the PLC
servers and message buses."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from .verdict import FAULT, OK, Verdict


@dataclass(frozen=True)
class Result:
    """One judged frame (or a FAULT where none could be judged), numbered by the result store.
    Frozen: a result never changes under its seq."""

    seq: int
    camera: str
    frame_index: int
    captured_at: float  # wall clock of the inspected frame
    published_at: float
    verdict: Verdict
    score: float | None
    raw_score: float | None
    threshold: float | None
    model: dict
    regions: tuple = ()
    part_id: str | None = None
    reason: str | None = None
    latency_ms: dict = field(default_factory=dict)
    boot_id: str = ""  # the process that numbered it: a gateway tells a restart from a gap
    recipe: int | None = None  # the recipe in force on its camera (None: no recipes configured)
    code: str | None = None  # an ErrorCode name (decision/codes.py) when it is not a plain OK/NG
    lot_id: str | None = None  # the PLC's lot, when a trigger carried one

    def to_json(self, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        return {
            "seq": self.seq, "camera": self.camera, "frame_index": self.frame_index,
            "timestamp": round(self.captured_at, 6),
            "age_ms": round(max(0.0, now - self.captured_at) * 1000, 1),
            "verdict": self.verdict,
            "score": None if self.score is None else round(self.score, 5),
            "raw_score": self.raw_score, "threshold": self.threshold, "model": self.model,
            "regions": [r.to_json() for r in self.regions], "part_id": self.part_id,
            "reason": self.reason, "latency_ms": self.latency_ms, "boot_id": self.boot_id,
            "recipe": self.recipe, "error_code": self.code, "lot_id": self.lot_id,
        }


def as_stale(result: Result, reason: str, now: float) -> dict:
    """A result that cannot vouch for the line right now: never served as a fresh OK."""
    body = result.to_json(now)
    if result.verdict == OK:
        body["verdict"] = FAULT
        body["reason"] = f"stale: {reason}"
        body["error_code"] = "CAMERA_DOWN" if "down" in reason else "STALE"
    body["stale"] = True
    return body
