"""Prometheus metrics (prefix ``edge_ad_``), all in one registry that is passed in, never global."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics

# The per-series ``*_created`` timestamps double the exposition and no dashboard uses them.
disable_created_metrics()

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5,
                    1.0, 2.5)
_SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 20)) + (0.999,)
STAGES = ("preprocess", "infer", "postprocess", "publish", "end_to_end")


class Metrics:
    """Owns the registry and every instrument the service updates."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = r = registry or CollectorRegistry()
        self.frames_captured = Counter("edge_ad_frames_captured", "Frames read from the source",
                                       ["camera"], registry=r)
        self.frames_processed = Counter("edge_ad_frames_processed", "Frames inspected",
                                        ["camera"], registry=r)
        self.frames_dropped = Counter("edge_ad_frames_dropped",
                                      "Frames dropped before inspection, by drop policy",
                                      ["camera", "reason"], registry=r)
        self.stage_latency = Histogram("edge_ad_stage_latency_seconds", "Latency per pipeline stage",
                                       ["stage"], buckets=_LATENCY_BUCKETS, registry=r)
        self.verdicts = Counter("edge_ad_verdicts", "Inspection verdicts", ["camera", "verdict"],
                                registry=r)
        self.score = Histogram("edge_ad_anomaly_score", "Normalized anomaly score (0.5 = threshold)",
                               ["camera"], buckets=_SCORE_BUCKETS, registry=r)
        self.threshold = Gauge("edge_ad_threshold_raw", "Raw image-score threshold in force",
                               registry=r)
        self.margin = Gauge("edge_ad_threshold_margin",
                            "Last normalized score minus 0.5 (negative = below threshold)",
                            ["camera"], registry=r)
        self.model = Info("edge_ad_model", "Model bundle being served", registry=r)
        self.engine = Info("edge_ad_engine", "Engine backend and provider in use", registry=r)
        self.engine_errors = Counter("edge_ad_engine_errors", "Engine failures (results FAULT)",
                                     registry=r)
        self.model_load_failures = Counter("edge_ad_model_load_failures",
                                           "Attempts to load the model at start that failed (served not-ready)",
                                           registry=r)
        self.engine_hangs = Counter("edge_ad_engine_hangs", "Engine calls that hung past engine.hang_timeout_s "
                                    "(the worker was abandoned and a fresh engine loaded)", registry=r)
        self.camera_up = Gauge("edge_ad_camera_up", "1 while the source delivers frames",
                               ["camera"], registry=r)
        self.reconnects = Counter("edge_ad_camera_reconnects", "Source reopen attempts",
                                  ["camera"], registry=r)
        self.frame_age = Gauge("edge_ad_frame_age_seconds",
                               "Age of the last inspected frame when its result was published",
                               ["camera"], registry=r)
        self.drift_statistic = Gauge("edge_ad_drift_statistic",
                                     "KS distance between recent scores and the calibration set",
                                     ["camera"], registry=r)
        self.drift_detected = Gauge("edge_ad_drift_detected",
                                    "1 while recent scores differ from the calibration set (recalibrate)",
                                    ["camera"], registry=r)
        self.recipe = Gauge("edge_ad_recipe", "Recipe number in force per camera (-1: none configured, "
                            "or the one selected is unknown)", ["camera"], registry=r)
        self.recipe_switches = Counter("edge_ad_recipe_switches", "Recipe selections by outcome "
                                       "(ok, unknown, failed)", ["camera", "outcome"], registry=r)
        self.chain_results = Counter("edge_ad_chain_results", "Second-stage answers by outcome (ok, error)",
                                     ["outcome"], registry=r)
        self.chain_latency = Histogram("edge_ad_chain_latency_seconds", "Second-stage call time",
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.plc_requests = Counter("edge_ad_plc_requests", "PLC handshake requests by protocol, kind "
                                    "and outcome", ["protocol", "kind", "outcome"], registry=r)
        self.model_reloads = Counter("edge_ad_model_reloads", "Model reloads by outcome", ["outcome"],
                                     registry=r)
        self.stream_viewers = Gauge("edge_ad_stream_viewers", "Open /v1/stream.mjpg connections",
                                    registry=r)
        self.jetson_ram_used = Gauge("edge_ad_jetson_ram_used_bytes", "Jetson RAM in use (tegrastats)",
                                     registry=r)
        self.jetson_cpu_load = Gauge("edge_ad_jetson_cpu_load_ratio", "CPU core load (tegrastats)",
                                     ["core"], registry=r)
        self.jetson_gpu_load = Gauge("edge_ad_jetson_gpu_load_ratio", "GPU (GR3D) load (tegrastats)",
                                     registry=r)
        self.jetson_temperature = Gauge("edge_ad_jetson_temperature_celsius", "Temperatures (tegrastats)",
                                        ["sensor"], registry=r)
        self.jetson_power = Gauge("edge_ad_jetson_power_watts", "Power rails, current (tegrastats)",
                                  ["rail"], registry=r)
        self.invalid_frames = Counter("edge_ad_invalid_frames", "Frames judged INVALID by the quality guard",
                                      ["camera", "kind"], registry=r)
        self.evidence_saved = Counter("edge_ad_evidence_saved", "Frames saved as evidence", ["verdict"],
                                      registry=r)
        self.evidence_dropped = Counter("edge_ad_evidence_dropped",
                                        "Evidence not saved because the writer fell behind", registry=r)
        self.publisher_dropped = Counter("edge_ad_publisher_dropped",
                                         "Results an output (evidence, views, metrics, ...) skipped because "
                                         "its queue was full; the journal still has them", ["publisher"],
                                         registry=r)
        self.outbox_dropped = Counter("edge_ad_outbox_dropped", "Undelivered messages an output dropped "
                                      "for good: past its outbox's bounds, or refused by the receiver",
                                      ["publisher"], registry=r)
        self.publisher_delivered = Counter("edge_ad_publisher_delivered", "Messages an output delivered "
                                           "and the receiver acknowledged", ["publisher"], registry=r)
        self.publisher_failures = Counter("edge_ad_publisher_failures", "Delivery attempts that failed "
                                          "(retried with backoff; the message stays in the outbox)",
                                          ["publisher"], registry=r)
        self.evidence_bytes = Gauge("edge_ad_evidence_bytes", "Disk used by the evidence store", registry=r)
        self.http_requests = Counter("edge_ad_http_requests", "HTTP requests", ["route", "code"],
                                     registry=r)
        self.requests_refused = Counter("edge_ad_requests_refused",
                                        "Requests refused to protect the line (429), by reason",
                                        ["reason"], registry=r)
