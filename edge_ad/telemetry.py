"""Jetson telemetry from ``tegrastats``: a pure parser of one line, and a thread that feeds the
parsed values into Prometheus gauges. Runs only where ``tegrastats`` is on the PATH.

Handles JetPack 5/6 lines (``VDD_IN 5832mW/5852mW``, ``cpu@51.2C``, ``CPU [3%@729,off,...]``)
and older L4T lines (rails as ``POM_5V_IN 2196/2203`` in milliwatts, ``GR3D_FREQ 0%@76``).
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading

from .prometheus import Metrics

log = logging.getLogger(__name__)

_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_GPU = re.compile(r"\bGR3D_FREQ (\d+)%")
_TEMP = re.compile(r"\b([A-Za-z][\w-]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]+) (\d+)(?:mW)?/(\d+)(?:mW)?\b")


def parse_tegrastats(line: str) -> dict:
    """One tegrastats line → {ram_used_mb, ram_total_mb, cpu_load (list, None = core off),
    gpu_load, temperatures_c {sensor: °C}, power_mw {rail: current mW}}. Missing parts are
    absent; nothing is invented."""
    out: dict = {}
    if m := _RAM.search(line):
        out["ram_used_mb"], out["ram_total_mb"] = int(m.group(1)), int(m.group(2))
    if m := _CPU.search(line):
        loads = []
        for core in m.group(1).split(","):
            core = core.strip()
            loads.append(None if core == "off" or not core else int(core.split("%")[0]) / 100.0)
        out["cpu_load"] = loads
    if m := _GPU.search(line):
        out["gpu_load"] = int(m.group(1)) / 100.0
    # Core frequencies ("3%@729") never match: a temperature's name starts with a letter and its
    # value ends in C. -256C is how tegrastats marks a sensor that is not there.
    temps = {name.lower(): float(v) for name, v in _TEMP.findall(line) if float(v) > -200}
    if temps:
        out["temperatures_c"] = temps
    rails = {name: int(cur) for name, cur, _avg in _RAIL.findall(line)
             if name not in ("RAM", "SWAP", "GR3D_FREQ", "EMC_FREQ")}
    if rails:
        out["power_mw"] = rails
    return out


class TegrastatsThread(threading.Thread):
    """Reads ``tegrastats --interval MS`` and sets the Jetson gauges; ends with the service."""

    def __init__(self, metrics: Metrics, interval_ms: int = 1000):
        super().__init__(name="tegrastats", daemon=True)
        self.metrics, self.interval_ms = metrics, interval_ms
        self.proc: subprocess.Popen | None = None
        self._stop = threading.Event()

    @staticmethod
    def available() -> bool:
        return shutil.which("tegrastats") is not None

    def run(self) -> None:
        try:
            self.proc = subprocess.Popen(["tegrastats", "--interval", str(self.interval_ms)],
                                         stdout=subprocess.PIPE, text=True)
        except OSError as exc:
            log.warning("tegrastats could not start: %s", exc)
            return
        for line in self.proc.stdout:
            if self._stop.is_set():
                break
            self.publish(parse_tegrastats(line))

    def publish(self, values: dict) -> None:
        m = self.metrics
        if "ram_used_mb" in values:
            m.jetson_ram_used.set(values["ram_used_mb"] * 1024 * 1024)
        for i, load in enumerate(values.get("cpu_load", [])):
            if load is not None:
                m.jetson_cpu_load.labels(str(i)).set(load)
        if "gpu_load" in values:
            m.jetson_gpu_load.set(values["gpu_load"])
        for sensor, celsius in values.get("temperatures_c", {}).items():
            m.jetson_temperature.labels(sensor).set(celsius)
        for rail, mw in values.get("power_mw", {}).items():
            m.jetson_power.labels(rail).set(mw / 1000.0)

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
