"""Per-result Prometheus updates (verdicts, scores, stage latencies) and the drift guard per
camera, off the inference worker's thread."""
from __future__ import annotations

import threading

from ..decision.drift import DRIFT, DriftGuard, DriftState
from .base import Publication, Publisher


class LineMetrics(Publisher):
    """Owns nothing but the updates: the instruments belong to ``Metrics``. Inline: a dozen
    in-memory counter and histogram updates (about 0.1 ms) cost the worker less than waking a
    thread for them (measured with edge-ad bench, docs/benchmarks.md)."""

    name = "metrics"

    def __init__(self, metrics):
        self.metrics = metrics

    def publish(self, item: Publication) -> None:
        m, r, ins = self.metrics, item.result, item.inspection
        m.frames_processed.labels(r.camera).inc()
        m.verdicts.labels(r.camera, r.verdict).inc()
        m.frame_age.labels(r.camera).set(r.published_at - r.captured_at)
        if ins is not None:
            m.stage_latency.labels("preprocess").observe(ins.preprocess_s)
            m.stage_latency.labels("infer").observe(ins.infer_s)
            m.stage_latency.labels("postprocess").observe(ins.postprocess_s)
            m.score.labels(r.camera).observe(ins.score)
            m.margin.labels(r.camera).set(ins.score - 0.5)
            m.threshold.set(ins.threshold)
        if "end_to_end" in r.latency_ms:
            m.stage_latency.labels("end_to_end").observe(r.latency_ms["end_to_end"] / 1000)


class DriftMonitor(Publisher):
    """Owns one DriftGuard per camera, fed every inspected raw score; a result from another model
    (a reload) starts the guards afresh from that model's calibration scores. Inline: an append,
    and every 10th score a KS statistic (about 0.1 ms), cheaper than a thread's wake-up."""

    name = "drift"

    def __init__(self, cameras, params: dict | None, metrics):
        self.metrics = metrics
        self._cameras, self._params = tuple(cameras), params or {}
        self._lock = threading.Lock()
        self._guards: dict[str, DriftGuard] = {}
        self._model: dict[str, dict | None] = {}  # per camera: the model its guard describes

    def reset(self, normal_scores, model: dict | None = None, camera: str | None = None) -> None:
        """Start a camera's guard afresh (every camera's when ``camera`` is None): at start, and
        for another model's results (a reload, or a recipe switch on that camera)."""
        with self._lock:
            for c in self._cameras if camera is None else (camera,):
                self._model[c] = model
                self._guards[c] = DriftGuard(normal_scores, **self._params)

    def publish(self, item: Publication) -> None:
        if item.inspection is None:
            return
        camera = item.result.camera
        if item.result.model is not self._model.get(camera):  # a new model_info dict: a reload or a recipe
            self.reset(item.manifest.calibration.normal_scores, item.result.model, camera)
        with self._lock:
            state = self._guards[camera].add(item.inspection.raw_score)
        if state is not None and state.statistic is not None:
            self.metrics.drift_statistic.labels(item.result.camera).set(state.statistic)
            self.metrics.drift_detected.labels(item.result.camera).set(int(state.state == DRIFT))

    def state(self, camera: str) -> DriftState | None:
        with self._lock:
            guard = self._guards.get(camera)
            return guard.state if guard is not None else None
