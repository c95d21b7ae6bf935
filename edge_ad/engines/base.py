"""Engine lifecycle: activate (load, allocate, warm up) → infer → deactivate (free).

Every backend takes the bundle's uint8 NHWC batch and returns the raw map (N, H, W) float32 and
the raw score (N,) float32; nothing about thresholds is known here.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np

from ..bundle import Bundle


class Engine(ABC):
    """Owns one loaded model on one backend, from ``activate`` to ``deactivate``."""

    name: str = ""
    options: tuple[str, ...] = ()  # the keyword options its constructor takes (engines.create_engine)

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.provider = "inactive"
        self.active = False
        self.cpu_s = 0.0  # CPU the calling threads spent inside infer (edge-ad bench subtracts it)
        self.calls = 0  # infer calls finished
        self.call_cpu0: float | None = None  # the caller's thread CPU clock when the current call began

    def activate(self) -> None:
        """Load, allocate and warm up; afterwards ``infer`` may be called. The order is the same
        for every backend (a template: backends implement ``_open``): an engine that fails its
        warm-up is freed again and never counts as active."""
        self._open()
        self.active = True
        try:
            self.warm_up()
        except Exception:
            self.deactivate()
            raise

    @abstractmethod
    def _open(self) -> None:
        """Load the model and allocate, and set ``provider``; raise on failure."""

    @abstractmethod
    def _infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ...

    @abstractmethod
    def deactivate(self) -> None:
        """Free every resource explicitly (not left to ``__del__``)."""

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        spec = self.bundle.manifest.input
        expected = (spec.height, spec.width, spec.channels)
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != expected:
            raise ValueError(f"engine input must be uint8 (N, {spec.height}, {spec.width}, "
                             f"{spec.channels}), got {batch.dtype} {batch.shape}")
        if not self.active:
            raise RuntimeError("engine used before activate()")
        self.call_cpu0 = cpu0 = time.thread_time()
        try:
            return self._infer(np.ascontiguousarray(batch))
        finally:
            self.cpu_s += time.thread_time() - cpu0
            self.call_cpu0 = None
            self.calls += 1

    def warm_up(self, runs: int = 2) -> None:
        spec = self.bundle.manifest.input
        dummy = np.zeros((1, spec.height, spec.width, spec.channels), np.uint8)
        for _ in range(runs):
            self.infer(dummy)

    def __enter__(self) -> "Engine":
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()
