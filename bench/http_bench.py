"""HTTP under load while the pipeline runs at full rate, measured side by side in rounds.

    python bench/http_bench.py var/runs/wood/bundle --source "dir://$PWD/var/demo/wood/test/good?loop=1&fps=200&preload=1"

The service runs as its own process (`edge-ad serve`), as in production. A separate load
process sends GET /v1/result open-loop at a fixed rate (each request leaves at its scheduled
time whatever the previous ones did, and latency counts from that time, so a stalled server
cannot hide its queue), or holds MJPEG viewers open. Each round measures the pipeline's fps
idle, under the request load, and with the viewers, back to back.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

import numpy as np


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def _processed(base: str) -> int:
    return _get_json(base + "/v1/status")["frames_processed"]


async def _load(base: str, rate: float, seconds: float) -> dict:
    import aiohttp

    latencies, errors = [], 0
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter() + 0.05
        n = int(rate * seconds)

        async def one(i: int) -> None:
            nonlocal errors
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                async with session.get(base + "/v1/result") as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - due)

        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - start
    lat = np.asarray(latencies) * 1000
    return {"requests": n, "errors": errors, "achieved_rps": n / elapsed,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))}


async def _viewers(base: str, viewers: int, seconds: float) -> int:
    import aiohttp

    received = 0

    async def watch() -> None:
        nonlocal received
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/v1/stream.mjpg") as r:
                t_end = time.perf_counter() + seconds
                while time.perf_counter() < t_end:
                    chunk = await r.content.read(65536)
                    if not chunk:
                        break
                    received += chunk.count(b"--frame")

    await asyncio.gather(*(watch() for _ in range(viewers)))
    return received


def _wrk(base: str, rate: float, seconds: float) -> dict:
    """wrk (C) as the load: far less CPU than a Python client on the same cores. Each of its
    connections waits ``delay`` ms between requests, so the rate is paced, not flat out."""
    import re
    import shutil
    import tempfile

    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    connections = 8
    delay_ms = max(0.0, connections * 1000.0 / rate - 0.3)  # 0.3 ms: about one request's round trip
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(f"function delay() return {delay_ms:.2f} end\n")
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", fh.name,
                          base + "/v1/result"], capture_output=True, text=True).stdout
    os.unlink(fh.name)

    def ms(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "errors": int(non2xx.group(1)) if non2xx else 0,
            "achieved_rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": ms(pct["50"]), "p99_ms": ms(pct["99"])}


def _client(kind: str, base: str, arg: float, seconds: float, out) -> None:
    if kind == "wrk":
        out.put(_wrk(base, arg, seconds))
        return
    coro = _load(base, arg, seconds) if kind == "load" else _viewers(base, int(arg), seconds)
    t0, wall0 = os.times(), time.perf_counter()
    result = asyncio.run(coro)
    t1 = os.times()
    if isinstance(result, dict):  # the load generator's own CPU, in cores, on the same machine
        result["client_cpu_cores"] = (t1.user + t1.system - t0.user - t0.system) / (time.perf_counter() - wall0)
    out.put(result)


def _phase(base: str, seconds: float, kind: str | None = None, arg: float = 0) -> tuple[float, object]:
    """Pipeline fps over ``seconds`` while the client (if any) runs in its own process."""
    result = None
    proc = None
    if kind:
        q = mp.get_context("spawn").Queue()
        proc = mp.get_context("spawn").Process(target=_client, args=(kind, base, arg, seconds + 0.2, q))
        proc.start()
        time.sleep(0.6)  # let the client's interpreter start before the window opens
    n0, t0 = _processed(base), time.perf_counter()
    time.sleep(seconds)
    n1, t1 = _processed(base), time.perf_counter()
    if proc:
        result = q.get(timeout=120)
        proc.join(30)
    return (n1 - n0) / (t1 - t0), result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle")
    p.add_argument("--source", required=True)
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--viewers", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--client", choices=("python", "wrk"), default="python",
                   help="python: open-loop asyncio client; wrk: paced wrk connections (less client CPU)")
    p.add_argument("--threads", type=int, default=0, help="engine intra-op threads (0 = default)")
    p.add_argument("--json")
    args = p.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    import tempfile

    import yaml

    config = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    yaml.safe_dump({"model": os.path.abspath(args.bundle), "cameras": [{"source": args.source}],
                    "engine": {"threads": args.threads}, "server": {"port": port}}, config)
    config.close()
    server = subprocess.Popen([sys.executable, "-m", "edge_ad.cli", "serve", "--config", config.name],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                if _get_json(base + "/readyz")["ready"]:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        rows = []
        for r in range(args.rounds):
            idle, _ = _phase(base, args.seconds)
            loaded, load = _phase(base, args.seconds, "load" if args.client == "python" else "wrk", args.rate)
            watched, frames = _phase(base, args.seconds, "view", args.viewers)
            row = {"fps_idle": idle, "fps_under_requests": loaded, "fps_with_viewers": watched,
                   "fps_under_requests_over_idle": loaded / idle, "fps_with_viewers_over_idle": watched / idle,
                   "result_p50_ms": load["p50_ms"], "result_p99_ms": load["p99_ms"],
                   "achieved_rps": load["achieved_rps"], "request_errors": load["errors"],
                   "mjpeg_frames_received": frames}
            rows.append(row)
            print(f"round {r + 1}/{args.rounds}: idle {idle:.1f} fps | {load['achieved_rps']:.0f} req/s: "
                  f"p50 {load['p50_ms']:.2f} ms p99 {load['p99_ms']:.2f} ms, {loaded:.1f} fps "
                  f"(x{loaded / idle:.3f}) | {args.viewers} viewers: {watched:.1f} fps (x{watched / idle:.3f})",
                  flush=True)
        med = {k: round(statistics.median(row[k] for row in rows), 4) for k in rows[0]}
        print("medians over rounds:")
        for k, v in med.items():
            print(f"  {k:<30} {v}")
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"medians": med, "rounds": rows, "rate": args.rate, "viewers": args.viewers,
                       "client": args.client, "engine_threads": args.threads}, fh, indent=2)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(15)
        os.unlink(config.name)


if __name__ == "__main__":
    main()
