"""``edge-ad``: one entry point. Heavy imports happen inside each command so that ``--help`` is
instant. The runtime's commands are here; the export toolchain adds its own (train, export,
calibrate, demo-data, import-anomalib) through the ``edge_ad.commands`` entry point, so this
package never imports it (tests/unit/test_import_contract.py)."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from . import __version__
from .errors import EdgeAdError
from .plugins import load_all

# what the toolchain adds, named here only to say what to install when it is absent
TOOLCHAIN_COMMANDS = ("demo-data", "train", "export", "calibrate", "import-anomalib")


def _parser() -> tuple[argparse.ArgumentParser, dict]:
    p = argparse.ArgumentParser(prog="edge-ad", description="Visual anomaly detection at the edge.")
    p.add_argument("--version", action="version", version=f"edge-ad {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    ic = sub.add_parser("import-classifier", help="wrap an ONNX classifier into a bundle for chain: {stage: ...}")
    ic.add_argument("onnx", help="the classifier's ONNX file (input N x H x W x C or N x C x H x W)")
    ic.add_argument("--labels", required=True, help="class names, comma-separated, in the model's output order")
    ic.add_argument("--out", required=True, help="the bundle directory to write")
    ic.add_argument("--name", help="the bundle's name (default: the file's)")
    ic.add_argument("--size", type=int, help="input size when the graph's is dynamic (square)")
    ic.add_argument("--layout", choices=("NHWC", "NCHW"), help="default: read from the graph")
    ic.add_argument("--dtype", choices=("uint8", "float32"), help="default: read from the graph")
    ic.add_argument("--color", choices=("RGB", "BGR", "GRAY"), default="RGB")
    ic.add_argument("--scale", type=float, help="float32 inputs: pixel x scale first (1/255 = 0.00392157)")
    ic.add_argument("--mean", help="float32 inputs: per-channel mean after scaling, comma-separated")
    ic.add_argument("--std", help="float32 inputs: per-channel std after scaling, comma-separated")
    ic.add_argument("--outputs", choices=("logits", "probabilities"), default="logits")
    c = sub.add_parser("check", help="validate config, model, engine and sources, then exit")
    c.add_argument("--config", required=True)
    plugged = {}
    for register in load_all("edge_ad.commands").values():
        plugged.update(register(sub))
    return p, plugged


def _run(args: argparse.Namespace, plugged: dict) -> int:
    if args.command in plugged:
        return plugged[args.command](args)
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
        from .publish.evidence import export_mvtec

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
    if args.command == "verify":
        from .commands.verify import run_verify

        return run_verify(args.bundle, args.data, args.precision, args.checkpoint, args.calib, args.json,
                          args.record)
    if args.command == "build-engine":
        from .bundle import load_bundle
        from .engines.tensorrt_build import build_engine

        files = build_engine(load_bundle(args.bundle), args.precision, args.dla, args.workspace,
                             args.max_batch, args.calib)
        print(f"engine {files.plan} (key {files.key}); check it with: edge-ad verify {args.bundle} "
              f"--precision {args.precision}")
        return 0
    if args.command == "import-classifier":
        from .publish.chain_stage import import_classifier

        def floats(text):
            return None if text is None else [float(v) for v in text.split(",")]
        labels = [label.strip() for label in args.labels.split(",") if label.strip()]
        m = import_classifier(args.onnx, labels, args.out, args.name, height=args.size, width=args.size,
                              layout=args.layout, dtype=args.dtype, color=args.color, scale=args.scale,
                              mean=floats(args.mean), std=floats(args.std), outputs=args.outputs)
        print(f"classifier bundle {args.out}: {m.name}, {len(m.labels)} labels ({', '.join(m.labels)}), "
              f"input {m.input.width}x{m.input.height} {m.input.color} {m.input.layout} {m.input.dtype}; "
              f"use it with chain: {{on: [NG], stage: {args.out}}}")
        return 0
    if args.command == "check":
        from .commands.check import run_check

        return run_check(args.config)
    raise AssertionError(args.command)


def main(argv: list[str] | None = None) -> int:
    parser, plugged = _parser()
    argv = sys.argv[1:] if argv is None else argv
    wanted = next((a for a in argv if not a.startswith("-")), None)
    if wanted in TOOLCHAIN_COMMANDS and wanted not in plugged:
        print(f"edge-ad: error: '{wanted}' comes with the export toolchain, which is not installed "
              "here: pip install 'edge-ad[export]' (a Jetson image serves bundles trained elsewhere)",
              file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _run(args, plugged)
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
