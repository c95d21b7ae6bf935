"""Multiply-accumulates of a bundle's graph, counted from the shapes ONNX Runtime gives it, and
what they project to on a Jetson: a projection from the device's stated peak and an assumed
efficiency, not a measurement (TensorRT and a Jetson are not at hand here; measure with
`edge-ad bench` there).

    python bench/flops.py var/runs/wood/bundle
    python bench/flops.py var/hiresq/patchcore_tiled_wood/bundle --frame 2448x2048 --cpu-tiles-per-s 19.2

Counted: Conv (output elements x input channels per group x kernel area) and MatMul / Gemm
(output elements x the shared dimension), at batch 1: the ops that hold almost all of the
arithmetic. Elementwise ops, pooling, TopK and resizes are left out, so the count is a floor.

The projection divides the tile's FLOPs (2 per MAC) by the device's dense FP16 tensor peak
(PEAKS, derived from NVIDIA's stated sparse INT8 TOPS: dense is half, FP16 half again) times an
efficiency range. Small depthwise convolutions keep tensor cores far from their peak; 10-30 % is
the range assumed, and the figure should be read as an order of magnitude.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import onnx

# device: (dense FP16 TFLOPS, where the figure comes from)
PEAKS = {
    "Orin Nano 8GB (15 W, 625 MHz GPU)": (10.2, "40 sparse INT8 TOPS / 4"),
    "Orin Nano 8GB Super (25 W, 1020 MHz GPU)": (16.7, "67 sparse INT8 TOPS / 4"),
    "AGX Orin 64GB (60 W, GPU only)": (42.5, "170 sparse INT8 GPU TOPS / 4"),
}
EFFICIENCY = (0.10, 0.30)


def count_macs(path: Path) -> dict[str, int]:
    """MACs per op type of the graph at batch 1. The shapes are the ones ONNX Runtime really
    produces (shape inference alone stops at the teacher's computed padding): every Conv, MatMul
    and Gemm input and output is made a graph output and the graph is run once on a blank image."""
    import numpy as np
    import onnxruntime as ort

    model = onnx.load(str(path))
    nodes = [n for n in model.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    present = {o.name for o in model.graph.output}
    wanted = list(dict.fromkeys(x for n in nodes for x in (n.input[0], n.input[1], n.output[0])
                                if x not in inits and x not in present))
    model.graph.output.extend(onnx.ValueInfoProto(name=x) for x in wanted)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    dims = [d if isinstance(d, int) else 1 for d in first.shape]
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {first.name: np.zeros(dims, np.uint8)})
    shapes = {**inits, **{k: list(v.shape) for k, v in zip(names, values)}}
    macs: dict[str, int] = {}
    for node in nodes:
        out = shapes[node.output[0]]
        if node.op_type == "Conv":
            per_output = math.prod(shapes[node.input[1]][1:])  # input channels per group x kernel area
        else:
            per_output = shapes[node.input[0]][-1]
        macs[node.op_type] = macs.get(node.op_type, 0) + math.prod(out) * per_output
    return macs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--frame", help="WxH: project a tiled bundle's cost for frames of this size "
                                    "(default: the frame size in its manifest)")
    ap.add_argument("--cpu-tiles-per-s", type=float, help="a measured CPU rate (edge-ad bench's "
                    "raw_tiles_per_s), to state the CPU's effective FLOP rate beside the projection")
    args = ap.parse_args()
    from edge_ad.bundle import load_bundle
    from edge_ad.tiling import grid

    bundle = load_bundle(args.bundle)
    spec, tiling = bundle.manifest.input, bundle.manifest.tiling
    macs = count_macs(bundle.path / "model.onnx")
    per_call = sum(macs.values())
    print(f"{bundle.manifest.family}, {spec.width}x{spec.height} input: "
          + ", ".join(f"{k} {v / 1e9:.3f} GMAC" for k, v in sorted(macs.items()))
          + f"; {2 * per_call / 1e9:.2f} GFLOP a call")
    tiles = 1
    if tiling is not None or args.frame:
        w, h = (int(v) for v in args.frame.lower().split("x")) if args.frame else (tiling.frame_width, tiling.frame_height)
        overlap = tiling.overlap if tiling is not None else 0.25
        tiles = len(grid(h, w, spec.height, overlap))
        print(f"a {w}x{h} frame: {tiles} tiles at {overlap:.0%} overlap, {2 * per_call * tiles / 1e9:.1f} GFLOP a frame")
    flops = 2.0 * per_call * tiles
    if args.cpu_tiles_per_s:
        print(f"this CPU (measured {args.cpu_tiles_per_s:g} calls/s): {2 * per_call * args.cpu_tiles_per_s / 1e9:.1f} "
              f"GFLOP/s effective")
    print("PROJECTION (not measured): dense FP16 peak x efficiency "
          f"{EFFICIENCY[0]:.0%}-{EFFICIENCY[1]:.0%}")
    for device, (tflops, source) in PEAKS.items():
        fast, slow = (flops / (tflops * 1e12 * e) for e in (EFFICIENCY[1], EFFICIENCY[0]))
        print(f"  {device:42} {tflops:5.1f} TFLOPS ({source}): {1000 * fast:7.1f}-{1000 * slow:7.1f} ms "
              f"a frame, {1 / slow:5.1f}-{1 / fast:5.1f} frames/s")


if __name__ == "__main__":
    main()
