"""Soak test: does the running service leak memory, file descriptors or threads?

    python bench/soak.py --minutes 30            # the real check, on var/runs/wood/bundle (make model)
    python bench/soak.py --minutes 30 --leak     # check that the harness flags a leaking build

It starts the real service (`edge-ad serve`) as its own process on a loopback port, with a
journal in a temporary folder, and keeps it busy the way a line would: GET /v1/result at 10 Hz
and GET /metrics at 1 Hz (latency and errors counted). Every 5 s it samples the service's
resident memory (VmRSS), open file descriptors and threads from /proc. MB here is 2**20 bytes.

The first 2 minutes (or the first fifth of a run shorter than 10 minutes) are warm-up: caches,
the allocator's arenas and lazily started threads settle there. After warm-up a least-squares
line is fitted to RSS over time. The verdict is FAIL when that slope would add more than 10 MB
in 30 minutes (slope > 1/3 MB/min), or when FDs or threads vary by more than 2 after warm-up;
the last line is `soak: PASS` or `soak: FAIL (reasons)`, and the exit code 0 or 1.

--leak sets EDGE_AD_SOAK_LEAK_MB_PER_MIN=1 for the service: edge_ad/soak_leak.py then holds on
to 1 MB more every minute. That switch exists only for this harness, so it can show that it
catches a leak. The verdict relies on the fitted slope, not on last-minus-first, which a single
allocator step can move by more than a short run's leak.

Memory that fills up to a bound reads as growth until it is full: with the default ring of
10 000 results (full after about 17 min at 10 fps) a clean build's slope was +0.99 MB/min over
a 1-minute run and +0.54 MB/min over 2 minutes, where --leak measured +1.54 (the leak's +1.0
on top). The service therefore runs from a config (JSON is YAML) with a ring of RING results,
full within the warm-up, and a journal; the figures of the 30-minute runs are in
docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

RING = 1000  # results in memory: full after 100 s at 10 fps, inside the 2-minute warm-up

ROOT = Path(__file__).resolve().parent.parent
POLL_S, SCRAPE_S, SAMPLE_S = 0.1, 1.0, 5.0
READY_TIMEOUT_S, STOP_TIMEOUT_S = 120.0, 15.0
SLOPE_LIMIT_MB_PER_MIN = 10.0 / 30.0  # 10 MB over a 30-minute shift
RANGE_LIMIT = 2  # FDs / threads may come and go by this many (a reconnect, a worker)
LEAK_ENV = "EDGE_AD_SOAK_LEAK_MB_PER_MIN"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _python() -> str:
    # the project's interpreter even when this script runs under another one
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _get(url: str, timeout: float) -> int:
    """Status code of a GET, with the body read through (as a real client would)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as fh:
        return dict(line.split(":", 1) for line in fh if ":" in line)


def _sample(pid: int, t: float) -> dict:
    status = _proc_status(pid)
    return {"t_s": round(t, 2), "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
            "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": int(status["Threads"])}


def _start_service(bundle: str, source: str, port: int, workdir: str, leak: bool) -> tuple[subprocess.Popen, Path]:
    env = dict(os.environ)
    env.pop(LEAK_ENV, None)  # only --leak may switch it on
    if leak:
        env[LEAK_ENV] = "1"
    log = Path(workdir) / "serve.log"
    config = Path(workdir) / "soak.yaml"
    # the ring of recent results fills up to its bound and reads as growth until then: a ring of
    # RING results is full within the warm-up at 10 fps, so what grows after it is a leak
    config.write_text(json.dumps({"model": str(Path(bundle).resolve()), "cameras": [{"source": source}],
                                  "server": {"port": port},
                                  "results": {"journal": str(Path(workdir) / "journal.sqlite"), "ring_size": RING}}))
    cmd = [_python(), "-m", "edge_ad.cli", "serve", "--config", str(config)]
    with open(log, "wb") as fh:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    return proc, log


def _log_tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _wait_ready(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"soak: the service exited with code {proc.returncode} before it was ready:\n"
                             + _log_tail(log))
        try:
            if _get(base + "/readyz", timeout=2) == 200:
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.5)
    raise SystemExit(f"soak: /readyz did not answer 200 within {READY_TIMEOUT_S:.0f} s:\n" + _log_tail(log))


def _stop_service(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class _Load:
    """The requests and samples of one run, on one thread: a due time per kind of work, so no
    kind can starve another for long and nothing outlives the run."""

    def __init__(self, base: str, pid: int):
        self.base, self.pid = base, pid
        self.latencies_ms: list[float] = []
        self.counts = {"poll_errors": 0, "poll_non200": 0, "scrapes": 0, "scrape_errors": 0,
                       "scrape_non200": 0}
        self.samples: list[dict] = []

    def _request(self, path: str, kind: str, timeout: float) -> float:
        t = time.perf_counter()
        try:
            if _get(self.base + path, timeout) != 200:
                self.counts[f"{kind}_non200"] += 1
        except OSError:  # refused, reset, timed out
            self.counts[f"{kind}_errors"] += 1
        return (time.perf_counter() - t) * 1000

    def poll(self, t: float) -> None:
        self.latencies_ms.append(self._request("/v1/result", "poll", timeout=2.0))

    def scrape(self, t: float) -> None:
        self.counts["scrapes"] += 1
        self._request("/metrics", "scrape", timeout=5.0)

    def sample(self, t: float) -> None:
        self.samples.append(_sample(self.pid, t))
        if len(self.samples) % 12 == 1 and len(self.samples) > 1:  # a line a minute on long runs
            s = self.samples[-1]
            print(f"soak: {t / 60:.0f} min: RSS {s['rss_mb']:.1f} MB, {s['fds']} FDs, "
                  f"{s['threads']} threads", flush=True)

    def run(self, seconds: float, proc: subprocess.Popen) -> float:
        jobs = {self.poll: POLL_S, self.scrape: SCRAPE_S, self.sample: SAMPLE_S}
        t0 = time.monotonic()
        due = {job: t0 for job in jobs}
        while (now := time.monotonic()) - t0 < seconds and proc.poll() is None:
            job = min(due, key=due.get)
            if due[job] > now:
                time.sleep(min(due[job], t0 + seconds) - now)
                continue
            job(now - t0)
            # behind schedule (a slow answer): skip the missed slots rather than burst to catch up
            due[job] = max(due[job] + jobs[job], time.monotonic())
        if proc.poll() is None:
            self.sample(time.monotonic() - t0)  # the run's last state, not up to 5 s before it
        return time.monotonic() - t0


def warmup_s(minutes: float) -> float:
    return 120.0 if minutes >= 10 else minutes * 60 / 5


def analyse(samples: list[dict], latencies_ms: list[float], counts: dict, minutes: float) -> dict:
    warm = warmup_s(minutes)
    after = [s for s in samples if s["t_s"] >= warm]
    fig = {"minutes": minutes, "warmup_s": warm, "samples_after_warmup": len(after),
           "polls": len(latencies_ms), **counts}
    if latencies_ms:
        fig["poll_p50_ms"] = float(np.percentile(latencies_ms, 50))
        fig["poll_p99_ms"] = float(np.percentile(latencies_ms, 99))
    if len(after) >= 2:
        t_min = np.array([s["t_s"] for s in after]) / 60
        rss = np.array([s["rss_mb"] for s in after])
        slope = float(np.polyfit(t_min, rss, 1)[0])
        fig.update(rss_first_mb=float(rss[0]), rss_last_mb=float(rss[-1]),
                   rss_growth_mb=float(rss[-1] - rss[0]), rss_slope_mb_per_min=slope,
                   rss_slope_30min_mb=slope * 30)
        for key in ("fds", "threads"):
            fig[f"{key}_min"] = min(s[key] for s in after)
            fig[f"{key}_max"] = max(s[key] for s in after)
    return fig


def verdict(fig: dict) -> list[str]:
    """Reasons to fail; none is a pass."""
    reasons = []
    if fig.get("service_exit_during_run") is not None:
        reasons.append(f"the service exited during the run (code {fig['service_exit_during_run']})")
    if fig["samples_after_warmup"] < 2:
        return reasons + ["fewer than 2 samples after warm-up: run longer"]
    if fig["rss_slope_mb_per_min"] > SLOPE_LIMIT_MB_PER_MIN:
        reasons.append(f"RSS grows {fig['rss_slope_mb_per_min']:.2f} MB/min "
                       f"({fig['rss_slope_30min_mb']:.1f} MB in 30 min > 10)")
    for key, name in (("fds", "open FDs"), ("threads", "threads")):
        if fig[f"{key}_max"] - fig[f"{key}_min"] > RANGE_LIMIT:
            reasons.append(f"{name} vary {fig[f'{key}_min']}..{fig[f'{key}_max']} (> {RANGE_LIMIT})")
    return reasons


def table(fig: dict) -> str:
    rows = [("run", f"{fig['minutes']:g} min, warm-up {fig['warmup_s']:.0f} s, "
                    f"{fig['samples_after_warmup']} samples after it"
                    + (", leak switch on" if fig.get("leak") else ""))]
    if "rss_slope_mb_per_min" in fig:
        rows += [("RSS after warm-up", f"{fig['rss_first_mb']:.1f} -> {fig['rss_last_mb']:.1f} MB "
                                       f"({fig['rss_growth_mb']:+.1f} MB)"),
                 ("RSS slope (fit)", f"{fig['rss_slope_mb_per_min']:+.3f} MB/min = "
                                     f"{fig['rss_slope_30min_mb']:+.1f} MB / 30 min (limit 10)"),
                 ("open FDs after warm-up", f"{fig['fds_min']}..{fig['fds_max']}"),
                 ("threads after warm-up", f"{fig['threads_min']}..{fig['threads_max']}")]
    if "poll_p50_ms" in fig:
        rows.append(("GET /v1/result latency", f"p50 {fig['poll_p50_ms']:.2f} ms, p99 {fig['poll_p99_ms']:.2f} ms"))
    rows += [("GET /v1/result", f"{fig['polls']} polls, {fig['poll_errors']} errors, "
                                f"{fig['poll_non200']} non-200"),
             ("GET /metrics", f"{fig['scrapes']} scrapes, {fig['scrape_errors']} errors, "
                              f"{fig['scrape_non200']} non-200")]
    return "\n".join(["| figure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def _inputs(args) -> tuple[str, str]:
    bundle = Path(args.bundle).resolve()
    if not (bundle / "manifest.json").exists():
        raise SystemExit(f"soak: no model bundle at {bundle}: run `make model` first (or pass --bundle)")
    source = args.source or f"dir://{ROOT / 'var' / 'demo'}/wood/test/good?loop=1&fps=10"
    folder = source[len("dir://"):].split("?")[0] if source.startswith("dir://") else None
    if folder and not Path(folder).is_dir():
        raise SystemExit(f"soak: no images at {folder}: run `make demo` first (or pass --source)")
    return str(bundle), source


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, required=True)
    p.add_argument("--leak", action="store_true", help="run the deliberately leaking build (harness check)")
    p.add_argument("--out", help="write the figures to this JSON file")
    p.add_argument("--bundle", default=str(ROOT / "var" / "runs" / "wood" / "bundle"))
    p.add_argument("--source", help="default: dir://<repo>/var/demo/wood/test/good?loop=1&fps=10")
    p.add_argument("--port", type=int, help="default: a free loopback port")
    args = p.parse_args()
    bundle, source = _inputs(args)
    port = args.port or _free_port()
    base = f"http://127.0.0.1:{port}"

    with tempfile.TemporaryDirectory(prefix="edge-ad-soak-") as workdir:
        proc, log = _start_service(bundle, source, port, workdir, args.leak)
        try:
            _wait_ready(base, proc, log)
            print(f"soak: service ready on {base} (pid {proc.pid}); running {args.minutes:g} min", flush=True)
            load = _Load(base, proc.pid)
            load.run(args.minutes * 60, proc)
            died = proc.poll()
        finally:
            code = _stop_service(proc)
        leak_logged = "deliberately leaking build" in log.read_text(errors="replace")
        if died is not None:
            print("soak: the service's last log lines:\n" + _log_tail(log))

    fig = analyse(load.samples, load.latencies_ms, load.counts, args.minutes)
    fig.update(leak=args.leak, leak_logged_by_service=leak_logged, service_exit_during_run=died,
               service_exit_code=code)
    reasons = verdict(fig)
    fig["verdict"] = "FAIL" if reasons else "PASS"
    fig["reasons"] = reasons
    print(table(fig))
    if args.out:
        Path(args.out).write_text(json.dumps({**fig, "samples": load.samples}, indent=2))
    print("soak: PASS" if not reasons else f"soak: FAIL ({'; '.join(reasons)})")
    return 1 if reasons else 0


if __name__ == "__main__":
    sys.exit(main())
