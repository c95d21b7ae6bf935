"""Hypothesis-driven mutation of real encoded images, run through the same header check and
decoder an upload meets (edge_ad.imageio). Shared by tests/unit/test_decoder_fuzz.py (a few
hundred examples in `make test`) and bench/reliability.py figure 13 (100 000)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from edge_ad.errors import ImageError
from edge_ad.imageio import decode_image, image_header

# Uploads over this many pixels are refused from the header before decoding (server default).
PIXEL_LIMIT = 40_000_000

# One edit: (kind, where as a fraction of the length, a byte value, a cut length).
# kind 0 flips a bit, 1 overwrites a byte, 2 cuts up to 64 bytes, 3 inserts a byte.
EDIT = st.tuples(st.integers(0, 3), st.floats(0, 1, exclude_max=True), st.integers(0, 255),
                 st.integers(1, 64))


def mutate(seed: bytes, edits) -> bytes:
    data = bytearray(seed)
    for kind, where, value, cut in edits:
        if not data:
            break
        k = int(where * len(data))
        if kind == 0:
            data[k] ^= 1 << (value % 8)
        elif kind == 1:
            data[k] = value
        elif kind == 2:
            del data[k:k + cut]
        else:
            data.insert(k, value)
    return bytes(data)


@dataclass
class FuzzReport:
    examples: int = 0
    refused: int = 0  # a clean ImageError: what the server answers 400/413/415 with
    decoded: int = 0
    escaped: list[str] = field(default_factory=list)  # anything else would have been a 500
    slowest_s: float = 0.0
    slowest: str = ""


def judge(data: bytes, report: FuzzReport) -> None:
    """One upload's path: header, pixel limit, decode. Records what happened and how long."""
    t0, declared = time.perf_counter(), "unparsed"
    try:
        fmt, w, h = image_header(data)
        declared = f"{fmt} {w}x{h}"
        if 0 < w * h <= PIXEL_LIMIT:
            decode_image(data)
            report.decoded += 1
        else:
            report.refused += 1
    except ImageError:
        report.refused += 1
    except Exception as exc:  # what would have been a 500
        report.escaped.append(f"{type(exc).__name__}: {exc}"[:100])
    took = time.perf_counter() - t0
    report.examples += 1
    if took > report.slowest_s:
        report.slowest_s, report.slowest = took, declared


def fuzz(seeds: list[bytes], examples: int) -> FuzzReport:
    """``examples`` mutated inputs drawn by hypothesis (generation only: nothing raises, so
    there is nothing to shrink; derandomized, so a run is reproducible)."""
    report = FuzzReport()

    @settings(max_examples=examples, database=None, deadline=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.integers(0, len(seeds) - 1), st.lists(EDIT, min_size=1, max_size=8))
    def one(which, edits):
        judge(mutate(seeds[which], edits), report)

    one()
    return report
