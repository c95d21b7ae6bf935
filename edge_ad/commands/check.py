"""``edge-ad check``: validate config, bundle, engine and every source, then exit."""
from __future__ import annotations

from ..bundle import load_bundle
from ..config import load_config
from ..engines import create_engine
from ..platform import detect as detect_platform
from ..errors import EdgeAdError, SourceError
from ..sources.registry import open_source


def run_check(config_path: str) -> int:
    config = load_config(config_path)
    print(f"config  ok: {config_path}")
    p = detect_platform()
    print("device  ok: " + (f"Jetson, L4T {p.l4t or '?'} (JetPack {p.jetpack or '?'}), GPU {p.gpu or '?'}"
                           if p.jetson else f"not a Jetson; GPU {p.gpu or 'none'}")
          + f", TensorRT {p.tensorrt or 'not installed'}")
    recipes = config.recipes.items if config.recipes is not None else {None: None}
    for number, recipe in recipes.items():
        bundle = load_bundle(config.model if recipe is None else recipe.model)
        m = bundle.manifest
        which = "" if recipe is None else f"recipe {number} ({recipe.name}): "
        print(f"model   ok: {which}{m.name} v{m.version} ({m.family}, {m.input.width}x{m.input.height} {m.input.color})")
        with create_engine(bundle, config.engine.backend, **config.engine.engine_options()) as engine:
            print(f"engine  ok: {which}{engine.name} on {engine.provider}")
    failed = []
    for cam in config.cameras:
        try:
            source = open_source(cam.source)
        except SourceError as exc:
            failed.append(f"{cam.name}: {exc}")
            continue
        shown = getattr(source, "display", cam.source)  # RTSP passwords redacted
        try:
            source.open()
            if source.event_driven:
                print(f"camera  ok: {cam.name} {shown} (frames arrive by POST /v1/push?camera={cam.name})")
                continue
            frame = source.read()
            if frame is None:
                raise SourceError("the source delivered no frame")
            print(f"camera  ok: {cam.name} {shown} ({frame.shape[1]}x{frame.shape[0]})")
        except SourceError as exc:
            failed.append(f"{cam.name}: {exc}")
        finally:
            source.close()
    if failed:
        raise EdgeAdError("source check failed: " + "; ".join(failed))
    return 0
