"""A hung engine (finding 5): the worker is abandoned, a fresh engine serves within 30 s, no
result is lost or renumbered, and liveness fails when recovery cannot work."""
import json
import threading
import time

import numpy as np

from edge_ad.bundle import load_bundle
from edge_ad.engines import create_engine
from edge_ad.prometheus import Metrics
from edge_ad.pipeline.results import ResultStore
from edge_ad.pipeline.port import PipelinePort
from edge_ad.pipeline.service import Pipeline, PipelineOptions
from edge_ad.pipeline.worker import Model
from edge_ad.server.app import make_app
from edge_ad.sources.memory import MemorySource

from .helpers import get, wait_for


class HangingEngine:
    """The real ONNX Runtime engine (same interface) whose ``hang_on``-th call blocks until
    released, as a driver stuck in a native call would."""

    def __init__(self, engine, hang_on: int):
        self._engine, self.hang_on, self.calls = engine, hang_on, 0
        self.release = threading.Event()
        self.deactivated = False
        self.name = engine.name

    def __getattr__(self, item):
        return getattr(self._engine, item)

    def infer(self, batch):
        self.calls += 1
        if self.calls == self.hang_on:
            self.release.wait(60)
        return self._engine.infer(batch)

    def deactivate(self):
        self.deactivated = True
        self._engine.deactivate()


def _pipeline(bundle_dir, engine, factory, metrics):
    bundle = load_bundle(bundle_dir)
    frames = [np.random.default_rng(i).integers(0, 255, (128, 128, 3), np.uint8) for i in range(4)]
    store = ResultStore()
    pipe = Pipeline(Model.of(engine, bundle.manifest, bundle.path), {"cam0": MemorySource(frames, 20)}, store,
                    metrics, PipelineOptions(engine_factory=factory, hang_timeout_s=1.0))
    return pipe, store


def test_a_hung_engine_is_replaced_and_no_result_is_lost_or_renumbered(bundle_dir):
    bundle = load_bundle(bundle_dir)
    hanging = HangingEngine(create_engine(bundle), hang_on=6)  # 2 warm-up calls, then 3 frames
    metrics = Metrics()
    pipe, store = _pipeline(bundle_dir, hanging, create_engine, metrics)
    pipe.start()
    try:
        wait_for(lambda: hanging.calls >= 6)
        hung_at = time.monotonic()
        wait_for(lambda: metrics.engine_hangs._value.get() == 1, timeout=10)
        wait_for(lambda: pipe.readiness()[0], timeout=30)
        recovered_s = time.monotonic() - hung_at
        seq = store.last_seq
        wait_for(lambda: store.last_seq >= seq + 10)  # the fresh engine inspects the line
        assert pipe.supervisor.liveness()[0]
        hanging.release.set()  # the stuck call returns: it must publish nothing
        wait_for(lambda: hanging.deactivated, timeout=10)
        time.sleep(0.3)
        results = store.after(0, 100_000)
    finally:
        pipe.stop()
    seqs = [r.seq for r in results]
    assert seqs == list(range(1, len(seqs) + 1))  # none lost, none renumbered, none twice
    hung = [r for r in results if r.reason and "engine hung" in r.reason]
    assert len(hung) == 1 and hung[0].verdict == "FAULT" and hung[0].score is None
    assert recovered_s < 30, recovered_s
    assert pipe.model.engine is not hanging and all(r.verdict in ("OK", "NG") for r in results if r.seq > hung[0].seq)


def test_liveness_fails_when_the_engine_cannot_be_restarted(bundle_dir, live_server):
    bundle = load_bundle(bundle_dir)
    hanging = HangingEngine(create_engine(bundle), hang_on=3)

    def broken_factory(_bundle):
        raise RuntimeError("CUDA error: device lost (injected)")

    metrics = Metrics()
    pipe, store = _pipeline(bundle_dir, hanging, broken_factory, metrics)
    srv = live_server(make_app(PipelinePort(pipe), metrics))  # starts the pipeline
    try:
        assert get(srv.url + "/healthz")[0] == 200
        wait_for(lambda: get(srv.url + "/healthz")[0] == 503, timeout=15)
        body = json.loads(get(srv.url + "/healthz")[1])
        assert any("could not be restarted" in r and "device lost" in r for r in body["reasons"])
        assert get(srv.url + "/readyz")[0] == 503
    finally:
        hanging.release.set()


def test_healthz_fails_after_the_event_loop_stalls(bundle_dir, live_server):
    bundle = load_bundle(bundle_dir)
    metrics = Metrics()
    engine = create_engine(bundle)
    pipe, _ = _pipeline(bundle_dir, engine, create_engine, metrics)
    srv = live_server(make_app(PipelinePort(pipe), metrics))
    wait_for(lambda: pipe.readiness()[0])
    assert get(srv.url + "/healthz")[0] == 200
    srv.loop.call_soon_threadsafe(time.sleep, 2.6)  # something blocks the event loop
    time.sleep(3.5)
    status, body, _ = get(srv.url + "/healthz")
    assert status == 503 and "event loop stalled" in json.loads(body)["reasons"][0]


class SlowEngine(HangingEngine):
    """Every call takes ``delay`` seconds: slow, never stuck."""

    def __init__(self, engine, delay: float):
        super().__init__(engine, hang_on=-1)
        self.delay = delay

    def infer(self, batch):
        time.sleep(self.delay)
        return super().infer(batch)


def _slow_tiled(bundle_dir, tmp_path, delay):
    """The fixture bundle judging 384 x 384 frames in 16 tiles, one engine call each, every call
    ``delay`` seconds long."""
    import shutil

    from edge_ad.bundle import TilingSpec, save_manifest

    tiled_dir = tmp_path / "tiled"
    shutil.copytree(bundle_dir, tiled_dir)
    m = load_bundle(tiled_dir).manifest
    save_manifest(tiled_dir, m.model_copy(update={"tiling": TilingSpec(
        frame_width=384, frame_height=384, overlap=0.25, memory_mb=1, batch=1)}))
    bundle = load_bundle(tiled_dir)
    slow = SlowEngine(create_engine(bundle), delay=delay)
    metrics = Metrics()
    frames = [np.random.default_rng(i).integers(60, 200, (384, 384, 3), np.uint8) for i in range(2)]
    store = ResultStore()
    pipe = Pipeline(Model.of(slow, bundle.manifest, bundle.path), {"cam0": MemorySource(frames, 1)}, store,
                    metrics, PipelineOptions(engine_factory=create_engine, hang_timeout_s=1.0))
    return pipe, store, metrics, slow


def test_a_tiled_frame_longer_than_the_timeout_is_judged_when_each_call_is_not(bundle_dir, tmp_path):
    """The timeout is per engine call: a tiled frame is one call per tile batch (here 16 calls of
    0.15 s, 2.4 s a frame, against a 1 s timeout), and none of them hangs."""
    pipe, store, metrics, _ = _slow_tiled(bundle_dir, tmp_path, 0.15)
    pipe.start()
    try:
        wait_for(lambda: store.last_seq >= 2, timeout=30)
        results = store.after(0, 10)
    finally:
        pipe.stop()
    assert metrics.engine_hangs._value.get() == 0
    assert all(r.verdict != "FAULT" for r in results), [(r.verdict, r.reason) for r in results]


def test_stop_ends_a_tiled_frame_between_batches_and_numbers_nothing_for_it(bundle_dir, tmp_path):
    """A 12 MP frame takes seconds; stop() must not wait for it (nor leave the engine running
    under an exiting process): the frame ends at its next tile batch, unjudged."""
    pipe, store, metrics, slow = _slow_tiled(bundle_dir, tmp_path, 0.3)  # 4.8 s a frame
    pipe.start()
    try:
        wait_for(lambda: pipe.worker.ready.is_set(), timeout=30)
        calls = slow.calls
        wait_for(lambda: slow.calls >= calls + 3, timeout=30)  # inside a frame
        seq = store.last_seq
        t0 = time.monotonic()
    finally:
        pipe.stop(timeout=5.0)
    stopped_s = time.monotonic() - t0
    assert not pipe.worker.alive and stopped_s < 2.0, stopped_s
    assert store.last_seq == seq  # the frame in flight was not numbered
