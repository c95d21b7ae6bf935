"""Assembling the service from a config: bundle → engine → model → sources → store (journal) →
publishers → pipeline → the port the server talks to."""
from __future__ import annotations

import sys

from .bundle import load_bundle
from .config import ServiceConfig
from .decision.camera import CameraDecision, load_ignore_mask
from .decision.quality import QualityLimits
from .engines import create_engine
from .pipeline.port import PipelinePort
from .pipeline.recipes import CameraSetting, Recipe, RecipeSet
from .pipeline.results import ResultStore, new_boot_id
from .pipeline.service import Pipeline, PipelineOptions
from .pipeline.worker import Model
from .prometheus import Metrics
from .sources.registry import open_source
from .telemetry import TegrastatsThread


# The service's threads (HTTP loop, capture, worker, publishers) share one interpreter. At
# CPython's default 5 ms switch interval a thread that wants the GIL back (the worker after an
# engine call, a request) can wait that long for one doing Python work to yield; bench/http_bench.py
# measured GET /v1/result p99 at 5.5 ms that way. Set where the service is built, so the benches
# that build it in-process (publish_bench, reliability) measure what `edge-ad serve` runs.
SWITCH_INTERVAL_S = 0.0005


def build_service(config: ServiceConfig, metrics: Metrics | None = None) -> PipelinePort:
    """Everything that can be checked without running is checked here, so a bad bundle or an
    unknown source scheme fails at start with one clear line."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    metrics = metrics or Metrics()
    built: dict = {}  # the MQTT status reads the pipeline's readiness, and the pipeline takes the outputs
    # sources first: a bad URI is a configuration error (exit), a bad model is not (serve
    # not-ready and retry, see commands/serve.py)
    sources = {cam.name: open_source(cam.source) for cam in config.cameras}
    backend, engine_options = config.engine.backend, config.engine.engine_options()

    def engine_factory(b):  # a reloaded bundle (or a recipe) runs on the same backend and options
        return create_engine(b, backend, **engine_options)

    recipes = recipe_set(config)
    if recipes is None:
        bundle = load_bundle(config.model)
        m = bundle.manifest
        model = Model.of(engine_factory(bundle), m, bundle.path, camera_decisions(config, m))
    else:  # the others are warmed on the worker before it is ready (pipeline/recipes.py)
        model = Model.of_recipe(recipes.get(recipes.default), engine_factory)
        m = model.manifest
    metrics.model.info({**model.info, "onnx_sha256": m.provenance.onnx_sha256[:16]})

    store = ResultStore(config.results.ring_size, boot_id=new_boot_id())
    if config.results.journal is not None:
        from .pipeline.journal import Journal

        r = config.results
        store = ResultStore.journaled(Journal(r.journal, r.journal_max_rows, r.journal_max_age_days * 86400),
                                      r.ring_size)
    q = config.quality
    limits = QualityLimits(q.min_brightness, q.max_brightness, q.max_clipped, q.min_sharpness_ratio,
                           q.frozen_s, q.frozen_delta) if q.enabled else None
    outputs, clips = [], None
    if config.evidence.path is not None:
        from .publish.evidence import EvidenceStore

        ev = config.evidence
        if ev.clip_frames:
            from .publish.clips import ClipRings

            clips = ClipRings([cam.name for cam in config.cameras], ev.clip_frames, ev.clip_width)
        outputs.append(EvidenceStore(ev.path, int(ev.quota_mb * 1024 * 1024), ev.ok_every, metrics, clips=clips))
    if config.publish:
        from .publish.registry import build_outputs

        outputs += build_outputs(config.publish, metrics, store.journal, lambda: built["pipeline"].readiness(),
                                 config.results.journal.parent)  # publish: requires the journal
    chains = None
    if config.chain is not None:
        from .publish.chain import ChainBook, ChainPublisher
        from .publish.chain_stage import open_stage

        chains = ChainBook(store.journal)
        chain = ChainPublisher(open_stage(config.chain.stage), config.chain, chains, metrics)
        chain.listeners += [o.publish_chain for o in outputs if hasattr(o, "publish_chain")]
        outputs.append(chain)
    options = PipelineOptions(
        batch_size=config.engine.batch_size, stale_periods=config.results.stale_periods,
        hang_timeout_s=config.engine.hang_timeout_s, quality=limits, drift=config.drift.model_dump(),
        model_root=config.models.root or config.bundles[0].parent, engine_factory=engine_factory,
        recipes=recipes, clips=clips)
    built["pipeline"] = pipeline = Pipeline(model, sources, store, metrics, options, tuple(outputs))
    telemetry = TegrastatsThread(metrics) if TegrastatsThread.available() else None  # on a Jetson only
    return PipelinePort(pipeline, telemetry, chains)


def camera_decisions(config: ServiceConfig, manifest) -> dict[str, CameraDecision]:
    """Without recipes: each camera's ROI, rotation, ignore mask and minimum defect area."""
    decisions = {}
    for cam in config.cameras:
        if cam.roi or cam.rotate or cam.ignore_mask or cam.min_defect_area_px:
            ignore = load_ignore_mask(cam.ignore_mask, *manifest.map_size) if cam.ignore_mask else None
            decisions[cam.name] = CameraDecision(cam.roi, cam.rotate, ignore, cam.min_defect_area_px)
    return decisions


def recipe_set(config: ServiceConfig) -> RecipeSet | None:
    """``recipes:`` as the pipeline holds it; each recipe's bundle must load (checked at start)."""
    if config.recipes is None:
        return None
    rotate = {cam.name: cam.rotate for cam in config.cameras}
    recipes = {}
    for n, r in config.recipes.items.items():
        load_bundle(r.model)  # a missing or corrupt bundle fails at start, not when the PLC selects it
        settings = {cam: CameraSetting(rc.roi if (rc := r.cameras.get(cam)) else None, rotate[cam],
                                       rc.ignore_mask if rc else None, rc.min_defect_area_px if rc else 0)
                    for cam in rotate}
        recipes[n] = Recipe(n, r.name, r.model, settings)
    return RecipeSet(recipes, config.recipes.default, config.recipes.memory_budget_mb)
