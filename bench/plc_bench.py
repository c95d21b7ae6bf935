"""The PLC handshake's own cost, against the real servers on loopback.

    python bench/plc_bench.py [BUNDLE] [--handshakes 1000] [--fps 30]

`edge-ad serve` runs as its own process with both PLC servers and two recipes (copies of BUNDLE,
default the runtime tests' small detector). This process plays the PLC with the real pymodbus
and asyncua clients: for each handshake it writes a part id, raises TriggerRequest, polls
ResultReady as fast as the protocol answers, reads the result, acks and lowers its bits.

Per handshake, from the result's own record (GET /v1/results by seq, on the same clock):
- **overhead**: ResultReady seen by the PLC, minus the capture of the frame that answered the
  trigger, minus the engine's own time (``latency_ms.infer``). That is everything edge-ad adds:
  the slot, pre- and post-processing, the journal commit, the handshake and the protocol read.
- **frame wait**: the capture of that frame minus the trigger; set by the camera's rate, so
  reported apart.
Recipe switches are timed over HTTP (PUT /v1/recipe) and over Modbus (Recipe register written
until RecipeActive shows it). Medians and p99 are printed, per protocol.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "plc-bench-control-token"
POLL_S = 0.001  # the PLC's polling period (a PLC reads once a cycle; a busy loop here would
                # take a whole core of this 2-core machine from the service it measures)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _pct(values, q) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _row(name: str, ms: list[float]) -> str:
    return f"| {name} | {len(ms)} | {statistics.median(ms):.2f} | {_pct(ms, 99):.2f} | {max(ms):.2f} |"


async def _modbus_handshakes(port: int, n: int) -> list[tuple[float, float, int]]:
    from pymodbus.client import AsyncModbusTcpClient

    from edge_ad.plc.modbus import encode_text

    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
    assert await client.connect()
    out = []
    try:
        for i in range(n):
            await client.write_registers(0, encode_text(f"MB-{i}"), device_id=1)
            t_trigger = time.time()
            await client.write_coil(0, True, device_id=1)
            while not (await client.read_coils(4, count=1, device_id=1)).bits[0]:
                await asyncio.sleep(POLL_S)
            t_seen = time.time()
            regs = (await client.read_input_registers(0, count=10, device_id=1)).registers
            out.append((t_trigger, t_seen, regs[0] << 16 | regs[1], None))
            await client.write_coils(0, [False, True], device_id=1)  # lower TriggerRequest, ack
            await client.write_coil(1, False, device_id=1)
    finally:
        client.close()
    return out


async def _opcua_handshakes(endpoint: str, n: int) -> list[tuple[float, float, int]]:
    from asyncua import Client, ua

    client = Client(endpoint, timeout=5)
    await client.connect()
    out = []
    try:
        ns = await client.get_namespace_index("urn:edge-ad")
        node = {name: client.get_node(ua.NodeId(f"cam0.{name}", ns))
                for name in ("PartId", "TriggerRequest", "ResultReady", "ResultAck", "Seq")}

        async def write(name, value, vtype):
            await node[name].write_value(ua.DataValue(ua.Variant(value, vtype)))
        for i in range(n):
            await write("PartId", f"UA-{i}", ua.VariantType.String)
            t_trigger = time.time()
            await write("TriggerRequest", True, ua.VariantType.Boolean)
            while not (dv := await node["ResultReady"].read_data_value()).Value.Value:
                await asyncio.sleep(POLL_S)
            t_seen = time.time()
            seq = await node["Seq"].read_value()
            out.append((t_trigger, t_seen, seq, dv.SourceTimestamp.timestamp()))
            await write("TriggerRequest", False, ua.VariantType.Boolean)
            await write("ResultAck", True, ua.VariantType.Boolean)
            await write("ResultAck", False, ua.VariantType.Boolean)
    finally:
        await client.disconnect()
    return out


async def _modbus_recipe_switches(port: int, n: int) -> list[float]:
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
    assert await client.connect()
    times = []
    try:
        for i in range(n):
            target = 2 if i % 2 == 0 else 1
            t0 = time.perf_counter()
            await client.write_register(32, target, device_id=1)
            while (await client.read_input_registers(9, count=1, device_id=1)).registers[0] != target:
                pass
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        client.close()
    return times


def _figures(base: str, handshakes) -> dict[str, list[float]]:
    out = {"seen": [], "set": [], "pipeline": [], "wait": []}
    for t_trigger, t_seen, seq, t_set in handshakes:
        r = _http("GET", f"{base}/v1/results?after={seq - 1}&limit=1")["results"][0]
        assert r["seq"] == seq and r["verdict"] in ("OK", "NG"), r
        engine = r["latency_ms"]["infer"]
        out["seen"].append((t_seen - r["timestamp"]) * 1000 - engine)
        if t_set is not None:
            out["set"].append((t_set - r["timestamp"]) * 1000 - engine)
        out["pipeline"].append(r["latency_ms"]["end_to_end"] - engine)
        out["wait"].append((r["timestamp"] - t_trigger) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", nargs="?", default=str(ROOT / "tests/fixtures/runtime/bundle"))
    ap.add_argument("--images", default=str(ROOT / "tests/fixtures/runtime/demo/wood/test/good"))
    ap.add_argument("--handshakes", type=int, default=1000)
    ap.add_argument("--switches", type=int, default=100)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--poll-ms", type=float, default=1.0, help="the PLC's polling period")
    args = ap.parse_args()
    logging.getLogger("asyncua").setLevel(logging.ERROR)  # the client's notes on session timeouts
    global POLL_S
    POLL_S = args.poll_ms / 1000

    args.bundle, args.images = Path(args.bundle).resolve(), Path(args.images).resolve()
    work = Path(tempfile.mkdtemp(prefix="plc-bench-"))
    for name in ("widget", "gadget"):
        shutil.copytree(args.bundle, work / name)
    http_port, mb_port, ua_port = _free_port(), _free_port(), _free_port()
    endpoint = f"opc.tcp://127.0.0.1:{ua_port}/edge-ad"
    config = {"recipes": {"default": 1, 1: {"name": "widget", "model": str(work / "widget")},
                          2: {"name": "gadget", "model": str(work / "gadget")}},
              "cameras": [{"name": "cam0", "source": f"dir://{args.images}?loop=1&fps={args.fps}&preload=1"}],
              "results": {"journal": str(work / "journal.sqlite")},
              "server": {"port": http_port}, "security": {"token": TOKEN},
              "plc": {"modbus": {"port": mb_port}, "trigger_timeout_ms": 5000, "ack_timeout_s": 600,
                      "opcua": {"endpoint": endpoint, "allow_anonymous": True,
                                "certificate_dir": str(work / "certs")}}}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    log = open(work / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "edge_ad.cli", "serve", "--config", str(work / "config.yaml")],
                              stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}"
    try:
        for _ in range(300):
            try:
                if urllib.request.urlopen(base + "/readyz", timeout=1).status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("the service did not become ready:\n" + (work / "serve.log").read_text()[-2000:])
        time.sleep(2)  # the OPC UA server comes up after the HTTP listener
        print(f"bundle {args.bundle}, camera {args.fps:g} fps, {args.handshakes} handshakes a protocol, "
              f"the PLC polling every {args.poll_ms:g} ms\n")
        print("| figure | n | median ms | p99 ms | max ms |\n|---|---|---|---|---|")
        for protocol, run in (("modbus", lambda: _modbus_handshakes(mb_port, args.handshakes)),
                              ("opcua", lambda: _opcua_handshakes(endpoint, args.handshakes))):
            f = _figures(base, asyncio.run(run()))
            print(_row(f"{protocol}: capture → result judged, minus engine (the pipeline)", f["pipeline"]))
            if f["set"]:
                print(_row(f"{protocol}: capture → ResultReady set (its source timestamp), minus engine", f["set"]))
            print(_row(f"{protocol}: capture → ResultReady seen by the polling PLC, minus engine", f["seen"]))
            print(_row(f"{protocol}: trigger → capture (waiting for the next frame)", f["wait"]))
        http_switch, worker_switch = [], []
        for i in range(args.switches):
            t0 = time.perf_counter()
            done = _http("PUT", base + "/v1/recipe", {"camera": "cam0", "recipe": 2 if i % 2 == 0 else 1})
            http_switch.append((time.perf_counter() - t0) * 1000)
            worker_switch.append(done["switch_ms"])
        print(_row("recipe switch: PUT /v1/recipe round trip", http_switch))
        print(_row("recipe switch: on the worker (switch_ms)", worker_switch))
        print(_row("recipe switch: Modbus Recipe written → RecipeActive read",
                   asyncio.run(_modbus_recipe_switches(mb_port, args.switches))))
    finally:
        server.terminate()
        server.wait(20)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
