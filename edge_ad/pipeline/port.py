"""The one door into the running service, for the HTTP server and, later, the PLC servers.

Reads return frozen snapshots (results, views, dicts built on the spot); everything that
changes the service is a job the worker runs between batches. Nothing behind this interface
is reachable from a caller: a handler cannot write the pipeline's state, so it cannot race
the worker. Server tests run the real aiohttp app against a fake of ``ServicePort``.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..bundle import Manifest
from ..decision.result import Result
from ..errors import SourceError
from ..publish.views import View
from .results import Evicted
from .service import Pipeline
from .recipes import UnknownRecipe
from .triggers import TriggersFull
from .worker import RequestsFull

__all__ = ["Gone", "Latest", "NotPushable", "PipelinePort", "RequestsFull", "Served", "ServicePort",
           "SourceError", "TriggersFull", "UnknownRecipe"]


class Gone(Exception):
    """The results after that seq are no longer kept (ring and journal both moved on)."""

    def __init__(self, oldest_seq: int):
        super().__init__(oldest_seq)
        self.oldest_seq = oldest_seq


class NotPushable(Exception):
    """The camera does not take posted images."""


@dataclass(frozen=True)
class Latest:
    """A camera's newest result and, when it cannot stand for the line right now, why."""
    result: Result
    stale_reason: str | None


@dataclass(frozen=True)
class Served:
    """The model in force: what results record, and the manifest they were judged against."""
    info: dict
    manifest: Manifest
    bundle_path: Path | None


class ServicePort(ABC):
    """What a front end (HTTP, OPC UA, Modbus) may ask of the service."""

    # -- lifecycle -------------------------------------------------------------------------------
    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    # -- reads -----------------------------------------------------------------------------------
    @abstractmethod
    def cameras(self) -> tuple[str, ...]: ...

    @abstractmethod
    def push_cameras(self) -> tuple[str, ...]: ...

    @abstractmethod
    def camera_source(self, camera: str) -> str: ...

    @abstractmethod
    def latest(self, camera: str | None = None) -> Latest | None: ...

    @abstractmethod
    def results_after(self, seq: int, limit: int) -> dict:
        """``{"results", "last_seq", "boot_id"[, "never_served"]}``; raises Gone."""

    @abstractmethod
    def result_for_part(self, part_id: str) -> dict | None:
        """The page ``{"results": [the newest result for the part], ...}``, or None."""

    @abstractmethod
    def chains(self, seqs: list[int]) -> dict[int, dict]:
        """The chained stage's answers of those results that have one, by seq."""

    @abstractmethod
    def served(self) -> Served: ...

    @abstractmethod
    def engine_state(self) -> tuple[bool, str | None]:
        """(ready, why not)."""

    @abstractmethod
    def readiness(self) -> tuple[bool, list[str]]: ...

    @abstractmethod
    def camera_ready(self, camera: str) -> tuple[bool, str | None]:
        """Whether a trigger on ``camera`` can be answered now, and why not."""

    @abstractmethod
    def recipes(self) -> dict | None:
        """``{"default", "recipes": [{recipe, name, bundle}], "selected": {camera: n}}``, or None
        when no recipes are configured."""

    @abstractmethod
    def liveness(self) -> tuple[bool, list[str]]: ...

    @abstractmethod
    def status(self) -> dict: ...

    @abstractmethod
    def view(self, camera: str) -> View | None: ...

    @abstractmethod
    def view_by_seq(self, seq: int) -> View | None: ...

    # -- jobs ------------------------------------------------------------------------------------
    @abstractmethod
    def submit(self, frame_rgb: np.ndarray) -> Future:
        """Inspect an uploaded image; raises RequestsFull."""

    @abstractmethod
    def trigger(self, camera: str, part_id: str | None, timeout_s: float, lot_id: str | None = None) -> Future:
        """Inspect the camera's next frame for a part; raises TriggersFull."""

    @abstractmethod
    def select_recipe(self, camera: str, recipe: int) -> Future:
        """Judge the camera's frames by another recipe from the next frame; the future raises
        UnknownRecipe (the camera then FAULTs), ValueError (no recipes) or KeyError (no camera)."""

    @abstractmethod
    def push(self, camera: str, frame_rgb: np.ndarray) -> None:
        """An image for a push:// camera; raises NotPushable or SourceError."""

    @abstractmethod
    def change_thresholds(self, change: Callable[[Manifest], Manifest], persist: bool,
                          who: str) -> Future: ...

    @abstractmethod
    def reload(self, bundle_path: str | Path | None) -> Future: ...


class PipelinePort(ServicePort):
    """The port of a real pipeline (and of the Jetson telemetry thread started with it)."""

    def __init__(self, pipeline: Pipeline, telemetry=None, chains=None):
        self.pipeline = pipeline  # for tests and benchmarks; front ends use the methods
        self._telemetry = telemetry
        self._chains = chains  # publish.chain.ChainBook, with chain: in the config

    def start(self) -> None:
        self.pipeline.start()
        if self._telemetry is not None:
            self._telemetry.start()

    def stop(self) -> None:
        if self._telemetry is not None:
            self._telemetry.stop()
        self.pipeline.stop()

    def cameras(self) -> tuple[str, ...]:
        return tuple(self.pipeline.cameras)

    def push_cameras(self) -> tuple[str, ...]:
        p = self.pipeline
        return tuple(n for n in p.cameras if n in p.event_driven)

    def camera_source(self, camera: str) -> str:
        return self.pipeline.cameras[camera].uri

    def latest(self, camera: str | None = None) -> Latest | None:
        result = self.pipeline.store.latest(camera)
        if result is None:
            return None
        return Latest(result, self.pipeline.staleness(result, time.time()))

    def results_after(self, seq: int, limit: int) -> dict:
        store, journal = self.pipeline.store, self.pipeline.store.journal
        try:
            now = time.time()
            items = [r.to_json(now) for r in store.after(seq, limit)]
        except Evicted as exc:
            # Older than the ring: the journal has them unless retention dropped them too.
            oldest = journal.oldest_seq() if journal else None
            if oldest is None or seq < oldest - 1:
                raise Gone(oldest if oldest is not None else exc.oldest_seq) from None
            items = journal.after(seq, limit)
        if self._chains is not None and items:
            found = self._chains.get_many([i["seq"] for i in items])
            for item in items:
                if item["seq"] in found:
                    item["chain"] = found[item["seq"]]
        page = {"results": items, "last_seq": store.last_seq, "boot_id": store.boot_id}
        if journal is not None:
            # seqs a crash reserved but never served: said, so a gateway never waits for them
            upto = items[-1]["seq"] if len(items) == limit else store.last_seq
            page["never_served"] = journal.gaps(seq, upto)
        return page

    def result_for_part(self, part_id: str) -> dict | None:
        store = self.pipeline.store
        found = store.by_part(part_id)
        body = found.to_json() if found is not None else \
            (store.journal.by_part(part_id) if store.journal is not None else None)
        if body is None:
            return None
        return {"results": [body], "last_seq": store.last_seq, "boot_id": store.boot_id}

    def chains(self, seqs: list[int]) -> dict[int, dict]:
        return self._chains.get_many(seqs) if self._chains is not None else {}

    def served(self) -> Served:
        model = self.pipeline.model  # one read: info, manifest and path of the same model
        return Served(model.info, model.manifest, model.bundle_path)

    def engine_state(self) -> tuple[bool, str | None]:
        worker = self.pipeline.worker
        return worker.ready.is_set(), worker.error

    def readiness(self) -> tuple[bool, list[str]]:
        return self.pipeline.readiness()

    def liveness(self) -> tuple[bool, list[str]]:
        return self.pipeline.supervisor.liveness()

    def camera_ready(self, camera: str) -> tuple[bool, str | None]:
        worker = self.pipeline.worker
        if not worker.ready.is_set():
            return False, worker.error or "engine not loaded yet"
        why = self.pipeline.camera_problem(camera, time.time())
        return why is None, why

    def recipes(self) -> dict | None:
        p = self.pipeline
        if p.options.recipes is None:
            return None
        return {"default": p.options.recipes.default, "recipes": p.options.recipes.summary(),
                "selected": dict(p.selected), "warm": sorted(p.warm), "loading": dict(p.recipe_loading)}

    def status(self) -> dict:
        p = self.pipeline
        model = p.model
        m = model.manifest
        ready, reasons = p.readiness()
        journal = p.store.journal
        return {
            "ready": ready, "not_ready_reasons": reasons,
            "model": {**model.info, "input": m.input.model_dump(), "threshold": m.thresholds.image.threshold},
            "engine": {"backend": model.engine.name, "provider": model.engine.provider,
                       "error": p.worker.error},
            "cameras": [{"name": c.name, "source": c.uri, "up": c.up, "ended": c.ended,
                         "error": c.error, "frames_captured": c.frames, "reconnects": c.reconnects,
                         "frames_dropped": p.slots[c.name].dropped_count,
                         "fps": round(1.0 / c.period_s, 2) if c.period_s else None,
                         "drift": p.drift.state(c.name).to_json(),
                         "recipe": p.selected.get(c.name)}
                        for c in p.cameras.values()],
            "frames_processed": p.processed,
            "last_seq": p.store.last_seq,
            "boot_id": p.store.boot_id,
            "journal": None if journal is None else {
                "written": journal.written, "failed_writes": journal.failed_writes,
                "error": journal.last_error},
        }

    def view(self, camera: str) -> View | None:
        return self.pipeline.views.latest(camera)

    def view_by_seq(self, seq: int) -> View | None:
        return self.pipeline.views.by_seq(seq)

    def submit(self, frame_rgb: np.ndarray) -> Future:
        return self.pipeline.submit(frame_rgb)

    def trigger(self, camera: str, part_id: str | None, timeout_s: float, lot_id: str | None = None) -> Future:
        return self.pipeline.trigger(camera, part_id, timeout_s, lot_id)

    def select_recipe(self, camera: str, recipe: int) -> Future:
        return self.pipeline.select_recipe(camera, recipe)

    def push(self, camera: str, frame_rgb: np.ndarray) -> None:
        source = self.pipeline.sources[camera]
        if not source.event_driven:
            raise NotPushable(f"camera {camera!r} does not read push://")
        source.push(frame_rgb)  # raises SourceError when the camera is closed or busy

    def change_thresholds(self, change: Callable[[Manifest], Manifest], persist: bool,
                          who: str) -> Future:
        return self.pipeline.change_thresholds(change, persist, who)

    def reload(self, bundle_path: str | Path | None) -> Future:
        path = bundle_path or self.pipeline.model.bundle_path
        if path is None:
            raise ValueError('no bundle path: give {"path": ...}')
        return self.pipeline.reload(path)
