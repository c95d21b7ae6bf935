"""The running pipeline: capture threads → slots → one inference worker → result store.

The worker owns the engine (activate, infer, deactivate all happen on its thread, as a CUDA
context requires) and batches the frames waiting across cameras up to ``batch_size``.
An engine exception turns the affected frames into FAULT results and is counted; the worker
keeps running.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..bundle import Bundle, load_bundle
from ..decision import FAULT, INVALID, NG
from ..drift import DRIFT, DriftGuard
from ..engines import Engine, create_engine
from ..geometry import CameraDecision
from ..inspector import Inspection, Inspector
from ..quality import FrozenDetector, QualityLimits, measure, problem
from ..metrics import Metrics
from ..model_root import confined_bundle
from ..sources.base import Frame, Source
from .capture import CameraState, CaptureThread
from .results import Result, ResultStore
from .supervisor import Supervisor
from .slot import LatestFrameSlot
from .triggers import Trigger, TriggerBook

log = logging.getLogger(__name__)
MAX_PENDING_INSPECTIONS = 4  # uploaded images waiting for the engine; beyond: RequestsFull (429)
STALL_S = 1.0  # no frame for this long (or 3 frame periods, if longer) = the camera stalled


class RequestsFull(Exception):
    """The engine's queue of uploaded images is full: the line comes first."""


@dataclass(frozen=True)
class View:
    """The last inspected frame of a camera, for overlays rendered on request."""
    seq: int
    frame_rgb: np.ndarray
    inspection: Inspection | None


class Pipeline:
    def __init__(self, engine: Engine, inspector: Inspector, sources: dict[str, Source],
                 metrics: Metrics, store: ResultStore, batch_size: int = 1,
                 stale_periods: float = 2.0, bundle_path: Path | None = None,
                 drift: dict | None = None,
                 engine_factory: Callable[[Bundle], Engine] = create_engine, journal=None,
                 quality: QualityLimits | None = None, evidence=None,
                 decisions: dict[str, CameraDecision] | None = None, model_root: Path | None = None,
                 hang_timeout_s: float = 10.0):
        self.engine, self.inspector, self.metrics, self.store = engine, inspector, metrics, store
        self.bundle_path = bundle_path  # where run-time threshold changes are persisted
        self.model_root = model_root  # reload loads only bundles under it (None: anywhere, tests)
        self.batch_size = batch_size
        self.stale_periods = stale_periods
        self._stop = threading.Event()
        self._wakeup = threading.Condition()
        # what status shows: the URI with any RTSP password redacted
        self.cameras = {n: CameraState(n, getattr(s, "display", s.uri)) for n, s in sources.items()}
        self.event_driven = {n for n, s in sources.items() if s.event_driven}
        self.sources = sources
        self.slots = {n: LatestFrameSlot(n, self._wakeup) for n in sources}
        self._captures = [CaptureThread(s, self.slots[n], self.cameras[n], metrics, self._stop)
                          for n, s in sources.items()]
        self._worker = threading.Thread(target=self._work, name="inference", daemon=True)
        self._flight_lock = threading.Lock()  # the worker's engine call vs the supervisor's abandon
        self.busy_since_mono: float | None = None  # an engine call in progress since
        self._in_flight: list[Frame] = []
        self._orphans: dict[threading.Thread, Engine] = {}
        self.recovery_error: str | None = None
        self.supervisor = Supervisor(self, hang_timeout_s)
        self.views: dict[str, View] = {}
        self.rejects: deque[View] = deque(maxlen=16)  # recent NG views, for the dashboard gallery
        self.engine_ready = threading.Event()
        self.engine_error: str | None = None
        self.last_e2e_s: dict[str, float] = {}
        self.processed = 0
        m = inspector.manifest
        self.model_info = {"name": m.name, "version": m.version, "family": m.family}
        self._drift_params = drift or {}
        self.drift = {n: DriftGuard(m.calibration.normal_scores, **self._drift_params) for n in sources}
        self.engine_factory = engine_factory
        self.journal = journal  # the store's sink; started and flushed with the pipeline
        self.quality = quality  # None: every frame is inspected
        self.evidence = evidence  # EvidenceStore or None
        self.decisions = decisions or {}  # per camera: ROI, rotation, ignore mask, min defect area
        # a posted image repeating the last one is a resend, not a frozen camera
        self.frozen = {n: FrozenDetector(quality) for n in sources
                       if n not in self.event_driven} if quality else {}
        self.triggers = TriggerBook(sources)
        # control jobs (reload) are served first; uploaded images alternate with line frames
        self._requests: deque[tuple[str, tuple]] = deque()
        self._inspections: deque[tuple[str, tuple]] = deque()
        self._frames_next = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        for part in (self.journal, self.evidence):
            if part is not None:
                part.start()
        self._worker.start()
        self.supervisor.start()
        for t in self._captures:
            t.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._wakeup:
            self._wakeup.notify_all()
        for t in self._captures:
            t.join(timeout)
        if self._worker.is_alive():
            self._worker.join(timeout)
        self.supervisor.join(timeout)
        if self.journal is not None and not self._worker.is_alive():
            self.journal.release(self.store.last_seq)  # nothing more will be numbered
        for part in (self.journal, self.evidence):
            if part is not None:
                part.close()

    @property
    def finished(self) -> bool:
        """Every finite source ended and every frame it delivered has been inspected."""
        return all(c.ended for c in self.cameras.values()) and not any(s.depth for s in self.slots.values())

    # -- freshness ---------------------------------------------------------------------------
    def stale_limit_s(self, camera: str) -> float:
        """How old a camera's last result may be and still stand for the line right now:
        ``stale_periods`` frame periods plus the time the pipeline itself takes."""
        period = self.cameras[camera].period_s or 0.1
        return max(0.1, self.stale_periods * period + self.last_e2e_s.get(camera, 0.0))

    def staleness(self, result: Result, now: float) -> str | None:
        """Why ``result`` cannot stand for its camera right now, or None while it is fresh."""
        cam = self.cameras[result.camera]
        if not cam.up:
            return f"camera {cam.name} is down ({cam.error or 'no frames'})"
        if cam.name in self.event_driven:  # the result stands for the part posted, not the line
            return None
        age, limit = now - result.captured_at, self.stale_limit_s(result.camera)
        if age > limit:
            return f"last inspected frame is {age * 1000:.0f} ms old (limit {limit * 1000:.0f} ms)"
        return None

    def readiness(self) -> tuple[bool, list[str]]:
        reasons = []
        if not self.engine_ready.is_set():
            reasons.append(self.engine_error or "engine not loaded yet")
        now = time.time()
        for name, cam in self.cameras.items():
            if not cam.up:
                reasons.append(f"camera {name}: {cam.error or 'no frames yet'}")
                continue
            if name in self.event_driven:  # idle until a part is posted: ready while open
                continue
            latest = self.store.latest(name)
            if latest is None:
                reasons.append(f"camera {name}: no inspected frame yet")
            elif (why := self.staleness(latest, now)) is not None:
                reasons.append(f"camera {name}: {why}")
            elif latest.verdict == INVALID and (latest.reason or "").startswith("frozen"):
                reasons.append(f"camera {name}: {latest.reason}")  # fresh results of a dead picture
        return not reasons, reasons

    # -- requests served by the worker (it alone touches the engine) --------------------------
    def _request(self, kind: str, *args) -> Future:
        future: Future = Future()
        with self._wakeup:
            self._requests.append((kind, (*args, future)))
            self._wakeup.notify_all()
        return future

    def submit(self, frame_rgb: np.ndarray) -> Future:
        """Inspect one uploaded image between line frames; resolves to an Inspection. Raises
        RequestsFull when ``MAX_PENDING_INSPECTIONS`` already wait."""
        future: Future = Future()
        with self._wakeup:
            if len(self._inspections) >= MAX_PENDING_INSPECTIONS:
                raise RequestsFull(f"{len(self._inspections)} uploaded images waiting for the engine")
            self._inspections.append(("inspect", (frame_rgb, future)))
            self._wakeup.notify_all()
        return future

    def reload(self, bundle_path: str | Path) -> Future:
        """Load, activate and warm up another bundle, then swap it in; the old one keeps serving
        until then and stays in place if anything fails. Resolves to a summary dict."""
        return self._request("reload", Path(bundle_path))

    def trigger(self, camera: str, part_id: str, timeout_s: float) -> Future:
        now = time.time()
        future = self.triggers.add(Trigger(camera, part_id, now, now + timeout_s))
        with self._wakeup:  # the worker may be asleep with nothing to do: let it see the deadline
            self._wakeup.notify_all()
        return future

    # -- the worker --------------------------------------------------------------------------
    def _next_job(self):
        """A control job, a batch of frames or an uploaded image, or None when it is time to
        look at trigger deadlines. Uploads and frames take turns whenever both wait, so a frame
        waits for at most one upload's inspection: requests get the engine time the line leaves."""
        with self._wakeup:
            if self._stop.is_set():
                return None
            if self._requests:
                return self._requests.popleft()
            if self._inspections and not (self._frames_next and self._frames_waiting()):
                self._frames_next = True
                return self._inspections.popleft()
            frames = [f for f in (s.take() for s in self.slots.values()) if f is not None]
            if frames:
                self._frames_next = False
                return "frames", frames[: self.batch_size]
            deadline = self.triggers.next_deadline()
            wait = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.time()))
            self._wakeup.wait(wait)
        return None

    def _frames_waiting(self) -> bool:
        return any(s.depth for s in self.slots.values())

    def abandon_worker(self) -> list[Frame] | None:
        """Called by the supervisor on a hang: the frames of the stuck call (to be answered
        FAULT), with a fresh worker started; None when the call has returned meanwhile."""
        with self._flight_lock:
            if self.busy_since_mono is None:
                return None
            frames, self._in_flight, self.busy_since_mono = self._in_flight, [], None
            self._orphans[self._worker] = self.engine  # the stuck thread frees it if it returns
            self.engine_ready.clear()
            self.engine_error = "engine hung; a fresh engine is loading"
            self._worker = threading.Thread(target=self._work, args=(True,), name="inference", daemon=True)
            self._worker.start()
        return frames

    def _engine_call(self, frames: list[Frame], call):
        """``call()`` on the engine, watched by the supervisor. Returns (True, value) or
        (False, None) when this thread was abandoned meanwhile (nothing may be published)."""
        with self._flight_lock:
            self.busy_since_mono, self._in_flight = time.monotonic(), frames
        try:
            value = call()
        finally:
            with self._flight_lock:
                mine = threading.current_thread() is self._worker
                if mine:
                    self.busy_since_mono, self._in_flight = None, []
        return (True, value) if mine else (False, None)

    def _work(self, fresh: bool = False) -> None:
        me = threading.current_thread()
        engine = self.engine
        try:
            if fresh:  # after a hang: the same bundle, a new engine, on this thread
                engine = self.engine_factory(load_bundle(self.bundle_path))
            engine.activate()
        except Exception as exc:  # a bad engine must leave the service up and not ready
            self.engine_error = f"engine failed to load: {exc}"
            if fresh:
                self.recovery_error = f"the engine could not be restarted after a hang: {exc}"
            log.error(self.engine_error)
            self.metrics.engine_errors.inc()
            return
        if fresh:
            self.engine = engine
            self.inspector = Inspector(engine, self.inspector.manifest, self.inspector.min_region_area_px)
            self.engine_error = None
            log.info("engine restarted after a hang")
        self.metrics.engine.info({"backend": engine.name, "provider": engine.provider})
        self.engine_ready.set()
        try:
            while not self._stop.is_set() and me is self._worker:
                for trig in self.triggers.expired(time.time()):
                    self._fault_trigger(trig)
                job = self._next_job()
                if job is None:
                    continue
                kind, payload = job
                if kind == "frames":
                    self._process(payload)
                elif kind == "inspect":
                    self._inspect_one(*payload)
                elif kind == "reload":
                    self._reload(*payload)
        finally:
            if me is self._worker:
                self.engine_ready.clear()
                self.engine.deactivate()
            else:  # abandoned: free the engine it was stuck in, touch nothing shared
                orphan = self._orphans.pop(me, None)
                try:
                    if orphan is not None:
                        orphan.deactivate()
                except Exception:
                    log.exception("freeing an abandoned engine failed")

    def _watchdog(self) -> None:
        """A source whose read hangs (a dead RTSP stream, an unplugged USB camera) blocks its
        capture thread without an error: mark such a camera down after max(1 s, 3 periods)
        without a frame. Its next frame brings it back up."""
        now = time.perf_counter()
        for cam in self.cameras.values():
            if cam.up and cam.last_frame_mono is not None and cam.name not in self.event_driven:
                silent = now - cam.last_frame_mono
                if silent > max(STALL_S, 3 * (cam.period_s or 0)):
                    cam.up, cam.error = False, f"stalled: no frame for {silent:.1f} s"
                    self.metrics.camera_up.labels(cam.name).set(0)
                    log.error("camera %s: %s", cam.name, cam.error)

    def _inspect_one(self, frame_rgb: np.ndarray, future: Future) -> None:
        inspector = self.inspector
        try:
            done, inspections = self._engine_call([], lambda: inspector.inspect([frame_rgb]))
        except Exception as exc:
            self.metrics.engine_errors.inc()
            future.set_exception(exc)
            return
        if done:
            future.set_result(inspections[0])
        else:
            future.set_exception(RuntimeError("the engine hung on this image and was restarted"))

    def _reload(self, bundle_path: Path, future: Future) -> None:
        try:
            if self.model_root is not None:
                bundle_path = confined_bundle(bundle_path, self.model_root)
            bundle = load_bundle(bundle_path)
            engine = self.engine_factory(bundle)
            engine.activate()  # loads and warms up before anything is swapped
        except Exception as exc:
            log.error("model reload from %s failed, keeping %s: %s", bundle_path, self.model_info, exc)
            self.metrics.model_reloads.labels("failed").inc()
            future.set_exception(exc)
            return
        old, m = self.engine, bundle.manifest
        self.engine, self.inspector = engine, Inspector(engine, m, self.inspector.min_region_area_px)
        self.bundle_path = bundle.path
        self.model_info = {"name": m.name, "version": m.version, "family": m.family}
        self.drift = {n: DriftGuard(m.calibration.normal_scores, **self._drift_params) for n in self.cameras}
        self.metrics.model.info({"name": m.name, "version": m.version, "family": m.family,
                                 "onnx_sha256": m.provenance.onnx_sha256[:16]})
        self.metrics.engine.info({"backend": engine.name, "provider": engine.provider})
        self.metrics.model_reloads.labels("ok").inc()
        old.deactivate()
        log.info("model reloaded: %s", self.model_info)
        future.set_result({**self.model_info, "bundle": str(bundle.path), "provider": engine.provider})

    def _fault_trigger(self, trig: Trigger) -> None:
        now = time.time()
        waited = (now - trig.received_at) * 1000
        result = self.store.publish(lambda seq: Result(
            seq, trig.camera, -1, now, now, FAULT, None, None, None, self.model_info,
            part_id=trig.part_id, boot_id=self.store.boot_id,
            reason=f"trigger deadline: no frame from camera {trig.camera} within {waited:.0f} ms"))
        self.metrics.verdicts.labels(trig.camera, FAULT).inc()
        trig.future.set_result(result)

    def _unjudgeable(self, frame: Frame) -> tuple[str, str] | None:
        decision = self.decisions.get(frame.camera)
        q = measure(decision.inspected(frame.image_rgb) if decision else frame.image_rgb)
        detector = self.frozen.get(frame.camera)
        frozen_for = detector.update(q.thumb, frame.captured_mono) if detector else 0.0
        if frozen_for >= self.quality.frozen_s:
            return "frozen", f"frozen: the picture has not changed for {frozen_for:.1f} s"
        return problem(q, self.quality, self.inspector.manifest.image_stats.get("sharpness_median"))

    def _process(self, frames: list[Frame]) -> None:
        if self.quality is not None:
            judged = []
            for frame in frames:
                why = self._unjudgeable(frame)
                if why is None:
                    judged.append(frame)
                else:  # not worth an engine call, and never an OK
                    self.metrics.invalid_frames.labels(frame.camera, why[0]).inc()
                    self._publish(frame, None, why[1], verdict=INVALID)
            frames = judged
            if not frames:
                return
        try:
            inspector = self.inspector
            done, inspections = self._engine_call(frames, lambda: inspector.inspect(
                [f.image_rgb for f in frames], [self.decisions.get(f.camera) for f in frames]))
            if not done:
                return  # abandoned after a hang: the supervisor answered these frames
            error = None
        except Exception as exc:
            log.exception("engine failure")
            self.metrics.engine_errors.inc()
            inspections, error = [None] * len(frames), f"engine failure: {exc}"
        for frame, ins in zip(frames, inspections):
            self._publish(frame, ins, error)

    def _publish(self, frame: Frame, ins: Inspection | None, error: str | None,
                 verdict: str = FAULT) -> None:
        t_pub = time.perf_counter()
        m = self.metrics
        cam = frame.camera
        trig = self.triggers.match(cam, frame.captured_at)
        part_id = trig.part_id if trig else None

        def make(seq: int) -> Result:
            e2e_s = time.perf_counter() - frame.captured_mono
            if ins is None:  # FAULT (engine) or INVALID (quality guard): no score is invented
                return Result(seq, cam, frame.index, frame.captured_at, time.time(), verdict, None,
                              None, None, self.model_info, reason=error, part_id=part_id,
                              boot_id=self.store.boot_id,
                              latency_ms={"end_to_end": round(e2e_s * 1000, 2)})
            return Result(seq, cam, frame.index, frame.captured_at, time.time(), ins.verdict,
                          ins.score, ins.raw_score, ins.threshold, self.model_info, ins.regions,
                          part_id=part_id, boot_id=self.store.boot_id, latency_ms={"preprocess": round(ins.preprocess_s * 1000, 2),
                                      "infer": round(ins.infer_s * 1000, 2),
                                      "postprocess": round(ins.postprocess_s * 1000, 2),
                                      "end_to_end": round(e2e_s * 1000, 2)})

        result = self.store.publish(make)
        if trig is not None:
            trig.future.set_result(result)
        shown = ins.inspected_rgb if ins is not None and ins.inspected_rgb is not None else frame.image_rgb
        self.views[cam] = View(result.seq, shown, ins)
        if result.verdict == NG:
            self.rejects.append(self.views[cam])
        if self.evidence is not None:
            self.evidence.offer(result, shown, ins)
        e2e = time.perf_counter() - frame.captured_mono
        self.last_e2e_s[cam] = e2e
        self.processed += 1
        m.frames_processed.labels(cam).inc()
        m.verdicts.labels(cam, result.verdict).inc()
        m.frame_age.labels(cam).set(time.time() - frame.captured_at)
        if ins is not None:
            m.stage_latency.labels("preprocess").observe(ins.preprocess_s)
            m.stage_latency.labels("infer").observe(ins.infer_s)
            m.stage_latency.labels("postprocess").observe(ins.postprocess_s)
            m.score.labels(cam).observe(ins.score)
            m.margin.labels(cam).set(ins.score - 0.5)
            m.threshold.set(ins.threshold)
            drift = self.drift[cam].add(ins.raw_score)
            if drift is not None and drift.statistic is not None:
                m.drift_statistic.labels(cam).set(drift.statistic)
                m.drift_detected.labels(cam).set(int(drift.state == DRIFT))
        m.stage_latency.labels("publish").observe(time.perf_counter() - t_pub)
        m.stage_latency.labels("end_to_end").observe(e2e)
