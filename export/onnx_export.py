"""The bundle graph: uint8 NHWC image batch in → raw map (N, H, W) + raw score (N,) out, with
every conversion and normalization inside, and its export to ONNX."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

OPSET = 17


class BundleGraph(nn.Module):
    def __init__(self, model: nn.Module, channels: int):
        super().__init__()
        self.model = model
        self.channels = channels

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image.permute(0, 3, 1, 2).float()
        if self.channels == 1:
            # A grayscale camera feeds the RGB-pretrained backbone the same plane three times.
            x = x.expand(-1, 3, -1, -1)
        return self.model(x)


def export_onnx(model: nn.Module, size: int, channels: int, path: Path, simplify: bool = False) -> Path:
    import onnx

    graph = BundleGraph(model.eval(), channels).eval()
    dummy = torch.zeros(1, size, size, channels, dtype=torch.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in torch 2.13 but exact and dependency-free.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph, (dummy,), str(path), opset_version=OPSET, dynamo=False,
            input_names=["image"], output_names=["anomaly_map", "score"],
            dynamic_axes={"image": {0: "batch"}, "anomaly_map": {0: "batch"}, "score": {0: "batch"}},
        )
    if simplify:
        simplify_graph(path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    return path


def simplify_graph(path: Path) -> None:
    """Constant folding and redundant-node removal by ONNX Runtime's basic optimizer, whose
    output uses standard ONNX ops only (the extended levels write ORT-specific fused ops that
    TensorRT cannot read). The parity gate then checks the simplified graph like any other."""
    import onnxruntime as ort

    tmp = path.with_name(path.stem + ".simplified.onnx")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(tmp)
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    tmp.replace(path)
