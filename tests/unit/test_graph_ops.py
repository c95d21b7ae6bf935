"""Every family's exported graph uses only what TensorRT's ONNX parser reads.

TensorRT cannot run here, so the graph is checked against the parser's published support
matrix (onnx/onnx-tensorrt, docs/operators.md): the op types, and the restrictions that apply to
the ops these graphs use (TopK's K and Slice's axes must be constants, Resize's modes).
"""
import onnx
import pytest
import torch

from export.models.base import create
from export.onnx_export import OPSET, export_onnx

# The part of the support matrix these graphs can plausibly emit; every entry is "Y" there.
TENSORRT_OPS = {
    "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant",
    "ConstantOfShape", "Conv", "Div", "Exp", "Gather", "Identity", "Log", "MatMul", "Max", "Min",
    "MaxPool", "Mul", "Pad", "Pow", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceSum", "Relu", "Reshape",
    "Resize", "Shape", "Slice", "Sqrt", "Sub", "Tanh", "TopK", "Transpose", "Unsqueeze",
}
RESIZE_MODES = {b"nearest", b"linear"}
RESIZE_TRANSFORMS = {b"half_pixel", b"pytorch_half_pixel", b"tf_half_pixel_for_nn", b"asymmetric", b"align_corners"}


def _constant_names(graph) -> set[str]:
    return ({i.name for i in graph.initializer}
            | {o for n in graph.node if n.op_type == "Constant" for o in n.output})


VARIANTS = [("efficientad", {}), ("rd", {}), ("fastflow", {}), ("flowfused", {}), ("patchcore", {}), ("knn", {}),
            ("fused", {}), ("knnplace", {}),
            ("patchcore", {"scales": "separate", "colour": True, "fuse": "calibrated"})]


@pytest.mark.parametrize("family,options", VARIANTS, ids=lambda v: v if isinstance(v, str) else
                         "-".join(map(str, v.values())) or "default")
def test_exported_graph_uses_only_what_tensorrt_parses(family, options, tmp_path):
    torch.manual_seed(0)
    extra = {"bank_size": 64, **options} if family in ("patchcore", "knn", "fused", "flowfused", "knnplace") else {}
    path = export_onnx(create(family, size=64, **extra), 64, 3, tmp_path / "model.onnx")
    proto = onnx.load(str(path))
    graph = proto.graph
    assert 9 <= OPSET <= 20  # TensorRT 10 reads opsets 9 to 20
    unsupported = {n.op_type for n in graph.node} - TENSORRT_OPS
    assert not unsupported, f"{family}: ops TensorRT's parser lacks: {sorted(unsupported)}"
    constants = _constant_names(graph)
    for node in graph.node:
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "TopK":
            assert node.input[1] in constants, f"{family}: TopK's K must be a constant"
        if node.op_type == "Slice" and len(node.input) > 3:
            assert node.input[3] in constants, f"{family}: Slice's axes must be a constant"
        if node.op_type == "Resize":
            assert attrs["mode"].s in RESIZE_MODES
            assert attrs["coordinate_transformation_mode"].s in RESIZE_TRANSFORMS
