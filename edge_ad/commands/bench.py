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
from ..quality import QualityLimits
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


def _raw(engine, batch, seconds) -> tuple[list[float], str]:
    """The engine alone, one frame per call, back to back: per-call seconds and the provider."""
    lat = []
    with engine:
        provider = engine.provider
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t = time.perf_counter()
            engine.infer(batch[len(lat) % len(batch)])
            lat.append(time.perf_counter() - t)
    return lat, provider


def _served(engine, inspector, frames, fps, seconds, warmup_s=0.5):
    """The pipeline fed at ``fps``: results per second and per-result end-to-end seconds."""
    store = ResultStore(1_000_000)
    pipe = Pipeline(engine, inspector, {"bench": MemorySource(frames, fps)}, Metrics(), store,
                    quality=QualityLimits())  # as served: the guard looks at every frame
    pipe.start()
    try:
        if not pipe.engine_ready.wait(60):
            raise RuntimeError(pipe.engine_error or "engine did not start")
        time.sleep(warmup_s)
        first = store.last_seq
        t0 = time.perf_counter()
        time.sleep(seconds)
        last = store.last_seq
        elapsed = time.perf_counter() - t0
    finally:
        pipe.stop()
    results = store.after(first, last - first)
    return (last - first) / elapsed, [r.latency_ms["end_to_end"] / 1000.0 for r in results]


def run_bench(bundle_path: str, source: str | None, seconds: float, json_path: str | None,
              rounds: int = 9, threads: int = 0, backend: str = "onnxruntime", precision: str = "fp16") -> int:
    """Rounds of (raw, served fast, served slow) side by side: this machine's speed drifts with
    its neighbours' load, so each ratio is taken within a round and the median is reported."""
    bundle = load_bundle(bundle_path)
    frames = _frames(bundle, source)
    engine = create_engine(bundle, backend, threads=threads, precision=precision)
    inspector = Inspector(engine, bundle.manifest)
    batch = [inspector.prepare(f)[None] for f in frames]
    rows = []
    for r in range(rounds):
        lat, provider = _raw(engine, batch, seconds)
        raw_fps = len(lat) / sum(lat)
        served_fps, _ = _served(engine, inspector, frames, 2.0 * raw_fps, seconds)
        _, e2e = _served(engine, inspector, frames, 0.5 * raw_fps, seconds)
        row = {"raw_fps": raw_fps, "served_fps": served_fps, "served_over_raw_fps": served_fps / raw_fps,
               "engine_p50_ms": _pct(lat, 50), "engine_p99_ms": _pct(lat, 99),
               "e2e_p50_ms": _pct(e2e, 50), "e2e_p99_ms": _pct(e2e, 99)}
        row["e2e_p99_over_engine_p99"] = row["e2e_p99_ms"] / row["engine_p99_ms"]
        rows.append(row)
        print(f"round {r + 1}/{rounds}: raw {raw_fps:.1f} fps, served {served_fps:.1f} fps "
              f"(x{row['served_over_raw_fps']:.3f}), engine p99 {row['engine_p99_ms']:.2f} ms, "
              f"e2e p99 {row['e2e_p99_ms']:.2f} ms (x{row['e2e_p99_over_engine_p99']:.3f})", flush=True)
    figures = {"bundle": str(bundle.path), "provider": provider,
               "input": f"{bundle.manifest.input.width}x{bundle.manifest.input.height}",
               "frames": len(frames), "rounds": rounds, "seconds_per_phase": seconds,
               "engine_threads": threads}
    for key in rows[0]:
        figures[key] = round(float(np.median([row[key] for row in rows])), 4)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    print("medians over rounds:")
    width = max(len(k) for k in figures)
    for k, v in figures.items():
        print(f"  {k:<{width}}  {v}")
    if json_path:
        Path(json_path).write_text(json.dumps({**figures, "per_round": rows}, indent=2) + "\n")
    return 0
