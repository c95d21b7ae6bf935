"""``edge-ad bench``: the raw engine and the served pipeline, measured in one run on one bundle.

Phases: (1) raw — the engine alone, one frame per call, back to back; (2) throughput — the
pipeline fed by a source twice as fast as the engine, so the worker is never idle (served fps
÷ raw fps shows what capture, decision and publishing cost); (3) latency — a source at half the
engine's rate, so frames never queue (end-to-end p99 ÷ engine p99 shows the same for one frame).
"""
from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import numpy as np

from ..bundle import load_bundle
from ..engines import create_engine
from ..inspector import Inspector
from ..metrics import Metrics
from ..pipeline.results import ResultStore
from ..pipeline.service import Pipeline
from ..sources.base import open_source
from ..sources.memory import MemorySource


def _frames(bundle, source_uri: str | None, limit: int = 64) -> list[np.ndarray]:
    if source_uri:
        src = open_source(source_uri)
        src.open()
        frames = []
        while len(frames) < limit:
            f = src.read()
            if f is None:
                break
            frames.append(f)
        src.close()
        if frames:
            return frames
    spec = bundle.manifest.input
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (spec.height, spec.width, 3), np.uint8) for _ in range(8)]


def _pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def _served(engine, inspector, frames, fps, seconds, warmup_s=1.0):
    store = ResultStore(1_000_000)
    pipe = Pipeline(engine, inspector, {"bench": MemorySource(frames, fps)}, Metrics(), store)
    pipe.start()
    if not pipe.engine_ready.wait(60):
        raise RuntimeError(pipe.engine_error or "engine did not start")
    time.sleep(warmup_s)
    first = store.last_seq
    t0 = time.perf_counter()
    time.sleep(seconds)
    last = store.last_seq
    elapsed = time.perf_counter() - t0
    pipe.stop()
    results = store.after(first, last - first)
    e2e = [r.latency_ms["end_to_end"] / 1000.0 for r in results if "end_to_end" in r.latency_ms]
    return (last - first) / elapsed, e2e, pipe.slots["bench"]


def run_bench(bundle_path: str, source: str | None, seconds: float, json_path: str | None) -> int:
    bundle = load_bundle(bundle_path)
    frames = _frames(bundle, source)
    engine = create_engine(bundle)
    inspector = Inspector(engine, bundle.manifest)
    batch = [inspector.prepare(f)[None] for f in frames]

    with engine:
        provider = engine.provider
        lat = []
        t_end = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < t_end:
            t = time.perf_counter()
            engine.infer(batch[i % len(batch)])
            lat.append(time.perf_counter() - t)
            i += 1
    raw_fps = len(lat) / sum(lat)

    served_fps, _, slot = _served(engine, inspector, frames, 2.0 * raw_fps, seconds)
    _, e2e, _ = _served(engine, inspector, frames, 0.5 * raw_fps, seconds)
    figures = {
        "bundle": str(bundle.path), "provider": provider, "frames": len(frames),
        "input": f"{bundle.manifest.input.width}x{bundle.manifest.input.height}",
        "raw_fps": round(raw_fps, 2), "served_fps": round(served_fps, 2),
        "served_over_raw_fps": round(served_fps / raw_fps, 4),
        "engine_p50_ms": round(_pct(lat, 50), 3), "engine_p99_ms": round(_pct(lat, 99), 3),
        "e2e_p50_ms": round(_pct(e2e, 50), 3), "e2e_p99_ms": round(_pct(e2e, 99), 3),
        "e2e_p99_over_engine_p99": round(_pct(e2e, 99) / _pct(lat, 99), 4),
        "throughput_phase_dropped": slot.dropped_count,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }
    width = max(len(k) for k in figures)
    for k, v in figures.items():
        print(f"{k:<{width}}  {v}")
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=2) + "\n")
    return 0
