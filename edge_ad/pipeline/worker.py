"""The inference worker: the one thread that touches the engine and changes the model in force.

Activate, infer and deactivate all happen on its thread, as a CUDA context requires. It takes
jobs in this order: control jobs (reload, a threshold change), then uploaded images and line
frames in turn, batching the frames waiting across cameras up to ``batch_size``. Because a
threshold change is a job here like a reload, the two can never interleave: the manifest saved
is always the served model's, into that model's bundle.

An engine exception turns the affected frames into FAULT results and is counted; the worker
keeps running. A hung call is the supervisor's business (see supervisor.py): it abandons this
thread and starts a fresh one, and the abandoned one publishes nothing.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..bundle import Manifest, load_bundle, save_manifest
from ..decision.camera import CameraDecision
from ..decision.judge import Unjudged
from ..decision.quality import measure, problem
from ..decision.scoring import Inspection
from ..decision.verdict import FAULT, INVALID
from ..engines import Engine
from ..model_root import confined_bundle
from ..sources.base import Frame
from .inspector import Inspector
from .recipes import Recipe, UnknownRecipe

if TYPE_CHECKING:
    from .service import Pipeline

log = logging.getLogger(__name__)
MAX_PENDING_INSPECTIONS = 4  # uploaded images waiting for the engine; beyond: RequestsFull (429)


class RequestsFull(Exception):
    """The engine's queue of uploaded images is full: the line comes first."""


class Stopping(Exception):
    """The pipeline stops while a tiled frame is between tile batches: the frame is dropped
    unjudged (never numbered), so that stop() waits one batch, not a whole 12 MP frame."""


@dataclass(frozen=True)
class Model:
    """The model in force. Replaced as one reference, and only by the worker."""
    engine: Engine
    inspector: Inspector
    bundle_path: Path | None
    info: dict  # name, version, family: what every result records
    decisions: dict[str, CameraDecision] = field(default_factory=dict)  # per camera: ROI, mask, ...
    recipe: int | None = None  # the recipe it serves (None: no recipes configured)

    @staticmethod
    def of(engine: Engine, manifest: Manifest, bundle_path: Path | None = None,
           decisions: dict[str, CameraDecision] | None = None, recipe: int | None = None) -> "Model":
        return Model(engine, Inspector(engine, manifest), bundle_path,
                     {"name": manifest.name, "version": manifest.version, "family": manifest.family},
                     decisions or {}, recipe)

    @staticmethod
    def of_recipe(recipe: Recipe, engine_factory) -> "Model":
        """A recipe's model, its engine created but not activated (that happens on the worker)."""
        bundle = load_bundle(recipe.bundle_path)
        return Model.of(engine_factory(bundle), bundle.manifest, bundle.path,
                        recipe.decisions(bundle.manifest), recipe.number)

    @property
    def manifest(self) -> Manifest:
        return self.inspector.manifest


@dataclass(frozen=True)
class ThresholdChange:
    """What a threshold job did: the manifests before and after, and whether it was saved."""
    before: Manifest
    after: Manifest
    persisted: bool


class Worker:
    """The pipeline's engine side. It reads the pipeline's slots, triggers and options, and
    publishes through ``Pipeline.deliver``; it alone writes ``pipeline.model``."""

    def __init__(self, pipeline: "Pipeline"):
        self.p = pipeline
        self._thread = self._new_thread(fresh=False)
        self._flight_lock = threading.Lock()  # the worker's engine call vs the supervisor's abandon
        self.busy_since_mono: float | None = None  # an engine call in progress since
        self._in_flight: list[Frame] = []
        self._in_flight_engine: Engine | None = None
        self._orphans: dict[threading.Thread, Engine] = {}
        self.ready = threading.Event()
        self.error: str | None = None  # why the engine is not ready
        self.recovery_error: str | None = None  # why it could not be restarted after a hang
        # control jobs are served first; uploaded images alternate with line frames
        self._requests: deque[tuple[str, tuple]] = deque()
        self._inspections: deque[tuple[str, tuple]] = deque()
        self._frames_next = False
        self.started = False

    def _new_thread(self, fresh: bool) -> threading.Thread:
        return threading.Thread(target=self._work, args=(fresh,), name="inference", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.started = True
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def ident(self) -> int | None:
        return self._thread.ident

    # -- jobs (any thread) ---------------------------------------------------------------------
    def _request(self, kind: str, *args) -> Future:
        future: Future = Future()
        with self.p.wakeup:
            self._requests.append((kind, (*args, future)))
            self.p.wakeup.notify_all()
        return future

    def submit(self, frame_rgb: np.ndarray) -> Future:
        future: Future = Future()
        with self.p.wakeup:
            if len(self._inspections) >= MAX_PENDING_INSPECTIONS:
                raise RequestsFull(f"{len(self._inspections)} uploaded images waiting for the engine")
            self._inspections.append(("inspect", (frame_rgb, future)))
            self.p.wakeup.notify_all()
        return future

    def reload(self, bundle_path: Path) -> Future:
        return self._request("reload", bundle_path)

    def change_thresholds(self, change: Callable[[Manifest], Manifest], persist: bool,
                          who: str) -> Future:
        return self._request("thresholds", change, persist, who)

    def select_recipe(self, camera: str, number: int) -> Future:
        return self._request("recipe", camera, number)

    # -- the thread ----------------------------------------------------------------------------
    def _next_job(self):
        """A control job, a batch of frames or an uploaded image, or None when it is time to
        look at trigger deadlines. Uploads and frames take turns whenever both wait, so a frame
        waits for at most one upload's inspection: requests get the engine time the line leaves."""
        p = self.p
        with p.wakeup:
            if p.stopping.is_set():
                return None
            if self._requests:
                return self._requests.popleft()
            if self._inspections and not (self._frames_next and p.frames_waiting()):
                self._frames_next = True
                return self._inspections.popleft()
            frames = [f for f in (s.take() for s in p.slots.values()) if f is not None]
            if frames:
                self._frames_next = False
                return "frames", frames[: p.options.batch_size]
            deadline = p.triggers.next_deadline()
            wait = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.time()))
            p.wakeup.wait(wait)
        return None

    def _work(self, fresh: bool) -> None:
        p, me = self.p, threading.current_thread()
        try:
            for model in p.warm_models():
                if fresh:  # after a hang: the same bundle, a new engine, on this thread
                    engine = p.options.engine_factory(load_bundle(model.bundle_path))
                    fresh_model = replace(model, engine=engine, inspector=Inspector(engine, model.manifest))
                    fresh_model.engine.activate()
                    p.replace_model(model, fresh_model)
                    if model.engine not in self._orphans.values():  # another recipe's: not stuck, free it
                        model.engine.deactivate()
                else:
                    model.engine.activate()
            if not fresh:
                self._preload_recipes()
        except Exception as exc:  # a bad engine must leave the service up and not ready
            self.error = f"engine failed to load: {exc}"
            if fresh:
                self.recovery_error = f"the engine could not be restarted after a hang: {exc}"
            log.error(self.error)
            p.metrics.engine_errors.inc()
            return
        if fresh:
            self.error = None
            log.info("engine restarted after a hang")
        model = p.model
        p.metrics.engine.info({"backend": model.engine.name, "provider": model.engine.provider})
        self.ready.set()
        try:
            while not p.stopping.is_set() and me is self._thread:
                for trig in p.triggers.expired(time.time()):
                    p.fault_trigger(trig)
                job = self._next_job()
                if job is None:
                    continue
                kind, payload = job
                if kind != "frames" and not payload[-1].set_running_or_notify_cancel():
                    continue  # its caller gave up waiting (a timeout): nothing is done, nothing answered
                try:
                    if kind == "frames":
                        self._process(payload)
                    elif kind == "inspect":
                        self._inspect_one(*payload)
                    elif kind == "reload":
                        self._reload(*payload)
                    elif kind == "thresholds":
                        self._thresholds(*payload)
                    elif kind == "recipe":
                        self._select_recipe(*payload)
                except Exception:  # a job's failure must never stop the line
                    log.exception("inference worker: %s job failed", kind)
        finally:
            if me is self._thread:
                self.ready.clear()
                for model in p.warm_models():
                    model.engine.deactivate()
            else:  # abandoned: free the engine it was stuck in, touch nothing shared
                orphan = self._orphans.pop(me, None)
                try:
                    if orphan is not None:
                        orphan.deactivate()
                except Exception:
                    log.exception("freeing an abandoned engine failed")

    # -- hangs ---------------------------------------------------------------------------------
    def abandon(self) -> list[Frame] | None:
        """Called by the supervisor on a hang: the frames of the stuck call (to be answered
        FAULT), with a fresh worker thread started; None when the call has returned meanwhile."""
        with self._flight_lock:
            if self.busy_since_mono is None:
                return None
            frames, self._in_flight, self.busy_since_mono = self._in_flight, [], None
            self._orphans[self._thread] = self._in_flight_engine  # the stuck thread frees it if it returns
            self.ready.clear()
            self.error = "engine hung; a fresh engine is loading"
            self._thread = self._new_thread(fresh=True)
            self._thread.start()
        return frames

    def _still_calling(self) -> None:
        """A tiled frame's next engine call begins: the hang timeout counts from here (and a
        stopping pipeline ends the frame here)."""
        if self.p.stopping.is_set():
            raise Stopping()
        with self._flight_lock:
            if threading.current_thread() is self._thread and self.busy_since_mono is not None:
                self.busy_since_mono = time.monotonic()

    def _engine_call(self, frames: list[Frame], call, engine: Engine):
        """``call()`` on ``engine``, watched by the supervisor. Returns (True, value) or
        (False, None) when this thread was abandoned meanwhile (nothing may be published)."""
        with self._flight_lock:
            self.busy_since_mono, self._in_flight = time.monotonic(), frames
            self._in_flight_engine = engine
        try:
            value = call()
        finally:
            with self._flight_lock:
                mine = threading.current_thread() is self._thread
                if mine:
                    self.busy_since_mono, self._in_flight = None, []
        return (True, value) if mine else (False, None)

    # -- job bodies ------------------------------------------------------------------------------
    def _inspect_one(self, frame_rgb: np.ndarray, future: Future) -> None:
        inspector = self.p.model.inspector
        try:
            done, inspections = self._engine_call(
                [], lambda: inspector.inspect([frame_rgb], before_call=self._still_calling), inspector.engine)
        except Stopping:
            future.set_exception(RuntimeError("the service stopped while this image was inspected"))
            return
        except Exception as exc:
            self.p.metrics.engine_errors.inc()
            future.set_exception(exc)
            return
        if done:
            future.set_result(inspections[0])
        else:
            future.set_exception(RuntimeError("the engine hung on this image and was restarted"))

    def _reload(self, bundle_path: Path, future: Future) -> None:
        p = self.p
        if p.options.recipes is not None:
            future.set_exception(ValueError("recipes are configured: select one with PUT /v1/recipe; "
                                            "a recipe's bundle is changed in the config"))
            return
        try:
            if p.options.model_root is not None:
                bundle_path = confined_bundle(bundle_path, p.options.model_root)
            bundle = load_bundle(bundle_path)
            engine = p.options.engine_factory(bundle)
            engine.activate()  # loads and warms up before anything is swapped
        except Exception as exc:
            log.error("model reload from %s failed, keeping %s: %s", bundle_path, p.model.info, exc)
            p.metrics.model_reloads.labels("failed").inc()
            future.set_exception(exc)
            return
        old, m = p.model, bundle.manifest
        p.replace_model(old, Model.of(engine, m, bundle.path, old.decisions))
        p.metrics.model.info({**p.model.info, "onnx_sha256": m.provenance.onnx_sha256[:16]})
        p.metrics.engine.info({"backend": engine.name, "provider": engine.provider})
        p.metrics.model_reloads.labels("ok").inc()
        old.engine.deactivate()
        log.info("model reloaded: %s", p.model.info)
        future.set_result({**p.model.info, "bundle": str(bundle.path), "provider": engine.provider})

    def _thresholds(self, change, persist: bool, who: str, future: Future) -> None:
        p = self.p
        model = p.model
        try:
            before = model.manifest
            after = change(before)
            persisted = False
            if persist and model.bundle_path is not None:
                save_manifest(model.bundle_path, after)  # this model's manifest, into its bundle
                persisted = True
        except Exception as exc:
            future.set_exception(exc)
            return
        # the next batch reads the new manifest (Inspector reads it once per batch)
        p.replace_model(model, replace(model, inspector=Inspector(model.engine, after)))
        log.warning("threshold changed %.6g -> %.6g by %s (persist=%s)", before.thresholds.image.threshold,
                    after.thresholds.image.threshold, who, persist)
        future.set_result(ThresholdChange(before, after, persisted))

    # -- recipes ---------------------------------------------------------------------------------
    def _preload_recipes(self) -> None:
        """At start, before the worker is ready: every recipe that fits the budget, warm."""
        p = self.p
        if p.options.recipes is None:
            return
        for recipe in p.options.recipes.preload():
            if recipe.number not in p.warm:
                model = Model.of_recipe(recipe, p.options.engine_factory)
                model.engine.activate()
                p.warm[recipe.number] = model
                log.info("recipe %d (%s) warm: %s", recipe.number, recipe.name, model.info)

    def _select_recipe(self, camera: str, number: int, future: Future) -> None:
        p = self.p
        recipes = p.options.recipes
        t0 = time.perf_counter()
        try:
            if recipes is None:
                raise ValueError("no recipes are configured (recipes: in the config)")
            if camera not in p.cameras:
                raise KeyError(f"no camera {camera!r}; the cameras are {sorted(p.cameras)}")
            try:
                recipe = recipes.get(number)
            except UnknownRecipe:
                p.select(camera, number, None)  # FAULT until a known recipe is selected
                p.metrics.recipe_switches.labels(camera, "unknown").inc()
                log.error("camera %s: recipe %d selected, but it is not configured: its results "
                          "are FAULT until a known recipe is selected", camera, number)
                raise
            loaded = number not in p.warm
            if loaded:
                p.recipe_loading[camera] = number
                try:
                    self._make_room(recipes, recipe)
                    model = Model.of_recipe(recipe, p.options.engine_factory)
                    model.engine.activate()
                finally:
                    p.recipe_loading.pop(camera, None)
                p.warm[number] = model
        except Exception as exc:
            if not isinstance(exc, (UnknownRecipe, ValueError, KeyError)):
                p.metrics.recipe_switches.labels(camera, "failed").inc()
                log.error("camera %s: recipe %d failed to load, keeping the previous one: %s", camera, number, exc)
            future.set_exception(exc)
            return
        p.select(camera, number, p.warm[number])
        p.metrics.recipe_switches.labels(camera, "ok").inc()
        switch_s = time.perf_counter() - t0
        log.info("camera %s: recipe %d (%s) in force from the next frame (%.1f ms%s)", camera, number,
                 recipe.name, switch_s * 1000, ", loaded" if loaded else "")
        future.set_result({"camera": camera, "recipe": number, "name": recipe.name,
                           "model": p.warm[number].info, "loaded": loaded, "switch_ms": round(switch_s * 1000, 3)})

    def _make_room(self, recipes, recipe: Recipe) -> None:
        """Free warm recipes no camera uses until ``recipe`` fits the budget (as far as it can)."""
        p = self.p
        in_use = {m.recipe for m in p.models.values() if m is not None}
        def used():
            return sum(recipes.get(n).estimated_mb() for n in p.warm)
        for n in [n for n in list(p.warm) if n not in in_use]:
            if used() + recipe.estimated_mb() <= recipes.memory_budget_mb:
                break
            p.warm.pop(n).engine.deactivate()
            log.info("recipe %d unloaded to make room for recipe %d", n, recipe.number)

    # -- frames ----------------------------------------------------------------------------------
    def _unjudgeable(self, frame: Frame, model: Model) -> Unjudged | None:
        p = self.p
        decision = model.decisions.get(frame.camera)
        q = measure(decision.inspected(frame.image_rgb) if decision else frame.image_rgb)
        detector = p.frozen.get(frame.camera)
        frozen_for = detector.update(q.thumb, frame.captured_mono) if detector else 0.0
        limits = p.options.quality
        if frozen_for >= limits.frozen_s:
            why = ("frozen", f"frozen: the picture has not changed for {frozen_for:.1f} s")
        else:
            why = problem(q, limits, model.manifest.image_stats.get("sharpness_median"))
        if why is None:
            return None
        p.metrics.invalid_frames.labels(frame.camera, why[0]).inc()
        return Unjudged(INVALID, why[1], "IMAGE_QUALITY")

    def _process(self, frames: list[Frame]) -> None:
        """Frames of several cameras: each judged by its camera's model, one engine call per model."""
        p = self.p
        groups: dict[int, tuple[Model, list[Frame]]] = {}
        for frame in frames:
            model = p.models[frame.camera]
            if model is None:  # an unknown recipe is selected: never the previous model's verdict
                p.deliver(frame, Unjudged(FAULT, p.unknown_recipe_reason(frame.camera), "UNKNOWN_RECIPE"))
                continue
            if p.options.quality is not None and (unjudged := self._unjudgeable(frame, model)) is not None:
                p.deliver(frame, unjudged, model)  # not worth an engine call, and never an OK
                continue
            groups.setdefault(id(model), (model, []))[1].append(frame)
        for model, group in groups.values():
            self._inspect_frames(model, group)

    def _inspect_frames(self, model: Model, frames: list[Frame]) -> None:
        p, inspector, decisions = self.p, model.inspector, model.decisions
        try:
            done, inspections = self._engine_call(frames, lambda: inspector.inspect(
                [f.image_rgb for f in frames], [decisions.get(f.camera) for f in frames],
                before_call=self._still_calling), model.engine)
            if not done:
                return  # abandoned after a hang: the supervisor answered these frames
        except Stopping:
            return  # shutting down between tile batches: unjudged, so never numbered
        except Exception as exc:
            log.exception("engine failure")
            p.metrics.engine_errors.inc()
            inspections = [Unjudged(FAULT, f"engine failure: {exc}", "ENGINE")] * len(frames)
        for frame, outcome in zip(frames, inspections):
            if isinstance(outcome, Inspection) and outcome.fault is not None:  # a NaN or inf score
                p.metrics.engine_errors.inc()
            p.deliver(frame, outcome, model)
