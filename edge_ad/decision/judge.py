"""The decision stage as one pure function: a captured frame and what became of it (an
inspection, or the reason there is none) → the Result every output carries.

The only inputs are values; the only output is a value. The store numbers the result
(``seq`` is 0 here), so this is tested by value and runs alike wherever it is called.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..sources.base import Frame
from .result import Result
from .scoring import Inspection
from .verdict import FAULT, Verdict


@dataclass(frozen=True)
class Context:
    """What a result records about where it came from."""
    model: dict  # name, version, family of the model in force
    boot_id: str = ""
    part_id: str | None = None  # the PLC's part, when a trigger matched this frame
    recipe: int | None = None  # the recipe in force on the frame's camera
    lot_id: str | None = None  # the PLC's lot, when the trigger carried one


@dataclass(frozen=True)
class Unjudged:
    """Why a frame has no inspection: never an OK, and no score is invented."""
    verdict: Verdict  # INVALID (the quality guard) or FAULT (the engine failed)
    reason: str
    code: str = "INTERNAL"  # an ErrorCode name (decision/codes.py)


def judge(frame: Frame, outcome: Inspection | Unjudged, context: Context, e2e_s: float,
          now: float) -> Result:
    """The result for ``frame``; ``e2e_s`` is capture to now, ``now`` the wall clock."""
    e2e_ms = round(e2e_s * 1000, 2)
    if isinstance(outcome, Inspection) and outcome.fault is not None:  # no score to publish
        outcome = Unjudged(FAULT, outcome.fault, "ENGINE")
    if isinstance(outcome, Unjudged):
        if outcome.verdict not in (Verdict.INVALID, Verdict.FAULT):
            raise ValueError(f"a frame without an inspection is INVALID or FAULT, not {outcome.verdict}")
        return Result(0, frame.camera, frame.index, frame.captured_at, now, outcome.verdict, None,
                      None, None, context.model, reason=outcome.reason, part_id=context.part_id,
                      boot_id=context.boot_id, latency_ms={"end_to_end": e2e_ms},
                      recipe=context.recipe, code=outcome.code, lot_id=context.lot_id)
    ins = outcome
    return Result(0, frame.camera, frame.index, frame.captured_at, now, ins.verdict, ins.score,
                  ins.raw_score, ins.threshold, context.model, ins.regions, part_id=context.part_id,
                  boot_id=context.boot_id, recipe=context.recipe, lot_id=context.lot_id,
                  latency_ms={"preprocess": round(ins.preprocess_s * 1000, 2),
                              "infer": round(ins.infer_s * 1000, 2),
                              "postprocess": round(ins.postprocess_s * 1000, 2),
                              "end_to_end": e2e_ms})


def missed_trigger(camera: str, received_at: float, context: Context, now: float) -> Result:
    """A PLC trigger whose deadline passed without a frame: a FAULT for that part."""
    waited_ms = (now - received_at) * 1000
    return Result(0, camera, -1, now, now, FAULT, None, None, None, context.model,
                  part_id=context.part_id, boot_id=context.boot_id, recipe=context.recipe,
                  lot_id=context.lot_id, code="DEADLINE",
                  reason=f"trigger deadline: no frame from camera {camera} within {waited_ms:.0f} ms")
