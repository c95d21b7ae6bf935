"""Fault injection on the real pipeline: an engine that fails, a source faster than the engine."""

import time

import numpy as np

from edge_ad.bundle import load_bundle
from edge_ad.engines import create_engine
from edge_ad.prometheus import Metrics
from edge_ad.pipeline.results import ResultStore
from edge_ad.pipeline.service import Pipeline, PipelineOptions
from edge_ad.pipeline.worker import Model
from edge_ad.sources.memory import MemorySource

from .helpers import wait_for


class FlakyEngine:
    """Wraps the real ONNX Runtime engine (same interface) and fails every third call,
    as a GPU that runs out of memory would."""

    def __init__(self, engine):
        self._engine = engine
        self.calls = 0
        self.name = engine.name

    def __getattr__(self, item):
        return getattr(self._engine, item)

    def infer(self, batch):
        self.calls += 1
        if self.calls % 3 == 0:
            raise RuntimeError("CUDA error: out of memory (injected)")
        return self._engine.infer(batch)


def _frames(n=4):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (128, 128, 3), np.uint8) for _ in range(n)]


def _results_through(wrapper, bundle_dir, n: int):
    """The first ``n`` results of the real pipeline whose real engine is wrapped by ``wrapper``."""
    bundle = load_bundle(bundle_dir)
    engine = wrapper(create_engine(bundle))
    store, metrics = ResultStore(), Metrics()
    pipe = Pipeline(Model.of(engine, bundle.manifest), {"cam0": MemorySource(_frames(), 50)}, store, metrics)
    pipe.start()
    try:
        wait_for(lambda: store.last_seq >= n)
    finally:
        pipe.stop()
    return store.after(0, n), metrics


def test_engine_failure_yields_fault_results_and_keeps_running(bundle_dir):
    results, metrics = _results_through(FlakyEngine, bundle_dir, 12)
    faults = [r for r in results if r.verdict == "FAULT"]
    assert len(faults) >= 3 and all("out of memory" in r.reason for r in faults)
    assert all(r.score is None for r in faults)  # no invented score on a failed inspection
    assert any(r.verdict in ("OK", "NG") for r in results)
    assert metrics.engine_errors._value.get() >= 3


class OverflowingEngine(FlakyEngine):
    """Wraps the real engine and, every second call, returns NaN scores and maps, as an fp16
    engine that overflowed would (the distance |f|² - 2f·B + |B|² as inf - inf)."""

    def infer(self, batch):
        self.calls += 1
        maps, scores = self._engine.infer(batch)
        if self.calls % 2 == 0:
            maps, scores = np.full_like(maps, np.nan), np.full_like(scores, np.nan)
        return maps, scores


def test_a_nan_from_the_engine_is_a_fault_never_an_ok(bundle_dir):
    results, metrics = _results_through(OverflowingEngine, bundle_dir, 10)
    faults = [r for r in results if r.verdict == "FAULT"]
    assert len(faults) >= 4 and all(r.code == "ENGINE" and "non-finite" in r.reason for r in faults)
    assert all(r.score is None and r.raw_score is None for r in faults)
    judged = [r for r in results if r.verdict in ("OK", "NG")]
    assert judged and all(np.isfinite(r.raw_score) for r in judged)
    assert len(faults) + len(judged) == 10  # every frame answered, none of them OK by accident
    assert metrics.engine_errors._value.get() >= len(faults)  # counted as the engine's failures


def test_fast_source_drops_are_counted_and_balance(bundle_dir):
    bundle = load_bundle(bundle_dir)
    engine = create_engine(bundle)
    store = ResultStore()
    pipe = Pipeline(Model.of(engine, bundle.manifest),
                    {"cam0": MemorySource(_frames(), fps=None)}, store, Metrics())  # unpaced
    pipe.start()
    try:
        wait_for(lambda: store.last_seq >= 20)
    finally:
        pipe.stop()
    slot = pipe.slots["cam0"]
    assert slot.dropped_count > 0
    assert slot.put_count == slot.taken_count + slot.dropped_count + slot.depth
    assert slot.taken_count == store.last_seq


def test_lighting_change_is_reported_as_drift(bundle_dir, demo_root):
    from edge_ad.decision.drift import DRIFT, OK
    from edge_ad.imageio import read_image

    bundle = load_bundle(bundle_dir)
    assert len(bundle.manifest.calibration.normal_scores) >= 8
    good = [read_image(p) for p in sorted((demo_root / "wood" / "test" / "good").glob("*.png"))]
    engine = create_engine(bundle)
    metrics = Metrics()

    def run(frames, n):
        store = ResultStore()
        pipe = Pipeline(Model.of(engine, bundle.manifest), {"cam0": MemorySource(frames, 200)}, store, metrics,
                        PipelineOptions(drift={"window": 60, "warmup": 40, "alpha": 1e-4}))
        pipe.start()
        try:
            wait_for(lambda: store.last_seq >= n, timeout=120)
        finally:
            pipe.stop()
        return pipe.drift.state("cam0")

    assert run(good, 80).state == OK
    darker = [(f * 0.6).astype(np.uint8) for f in good]  # the line's lamp dimmed
    state = run(darker, 80)
    assert state.state == DRIFT
    assert metrics.drift_detected.labels("cam0")._value.get() == 1


def test_quality_guard_makes_bad_frames_invalid_never_ok(bundle_dir, demo_root):
    import cv2

    from edge_ad.imageio import read_image
    from edge_ad.decision.quality import QualityLimits

    bundle = load_bundle(bundle_dir)
    assert bundle.manifest.image_stats["sharpness_median"] > 0
    good = read_image(sorted((demo_root / "wood" / "test" / "good").glob("*.png"))[0])
    engine = create_engine(bundle)

    def run(frames, n=6, fps=50):
        store, metrics = ResultStore(), Metrics()
        pipe = Pipeline(Model.of(engine, bundle.manifest), {"cam0": MemorySource(frames, fps)}, store, metrics,
                        PipelineOptions(quality=QualityLimits(frozen_s=1.0)))
        pipe.start()
        try:
            wait_for(lambda: store.last_seq >= n, timeout=60)
        finally:
            pipe.stop()
        return store.after(0, n), metrics

    dark, metrics = run([(good * 0.05).astype(np.uint8)])
    assert {r.verdict for r in dark} == {"INVALID"} and "too dark" in dark[0].reason
    assert all(r.score is None for r in dark)
    assert metrics.invalid_frames.labels("cam0", "dark")._value.get() >= 6

    blurred, _ = run([cv2.GaussianBlur(good, (0, 0), 5)])
    assert blurred[0].verdict == "INVALID" and "blurred" in blurred[0].reason

    # the same picture over and over: judged at first, INVALID once frozen for 1 s
    frozen, _ = run([good], n=80, fps=50)
    assert frozen[0].verdict in ("OK", "NG")
    assert frozen[-1].verdict == "INVALID" and "frozen" in frozen[-1].reason


class HangingSource(MemorySource):
    """Delivers frames, then a read that never returns (as a dead RTSP stream's does)."""

    def __init__(self, frames, fps, hang_after):
        super().__init__(frames, fps)
        self.hang_after, self.reads = hang_after, 0
        self.release = __import__("threading").Event()

    def read(self):
        self.reads += 1
        if self.reads > self.hang_after:
            self.release.wait(30)
            return None
        return super().read()


def test_a_hanging_source_is_reported_stalled_within_two_seconds(bundle_dir):
    bundle = load_bundle(bundle_dir)
    engine = create_engine(bundle)
    metrics, store = Metrics(), ResultStore()
    source = HangingSource(_frames(), fps=20, hang_after=10)
    pipe = Pipeline(Model.of(engine, bundle.manifest), {"cam0": source}, store, metrics)
    pipe.start()
    try:
        wait_for(lambda: store.last_seq >= 5)
        wait_for(lambda: source.reads > 10)  # the read now hangs
        t_hang = time.monotonic()
        wait_for(lambda: not pipe.readiness()[0], timeout=5)  # stale after two frame periods
        assert time.monotonic() - t_hang < 1.0
        wait_for(lambda: not pipe.cameras["cam0"].up, timeout=5)
        assert time.monotonic() - t_hang < 2.0
        assert "stalled" in pipe.cameras["cam0"].error
        assert metrics.camera_up.labels("cam0")._value.get() == 0
        ready, reasons = pipe.readiness()
        assert not ready and any("stalled" in r for r in reasons)
        assert pipe.staleness(store.latest(), time.time()) is not None  # no fresh OK from here on
    finally:
        source.release.set()
        pipe.stop()


class FailsAtOnceSource(MemorySource):
    """Opens fine, then fails on its first read, every time: a camera that errors at once."""

    def __init__(self):
        super().__init__(_frames(1), fps=None)
        self.opens = 0

    def open(self):
        self.opens += 1

    def read(self):
        from edge_ad.errors import SourceError

        raise SourceError("sensor error (injected)")


def test_a_camera_that_fails_at_once_is_retried_with_backoff_not_spun(bundle_dir):
    bundle = load_bundle(bundle_dir)
    engine = create_engine(bundle)
    source = FailsAtOnceSource()
    pipe = Pipeline(Model.of(engine, bundle.manifest), {"cam0": source}, ResultStore(), Metrics())
    pipe.start()
    try:
        time.sleep(2.5)
    finally:
        pipe.stop()
    # backoff 0.5, 1, 2 s (±20 %): at most 4 opens in 2.5 s; without it, thousands
    assert 2 <= source.opens <= 4, source.opens
    assert not pipe.cameras["cam0"].up and "injected" in pipe.cameras["cam0"].error


def test_a_missed_trigger_is_published_to_every_output_without_a_frame(bundle_dir):
    """The FAULT a trigger's deadline makes is a result like any other: journaled, numbered, and
    handed to the outputs (an MQTT consumer hears it), though no frame belongs to it."""
    from edge_ad.publish import Publisher
    from edge_ad.sources.push import PushSource

    class Recorder(Publisher):
        """Keeps what it is given."""

        name = "recorder"

        def __init__(self):
            self.items = []

        def publish(self, item):
            self.items.append(item)

    bundle = load_bundle(bundle_dir)
    engine = create_engine(bundle)
    recorder, store, metrics = Recorder(), ResultStore(), Metrics()
    pipe = Pipeline(Model.of(engine, bundle.manifest), {"station": PushSource("push://")}, store, metrics,
                    outputs=(recorder,))
    pipe.start()
    try:
        wait_for(lambda: pipe.worker.ready.is_set())
        result = pipe.trigger("station", "P-9", timeout_s=0.2).result(10)
    finally:
        pipe.stop()
    assert result.verdict == "FAULT" and result.part_id == "P-9" and "deadline" in result.reason
    [item] = recorder.items
    assert item.result is result and item.image_rgb is None and item.inspection is None
    assert pipe.views.latest("station") is None  # nothing to show
    assert metrics.verdicts.labels("station", "FAULT")._value.get() == 1  # counted once
