"""A fake of the service port (edge_ad.pipeline.port.ServicePort): canned results and views, and
a record of every job asked of it. The server's handlers cannot tell it from the real one,
which is the point: they may use nothing else."""
from __future__ import annotations

import time
from concurrent.futures import Future

import numpy as np

from edge_ad.bundle import Manifest
from edge_ad.decision.result import Result
from edge_ad.pipeline.port import Gone, Latest, NotPushable, Served, ServicePort, UnknownRecipe
from edge_ad.pipeline.worker import ThresholdChange
from edge_ad.publish.views import View

MANIFEST = Manifest.model_validate({
    "name": "fake", "version": "7", "family": "patchcore", "created": "2026-12-02T00:00:00Z",
    "input": {"height": 64, "width": 64, "channels": 3, "color": "RGB"},
    "thresholds": {"image": {"threshold": 1.0, "scale": 0.5}, "pixel": {"threshold": 1.0, "scale": 0.5}},
    "provenance": {"onnx_sha256": "0" * 64}})


def result(seq: int, verdict: str = "OK", camera: str = "cam0", age_s: float = 0.0, part_id=None) -> Result:
    now = time.time()
    return Result(seq, camera, seq, now - age_s, now, verdict, 0.2 if verdict == "OK" else 0.9, 0.5, 1.0,
                  {"name": "fake", "version": "7", "family": "patchcore"}, part_id=part_id, boot_id="fakeboot")


class FakePort(ServicePort):
    def __init__(self, cameras=("cam0",), push=()):
        self._cameras, self._push = tuple(cameras), tuple(push)
        self.manifest = MANIFEST
        self.latest_result: Latest | None = None
        self.results: list[Result] = []
        self.oldest = 1  # below this, results are gone
        self.views: dict[str, View] = {}
        self.ready, self.reasons = True, []
        self.jobs: list[tuple] = []  # what was asked, in order
        self.started = self.stopped = False
        self.hold_triggers = False  # True: trigger futures wait in ``held`` for the test to answer
        self.held: list[Future] = []
        self.known_recipes = {1: "widget", 2: "gadget"}
        self.selected = {c: 1 for c in self._cameras}
        self.camera_reasons: dict[str, str] = {}  # camera -> why it is not ready

    def start(self):
        self.started = True

    def stop(self):
        self.stopped = True

    def cameras(self):
        return self._cameras

    def push_cameras(self):
        return self._push

    def camera_source(self, camera):
        return "push://" if camera in self._push else "testsrc://"

    def latest(self, camera=None):
        return self.latest_result

    def results_after(self, seq, limit):
        if seq < self.oldest - 1:
            raise Gone(self.oldest)
        items = [r.to_json() for r in self.results if r.seq > seq][:limit]
        return {"results": items, "last_seq": self.results[-1].seq if self.results else 0, "boot_id": "fakeboot"}

    def result_for_part(self, part_id):
        found = [r for r in self.results if r.part_id == part_id]
        return {"results": [found[-1].to_json()], "last_seq": 0, "boot_id": "fakeboot"} if found else None

    def chains(self, seqs):
        return {}

    def served(self):
        return Served({"name": "fake", "version": "7", "family": "patchcore"}, self.manifest, None)

    def engine_state(self):
        return self.ready, None if self.ready else "engine not loaded yet"

    def readiness(self):
        return self.ready, list(self.reasons)

    def liveness(self):
        return True, []

    def camera_ready(self, camera):
        why = self.camera_reasons.get(camera) or (None if self.ready else "engine not loaded yet")
        return why is None, why

    def recipes(self):
        return {"default": 1, "recipes": [{"recipe": n, "name": v, "bundle": f"/m/{v}"}
                                          for n, v in self.known_recipes.items()],
                "selected": dict(self.selected), "warm": sorted(self.known_recipes), "loading": {}}

    def select_recipe(self, camera, recipe):
        self.jobs.append(("recipe", camera, recipe))
        future: Future = Future()
        if camera not in self._cameras:
            future.set_exception(KeyError(f"no camera {camera!r}"))
            return future
        self.selected[camera] = recipe
        if recipe not in self.known_recipes:
            future.set_exception(UnknownRecipe(recipe, sorted(self.known_recipes)))
            return future
        future.set_result({"camera": camera, "recipe": recipe, "name": self.known_recipes[recipe],
                           "model": self.served().info, "loaded": False, "switch_ms": 0.1})
        return future

    def status(self):
        return {"ready": self.ready, "not_ready_reasons": list(self.reasons), "model": self.served().info,
                "engine": {"backend": "fake", "provider": "none", "error": None}, "cameras": [],
                "frames_processed": len(self.results), "last_seq": len(self.results), "boot_id": "fakeboot",
                "journal": None}

    def view(self, camera):
        return self.views.get(camera)

    def view_by_seq(self, seq):
        return next((v for v in self.views.values() if v.seq == seq), None)

    def _done(self, value) -> Future:
        future: Future = Future()
        future.set_result(value)
        return future

    def submit(self, frame_rgb):
        self.jobs.append(("submit", frame_rgb.shape))
        future: Future = Future()
        future.set_exception(RuntimeError("the fake port inspects nothing"))
        return future

    def trigger(self, camera, part_id, timeout_s, lot_id=None):
        self.jobs.append(("trigger", camera, part_id))
        if self.hold_triggers:
            future: Future = Future()
            self.held.append(future)
            return future
        return self._done(result(len(self.results) + 1, "NG", camera, part_id=part_id))

    def push(self, camera, frame_rgb):
        if camera not in self._push:
            raise NotPushable(camera)
        self.jobs.append(("push", camera, frame_rgb.shape))

    def change_thresholds(self, change, persist, who):
        before = self.manifest
        self.manifest = change(before)
        self.jobs.append(("thresholds", persist, who))
        return self._done(ThresholdChange(before, self.manifest, False))

    def reload(self, bundle_path):
        self.jobs.append(("reload", bundle_path))
        return self._done({"name": "fake", "version": "8", "family": "patchcore", "bundle": str(bundle_path)})


def frame(value: int = 128) -> np.ndarray:
    return np.full((64, 64, 3), value, np.uint8)
