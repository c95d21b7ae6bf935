"""The running pipeline: capture threads → slots → the inference worker → decision → the result
store (with its journal) → the publishers.

This module owns the lifecycle and the line's freshness; the worker (worker.py) owns the
engine, the decision stage (decision/) judges, and the publishers (publish/) deliver. The
server reaches all of it only through ``ServicePort`` (port.py).
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..bundle import Bundle, Manifest
from ..decision.camera import CameraDecision
from ..decision.judge import Context, Unjudged, judge, missed_trigger
from ..decision.quality import FrozenDetector, QualityLimits
from ..decision.result import Result
from ..decision.scoring import Inspection
from ..decision.verdict import INVALID
from ..engines import Engine, create_engine
from ..prometheus import Metrics
from ..publish import Publication, Publisher
from ..publish.line_metrics import DriftMonitor, LineMetrics
from ..publish.views import ViewCache
from ..sources.base import Frame, Source
from .capture import CameraState, CaptureThread
from .results import ResultStore
from .slot import LatestFrameSlot
from .supervisor import Supervisor
from .triggers import Trigger, TriggerBook
from .worker import Model, Worker

log = logging.getLogger(__name__)
STALL_S = 1.0  # no frame for this long (or 3 frame periods, if longer) = the camera stalled


@dataclass(frozen=True)
class PipelineOptions:
    """How the pipeline runs; everything here is fixed for its life."""
    batch_size: int = 1
    stale_periods: float = 2.0  # a result older than this many frame periods is stale
    hang_timeout_s: float = 10.0
    quality: QualityLimits | None = None  # None: every frame is inspected
    drift: dict | None = None  # DriftGuard parameters
    decisions: dict[str, CameraDecision] = field(default_factory=dict)  # per camera: ROI, mask, ...
    model_root: Path | None = None  # reload loads only bundles under it (None: anywhere, tests)
    engine_factory: Callable[[Bundle], Engine] = create_engine  # reloads and hang recovery


class Pipeline:
    """Owns the threads (capture, worker, supervisor), the cameras' state, the slots, the
    triggers and the publishers, and says whether the line is ready and its results fresh."""

    def __init__(self, model: Model, sources: dict[str, Source], store: ResultStore, metrics: Metrics,
                 options: PipelineOptions | None = None, outputs: tuple[Publisher, ...] = ()):
        self.model, self.store, self.metrics = model, store, metrics
        self.options = options = options or PipelineOptions()
        self.stopping = threading.Event()
        self.wakeup = threading.Condition()  # shared by every slot: one worker waits on all cameras
        # what status shows: the URI with any RTSP password redacted
        self.cameras = {n: CameraState(n, s.display) for n, s in sources.items()}
        self.event_driven = {n for n, s in sources.items() if s.event_driven}
        self.sources = sources
        self.slots = {n: LatestFrameSlot(n, self.wakeup) for n in sources}
        self._captures = [CaptureThread(s, self.slots[n], self.cameras[n], metrics, self.stopping)
                          for n, s in sources.items()]
        self.triggers = TriggerBook(sources)
        # a posted image repeating the last one is a resend, not a frozen camera
        self.frozen = {n: FrozenDetector(options.quality) for n in sources
                       if n not in self.event_driven} if options.quality else {}
        self.views = ViewCache()
        self.drift = DriftMonitor(sources, options.drift, metrics)
        self.drift.reset(model.manifest.calibration.normal_scores, model.info)
        self.publishers: tuple[Publisher, ...] = (self.views, LineMetrics(metrics), self.drift, *outputs)
        self.last_e2e_s: dict[str, float] = {}
        self.processed = 0
        self.worker = Worker(self)
        self.supervisor = Supervisor(self, options.hang_timeout_s)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self.store.journal is not None:
            self.store.journal.start()
        for p in self.publishers:
            p.start()
        self.worker.start()
        self.supervisor.start()
        for t in self._captures:
            t.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        with self.wakeup:
            self.wakeup.notify_all()
        for t in self._captures:
            t.join(timeout)
        self.worker.join(timeout)
        self.supervisor.join(timeout)
        journal = self.store.journal
        if journal is not None and not self.worker.alive:
            journal.release(self.store.last_seq)  # nothing more will be numbered
        for p in self.publishers:
            p.close()
        if journal is not None:
            journal.close()

    @property
    def finished(self) -> bool:
        """Every finite source ended and every frame it delivered has been inspected."""
        return all(c.ended for c in self.cameras.values()) and not self.frames_waiting()

    def frames_waiting(self) -> bool:
        return any(s.depth for s in self.slots.values())

    # -- freshness ---------------------------------------------------------------------------
    def stale_limit_s(self, camera: str) -> float:
        """How old a camera's last result may be and still stand for the line right now:
        ``stale_periods`` frame periods plus the time the pipeline itself takes."""
        period = self.cameras[camera].period_s or 0.1
        return max(0.1, self.options.stale_periods * period + self.last_e2e_s.get(camera, 0.0))

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
        if not self.worker.ready.is_set():
            reasons.append(self.worker.error or "engine not loaded yet")
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

    # -- requests (any thread) ------------------------------------------------------------------
    def submit(self, frame_rgb) -> Future:
        """Inspect one uploaded image between line frames; resolves to an Inspection. Raises
        RequestsFull when too many already wait."""
        return self.worker.submit(frame_rgb)

    def reload(self, bundle_path: str | Path) -> Future:
        """Load, activate and warm up another bundle, then swap it in; the old one keeps serving
        until then and stays in place if anything fails. Resolves to a summary dict."""
        return self.worker.reload(Path(bundle_path))

    def change_thresholds(self, change: Callable[[Manifest], Manifest], persist: bool,
                          who: str = "anonymous") -> Future:
        """Apply ``change`` to the served manifest on the worker, between batches; resolves to a
        ThresholdChange."""
        return self.worker.change_thresholds(change, persist, who)

    def trigger(self, camera: str, part_id: str | None, timeout_s: float) -> Future:
        now = time.time()
        future = self.triggers.add(Trigger(camera, part_id, now, now + timeout_s))
        with self.wakeup:  # the worker may be asleep with nothing to do: let it see the deadline
            self.wakeup.notify_all()
        return future

    # -- the camera watchdog (run by the supervisor) -------------------------------------------
    def watchdog(self) -> None:
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

    # -- delivery: decision → store (journal) → publishers ---------------------------------------
    def deliver(self, frame: Frame, outcome: Inspection | Unjudged,
                manifest: Manifest | None = None) -> Result:
        """Judge ``frame``, number and journal the result, answer its trigger, then hand it to
        every publisher. Called on the worker (or by the supervisor for a hung call)."""
        t_pub = time.perf_counter()
        model = self.model
        trig = self.triggers.match(frame.camera, frame.captured_at)
        context = Context(model.info, self.store.boot_id, trig.part_id if trig else None)
        result = self.store.publish(lambda seq: replace(
            judge(frame, outcome, context, time.perf_counter() - frame.captured_mono, time.time()), seq=seq))
        if trig is not None:
            trig.future.set_result(result)
        self.last_e2e_s[frame.camera] = time.perf_counter() - frame.captured_mono
        self.processed += 1
        inspection = outcome if isinstance(outcome, Inspection) else None
        shown = inspection.inspected_rgb if inspection is not None and inspection.inspected_rgb is not None \
            else frame.image_rgb
        self._fan_out(Publication(result, shown, inspection, manifest or model.manifest))
        self.metrics.stage_latency.labels("publish").observe(time.perf_counter() - t_pub)
        return result

    def _fan_out(self, item: Publication) -> None:
        """Every publisher, in order, after the store has numbered and journaled the result."""
        for p in self.publishers:
            p.publish(item)

    def fault_trigger(self, trig: Trigger) -> None:
        """A trigger whose deadline passed without a frame: a FAULT result for its part."""
        model = self.model
        context = Context(model.info, self.store.boot_id, trig.part_id)
        result = self.store.publish(lambda seq: replace(
            missed_trigger(trig.camera, trig.received_at, context, time.time()), seq=seq))
        trig.future.set_result(result)
        self._fan_out(Publication(result, None, None, model.manifest))  # no frame: nothing to show or keep
