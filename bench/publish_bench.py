"""What the outputs cost the line: the worker's rate and the pipeline's own CPU per frame with
no output, with the delivering outputs (MQTT to Debian's Mosquitto and a signed webhook), and
with those, the evidence store with event clips, and the chained classifier, over interleaved rounds.

    python bench/publish_bench.py var/runs/wood/bundle --data var/demo/wood/test

The service runs in this process (build_service, as `edge-ad serve` builds it) on a folder of
good and defective parts at 200 fps, so the worker never waits. The broker and the webhook
receiver run as processes of their own, so their work is not counted as the pipeline's.
"""
from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_ad.assembly import build_service  # noqa: E402
from edge_ad.commands.bench import _cpu_snapshot  # noqa: E402
from edge_ad.config import build_config  # noqa: E402
from edge_ad.imageio import image_files  # noqa: E402
from edge_ad.prometheus import Metrics  # noqa: E402

RECEIVER = """
import sys
from aiohttp import web
async def hook(request):
    await request.read()
    return web.Response(status=204)
app = web.Application()
app.router.add_post("/hook", hook)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""
CLASSIFIER = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "runtime" / "classifier"
PIPELINE_THREADS = ("capture", "inference", "supervisor", "publish-", "send-", "paho-mqtt-client-")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int) -> None:
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _parts(data: Path, out: Path) -> tuple[int, int]:
    """Good and defective test images side by side in one folder; returns (good, defective)."""
    good = defect = 0
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        for image in image_files(folder):
            shutil.copy(image, out / f"{folder.name}_{image.name}")
            good, defect = (good + 1, defect) if folder.name == "good" else (good, defect + 1)
    return good, defect


def _round(bundle: str, source: str, work: Path, outputs: list, evidence: bool, seconds: float) -> dict:
    raw = {"model": bundle, "cameras": [{"source": source}],
           "results": {"journal": str(work / "journal.sqlite")}, "publish": outputs}
    if evidence:  # with event clips, and the chained defect-type classifier on every NG
        raw["evidence"] = {"path": str(work / "evidence"), "quota_mb": 256, "clip_frames": 5, "clip_width": 256}
        raw["chain"] = {"on": ["NG"], "stage": str(CLASSIFIER)}
    service = build_service(build_config(raw, "bench"), Metrics())
    pipeline = service.pipeline
    service.start()
    try:
        if not pipeline.worker.ready.wait(60):
            raise RuntimeError(pipeline.worker.error or "engine did not start")
        time.sleep(1.0)
        me, worker, engine = threading.get_ident(), pipeline.worker.ident, pipeline.model.engine
        first, (cpu0, engine0) = pipeline.store.last_seq, _cpu_snapshot(engine, me, worker)
        t0 = time.perf_counter()
        time.sleep(seconds)
        last, (cpu1, engine1) = pipeline.store.last_seq, _cpu_snapshot(engine, me, worker)
        elapsed = time.perf_counter() - t0
        ng = sum(1 for r in pipeline.store.after(first, last - first) if r.verdict == "NG")
    finally:
        service.stop()
    n = max(1, last - first)
    own = sum(v - cpu0.get(k, 0.0) for k, v in cpu1.items() if k[1].startswith(PIPELINE_THREADS))
    return {"fps": n / elapsed, "cpu_ms_per_frame": (own - (engine1 - engine0)) / n * 1000, "ng_rate": ng / n}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle")
    p.add_argument("--data", required=True, help="an MVTec test split: good/ and defect folders")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--json")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="publish-bench-"))
    parts = tmp / "parts"
    parts.mkdir()
    good, defect = _parts(Path(args.data), parts)
    broker_port, hook_port = _port(), _port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen([shutil.which("mosquitto") or "mosquitto", "-c", str(conf)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(hook_port)])
    rows = {"none": [], "outputs": [], "all": []}
    try:
        _wait_listening(broker_port)
        _wait_listening(hook_port)
        source = f"dir://{parts}?loop=1&fps=200&preload=1"
        print(f"{good} good and {defect} defective parts in rotation; 'outputs': every result to MQTT "
              "and the webhook; 'all': also the evidence store (NG, INVALID, every 100th OK) with 5+5-frame "
              "event clips, and the chained classifier on every NG", flush=True)
        for r in range(args.rounds):
            for mode in ("none", "outputs", "all"):  # interleaved: the machine's drift hits all alike
                work = Path(tempfile.mkdtemp(dir=tmp))
                outputs = [] if mode == "none" else [
                    {"type": "mqtt", "url": f"mqtt://127.0.0.1:{broker_port}", "topic": "bench/{camera}",
                     "outbox": str(work / "mqtt.sqlite")},
                    {"type": "webhook", "url": f"http://127.0.0.1:{hook_port}/hook", "secret": "bench-secret-0123456789",
                     "outbox": str(work / "hook.sqlite")}]
                row = _round(args.bundle, source, work, outputs, mode == "all", args.seconds)
                rows[mode].append(row)
                print(f"round {r + 1}/{args.rounds} {mode:>7}: {row['fps']:.1f} fps, pipeline CPU "
                      f"{row['cpu_ms_per_frame']:.2f} ms/frame, NG {100 * row['ng_rate']:.0f} %", flush=True)
    finally:
        broker.terminate()
        receiver.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
    figures = {}
    for mode in ("none", "outputs", "all"):
        figures[f"fps_{mode}"] = statistics.median(r["fps"] for r in rows[mode])
        figures[f"cpu_ms_per_frame_{mode}"] = statistics.median(r["cpu_ms_per_frame"] for r in rows[mode])
        if mode != "none":  # within a round, side by side
            figures[f"fps_{mode}_over_none"] = statistics.median(
                a["fps"] / b["fps"] for a, b in zip(rows[mode], rows["none"]))
    figures["ng_rate"] = statistics.median(r["ng_rate"] for m in rows.values() for r in m)
    print("medians over rounds:")
    for k, v in figures.items():
        print(f"  {k:<24} {v:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({**figures, "rounds": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
