"""``edge-ad bench``: the raw engine and the served pipeline, measured in one run on one bundle.

Phases: (1) raw — the engine alone, one frame per call, back to back; (2) throughput — the
pipeline fed by a source twice as fast as the engine, so the worker is never idle (served fps
÷ raw fps shows what capture, decision and publishing cost); (3) latency — a source at half the
engine's rate, so frames never queue (end-to-end p99 ÷ engine p99 shows the same for one frame).

In phase 3 the pipeline's own CPU time is counted too: every thread it starts (capture, worker,
supervisor, publishers), by each thread's CPU clock, less what the worker thread spent inside
``Engine.infer`` (preprocessing and scoring count as the pipeline's).
Per frame and divided by the engine's median latency, it is what the pipeline costs the engine,
and unlike the fps ratios it does not move when a neighbour takes a core.
"""
from __future__ import annotations

import json
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ..assembly import SWITCH_INTERVAL_S
from ..bundle import load_bundle
from ..engines import create_engine
from ..pipeline.inspector import Inspector
from ..prometheus import Metrics
from ..pipeline.results import ResultStore
from ..pipeline.service import Pipeline, PipelineOptions
from ..pipeline.worker import Model
from ..sources.registry import open_source
from ..decision.quality import QualityLimits
from ..sources.memory import MemorySource


MIN_FRAMES_PER_PHASE = 6  # served phases last at least this many of the engine's frame times
FRAME_MEMORY_MB = 256  # what the bench's own decoded frames may hold (a 12 MP frame is 36 MB)


def _frames(bundle, source_uri: str | None, limit: int = 64) -> list[np.ndarray]:
    """Up to ``limit`` frames from the source (fewer when they are large, so that the peak
    memory reported is the pipeline's, not the bench's frame store), or random frames of the
    bundle's input or tiled frame size."""
    spec, tiling = bundle.manifest.input, bundle.manifest.tiling
    if source_uri:
        src = open_source(source_uri)
        src.open()
        frames = []
        while len(frames) < limit:
            f = src.read()
            if f is None:
                break
            frames.append(f)
            limit = min(limit, max(2, int(FRAME_MEMORY_MB * 2**20 // f.nbytes)))
        src.close()
        if frames:
            return frames
    h, w = (spec.height, spec.width) if tiling is None else (tiling.frame_height, tiling.frame_width)
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), np.uint8) for _ in range(8 if tiling is None else 2)]


def _pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def _raw(engine, work, one, seconds) -> tuple[list[float], str]:
    """The engine alone, one frame at a time (``one(engine, item)``: a call, or a tiled frame's
    tile batches), back to back: per-frame seconds and the provider."""
    lat = []
    with engine:
        provider = engine.provider
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t = time.perf_counter()
            one(engine, work[len(lat) % len(work)])
            lat.append(time.perf_counter() - t)
    return lat, provider


def _engine_work(bundle, inspector, frames):
    """What the raw engine runs per frame: the model input, or a tiled bundle's tiles."""
    tiling = bundle.manifest.tiling
    if tiling is None:
        return [inspector.prepare(f)[None] for f in frames], lambda engine, x: engine.infer(x), 1
    from ..imageio import to_model_input
    from ..tiling import cut, grid

    spec = bundle.manifest.input
    fitted = [to_model_input(inspector.fit_frame(f), tiling.frame_height, tiling.frame_width, spec.channels)
              for f in frames]
    work = [cut(f, grid(tiling.frame_height, tiling.frame_width, spec.height, tiling.overlap), spec.height)
            for f in fitted]

    def one(engine, tiles):
        for i in range(0, len(tiles), tiling.batch):
            engine.infer(np.ascontiguousarray(tiles[i:i + tiling.batch]))
    return work, one, len(work[0])


def _thread_cpu_s(exclude: int) -> dict[tuple[int, str], float]:
    """CPU seconds of every Python thread of this process but the one with ident ``exclude``,
    by (ident, kind): capture, inference, supervisor, publish-<name>. Read from each thread's
    own CPU clock, the clock ``time.thread_time`` reads on the worker, so the two subtract."""
    out = {}
    for t in threading.enumerate():
        if t.ident is None or t.ident == exclude or not t.is_alive():
            continue
        try:
            seconds = time.clock_gettime(time.pthread_getcpuclockid(t.ident))
        except (OSError, AttributeError):  # ended meanwhile, or not a POSIX system
            continue
        kind = "capture" if t.name.startswith("capture-") else t.name
        out[(t.ident, kind)] = seconds
    return out


def _cpu_snapshot(engine, exclude: int, worker: int) -> tuple[dict, float]:
    """Every thread's CPU clock and the engine's CPU, read together: a call in progress counts
    its part so far (read from the worker's clock), so a window's edges cut no call in two."""
    while True:
        calls, done, started = engine.calls, engine.cpu_s, engine.call_cpu0
        threads = _thread_cpu_s(exclude)
        in_call = 0.0 if started is None else time.clock_gettime(time.pthread_getcpuclockid(worker)) - started
        if (engine.calls, engine.call_cpu0) == (calls, started):  # nothing moved meanwhile
            return threads, done + in_call


def _served(engine, inspector, frames, fps, seconds, bundle_path=None, warmup_s=0.5):
    """The pipeline fed at ``fps``: results per second, per-result end-to-end seconds, and the
    pipeline's own CPU seconds per result (outside engine calls)."""
    store = ResultStore(1_000_000)
    # the bundle's path: the hang watchdog's fresh engine is loaded from it
    pipe = Pipeline(Model(engine, inspector, bundle_path, {"name": inspector.manifest.name}),
                    {"bench": MemorySource(frames, fps)}, store, Metrics(),
                    PipelineOptions(quality=QualityLimits()))  # as served: the guard looks at every frame
    pipe.start()
    try:
        if not pipe.worker.ready.wait(60):
            raise RuntimeError(pipe.worker.error or "engine did not start")
        time.sleep(warmup_s)
        me, worker = threading.get_ident(), pipe.worker.ident
        first, (cpu0, engine0) = store.last_seq, _cpu_snapshot(engine, me, worker)
        t0 = time.perf_counter()
        time.sleep(seconds)
        last, (cpu1, engine1) = store.last_seq, _cpu_snapshot(engine, me, worker)
        elapsed = time.perf_counter() - t0
    finally:
        pipe.stop()
    results = store.after(first, last - first)
    n = max(1, last - first)
    by_kind: dict[str, float] = {}
    for key, seconds in cpu1.items():
        by_kind[key[1]] = by_kind.get(key[1], 0.0) + seconds - cpu0.get(key, 0.0)
    by_kind["inference"] = by_kind.get("inference", 0.0) - (engine1 - engine0)  # outside Engine.infer
    return ((last - first) / elapsed, [r.latency_ms["end_to_end"] / 1000.0 for r in results],
            {k: v / n for k, v in by_kind.items()})


def run_bench(bundle_path: str, source: str | None, seconds: float, json_path: str | None,
              rounds: int = 9, threads: int = 0, backend: str = "onnxruntime", precision: str = "fp16") -> int:
    """Rounds of (raw, served fast, served slow) side by side: this machine's speed drifts with
    its neighbours' load, so each ratio is taken within a round and the median is reported."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # as the served process runs (edge_ad/assembly.py)
    bundle = load_bundle(bundle_path)
    frames = _frames(bundle, source)
    engine = create_engine(bundle, backend, threads=threads, precision=precision)
    inspector = Inspector(engine, bundle.manifest)
    work, one, tiles_per_frame = _engine_work(bundle, inspector, frames)
    rows = []
    for r in range(rounds):
        lat, provider = _raw(engine, work, one, seconds)
        raw_fps = len(lat) / sum(lat)
        # a served phase spans several frames even when one takes seconds (a tiled 12 MP frame:
        # 18 s here); a frame cut by the phase's end would count its engine time but not itself
        phase = max(seconds, MIN_FRAMES_PER_PHASE / raw_fps)
        served_fps, _, _ = _served(engine, inspector, frames, 2.0 * raw_fps, phase, bundle.path)
        _, e2e, cpu_by_thread = _served(engine, inspector, frames, 0.5 * raw_fps, phase, bundle.path)
        own_cpu_s = sum(cpu_by_thread.values())
        row = {"raw_fps": raw_fps, "served_fps": served_fps, "served_over_raw_fps": served_fps / raw_fps,
               "engine_p50_ms": _pct(lat, 50), "engine_p99_ms": _pct(lat, 99),
               "e2e_p50_ms": _pct(e2e, 50), "e2e_p99_ms": _pct(e2e, 99),
               "pipeline_cpu_ms_per_frame": own_cpu_s * 1000.0}
        if bundle.manifest.tiling is not None:
            row["tiles_per_frame"] = tiles_per_frame
            row["raw_tiles_per_s"] = raw_fps * tiles_per_frame
        row["e2e_p99_over_engine_p99"] = row["e2e_p99_ms"] / row["engine_p99_ms"]
        row["pipeline_cpu_over_engine"] = row["pipeline_cpu_ms_per_frame"] / row["engine_p50_ms"]
        for kind, cpu_s in sorted(cpu_by_thread.items()):  # where the pipeline's own time goes
            row[f"cpu_ms_per_frame.{kind}"] = cpu_s * 1000.0
        rows.append(row)
        print(f"round {r + 1}/{rounds}: raw {raw_fps:.1f} fps, served {served_fps:.1f} fps "
              f"(x{row['served_over_raw_fps']:.3f}), engine p99 {row['engine_p99_ms']:.2f} ms, "
              f"e2e p99 {row['e2e_p99_ms']:.2f} ms (x{row['e2e_p99_over_engine_p99']:.3f}), pipeline CPU "
              f"{row['pipeline_cpu_ms_per_frame']:.3f} ms/frame ({100 * row['pipeline_cpu_over_engine']:.1f} % "
              "of the engine's time)", flush=True)
    figures = {"bundle": str(bundle.path), "provider": provider,
               "input": f"{bundle.manifest.input.width}x{bundle.manifest.input.height}",
               "frames": len(frames), "rounds": rounds, "seconds_per_phase": seconds,
               "engine_threads": threads}
    for key in rows[0]:
        figures[key] = round(float(np.median([row.get(key, 0.0) for row in rows])), 4)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    print("medians over rounds:")
    width = max(len(k) for k in figures)
    for k, v in figures.items():
        print(f"  {k:<{width}}  {v}")
    if json_path:
        Path(json_path).write_text(json.dumps({**figures, "per_round": rows}, indent=2) + "\n")
    return 0
