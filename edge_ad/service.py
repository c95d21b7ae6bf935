"""Assembling the service from a config: bundle → engine → inspector → sources → pipeline → app."""
from __future__ import annotations

from .bundle import load_bundle
from .config import ServiceConfig
from .engines import config_options, create_engine
from .inspector import Inspector
from .metrics import Metrics
from .pipeline.results import ResultStore, new_boot_id
from .pipeline.service import Pipeline
from .geometry import CameraDecision, load_ignore_mask
from .quality import QualityLimits
from .sources.base import open_source


def build_pipeline(config: ServiceConfig, metrics: Metrics | None = None) -> Pipeline:
    """Everything that can be checked without running is checked here, so a bad bundle or an
    unknown source scheme fails at start with one clear line."""
    metrics = metrics or Metrics()
    # sources first: a bad URI is a configuration error (exit), a bad model is not (serve
    # not-ready and retry, see commands/serve.py)
    sources = {cam.name: open_source(cam.source) for cam in config.cameras}
    bundle = load_bundle(config.model)
    e, engine_options = config.engine, config_options(config.engine)
    engine = create_engine(bundle, e.backend, **engine_options)
    m = bundle.manifest
    metrics.model.info({"name": m.name, "version": m.version, "family": m.family,
                        "onnx_sha256": m.provenance.onnx_sha256[:16]})
    def engine_factory(b):  # a reloaded bundle runs on the same backend with the same options
        return create_engine(b, e.backend, **engine_options)

    journal, boot_id = None, new_boot_id()
    store = ResultStore(config.results.ring_size, boot_id=boot_id)
    if config.results.journal is not None:
        from .pipeline.journal import Journal

        r = config.results
        journal = Journal(r.journal, r.journal_max_rows, r.journal_max_age_days * 86400)
        # numbering continues past every seq ever served or reserved, across restarts
        store = ResultStore(r.ring_size, journal.resume(boot_id), sink=journal.append,
                            reserve=journal.reserve, boot_id=boot_id)
    q = config.quality
    limits = QualityLimits(q.min_brightness, q.max_brightness, q.max_clipped, q.min_sharpness_ratio,
                           q.frozen_s, q.frozen_delta) if q.enabled else None
    evidence = None
    if config.evidence.path is not None:
        from .evidence import EvidenceStore

        e = config.evidence
        evidence = EvidenceStore(e.path, int(e.quota_mb * 1024 * 1024), e.ok_every, metrics)
    decisions = {}
    for cam in config.cameras:
        if cam.roi or cam.rotate or cam.ignore_mask or cam.min_defect_area_px:
            ignore = load_ignore_mask(cam.ignore_mask, m.input.height, m.input.width) if cam.ignore_mask else None
            decisions[cam.name] = CameraDecision(cam.roi, cam.rotate, ignore, cam.min_defect_area_px)
    return Pipeline(engine, Inspector(engine, m), sources, metrics, store, quality=limits, evidence=evidence,
                    decisions=decisions,
                    journal=journal, batch_size=config.engine.batch_size,
                    stale_periods=config.results.stale_periods, bundle_path=bundle.path,
                    drift=config.drift.model_dump(), engine_factory=engine_factory,
                    model_root=config.models.root or config.model.parent,
                    hang_timeout_s=config.engine.hang_timeout_s)
