import json
import time

import numpy as np

from edge_ad.bundle import Normalization
from edge_ad.decision import Region
from edge_ad.publish.evidence import EvidenceStore, export_mvtec
from edge_ad.decision.scoring import Inspection
from edge_ad.publish import Publication
from edge_ad.decision.result import Result


def _item(seq, verdict, size=64):
    rng = np.random.default_rng(seq)
    frame = rng.integers(0, 255, (size, size, 3), np.uint8)
    map_norm = np.zeros((32, 32), np.float32)
    map_norm[4:10, 4:10] = 0.9 if verdict == "NG" else 0.0
    ins = Inspection(verdict, 0.9, 2.0, 1.0, (), map_norm, Normalization(threshold=0.5, scale=0.5), 0, 0, 0)  # raw = normalized
    regions = (Region((8, 8, 12, 12), 144, 0.9),) if verdict == "NG" else ()
    res = Result(seq, "cam0", seq, time.time(), time.time(), verdict, 0.9, 2.0, 1.0, {"name": "m"}, regions)
    return Publication(res, frame, ins, manifest=None)  # evidence reads no manifest


def _drain(store):
    store.close()


def test_saves_rejects_and_samples_ok(tmp_path):
    store = EvidenceStore(tmp_path / "ev", quota_bytes=10**9, ok_every=10)
    store.start()
    for seq, verdict in [(1, "OK"), (2, "NG"), (3, "INVALID"), (10, "OK")]:
        store.publish(_item(seq, verdict))
    _drain(store)
    names = sorted(p.name for p in (tmp_path / "ev").iterdir())
    assert "000000000002_cam0_NG.png" in names and "000000000002_cam0_NG_mask.png" in names
    assert "000000000003_cam0_INVALID.json" in names and "000000000010_cam0_OK.png" in names
    assert not any(n.startswith("000000000001_") for n in names)  # OK, not sampled
    sidecar = json.loads((tmp_path / "ev" / "000000000002_cam0_NG.json").read_text())
    assert sidecar["seq"] == 2 and sidecar["regions"][0]["bbox"] == [8, 8, 12, 12]


def test_quota_evicts_oldest_first(tmp_path):
    store = EvidenceStore(tmp_path / "ev", quota_bytes=100_000, ok_every=0)
    store.start()
    for seq in range(1, 30):
        store.publish(_item(seq, "NG", size=96))
    _drain(store)
    files = sorted((tmp_path / "ev").iterdir())
    assert sum(p.stat().st_size for p in files) <= 100_000
    seqs = sorted({int(p.name[:12]) for p in files})
    assert seqs[-1] == 29 and seqs[0] > 1  # the newest kept, the oldest gone


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path):
    store = EvidenceStore(tmp_path / "ev", quota_bytes=10**9, queue_size=2)  # writer not started
    t0 = time.perf_counter()
    for seq in range(1, 6):
        store.publish(_item(seq, "NG"))
    assert time.perf_counter() - t0 < 0.5 and store.dropped == 3


def test_export_in_mvtec_layout(tmp_path):
    store = EvidenceStore(tmp_path / "ev", quota_bytes=10**9, ok_every=1)
    store.start()
    for seq, verdict in [(1, "OK"), (2, "NG"), (3, "INVALID")]:
        store.publish(_item(seq, verdict))
    _drain(store)
    counts = export_mvtec(tmp_path / "ev", tmp_path / "out")
    assert counts == {"good": 1, "ng": 1, "invalid": 1}
    out = tmp_path / "out"
    assert (out / "train/good/000000000001_cam0_OK.png").is_file()
    assert (out / "test/ng/000000000002_cam0_NG.png").is_file()
    assert (out / "ground_truth/ng/000000000002_cam0_NG_mask.png").is_file()
    assert (out / "invalid/000000000003_cam0_INVALID.png").is_file()
