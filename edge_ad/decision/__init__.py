"""The decision stage: from what the engine said (or why it said nothing) to a Result.

Pure and stateless except for two small per-camera trackers the caller owns (``FrozenDetector``
and ``DriftGuard``). It imports nothing from pipeline/, publish/ or server/ (a test guards it).

- ``verdict``: the Verdict enum, normalization, regions;
- ``camera``: a camera's ROI, rotation, ignore mask and minimum defect area;
- ``quality``: the image-quality guard (INVALID frames);
- ``scoring``: raw map and score → Inspection;
- ``judge``: frame + inspection → Result;
- ``drift``: is the line's normal still the calibrated one?
"""
from .result import Result, as_stale
from .verdict import FAULT, INVALID, NG, OK, Region, Verdict, find_regions, normalize, verdict_for

__all__ = ["FAULT", "INVALID", "NG", "OK", "Region", "Result", "Verdict", "as_stale", "find_regions",
           "normalize", "verdict_for"]
