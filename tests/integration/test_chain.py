"""Model chaining on the real pipeline: NG frames go to the checked-in defect-type classifier
(tests/fixtures/runtime/make_classifier.py) or to an HTTP endpoint; the answer is a record of
its own, journaled, shown with its result, and published on MQTT's ``{topic}/chain``."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from edge_ad.assembly import build_service
from edge_ad.bundle import load_bundle
from edge_ad.config import build_config
from edge_ad.errors import BundleError
from edge_ad.imageio import read_image
from edge_ad.prometheus import Metrics
from edge_ad.publish.chain_stage import ClassifierStage
from tests.runtime_data import DEFECTS, FIXTURES

from .helpers import wait_for
from .test_publish_outputs import Broker, Subscriber, _free_port

CLASSIFIER = FIXTURES / "classifier"


def _service(bundle_dir, tmp_path, chain, publish=()):
    config = build_config({"model": str(bundle_dir), "cameras": [{"name": "rig", "source": "push://"}],
                           "results": {"journal": str(tmp_path / "journal.sqlite")}, "chain": chain,
                           "publish": list(publish)})
    service = build_service(config, Metrics())
    service.start()
    wait_for(lambda: service.engine_state()[0], timeout=30)
    return service


def _push(service, image, part_id):
    future = service.trigger("rig", part_id, 10.0)
    service.push("rig", image)
    return future.result(20)


def _defects(demo_root):
    return [(d, read_image(p)) for d in DEFECTS for p in sorted((demo_root / "wood" / "test" / d).glob("*.png"))]


def test_ng_results_get_the_defect_type_from_the_chained_classifier(bundle_dir, demo_root, tmp_path):
    service = _service(bundle_dir, tmp_path, {"on": ["NG"], "stage": str(CLASSIFIER)})
    truth = {}
    try:
        good = _push(service, read_image(sorted((demo_root / "wood" / "test" / "good").glob("*.png"))[0]), "G")
        assert good.verdict == "OK"
        for i, (defect, image) in enumerate(_defects(demo_root)):
            r = _push(service, image, f"D{i}")
            if r.verdict == "NG":
                truth[r.seq] = defect
        assert len(truth) >= 10  # the detector finds most demo defects (one faint stain passes)
        wait_for(lambda: len(service.chains(list(truth))) == len(truth), timeout=30)
        page = service.results_after(good.seq - 1, 100)
    finally:
        service.stop()
    by_seq = {item["seq"]: item for item in page["results"]}
    assert "chain" not in by_seq[good.seq]  # OK results are not chained
    right = 0
    for seq, defect in truth.items():
        chain = by_seq[seq]["chain"]
        assert chain["seq"] == seq and chain["stage"] == "defect-type v1" and "error" not in chain
        assert chain["label"] in DEFECTS and 0 < chain["confidence"] <= 1 and chain["latency_ms"] >= 0
        boxes = {tuple(r["bbox"]) for r in by_seq[seq]["regions"]}
        assert chain["regions"] and {tuple(r["bbox"]) for r in chain["regions"]} <= boxes
        right += chain["label"] == defect
    assert right >= 0.75 * len(truth), f"{right} of {len(truth)} defect types right"

    # the result itself never changed, and the record outlives a restart (journal)
    service = _service(bundle_dir, tmp_path, {"on": ["NG"], "stage": str(CLASSIFIER)})
    try:
        again = service.results_after(min(truth) - 1, 1)["results"][0]
        assert again["chain"] == by_seq[min(truth)]["chain"]
        assert {k: v for k, v in again.items() if k not in ("age_ms", "chain")} == \
            {k: v for k, v in by_seq[min(truth)].items() if k not in ("age_ms", "chain")}
    finally:
        service.stop()


class Endpoint:
    """An inference server on loopback: answers a label, or is too slow on purpose."""

    def __init__(self, delay_s: float = 0.0):
        self.delay_s, self.images = delay_s, 0
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.port = _free_port()

        async def classify(request):
            body = await request.read()
            assert body[:8] == b"\x89PNG\r\n\x1a\n"
            self.images += 1
            await asyncio.sleep(self.delay_s)
            return web.json_response({"label": "dent", "confidence": 0.8})

        async def go():
            app = web.Application()
            app.router.add_post("/classify", classify)
            self.runner = web.AppRunner(app)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        asyncio.run_coroutine_threadsafe(go(), self.loop).result(10)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/classify"

    def close(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.mark.parametrize("delay_s", [0.0, 1.5])
def test_an_http_stage_answers_or_times_out_without_holding_up_the_line(bundle_dir, demo_root, tmp_path, delay_s):
    endpoint = Endpoint(delay_s)
    service = _service(bundle_dir, tmp_path, {"on": ["NG"], "stage": endpoint.url, "input": "frame",
                                              "timeout_s": 0.5})
    try:
        hole = read_image(sorted((demo_root / "wood" / "test" / "hole").glob("*.png"))[0])
        t0 = time.monotonic()
        seqs = [_push(service, hole, f"H{i}").seq for i in range(3)]
        line_s = time.monotonic() - t0
        wait_for(lambda: len(service.chains(seqs)) == 3, timeout=30)
        records = service.chains(seqs)
    finally:
        service.stop()
        endpoint.close()
    assert line_s < 3 * max(delay_s, 0.5)  # the line never waited for the stage
    for seq in seqs:
        if delay_s == 0.0:
            assert records[seq]["label"] == "dent" and records[seq]["confidence"] == 0.8
        else:  # slower than chain.timeout_s: recorded as an error, the result stands
            assert "error" in records[seq] and "label" not in records[seq]
    assert endpoint.images >= 1


@pytest.mark.devtools  # the broker: make test installs Debian's mosquitto; the Jetson image has none
def test_chain_records_are_published_on_the_chain_topic(bundle_dir, demo_root, tmp_path):
    broker = Broker(tmp_path, _free_port())
    broker.start()
    subscriber = Subscriber(broker.port, ["edge-ad/line/#"])
    mqtt = {"type": "mqtt", "url": f"mqtt://127.0.0.1:{broker.port}", "topic": "edge-ad/line/{camera}",
            "outbox": str(tmp_path / "mqtt.sqlite")}
    service = _service(bundle_dir, tmp_path, {"on": ["NG"], "stage": str(CLASSIFIER)}, [mqtt])
    try:
        hole = read_image(sorted((demo_root / "wood" / "test" / "hole").glob("*.png"))[0])
        r = _push(service, hole, "H")
        assert r.verdict == "NG"
        wait_for(lambda: any(t == "edge-ad/line/rig/chain" for t, _, _ in subscriber.messages), timeout=30)
        journaled = service.chains([r.seq])[r.seq]
    finally:
        service.stop()
        subscriber.close()
        broker.kill()
    chained = [m for t, m, _ in subscriber.messages if t == "edge-ad/line/rig/chain"]
    results = [m for t, m, _ in subscriber.messages if t == "edge-ad/line/rig"]
    assert chained[0] == journaled and chained[0]["seq"] == r.seq and chained[0]["label"] in DEFECTS
    assert r.seq in {m.get("seq") for m in results}  # the result itself on its own topic


def test_import_classifier_checks_labels_and_an_anomaly_model_refuses_a_classifier(bundle_dir, tmp_path):
    out = tmp_path / "cls"
    done = subprocess.run([sys.executable, "-m", "edge_ad.cli", "import-classifier", str(FIXTURES / "classifier.onnx"),
                           "--labels", "a,b,c,d", "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "4 labels" in done.stdout and ClassifierStage(out).classify([np.zeros((40, 50, 3), np.uint8)], 1)[0][0] in "abcd"
    bad = subprocess.run([sys.executable, "-m", "edge_ad.cli", "import-classifier", str(FIXTURES / "classifier.onnx"),
                          "--labels", "a,b,c", "--out", str(tmp_path / "bad")], capture_output=True, text=True)
    assert bad.returncode != 0 and "4 scores for 3 labels" in bad.stderr
    with pytest.raises(BundleError, match="classifier bundle"):
        load_bundle(out)
    assert json.loads((out / "manifest.json").read_text())["kind"] == "classifier"
    shutil.rmtree(out)
