"""The supervisor thread: what must keep happening when the inference worker does not.

A thread stuck inside a native ONNX Runtime or TensorRT call cannot be stopped from Python. The
way chosen here is to *abandon* it: after ``hang_timeout_s`` in one engine call, the frames it
holds are answered FAULT ("engine hung"), a new worker thread is started that loads a fresh
engine from the bundle (activate and warm-up on its own thread, as a CUDA context requires),
and the stuck thread, should its call ever return, publishes nothing and frees its own engine.
Every abandoned thread is counted (``edge_ad_engine_hangs_total``). A process holding more than
``MAX_ABANDONED`` of them, or one whose fresh engine fails to load, is no longer alive:
``/healthz`` fails and the orchestrator restarts it. (The alternative, the engine in a
subprocess killed on a hang, costs a copy of every frame across processes on the Jetson's
shared memory; abandoning costs only the stuck thread's memory until the restart.)

The camera watchdog and the trigger deadlines run here too, so that a hung worker cannot keep a
dead camera "up" or a trigger unanswered.
"""
from __future__ import annotations

import logging
import threading
import time

from ..decision.judge import Unjudged
from ..decision.verdict import FAULT

log = logging.getLogger(__name__)
TICK_S = 0.25
MAX_ABANDONED = 3


class Supervisor:
    """Owns the supervisor thread, the count of abandoned workers and the liveness verdict."""

    def __init__(self, pipeline, hang_timeout_s: float):
        self.pipeline = pipeline
        self.hang_timeout_s = hang_timeout_s
        self.last_tick_mono = time.monotonic()
        self.abandoned = 0
        self.failure: str | None = None  # why the pipeline can no longer recover
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        p = self.pipeline
        while not p.stopping.wait(TICK_S):
            self.last_tick_mono = time.monotonic()
            try:
                p.watchdog()
                for trig in p.triggers.expired(time.time()):
                    p.fault_trigger(trig)
                self._check_hang()
            except Exception:  # the supervisor must outlive anything it looks at
                log.exception("supervisor tick failed")

    def _check_hang(self) -> None:
        p = self.pipeline
        busy = p.worker.busy_since_mono
        if busy is None or time.monotonic() - busy < self.hang_timeout_s:
            return
        frames = p.worker.abandon()
        if frames is None:  # the call returned meanwhile
            return
        self.abandoned += 1
        stuck = time.monotonic() - busy
        p.metrics.engine_hangs.inc()
        log.error("engine call hung for %.1f s: worker abandoned (%d so far), starting a fresh engine",
                  stuck, self.abandoned)
        for frame in frames:
            p.deliver(frame, Unjudged(FAULT, f"engine hung for {stuck:.1f} s; the engine is being restarted",
                                      "ENGINE"))
        if self.abandoned > MAX_ABANDONED:
            self.failure = (f"{self.abandoned} engine calls hung since start; restart the process "
                            "(each stuck thread holds its memory)")

    def liveness(self) -> tuple[bool, list[str]]:
        reasons = []
        silent = time.monotonic() - self.last_tick_mono
        if silent > max(5.0, 20 * TICK_S):
            reasons.append(f"supervisor silent for {silent:.1f} s")
        if self.failure:
            reasons.append(self.failure)
        if self.pipeline.worker.recovery_error:
            reasons.append(self.pipeline.worker.recovery_error)
        worker = self.pipeline.worker
        if worker.started and not worker.alive and not self.pipeline.stopping.is_set() and not worker.recovery_error:
            reasons.append(f"the inference worker stopped: {worker.error or 'see the log'}")
        return not reasons, reasons
