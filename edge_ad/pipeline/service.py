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
from ..decision.judge import Context, Unjudged, judge, missed_trigger
from ..decision.quality import FrozenDetector, QualityLimits
from ..decision.result import Result
from ..decision.scoring import Inspection
from ..decision.verdict import INVALID
from ..engines import Engine, create_engine
from ..prometheus import Metrics
from ..publish import Publication, Publisher
from ..publish.clips import ClipRings
from ..publish.line_metrics import DriftMonitor, LineMetrics
from ..publish.views import ViewCache
from ..sources.base import Frame, Source
from .capture import CameraState, CaptureThread
from .results import ResultStore
from .slot import LatestFrameSlot
from .supervisor import Supervisor
from .triggers import Trigger, TriggerBook
from .recipes import RecipeSet
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
    model_root: Path | None = None  # reload loads only bundles under it (None: anywhere, tests)
    engine_factory: Callable[[Bundle], Engine] = create_engine  # reloads and hang recovery
    recipes: RecipeSet | None = None  # numbered products; ``model`` is then the default's
    clips: ClipRings | None = None  # every captured frame, shrunk, for the evidence's event clips


class Pipeline:
    """Owns the threads (capture, worker, supervisor), the cameras' state, the slots, the
    triggers and the publishers, and says whether the line is ready and its results fresh."""

    def __init__(self, model: Model, sources: dict[str, Source], store: ResultStore, metrics: Metrics,
                 options: PipelineOptions | None = None, outputs: tuple[Publisher, ...] = ()):
        self.store, self.metrics = store, metrics
        self.options = options = options or PipelineOptions()
        # The model each camera is judged by (None: an unknown recipe is selected there), and
        # with recipes the warm ones by number. Only the worker writes these.
        self.models: dict[str, Model | None] = {n: model for n in sources}
        self.selected: dict[str, int | None] = {n: model.recipe for n in sources}
        self.warm: dict[int, Model] = {model.recipe: model} if options.recipes is not None else {}
        self.recipe_loading: dict[str, int] = {}  # camera -> the recipe being loaded for it
        self._primary = model
        for name in sources:
            metrics.recipe.labels(name).set(-1 if model.recipe is None else model.recipe)
        self.stopping = threading.Event()
        self.wakeup = threading.Condition()  # shared by every slot: one worker waits on all cameras
        # what status shows: the URI with any RTSP password redacted
        self.cameras = {n: CameraState(n, s.display) for n, s in sources.items()}
        self.event_driven = {n for n, s in sources.items() if s.event_driven}
        self.sources = sources
        self.slots = {n: LatestFrameSlot(n, self.wakeup) for n in sources}
        self._captures = [CaptureThread(s, self.slots[n], self.cameras[n], metrics, self.stopping, options.clips)
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

    # -- the models in force (written by the worker) --------------------------------------------
    @property
    def model(self) -> Model:
        """The first camera's model: what status shows, and the only one without recipes."""
        return next((m for m in self.models.values() if m is not None), self._primary)

    def warm_models(self) -> list[Model]:
        """Every distinct model loaded: the cameras' and the warm recipes'."""
        seen: dict[int, Model] = {}
        for m in (*self.models.values(), *self.warm.values(), self._primary):
            if m is not None:
                seen.setdefault(id(m), m)
        return list(seen.values())

    def replace_model(self, old: Model, new: Model) -> None:
        """``new`` serves wherever ``old`` did (a reload, a threshold change, a fresh engine)."""
        for cam, m in self.models.items():
            if m is old:
                self.models[cam] = new
        for n, m in self.warm.items():
            if m is old:
                self.warm[n] = new
        if self._primary is old:
            self._primary = new

    def select(self, camera: str, number: int, model: Model | None) -> None:
        """Camera ``camera`` is judged by recipe ``number`` (``model`` None: not configured)."""
        self.models[camera], self.selected[camera] = model, number
        if model is not None:
            self._primary = model
        self.metrics.recipe.labels(camera).set(number if model is not None else -1)

    def unknown_recipe_reason(self, camera: str) -> str:
        known = sorted(self.options.recipes.recipes) if self.options.recipes else []
        return f"recipe {self.selected.get(camera)} is not configured (the recipes are {known})"

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
        for name in self.cameras:
            if (why := self.camera_problem(name, now)) is not None:
                reasons.append(f"camera {name}: {why}")
        return not reasons, reasons

    def camera_problem(self, name: str, now: float) -> str | None:
        """Why camera ``name`` cannot answer for the line right now (the engine aside), or None."""
        cam = self.cameras[name]
        if not cam.up:
            return cam.error or "no frames yet"
        if name in self.recipe_loading:
            return f"recipe {self.recipe_loading[name]} is loading"
        if self.models[name] is None:
            return self.unknown_recipe_reason(name)
        if name in self.event_driven:  # idle until a part is posted: ready while open
            return None
        latest = self.store.latest(name)
        if latest is None:
            return "no inspected frame yet"
        if (why := self.staleness(latest, now)) is not None:
            return why
        if latest.verdict == INVALID and (latest.reason or "").startswith("frozen"):
            return latest.reason  # fresh results of a dead picture
        return None

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

    def select_recipe(self, camera: str, number: int) -> Future:
        """Camera ``camera`` judged by recipe ``number`` from the next frame (loaded and warmed
        first when it is cold); resolves to a summary dict, or raises UnknownRecipe (the camera
        then FAULTs until a known recipe is selected)."""
        return self.worker.select_recipe(camera, number)

    def trigger(self, camera: str, part_id: str | None, timeout_s: float, lot_id: str | None = None) -> Future:
        now = time.time()
        future = self.triggers.add(Trigger(camera, part_id, now, now + timeout_s, lot_id))
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
    def deliver(self, frame: Frame, outcome: Inspection | Unjudged, model: Model | None = None) -> Result:
        """Judge ``frame``, number and journal the result, answer its trigger, then hand it to
        every publisher. ``model`` is the one that inspected it (default: its camera's). Called
        on the worker (or by the supervisor for a hung call)."""
        t_pub = time.perf_counter()
        model = model or self.models[frame.camera]
        trig = self.triggers.match(frame.camera, frame.captured_at)
        context = self._context(frame.camera, model, trig)
        result = self.store.publish(lambda seq: replace(
            judge(frame, outcome, context, time.perf_counter() - frame.captured_mono, time.time()), seq=seq))
        if trig is not None:
            trig.future.set_result(result)
        self.last_e2e_s[frame.camera] = time.perf_counter() - frame.captured_mono
        self.processed += 1
        # a faulted inspection (a non-finite score) has no map worth showing or keeping
        inspection = outcome if isinstance(outcome, Inspection) and outcome.fault is None else None
        shown = inspection.inspected_rgb if inspection is not None and inspection.inspected_rgb is not None \
            else frame.image_rgb
        manifest = (model or self._primary).manifest
        self._fan_out(Publication(result, shown, inspection, manifest))
        self.metrics.stage_latency.labels("publish").observe(time.perf_counter() - t_pub)
        return result

    def _fan_out(self, item: Publication) -> None:
        """Every publisher, in order, after the store has numbered and journaled the result."""
        for p in self.publishers:
            p.publish(item)

    def fault_trigger(self, trig: Trigger) -> None:
        """A trigger whose deadline passed without a frame: a FAULT result for its part."""
        model = self.models[trig.camera]
        context = self._context(trig.camera, model, trig)
        result = self.store.publish(lambda seq: replace(
            missed_trigger(trig.camera, trig.received_at, context, time.time()), seq=seq))
        trig.future.set_result(result)
        # no frame: nothing to show or keep
        self._fan_out(Publication(result, None, None, (model or self._primary).manifest))

    def _context(self, camera: str, model: Model | None, trig: Trigger | None) -> Context:
        return Context(model.info if model is not None else {}, self.store.boot_id,
                       trig.part_id if trig else None,
                       model.recipe if model is not None else self.selected.get(camera),
                       trig.lot_id if trig else None)
